// dg_patch.h - load the input patch of one output tile (with its halo) onto the chip.
//
// The patch covers input rows iy0 .. iy0+sh-1 and columns ix0 .. ix0+sw-1 (TileGeom), all
// stored input channels (a compact buffer holds only the active ones). Pixels outside the
// input are the zero padding; with zero_halo, pixels in a tile whose bitmap bit is 0 read
// as zero too. Input pixel (iy, ix) lies in tile (iy / (stride*tile), ix / (stride*tile))
// of the layer's grid (zero_halo is for conv2: input and output share the grid, as in
// dgfpga.interpreter); positions past the grid count as inactive. In HWC the in-bounds part
// of one patch row is one contiguous FMAP segment, read as a stream of whole aligned units.
//
// On chip the bytes are packed densely, position = patch pixel * n + channel, over TN
// cyclic banks: TN consecutive positions (one channel group of one pixel) hit each bank
// once, so the loader writes and the MAC array reads TN bytes per cycle. An im2col layer
// stores patch row r at r * L.pitch instead of r * sw * n (formats.im2col_row_pitch:
// pitch = k*n mod the bank count), so the TN flattened (ky, kx, c) taps of one MAC step,
// which continue from one patch row into the next, still hit TN different banks.
#ifndef DG_PATCH_H
#define DG_PATCH_H

#include "dg_types.h"

