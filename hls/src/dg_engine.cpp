// dg_engine.cpp - top function of the dgfpga engine (Vitis HLS): runs a program of layer
// descriptors, one layer at a time, each checked completely before it writes anything.
//
// Per layer: fetch + check the descriptor (dg_descriptor.h), fetch + check the work list
// (dg_worklist.h), load the params, then a ping-pong pipeline over (m-group, active tile)
// steps: in step s the patch loader fills input buffer s&1 with the patch of step s, the
// MAC array computes step s-1 from the other input buffer into accumulator buffer (s-1)&1,
// and the write-back stores step s-2 from accumulator buffer s&1; the weights of m-group g
// are loaded into weight half g&1 in the step that loads g's first patch (while g-1
// computes from the other half). Then the residual-only tiles. See docs/hls.md.
#include "dg_engine.h"

#include "dg_descriptor.h"
#include "dg_mac.h"
#include "dg_patch.h"
#include "dg_weights.h"
#include "dg_worklist.h"
#include "dg_writeback.h"

namespace dg {

static u64 max3(u64 a, u64 b, u64 c) {
    u64 m = a > b ? a : b;
    return m > c ? m : c;
}

// One ping-pong step. Buffers are passed explicitly (load_patch -> pin, mac: pcomp -> acomp,
// write-back: awb) so the three stages touch disjoint memories and can run concurrently.
static u64 pipeline_step(u8 *fmap, const u8 *wmem, s32 *sums, const Layer &L, const WorkList &W,
                         u32 s, u32 total, WeightBufs wbuf, PatchBuf pin, const PatchBuf pcomp,
                         AccBuf acomp, const AccBuf awb, const s32 bias[PARAM_ROWS][TM],
                         const s32 mult[PARAM_ROWS][TM]) {
    const u32 T = L.n_active_tiles;
    u64 c_load = 0, c_mac = 0, c_wb = 0;
    if (s < total) {   // load stage: step s
        const u32 g = s / T, t = s % T;
        if (t == 0) c_load += load_weight_group(wmem, L, W, g, wbuf, g & 1);
        c_load += load_patch(fmap, L, W, tile_geom(L, W.tiles[t]), pin);
    }
    if (s >= 1 && s - 1 < total) {   // MAC stage: step s-1
        const u32 g = (s - 1) / T, t = (s - 1) % T;
        c_mac = mac_tile(L, tile_geom(L, W.tiles[t]), wbuf, g & 1, pcomp, acomp);
    }
    if (s >= 2 && s - 2 < total) {   // write-back stage: step s-2
        const u32 g = (s - 2) / T, t = (s - 2) % T;
        const u32 tile_id = W.tiles[t];
        c_wb = writeback_tile(fmap, sums, L, W, tile_id, tile_geom(L, tile_id), g, awb, bias, mult);
    }
    return max3(c_load, c_mac, c_wb) + CYC_STEP;
}

static u64 run_layer(u8 *fmap, const u8 *wmem, s32 *sums, const Layer &L, const WorkList &W) {
    static WeightBufs wbuf;
#pragma HLS ARRAY_PARTITION variable = wbuf complete dim = 1
#pragma HLS ARRAY_PARTITION variable = wbuf complete dim = 2
#pragma HLS ARRAY_RESHAPE variable = wbuf complete dim = 3
#pragma HLS DEPENDENCE variable = wbuf inter false
    static PatchBuf patch0, patch1;
#pragma HLS ARRAY_PARTITION variable = patch0 complete dim = 1
#pragma HLS ARRAY_PARTITION variable = patch1 complete dim = 1
    static AccBuf acc0, acc1;
#pragma HLS ARRAY_PARTITION variable = acc0 complete dim = 1
#pragma HLS ARRAY_PARTITION variable = acc1 complete dim = 1
    static s32 bias[PARAM_ROWS][TM], mult[PARAM_ROWS][TM];
#pragma HLS ARRAY_PARTITION variable = bias complete dim = 2
#pragma HLS ARRAY_PARTITION variable = mult complete dim = 2

    u64 cycles = load_params(wmem, L, W, bias, mult);
    const u32 T = L.n_active_tiles;
    if (T > 0 && L.n_active_out > 0) {
        const u32 total = ceil_div(L.n_active_out, TM) * T;
    steps:
        for (u32 s = 0; s < total + 2; s++) {
#pragma HLS LOOP_TRIPCOUNT min = 3 max = TC_STEPS
            if (s & 1)
                cycles += pipeline_step(fmap, wmem, sums, L, W, s, total, wbuf, patch1, patch0, acc0,
                                        acc1, bias, mult);
            else
                cycles += pipeline_step(fmap, wmem, sums, L, W, s, total, wbuf, patch0, patch1, acc1,
                                        acc0, bias, mult);
        }
    }
res_tiles:
    for (u32 i = 0; i < L.n_res_tiles; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = MAX_TILES
        cycles += residual_tile(fmap, sums, L, W, W.res_tiles[i]) + CYC_STEP;
    }
    return cycles;
}

}  // namespace dg

