// dg_engine.cpp - top function of the dgfpga engine (Vitis HLS): runs a network program
// (conv descriptors, gate records, a head record) in one start, each record checked
// completely before it writes anything.
//
// Per conv record: fetch + check the descriptor (dg_descriptor.h; a `from_gate` record
// first takes its counts from the last gate record: the effective descriptor of SPEC13),
// fetch + check the work list (dg_worklist.h), load the params, then a ping-pong pipeline
// over (m-group, batch of active tiles) steps (conv_batch: B tiles per step, 1 under the
// max-pool or im2col), one call site per stage: in step s the patch loader fills input
// buffer patch[s&1] with the patches of step s, the MAC array computes step s-1 from
// patch[(s-1)&1] into acc[(s-1)&1], and the write-back stores step s-2 from acc[s&1]; the
// weights of m-group g are loaded into weight half g&1 in the step that loads g's first
// batch (while g-1 computes from the other half). Then the residual-only tiles.
// A depthwise record (op OP_DWCONV) runs the same three-stage pipeline in the other loop
// order, tiles -> batches of m-groups: its whole weight rows are loaded once before the
// steps (load_dw_weights); step s = t*NB + b covers batch b of tile t (B consecutive
// m-groups, dw_batch: every m-group of the tile reads the tile's one dw patch, so the MAC
// array and the write-back run a batch in one flattened loop each, one pipeline fill per
// batch); tile u's dw patch goes into dw patch half u&1 (tile 0 at step 0, tile u > 0 in NB
// row slices beside tile u-1's batches), the same MAC array (mac_array_tile, in depthwise
// mode) computes step s-1, the same write-back stores step s-2.
// A gate record (dg_gate.h) evaluates the block's gates and writes its masks and work
// lists; a gate-2 record (a Bottleneck block's mask_c2, same gate unit) writes mask_c2 and
// the conv2/conv3 channel lists; the head record (dg_head.h) writes the logits and the
// per-record cycle log.
// CYCLES is measured: a free-running counter outside the engine (input cycle_counter).
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

// m-groups per depthwise step (DW_BATCH, dg_types.h): as many of the G m-groups as the
// accumulator half holds for the largest tile (tile x tile pixels; ACC_DEPTH >= that by the
// static_assert on MAX_CONV_SIDE), at most DW_BATCH. Once per layer (a compare loop, no
// divider).
static u32 dw_batch(const Layer &L) {
    const u32 px = L.tile * L.tile;
    u32 b = 1;
dw_batch_size:
    for (u32 i = 2; i <= DW_BATCH; i++) {
#pragma HLS PIPELINE II = 1
        if (i <= L.n_groups && i * px <= ACC_DEPTH && (i - 1) * px < DW_BATCH_PIXELS) b = i;
    }
    return b;
}

// Tiles per conv step (CONV_BATCH, dg_types.h): 1 under the fused max-pool or im2col;
// else as many of the T active tiles as one patch half holds full patches of (rounded up
// to whole bank rows) and one accumulator half the pixels of, and no more than needed for
// CONV_BATCH_CYCLES of per-tile work (the larger of the MAC steps and the requant cycles
// of a full tile). Once per layer (a compare loop, no divider).
static u32 conv_batch(const Layer &L) {
    if (L.maxpool || L.im2col) return 1;
    const u32 side = (L.tile - 1) * L.stride + L.k;                 // a full tile's patch
    const u32 pbytes = ceil_div(side * side * L.in_c_stored, TN) * TN;
    const u32 px = L.tile * L.tile;
    const u32 work = px * (L.steps > REQUANT_STEPS ? L.steps : REQUANT_STEPS);
    u32 b = 1;
conv_batch_size:
    for (u32 i = 2; i <= CONV_BATCH; i++) {
#pragma HLS PIPELINE II = 1
        if (i <= L.n_active_tiles && i * pbytes <= IFM_HALF_BYTES && i * px <= ACC_DEPTH &&
            (i - 1) * work < CONV_BATCH_CYCLES)
            b = i;
    }
    return b;
}

