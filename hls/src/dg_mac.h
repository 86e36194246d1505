// dg_mac.h - the TM x TN int8 MAC array: one m-group x one conv patch, conv or depthwise.
//
// ONE array, two operand modes, as the RTL's dg_mac_array (`in_dw`): the multipliers are
// ceil(TM/2) x TN DSP48E2s, each one dsp_mul2 (dg_dsp.h) of a lane pair (2i, 2i+1).
//  - conv: lanes 2i, 2i+1 share the activation x[j], so each DSP computes TWO products
//    (the packing), TM x TN MACs per step. Loop: conv pixel (ch*cw) x reduction step
//    r = kpos * ngi + n-group (an im2col layer: r = flattened taps r*TN .. r*TN+TN-1 of
//    (ky, kx, c), ceil(k*k*C/TN) of them); formats.mac_steps_per_pixel steps per pixel.
//    Each cycle reads one TN-byte input vector (rotated out of the TN patch banks) and TM
//    weight words.
//  - depthwise (op OP_DWCONV): lane m reduces its own channel's taps, so a pair shares no
//    activation and each DSP computes ONE product (the other weight 0): multiplies
//    j < DW_TPS take lane 2i's taps, DW_TPS <= j < 2*DW_TPS lane 2i+1's, i.e. TM x TN/2
//    products per step and DW_TPS = TN/2 taps per lane and step:
//    formats.mac_steps_per_pixel = formats.dw_steps_per_pixel = ceil(9 / (TN/2)) steps per
//    pixel (TN = 1: the pair's one multiply takes its two lanes in turn, DW_PAR = 2).
//    Each cycle reads one word of each of the 9 dw patch banks (dg_patch.h) and TM weight
//    words (each word TN taps of a lane's row: two steps' taps).
// Both modes flattened and pipelined at II=1; the only loop-carried dependence is the TM
// register sums (no accumulator-memory read-modify-write), so II=1 holds for any patch
// size. After the last step of a pixel the TM sums go to the accumulator buffer for the
// write-back stage. A depthwise call computes a BATCH of `ngroups` consecutive m-groups of
// one tile (all reading the tile's one dw patch) in the same flattened loop (m-group x
// pixel x step), so the pipeline fills and drains once per batch, not once per m-group;
// m-group i of the batch writes accumulator words i*npix .. (a conv call: one m-group).
#ifndef DG_MAC_H
#define DG_MAC_H

#include "dg_descriptor.h"
#include "dg_dsp.h"
#include "dg_patch.h"
#include "dg_weights.h"

