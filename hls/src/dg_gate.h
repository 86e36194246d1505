// dg_gate.h - the gate unit: one gate record or gate-2 record of a network program (SPEC13
// sections 1, 2; docs/formats.md "Bottleneck blocks and the gate-2 record").
//
// A gate record evaluates both gates of a block from the per-tile channel sums of the block
// input (SUMS, written by the layer that produced it) in integer arithmetic, writes the
// masks and the work lists of the block's conv1/conv2 to WORK and hands the counts (nt
// active tiles, nc active channels) to the following `from_gate` conv records. A gate-2
// record (Bottleneck blocks) evaluates mask_c2 from conv1's compact sums over the active
// tiles with the SAME channel-gate datapath (`channel_gate`, one call site in
// `run_gate_unit`), writes mask_c2 and the conv2/conv3 channel lists and hands nc2 on.
//
// Arithmetic (dgfpga.numerics.gates, the golden model), all int64:
//   R(n) recips come with the params;  P = (S * R + 2^(RB-F-1)) >> (RB-F)
//   spatial  L[gy,gx] = bs + sum_{c,ky,kx} ws[ky*3+kx][c] * P[c, gy+ky-1, gx+kx-1]   on: L >= 0
//   channel  A[j] = sum_c w1[j,c] * Pt[c];  h[j] = clamp((A*m1 + o1 + 2^(s-1)) >> s, 0, HMAX)
//            logit[m] = b2[m] + sum_j w2[m,j] * h[j]                                 on: >= 0
// Every add and multiply wraps modulo 2^64 (ws/w1/w2 are int16, so a program from the
// quantizer never wraps; a corrupt SUMS region gives deterministic garbage, not UB).
//
// Checks (all before anything is written), STATUS code and ENTRY:
//   reserved words/bits                            BAD_GATE, the word
//   1 <= in_c <= max_in, 1 <= out_c <= max_out     BAD_SHAPE, word 1
//   1 <= hidden <= in_c                            BAD_SHAPE, word 2
//   1 <= h_shift <= 62                             BAD_GATE, word 2
//   1 <= st_h, st_w, gh, gw <= max_grid            BAD_TILE, word 3
//   flags other than res_list                      BAD_FLAGS, word 4
//   offsets: AXI-aligned, section inside region    BAD_OFFSET, the word (5..13)
//   params: bin 0 <= start < end <= st (rows: st_h, cols: st_w); recip in 1..2^RB;
//           |bs|, |o1[j]|, |b2[m]| < 2^46          BAD_GATE, index within the section
//
// Hardware order (each loop is written for the II in its comment; the gate MAC loops take
// TN channels per step): load + check the small params (bins, recips, bs; o1 and b2 are
// checked in a streaming pass, not stored) -> the spatial gate and the channel totals,
// CHANNEL-GROUP OUTER: per group of TN input channels its whole-map totals (into tot[]),
// its 9 tap weights, then one row bin at a time its row-bin sums (a [max_grid] x TN
// window), per bin the column-bin sum, pool, 3x3 taps scattered into the gh*gw int64 logit
// registers (exact int64, so the order of summation over groups changes nothing) -> Pt ->
// fc1 (w1, m1, o1 streamed) -> fc2 (w2, b2 streamed, one output channel per row) ->
// decisions -> masks and lists written. Cycle model: docs/hls.md.
//
// On-chip arrays of the gate unit and the head (GateBufs, one instance, shared: the head's
// global pool sums into tot[]), bytes at ultra96 16x16, max_grid 16 (max_tiles 256), 2048
// channels (storage width as the hardware holds it; bool = 1 bit):
//   tot      s64 [max_in]              16384   totals -> Pt; gate-2 compact totals; head pool
//   hid      u16 [max_in]               4096   hidden units 0..GATE_HIDDEN_MAX (15 bits)
//   chans    u16 [max_out]              4096   the active out-channel list (gate, gate-2)
//   ch_on    1b  [max_out]               256   channel decisions
//   cbits    u32 [max_out/32]            256   channel bitmap words
//   in_words u32 [bitmap + max_in/32]    288   gate-2: the gate record's masks
//   rowsum   s64 [max_grid][TN]         2048   one row bin of one channel group
//   ws       s16 [9][TN]                 288   one channel group's spatial taps
//   logit    s64 [max_tiles]            2048   spatial logits
//   recip    u32 [max_tiles+1]          1028   pooling reciprocals
//   bins     u8  [4*max_grid]             64
//   tiles, res, tiles2  u16 [max_tiles] 1536   tile lists (gate, gate-2)
//   tile_on  1b  [max_tiles], tbits u32 [8]  64
//   total                             32464 (31.7 KiB; before the channel-group-outer
//   restructuring 419,756 B: rowsum [max_grid][max_in] s64 alone was 256 KiB, ws [9][max_in]
//   36 KiB, m1/o1/b2/cacc/the head's pool 72 KiB). Only tot, hid and chans are per-channel
//   vectors; no array scales with channels x grid or channels x taps.
#ifndef DG_GATE_H
#define DG_GATE_H

#include "dg_descriptor.h"

