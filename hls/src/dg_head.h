// dg_head.h - the head record of a network program (SPEC13 section 2): global pool of the
// last block output from its per-tile channel sums, the int8 classifier, int64 logits.
//
//   pooled[c] = sum over every sum tile of sums[t][c]                         (int64)
//   logit[k]  = bias[k] + sum_c W[k][c] * pooled[c]                            (int64)
// (what host/runner.py computed before the head ran on the engine). Adds and products wrap
// modulo 2^64 like the gate unit's (never for real sums; garbage SUMS stays defined).
//
// Checks (before anything is written): must be the last record of the start (BAD_OP, 0);
// reserved words/bits (BAD_GATE, the word); 1 <= in_c <= max_in and 1 <= classes <=
// MAX_CLASSES (BAD_SHAPE, word 1); 1 <= st_h, st_w <= max_grid (BAD_TILE, word 2);
// offsets AXI-aligned with their section inside the region (BAD_OFFSET, the word): the
// sums, the params (W [classes][in_c] int8, then at the next aligned offset bias int32
// [classes]), the logits (int64 [classes]) and the cycle log (u32 [layer_count]).
#ifndef DG_HEAD_H
#define DG_HEAD_H

#include "dg_gate.h"

namespace dg {

struct HeadRec {
    u32 in_c, classes, st_h, st_w;
    u32 sums_offset, param_offset, logits_offset, log_offset;
    u64 bias_offset;   // absolute WEIGHT offset of the bias section
};

inline u64 head_param_bytes(u64 in_c, u64 classes) { return align_up(classes * in_c) + 4 * classes; }

inline DescCheck check_head_record(const u32 w[desc::WORDS], HeadRec &H, const Regions &R,
                                   u32 layer_count) {
    const u32 rw = first_reserved_word(w, head::ALL_FIELDS);
    if (rw < desc::WORDS) return {err::BAD_GATE, rw};
    H.in_c = rfield(w, head::in_c);
    H.classes = rfield(w, head::classes);
    H.st_h = rfield(w, head::st_h);
    H.st_w = rfield(w, head::st_w);
    H.sums_offset = rfield(w, head::sums_offset);
    H.param_offset = rfield(w, head::param_offset);
    H.logits_offset = rfield(w, head::logits_offset);
    H.log_offset = rfield(w, head::log_offset);
    if (H.in_c < 1 || H.in_c > MAX_IN) return {err::BAD_SHAPE, head::in_c.word};
    if (H.classes < 1 || H.classes > fmt::MAX_CLASSES) return {err::BAD_SHAPE, head::classes.word};
    if (H.st_h < 1 || H.st_h > MAX_GRID) return {err::BAD_TILE, head::st_h.word};
    if (H.st_w < 1 || H.st_w > MAX_GRID) return {err::BAD_TILE, head::st_w.word};
    if (section_bad(H.sums_offset, 4ull * H.st_h * H.st_w * H.in_c, R.sums))
        return {err::BAD_OFFSET, head::sums_offset.word};
    if (section_bad(H.param_offset, head_param_bytes(H.in_c, H.classes), R.weight))
        return {err::BAD_OFFSET, head::param_offset.word};
    if (section_bad(H.logits_offset, 8ull * H.classes, R.work))
        return {err::BAD_OFFSET, head::logits_offset.word};
    if (section_bad(H.log_offset, 4ull * layer_count, R.work))
        return {err::BAD_OFFSET, head::log_offset.word};
    H.bias_offset = (u64)H.param_offset + head::param_bias_offset(H.in_c, H.classes, AXI_BYTES);
    return {err::OK, 0};
}

// Global pool + classifier; writes the logits. Returns its cycles. The pooled sums live in
// the gate unit's tot[] (max_in int64, TN-partitioned): the head keeps no array of its own;
// the class rows stream (TN int8 weights per step).
inline u64 run_head(const u8 *wmem, u8 *work, const s32 *sums, const HeadRec &H) {
    s64 *pooled = gate_bufs().tot;   // the gate unit's per-channel vector (records run one at a time)
    const u32 ngi = ceil_div(H.in_c, TN);
    const u32 tiles = H.st_h * H.st_w;
    const u64 sbase = H.sums_offset / 4;
head_groups:   // the gate unit's totals loop per channel group (one cycle per group's start)
    for (u32 ng = 0, c0 = 0; ng < ngi; ng++, c0 += TN) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_NGI
        group_totals(sums, sbase, tiles, H.in_c, c0, H.in_c - c0 < TN ? H.in_c - c0 : TN, pooled);
    }
    u64 cycles = ngi + stream_cycles((u64)tiles * ngi, 4ull * tiles * H.in_c);
classes:
    for (u32 k = 0; k < H.classes; k++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = fmt::MAX_CLASSES
        const s64 acc = wadd((s64)(s32)rd_u32(wmem, H.bias_offset + 4ull * k),
                             dot_w<1>(wmem, H.param_offset + (u64)k * H.in_c, pooled, H.in_c));
        wr_s64(work, H.logits_offset + 8ull * k, acc);
    }
    cycles += stream_cycles((u64)H.classes * ngi, (u64)H.classes * H.in_c + 4ull * H.classes) +
              H.classes;
    return cycles;
}

// The per-record cycle log, u32 [n] at log_offset (a count above 2^32-1 saturates).
inline void write_cycle_log(u8 *work, const HeadRec &H, const u64 *log, u32 n) {
cycle_log:
    for (u32 i = 0; i < n; i++) {   // II=1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_LAYERS
#pragma HLS PIPELINE II = 1
        wr_u32(work, H.log_offset + 4ull * i, log[i] > 0xFFFFFFFFull ? 0xFFFFFFFFu : (u32)log[i]);
    }
}

}  // namespace dg

#endif  // DG_HEAD_H
