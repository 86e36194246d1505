// dg_patch.h - load the input patch of one output tile (with its halo) onto the chip.
//
// The patch covers input rows iy0 .. iy0+sh-1 and columns ix0 .. ix0+sw-1 (TileGeom), all
// stored input channels (a compact buffer holds only the active ones). Pixels outside the
// input are the zero padding; with zero_halo, pixels in a tile whose bitmap bit is 0 read
// as zero too. Input pixel (iy, ix) lies in tile (iy / tile, ix / tile) of the layer's
// grid (zero_halo is for conv2: input and output share the grid, as in
// dgfpga.interpreter); positions past the grid count as inactive. In HWC one patch row is one contiguous burst of sw*C bytes.
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

// Returns the pipelined iterations (TN bytes each) for the cycle estimate.
inline u64 load_patch(const u8 *fmap, const Layer &L, const WorkList &W, const TileGeom &g,
                      PatchBuf buf) {
    const u32 n = L.in_c_stored;
    const u32 groups = L.ngi;
    const u32 row_bytes = L.in_w * n;
    u64 iters = 0;
rows:
    for (int r = 0; r < g.sh; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_PATCH_SIDE
        const int iy = g.iy0 + r;
        const bool row_in = iy >= 0 && iy < (int)L.in_h;
        const u32 row_base = L.im2col ? (u32)r * L.pitch : (u32)r * (u32)g.sw * n;
        const u32 src_row = L.in_offset + (row_in ? (u32)iy * row_bytes : 0);
        // tile of the current column, tracked incrementally (no divider in the pipeline)
        const u32 ty = row_in ? (u32)iy / L.tile : 0;
        const u32 first_ix = g.ix0 > 0 ? (u32)g.ix0 : 0;
        u32 tx = first_ix / L.tile, rem = first_ix % L.tile;
    pixels:
        for (u32 i = 0, c = 0, cb = 0; i < (u32)g.sw * groups; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_PATCH_SIDE * MAX_NGI
#pragma HLS PIPELINE II = 1
            const int ix = g.ix0 + (int)c;
            bool on = row_in && ix >= 0 && ix < (int)L.in_w;
            if (on && L.zero_halo) on = tile_bit(L, W, ty, tx);
            const u32 pos0 = row_base + c * n + cb * TN;
            const u32 src = src_row + (on ? (u32)ix * n : 0) + cb * TN;
            for (u32 j = 0; j < TN; j++) {
#pragma HLS UNROLL
                if (cb * TN + j < n) {
                    const u32 pos = pos0 + j;
                    buf[pos % TN][pos / TN] = on ? fmap[src + j] : (u8)0;
                }
            }
            if (++cb == groups) {
                cb = 0;
                c++;
                if (ix >= 0 && ++rem == L.tile) { rem = 0; tx++; }
            }
        }
        iters += (u64)g.sw * groups;
    }
    return iters + CYC_AXI_LATENCY;
}

}  // namespace dg

#endif  // DG_PATCH_H