namespace dg {

constexpr unsigned MAX_GRID = config::max_grid;
constexpr unsigned MAX_BINS = 2 * (MAX_GRID + MAX_GRID);   // bins section: rs,re per row, cs,ce per col
constexpr unsigned MAX_HIDDEN = MAX_IN;                    // hidden <= in_c
constexpr unsigned GATE_TAPS = 9;
static_assert(fmt::GATE_HIDDEN_MAX <= 0xFFFF, "hidden units (0..GATE_HIDDEN_MAX) are stored as u16");
static_assert(MAX_TILES >= MAX_GRID * MAX_GRID && 32 * BITMAP_WORDS >= MAX_TILES,
              "a gate's gh x gw grid (each up to max_grid) must fit the tile arrays");
static_assert(fmt::GATE_RECIP_BITS > fmt::GATE_FRAC_BITS && fmt::GATE_SHIFT_MAX <= 62,
              "pool shift and hidden shift stay inside int64");

// ---- wrapping int64 arithmetic (two's complement, as the hardware's adders) ----
inline s64 wadd(s64 a, s64 b) {
#pragma HLS INLINE
    return (s64)((u64)a + (u64)b);
}
inline s64 wmul(s64 a, s64 b) {
#pragma HLS INLINE
    return (s64)((u64)a * (u64)b);
}
// P = (S * R + 2^(RB-F-1)) >> (RB-F), arithmetic shift
inline s64 gate_pool(s64 s, u32 recip) {
#pragma HLS INLINE
    constexpr u32 sh = fmt::GATE_RECIP_BITS - fmt::GATE_FRAC_BITS;
    return wadd(wmul(s, (s64)recip), (s64)1 << (sh - 1)) >> sh;
}

// ---- little-endian memory helpers ----
inline u32 rd_u32(const u8 *m, u64 o) {
#pragma HLS INLINE
    return (u32)m[o] | ((u32)m[o + 1] << 8) | ((u32)m[o + 2] << 16) | ((u32)m[o + 3] << 24);
}
inline s16 rd_s16(const u8 *m, u64 o) {
#pragma HLS INLINE
    return (s16)(u16)((u32)m[o] | ((u32)m[o + 1] << 8));
}
inline s64 rd_s64(const u8 *m, u64 o) {
#pragma HLS INLINE
    return (s64)((u64)rd_u32(m, o) | ((u64)rd_u32(m, o + 4) << 32));
}
inline void wr_u16(u8 *m, u64 o, u32 v) {
#pragma HLS INLINE
    m[o] = (u8)v;
    m[o + 1] = (u8)(v >> 8);
}
inline void wr_u32(u8 *m, u64 o, u32 v) {
#pragma HLS INLINE
    for (u32 i = 0; i < 4; i++) m[o + i] = (u8)(v >> (8 * i));
}
inline void wr_s64(u8 *m, u64 o, s64 v) {
#pragma HLS INLINE
    const u64 u = (u64)v;
    for (u32 i = 0; i < 8; i++) m[o + i] = (u8)(u >> (8 * i));
}

inline u64 align_up(u64 n) { return (n + AXI_BYTES - 1) / AXI_BYTES * AXI_BYTES; }
inline u64 beats(u64 bytes) { return (bytes + AXI_BYTES - 1) / AXI_BYTES; }
// A pipelined loop of `steps` II=1 iterations fed by one AXI read stream of `bytes`: it runs
// at the slower of the two, plus the burst latency and the pipeline fill.
inline u64 stream_cycles(u64 steps, u64 bytes) {
    const u64 b = beats(bytes);
    return CYC_AXI_LATENCY + (steps > b ? steps : b) + CYC_PIPE;
}

inline u32 rfield(const u32 w[desc::WORDS], desc::Field f) {
#pragma HLS INLINE
    return (w[f.word] >> f.lsb) & desc::mask(f);
}

// ---- the gate parameter blob (WEIGHT): sections aligned to the AXI width ----
struct GateLayout {
    u64 bins, recip, ws, bs, w1, m1, o1, w2, b2, nbytes;
};

inline GateLayout gate_param_layout(u64 in_c, u64 out_c, u64 hidden, u64 gh, u64 gw) {
    GateLayout g;
    g.bins = 0;
    g.recip = g.bins + align_up(2 * gh + 2 * gw);
    g.ws = g.recip + align_up(4 * (gh * gw + 1));
    g.bs = g.ws + align_up(2 * GATE_TAPS * in_c);
    g.w1 = g.bs + align_up(8);
    g.m1 = g.w1 + align_up(2 * hidden * in_c);
    g.o1 = g.m1 + align_up(4 * hidden);
    g.w2 = g.o1 + align_up(8 * hidden);
    g.b2 = g.w2 + align_up(2 * out_c * hidden);
    g.nbytes = g.b2 + 8 * out_c;
    return g;
}

inline u32 bitmap_words_of(u32 n) { return (n + 31) / 32; }
// masks (WORK): tile bitmap words then channel bitmap words
inline u64 mask_bytes(u32 n_tiles, u32 out_c) {
    return 4ull * (bitmap_words_of(n_tiles) + bitmap_words_of(out_c));
}

// ---- the decoded gate record ----
struct GateRec {
    u32 in_c, out_c, hidden, h_shift, st_h, st_w, gh, gw;
    bool res_list;
    u32 sums_offset, param_offset, mask_offset, c1_tiles, c1_out_ch, c2_tiles, c2_res_tiles,
        c2_in_ch, c2_bitmap;
    u32 n_tiles;        // gh * gw
    GateLayout lay;     // absolute WEIGHT offsets of the param sections
};

// The counts the gate unit hands to the following from_gate conv records: (nt, nc) of the
// last gate record, nc2 of the last gate-2 record after it (has_nc2: one ran since that
// gate record; every gate record clears it).
struct GateState {
    bool seen;
    u32 nt, nc;
    bool has_nc2;
    u32 nc2;
};

// Reserved bits of a record (bits no field of `fields` covers): the first word holding one.
template <unsigned NF>
inline u32 first_reserved_word(const u32 w[desc::WORDS], const desc::Field (&fields)[NF]) {
    u32 bad = desc::WORDS;
reserved:
    for (u32 i = 0; i < desc::WORDS; i++) {
#pragma HLS UNROLL
        u32 covered = 0;
        for (u32 f = 0; f < NF; f++) {
#pragma HLS UNROLL
            if (fields[f].word == i) covered |= desc::mask(fields[f]) << fields[f].lsb;
        }
        if ((w[i] & ~covered) && bad == desc::WORDS) bad = i;
    }
    return bad;
}

// One section a record reads or writes: alignment, then inside its region.
inline bool section_bad(u32 offset, u64 bytes, u32 region_bytes) {
#pragma HLS INLINE
    return offset % AXI_BYTES || (u64)offset + bytes > region_bytes;
}

// Every check of program.unpack_gate_record (validate_gate_record), in its order: reserved
// bits in word order, the field ranges, the sections (sized for all tiles and channels).
inline DescCheck check_gate_record(const u32 w[desc::WORDS], GateRec &G, const Regions &R) {
    const u32 rw = first_reserved_word(w, gate::ALL_FIELDS);
    if (rw < desc::WORDS) return {rw == fmt::GATE_FLAGS_WORD ? err::BAD_FLAGS : err::BAD_GATE, rw};
    G.in_c = rfield(w, gate::in_c);
    G.out_c = rfield(w, gate::out_c);
    G.hidden = rfield(w, gate::hidden);
    G.h_shift = rfield(w, gate::h_shift);
    G.st_h = rfield(w, gate::st_h);
    G.st_w = rfield(w, gate::st_w);
    G.gh = rfield(w, gate::gh);
    G.gw = rfield(w, gate::gw);
    G.res_list = rfield(w, gate::res_list);
    G.sums_offset = rfield(w, gate::sums_offset);
    G.param_offset = rfield(w, gate::param_offset);
    G.mask_offset = rfield(w, gate::mask_offset);
    G.c1_tiles = rfield(w, gate::c1_tiles_offset);
    G.c1_out_ch = rfield(w, gate::c1_out_ch_offset);
    G.c2_tiles = rfield(w, gate::c2_tiles_offset);
    G.c2_res_tiles = rfield(w, gate::c2_res_tiles_offset);
    G.c2_in_ch = rfield(w, gate::c2_in_ch_offset);
    G.c2_bitmap = rfield(w, gate::c2_bitmap_offset);
    if (G.in_c < 1 || G.in_c > MAX_IN) return {err::BAD_SHAPE, gate::in_c.word};
    if (G.out_c < 1 || G.out_c > MAX_OUT) return {err::BAD_SHAPE, gate::out_c.word};
    if (G.hidden < 1 || G.hidden > G.in_c) return {err::BAD_SHAPE, gate::hidden.word};
    if (G.h_shift < 1 || G.h_shift > fmt::GATE_SHIFT_MAX) return {err::BAD_GATE, gate::h_shift.word};
    if (G.st_h < 1 || G.st_h > MAX_GRID) return {err::BAD_TILE, gate::st_h.word};
    if (G.st_w < 1 || G.st_w > MAX_GRID) return {err::BAD_TILE, gate::st_w.word};
    if (G.gh < 1 || G.gh > MAX_GRID) return {err::BAD_TILE, gate::gh.word};
    if (G.gw < 1 || G.gw > MAX_GRID) return {err::BAD_TILE, gate::gw.word};
    if (!G.res_list && G.c2_res_tiles) return {err::BAD_OFFSET, gate::c2_res_tiles_offset.word};
    G.n_tiles = G.gh * G.gw;
    const GateLayout rel = gate_param_layout(G.in_c, G.out_c, G.hidden, G.gh, G.gw);
    const u64 N = G.n_tiles;
    struct Sec {
        u32 offset;
        u64 bytes;
        u32 region_bytes;
        u32 word;
        bool used;
    };
    const Sec secs[9] = {
        {G.sums_offset, 4ull * G.st_h * G.st_w * G.in_c, R.sums, gate::sums_offset.word, true},
        {G.param_offset, rel.nbytes, R.weight, gate::param_offset.word, true},
        {G.mask_offset, mask_bytes(G.n_tiles, G.out_c), R.work, gate::mask_offset.word, true},
        {G.c1_tiles, 2 * N, R.work, gate::c1_tiles_offset.word, true},
        {G.c1_out_ch, 2ull * G.out_c, R.work, gate::c1_out_ch_offset.word, true},
        {G.c2_tiles, 2 * N, R.work, gate::c2_tiles_offset.word, true},
        {G.c2_res_tiles, 2 * N, R.work, gate::c2_res_tiles_offset.word, G.res_list},
        {G.c2_in_ch, 2ull * G.out_c, R.work, gate::c2_in_ch_offset.word, true},
        {G.c2_bitmap, 4ull * bitmap_words_of(G.n_tiles), R.work, gate::c2_bitmap_offset.word, true},
    };
sections:
    for (u32 i = 0; i < 9; i++) {
        if (secs[i].used && section_bad(secs[i].offset, secs[i].bytes, secs[i].region_bytes))
            return {err::BAD_OFFSET, secs[i].word};
    }
    G.lay = rel;
    const u64 base = G.param_offset;
    G.lay.bins += base;
    G.lay.recip += base;
    G.lay.ws += base;
    G.lay.bs += base;
    G.lay.w1 += base;
    G.lay.m1 += base;
    G.lay.o1 += base;
    G.lay.w2 += base;
    G.lay.b2 += base;
    return {err::OK, 0};
}

// ---- on-chip state of the gate unit (sized from the configuration; bytes: file header) ----
// Nothing here is sized channels x grid or channels x taps: the spatial gate runs channel
// group by channel group (TN channels), with that group's row-bin sums and tap weights only.
struct GateBufs {
    u8 bins[MAX_BINS];                  // rs,re per row bin, then cs,ce per col bin
    u32 recip[MAX_TILES + 1];           // per bin (row-major), then the channel gate's
    s16 ws[GATE_TAPS][TN];              // spatial weights of ONE channel group, tap-major
    s64 bs;
    s64 tot[MAX_IN];                    // channel totals (whole map), then Pt; the head's pool
    s64 rowsum[MAX_GRID][TN];           // one row bin of one channel group, per sum-tile column
    s64 logit[MAX_TILES];               // spatial logits (scatter accumulators)
    u16 hid[MAX_HIDDEN];                // channel gate hidden units, 0..GATE_HIDDEN_MAX
    bool tile_on[MAX_TILES];
    bool ch_on[MAX_OUT];
    u16 chans[MAX_OUT];                 // active out-channel list (gate and gate-2 writes)
    u32 cbits[ceil_div(MAX_OUT, 32)];   // its bitmap words
    u32 in_words[BITMAP_WORDS + ceil_div(MAX_IN, 32)];   // gate-2: the gate record's masks
};

// The one instance of the gate unit's arrays (the gate and gate-2 records and the head run
// one at a time and share them).
inline GateBufs &gate_bufs() {
    static GateBufs B;
#pragma HLS ARRAY_PARTITION variable = B.ws complete dim = 2
#pragma HLS ARRAY_PARTITION variable = B.tot cyclic factor = TN
#pragma HLS ARRAY_PARTITION variable = B.rowsum complete dim = 2
#pragma HLS ARRAY_PARTITION variable = B.hid cyclic factor = TN
    return B;
}

inline bool out_of_limit(s64 v) {
#pragma HLS INLINE
    return v >= (s64)fmt::GATE_BIAS_LIMIT || v <= -(s64)fmt::GATE_BIAS_LIMIT;
}

// The channel gate's hidden offsets (o1) and biases (b2) checked in blob order (|o1|, |b2|
// < 2^46: BAD_GATE, ENTRY = index): one streaming pass, nothing stored (fc1 and fc2 read
// m1/o1 and b2 again next to their weight rows). One checker for the gate and the gate-2
// records, whose channel-gate datapath is shared.
template <typename Layout>
inline DescCheck check_channel_gate_params(const u8 *wmem, const Layout &lay, u32 hidden,
                                           u32 out_c, u64 &cycles) {
    u32 bad = 0xFFFFFFFFu;
o1:
    for (u32 j = 0; j < hidden; j++) {   // II=1: o1[j] per step
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_HIDDEN
#pragma HLS PIPELINE II = 1
        if (out_of_limit(rd_s64(wmem, lay.o1 + 8ull * j)) && bad == 0xFFFFFFFFu) bad = j;
    }
    cycles += stream_cycles(hidden, 8ull * hidden);
    if (bad != 0xFFFFFFFFu) return {err::BAD_GATE, bad};
b2:
    for (u32 m = 0; m < out_c; m++) {   // II=1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_OUT
#pragma HLS PIPELINE II = 1
        if (out_of_limit(rd_s64(wmem, lay.b2 + 8ull * m)) && bad == 0xFFFFFFFFu) bad = m;
    }
    cycles += stream_cycles(out_c, 8ull * out_c);
    if (bad != 0xFFFFFFFFu) return {err::BAD_GATE, bad};
    return {err::OK, 0};
}

// Load the small parameter sections onto the chip and check them (BAD_GATE, ENTRY = index
// within the section). One AXI read stream per section; the checks run in the load loops.
// The spatial weights ws are read per channel group by the spatial gate (no check).
inline DescCheck load_gate_params(const u8 *wmem, const GateRec &G, GateBufs &B, u64 &cycles) {
    const u32 nb = 2 * (G.gh + G.gw);
    u32 bad = 0xFFFFFFFFu;
bins:
    for (u32 i = 0; i < nb; i++) {   // II=1, one byte per step
#pragma HLS LOOP_TRIPCOUNT min = 4 max = MAX_BINS
#pragma HLS PIPELINE II = 1
        B.bins[i] = wmem[G.lay.bins + i];
    }
bins_check:
    for (u32 p = 0; p < G.gh + G.gw; p++) {   // II=1, one bin per step
#pragma HLS LOOP_TRIPCOUNT min = 2 max = 2 * MAX_GRID
#pragma HLS PIPELINE II = 1
        const u32 lim = p < G.gh ? G.st_h : G.st_w;
        const u32 s = B.bins[2 * p], e = B.bins[2 * p + 1];
        if (bad == 0xFFFFFFFFu) {
            if (s >= lim) bad = 2 * p;                      // start: 0..lim-1
            else if (!(s < e && e <= lim)) bad = 2 * p + 1;   // end: start+1..lim
        }
    }
    cycles += CYC_AXI_LATENCY + beats(nb) + (G.gh + G.gw);
    if (bad != 0xFFFFFFFFu) return {err::BAD_GATE, bad};
    const u32 nr = G.n_tiles + 1;
recips:
    for (u32 i = 0; i < nr; i++) {   // II=1, one u32 per step
#pragma HLS LOOP_TRIPCOUNT min = 2 max = MAX_TILES + 1
#pragma HLS PIPELINE II = 1
        const u32 r = rd_u32(wmem, G.lay.recip + 4ull * i);
        B.recip[i] = r;
        if ((r < 1 || r > fmt::GATE_RECIP_MAX) && bad == 0xFFFFFFFFu) bad = i;
    }
    cycles += stream_cycles(nr, 4ull * nr);
    if (bad != 0xFFFFFFFFu) return {err::BAD_GATE, bad};
    B.bs = rd_s64(wmem, G.lay.bs);
    cycles += CYC_AXI_LATENCY + 1;
    if (out_of_limit(B.bs)) return {err::BAD_GATE, 0};
    {
        const DescCheck c = check_channel_gate_params(wmem, G.lay, G.hidden, G.out_c, cycles);
        if (c.code != err::OK) return c;
    }
    return {err::OK, 0};   // ws: per channel group in spatial_gate_and_totals
}

// Whole-map totals (int64, wrapping) of channel group c0 .. c0+nl-1 (nl <= TN) over `tiles`
// >= 1 sum tiles of `in_c` int32 channel sums at sums[sbase..] into tot[c0 ..]: one burst of
// nl sums per tile, TN sums per step (II=1); the first tile assigns, so no clearing pass.
// The one totals loop of the gate unit: the gate record's spatial gate calls it per channel
// group (before the group's row bins), the head per channel group for its global pool.
inline void group_totals(const s32 *sums, u64 sbase, u32 tiles, u32 in_c, u32 c0, u32 nl,
                         s64 tot[MAX_IN]) {
#pragma HLS INLINE
group_totals:
    for (u32 t = 0; t < tiles; t++) {   // II=1, TN sums per step
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_TILES
#pragma HLS PIPELINE II = 1
        for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
            const u32 c = c0 + j;
            if (j < nl) {
                const s64 v = sums[sbase + (u64)t * in_c + c];
                tot[c] = t == 0 ? v : wadd(tot[c], v);
            }
        }
    }
}

