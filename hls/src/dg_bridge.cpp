// dg_bridge.cpp - C entry points of the C-simulated engine, for ctypes (dgfpga.hls_csim).
//
// dg_run copies the program into an aligned u64 array of max_layers records (zero filled,
// so even a wrong layer_count cannot make the engine read past what the caller gave) and
// calls the HLS top function on the caller's regions in place (FMAP, WORK and SUMS are
// written; run_flags is the register of the same name). The engine's cycle_counter input
// is a counter that stands still (the C-sim has no clock): CYCLES reads 0, and dg_run
// returns the C-sim's modelled estimate in *cycles_estimate instead (docs/hls.md).
#include <cstring>
#include <vector>

#include "dg_engine.h"

extern "C" {

// Returns 0 when the engine ran (its STATUS is in *status, CYCLES in *cycles, the C-sim's
// estimate in *cycles_estimate), -1 on a bad argument.
int dg_run(const uint8_t *program, uint32_t program_bytes, uint32_t layer_count,
           uint8_t *fmap, uint32_t fmap_bytes, const uint8_t *weight, uint32_t weight_bytes,
           uint8_t *work, uint32_t work_bytes, int32_t *sums, uint32_t sums_bytes,
           uint32_t *status, uint64_t *cycles, uint64_t *engine_id, uint32_t run_flags,
           uint64_t *cycles_estimate) {
    if (!status || !cycles || !engine_id || !cycles_estimate) return -1;
    if (program_bytes && !program) return -1;
    const size_t cap = (size_t)dg::MAX_LAYERS * dg::desc::BYTES;
    std::vector<dg::u64> prog(cap / 8, 0);
    if (program_bytes) std::memcpy(prog.data(), program, program_bytes < cap ? program_bytes : cap);
    // A null region (size 0) is replaced by a dummy so the engine never sees a null pointer.
    static uint8_t dummy8[16];
    static int32_t dummy32[4];
    static volatile dg::u64 clock = 0;   // no clock in C-simulation
    dg_engine(prog.data(), layer_count, fmap ? fmap : dummy8, fmap ? fmap_bytes : 0,
              weight ? weight : dummy8, weight ? weight_bytes : 0, work ? work : dummy8,
              work ? work_bytes : 0, sums ? sums : dummy32, sums ? sums_bytes : 0, status, cycles,
              engine_id, run_flags, &clock);
    *cycles_estimate = dg::csim_cycles_estimate();
    return 0;
}

// What the library was built for (checked by dgfpga.hls_csim against the EngineConfig).
uint64_t dg_engine_id(void) { return dg::engine_id_value(); }
const char *dg_config_name(void) { return dg::config::name; }
uint32_t dg_max_layers(void) { return dg::MAX_LAYERS; }

}  // extern "C"