namespace dg {

typedef u8 PatchBuf[TN][IFM_DEPTH];

// Tile-bitmap bit of tile (ty, tx); positions past the grid are inactive.
inline bool tile_bit(const Layer &L, const WorkList &W, u32 ty, u32 tx) {
#pragma HLS INLINE
    if (ty >= L.grid_h || tx >= L.grid_w) return false;
    const u32 t = ty * L.grid_w + tx;
    return (W.bitmap[t >> 5] >> (t & 31)) & 1u;
}

// FMAP read unit of the patch loader: one whole AXI beat, aligned (TN bytes when TN is wider).
constexpr unsigned RD_BYTES = max_u(AXI_BYTES, TN);

// One aligned read unit at FMAP byte `base` (a multiple of RD_BYTES) into win[at .. at+RD):
// only the bytes inside the row's segment [lo, hi) are read (the rest of the beat is
// dropped; nothing outside the input buffer is touched), the others are 0.
inline void read_unit(const u8 *fmap, u32 base, u32 lo, u32 hi, u8 win[2 * RD_BYTES], u32 at) {
#pragma HLS INLINE
    for (u32 i = 0; i < RD_BYTES; i++) {
#pragma HLS UNROLL
        const u32 addr = base + i;
        win[at + i] = (addr >= lo && addr < hi) ? fmap[addr] : (u8)0;
    }
}

// Fills input buffer buf[h]. Per patch row: the in-bounds columns are one contiguous FMAP
// segment [seg_lo, seg_hi) (HWC), read as a sequential stream of whole aligned units
// (RD_BYTES) into a two-unit window; the chunk loop writes bank row k of every bank in one
// cycle (position k*TN + b -> bank b, a compile-time index), lane b taking byte b of the
// window at the stream's alignment offset (the rotator sits on the read side), zero for
// positions in the padding, in a zero_halo pixel whose tile is off, or outside the row.
// A batch of tiles (TileBatch, a conv step's tiles of one m-group; one tile without
// batches): tile i's patch at byte B.base[i] of the half, its rows' bursts issued back to
// back (one AXI latency per call). Returns the pipelined iterations, for the C-sim's
// estimate.
inline u64 load_patches(const u8 *fmap, const Layer &L, const WorkList &W, const TileBatch &B,
                        PatchBuf buf[2], u32 h) {
#pragma HLS INLINE off
    const u32 n = L.in_c_stored;
    if (n == 0) return CYC_AXI_LATENCY;   // no stored input channel: nothing to load
    const u32 row_bytes = L.in_w * n;
    // a chunk of TN positions advances qn pixels and rn bytes (TN = qn*n + rn); lane b is
    // cnt_b = #{q >= 1: off0 + b >= q*n} pixels past the chunk's first pixel
    const u32 qn = TN / n, rn = TN % n;
    u32 thr[TN + 1];
#pragma HLS ARRAY_PARTITION variable = thr complete
    for (u32 q = 0, t = 0; q <= TN; q++, t += n) {
#pragma HLS UNROLL
        thr[q] = t;
    }
    u64 iters = 0;
patch_tiles:
    for (u32 ti = 0; ti < B.n; ti++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = CONV_BATCH
        const TileGeom g = B.g[ti];
        const u32 prow = L.im2col ? L.pitch : (u32)g.sw * n;   // buffer bytes per patch row
        const u32 row_len = (u32)g.sw * n;                      // patch bytes of one patch row
        // in-bounds columns c_lo .. c_hi-1 (ix = ix0 + c inside the input)
        const int c_lo = g.ix0 < 0 ? -g.ix0 : 0;
        const int c_hi = (int)L.in_w - g.ix0 < g.sw ? (int)L.in_w - g.ix0 : g.sw;
        u32 row_base = B.base[ti];   // the tile's patch + r * prow
    rows:
        for (int r = 0; r < g.sh; r++, row_base += prow) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_PATCH_SIDE
            const int iy = g.iy0 + r;
            const bool row_in = iy >= 0 && iy < (int)L.in_h;
            const bool any = row_in && c_lo < c_hi;
            const u32 src_row = L.in_offset + (row_in ? (u32)iy * row_bytes : 0);
            // FMAP segment of the in-bounds columns and its patch positions [pos_lo, pos_hi)
            const u32 seg_lo = any ? src_row + (u32)(g.ix0 + c_lo) * n : 0;
            const u32 seg_hi = any ? src_row + (u32)(g.ix0 + c_hi) * n : 0;
            const u32 pos_lo = any ? row_base + (u32)c_lo * n : row_base;
            const u32 pos_hi = any ? row_base + (u32)c_hi * n : row_base;
            // zero_halo: on-flag of each column's tile (tile tracked incrementally, no divider);
            // input pixel (iy, ix) lies in tile (iy / side, ix / side), side = stride * tile
            bool con[MAX_PATCH_SIDE];
#pragma HLS ARRAY_PARTITION variable = con complete
            if (L.zero_halo && any) {
                const u32 side = L.stride * L.tile;
                const u32 ty = (u32)iy / side;
                const u32 first_ix = g.ix0 > 0 ? (u32)g.ix0 : 0;
                u32 tx = first_ix / side, rem = first_ix % side;
            halo_cols:
                for (int c = 0; c < g.sw; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_PATCH_SIDE
#pragma HLS PIPELINE II = 1
                    const int ix = g.ix0 + c;
                    con[c] = ix >= 0 && ix < (int)L.in_w && tile_bit(L, W, ty, tx);
                    if (ix >= 0 && ++rem == side) { rem = 0; tx++; }
                }
                iters += (u64)g.sw;
            }
            // chunks: bank rows k_first .. k_end-1 of the row's positions [row_base, +row_len)
            const u32 k_first = row_base / TN, k_end = (row_base + row_len + TN - 1) / TN;
            const u32 back = row_base - k_first * TN;        // chunk start before row_base
            const u32 qb = (back + n - 1) / n;
            int c0 = -(int)qb;                               // pixel of the chunk's lane 0 ...
            u32 off0 = qb * n - back;                        // ... and its byte in that pixel
            // the stream: a0 = FMAP address of the chunk's lane 0 (pos - a0 is constant; wraps
            // in the left padding, where nothing is read), window [wbase, wbase + 2*RD_BYTES)
            u32 a0 = src_row + (u32)g.ix0 * n + (k_first * TN - row_base);
            u32 wbase = a0 & ~(u32)(RD_BYTES - 1);
            u8 win[2 * RD_BYTES];
#pragma HLS ARRAY_PARTITION variable = win complete
            read_unit(fmap, wbase, seg_lo, seg_hi, win, 0);
            read_unit(fmap, wbase + RD_BYTES, seg_lo, seg_hi, win, RD_BYTES);
        chunks:
            for (u32 k = k_first; k < k_end; k++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_PATCH_SIDE * MAX_NGI
#pragma HLS PIPELINE II = 1
                const u32 sh = a0 - wbase;   // alignment offset of lane 0 in the window
                for (u32 b = 0; b < TN; b++) {
#pragma HLS UNROLL
                    const u32 p = k * TN + b;
                    if (p >= row_base && p < row_base + row_len) {
                        bool on = p >= pos_lo && p < pos_hi;
                        if (on && L.zero_halo) {
                            u32 cnt = 0;
                            for (u32 q = 1; q <= TN; q++) {
#pragma HLS UNROLL
                                if (off0 + b >= thr[q]) cnt = q;
                            }
                            on = con[(u32)(c0 + (int)cnt)];
                        }
                        buf[h][b][k] = on ? win[sh + b] : (u8)0;
                    }
                }
                a0 += TN;
                if (a0 - wbase >= RD_BYTES) {   // the next unit of the stream
                    for (u32 i = 0; i < RD_BYTES; i++) {
#pragma HLS UNROLL
                        win[i] = win[RD_BYTES + i];
                    }
                    wbase += RD_BYTES;
                    read_unit(fmap, wbase + RD_BYTES, seg_lo, seg_hi, win, RD_BYTES);
                }
                off0 += rn;
                c0 += (int)qn;
                if (off0 >= n) {
                    off0 -= n;
                    c0++;
                }
            }
            iters += (u64)(k_end - k_first) + 2;
        }
    }
    return iters + CYC_AXI_LATENCY;
}