// sum_{i < n} w[i] * x[i] (int64, wrapping) with the weights w streamed from wmem at byte
// offset `base`, WB bytes each (2: the gates' int16 fc1 / fc2 rows, 1: the head's int8 class
// rows), TN products + an adder tree per step.
template <unsigned WB, typename T>
inline s64 dot_w(const u8 *wmem, u64 base, const T *x, u32 n) {
    static_assert(WB == 1 || WB == 2, "int8 or int16 weights");
    s64 a = 0;
dot_groups:
    for (u32 ng = 0; ng < ceil_div(n, TN); ng++) {   // II=1: TN products + adder tree
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_NGI
#pragma HLS PIPELINE II = 1
        s64 dot = 0;
        for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
            const u32 i = ng * TN + j;
            if (i < n) {
                const s64 w = WB == 2 ? (s64)rd_s16(wmem, base + 2ull * i) : (s64)(s8)wmem[base + i];
                dot = wadd(dot, wmul(w, (s64)x[i]));
            }
        }
        a = wadd(a, dot);
    }
    return a;
}

// The channel-gate datapath of the gate unit, ONE instance shared by the gate record
// (mask_c1) and the gate-2 record (mask_c2): Pt from the totals in B.tot (in place), fc1
// (w1 streamed from WEIGHT, TN channels per step; m1[j], o1[j] read with row j) ->
// requantized hidden units -> fc2 (w2 streamed, TN hidden units per step; b2[m] read with
// row m) -> decisions in B.ch_on. Returns its cycles.
struct ChannelGateArgs {
    u32 in_c, out_c, hidden, h_shift;
    u32 recip;          // R(H*W) of the map the totals were summed over
    u64 w1, w2;         // absolute WEIGHT offsets of fc1 [hidden][in_c] and fc2 [out_c][hidden]
    u64 m1, o1, b2;     // absolute WEIGHT offsets of m1 [hidden], o1 [hidden], b2 [out_c]
};