namespace dg {

typedef s32 AccBuf[TM][ACC_DEPTH];

constexpr unsigned MAC_PAIRS = (TM + 1) / 2;   // lane pairs: one DSP48E2 per pair and lane j
// depthwise: DW_TPS, DW_PAR, DW_PIX_STEPS, DW_TAP_SLOTS (dg_descriptor.h, beside the decode
// of L.steps)

// Returns the pipelined iterations (cycles) it took, for the C-sim's estimate.
// conv: reads input buffer patch[ph] and weight half wbuf[sel]; depthwise: dw patch buffer
// dwpatch[ph] (the tile's half) and m-group `group`'s rows in weight half sel (= 0,
// load_dw_weights), and with ngroups > 1 the next m-groups' rows too (depthwise only).
// Writes accumulator buffer acc[ah]. Only the mode's patch buffer is read (the other may be
// null).
// conv with a batch of tiles (B.n > 1, dg_engine.cpp conv_batch): tile after tile in the
// same flattened loop (tile x pixel x step), tile i's patch at byte B.base[i] of the patch
// half, its accumulators after the previous tiles' pixels.
inline u64 mac_array_tile(const Layer &L, const TileBatch &B, const WeightBufs wbuf, u32 sel,
                          const PatchBuf *patch, const DwPatchBuf *dwpatch, u32 ph, u32 group,
                          u32 ngroups, AccBuf acc[2], u32 ah) {
#pragma HLS INLINE off
    const bool dw = L.depthwise;
    const u32 n = L.in_c_stored;
    const u32 R = L.steps;
    const u32 steps = R > 0 ? R : 1;      // no active input channel: acc = 0 (bias only)
    const TileGeom g = B.g[0];
    const u32 s = L.stride;
    // conv batch: the current tile ti's pixels and columns; total pixels of the batch
    const u32 ntiles = dw ? 1 : B.n;
    u32 ti = 0, npix = (u32)(g.ch * g.cw), cw_t = (u32)g.cw;
    // ---- conv address counters (adds only in the pipeline; the products are per tile):
    // the patch buffer holds patch row r at base + r * prow, pixel c of a row at c * n.
    u32 prow = L.im2col ? L.pitch : (u32)g.sw * n;   // bytes per patch row
    const u32 px_step = s * n;                        // next conv pixel of a row
    u32 py_step = s * prow;                           // next conv row
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
    // ---- depthwise: dw bank words per bank row and channel groups per pixel (dg_patch.h),
    // the group's first weight word (load_dw_weights: ceil(k*k/TN) words per lane and
    // group), tap t -> (ky, kx) as a ROM over the tap slots
    const u32 gp = ceil_div(n, TM);
    const u32 cw3 = ceil_div((u32)g.sw, DW_K);
    const u32 wrow = ceil_div(L.kk, TN);   // weight words per lane and m-group (depthwise)
    const u32 nb = dw && ngroups > 1 ? ngroups : 1;   // m-groups of the batch (conv: one)
    const u32 iters = dw ? nb * npix * steps : B.conv_px * steps;
    u32 gcur = group;                                  // the batch's current m-group
    u32 wbase = dw ? group * wrow : 0;                 // its first weight word (+wrow)
    u32 gpix = 0;                                      // pixel within the current m-group
    u32 tky[DW_TAP_SLOTS], tkx[DW_TAP_SLOTS];
#pragma HLS ARRAY_PARTITION variable = tky complete
#pragma HLS ARRAY_PARTITION variable = tkx complete
    for (u32 t = 0; t < DW_TAP_SLOTS; t++) {
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
    u32 px = 0, kx = 0, ng = 0, r = 0, pix = 0;
    u32 row_addr = B.base[0], pix_addr = B.base[0];   // base + py*s*prow, + px*s*n: the
                                                      // conv pixel's patch byte
    u32 k_addr = 0, ky_addr = 0;      // ky*prow + kx*n, ky*prow: the kernel position's
    u32 ngt = 0, rt = 0;              // ng*TN, r*TN
    u32 o0 = 0, i2c_k = 0;            // im2col: lane 0's tap is byte o0 of kernel row ky0;
                                      // i2c_k = ky0*prow + o0 (no divider, no multiplier)
    // depthwise: the conv pixel's patch origin (py, px) = (cy*s, cx*s) as (/ 3, % 3)
    // counters; dt = the step's first tap (a multiple of DW_TPS), dpar = its lane parity
    // (DW_PAR = 2 only)
    u32 pyq = 0, pyr = 0, pxq = 0, pxr = 0, dt = 0, dpar = 0;
mac:
    for (u32 it = 0; it < iters; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = TC_CONV_PIXELS * max_u(TC_MAC_STEPS, DW_PIX_STEPS * DW_BATCH)
#pragma HLS PIPELINE II = 1
        // ---- weights: one word of every lane bank (conv: word r; depthwise: the word of the
        // step's taps), TN bytes each
        const u32 wr = dw ? wbase + dt / TN : r;
        s8 wq[TM][TN];
#pragma HLS ARRAY_PARTITION variable = wq complete dim = 0
        for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
            for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
                wq[m][j] = wbuf[sel][m][j][wr];
            }
        }
        // ---- conv operands: TN activations shared by all lanes. Lane j reads buffer byte
        // base + j (+ the im2col rows): TN consecutive bytes, one per bank. Bank rotator:
        // bank b (a compile-time index, one read per bank per cycle) holds lane
        // j_b = (b - rot) mod TN, at row brow (+1 for the banks below rot); the TN bank
        // words are then rotated by rot into lane order.
        s32 x[TN];
#pragma HLS ARRAY_PARTITION variable = x complete
        for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
            x[j] = 0;
        }
        if (!dw) {
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
            for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
                const u8 v = bank_q[(rot + j) % TN];
                const bool valid = R > 0 && (L.im2col ? rt + j < L.kkc : ngt + j < n);
                x[j] = !valid ? 0 : (L.in_signed ? (s32)(s8)v : (s32)v);
            }
        }
        // ---- depthwise operands: lane m's taps dt .. dt+DW_TPS-1 of its own channel. One
        // word of each of the 9 banks (compile-time bank indices; the bank (a, b) holds the
        // pixel's tap ((a - py) mod 3, (b - px) mod 3), so the 9 reads never collide), then
        // a 9:1 multiplexer per tap slot picks its tap's bank; the weights are bytes
        // dt mod TN .. of the lane's word (a 2:1 multiplexer: DW_TPS divides TN).
        s32 xd[TM][DW_TPS];
        s8 wd[TM][DW_TPS];
