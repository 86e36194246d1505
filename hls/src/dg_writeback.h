// dg_writeback.h - requantize, add the residual, clamp (ReLU), max-pool, store, channel sums.
//
// Per output pixel and lane m (REQUANT_LANES lanes per cycle, pipelined):
//   y = clamp((( acc + bias[m]) * mult[m] + res * res_mult + 2^(shift-1)) >> shift, lo, hi)
// with lo..hi = 0..255 (u8 output: the ReLU) or -128..127 (s8). Under the fused 3x3/s2/pad1
// max-pool, y is the max of the requantized conv outputs of the window (positions outside
// the conv output are skipped, i.e. -inf padding). The lane writes byte m of the group's
// TM-byte slice of the output pixel: channel position group*TM + m of the stored output
// (compact when out_ch_gated); the residual is read at the channel id (the residual map
// has all out_c channels). Channel sums of the written tile go to SUMS [tile][C_stored];
// with pixel_sums each output pixel's values go to SUMS [pixel][C_stored] as int32 instead
// (docs/formats.md: pooling bins that are not unions of tiles), REQUANT_LANES per cycle as
// they are requantized (one AXI beat of sums per step on ultra96: 4 x int32 = 128 bits).
// Residual-only tiles: acc = 0 and no bias, y = clamp(requant(res)).
#ifndef DG_WRITEBACK_H
#define DG_WRITEBACK_H

#include "dg_mac.h"

