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

// Returns the pipelined iterations (cycles) it took, for the C-sim's estimate.
// Reads input buffer patch[ph] and weight half wbuf[sel]; writes accumulator buffer acc[ah].
inline u64 mac_tile(const Layer &L, const TileGeom &g, const WeightBufs wbuf, u32 sel,
                    const PatchBuf patch[2], u32 ph, AccBuf acc[2], u32 ah) {
#pragma HLS INLINE off
    const u32 n = L.in_c_stored;
    const u32 R = L.steps;
    const u32 steps = R > 0 ? R : 1;      // no active input channel: acc = 0 (bias only)
    const u32 npix = (u32)(g.ch * g.cw);
    const u32 s = L.stride;
    // Address counters (adds only in the pipeline; the products are per tile): the patch
    // buffer holds patch row r at r * prow, pixel c of a row at c * n.
    const u32 prow = L.im2col ? L.pitch : (u32)g.sw * n;   // bytes per patch row
    const u32 px_step = s * n;                              // next conv pixel of a row
    const u32 py_step = s * prow;                           // next conv row
    const u32 i2c_adv = L.i2c_qa * prow + L.i2c_ra;         // lane 0 advances TN taps
    const u32 i2c_wrap = prow - L.kc;                       // ... and one kernel row more
    // im2col: lane j is m_j kernel rows past lane 0 when o0 + j >= m_j * kc; such a lane's
    // byte lies m_j * (pitch - kc) bytes = m_j * (pitch - kc) / TN rows further in its bank
    // (pitch = kc mod the bank bytes, a multiple of TN). Thresholds and row offsets per m.
    u32 thr[TN + 1], rowoff[TN + 1];
#pragma HLS ARRAY_PARTITION variable = thr complete
#pragma HLS ARRAY_PARTITION variable = rowoff complete
    const u32 rstep = L.im2col ? (L.pitch - L.kc) / TN : 0;
    for (u32 q = 0, t = 0, o = 0; q <= TN; q++, t += L.kc, o += rstep) {
#pragma HLS UNROLL
        thr[q] = t;
        rowoff[q] = o;
    }
    s32 sum[TM];
#pragma HLS ARRAY_PARTITION variable = sum complete
    for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
        sum[m] = 0;
    }
    u32 px = 0, kx = 0, ng = 0, r = 0, pix = 0;
    u32 row_addr = 0, pix_addr = 0;   // py*s*prow, + px*s*n: the conv pixel's patch byte
    u32 k_addr = 0, ky_addr = 0;      // ky*prow + kx*n, ky*prow: the kernel position's
    u32 ngt = 0, rt = 0;              // ng*TN, r*TN
    u32 o0 = 0, i2c_k = 0;            // im2col: lane 0's tap is byte o0 of kernel row ky0;
                                      // i2c_k = ky0*prow + o0 (no divider, no multiplier)
mac:
    for (u32 it = 0; it < npix * steps; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = TC_CONV_PIXELS * TC_MAC_STEPS
#pragma HLS PIPELINE II = 1
        // Lane j reads buffer byte base + j (+ the im2col rows): TN consecutive bytes, one
        // per bank. Bank rotator: bank b (a compile-time index, one read per bank per
        // cycle) holds lane j_b = (b - rot) mod TN, at row brow (+1 for the banks below
        // rot); the TN bank words are then rotated by rot into lane order.
        const u32 base = pix_addr + (L.im2col ? i2c_k : k_addr + ngt);
        const u32 rot = base % TN, brow = base / TN;   // TN a power of two: bit slices
        u8 bank_q[TN];
#pragma HLS ARRAY_PARTITION variable = bank_q complete
        for (u32 b = 0; b < TN; b++) {
#pragma HLS UNROLL
            const u32 jb = (b + TN - rot) % TN;
            u32 row = brow + (b < rot ? 1u : 0u);
            if (L.im2col) {
                u32 mj = 0;
                for (u32 q = 1; q <= TN; q++) {
#pragma HLS UNROLL
                    if (o0 + jb >= thr[q]) mj = q;
                }
                row += rowoff[mj];
            }
            if (row >= IFM_DEPTH) row -= IFM_DEPTH;   // over-read of a partial group (masked)
            bank_q[b] = patch[ph][b][row];
        }
        s32 x[TN];
#pragma HLS ARRAY_PARTITION variable = x complete
        for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
            const u8 v = bank_q[(rot + j) % TN];
            const bool valid = R > 0 && (L.im2col ? rt + j < L.kkc : ngt + j < n);
            x[j] = !valid ? 0 : (L.in_signed ? (s32)(s8)v : (s32)v);
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
                acc[ah][m][pix] = sum[m];
                sum[m] = 0;
            }
            r = 0;
            rt = 0;
            ng = 0;
            ngt = 0;
            kx = 0;
            k_addr = 0;
            ky_addr = 0;
            o0 = 0;
            i2c_k = 0;
            pix++;
            pix_addr += px_step;
            if (++px == (u32)g.cw) {
                px = 0;
                row_addr += py_step;
                pix_addr = row_addr;
            }
        } else {
            r++;
            rt += TN;
            o0 += L.i2c_ra;   // lane 0 advances TN = qa*kc + ra taps
            i2c_k += i2c_adv;
            if (o0 >= L.kc) {
                o0 -= L.kc;
                i2c_k += i2c_wrap;
            }
            ngt += TN;
            if (++ng == L.ngi) {
                ng = 0;
                ngt = 0;
                k_addr += n;
                if (++kx == L.k) {
                    kx = 0;
                    ky_addr += prow;
                    k_addr = ky_addr;
                }
            }
        }
    }
    return (u64)npix * steps + CYC_PIPE;
}

