// dg_engine.h - the dgfpga sparse-conv engine: HLS top-function declaration.
//
// The argument list is dgfpga/contract/regmap.py ARGUMENTS, in order (the s_axilite register map is
// derived from it). Pointers are m_axi masters; the *_bytes scalars bound every access.
// WORK is read and written (gate records write masks and work lists, the head the logits
// and the cycle log); run_flags bit 0 (DENSE) turns every gate on without evaluating it.
// cycle_counter is not a register: an ap_none input from a free-running counter on the engine
// clock (the block design's cycle_counter core); CYCLES = its reading at done minus at start.
#ifndef DG_ENGINE_H
#define DG_ENGINE_H

#include "dg_types.h"

void dg_engine(const dg::u64 *program, dg::u32 layer_count,
               dg::u8 *fmap_base, dg::u32 fmap_bytes,
               const dg::u8 *weight_base, dg::u32 weight_bytes,
               dg::u8 *work_base, dg::u32 work_bytes,
               dg::s32 *sums_base, dg::u32 sums_bytes,
               dg::u32 *status, dg::u64 *cycles, dg::u64 *engine_id,
               dg::u32 run_flags, volatile const dg::u64 *cycle_counter);

#ifndef __SYNTHESIS__
namespace dg {
// C-simulation only: the modelled cycle estimate of the last start (the C-sim has no clock,
// so its CYCLES reads 0; docs/hls.md "Cycle counts").
u64 csim_cycles_estimate();
}  // namespace dg
#endif

#endif  // DG_ENGINE_H