namespace dg {

inline int out_lo(const Layer &L) { return L.out_signed ? -128 : 0; }
inline int out_hi(const Layer &L) { return L.out_signed ? 127 : 255; }

// Residual byte of channel oc at the pixel whose residual bytes start at FMAP byte `pix`.
inline int read_res(const u8 *fmap, const Layer &L, u32 pix, u32 oc) {
#pragma HLS INLINE
    const u8 b = fmap[pix + oc];
    return L.res_signed ? (int)(s8)b : (int)b;
}

inline void store_sums(s32 *sums, const Layer &L, u32 tile_id, u32 group, const s32 acc_sum[TM]) {
#pragma HLS INLINE
    if (!L.emit_sums || L.pixel_sums) return;   // pixel sums are stored per pixel
    const u32 base = L.sums_offset / 4 + tile_id * L.out_c_stored + group * TM;
sums_store:
    for (u32 m = 0; m < TM; m++) {
#pragma HLS PIPELINE II = 1
        if (group * TM + m < L.n_active_out) sums[base + m] = acc_sum[m];
    }
}

// The channel sums of a batch, one int32 per cycle (item i's sums in gsum[i]): depthwise,
// nb consecutive m-groups (first `group`) of one tile: compact positions group*TM ..
// (group+nb)*TM-1 of tile B.id[0], one contiguous run of SUMS words; conv, m-group `group`
// of nb tiles B.id[i]: TM words per tile.
inline void store_batch_sums(s32 *sums, const Layer &L, const TileBatch &B, u32 group, u32 nb,
                             const s32 gsum[CONV_BATCH][TM]) {
#pragma HLS INLINE
    if (!L.emit_sums || L.pixel_sums) return;   // pixel sums are stored per pixel
    const u32 sbase = L.sums_offset / 4;
batch_sums_store:
    for (u32 it = 0, i = 0, m = 0; it < nb * TM; it++) {
#pragma HLS LOOP_TRIPCOUNT min = TM max = CONV_BATCH * TM
#pragma HLS PIPELINE II = 1
        const u32 gg = L.depthwise ? group + i : group;
        const u32 tid = L.depthwise ? B.id[0] : B.id[i];
        if (gg * TM + m < L.n_active_out) sums[sbase + tid * L.out_c_stored + gg * TM + m] = gsum[i][m];
        if (++m == TM) {
            m = 0;
            i++;
        }
    }
}

// Write-back of one (m-group, tile) from accumulator buffer acc[h], or (depthwise, ngroups >
// 1) of a batch of ngroups consecutive m-groups of the tile (dg_mac.h: m-group i's
// accumulators at words i*npix ..). Loop: [m-group of the batch x] output pixel x window
// position (9 under the max-pool) x lane step (REQUANT_LANES lanes per cycle), flattened and
// pipelined at II=1 (one fill/drain per batch); the pixel's TM bytes are stored after its
// last step, a batch's channel sums after the loop (TM per m-group). No run-time lane
// index: at a window position's first step the TM lanes' accumulator (one read per lane
// bank), bias, mult and channel id are loaded into lane registers that shift down by
// REQUANT_LANES per step, so the requantizers always take lanes 0..REQUANT_LANES-1; the
// running maxima rotate by REQUANT_LANES per step (back in lane order after a window
// position). Returns its iterations (the C-sim's estimate).
// A conv batch of tiles (B.n > 1): tile after tile in the same loop, tile i's accumulators
// after the previous tiles' pixels (dg_mac.h), its channel sums at its own tile row.
inline u64 writeback_tile(u8 *fmap, s32 *sums, const Layer &L, const WorkList &W,
                          const TileBatch &B, u32 group, u32 ngroups, const AccBuf acc[2], u32 h,
                          const s32 bias[PARAM_ROWS][TM], const s32 mult[PARAM_ROWS][TM]) {
#pragma HLS INLINE off
    const int lo = out_lo(L), hi = out_hi(L);
    const u32 wpos = L.maxpool ? 9 : 1;   // window positions per output pixel
    const bool dw = L.depthwise;
    const u32 nitems = dw ? (ngroups > 1 ? ngroups : 1) : B.n;   // m-groups or tiles
    TileGeom g = B.g[0];                  // the current tile
    u32 grp = group;                      // the batch's current m-group
    u32 gi = 0;                           // ... its index in the batch
    u32 gbase = group * TM;               // compact position of its lane 0
    u32 abase = 0;                        // its first accumulator word (gi * conv pixels)
    u32 acc_px = (u32)(g.ch * g.cw);     // accumulator words of the current item
    s32 tsum[TM];
#pragma HLS ARRAY_PARTITION variable = tsum complete
    s32 gsum[CONV_BATCH][TM];   // the batch's channel sums, stored after the loop
#pragma HLS ARRAY_PARTITION variable = gsum complete dim = 2
    int best[TM];
#pragma HLS ARRAY_PARTITION variable = best complete
    s64 ab[TM];   // acc + bias of the lanes still to requantize (shift register)
#pragma HLS ARRAY_PARTITION variable = ab complete
    s32 mv[TM];   // their multipliers
#pragma HLS ARRAY_PARTITION variable = mv complete
    u32 cid[TM];  // their channel ids (the residual's channel)
#pragma HLS ARRAY_PARTITION variable = cid complete
    bool on[TM];  // lane holds an active output channel
#pragma HLS ARRAY_PARTITION variable = on complete
    for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
        tsum[m] = 0;
        best[m] = lo;
        ab[m] = 0;
        mv[m] = 0;
        cid[m] = 0;
        on[m] = false;
    }
    u32 py = 0, px = 0, wi = 0, wy = 0, wx = 0, ls = 0;
    const u32 npix = (u32)(g.th * g.tw);
    u32 oy = (u32)g.oy0, ox = (u32)g.ox0;
    u32 dst0 = L.out_offset + (oy * L.out_w + ox) * L.out_c_stored;   // tile's first pixel
    u32 dst_row = dst0 + gbase;
    u32 dst = dst_row;                              // the pixel's TM-byte slice
    const u32 dst_px = L.out_c_stored;              // next pixel of a row
    const u32 dst_py = L.out_w * L.out_c_stored;    // next row
    u32 res0 = L.res_offset + (oy * L.out_w + ox) * L.out_c;
    const u32 iters = (dw ? nitems * npix : B.out_px) * wpos * REQUANT_STEPS;
    u32 res_row = res0;                             // the residual pixel
    u32 res_pix = res_row;                          // (all out_c channels, by channel id)
pixels:
    for (u32 it = 0; it < iters; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_TILE * MAX_TILE * 9 * REQUANT_STEPS
#pragma HLS PIPELINE II = 1
        // conv pixel of this window position (the pixel itself without a max-pool)
        int cy = (int)oy, cx = (int)ox;
        if (L.maxpool) {
            cy = 2 * (int)oy - 1 + (int)wy;
            cx = 2 * (int)ox - 1 + (int)wx;
        }
        const bool inside = cy >= 0 && cy < (int)L.conv_h && cx >= 0 && cx < (int)L.conv_w;
        if (ls == 0) {   // a window position's first step: load the lane registers
            const u32 a = abase + (inside ? (u32)((cy - g.cy0) * g.cw + (cx - g.cx0)) : 0);
            for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
                on[m] = gbase + m < L.n_active_out;
                ab[m] = (s64)acc[h][m][a] + bias[grp][m];
                mv[m] = mult[grp][m];
                cid[m] = on[m] ? W.out_ch[gbase + m] : 0;
            }
        }
        int v[REQUANT_LANES];
#pragma HLS ARRAY_PARTITION variable = v complete
        for (u32 r = 0; r < REQUANT_LANES; r++) {
#pragma HLS UNROLL
            const int res = (L.residual && on[r]) ? read_res(fmap, L, res_pix, cid[r]) : 0;
            v[r] = requant(ab[r], mv[r], res, L.res_mult, L.shift, lo, hi);
        }
        // lanes 0..RL-1 done: their maxima updated and rotated to the top, the rest shifts
        // down (after REQUANT_STEPS steps every register is back at its lane)
        int nb[TM];
#pragma HLS ARRAY_PARTITION variable = nb complete
        for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
            if (m + REQUANT_LANES < TM) {
                nb[m] = best[m + REQUANT_LANES];
            } else {
                const u32 r = m + REQUANT_LANES - TM;
                nb[m] = (inside && v[r] > best[r]) ? v[r] : best[r];
            }
        }
        // pixel sums: lanes ls*RL .. ls*RL+RL-1 are final at the last window position
        if (L.emit_sums && L.pixel_sums && wi + 1 == wpos) {
            const u32 srow = L.sums_offset / 4 + (dst - L.out_offset) + ls * REQUANT_LANES;
            for (u32 r = 0; r < REQUANT_LANES; r++) {
#pragma HLS UNROLL
                if (on[r]) sums[srow + r] = nb[TM - REQUANT_LANES + r];
            }
        }
        for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
            best[m] = nb[m];
            if (m + REQUANT_LANES < TM) {
                ab[m] = ab[m + REQUANT_LANES];
                mv[m] = mv[m + REQUANT_LANES];
                cid[m] = cid[m + REQUANT_LANES];
                on[m] = on[m + REQUANT_LANES];
            }
        }
        if (ls + 1 < REQUANT_STEPS) {
            ls++;
        } else if (wi + 1 < wpos) {
            ls = 0;
            wi++;
            if (++wx == 3) { wx = 0; wy++; }
        } else {   // last step of the pixel: store its TM-byte slice (lanes in order)
            for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
                if (gbase + m < L.n_active_out) {
                    fmap[dst + m] = (u8)best[m];
                    tsum[m] += best[m];
                }
                best[m] = lo;
            }
            ls = 0;
            wi = 0;
            wy = 0;
            wx = 0;
            ox++;
            dst += dst_px;
            res_pix += L.out_c;
            if (++px == (u32)g.tw) {
                px = 0;
                py++;
                ox = (u32)g.ox0;
                oy++;
                dst_row += dst_py;
                dst = dst_row;
                res_row += L.out_w * L.out_c;
                res_pix = res_row;
                if (py == (u32)g.th) {   // the item's last pixel: the batch's next item
                    for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
                        gsum[gi][m] = tsum[m];
                        tsum[m] = 0;
                    }
                    gi++;
                    abase += acc_px;
                    if (dw) {        // depthwise: the next m-group of the same tile
                        grp++;
                        gbase += TM;
                    } else if (gi < nitems) {   // conv: the next tile of the batch
                        g = B.g[gi];
                        acc_px = (u32)(g.ch * g.cw);
                        dst0 = L.out_offset + ((u32)g.oy0 * L.out_w + (u32)g.ox0) * L.out_c_stored;
                        res0 = L.res_offset + ((u32)g.oy0 * L.out_w + (u32)g.ox0) * L.out_c;
                    }
                    py = 0;
                    oy = (u32)g.oy0;
                    ox = (u32)g.ox0;
                    dst_row = dst0 + gbase;
                    dst = dst_row;
                    res_row = res0;
                    res_pix = res_row;
                }
            }
        }
    }
    store_batch_sums(sums, L, B, group, nitems, gsum);
    return (u64)iters + CYC_PIPE + (L.emit_sums && !L.pixel_sums ? (u64)nitems * TM : 0);
}

