// dg_worklist.h - fetch a layer's work list (tile lists, channel lists, tile bitmap) onto the
// chip and check it before anything is written.
//
// Checks (dgfpga.interpreter, the executable reference; same order and entries): each
// list is walked once and its earliest faulty entry reported: an index not below its
// limit (*_RANGE) or not above the previous one (*_ORDER). A residual-only tile that is
// also active is a duplicate (TILE_ORDER, entry 0). The bitmap words must equal the active
// tile set bit for bit, bits past the grid zero (BITMAP_MISMATCH, entry = first bad bit).
#ifndef DG_WORKLIST_H
#define DG_WORKLIST_H

#include "dg_types.h"

namespace dg {

struct ListCheck {
    u32 code;
    u32 entry;
};

inline u16 read_u16(const u8 *work, u32 byte_offset) {
#pragma HLS INLINE
    return (u16)(work[byte_offset] | ((u16)work[byte_offset + 1] << 8));
}

// Fetch `count` u16 indices at `offset` into `dst`; check range (< limit) and order.
template <unsigned CAP>
ListCheck fetch_index_list(const u8 *work, u32 offset, u32 count, u32 limit, u16 dst[CAP],
                           u32 range_code, u32 order_code, u64 &cycles) {
    u32 first_range = 0xFFFFFFFFu, first_order = 0xFFFFFFFFu;
    u32 prev = 0;
list:
    for (u32 i = 0; i < count; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = CAP
#pragma HLS PIPELINE II = 1
        u16 v = read_u16(work, offset + 2 * i);
        dst[i] = v;
        if (v >= limit && first_range == 0xFFFFFFFFu) first_range = i;
        if (i > 0 && v <= prev && first_order == 0xFFFFFFFFu) first_order = i;
        prev = v;
    }
    cycles += CYC_AXI_LATENCY + ceil_div(2 * count, AXI_BYTES);
    if (first_range != 0xFFFFFFFFu && first_range <= first_order) return {range_code, first_range};
    if (first_order != 0xFFFFFFFFu) return {order_code, first_order};
    return {err::OK, 0};
}

template <unsigned CAP>
void identity_list(u32 count, u16 dst[CAP]) {
ident:
    for (u32 i = 0; i < count; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = CAP
#pragma HLS PIPELINE II = 1
        dst[i] = (u16)i;
    }
}

inline bool bit_of(const u32 bitmap[BITMAP_WORDS], u32 i) {
#pragma HLS INLINE
    return (bitmap[i >> 5] >> (i & 31)) & 1u;
}

// Fetch and check the whole work list of layer L.
inline ListCheck fetch_work_list(const u8 *work, const Layer &L, WorkList &W, u64 &cycles) {
    ListCheck c = {err::OK, 0};
    if (L.tile_gated) {
        c = fetch_index_list<MAX_TILES>(work, L.tile_list_offset, L.n_active_tiles, L.n_tiles,
                                        W.tiles, err::TILE_RANGE, err::TILE_ORDER, cycles);
        if (c.code) return c;
    } else {
        identity_list<MAX_TILES>(L.n_tiles, W.tiles);
    }
    // active-tile set, for the residual-only overlap check and the bitmap comparison
    u32 active[BITMAP_WORDS];
clear_active:
    for (u32 i = 0; i < BITMAP_WORDS; i++) {
#pragma HLS PIPELINE II = 1
        active[i] = 0;
    }
mark_active:
    for (u32 i = 0; i < L.n_active_tiles; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_TILES
#pragma HLS PIPELINE II = 1
        u32 t = W.tiles[i];
        active[t >> 5] |= 1u << (t & 31);
    }
    cycles += L.n_active_tiles;
    if (L.n_res_tiles) {
        c = fetch_index_list<MAX_TILES>(work, L.res_tile_list_offset, L.n_res_tiles, L.n_tiles,
                                        W.res_tiles, err::TILE_RANGE, err::TILE_ORDER, cycles);
        if (c.code) return c;
    res_overlap:
        for (u32 i = 0; i < L.n_res_tiles; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_TILES
#pragma HLS PIPELINE II = 1
            if (bit_of(active, W.res_tiles[i])) return {err::TILE_ORDER, 0};
        }
        cycles += L.n_res_tiles;
    }
    if (L.out_ch_gated) {
        c = fetch_index_list<MAX_OUT>(work, L.out_ch_list_offset, L.n_active_out, L.out_c,
                                      W.out_ch, err::CHANNEL_RANGE, err::CHANNEL_ORDER, cycles);
        if (c.code) return c;
    } else {
        identity_list<MAX_OUT>(L.out_c, W.out_ch);
    }
    if (L.in_ch_gated && !L.depthwise) {   // a depthwise layer's in list is its out list
        c = fetch_index_list<MAX_IN>(work, L.in_ch_list_offset, L.n_active_in, L.in_c,
                                     W.in_ch, err::CHANNEL_RANGE, err::CHANNEL_ORDER, cycles);
        if (c.code) return c;
    } else {
        identity_list<MAX_IN>(L.in_c, W.in_ch);
    }
    if (L.zero_halo) {
        const u32 nw = (L.n_tiles + 31) / 32;
    bitmap:
        for (u32 i = 0; i < nw; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = BITMAP_WORDS
#pragma HLS PIPELINE II = 1
            u32 o = L.bitmap_offset + 4 * i;
            W.bitmap[i] = (u32)work[o] | ((u32)work[o + 1] << 8) | ((u32)work[o + 2] << 16) |
                          ((u32)work[o + 3] << 24);
        }
        cycles += CYC_AXI_LATENCY + ceil_div(4 * nw, AXI_BYTES);
    bitmap_cmp:
        for (u32 t = 0; t < 32 * nw; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 32 max = 32 * BITMAP_WORDS
#pragma HLS PIPELINE II = 1
            if (bit_of(W.bitmap, t) != bit_of(active, t)) return {err::BITMAP_MISMATCH, t};
        }
        cycles += 32 * nw;
    }
    return c;
}

}  // namespace dg

#endif  // DG_WORKLIST_H
