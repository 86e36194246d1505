// dg_mac.h - the TM x TN int8 MAC array: one m-group x one conv patch.
//
// Loop: conv pixel (ch*cw) x reduction step r = kpos * ngi + n-group (an im2col layer:
// r = flattened taps r*TN .. r*TN+TN-1 of (ky, kx, c), L.steps = ceil(k*k*C/TN) of them,
// formats.mac_steps_per_pixel), flattened and pipelined at II=1. Each cycle reads one TN-byte input vector (rotated out of the TN
// patch banks) and TM weight words, and adds TM dot products of length TN to TM int32
// register accumulators; the only loop-carried dependence is that register add, so II=1
// holds for any patch size (no accumulator-memory read-modify-write). After the last r of
// a pixel the TM sums go to the accumulator buffer for the write-back stage.
#ifndef DG_MAC_H
#define DG_MAC_H

#include "dg_dsp.h"
#include "dg_patch.h"
#include "dg_weights.h"

namespace dg {

typedef s32 AccBuf[TM][ACC_DEPTH];

// Returns the pipelined iterations (cycles) it took.
inline u64 mac_tile(const Layer &L, const TileGeom &g, const WeightBufs wbuf, u32 sel,
                    const PatchBuf patch,
                    AccBuf acc) {
    const u32 n = L.in_c_stored;
    const u32 R = L.steps;
    const u32 steps = R > 0 ? R : 1;      // no active input channel: acc = 0 (bias only)
    const u32 npix = (u32)(g.ch * g.cw);
    const u32 s = L.stride;
    s32 sum[TM];
#pragma HLS ARRAY_PARTITION variable = sum complete
    for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
        sum[m] = 0;
    }
    u32 py = 0, px = 0, ky = 0, kx = 0, ng = 0, r = 0, pix = 0;
    u32 o0 = 0, ky0 = 0;   // im2col: lane 0's tap is byte o0 of kernel row ky0 (no divider)
mac:
    for (u32 it = 0; it < npix * steps; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = TC_CONV_PIXELS * TC_MAC_STEPS
#pragma HLS PIPELINE II = 1
        // one TN-byte input vector: patch pixel q, channels ng*TN .. ng*TN+TN-1
        const u32 q = (py * s + ky) * (u32)g.sw + px * s + kx;
        const u32 start = q * n + ng * TN;
        // im2col: lane j takes flattened tap f = r*TN + j = (ky, kx*C + c) of patch row
        // py*s + ky at byte px*s*C + kx*C + c (the patch holds the zero padding); with
        // lane 0 at (ky0, o0), lane j is m_j = (o0 + j) div kc rows further (compares)
        const u32 i2c_base = (py * s + ky0) * L.pitch + px * s * n + o0;
        s32 x[TN];
#pragma HLS ARRAY_PARTITION variable = x complete
        for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
            const u32 f = r * TN + j;
            u32 mj = 0;
            for (u32 q = 1; q <= TN; q++) {
#pragma HLS UNROLL
                if (o0 + j >= q * L.kc) mj = q;
            }
            const u32 pos = L.im2col ? i2c_base + j + mj * (L.pitch - L.kc) : start + j;
            u32 row = pos / TN;
            if (row >= IFM_DEPTH) row -= IFM_DEPTH;   // over-read of a partial group (masked)
            const u8 b = patch[pos % TN][row];
            const bool valid = R > 0 && (L.im2col ? f < L.kkc : ng * TN + j < n);
            x[j] = !valid ? 0 : (L.in_signed ? (s32)(s8)b : (s32)b);
        }
        // lanes m, m+1 share x[j]: two products per DSP48E2 multiply (dg_dsp.h)
        for (u32 m = 0; m < TM; m += 2) {
#pragma HLS UNROLL
            s32 dot0 = 0, dot1 = 0;
            for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
                s32 p0, p1;
                dsp_mul2(wbuf[sel][m][j][r], m + 1 < TM ? wbuf[sel][m + 1][j][r] : (s8)0, x[j], p0, p1);
                dot0 += p0;
                dot1 += p1;
            }
            sum[m] += dot0;
            if (m + 1 < TM) sum[m + 1] += dot1;
        }
        // advance the reduction counters; at the end of a pixel store and restart
        if (r + 1 == steps) {
            for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
                acc[m][pix] = sum[m];
                sum[m] = 0;
            }
            r = 0;
            ng = 0;
            kx = 0;
            ky = 0;
            o0 = 0;
            ky0 = 0;
            pix++;
            if (++px == (u32)g.cw) { px = 0; py++; }
        } else {
            r++;
            o0 += L.i2c_ra;   // lane 0 advances TN = qa*kc + ra taps
            ky0 += L.i2c_qa;
            if (o0 >= L.kc) { o0 -= L.kc; ky0++; }
            if (++ng == L.ngi) {
                ng = 0;
                if (++kx == L.k) { kx = 0; ky++; }
            }
        }
    }
    return (u64)npix * steps + CYC_PIPE;
}

}  // namespace dg

#endif  // DG_MAC_H
