// dg_writeback.h - requantize, add the residual, clamp (ReLU), max-pool, store, channel sums.
//
// Per output pixel and lane m (REQUANT_LANES lanes per cycle, pipelined):
//   y = clamp((( acc + bias[m]) * mult[m] + res * res_mult + 2^(shift-1)) >> shift, lo, hi)
// with lo..hi = 0..255 (u8 output: the ReLU) or -128..127 (s8). Under the fused 3x3/s2/pad1
// max-pool, y is the max of the requantized conv outputs of the window (positions outside
// the conv output are skipped, i.e. -inf padding). The lane writes byte m of the group's
// TM-byte slice of the output pixel: channel position group*TM + m of the stored output
// (compact when out_ch_gated); the residual is read at the channel id (the residual map
// has all out_c channels). Channel sums of the written tile go to SUMS [tile][C_stored].
// Residual-only tiles: acc = 0 and no bias, y = clamp(requant(res)).
#ifndef DG_WRITEBACK_H
#define DG_WRITEBACK_H

#include "dg_mac.h"

namespace dg {

inline int out_lo(const Layer &L) { return L.out_signed ? -128 : 0; }
inline int out_hi(const Layer &L) { return L.out_signed ? 127 : 255; }

inline int read_res(const u8 *fmap, const Layer &L, u32 oy, u32 ox, u32 oc) {
#pragma HLS INLINE
    const u8 b = fmap[L.res_offset + (oy * L.out_w + ox) * L.out_c + oc];
    return L.res_signed ? (int)(s8)b : (int)b;
}

inline void store_sums(s32 *sums, const Layer &L, u32 tile_id, u32 group, const s32 acc_sum[TM]) {
#pragma HLS INLINE
    if (!L.emit_sums) return;
    const u32 base = L.sums_offset / 4 + tile_id * L.out_c_stored + group * TM;
sums_store:
    for (u32 m = 0; m < TM; m++) {
#pragma HLS PIPELINE II = 1
        if (group * TM + m < L.n_active_out) sums[base + m] = acc_sum[m];
    }
}

// Write-back of one (m-group, tile) from the accumulators. Loop: output pixel x window
// position (9 under the max-pool) x lane step (REQUANT_LANES lanes per cycle), pipelined
// at II=1; the pixel's TM bytes are stored after its last step. Returns its iterations.
inline u64 writeback_tile(u8 *fmap, s32 *sums, const Layer &L, const WorkList &W, u32 tile_id,
                          const TileGeom &g, u32 group, const AccBuf acc,
                          const s32 bias[PARAM_ROWS][TM], const s32 mult[PARAM_ROWS][TM]) {
    const int lo = out_lo(L), hi = out_hi(L);
    const u32 wpos = L.maxpool ? 9 : 1;   // window positions per output pixel
    s32 tsum[TM];
#pragma HLS ARRAY_PARTITION variable = tsum complete
    int best[TM];
#pragma HLS ARRAY_PARTITION variable = best complete
    for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
        tsum[m] = 0;
        best[m] = lo;
    }
    u32 py = 0, px = 0, wi = 0, wy = 0, wx = 0, ls = 0;
    const u32 npix = (u32)(g.th * g.tw);
pixels:
    for (u32 it = 0; it < npix * wpos * REQUANT_STEPS; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_TILE * MAX_TILE * 9 * REQUANT_STEPS
#pragma HLS PIPELINE II = 1
        const u32 oy = (u32)g.oy0 + py, ox = (u32)g.ox0 + px;
        // conv pixel of this window position (the pixel itself without a max-pool)
        int cy = (int)oy, cx = (int)ox;
        if (L.maxpool) {
            cy = 2 * (int)oy - 1 + (int)wy;
            cx = 2 * (int)ox - 1 + (int)wx;
        }
        const bool inside = cy >= 0 && cy < (int)L.conv_h && cx >= 0 && cx < (int)L.conv_w;
        const u32 a = inside ? (u32)((cy - g.cy0) * g.cw + (cx - g.cx0)) : 0;
        for (u32 r = 0; r < REQUANT_LANES; r++) {
#pragma HLS UNROLL
            const u32 m = ls * REQUANT_LANES + r;
            const u32 pos = group * TM + m;
            const bool lane_on = pos < L.n_active_out;
            const int res = (L.residual && lane_on) ? read_res(fmap, L, oy, ox, W.out_ch[pos]) : 0;
            const int v = requant((s64)acc[m][a] + bias[group][m], mult[group][m], res, L.res_mult,
                                  L.shift, lo, hi);
            if (inside && v > best[m]) best[m] = v;
        }
        if (ls + 1 < REQUANT_STEPS) {
            ls++;
        } else if (wi + 1 < wpos) {
            ls = 0;
            wi++;
            if (++wx == 3) { wx = 0; wy++; }
        } else {   // last step of the pixel: store it
            const u32 dst = L.out_offset + (oy * L.out_w + ox) * L.out_c_stored + group * TM;
            for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
                if (group * TM + m < L.n_active_out) {
                    fmap[dst + m] = (u8)best[m];
                    tsum[m] += best[m];
                }
                best[m] = lo;
            }
            ls = 0;
            wi = 0;
            wy = 0;
            wx = 0;
            if (++px == (u32)g.tw) { px = 0; py++; }
        }
    }
    store_sums(sums, L, tile_id, group, tsum);
    return (u64)npix * wpos * REQUANT_STEPS + CYC_PIPE + (L.emit_sums ? TM : 0);
}

// A residual-only tile: every active output channel, y = clamp(requant(res)), REQUANT_LANES
// lanes per cycle.
inline u64 residual_tile(u8 *fmap, s32 *sums, const Layer &L, const WorkList &W, u32 tile_id) {
    const TileGeom g = tile_geom(L, tile_id);
    const int lo = out_lo(L), hi = out_hi(L);
    const u32 groups = ceil_div(L.n_active_out, TM);
    u64 iters = 0;
res_groups:
    for (u32 group = 0; group < groups; group++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_G
        s32 tsum[TM];
#pragma HLS ARRAY_PARTITION variable = tsum complete
        for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
            tsum[m] = 0;
        }
        u32 py = 0, px = 0, ls = 0;
        const u32 npix = (u32)(g.th * g.tw);
    res_pixels:
        for (u32 it = 0; it < npix * REQUANT_STEPS; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_TILE * MAX_TILE * REQUANT_STEPS
#pragma HLS PIPELINE II = 1
            const u32 oy = (u32)g.oy0 + py, ox = (u32)g.ox0 + px;
            const u32 dst = L.out_offset + (oy * L.out_w + ox) * L.out_c_stored + group * TM;
            for (u32 r = 0; r < REQUANT_LANES; r++) {
#pragma HLS UNROLL
                const u32 m = ls * REQUANT_LANES + r;
                const u32 pos = group * TM + m;
                if (pos < L.n_active_out) {
                    const int res = read_res(fmap, L, oy, ox, W.out_ch[pos]);
                    const int v = requant(0, 0, res, L.res_mult, L.shift, lo, hi);
                    fmap[dst + m] = (u8)v;
                    tsum[m] += v;
                }
            }
            if (++ls == REQUANT_STEPS) {
                ls = 0;
                if (++px == (u32)g.tw) { px = 0; py++; }
            }
        }
        store_sums(sums, L, tile_id, group, tsum);
        iters += (u64)npix * REQUANT_STEPS + CYC_PIPE + (L.emit_sums ? TM : 0);
    }
    return iters;
}

}  // namespace dg

#endif  // DG_WRITEBACK_H