// A residual-only tile: every active output channel, y = clamp(requant(res)), REQUANT_LANES
// lanes per cycle, as the write-back: channel ids in lane registers shifting down by
// REQUANT_LANES per step, results rotating, the pixel's TM-byte slice stored after its last
// step (no run-time lane index).
inline u64 residual_tile(u8 *fmap, s32 *sums, const Layer &L, const WorkList &W, u32 tile_id) {
    const TileGeom g = tile_geom(L, tile_id);
    const int lo = out_lo(L), hi = out_hi(L);
    const u32 groups = ceil_div(L.n_active_out, TM);
    const u32 npix = (u32)(g.th * g.tw);
    const u32 pix0 = (u32)g.oy0 * L.out_w + (u32)g.ox0;
    u64 iters = 0;
res_groups:
    for (u32 group = 0; group < groups; group++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_G
        const u32 gbase = group * TM;
        s32 tsum[TM];
#pragma HLS ARRAY_PARTITION variable = tsum complete
        int val[TM];   // the pixel's results, rotating into lane order
#pragma HLS ARRAY_PARTITION variable = val complete
        u32 cid[TM];   // channel ids of the lanes still to requantize (shift register)
#pragma HLS ARRAY_PARTITION variable = cid complete
        bool on[TM];
#pragma HLS ARRAY_PARTITION variable = on complete
        for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
            tsum[m] = 0;
            val[m] = lo;
            cid[m] = 0;
            on[m] = false;
        }
        u32 px = 0, ls = 0;
        u32 dst_row = L.out_offset + pix0 * L.out_c_stored + gbase, dst = dst_row;
        u32 res_row = L.res_offset + pix0 * L.out_c, res_pix = res_row;
    res_pixels:
        for (u32 it = 0; it < npix * REQUANT_STEPS; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_TILE * MAX_TILE * REQUANT_STEPS
#pragma HLS PIPELINE II = 1
            if (ls == 0) {
                for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
                    on[m] = gbase + m < L.n_active_out;
                    cid[m] = on[m] ? W.out_ch[gbase + m] : 0;
                }
            }
            int v[REQUANT_LANES];
#pragma HLS ARRAY_PARTITION variable = v complete
            for (u32 r = 0; r < REQUANT_LANES; r++) {
#pragma HLS UNROLL
                v[r] = on[r] ? requant(0, 0, read_res(fmap, L, res_pix, cid[r]), L.res_mult,
                                       L.shift, lo, hi)
                             : lo;
            }
            if (L.emit_sums && L.pixel_sums) {   // lanes ls*RL .. ls*RL+RL-1 of the pixel
                const u32 srow = L.sums_offset / 4 + (dst - L.out_offset) + ls * REQUANT_LANES;
                for (u32 r = 0; r < REQUANT_LANES; r++) {
#pragma HLS UNROLL
                    if (on[r]) sums[srow + r] = v[r];
                }
            }
            for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
                if (m + REQUANT_LANES < TM) {
                    val[m] = val[m + REQUANT_LANES];
                    cid[m] = cid[m + REQUANT_LANES];
                    on[m] = on[m + REQUANT_LANES];
                } else {
                    val[m] = v[m + REQUANT_LANES - TM];
                }
            }
            if (++ls == REQUANT_STEPS) {   // the pixel's slice, lanes in order
                for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
                    if (gbase + m < L.n_active_out) {
                        fmap[dst + m] = (u8)val[m];
                        tsum[m] += val[m];
                    }
                }
                ls = 0;
                dst += L.out_c_stored;
                res_pix += L.out_c;
                if (++px == (u32)g.tw) {
                    px = 0;
                    dst_row += L.out_w * L.out_c_stored;
                    dst = dst_row;
                    res_row += L.out_w * L.out_c;
                    res_pix = res_row;
                }
            }
        }
        store_sums(sums, L, tile_id, group, tsum);
        iters += (u64)npix * REQUANT_STEPS + CYC_PIPE + (L.emit_sums && !L.pixel_sums ? TM : 0);
    }
    return iters;
}

}  // namespace dg

#endif  // DG_WRITEBACK_H