inline u64 channel_gate(const u8 *wmem, const ChannelGateArgs &A, GateBufs &B) {
#pragma HLS INLINE off
    const u32 ngi = ceil_div(A.in_c, TN);
pool_total:
    for (u32 ng = 0; ng < ngi; ng++) {   // II=1, TN multipliers
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_NGI
#pragma HLS PIPELINE II = 1
        for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
            const u32 c = ng * TN + j;
            if (c < A.in_c) B.tot[c] = gate_pool(B.tot[c], A.recip);
        }
    }
    u64 cycles = ngi + CYC_PIPE;
fc1:
    for (u32 hj = 0; hj < A.hidden; hj++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_HIDDEN
        const s64 a = dot_w<2>(wmem, A.w1 + 2ull * hj * A.in_c, B.tot, A.in_c);
        const s32 m1 = (s32)rd_u32(wmem, A.m1 + 4ull * hj);
        const s64 o1 = rd_s64(wmem, A.o1 + 8ull * hj);
        const s64 z = wadd(wadd(wmul(a, m1), o1), (s64)1 << (A.h_shift - 1)) >> A.h_shift;
        B.hid[hj] = (u16)(z < 0 ? 0 : (z > (s64)fmt::GATE_HIDDEN_MAX ? (s64)fmt::GATE_HIDDEN_MAX : z));
    }
    // the w1 rows and, beside them, m1/o1 (12 bytes per hidden unit) from one read stream
    cycles += stream_cycles((u64)A.hidden * ngi, 2ull * A.hidden * A.in_c + 12ull * A.hidden) +
              A.hidden;
    const u32 ngh = ceil_div(A.hidden, TN);
