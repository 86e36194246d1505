// tb_dg_engine.cpp - C-sim testbench of the dgfpga engine on shared vector sets.
//
// Usage: tb_dg_engine VECTOR_DIR [VECTOR_DIR...]
// Each folder is a vector set (docs/test_vectors.md): the manifest vector.txt, the program
// and the four regions before the run, and the expected FMAP and SUMS regions after it.
// The engine runs on copies of the regions, each in a heap block of exactly its declared
// size (an empty region is a zero-byte block, never a null pointer), so a sanitizer build
// (hls_csim target 'tb_asan') reports any access past a region; the WHOLE FMAP and SUMS
// regions are compared byte for byte (this also proves nothing outside the layer's buffers
// was written), and the STATUS word against expected_status. One result line per vector set; exit code 0
// when all pass, 1 otherwise (a mismatch, a usage or a file error).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "dg_engine.h"

namespace {

struct Region {
    std::string name, file, expected;
    unsigned long bytes = 0;
};

struct Ignore {
    std::string region;
    unsigned long offset = 0, bytes = 0;
};

struct Manifest {
    std::map<std::string, std::string> keys;
    std::vector<Region> regions;
    std::vector<Ignore> ignore;   // byte ranges not compared (the cycle log)
};

bool read_file(const std::string &path, std::vector<uint8_t> &out, std::string &err) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        err = "cannot open " + path;
        return false;
    }
    out.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    return true;
}

bool parse_manifest(const std::string &dir, Manifest &m, std::string &err) {
    std::ifstream f(dir + "/vector.txt");
    if (!f) {
        err = "no vector.txt in " + dir;
        return false;
    }
    static const char *known[] = {"dgfpga_vectors", "name", "config", "config_hash", "format_version",
                                  "layer_count", "region", "expected_status", "macs", "run_flags",
                                  "ignore"};
    std::string line;
    while (std::getline(f, line)) {
        const size_t hash = line.find('#');
        if (hash != std::string::npos) line = line.substr(0, hash);
        std::istringstream ss(line);
        std::string key;
        if (!(ss >> key)) continue;
        bool ok = false;
        for (const char *k : known) ok = ok || key == k;
        if (!ok) {
            err = "unknown manifest key '" + key + "'";
            return false;
        }
        if (key == "ignore") {
            Ignore ig;
            if (!(ss >> ig.region >> ig.offset >> ig.bytes)) {
                err = "bad ignore line: " + line;
                return false;
            }
            m.ignore.push_back(ig);
        } else if (key == "region") {
            Region r;
            if (!(ss >> r.name >> r.bytes >> r.file >> r.expected)) {
                err = "bad region line: " + line;
                return false;
            }
            m.regions.push_back(r);
        } else {
            std::string rest;
            std::getline(ss >> std::ws, rest);
            m.keys[key] = rest;
        }
    }
    for (const char *k : known)
        if (std::string(k) != "region" && std::string(k) != "run_flags" &&
            std::string(k) != "ignore" && !m.keys.count(k)) {
            err = std::string("manifest key '") + k + "' missing";
            return false;
        }
    if (m.keys["dgfpga_vectors"] != "1") {
        err = "manifest version " + m.keys["dgfpga_vectors"] + " (this testbench reads 1)";
        return false;
    }
    const char *order[] = {"fmap", "weight", "work", "sums"};
    if (m.regions.size() != 4) {
        err = "need 4 region lines (fmap, weight, work, sums)";
        return false;
    }
    for (int i = 0; i < 4; i++)
        if (m.regions[i].name != order[i]) {
            err = "region " + std::to_string(i) + " is '" + m.regions[i].name + "', expected " + order[i];
            return false;
        }
    return true;
}

// Zero the manifest's ignore ranges of region `name` in `v`.
void mask_ignored(const Manifest &m, const std::string &name, std::vector<uint8_t> &v) {
    for (const Ignore &ig : m.ignore)
        if (ig.region == name)
            for (unsigned long i = ig.offset; i < ig.offset + ig.bytes && i < v.size(); i++) v[i] = 0;
}

// First differing byte, or -1.
long first_diff(const std::vector<uint8_t> &a, const std::vector<uint8_t> &b) {
    for (size_t i = 0; i < a.size() && i < b.size(); i++)
        if (a[i] != b[i]) return (long)i;
    return a.size() == b.size() ? -1 : (long)(a.size() < b.size() ? a.size() : b.size());
}

