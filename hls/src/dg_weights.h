// dg_weights.h - load the weights of one m-group (TM active output channels) and the
// per-channel params of a layer onto the chip.
//
// Weight streams (dgfpga.formats.pack_weights): [C_out][k][k][C_in] ("oc_k_k_ic": conv1
// and dense layers; one output channel is one contiguous burst of k*k*C_in bytes) or
// [C_in][G][k][k][m_g] ("ic_g_k_k_m": conv2, G = ceil(C_out/TM) m-groups of m_g = min(TM,
// C_out - g*TM) output channels; one active input channel's rows for one m-group, m_g bytes
// per kernel position, are one contiguous run of k*k*m_g bytes). On chip: lane m, word
// r = kpos * ngi + n-group, byte j = channel n-group*TN + j of the stored input, zero for
// channels past n_active_in and for lanes past the group's channels (so padded lanes and
// channels add nothing). An im2col layer's stream is [C_out][k*k*C_in padded to TN]
// (formats.pack_weights 'im2col'): lane m's word r is bytes r*TN .. r*TN+TN-1 of its row.
#ifndef DG_WEIGHTS_H
#define DG_WEIGHTS_H

#include "dg_types.h"

namespace dg {

// Two halves (ping-pong): the m-group being computed and the next one being loaded.
typedef s8 WeightBufs[2][TM][TN][W_DEPTH];

// Returns the pipelined iterations it took (for the cycle estimate).
inline u64 load_weight_group(const u8 *wmem, const Layer &L, const WorkList &W, u32 group,
                             WeightBufs wbuf, u32 sel) {
#pragma HLS INLINE off
    const u32 n_in = L.n_active_in;
    const u32 words = L.steps;
    if (L.im2col) {
        // per lane: one burst of the output channel's padded row of flattened taps
        const u32 row = words * TN;
    lanes_i2c:
        for (u32 m = 0; m < TM; m++) {
            const u32 pos = group * TM + m;
            const bool lane_on = pos < L.n_active_out;
            const u32 base = L.weight_offset + (lane_on ? W.out_ch[pos] : 0) * row;
        words_i2c:
            for (u32 r = 0; r < words; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = TC_MAC_STEPS
#pragma HLS PIPELINE II = 1
                for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
                    wbuf[sel][m][j][r] = lane_on ? (s8)wmem[base + r * TN + j] : (s8)0;
                }
            }
        }
        return (u64)TM * words + CYC_AXI_LATENCY;
    }
    if (!L.w_ic_major) {
        // per lane: one burst of k*k*C_in bytes (gathered by the in-channel list if gated)
    lanes_oc:
        for (u32 m = 0; m < TM; m++) {
            const u32 pos = group * TM + m;
            const bool lane_on = pos < L.n_active_out;
            const u32 oc = lane_on ? W.out_ch[pos] : 0;
            // counters: kbase = base + kpos*in_c (the kernel position's bytes), ngt = ng*TN
            u32 kbase = L.weight_offset + oc * L.kk * L.in_c;
        words_oc:
            for (u32 r = 0, ng = 0, ngt = 0; r < words; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = TC_MAC_STEPS
#pragma HLS PIPELINE II = 1
                for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
                    const u32 p = ngt + j;
                    s8 v = 0;
                    if (lane_on && p < n_in) v = (s8)wmem[kbase + W.in_ch[p]];
                    wbuf[sel][m][j][r] = v;
                }
                ngt += TN;
                if (++ng == L.ngi) {
                    ng = 0;
                    ngt = 0;
                    kbase += L.in_c;
                }
            }
        }
        return (u64)TM * words + CYC_AXI_LATENCY;
    }
    // ic-major: per (active input channel, kernel position) the group's m_g output channels,
    // the k*k rows of one channel contiguous
    const u32 rows = L.ngi * TN;
    const u32 m_g = L.out_c - group * TM < TM ? L.out_c - group * TM : TM;