fc2:
    for (u32 m = 0; m < A.out_c; m++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_OUT
        const s64 b2 = rd_s64(wmem, A.b2 + 8ull * m);
        const s64 acc = wadd(b2, dot_w<2>(wmem, A.w2 + 2ull * m * A.hidden, B.hid, A.hidden));
        B.ch_on[m] = acc >= 0;
    }
    cycles += stream_cycles((u64)A.out_c * ngh, 2ull * A.out_c * A.hidden + 8ull * A.out_c);
    return cycles;
}

// The gate record's inputs, channel group by channel group (TN input channels, c0 = ng*TN):
// the group's whole-map totals over every sum tile (into B.tot, for the channel gate), its 9
// spatial tap weights (B.ws, one short burst per tap), then its spatial-gate contribution one
// row bin at a time: the row-bin sums per sum-tile column (B.rowsum, [st_w] x TN), per bin
// the column-bin sum, TN pooling multipliers and the 9 taps scattered into the gh*gw int64
// logits. The logits sum over groups in exact (wrapping) int64, so the group order gives the
// interpreter's values bit for bit. Then L >= 0 -> tile on. (Skipped under RUN_DENSE.)
inline u64 spatial_gate_and_totals(const u8 *wmem, const s32 *sums, const GateRec &G, GateBufs &B) {
    u64 cycles = 0;
    const u32 ngi = ceil_div(G.in_c, TN);
    const u32 st_tiles = G.st_h * G.st_w;
    const u64 sbase = G.sums_offset / 4;
    // -- spatial gate: logits start at the bias; each bin of each group scatters its 9 taps
logit_init:
    for (u32 i = 0; i < G.n_tiles; i++) {   // II=1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_TILES
#pragma HLS PIPELINE II = 1
        B.logit[i] = B.bs;
    }
    cycles += G.n_tiles;
    u32 bin_rows = 0;   // sum-tile rows the row bins read (overlapping bins read a row again)
bin_rows:
    for (u32 gy = 0; gy < G.gh; gy++) {   // II=1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_GRID
#pragma HLS PIPELINE II = 1
        bin_rows += B.bins[2 * gy + 1] - B.bins[2 * gy];
    }
    cycles += G.gh;
groups:
    for (u32 ng = 0; ng < ngi; ng++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_NGI
        const u32 c0 = ng * TN;
        const u32 nl = G.in_c - c0 < TN ? G.in_c - c0 : TN;   // channels of this group
        // -- the group's totals over every sum tile (one burst of nl sums per tile)
        group_totals(sums, sbase, st_tiles, G.in_c, c0, nl, B.tot);
        // -- the group's spatial weights, ws[t][c0 .. c0+nl) (one burst per tap)
    group_ws:
        for (u32 t = 0; t < GATE_TAPS; t++) {   // II=1, TN weights per step
#pragma HLS PIPELINE II = 1
            for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
                B.ws[t][j] = j < nl ? rd_s16(wmem, G.lay.ws + 2ull * (t * G.in_c + c0 + j)) : (s16)0;
            }
        }
        // the group's reads (totals, taps, row-bin rows) are one address sequence known in
        // advance: one prefetched read stream of short bursts per group
        cycles += stream_cycles((u64)st_tiles + GATE_TAPS + (u64)bin_rows * G.st_w,
                                4ull * nl * ((u64)st_tiles + (u64)bin_rows * G.st_w) +
                                    2ull * GATE_TAPS * nl);
    row_bins:
        for (u32 gy = 0; gy < G.gh; gy++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_GRID
            const u32 rs = B.bins[2 * gy], re = B.bins[2 * gy + 1];
            // row-bin sums per sum-tile column: one read of the bin's sum-tile rows (TN channels)
        row_sum:
            for (u32 ty = rs; ty < re; ty++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_GRID
            row_sum_cols:
                for (u32 tx = 0; tx < G.st_w; tx++) {   // II=1, TN sums per step
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_GRID
#pragma HLS PIPELINE II = 1
                    for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
                        if (j < nl) {
                            const s64 v = sums[sbase + ((u64)ty * G.st_w + tx) * G.in_c + c0 + j];
                            B.rowsum[tx][j] = ty == rs ? v : wadd(B.rowsum[tx][j], v);
                        }
                    }
                }
            }
        col_bins:
            for (u32 gx = 0; gx < G.gw; gx++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_GRID
                const u32 cs = B.bins[2 * G.gh + 2 * gx], ce = B.bins[2 * G.gh + 2 * gx + 1];
                const u32 r = B.recip[gy * G.gw + gx];
                s64 p[TN];
#pragma HLS ARRAY_PARTITION variable = p complete
                for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
                    p[j] = 0;
                }
            bin_cols:
                for (u32 tx = cs; tx < ce; tx++) {   // II=1, TN adds per step
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_GRID
#pragma HLS PIPELINE II = 1
                    for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
                        if (j < nl) p[j] = wadd(p[j], B.rowsum[tx][j]);
                    }
                }
                for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
                    p[j] = gate_pool(p[j], r);   // TN pooling multipliers
                }
            taps:
                for (u32 t = 0; t < GATE_TAPS; t++) {   // II=1: TN products + adder tree per tap
#pragma HLS PIPELINE II = 1
                    const u32 ky = t / 3, kx = t % 3;
                    // bin (gy, gx) is tap (ky, kx) of logit (gy - ky + 1, gx - kx + 1)
                    const int ly = (int)gy - (int)ky + 1, lx = (int)gx - (int)kx + 1;
                    if (ly < 0 || ly >= (int)G.gh || lx < 0 || lx >= (int)G.gw) continue;
                    s64 dot = 0;
                    for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
                        if (j < nl) dot = wadd(dot, wmul(B.ws[t][j], p[j]));
                    }
                    const u32 li = (u32)ly * G.gw + (u32)lx;
                    B.logit[li] = wadd(B.logit[li], dot);
                }
                cycles += (ce - cs) + GATE_TAPS;
            }
            cycles += CYC_PIPE;   // the gx loop of one row bin of one group, flattened, II=1
        }
    }