// (first m-group g, m-groups nb, first tile t, tiles nt) of step s: m-groups outer (conv:
// NB = ceil(T / B) batches of B tiles per m-group, nb = 1), or tiles outer (depthwise: NB =
// ceil(G / B) batches of B m-groups per tile, nt = 1); a batch's last one shorter.
static void step_indices(const Layer &L, u32 B, u32 NB, u32 s, u32 &g, u32 &nb, u32 &t,
                         u32 &nt) {
#pragma HLS INLINE
    const u32 T = L.n_active_tiles, G = L.n_groups;
    if (L.depthwise) {
        t = s / NB;
        g = (s % NB) * B;
        nb = G - g < B ? G - g : B;
        nt = 1;
    } else {
        g = s / NB;
        t = (s % NB) * B;
        nt = T - t < B ? T - t : B;
        nb = 1;
    }
}

// The geometry of a step's nt tiles (from active tile t), each patch at whole bank rows
// after the previous one in the patch half. II=1 per tile; returns its cycles (a batch:
// nt + the pipeline's fill; a single tile's geometry is formed at the stage start, as ever).
static u64 tile_batch(const Layer &L, const WorkList &W, u32 t, u32 nt, TileBatch &TB) {
#pragma HLS INLINE off
    u32 base = 0, conv_px = 0, out_px = 0;
batch_tiles:
    for (u32 i = 0; i < nt; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = CONV_BATCH
#pragma HLS PIPELINE II = 1
        const u32 id = W.tiles[t + i];
        const TileGeom g = tile_geom(L, id);
        TB.g[i] = g;
        TB.id[i] = id;
        TB.base[i] = base;
        base += ceil_div((u32)(g.sh * g.sw) * L.in_c_stored, TN) * TN;
        conv_px += (u32)(g.ch * g.cw);
        out_px += (u32)(g.th * g.tw);
    }
    TB.n = nt;
    TB.conv_px = conv_px;
    TB.out_px = out_px;
    return nt > 1 ? nt + CYC_PIPE : 0;
}


// One ping-pong step s, the only call site of the three stages (one hardware instance of
// each): h = s & 1. The load stage fills patch[h] (and weight half g&1 at an m-group's first
// tile), the MAC stage computes step s-1 from patch[h^1] into acc[h^1], the write-back
// stores step s-2 from acc[h]. The stages touch disjoint halves (the weight half being
// loaded belongs to m-group g while step s-1 computes from g-1's), which is what the
// DEPENDENCE pragmas of the step loop state (the step is inlined into that loop's body; the
// stages are INLINE off, so each is one instance), so they can run concurrently.
// Returns the C-sim's cycle estimate of the step (the slowest stage + sync).
static u64 pipeline_step(u8 *fmap, const u8 *wmem, s32 *sums, const Layer &L, const WorkList &W,
                         u32 s, u32 total, u32 B, u32 NB, TileBatch tb[3], WeightBufs wbuf,
                         PatchBuf patch[2],
                         DwPatchBuf dwpatch[2], AccBuf acc[2],
                         const s32 bias[PARAM_ROWS][TM], const s32 mult[PARAM_ROWS][TM]) {
#pragma HLS INLINE
    const u32 h = s & 1;
    u64 c_load = 0, c_mac = 0, c_wb = 0;
    u32 g = 0, nb = 1, t = 0, nt = 1;
    if (s < total) {   // load stage: step s; its tiles' geometry into tb[s % 3] for the
                       // MAC stage (step s+1) and the write-back (step s+2)
        step_indices(L, B, NB, s, g, nb, t, nt);
        c_load += tile_batch(L, W, t, nt, tb[s % 3]);
        if (L.depthwise) {   // one patch per tile, for all its batches: tile 0 at step 0,
                             // tile u > 0 in NB row slices during the NB steps after tile
                             // u-1's first (beside all of u-1's batches; half u&1's last
                             // reader, tile u-2's last batch, computed in step (u-1)*NB)
            // (one call site: one loader instance)
            const u32 u = s == 0 ? 0 : (s - 1) / NB + 1, sl = s == 0 ? 0 : (s - 1) % NB;
            const u32 parts = s == 0 ? 1 : NB;       // tile 0: the whole patch in step 0
            if (u < L.n_active_tiles) {
                const TileGeom gu = tile_geom(L, W.tiles[u]);   // (the next tile's patch)
                c_load += load_dw_patch(fmap, L, W, gu, dwpatch, u & 1, sl * (u32)gu.sh / parts,
                                        (sl + 1) * (u32)gu.sh / parts);
            }
        } else {
            if (t == 0) c_load += load_weight_group(wmem, L, W, g, wbuf, g & 1);
            c_load += load_patches(fmap, L, W, tb[s % 3], patch, h);
        }
    }
    if (s >= 1 && s - 1 < total) {   // MAC stage: step s-1
        step_indices(L, B, NB, s - 1, g, nb, t, nt);
        // one call: one MAC array for both ops (dg_mac.h); depthwise reads the tile's dw half
        // and weight half 0 (a batch of nb m-groups), a conv the step's patch half and its
        // m-group's weight half
        c_mac = mac_array_tile(L, tb[(s - 1) % 3], wbuf, L.depthwise ? 0 : g & 1, patch, dwpatch,
                               L.depthwise ? t & 1 : h ^ 1, g, nb, acc, h ^ 1);
    }
    if (s >= 2 && s - 2 < total) {   // write-back stage: step s-2
        step_indices(L, B, NB, s - 2, g, nb, t, nt);
        c_wb = writeback_tile(fmap, sums, L, W, tb[(s - 2) % 3], g, nb, acc, h, bias, mult);
    }
    return max3(c_load, c_mac, c_wb) + CYC_STEP;
}