// 0 pass, 1 mismatch, 2 error. Prints one line.
int run_set(const std::string &dir) {
    Manifest m;
    std::string err;
    if (!parse_manifest(dir, m, err)) {
        std::printf("ERROR %s: %s\n", dir.c_str(), err.c_str());
        return 2;
    }
    const std::string name = m.keys["name"];
    const unsigned long chash = std::strtoul(m.keys["config_hash"].c_str(), nullptr, 0);
    if (chash != dg::config::config_hash) {
        std::printf("ERROR %s: vectors for config '%s' (0x%08lX), engine built for '%s' (0x%08X)\n",
                    name.c_str(), m.keys["config"].c_str(), chash, dg::config::name,
                    (unsigned)dg::config::config_hash);
        return 2;
    }
    const unsigned long layers = std::strtoul(m.keys["layer_count"].c_str(), nullptr, 0);
    const unsigned long want_status = std::strtoul(m.keys["expected_status"].c_str(), nullptr, 0);
    const unsigned long run_flags =
        m.keys.count("run_flags") ? std::strtoul(m.keys["run_flags"].c_str(), nullptr, 0) : 0;
    std::vector<uint8_t> prog;
    if (!read_file(dir + "/program.bin", prog, err)) {
        std::printf("ERROR %s: %s\n", name.c_str(), err.c_str());
        return 2;
    }
    std::vector<uint8_t> data[4], expected[4];
    for (int i = 0; i < 4; i++) {
        const Region &r = m.regions[i];
        if (!read_file(dir + "/" + r.file, data[i], err)) {
            std::printf("ERROR %s: %s\n", name.c_str(), err.c_str());
            return 2;
        }
        if (data[i].size() != r.bytes) {
            std::printf("ERROR %s: %s is %zu bytes, manifest says %lu\n", name.c_str(), r.file.c_str(),
                        data[i].size(), r.bytes);
            return 2;
        }
        if (r.expected != "-" && !read_file(dir + "/" + r.expected, expected[i], err)) {
            std::printf("ERROR %s: %s\n", name.c_str(), err.c_str());
            return 2;
        }
    }
    if (m.regions[3].bytes % 4) {
        std::printf("ERROR %s: sums region of %lu bytes is not whole int32 values\n", name.c_str(),
                    m.regions[3].bytes);
        return 2;
    }
    // program as aligned u64 words: exactly max_layers descriptors, zero filled
    std::vector<dg::u64> words((size_t)dg::MAX_LAYERS * dg::desc::BYTES / 8, 0);
    const size_t prog_bytes = prog.size() < words.size() * 8 ? prog.size() : words.size() * 8;
    if (prog_bytes) std::memcpy(words.data(), prog.data(), prog_bytes);
    // regions: exact-size heap blocks (new T[0] is a valid, non-null, zero-byte block)
    std::unique_ptr<uint8_t[]> reg[3];
    for (int i = 0; i < 3; i++) {
        reg[i].reset(new uint8_t[m.regions[i].bytes]);
        if (m.regions[i].bytes) std::memcpy(reg[i].get(), data[i].data(), m.regions[i].bytes);
    }
    std::unique_ptr<int32_t[]> sums(new int32_t[m.regions[3].bytes / 4]);
    if (m.regions[3].bytes) std::memcpy(sums.get(), data[3].data(), m.regions[3].bytes);

    dg::u32 status = 0xFFFFFFFFu;
    dg::u64 cycles = 0, id = 0;
    static volatile dg::u64 clock = 0;   // the cycle_counter input: no clock in C-simulation
    dg_engine(words.data(), (dg::u32)layers, reg[0].get(), (dg::u32)m.regions[0].bytes, reg[1].get(),
              (dg::u32)m.regions[1].bytes, reg[2].get(), (dg::u32)m.regions[2].bytes, sums.get(),
              (dg::u32)m.regions[3].bytes, &status, &cycles, &id, (dg::u32)run_flags, &clock);
#ifndef __RTL_SIMULATION__
    const unsigned long long estimate = dg::csim_cycles_estimate();
#else
    const unsigned long long estimate = 0;   // co-simulation: the RTL ran, no C-sim model
#endif

    std::vector<uint8_t> fmap_after(reg[0].get(), reg[0].get() + m.regions[0].bytes);
    std::vector<uint8_t> work_after(reg[2].get(), reg[2].get() + m.regions[2].bytes);
    const char *names[4] = {"fmap", "weight", "work", "sums"};
    mask_ignored(m, names[0], fmap_after);
    mask_ignored(m, names[2], work_after);
    for (int i = 0; i < 4; i++) mask_ignored(m, names[i], expected[i]);
    std::vector<uint8_t> sums_after(m.regions[3].bytes);
    if (m.regions[3].bytes) std::memcpy(sums_after.data(), sums.get(), m.regions[3].bytes);
    mask_ignored(m, "sums", sums_after);
    std::string why;
    if (status != want_status) {
        char b[96];
        std::snprintf(b, sizeof b, "status 0x%08X, expected 0x%08lX", status, want_status);
        why = b;
    } else if (m.regions[0].expected != "-") {
        long d = first_diff(fmap_after, expected[0]);
        if (d >= 0) why = "fmap differs at byte " + std::to_string(d);
    }
    if (why.empty() && m.regions[3].expected != "-") {
        long d = first_diff(sums_after, expected[3]);
        if (d >= 0) why = "sums differ at byte " + std::to_string(d) + " (sum " + std::to_string(d / 4) + ")";
    }
    if (why.empty() && m.regions[2].expected != "-") {
        long d = first_diff(work_after, expected[2]);
        if (d >= 0) why = "work differs at byte " + std::to_string(d);
    }
    if (!why.empty()) {
        std::printf("FAIL %s: %s\n", name.c_str(), why.c_str());
        return 1;
    }
    std::printf("PASS %s status=0x%08X cycles=%llu estimate=%llu macs=%s\n", name.c_str(), status,
                (unsigned long long)cycles, estimate, m.keys["macs"].c_str());
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s VECTOR_DIR [VECTOR_DIR...]\n", argv[0]);
        return 2;
    }
    int worst = 0;
    for (int i = 1; i < argc; i++) {
        int r = run_set(argv[i]);
        if (r > worst) worst = r;
    }
    return worst == 0 ? 0 : 1;
}
