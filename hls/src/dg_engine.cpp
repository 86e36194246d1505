// dg_engine.cpp - top function of the dgfpga engine (Vitis HLS): runs a network program
// (conv descriptors, gate records, a head record) in one start, each record checked
// completely before it writes anything.
//
// Per conv record: fetch + check the descriptor (dg_descriptor.h; a `from_gate` record
// first takes its counts from the last gate record: the effective descriptor of SPEC13),
// fetch + check the work list (dg_worklist.h), load the params, then a ping-pong pipeline
// over (m-group, active tile) steps: in step s the patch loader fills input buffer s&1 with
// the patch of step s, the MAC array computes step s-1 from the other input buffer into
// accumulator buffer (s-1)&1, and the write-back stores step s-2 from accumulator buffer
// s&1; the weights of m-group g are loaded into weight half g&1 in the step that loads g's
// first patch (while g-1 computes from the other half). Then the residual-only tiles.
// A gate record (dg_gate.h) evaluates the block's gates and writes its masks and work
// lists; the head record (dg_head.h) writes the logits and the per-record cycle log.
// See docs/hls.md.
#include "dg_engine.h"

#include "dg_descriptor.h"
#include "dg_gate.h"
#include "dg_head.h"
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

namespace dg {

inline void set_field(u32 w[desc::WORDS], desc::Field f, u32 v) {
#pragma HLS INLINE
    const u32 m = desc::mask(f) << f.lsb;
    w[f.word] = (w[f.word] & ~m) | ((v << f.lsb) & m);
}

// The effective descriptor of a from_gate conv record (program.effective_descriptor):
// patch the counts of the last gate into the words. Returns false when the layer is
// skipped (nothing read or written).
inline bool effective_descriptor(u32 w[desc::WORDS], const GateState &S) {
    const bool out_g = field(w, desc::out_ch_gated), in_g = field(w, desc::in_ch_gated);
    const bool residual = field(w, desc::residual), in_place = field(w, desc::in_place);
    const u32 N = field(w, desc::grid_h) * field(w, desc::grid_w);
    if (out_g && (S.nt == 0 || S.nc == 0)) return false;
    if (in_place && S.nt == 0) return false;
    set_field(w, desc::n_active_tiles, S.nt);
    if (out_g) set_field(w, desc::n_active_out, S.nc);
    if (in_g) set_field(w, desc::n_active_in, S.nc);
    if (residual && !in_place) {
        const u32 nr = N > S.nt ? N - S.nt : 0;
        set_field(w, desc::n_res_tiles, nr);
        if (nr == 0) set_field(w, desc::res_tile_list_offset, 0);
    }
    set_field(w, desc::from_gate, 0);
    return true;
}

}  // namespace dg

using namespace dg;

void dg_engine(const u64 *program, u32 layer_count, u8 *fmap_base, u32 fmap_bytes,
               const u8 *weight_base, u32 weight_bytes, u8 *work_base, u32 work_bytes,
               s32 *sums_base, u32 sums_bytes, u32 *status, u64 *cycles, u64 *engine_id,
               u32 run_flags) {
#pragma HLS INTERFACE mode = s_axilite port = return bundle = control
#pragma HLS INTERFACE mode = m_axi port = program offset = slave bundle = gmem_prog max_read_burst_length = 16 depth = 96 latency = 32
#pragma HLS INTERFACE mode = m_axi port = fmap_base offset = slave bundle = gmem_fmap max_read_burst_length = 64 max_write_burst_length = 64 depth = 65536 latency = 32
#pragma HLS INTERFACE mode = m_axi port = weight_base offset = slave bundle = gmem_w max_read_burst_length = 64 depth = 65536 latency = 32
#pragma HLS INTERFACE mode = m_axi port = work_base offset = slave bundle = gmem_work max_read_burst_length = 16 max_write_burst_length = 16 depth = 4096 latency = 32
#pragma HLS INTERFACE mode = m_axi port = sums_base offset = slave bundle = gmem_sums max_read_burst_length = 16 max_write_burst_length = 16 depth = 16384 latency = 32
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
#pragma HLS INTERFACE mode = s_axilite port = run_flags bundle = control
    static WorkList W;
#pragma HLS ARRAY_PARTITION variable = W.bitmap complete
    static u64 rec_cycles[MAX_LAYERS];   // per-record cycle log (written by the head)

    *engine_id = engine_id_value();
    u64 cyc = CYC_START;
    u32 st = err::OK;
    if (layer_count > MAX_LAYERS) {
        st = pack_status(err::BAD_COUNT, 0, 0);
        layer_count = 0;
    }
    const bool dense = run_flags & fmt::RUN_DENSE;
    const Regions R = {fmap_bytes, weight_bytes, work_bytes, sums_bytes};
    GateState gs = {false, 0, 0};
records:
    for (u32 li = 0; li < layer_count; li++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_LAYERS
        u32 words[desc::WORDS];
#pragma HLS ARRAY_PARTITION variable = words complete
        fetch_descriptor(program, li, words);
        u64 rc = CYC_AXI_LATENCY + desc::WORDS / 2 + CYC_LAYER;   // fetch + checks
        rec_cycles[li] = rc;
        const u32 op = field(words, desc::op);
        if (field(words, desc::magic) != fmt::DESC_MAGIC ||
            field(words, desc::version) != fmt::FORMAT_VERSION) {
            st = pack_status(err::BAD_MAGIC, li, 0);
            cyc += rc;
            break;
        }
        if (op == fmt::OP_GATE) {
            GateRec G;
            DescCheck gc = check_gate_record(words, G, R);
            if (!gc.code) gc = run_gate(weight_base, work_base, sums_base, G, dense, gs, rc);
            rec_cycles[li] = rc;
            cyc += rc;
            if (gc.code) {
                st = pack_status(gc.code, li, gc.entry);
                break;
            }
            continue;
        }
        if (op == fmt::OP_HEAD) {
            if (li + 1 != layer_count) {
                st = pack_status(err::BAD_OP, li, 0);
                cyc += rc;
                break;
            }
            HeadRec H;
            const DescCheck hc = check_head_record(words, H, R, layer_count);
            if (hc.code) {
                st = pack_status(hc.code, li, hc.entry);
                cyc += rc;
                break;
            }
            rc += run_head(weight_base, work_base, sums_base, H);
            rec_cycles[li] = rc;
            write_cycle_log(work_base, H, rec_cycles, layer_count);
            cyc += rc + layer_count;
            continue;
        }
        if (op != fmt::OP_CONV) {
            st = pack_status(err::BAD_OP, li, 0);
            cyc += rc;
            break;
        }
        // the descriptor as the program holds it (a from_gate template: its own rules)
        Layer L;
        DescCheck dc = check_descriptor(words, L, R);
        if (!dc.code && L.from_gate) {
            if (!gs.seen) {
                dc = {err::BAD_FLAGS, desc::from_gate.word};
            } else if (!effective_descriptor(words, gs)) {   // skipped: only its fetch
                cyc += rc;
                continue;
            } else {
                dc = check_descriptor(words, L, R);   // E, checked as any descriptor
            }
        }
        if (dc.code) {
            st = pack_status(dc.code, li, dc.entry);
            cyc += rc;
            break;
        }
        const ListCheck wc = fetch_work_list(work_base, L, W, rc);
        if (wc.code) {
            st = pack_status(wc.code, li, wc.entry);
            cyc += rc;
            break;
        }
        rc += run_layer(fmap_base, weight_base, sums_base, L, W);
        rec_cycles[li] = rc;
        cyc += rc;
    }
    *status = st;
    *cycles = cyc;
}