using namespace dg;

void dg_engine(const u64 *program, u32 layer_count, u8 *fmap_base, u32 fmap_bytes,
               const u8 *weight_base, u32 weight_bytes, const u8 *work_base, u32 work_bytes,
               s32 *sums_base, u32 sums_bytes, u32 *status, u64 *cycles, u64 *engine_id) {
#pragma HLS INTERFACE mode = s_axilite port = return bundle = control
#pragma HLS INTERFACE mode = m_axi port = program offset = slave bundle = gmem_prog max_read_burst_length = 16 depth = 96 latency = 32
#pragma HLS INTERFACE mode = m_axi port = fmap_base offset = slave bundle = gmem_fmap max_read_burst_length = 64 max_write_burst_length = 64 depth = 65536 latency = 32
#pragma HLS INTERFACE mode = m_axi port = weight_base offset = slave bundle = gmem_w max_read_burst_length = 64 depth = 65536 latency = 32
#pragma HLS INTERFACE mode = m_axi port = work_base offset = slave bundle = gmem_work max_read_burst_length = 16 depth = 4096 latency = 32
#pragma HLS INTERFACE mode = m_axi port = sums_base offset = slave bundle = gmem_sums max_write_burst_length = 16 depth = 16384 latency = 32
#pragma HLS INTERFACE mode = s_axilite port = program bundle = control
#pragma HLS INTERFACE mode = s_axilite port = layer_count bundle = control
#pragma HLS INTERFACE mode = s_axilite port = fmap_base bundle = control
#pragma HLS INTERFACE mode = s_axilite port = fmap_bytes bundle = control
#pragma HLS INTERFACE mode = s_axilite port = weight_base bundle = control
#pragma HLS INTERFACE mode = s_axilite port = weight_bytes bundle = control
#pragma HLS INTERFACE mode = s_axilite port = work_base bundle = control
#pragma HLS INTERFACE mode = s_axilite port = work_bytes bundle = control
#pragma HLS INTERFACE mode = s_axilite port = sums_base bundle = control
#pragma HLS INTERFACE mode = s_axilite port = sums_bytes bundle = control
#pragma HLS INTERFACE mode = s_axilite port = status bundle = control
#pragma HLS INTERFACE mode = s_axilite port = cycles bundle = control
#pragma HLS INTERFACE mode = s_axilite port = engine_id bundle = control
    static WorkList W;
#pragma HLS ARRAY_PARTITION variable = W.bitmap complete

    *engine_id = engine_id_value();
    u64 cyc = CYC_START;
    u32 st = err::OK;
    if (layer_count > MAX_LAYERS) {
        st = pack_status(err::BAD_COUNT, 0, 0);
        layer_count = 0;
    }
    const Regions R = {fmap_bytes, weight_bytes, work_bytes, sums_bytes};
layers:
    for (u32 li = 0; li < layer_count; li++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_LAYERS
        u32 words[desc::WORDS];
#pragma HLS ARRAY_PARTITION variable = words complete
        fetch_descriptor(program, li, words);
        cyc += CYC_AXI_LATENCY + desc::WORDS / 2 + CYC_LAYER;
        Layer L;
        const DescCheck dc = check_descriptor(words, L, R);
        if (dc.code) {
            st = pack_status(dc.code, li, dc.entry);
            break;
        }
        const ListCheck wc = fetch_work_list(work_base, L, W, cyc);
        if (wc.code) {
            st = pack_status(wc.code, li, wc.entry);
            break;
        }
        cyc += run_layer(fmap_base, weight_base, sums_base, L, W);
    }
    *status = st;
    *cycles = cyc;
}
