// fuzz_dg_engine.cpp - batch runner of the C-sim engine for the mutation fuzzer
// (dgfpga.backends.engine_fuzz), built with AddressSanitizer and UBSan (hls_csim target
// 'fuzz_asan', -fno-sanitize-recover: the first finding aborts with its report on stderr).
//
// stdin: records until EOF, little-endian:
//   u32 magic 'DGFZ' (0x5A464744), u32 layer_count, u32 program_bytes,
//   u32 fmap_bytes, u32 weight_bytes, u32 work_bytes, u32 sums_bytes, u32 run_flags,
//   then the program and the four regions' bytes.
// stdout, per record: u32 status, u64 the C-sim's cycle estimate, then the FMAP, WORK and SUMS regions after
// the run.
// Every buffer the engine gets is a heap block of exactly its size: the program holds
// min(layer_count, max_layers) descriptors (fewer given: zero filled, as the C bridge
// does), each region exactly its *_bytes (an empty region is a zero-byte block, never
// null), so the sanitizer reports any access past a region or past the last descriptor.
// A record with magic 'DGFX' (0x58464744) is the self-test: the runner itself reads one
// byte past the FMAP block, which the sanitizer must report. Exit 0 at EOF, 2 on a
// malformed record.
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "dg_engine.h"

namespace {

constexpr uint32_t MAGIC = 0x5A464744u;
constexpr uint32_t PROBE_MAGIC = 0x58464744u;

bool read_exact(void *dst, size_t n) {
    return n == 0 || std::fread(dst, 1, n, stdin) == n;
}

bool write_exact(const void *src, size_t n) {
    return n == 0 || std::fwrite(src, 1, n, stdout) == n;
}

}  // namespace

int main() {
    for (unsigned long record = 0;; record++) {
        uint32_t head[8];
        const size_t got = std::fread(head, 1, sizeof head, stdin);
        if (got == 0 && std::feof(stdin)) return 0;
        if (got != sizeof head || (head[0] != MAGIC && head[0] != PROBE_MAGIC)) {
            std::fprintf(stderr, "fuzz_dg_engine: record %lu: bad header\n", record);
            return 2;
        }
        const uint32_t layer_count = head[1], prog_bytes = head[2];
        const uint32_t bytes[4] = {head[3], head[4], head[5], head[6]};
        if (bytes[3] % 4) {
            std::fprintf(stderr, "fuzz_dg_engine: record %lu: sums bytes %u not int32s\n", record,
                         bytes[3]);
            return 2;
        }
        std::vector<uint8_t> prog(prog_bytes);
        if (!read_exact(prog.data(), prog_bytes)) {
            std::fprintf(stderr, "fuzz_dg_engine: record %lu: short program\n", record);
            return 2;
        }
        const uint32_t n_desc = layer_count < dg::MAX_LAYERS ? layer_count : dg::MAX_LAYERS;
        const size_t n_words = (size_t)n_desc * dg::desc::BYTES / 8;
        std::unique_ptr<dg::u64[]> words(new dg::u64[n_words]());
        const size_t copy = prog_bytes < n_words * 8 ? prog_bytes : n_words * 8;
        if (copy) std::memcpy(words.get(), prog.data(), copy);
        std::unique_ptr<uint8_t[]> reg[3];
        for (int i = 0; i < 3; i++) {
            reg[i].reset(new uint8_t[bytes[i]]);
            if (!read_exact(reg[i].get(), bytes[i])) {
                std::fprintf(stderr, "fuzz_dg_engine: record %lu: short region %d\n", record, i);
                return 2;
            }
        }
        std::unique_ptr<int32_t[]> sums(new int32_t[bytes[3] / 4]);
        if (!read_exact(sums.get(), bytes[3])) {
            std::fprintf(stderr, "fuzz_dg_engine: record %lu: short sums region\n", record);
            return 2;
        }
        if (head[0] == PROBE_MAGIC) {
            volatile uint8_t past = reg[0][bytes[0]];   // one byte past the FMAP block
            (void)past;
        }
        dg::u32 status = 0xFFFFFFFFu;
        dg::u64 cycles = 0, id = 0;
        static volatile dg::u64 clock = 0;   // the cycle_counter input: no clock here
        dg_engine(words.get(), layer_count, reg[0].get(), bytes[0], reg[1].get(), bytes[1],
                  reg[2].get(), bytes[2], sums.get(), bytes[3], &status, &cycles, &id, head[7],
                  &clock);
        const dg::u64 estimate = dg::csim_cycles_estimate();
        if (!write_exact(&status, 4) || !write_exact(&estimate, 8) ||
            !write_exact(reg[0].get(), bytes[0]) || !write_exact(reg[2].get(), bytes[2]) ||
            !write_exact(sums.get(), bytes[3]))
            return 2;
        std::fflush(stdout);
    }
}