// ---- depthwise mode (op OP_DWCONV) ----
// The dw patch buffer of one half (dg_types.h DW_DEPTH): bank (a, b) = (patch row % 3,
// patch column % 3), byte lane m = channel m of a TM-channel group, word
// ((row / 3) * ceil(sw / 3) + column / 3) * ceil(n / TM) + group. The 9 taps of a conv pixel
// (rows py..py+2, columns px..px+2, either stride) lie in the 9 banks, one word each, and
// the word's TM bytes are the TM lanes' own channels: the MAC array's per-lane read.
typedef u8 DwPatchBuf[DW_K][DW_K][TM][DW_DEPTH];

// Channel groups the dw patch loader moves per cycle: one AXI beat's worth (AXI_BYTES / TM
// TM-byte words when the bus is wider than the lanes, else 1). The F words of a cycle are
// consecutive words of ONE bank and lane (groups gi .. gi+F-1 of one pixel), i.e. F
// different words of one memory: two ports of a true-dual-port BRAM for F = 2; F > 2 needs
// the word dimension partitioned cyclic F (at the declaration, dg_engine.cpp).
constexpr unsigned DW_LD_GROUPS = AXI_BYTES > TM ? AXI_BYTES / TM : 1;

// Fills dw patch half buf[h] with patch rows row_lo .. row_hi-1 (default: all) of tile g
// (all stored channels, zero padding, zero_halo pixels of inactive tiles as zero), so a
// caller may load a patch in slices, e.g. one per batch step of the previous tile. ONE loop
// over (row, column, chunk of DW_LD_GROUPS channel groups), flattened and pipelined at II=1
// (one pipeline fill per call, not per row): one read of up to an AXI beat (F TM-byte groups
// of one pixel) per cycle, walking each row's FMAP segment in address order (a pixel's n
// channels, then the next pixel: one burst per row, the rows' bursts issued back to back),
// and F word writes to the bank of (row % 3, column % 3), selected by write enables of the
// 9 banks (compile-time bank indices). Row and column positions are counters (the row's
// tile row and position in it too); the divisions are once per call. Returns the pipelined
// iterations + the fill + one AXI latency (the C-sim's estimate; an empty slice costs
// nothing).
inline u64 load_dw_patch(const u8 *fmap, const Layer &L, const WorkList &W, const TileGeom &g,
                         DwPatchBuf buf[2], u32 h, u32 row_lo = 0, u32 row_hi = MAX_DW_SIDE) {
#pragma HLS INLINE off
    const u32 n = L.in_c_stored;
    const u32 r_end = row_hi < (u32)g.sh ? row_hi : (u32)g.sh;
    if (row_lo >= r_end) return 0;
    if (n == 0) return CYC_AXI_LATENCY;
    const u32 gp = ceil_div(n, TM);                 // channel groups per pixel
    const u32 gpc = ceil_div(gp, DW_LD_GROUPS);     // chunks of F groups per pixel
    const u32 cw3 = ceil_div((u32)g.sw, DW_K);      // bank words per bank row
    const u32 row_bytes = L.in_w * n;
    const u32 side = L.stride * L.tile;             // zero_halo: input pixels per tile side
    const u32 rows = r_end - row_lo;
    const u32 per_row = (u32)g.sw * gpc;            // iterations per patch row
    // row counters: patch row r (% 3, / 3), input row iy, its tile row ty and position in
    // the tile (ry), the row's first FMAP byte; set once per call
    u32 ra = row_lo % DW_K, rq = row_lo / DW_K;
    int iy = g.iy0 + (int)row_lo;
    u32 ty = iy > 0 ? (u32)iy / side : 0, ry = iy > 0 ? (u32)iy % side : 0;
    u32 src_row = L.in_offset + (iy > 0 ? (u32)iy * row_bytes : 0);
    // a row's first column (the same for every row): ix0, its tile column and position
    const int ix0 = g.ix0;
    const u32 tx0 = ix0 > 0 ? (u32)ix0 / side : 0, rem0 = ix0 > 0 ? (u32)ix0 % side : 0;
    const u32 src0 = ix0 > 0 ? (u32)ix0 * n : 0;
    // column counters: patch column c (% 3, / 3), input column ix, its tile tx and position
    // in the tile (rem), the chunk's first group gi, the pixel's FMAP byte (src_row + src)
    int ix = ix0;
    u32 cb = 0, cq = 0, gi = 0, tx = tx0, rem = rem0, src = src0, col_it = 0;
dw_load:
    for (u32 it = 0; it < rows * per_row; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 3 max = MAX_DW_SIDE * MAX_DW_SIDE * MAX_G
#pragma HLS PIPELINE II = 1
        const bool row_in = iy >= 0 && iy < (int)L.in_h;
        const bool px_in = row_in && ix >= 0 && ix < (int)L.in_w;
        const bool on = px_in && (!L.zero_halo || tile_bit(L, W, ty, tx));
        const u32 word0 = (rq * cw3 + cq) * gp + gi;
        for (u32 f = 0; f < DW_LD_GROUPS; f++) {
#pragma HLS UNROLL
            if (gi + f < gp) {   // a chunk never writes past its pixel's last group
                for (u32 m = 0; m < TM; m++) {
#pragma HLS UNROLL
                    const u32 c = (gi + f) * TM + m;
                    const u8 v = (on && c < n) ? fmap[src_row + src + c] : (u8)0;
                    for (u32 a = 0; a < DW_K; a++) {
#pragma HLS UNROLL
                        for (u32 b = 0; b < DW_K; b++) {
#pragma HLS UNROLL
                            if (a == ra && b == cb) buf[h][a][b][m][word0 + f] = v;
                        }
                    }
                }
            }
        }
        gi += DW_LD_GROUPS;
        if (gi >= gp) {   // the next patch column
            gi = 0;
            if (ix >= 0) {
                src += n;
                if (++rem == side) {
                    rem = 0;
                    tx++;
                }
            }
            ix++;
            if (++cb == DW_K) {
                cb = 0;
                cq++;
            }
        }
        if (++col_it == per_row) {   // the next patch row: columns back to the row's start
            col_it = 0;
            gi = 0;
            ix = ix0;
            cb = 0;
            cq = 0;
            tx = tx0;
            rem = rem0;
            src = src0;
            if (iy >= 0) {
                src_row += row_bytes;
                if (++ry == side) {
                    ry = 0;
                    ty++;
                }
            }
            iy++;
            if (++ra == DW_K) {
                ra = 0;
                rq++;
            }
        }
    }
    return (u64)rows * per_row + 2 + CYC_AXI_LATENCY;
}

}  // namespace dg

#endif  // DG_PATCH_H