decide_tiles:
    for (u32 i = 0; i < G.n_tiles; i++) {   // II=1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_TILES
#pragma HLS PIPELINE II = 1
        B.tile_on[i] = B.logit[i] >= 0;
    }
    cycles += G.n_tiles;
    return cycles;
}

// Write the masks and the block's work lists (the bytes formats.encode_work_list writes for
// the effective conv1/conv2); return (nt, nc) in S. One II=1 pass over the tiles and one
// over the channels build the lists on chip; then one AXI write burst per section, in the
// reference's order (masks, conv1's tile and out-channel lists, conv2's tile, residual-only
// and in-channel lists, conv2's bitmap), so sections that overlap in WORK end as there.
inline void write_u16_list(u8 *work, u32 offset, const u16 *list, u32 n) {
u16_list:
    for (u32 i = 0; i < n; i++) {   // II=1 (AXI_BYTES/2 entries per beat)
#pragma HLS LOOP_TRIPCOUNT min = 0 max = MAX_TILES
#pragma HLS PIPELINE II = 1
        wr_u16(work, offset + 2ull * i, list[i]);
    }
}

inline u64 write_gate_outputs(u8 *work, const GateRec &G, GateBufs &B, GateState &S) {
    static u16 tiles[MAX_TILES], res[MAX_TILES];
    static u32 tbits[BITMAP_WORDS];
    u16 *chans = B.chans;
    u32 *cbits = B.cbits;
    const u32 tw = bitmap_words_of(G.n_tiles), cw = bitmap_words_of(G.out_c);
    u32 nt = 0, nr = 0, nc = 0;
tile_lists:
    for (u32 i = 0; i < G.n_tiles; i++) {   // II=1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_TILES
#pragma HLS PIPELINE II = 1
        if (i % 32 == 0) tbits[i / 32] = 0;
        if (B.tile_on[i]) {
            tiles[nt++] = (u16)i;
            tbits[i / 32] |= 1u << (i % 32);
        } else {
            res[nr++] = (u16)i;
        }
    }
ch_lists:
    for (u32 m = 0; m < G.out_c; m++) {   // II=1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_OUT
#pragma HLS PIPELINE II = 1
        if (m % 32 == 0) cbits[m / 32] = 0;
        if (B.ch_on[m]) {
            chans[nc++] = (u16)m;
            cbits[m / 32] |= 1u << (m % 32);
        }
    }
mask_words:
    for (u32 k = 0; k < tw + cw; k++) {   // II=1
#pragma HLS LOOP_TRIPCOUNT min = 2 max = BITMAP_WORDS + ceil_div(MAX_OUT, 32)
#pragma HLS PIPELINE II = 1
        wr_u32(work, G.mask_offset + 4ull * k, k < tw ? tbits[k] : cbits[k - tw]);
    }
    write_u16_list(work, G.c1_tiles, tiles, nt);
    write_u16_list(work, G.c1_out_ch, chans, nc);
    write_u16_list(work, G.c2_tiles, tiles, nt);
    if (G.res_list) write_u16_list(work, G.c2_res_tiles, res, nr);
    write_u16_list(work, G.c2_in_ch, chans, nc);
bitmap_words:
    for (u32 k = 0; k < tw; k++) {   // II=1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = BITMAP_WORDS
#pragma HLS PIPELINE II = 1
        wr_u32(work, G.c2_bitmap + 4ull * k, tbits[k]);
    }
    S.seen = true;
    S.nt = nt;
    S.nc = nc;
    S.has_nc2 = false;   // a gate-2 record's count belongs to its own block
    S.nc2 = 0;
    // list building, then the write bursts (one AXI beat per cycle)
    return G.n_tiles + G.out_c + beats(4ull * (tw + cw)) + 2 * beats(2ull * nt) +
           2 * beats(2ull * nc) + (G.res_list ? beats(2ull * nr) : 0) + beats(4ull * tw) +
           CYC_PIPE;
}

// ================================================================== the gate-2 record
// A Bottleneck block's second channel gate (mask_c2, docs/formats.md "Bottleneck blocks and
// the gate-2 record"): from the gate record's masks (active tiles T, conv1's nc active
// channels c_0 < c_1 < ...) and conv1's compact per-tile sums [N][nc],
//   totals[c_j] = sum_{t in T} sums[t*nc + j]  (int64; inactive channels 0)
// then the channel gate on the pooled totals (R(H*W) of the block input), the same datapath
// as the gate record's. Checks, all before anything is written (STATUS code, ENTRY):
//   no gate record before it in the start        BAD_OP, 0 (the engine's dispatch)
//   reserved words/bits                           BAD_GATE, the word
//   1 <= in_c <= max_in, 1 <= out_c <= max_out    BAD_SHAPE, word 1
//   1 <= hidden <= in_c                           BAD_SHAPE, word 2
//   1 <= h_shift <= 62                            BAD_GATE, word 2
//   1 <= st_h, st_w <= max_grid                   BAD_TILE, word 3
//   offsets: AXI-aligned, section inside region   BAD_OFFSET, the word (4..9)
//   params: recip in 1..2^RB; |o1[j]|, |b2[m]| < 2^46   BAD_GATE, index within the section
//   a padding bit set in the masks it reads       BAD_GATE, word 6 (in_mask_offset)
struct Gate2Layout {
    u64 recip, w1, m1, o1, w2, b2, nbytes;
};

inline Gate2Layout gate2_param_layout(u64 in_c, u64 out_c, u64 hidden) {
    Gate2Layout g;
    g.recip = 0;
    g.w1 = g.recip + align_up(4);
    g.m1 = g.w1 + align_up(2 * hidden * in_c);
    g.o1 = g.m1 + align_up(4 * hidden);
    g.w2 = g.o1 + align_up(8 * hidden);
    g.b2 = g.w2 + align_up(2 * out_c * hidden);
    g.nbytes = g.b2 + 8 * out_c;
    return g;
}
static_assert(gate2::P_COUNT == 6 && gate2::PARAM_ELEM_BYTES[gate2::P_RECIP] == 4 &&
                  gate2::PARAM_ELEM_BYTES[gate2::P_W1] == 2 && gate2::PARAM_ELEM_BYTES[gate2::P_M1] == 4 &&
                  gate2::PARAM_ELEM_BYTES[gate2::P_O1] == 8 && gate2::PARAM_ELEM_BYTES[gate2::P_W2] == 2 &&
                  gate2::PARAM_ELEM_BYTES[gate2::P_B2] == 8,
              "gate2_param_layout follows the generated gate-2 parameter sections");