// One conv layer after its checks; returns the C-sim's cycle estimate.
static u64 run_layer(u8 *fmap, const u8 *wmem, s32 *sums, const Layer &L, const WorkList &W) {
    // ping-pong pairs: weight halves by m-group parity, patches and accumulators by step
    // parity; banks (weight lanes x input lanes, patch banks, accumulator lanes) partitioned
    static WeightBufs wbuf;
#pragma HLS ARRAY_PARTITION variable = wbuf complete dim = 1
#pragma HLS ARRAY_PARTITION variable = wbuf complete dim = 2
#pragma HLS ARRAY_RESHAPE variable = wbuf complete dim = 3
    static PatchBuf patch[2];
#pragma HLS ARRAY_PARTITION variable = patch complete dim = 1
#pragma HLS ARRAY_PARTITION variable = patch complete dim = 2
    static AccBuf acc[2];
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 1
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 2
    // depthwise patches: halves by tile parity, 9 banks x TM lanes (dg_patch.h)
    static DwPatchBuf dwpatch[2];
#pragma HLS ARRAY_PARTITION variable = dwpatch complete dim = 1
#pragma HLS ARRAY_PARTITION variable = dwpatch complete dim = 2
#pragma HLS ARRAY_PARTITION variable = dwpatch complete dim = 3
#pragma HLS ARRAY_PARTITION variable = dwpatch complete dim = 4
    static s32 bias[PARAM_ROWS][TM], mult[PARAM_ROWS][TM];
    // the tiles of the steps in flight: load (s), MAC (s-1), write-back (s-2)
    static TileBatch tb[3];
#pragma HLS ARRAY_PARTITION variable = tb complete dim = 1
#pragma HLS ARRAY_PARTITION variable = bias complete dim = 2
#pragma HLS ARRAY_PARTITION variable = mult complete dim = 2

    u64 cycles = load_params(wmem, L, W, bias, mult);
    const u32 T = L.n_active_tiles;
    if (T > 0 && L.n_active_out > 0) {
        // depthwise: the whole layer's weight rows, once (half 0; no m-group ping-pong)
        if (L.depthwise) cycles += load_dw_weights(wmem, L, W, wbuf);
        // depthwise: NB batches of B m-groups per tile (dw_batch); conv: one m-group per step
        // conv: NB batches of B tiles per m-group (conv_batch)
        // (the T tiles split evenly: B = ceil(T / NB), so the batches of a step pipeline are
        // alike and its stages stay aligned)
        const u32 Bc = L.depthwise ? 1 : conv_batch(L);
        const u32 NB = L.depthwise ? ceil_div(L.n_groups, dw_batch(L)) : ceil_div(T, Bc);
        const u32 B = L.depthwise ? dw_batch(L) : ceil_div(T, NB);
        cycles += L.depthwise ? DW_BATCH - 1 : (L.maxpool || L.im2col ? 0 : CONV_BATCH - 1);
        const u32 total = L.depthwise ? NB * T : L.n_groups * NB;
    steps:
        for (u32 s = 0; s < total + 2; s++) {
#pragma HLS LOOP_TRIPCOUNT min = 3 max = TC_STEPS
            // Within a step the three stages use disjoint halves (see pipeline_step); from
            // one step to the next the roles swap, and step s+1 starts after step s ends.
#pragma HLS DEPENDENCE variable = patch intra false
#pragma HLS DEPENDENCE variable = acc intra false
#pragma HLS DEPENDENCE variable = wbuf intra false
#pragma HLS DEPENDENCE variable = dwpatch intra false
#pragma HLS DEPENDENCE variable = tb intra false
            cycles += pipeline_step(fmap, wmem, sums, L, W, s, total, B, NB, tb, wbuf, patch,
                                    dwpatch, acc, bias, mult);
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
// After a gate-2 record (S.has_nc2) the counts follow the gate whose channels index each
// side: an out-channel-gated layer (conv2) outputs nc2 channels and reads nc (conv1's
// compact output); a layer gated on its input only (conv3) reads nc2.
inline bool effective_descriptor(u32 w[desc::WORDS], const GateState &S) {
    const bool out_g = field(w, desc::out_ch_gated), in_g = field(w, desc::in_ch_gated);
    const bool residual = field(w, desc::residual), in_place = field(w, desc::in_place);
    const u32 N = field(w, desc::grid_h) * field(w, desc::grid_w);
    const u32 n_out = S.has_nc2 ? S.nc2 : S.nc;
    const u32 n_in = (S.has_nc2 && !out_g) ? S.nc2 : S.nc;
    if (out_g && (S.nt == 0 || n_out == 0)) return false;
    if (in_place && S.nt == 0) return false;
    set_field(w, desc::n_active_tiles, S.nt);
    if (out_g) set_field(w, desc::n_active_out, n_out);
    if (in_g) set_field(w, desc::n_active_in, n_in);
    if (residual && !in_place) {
        const u32 nr = N > S.nt ? N - S.nt : 0;
        set_field(w, desc::n_res_tiles, nr);
        if (nr == 0) set_field(w, desc::res_tile_list_offset, 0);
    }
    set_field(w, desc::from_gate, 0);
    return true;
}

}  // namespace dg

namespace dg {

// CYCLES: a free-running cycle counter outside the engine (the block design's
// `cycle_counter` core on the engine clock, build_bd.tcl) drives the ap_none input
// `cycle_counter`. Each read is its own fixed protocol region, so Vitis HLS keeps it in
// program order with everything before and after it: CYCLES = the reading after the last
// record minus the reading at the start. The C-sim has no clock (the bridge's counter
// stands still): CYCLES is 0 there, and the C-sim's modelled estimate (the sum of the
// stages' pipelined iterations, docs/hls.md) is kept apart (csim_cycles_estimate).
static u64 clock_now(volatile const u64 *cycle_counter) {
#pragma HLS INLINE off
#pragma HLS PROTOCOL mode = fixed
    return *cycle_counter;
}

// The cycle log's entry for a record: measured in hardware; the C-sim logs its estimate.
static u64 logged_cycles(u64 measured, u64 estimate) {
#ifdef __SYNTHESIS__
    (void)estimate;
    return measured;
#else
    (void)measured;
    return estimate;
#endif
}

#ifndef __SYNTHESIS__
static u64 last_estimate = 0;   // the C-sim's estimate of the last start
u64 csim_cycles_estimate() { return last_estimate; }
#endif

}  // namespace dg

using namespace dg;

void dg_engine(const u64 *program, u32 layer_count, u8 *fmap_base, u32 fmap_bytes,
               const u8 *weight_base, u32 weight_bytes, u8 *work_base, u32 work_bytes,
               s32 *sums_base, u32 sums_bytes, u32 *status, u64 *cycles, u64 *engine_id,
               u32 run_flags, volatile const u64 *cycle_counter) {
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
#pragma HLS INTERFACE mode = ap_none port = cycle_counter
    static WorkList W;
#pragma HLS ARRAY_PARTITION variable = W.bitmap complete
#pragma HLS ARRAY_PARTITION variable = W.out_ch cyclic factor = TM
    static u64 rec_cycles[MAX_LAYERS];   // per-record cycle log (written by the head)

    const u64 t_start = clock_now(cycle_counter);
    *engine_id = engine_id_value();
    u64 est = CYC_START;   // the C-sim's estimate (dead code in synthesis)
    u32 st = err::OK;
    if (layer_count > MAX_LAYERS) {
        st = pack_status(err::BAD_COUNT, 0, 0);
        layer_count = 0;
    }
    const bool dense = run_flags & fmt::RUN_DENSE;
    const Regions R = {fmap_bytes, weight_bytes, work_bytes, sums_bytes};
    GateState gs = {false, 0, 0, false, 0};
records:
    for (u32 li = 0; li < layer_count; li++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_LAYERS
        const u64 t_rec = clock_now(cycle_counter);
        u32 words[desc::WORDS];
#pragma HLS ARRAY_PARTITION variable = words complete
        fetch_descriptor(program, li, words);
        u64 rc = CYC_AXI_LATENCY + desc::WORDS / 2 + CYC_LAYER;   // fetch + checks
        const u32 op = field(words, desc::op);
        if (field(words, desc::magic) != fmt::DESC_MAGIC ||
            field(words, desc::version) != fmt::FORMAT_VERSION) {
            st = pack_status(err::BAD_MAGIC, li, 0);
            est += rc;
            break;
        }
        if (op == fmt::OP_GATE || op == fmt::OP_GATE2) {
            // the gate unit: a gate record, or a Bottleneck block's gate-2 record (only after
            // a gate record of this start: it reads that record's masks)
            const bool second = op == fmt::OP_GATE2;
            GateRec G;
            Gate2Rec G2;
            DescCheck gc = {err::OK, 0};
            if (second && !gs.seen) gc = {err::BAD_OP, 0};
            else if (second) gc = check_gate2_record(words, G2, R);
            else gc = check_gate_record(words, G, R);
            if (!gc.code)
                gc = run_gate_unit(second, weight_base, work_base, sums_base, G, G2, dense, gs, rc);
            est += rc;
            if (gc.code) {
                st = pack_status(gc.code, li, gc.entry);
                break;
            }
            rec_cycles[li] = logged_cycles(clock_now(cycle_counter) - t_rec, rc);
            continue;
        }
        if (op == fmt::OP_HEAD) {
            if (li + 1 != layer_count) {
                st = pack_status(err::BAD_OP, li, 0);
                est += rc;
                break;
            }
            HeadRec H;
            const DescCheck hc = check_head_record(words, H, R, layer_count);
            if (hc.code) {
                st = pack_status(hc.code, li, hc.entry);
                est += rc;
                break;
            }
            rc += run_head(weight_base, work_base, sums_base, H);
            rec_cycles[li] = logged_cycles(clock_now(cycle_counter) - t_rec, rc);
            write_cycle_log(work_base, H, rec_cycles, layer_count);
            est += rc + layer_count;
            continue;
        }
        if (op != fmt::OP_CONV && op != fmt::OP_DWCONV) {
            st = pack_status(err::BAD_OP, li, 0);
            est += rc;
            break;
        }
        // the descriptor as the program holds it (a from_gate template: its own rules)
        Layer L;
        DescCheck dc = check_descriptor(words, L, R);
        if (!dc.code && L.from_gate) {
            if (!gs.seen) {
                dc = {err::BAD_FLAGS, desc::from_gate.word};
            } else if (!effective_descriptor(words, gs)) {   // skipped: only its fetch
                est += rc;
                rec_cycles[li] = logged_cycles(clock_now(cycle_counter) - t_rec, rc);
                continue;
            } else {
                dc = check_descriptor(words, L, R);   // E, checked as any descriptor
            }
        }
        if (dc.code) {
            st = pack_status(dc.code, li, dc.entry);
            est += rc;
            break;
        }
        const ListCheck wc = fetch_work_list(work_base, L, W, rc);
        if (wc.code) {
            st = pack_status(wc.code, li, wc.entry);
            est += rc;
            break;
        }
        rc += run_layer(fmap_base, weight_base, sums_base, L, W);
        est += rc;
        rec_cycles[li] = logged_cycles(clock_now(cycle_counter) - t_rec, rc);
    }
    *status = st;
    *cycles = clock_now(cycle_counter) - t_start;
#ifndef __SYNTHESIS__
    last_estimate = est;
#endif
}
