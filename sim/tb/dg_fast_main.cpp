// dg_fast_main: C++ main of the fast RTL harness (sim/tb/dg_tb_fast.sv): loads the memory
// segments of one engine start in binary, toggles the clock until $finish, dumps the regions
// the engine may write in binary, optionally writes an FST waveform.
//
// Plusargs (the rest are read by dg_tb_fast.sv):
//   +in=<file>       the start's memory exchange file, written by dgfpga.backends.rtl_sim
//                    (all integers little-endian):
//                      char[8] magic "DGMEMIN1"
//                      u64 clear_bytes          bytes [0, clear_bytes) are zeroed first
//                      u32 n_load, u32 n_dump
//                      n_load x {u64 addr, u64 len, u64 flags}   flags bit 0: read-only
//                      n_dump x {u64 addr, u64 len}
//                      the n_load segments' bytes, concatenated
//                    Each load segment is read straight into the memory model's array
//                    (dg_axi_mem.mem, public_flat_rw) at `addr`, before the first clock edge.
//   +out_mem=<file>  after $finish: the n_dump ranges' bytes, concatenated.
//   +wave=<file>     (a --trace-fst build only) FST waveform of the whole run.
//   +starts=<n>      (also read by dg_tb_fast.sv) n starts in one run: whenever the harness
//                    raises dg_tb_fast.reload (between starts), the memory is cleared and
//                    the load segments are written again, as before the first start.
// After the run, the read-only segments are compared with what was loaded: the number of
// bytes the engine changed in them is appended to the result file (+out) as
// "readonly_changed N". Exit status 2 on a malformed exchange file.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>
#include "Vdg_tb_fast.h"
#include "Vdg_tb_fast___024root.h"
#include "verilated.h"
#if VM_TRACE
#include "verilated_fst_c.h"
#endif

namespace {

struct Seg { uint64_t addr, len, flags; };

int fail(const char* what, const std::string& file) {
    std::fprintf(stderr, "dg_fast_main: %s (%s)\n", what, file.c_str());
    return 2;
}

bool read_exact(std::FILE* f, void* dst, uint64_t n) {
    auto* p = static_cast<uint8_t*>(dst);
    while (n) {
        size_t chunk = n > (64u << 20) ? (64u << 20) : static_cast<size_t>(n);
        if (std::fread(p, 1, chunk, f) != chunk) return false;
        p += chunk;
        n -= chunk;
    }
    return true;
}

std::string plusarg(VerilatedContext* ctx, const char* name) {
    std::string m = ctx->commandArgsPlusMatch(name);   // "+name=value" or ""
    std::string pre = std::string("+") + name;
    return m.size() > pre.size() ? m.substr(pre.size()) : std::string();
}

}  // namespace

int main(int argc, char** argv) {
    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);
    auto top = std::make_unique<Vdg_tb_fast>(ctx.get());

    // The memory model's array is the memory image byte for byte (little-endian host; each
    // element is a whole number of bytes for the power-of-two AXI widths).
    auto& mem = top->rootp->dg_tb_fast__DOT__mem__DOT__mem;
    uint8_t* const mbase = reinterpret_cast<uint8_t*>(&mem[0]);
    const uint64_t mbytes = sizeof(mem);

    const std::string in_file = plusarg(ctx.get(), "in=");
    const std::string out_file = plusarg(ctx.get(), "out_mem=");
    const std::string out_txt = plusarg(ctx.get(), "out=");
    std::vector<Seg> loads, dumps;
    std::vector<std::vector<uint8_t>> readonly;   // copies of the read-only segments
    const std::string starts_arg = plusarg(ctx.get(), "starts=");
    const bool restarts = !starts_arg.empty() && std::atoi(starts_arg.c_str()) > 1;
    std::vector<std::vector<uint8_t>> image;       // copies of every load segment (restarts)
    uint64_t clear = 0;
    if (!in_file.empty()) {
        std::FILE* f = std::fopen(in_file.c_str(), "rb");
        if (!f) return fail("cannot open the memory exchange file", in_file);
        char magic[8];
        uint32_t n[2] = {0, 0};
        if (!read_exact(f, magic, 8) || std::memcmp(magic, "DGMEMIN1", 8) != 0
            || !read_exact(f, &clear, 8) || !read_exact(f, n, 8)) {
            std::fclose(f);
            return fail("not a DGMEMIN1 memory exchange file", in_file);
        }
        loads.resize(n[0]);
        dumps.resize(n[1]);
        bool ok = true;
        for (auto& s : loads) ok = ok && read_exact(f, &s, 24);
        for (auto& s : dumps) { s.flags = 0; ok = ok && read_exact(f, &s, 16); }
        ok = ok && clear <= mbytes;
        for (const auto& s : loads) ok = ok && s.addr <= mbytes && s.len <= mbytes - s.addr;
        for (const auto& s : dumps) ok = ok && s.addr <= mbytes && s.len <= mbytes - s.addr;
        if (!ok) { std::fclose(f); return fail("truncated exchange file or segment outside the memory model", in_file); }
        std::memset(mbase, 0, clear);
        for (const auto& s : loads) {
            if (!read_exact(f, mbase + s.addr, s.len)) { std::fclose(f); return fail("truncated segment data", in_file); }
            if (s.flags & 1) readonly.emplace_back(mbase + s.addr, mbase + s.addr + s.len);
            if (restarts) image.emplace_back(mbase + s.addr, mbase + s.addr + s.len);
        }
        std::fclose(f);
    }

#if VM_TRACE
    std::unique_ptr<VerilatedFstC> tfp;
    const std::string wave = plusarg(ctx.get(), "wave=");
    if (!wave.empty()) {
        ctx->traceEverOn(true);
        tfp = std::make_unique<VerilatedFstC>();
        top->trace(tfp.get(), 99);
        tfp->open(wave.c_str());
    }
#endif

    top->clk = 0;
    bool reloaded = false;
    while (!ctx->gotFinish()) {
        top->clk = !top->clk;
        top->eval();
        if (restarts) {
            const bool req = top->rootp->dg_tb_fast__DOT__reload;
            if (req && !reloaded) {
                std::memset(mbase, 0, clear);
                for (size_t i = 0; i < loads.size(); ++i)
                    std::memcpy(mbase + loads[i].addr, image[i].data(), loads[i].len);
            }
            reloaded = req;
        }
#if VM_TRACE
        if (tfp) tfp->dump(ctx->time());
#endif
        ctx->timeInc(5);
    }
    top->final();
#if VM_TRACE
    if (tfp) tfp->close();
#endif

    uint64_t changed = 0;
    size_t k = 0;
    for (const auto& s : loads) {
        if (!(s.flags & 1)) continue;
        const auto& want = readonly[k++];
        for (uint64_t i = 0; i < s.len; ++i) changed += mbase[s.addr + i] != want[i];
    }
    if (!out_txt.empty()) {
        std::FILE* t = std::fopen(out_txt.c_str(), "a");
        if (t) { std::fprintf(t, "readonly_changed %llu\n", static_cast<unsigned long long>(changed)); std::fclose(t); }
    }
    if (!out_file.empty()) {
        std::FILE* o = std::fopen(out_file.c_str(), "wb");
        if (!o) return fail("cannot write the memory dump", out_file);
        bool ok = true;
        for (const auto& s : dumps) ok = ok && std::fwrite(mbase + s.addr, 1, s.len, o) == s.len;
        ok = (std::fclose(o) == 0) && ok;
        if (!ok) return fail("short write of the memory dump", out_file);
    }
    return 0;
}