struct Gate2Rec {
    u32 in_c, out_c, hidden, h_shift, st_h, st_w;
    u32 sums_offset, param_offset, in_mask_offset, mask_offset, c2_out_ch, c3_in_ch;
    u32 n_tiles;        // st_h * st_w
    Gate2Layout lay;    // absolute WEIGHT offsets of the param sections
};

// Every check of program.unpack_gate2_record (validate_gate2_record), in its order.
inline DescCheck check_gate2_record(const u32 w[desc::WORDS], Gate2Rec &G, const Regions &R) {
    const u32 rw = first_reserved_word(w, gate2::ALL_FIELDS);
    if (rw < desc::WORDS) return {err::BAD_GATE, rw};
    G.in_c = rfield(w, gate2::in_c);
    G.out_c = rfield(w, gate2::out_c);
    G.hidden = rfield(w, gate2::hidden);
    G.h_shift = rfield(w, gate2::h_shift);
    G.st_h = rfield(w, gate2::st_h);
    G.st_w = rfield(w, gate2::st_w);
    G.sums_offset = rfield(w, gate2::sums_offset);
    G.param_offset = rfield(w, gate2::param_offset);
    G.in_mask_offset = rfield(w, gate2::in_mask_offset);
    G.mask_offset = rfield(w, gate2::mask_offset);
    G.c2_out_ch = rfield(w, gate2::c2_out_ch_offset);
    G.c3_in_ch = rfield(w, gate2::c3_in_ch_offset);
    if (G.in_c < 1 || G.in_c > MAX_IN) return {err::BAD_SHAPE, gate2::in_c.word};
    if (G.out_c < 1 || G.out_c > MAX_OUT) return {err::BAD_SHAPE, gate2::out_c.word};
    if (G.hidden < 1 || G.hidden > G.in_c) return {err::BAD_SHAPE, gate2::hidden.word};
    if (G.h_shift < 1 || G.h_shift > fmt::GATE_SHIFT_MAX) return {err::BAD_GATE, gate2::h_shift.word};
    if (G.st_h < 1 || G.st_h > MAX_GRID) return {err::BAD_TILE, gate2::st_h.word};
    if (G.st_w < 1 || G.st_w > MAX_GRID) return {err::BAD_TILE, gate2::st_w.word};
    G.n_tiles = G.st_h * G.st_w;
    const Gate2Layout rel = gate2_param_layout(G.in_c, G.out_c, G.hidden);
    struct Sec {
        u32 offset;
        u64 bytes;
        u32 region_bytes;
        u32 word;
    };
    const Sec secs[6] = {
        {G.sums_offset, 4ull * G.n_tiles * G.in_c, R.sums, gate2::sums_offset.word},
        {G.param_offset, rel.nbytes, R.weight, gate2::param_offset.word},
        {G.in_mask_offset, mask_bytes(G.n_tiles, G.in_c), R.work, gate2::in_mask_offset.word},
        {G.mask_offset, 4ull * bitmap_words_of(G.out_c), R.work, gate2::mask_offset.word},
        {G.c2_out_ch, 2ull * G.out_c, R.work, gate2::c2_out_ch_offset.word},
        {G.c3_in_ch, 2ull * G.out_c, R.work, gate2::c3_in_ch_offset.word},
    };
sections:
    for (u32 i = 0; i < 6; i++) {
        if (section_bad(secs[i].offset, secs[i].bytes, secs[i].region_bytes))
            return {err::BAD_OFFSET, secs[i].word};
    }
    G.lay = rel;
    const u64 base = G.param_offset;
    G.lay.recip += base;
    G.lay.w1 += base;
    G.lay.m1 += base;
    G.lay.o1 += base;
    G.lay.w2 += base;
    G.lay.b2 += base;
    return {err::OK, 0};
}

// The gate-2 blob's small sections checked in blob order (recip, o1, b2): BAD_GATE, ENTRY
// = index within the section; the recip onto the chip (o1 and b2 are streamed again by the
// shared channel-gate datapath).
inline DescCheck load_gate2_params(const u8 *wmem, const Gate2Rec &G, u32 &recip, u64 &cycles) {
    recip = rd_u32(wmem, G.lay.recip);
    cycles += CYC_AXI_LATENCY + 1;
    if (recip < 1 || recip > fmt::GATE_RECIP_MAX) return {err::BAD_GATE, 0};
    return check_channel_gate_params(wmem, G.lay, G.hidden, G.out_c, cycles);
}

// The gate record's masks at in_mask_offset (tile bitmap, then conv1's channel bitmap): a
// padding bit set in either is BAD_GATE at word 6. Keeps the words (B.in_words: conv1's
// channels on are bits tw.. of it), builds the active tile list (tiles, nt) and counts nc.
// One II=1 pass over the words, one over the tile bits, one over the channel bits.
inline DescCheck read_gate2_masks(const u8 *work, const Gate2Rec &G, GateBufs &B, u16 *tiles,
                                  u32 &nt, u32 &nc, u64 &cycles) {
    u32 *words = B.in_words;
    const u32 tw = bitmap_words_of(G.n_tiles), cw = bitmap_words_of(G.in_c);
    bool pad = false;
in_mask_words:
    for (u32 k = 0; k < tw + cw; k++) {   // II=1, one word per step
#pragma HLS LOOP_TRIPCOUNT min = 2 max = BITMAP_WORDS + ceil_div(MAX_IN, 32)
#pragma HLS PIPELINE II = 1
        const u32 v = rd_u32(work, G.in_mask_offset + 4ull * k);
        words[k] = v;
        const u32 n = k < tw ? G.n_tiles - 32 * k : G.in_c - 32 * (k - tw);   // bits in use
        if (n < 32 && (v >> n)) pad = true;
    }
    cycles += CYC_AXI_LATENCY + (tw + cw) + CYC_PIPE;
    if (pad) return {err::BAD_GATE, gate2::in_mask_offset.word};
    nt = 0;
in_tiles:
    for (u32 i = 0; i < G.n_tiles; i++) {   // II=1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_TILES
#pragma HLS PIPELINE II = 1
        if ((words[i / 32] >> (i % 32)) & 1) tiles[nt++] = (u16)i;
    }
    nc = 0;
in_chans:
    for (u32 c = 0; c < G.in_c; c++) {   // II=1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_IN
#pragma HLS PIPELINE II = 1
        nc += (words[tw + c / 32] >> (c % 32)) & 1;
    }
    cycles += G.n_tiles + G.in_c;
    return {err::OK, 0};
}