ch_ic:
    for (u32 p = 0; p < rows; p++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_NGI * TN
        const u32 ng = p / TN, j = p % TN;
        const u32 ic = p < n_in ? W.in_ch[p] : 0;
        // counters: base = the (ic, group, kpos) row, word = kpos*ngi + ng
        u32 base = L.weight_offset + (ic * L.out_c + group * TM) * L.kk, word = ng;
    kpos_ic:
        for (u32 kpos = 0; kpos < L.kk; kpos++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_KERNEL_TAPS
#pragma HLS PIPELINE II = 1
            for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
                s8 v = 0;
                if (p < n_in && group * TM + m < L.n_active_out) v = (s8)wmem[base + m];
                wbuf[sel][m][j][word] = v;
            }
            base += m_g;
            word += L.ngi;
        }
    }
    return (u64)rows * L.kk + CYC_AXI_LATENCY;
}

// The depthwise weights of a whole layer (op OP_DWCONV, layout `dw`: [C][R] int8, R = k*k
// taps padded to TN), once per layer, into half 0: the channel at compact position
// pos = g*TM + m (its id out_ch[pos]; the identity when not gated) goes to lane m, words
// g*steps .. g*steps + steps-1, word r = taps r*TN .. r*TN+TN-1 (one MAC step). Loop: m-group
// x word x lane, pipelined at II=1, one TN-byte read per cycle (a channel's row is one
// burst); the lane words shift through a TM-word register and the group's TM lanes are
// written together after its last lane, so every buffer write has a compile-time lane
// index. Lanes past n_active_out get zero rows. Returns the pipelined iterations.
inline u64 load_dw_weights(const u8 *wmem, const Layer &L, const WorkList &W, WeightBufs wbuf) {
#pragma HLS INLINE off
    const u32 steps = ceil_div(L.kk, TN), row = steps * TN;   // words per row (dw_row_bytes)
    s8 lane_w[TM][TN];   // shift register: the word of lanes 0..TM-1
#pragma HLS ARRAY_PARTITION variable = lane_w complete dim = 0
    for (u32 i = 0; i < TM; i++) {
#pragma HLS UNROLL
        for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
            lane_w[i][j] = 0;
        }
    }
    u32 g = 0, r = 0, m = 0, word = 0;
dw_words:
    for (u32 it = 0; it < L.n_groups * steps * TM; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_G * DW_MAX_STEPS * TM
#pragma HLS PIPELINE II = 1
        const u32 pos = g * TM + m;
        const bool lane_on = pos < L.n_active_out;
        const u32 base = L.weight_offset + (lane_on ? W.out_ch[pos] : 0) * row + r * TN;
        for (u32 i = 0; i + 1 < TM; i++) {
#pragma HLS UNROLL
            for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
                lane_w[i][j] = lane_w[i + 1][j];
            }
        }
        for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
            lane_w[TM - 1][j] = lane_on ? (s8)wmem[base + j] : (s8)0;
        }
        if (m + 1 == TM) {   // the group's word r of every lane: one write per lane bank
            for (u32 i = 0; i < TM; i++) {
#pragma HLS UNROLL
                for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
                    wbuf[0][i][j][word] = lane_w[i][j];
                }
            }
            m = 0;
            word++;
            if (++r == steps) {
                r = 0;
                g++;
            }
        } else {
            m++;
        }
    }
    return (u64)L.n_groups * steps * TM + CYC_AXI_LATENCY;
}

// Params of the active output channels, by compact position: bias int32, mult int32.
inline u64 load_params(const u8 *wmem, const Layer &L, const WorkList &W,
                       s32 bias[PARAM_ROWS][TM], s32 mult[PARAM_ROWS][TM]) {
params:
    for (u32 pos = 0; pos < L.n_active_out; pos++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_OUT
#pragma HLS PIPELINE II = 1
        const u32 o = L.param_offset + W.out_ch[pos] * fmt::PARAM_BYTES;
        u32 b = (u32)wmem[o] | ((u32)wmem[o + 1] << 8) | ((u32)wmem[o + 2] << 16) | ((u32)wmem[o + 3] << 24);
        u32 m = (u32)wmem[o + 4] | ((u32)wmem[o + 5] << 8) | ((u32)wmem[o + 6] << 16) | ((u32)wmem[o + 7] << 24);
        bias[pos / TM][pos % TM] = (s32)b;
        mult[pos / TM][pos % TM] = (s32)m;
    }
    return (u64)L.n_active_out + CYC_AXI_LATENCY;
}

}  // namespace dg

#endif  // DG_WEIGHTS_H