// Depthwise mode (op OP_DWCONV): one m-group x one conv patch from the dw patch buffer
// patch[ph] and the layer's weight rows in half 0 (load_dw_weights). Loop: conv pixel x
// step r (L.steps = ceil(k*k/TN), formats.mac_steps_per_pixel), flattened and pipelined at
// II=1. Lane m holds channel group*TM + m; tap slot j of step r is tap t = r*TN + j of its
// 3x3 kernel (DW_LANES slots: never more than the 9 taps). Each cycle reads one word of each
// of the 9 banks (compile-time bank indices; the bank (a, b) holds the pixel's tap
// ((a - py) mod 3, (b - px) mod 3), so the 9 reads never collide), then a 9:1 multiplexer
// per tap slot picks its tap's bank: lane m reads DW_LANES taps of its own channel. The
// products are TM x DW_LANES separate int8 x 9-bit multiplies (no two share an activation,
// so the conv mode's DSP pairs (dg_dsp.h) do not apply: docs/hls.md binds them to fabric).
// Loop-carried dependence: the TM register sums only, as in mac_tile.
inline u64 mac_dw_tile(const Layer &L, const TileGeom &g, const WeightBufs wbuf,
                       const DwPatchBuf patch[2], u32 ph, u32 group, AccBuf acc[2], u32 ah) {
#pragma HLS INLINE off
    const u32 steps = L.steps > 0 ? L.steps : 1;
    const u32 npix = (u32)(g.ch * g.cw);
    const u32 s = L.stride;
    const u32 gp = ceil_div(L.in_c_stored, TM);
    const u32 cw3 = ceil_div((u32)g.sw, DW_K);
    const u32 wbase = group * L.steps;              // the group's first weight word
    // tap t -> (ky, kx): a ROM over the taps a step can name (t < DW_MAX_STEPS * TN)
    u32 tky[DW_MAX_STEPS * TN], tkx[DW_MAX_STEPS * TN];
#pragma HLS ARRAY_PARTITION variable = tky complete
#pragma HLS ARRAY_PARTITION variable = tkx complete
    for (u32 t = 0; t < DW_MAX_STEPS * TN; t++) {
#pragma HLS UNROLL
        tky[t] = t < DW_TAPS ? t / DW_K : 0;
        tkx[t] = t < DW_TAPS ? t % DW_K : 0;
    }
    s32 sum[TM];
#pragma HLS ARRAY_PARTITION variable = sum complete
    for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
        sum[m] = 0;
    }
    // the conv pixel's patch origin (py, px) = (cy*s, cx*s) as (/ 3, % 3) counters
    u32 pyq = 0, pyr = 0, pxq = 0, pxr = 0, px = 0, pix = 0, r = 0, rt = 0;
mac_dw:
    for (u32 it = 0; it < npix * steps; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = TC_CONV_PIXELS * DW_MAX_STEPS
#pragma HLS PIPELINE II = 1
        u8 bank_q[DW_K][DW_K][TM];
#pragma HLS ARRAY_PARTITION variable = bank_q complete dim = 0
        for (u32 a = 0; a < DW_K; a++) {
#pragma HLS UNROLL
            const u32 ky = a >= pyr ? a - pyr : a + DW_K - pyr;   // the tap row in bank row a
            const u32 yq = pyq + (pyr + ky >= DW_K ? 1u : 0u);
            for (u32 b = 0; b < DW_K; b++) {
#pragma HLS UNROLL
                const u32 kx = b >= pxr ? b - pxr : b + DW_K - pxr;
                const u32 xq = pxq + (pxr + kx >= DW_K ? 1u : 0u);
                const u32 word = (yq * cw3 + xq) * gp + group;
                for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
                    bank_q[a][b][m] = patch[ph][a][b][m][word];
                }
            }
        }
        for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
            s32 dot = 0;
            for (u32 j = 0; j < DW_LANES; j++) {
#pragma HLS UNROLL
                const u32 t = rt + j;
                const u32 ky = tky[t], kx = tkx[t];
                const u32 a = pyr + ky >= DW_K ? pyr + ky - DW_K : pyr + ky;
                const u32 b = pxr + kx >= DW_K ? pxr + kx - DW_K : pxr + kx;
                const u8 v = bank_q[a][b][m];
                const s32 x = t >= DW_TAPS ? 0 : (L.in_signed ? (s32)(s8)v : (s32)v);
                dot += (s32)wbuf[0][m][j][wbase + r] * x;
            }
            sum[m] += dot;
        }
        if (r + 1 == steps) {   // the pixel's TM sums to the accumulator buffer
            for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
                acc[ah][m][pix] = sum[m];
                sum[m] = 0;
            }
            r = 0;
            rt = 0;
            pix++;
            pxr += s;
            if (pxr >= DW_K) {
                pxr -= DW_K;
                pxq++;
            }
            if (++px == (u32)g.cw) {
                px = 0;
                pxq = 0;
                pxr = 0;
                pyr += s;
                if (pyr >= DW_K) {
                    pyr -= DW_K;
                    pyq++;
                }
            }
        } else {
            r++;
            rt += TN;
        }
    }
    return (u64)npix * steps + CYC_PIPE;
}

}  // namespace dg

#endif  // DG_MAC_H