// totals of conv1's masked output: the compact sums of the nt active tiles (rows of nc
// int32, TN per step) accumulated per compact channel j into B.tot[j], then expanded in
// place to channel c_j (one II=1 pass over in_c from the top: c_j >= j, so B.tot[j] is
// read before any write reaches it; inactive channels 0). No second per-channel array.
inline u64 gate2_totals(const s32 *sums, const Gate2Rec &G, GateBufs &B, const u16 *tiles,
                        u32 nt, u32 nc) {
    const u32 ngc = ceil_div(nc, TN);
    const u64 sbase = G.sums_offset / 4;
    const u32 tw = bitmap_words_of(G.n_tiles);
ctot_clear:
    for (u32 ng = 0; ng < ngc; ng++) {   // II=1, TN lanes
#pragma HLS LOOP_TRIPCOUNT min = 0 max = MAX_NGI
#pragma HLS PIPELINE II = 1
        for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
            if (ng * TN + j < nc) B.tot[ng * TN + j] = 0;
        }
    }
compact_totals:
    for (u32 i = 0; i < nt; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = MAX_TILES
    compact_groups:
        for (u32 ng = 0; ng < ngc; ng++) {   // II=1, TN sums per step
#pragma HLS LOOP_TRIPCOUNT min = 0 max = MAX_NGI
#pragma HLS PIPELINE II = 1
            for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
                const u32 cj = ng * TN + j;
                if (cj < nc) B.tot[cj] = wadd(B.tot[cj], sums[sbase + (u64)tiles[i] * nc + cj]);
            }
        }
    }
    u32 j = nc;
expand:
    for (u32 i = 0; i < G.in_c; i++) {   // II=1: one read (tot[j-1]) and one write (tot[c])
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_IN
#pragma HLS PIPELINE II = 1
        const u32 c = G.in_c - 1 - i;
        const bool on = (B.in_words[tw + c / 32] >> (c % 32)) & 1;
        B.tot[c] = on ? B.tot[--j] : 0;
    }
    // one burst per active tile (nc sums each), issued back to back
    return ngc + stream_cycles((u64)nt * ngc, 4ull * nt * nc) + G.in_c + CYC_PIPE;
}

// The gate-2 record's writes, in the reference's order (program.gate2_work_writes): the
// mask_c2 bitmap, conv2's out-channel list, conv3's in-channel list; sets nc2.
inline u64 write_gate2_outputs(u8 *work, const Gate2Rec &G, GateBufs &B, GateState &S) {
    u16 *chans = B.chans;
    u32 *cbits = B.cbits;
    const u32 cw = bitmap_words_of(G.out_c);
    u32 nc = 0;
ch2_lists:
    for (u32 m = 0; m < G.out_c; m++) {   // II=1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_OUT
#pragma HLS PIPELINE II = 1
        if (m % 32 == 0) cbits[m / 32] = 0;
        if (B.ch_on[m]) {
            chans[nc++] = (u16)m;
            cbits[m / 32] |= 1u << (m % 32);
        }
    }
mask2_words:
    for (u32 k = 0; k < cw; k++) {   // II=1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = ceil_div(MAX_OUT, 32)
#pragma HLS PIPELINE II = 1
        wr_u32(work, G.mask_offset + 4ull * k, cbits[k]);
    }
    write_u16_list(work, G.c2_out_ch, chans, nc);
    write_u16_list(work, G.c3_in_ch, chans, nc);
    S.has_nc2 = true;
    S.nc2 = nc;
    return G.out_c + beats(4ull * cw) + 2 * beats(2ull * nc) + CYC_PIPE;
}

// ====================================================== the gate unit: one record of either
// One gate or gate-2 record (its record checks passed already): params (checked), its
// inputs, the evaluation unless dense (RUN_FLAGS.DENSE: every gate on; the checks are the
// same), the writes. The on-chip arrays and the channel-gate datapath are one instance for
// both ops (one call site of channel_gate). Returns the fault of the param / mask checks
// (nothing written then) or OK.
inline DescCheck run_gate_unit(bool second, const u8 *wmem, u8 *work, const s32 *sums,
                               const GateRec &G, const Gate2Rec &G2, bool dense, GateState &S,
                               u64 &cycles) {
    GateBufs &B = gate_bufs();
    static u16 tiles2[MAX_TILES];   // the gate-2 record's active tiles (from the in-mask)
    ChannelGateArgs A;
    u32 nt2 = 0, nc1 = 0;
    if (second) {
        DescCheck pc = load_gate2_params(wmem, G2, A.recip, cycles);
        if (!pc.code) pc = read_gate2_masks(work, G2, B, tiles2, nt2, nc1, cycles);
        if (pc.code) return pc;
        A.in_c = G2.in_c;
        A.out_c = G2.out_c;
        A.hidden = G2.hidden;
        A.h_shift = G2.h_shift;
        A.w1 = G2.lay.w1;
        A.w2 = G2.lay.w2;
        A.m1 = G2.lay.m1;
        A.o1 = G2.lay.o1;
        A.b2 = G2.lay.b2;
    } else {
        const DescCheck pc = load_gate_params(wmem, G, B, cycles);
        if (pc.code) return pc;
        A.in_c = G.in_c;
        A.out_c = G.out_c;
        A.hidden = G.hidden;
        A.h_shift = G.h_shift;
        A.recip = B.recip[G.n_tiles];
        A.w1 = G.lay.w1;
        A.w2 = G.lay.w2;
        A.m1 = G.lay.m1;
        A.o1 = G.lay.o1;
        A.b2 = G.lay.b2;
    }
    if (dense) {
        if (!second) {
        all_tiles_on:
            for (u32 i = 0; i < G.n_tiles; i++) {   // II=1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_TILES
#pragma HLS PIPELINE II = 1
                B.tile_on[i] = true;
            }
            cycles += G.n_tiles;
        }
    all_ch_on:
        for (u32 m = 0; m < A.out_c; m++) {   // II=1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_OUT
#pragma HLS PIPELINE II = 1
            B.ch_on[m] = true;
        }
        cycles += A.out_c;
    } else {
        cycles += second ? gate2_totals(sums, G2, B, tiles2, nt2, nc1)
                         : spatial_gate_and_totals(wmem, sums, G, B);
        cycles += channel_gate(wmem, A, B);
    }
    cycles += second ? write_gate2_outputs(work, G2, B, S) : write_gate_outputs(work, G, B, S);
    return {err::OK, 0};
}

}  // namespace dg

#endif  // DG_GATE_H