#pragma HLS ARRAY_PARTITION variable = xd complete dim = 0
#pragma HLS ARRAY_PARTITION variable = wd complete dim = 0
        for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
            for (u32 q = 0; q < DW_TPS; q++) {
#pragma HLS UNROLL
                xd[m][q] = 0;
                wd[m][q] = 0;
            }
        }
        if (dw) {
            u8 dq[DW_K][DW_K][TM];
#pragma HLS ARRAY_PARTITION variable = dq complete dim = 0
            for (u32 a = 0; a < DW_K; a++) {
#pragma HLS UNROLL
                const u32 ky = a >= pyr ? a - pyr : a + DW_K - pyr;   // the tap row in bank row a
                const u32 yq = pyq + (pyr + ky >= DW_K ? 1u : 0u);
                for (u32 b = 0; b < DW_K; b++) {
#pragma HLS UNROLL
                    const u32 kxb = b >= pxr ? b - pxr : b + DW_K - pxr;
                    const u32 xq = pxq + (pxr + kxb >= DW_K ? 1u : 0u);
                    const u32 word = (yq * cw3 + xq) * gp + gcur;
                    for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
                        dq[a][b][m] = dwpatch[ph][a][b][m][word];
                    }
                }
            }
            const u32 wsel = dt % TN;
            for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
                for (u32 q = 0; q < DW_TPS; q++) {
#pragma HLS UNROLL
                    const u32 t = dt + q;
                    const u32 a = pyr + tky[t] >= DW_K ? pyr + tky[t] - DW_K : pyr + tky[t];
                    const u32 b = pxr + tkx[t] >= DW_K ? pxr + tkx[t] - DW_K : pxr + tkx[t];
                    const u8 v = dq[a][b][m];
                    xd[m][q] = t >= DW_TAPS ? 0 : (L.in_signed ? (s32)(s8)v : (s32)v);
                    wd[m][q] = wq[m][wsel + q];
                }
            }
        }
        // ---- the DSPs: pair i's multiply j is ONE dsp_mul2 in both modes (dg_dsp.h).
        // conv: (w[2i][j], w[2i+1][j]) x x[j], two products; depthwise: one product, the
        // high lane's (w, 0) x its tap j (j < DW_TPS) or the low lane's (0, w) x its tap
        // j - DW_TPS, the other half of the packed result 0. Each lane sums its own half.
        for (u32 i = 0; i < MAC_PAIRS; i++) {
#pragma HLS UNROLL
            const u32 m0 = 2 * i, m1 = 2 * i + 1;
            s32 dot0 = 0, dot1 = 0;
            for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
                s8 w_hi = 0, w_lo = 0;
                s32 xv = 0;
                if (!dw) {
                    w_hi = wq[m0][j];
                    w_lo = m1 < TM ? wq[m1][j] : (s8)0;
                    xv = x[j];
                } else if (DW_PAR == 2) {       // TN = 1: lane m0 on even steps, m1 on odd
                    if (dpar == 0) {
                        w_hi = wd[m0][0];
                        xv = xd[m0][0];
                    } else if (m1 < TM) {
                        w_lo = wd[m1][0];
                        xv = xd[m1][0];
                    }
                } else if (j < DW_TPS) {
                    w_hi = wd[m0][j];
                    xv = xd[m0][j];
                } else if (j < 2 * DW_TPS && m1 < TM) {
                    w_lo = wd[m1][j - DW_TPS];
                    xv = xd[m1][j - DW_TPS];
                }
                s32 p0, p1;
                dsp_mul2(w_hi, w_lo, xv, p0, p1);
                dot0 += p0;
                dot1 += p1;
            }
            sum[m0] += dot0;
            if (m1 < TM) sum[m1] += dot1;
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
            dt = 0;
            dpar = 0;
            pix++;   // the accumulator word: continues over the batch's m-groups
            pix_addr += px_step;
            pxr += s;
            if (pxr >= DW_K) {
                pxr -= DW_K;
                pxq++;
            }
            if (++px == cw_t) {
                px = 0;
                row_addr += py_step;
                pix_addr = row_addr;
                pxq = 0;
                pxr = 0;
                pyr += s;
                if (pyr >= DW_K) {
                    pyr -= DW_K;
                    pyq++;
                }
            }
            if (++gpix == npix) {   // the m-group's / tile's last pixel: the batch's next
                gpix = 0;
                if (dw) {           // depthwise: the next m-group of the same tile
                    gcur++;
                    wbase += wrow;
                    row_addr = 0;
                    pix_addr = 0;
                } else if (++ti < ntiles) {   // conv: the next tile of the batch
                    const TileGeom gn = B.g[ti];
                    npix = (u32)(gn.ch * gn.cw);
                    cw_t = (u32)gn.cw;
                    prow = (u32)gn.sw * n;    // (no batches with im2col)
                    py_step = s * prow;
                    row_addr = B.base[ti];
                    pix_addr = B.base[ti];
                }
                px = 0;
                pxq = 0;
                pxr = 0;
                pyq = 0;
                pyr = 0;
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
            if (++dpar == DW_PAR) {
                dpar = 0;
                dt += DW_TPS;
            }
        }
    }
    return (u64)iters + CYC_PIPE;
}

}  // namespace dg

#endif  // DG_MAC_H
