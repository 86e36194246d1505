// dg_descriptor.h - fetch one layer descriptor over m_axi, decode it and check every field.
//
// The checks are those of dgfpga.formats.validate_descriptor, in the same order, then the
// region checks against the *_bytes registers (nothing the layer touches may lie outside
// its region), so the engine and the host reject the same descriptors. Each fault maps to a
// STATUS code (regmap ERROR_CODES) with ENTRY = the descriptor word holding the faulty
// field, as dgfpga.interpreter (the executable reference of the checks) reports it.
#ifndef DG_DESCRIPTOR_H
#define DG_DESCRIPTOR_H

#include "dg_types.h"

namespace dg {

// Depthwise mode of the array (formats.dw_steps_per_pixel; sim/rtl dg_pkg DW_TPS, DW_PAR,
// DW_TSTEPS): taps per lane and step, steps per tap (TN = 1: the pair's one multiply serves
// its two lanes in turn), steps per conv pixel and m-group, and the tap slots the steps
// name (the taps past DW_TAPS read zero).
constexpr unsigned DW_TPS = TN >= 2 ? TN / 2 : 1;
constexpr unsigned DW_PAR = (TN == 1 && TM > 1) ? 2 : 1;
constexpr unsigned DW_PIX_STEPS = ceil_div(DW_TAPS, DW_TPS) * DW_PAR;
constexpr unsigned DW_TAP_SLOTS = ceil_div(DW_TAPS, DW_TPS) * DW_TPS;
static_assert(TN % DW_TPS == 0 && (TN == 1 || 2 * DW_TPS == TN),
              "a depthwise step's taps lie in one weight word; a pair's TN multiplies: two lanes' taps");

struct DescCheck {
    u32 code;    // err::* (0 = OK)
    u32 entry;   // descriptor word of the faulty field (0 for magic/version/reserved)
};

struct Regions {
    u32 fmap, weight, work, sums;   // region sizes in bytes (the *_bytes registers)
};

// Read the 24 descriptor words of layer `index` (12 u64 beats) from the program.
inline void fetch_descriptor(const u64 *program, u32 index, u32 words[desc::WORDS]) {
    const u32 base = index * (desc::WORDS / 2);
fetch:
    for (u32 i = 0; i < desc::WORDS / 2; i++) {
#pragma HLS PIPELINE II = 1
        ap_uint<64> beat = program[base + i];
        words[2 * i] = (u32)beat.range(31, 0);
        words[2 * i + 1] = (u32)beat.range(63, 32);
    }
}

inline u32 field(const u32 words[desc::WORDS], desc::Field f) {
#pragma HLS INLINE
    ap_uint<32> w = words[f.word];
    return (u32)(w >> f.lsb) & desc::mask(f);
}

inline u32 conv_out(u32 size, u32 k, u32 stride, u32 pad) {
    return (size + 2 * pad - k) / stride + 1;   // callers ensure size + 2*pad >= k
}

inline void decode_descriptor(const u32 w[desc::WORDS], Layer &L) {
    L.k = field(w, desc::k);
    L.stride = field(w, desc::stride);
    L.pad = field(w, desc::pad);
    L.in_signed = field(w, desc::in_signed);
    L.out_signed = field(w, desc::out_signed);
    L.relu = field(w, desc::relu);
    L.residual = field(w, desc::residual);
    L.res_signed = field(w, desc::res_signed);
    L.maxpool = field(w, desc::maxpool);
    L.emit_sums = field(w, desc::emit_sums);
    L.tile_gated = field(w, desc::tile_gated);
    L.in_ch_gated = field(w, desc::in_ch_gated);
    L.out_ch_gated = field(w, desc::out_ch_gated);
    L.zero_halo = field(w, desc::zero_halo);
    L.in_place = field(w, desc::in_place);
    L.from_gate = field(w, desc::from_gate);
    L.im2col = field(w, desc::im2col);
    L.pixel_sums = field(w, desc::pixel_sums);
    // a config without depthwise hardware (config::depthwise false) never decodes one: the
    // depthwise loops are then dead code the tool removes
    L.depthwise = config::depthwise && field(w, desc::op) == fmt::OP_DWCONV;
    L.shift = field(w, desc::shift);
    L.in_h = field(w, desc::in_h);
    L.in_w = field(w, desc::in_w);
    L.out_h = field(w, desc::out_h);
    L.out_w = field(w, desc::out_w);
    L.in_c = field(w, desc::in_c);
    L.out_c = field(w, desc::out_c);
    L.tile = field(w, desc::tile);
    L.grid_h = field(w, desc::grid_h);
    L.grid_w = field(w, desc::grid_w);
    L.n_active_tiles = field(w, desc::n_active_tiles);
    L.n_res_tiles = field(w, desc::n_res_tiles);
    L.n_active_out = field(w, desc::n_active_out);
    L.n_active_in = field(w, desc::n_active_in);
    L.res_mult = field(w, desc::res_mult);
    L.in_offset = field(w, desc::in_offset);
    L.out_offset = field(w, desc::out_offset);
    L.res_offset = field(w, desc::res_offset);
    L.weight_offset = field(w, desc::weight_offset);
    L.param_offset = field(w, desc::param_offset);
    L.tile_list_offset = field(w, desc::tile_list_offset);
    L.res_tile_list_offset = field(w, desc::res_tile_list_offset);
    L.out_ch_list_offset = field(w, desc::out_ch_list_offset);
    L.in_ch_list_offset = field(w, desc::in_ch_list_offset);
    L.bitmap_offset = field(w, desc::bitmap_offset);
    L.sums_offset = field(w, desc::sums_offset);
    // derived (meaningful once the checks passed)
    L.n_tiles = L.grid_h * L.grid_w;
    L.in_c_stored = L.in_ch_gated ? L.n_active_in : L.in_c;
    L.out_c_stored = L.out_ch_gated ? L.n_active_out : L.out_c;
    L.kk = L.k * L.k;
    L.ngi = ceil_div(L.in_c_stored, TN);
    L.w_ic_major = L.in_ch_gated && !L.out_ch_gated;
    L.kc = L.k * L.in_c;
    L.kkc = L.kk * L.in_c;
    // formats.mac_steps_per_pixel (0 when no input channel is active); a conv's are also its
    // weight words per lane and m-group; depthwise: DW_PIX_STEPS (one product per DSP)
    L.steps = L.n_active_in == 0 ? 0
              : L.depthwise     ? DW_PIX_STEPS
              : L.im2col        ? ceil_div(L.kkc, TN)
                                : L.kk * L.ngi;
    L.n_groups = ceil_div(L.n_active_out, TM);
    L.pitch = 0;   // per patch (load_patches / im2col_pitch), once the checks passed
    L.i2c_qa = L.kc ? TN / L.kc : 0;
    L.i2c_ra = L.kc ? TN % L.kc : 0;
    L.conv_h = 0;
    L.conv_w = 0;
}

// Bytes per output channel of an im2col weight stream (formats.im2col_row_bytes).
inline u32 im2col_row_bytes(const Layer &L) {
#pragma HLS INLINE
    return ceil_div(L.kkc, TN) * TN;
}

// Bytes per channel of a depthwise weight stream (formats.dw_row_bytes): k*k taps padded to TN.
inline u32 dw_row_bytes(const Layer &L) {
#pragma HLS INLINE
    return ceil_div(L.kk, TN) * TN;
}

// Patch side of a full tile (formats.input_patch_side).
inline u64 full_patch_side(const Layer &L) {
#pragma HLS INLINE
    const u64 cts = L.maxpool ? 2 * L.tile + 1 : L.tile;
    return (cts - 1) * L.stride + L.k;
}

// Patch buffer bytes per patch row of an im2col layer (formats.im2col_row_pitch): a row
// plus two AXI beats, rounded so that pitch = k*in_c (mod the bank bytes): the TN taps of
// one MAC step then sit in TN consecutive banks whatever patch rows they span.
inline u32 im2col_pitch(const Layer &L) {
#pragma HLS INLINE
    const u32 nb = TN > AXI_BYTES ? TN : AXI_BYTES;
    const u32 p = (u32)full_patch_side(L) * L.in_c + 2 * AXI_BYTES;
    return p + ((L.kc + nb - p % nb) % nb);
}

// One buffer a layer uses: region (0 fmap, 1 weight, 2 work, 3 sums), offset field, size.
struct Buffer {
    u32 region;
    u32 field_no;
    u32 offset;
    u64 bytes;
    bool used;
};

constexpr unsigned N_BUFFERS = 11;

// formats.descriptor_buffers, in the order of formats.OFFSET_FIELDS.
inline void layer_buffers(const Layer &L, Buffer b[N_BUFFERS]) {
    const u64 kk = L.kk;
    const u64 out_px = (u64)L.out_h * L.out_w;
    b[0] = {0, desc::F_IN_OFFSET, L.in_offset, (u64)L.in_h * L.in_w * L.in_c_stored, true};
    b[1] = {0, desc::F_OUT_OFFSET, L.out_offset, out_px * L.out_c_stored, true};
    b[2] = {0, desc::F_RES_OFFSET, L.res_offset, out_px * L.out_c, L.residual};
    const u64 wrow = L.depthwise ? (u64)dw_row_bytes(L)       // formats.weight_stream_bytes
                     : L.im2col  ? (u64)im2col_row_bytes(L)
                                 : kk * L.in_c;
    b[3] = {1, desc::F_WEIGHT_OFFSET, L.weight_offset, (u64)L.out_c * wrow, true};
    b[4] = {1, desc::F_PARAM_OFFSET, L.param_offset, (u64)L.out_c * fmt::PARAM_BYTES, true};
    b[5] = {2, desc::F_TILE_LIST_OFFSET, L.tile_list_offset, 2ull * L.n_active_tiles, L.tile_gated};
    // a from_gate template carries the slot of its residual-only list (up to every tile)
    const bool res_slot = L.from_gate && L.residual && !L.in_place && L.res_tile_list_offset;
    b[6] = {2, desc::F_RES_TILE_LIST_OFFSET, L.res_tile_list_offset,
            2ull * (L.n_res_tiles ? L.n_res_tiles : L.n_tiles), L.n_res_tiles != 0 || res_slot};
    b[7] = {2, desc::F_OUT_CH_LIST_OFFSET, L.out_ch_list_offset, 2ull * L.n_active_out, L.out_ch_gated};
    // a depthwise layer reads its out-channel list for both sides (no in-channel list)
    b[8] = {2, desc::F_IN_CH_LIST_OFFSET, L.in_ch_list_offset, 2ull * L.n_active_in,
            L.in_ch_gated && !L.depthwise};
    b[9] = {2, desc::F_BITMAP_OFFSET, L.bitmap_offset, 4ull * ((L.n_tiles + 31) / 32), L.zero_halo};
    // sum tiles: the tile grid, or every output pixel with pixel_sums (formats.n_sum_tiles)
    const u64 n_sum_tiles = L.pixel_sums ? out_px : (u64)L.n_tiles;
    b[10] = {3, desc::F_SUMS_OFFSET, L.sums_offset, n_sum_tiles * L.out_c_stored * fmt::SUM_BYTES,
             L.emit_sums};
}

inline bool overlap(u64 ao, u64 an, u64 bo, u64 bn) {
    return an > 0 && bn > 0 && ao < bo + bn && bo < ao + an;
}

// STATUS ENTRY of a descriptor fault: the descriptor WORD holding the field at fault
// (dgfpga.interpreter, the executable reference of the engine's checks).
inline u32 word_of(u32 field_no) {
#pragma HLS INLINE
    return desc::ALL_FIELDS[field_no].word;
}

// A fault in descriptor field `field_no`: the field's STATUS code (desc::FIELD_ERROR,
// generated from formats.FIELD_ERROR) at ENTRY = its word.
inline DescCheck fault(u32 field_no) {
#pragma HLS INLINE
    return {desc::FIELD_ERROR[field_no], word_of(field_no)};
}

// v is one of the n values in `allowed` (formats.KERNELS, formats.STRIDES).
inline bool one_of(u32 v, const unsigned *allowed, unsigned n) {
#pragma HLS INLINE
    bool ok = false;
    for (unsigned i = 0; i < n; i++) {
#pragma HLS UNROLL
        ok |= v == allowed[i];
    }
    return ok;
}

// Fit of the layer into this engine's buffers: exactly formats.layer_fit_problems, with its
// bounds (config::fit_*, generated). The weight rule counts all TM lanes whatever
// n_active_out is (each lane's column is W_DEPTH words deep); it implies the TN-padded
// column fits (W_DEPTH has MAX_KERNEL_TAPS words of slack), checked again as a guard of
// this micro-architecture's array bounds.
inline DescCheck check_fit(const Layer &L) {
    if (L.depthwise) {
        // the whole layer's weight rows on chip (out_c rows of dw_row_bytes); guard: the
        // active channels' rows, ceil(n/TM) m-groups of dw_row_bytes/TN words per lane, in
        // one half
        const u64 w = (u64)L.out_c * dw_row_bytes(L);
        if (w > config::fit_weight_group_bytes || (u64)L.n_groups * (dw_row_bytes(L) / TN) > W_DEPTH)
            return {err::NO_FIT, word_of(desc::F_TILE)};
    } else {
        const u64 w = (u64)TM * L.kk * L.n_active_in;
        if (w > config::fit_weight_group_bytes || (u64)L.kk * ceil_div(L.n_active_in, TN) > W_DEPTH)
            return {err::NO_FIT, word_of(desc::F_TILE)};
    }
    const u64 cts = L.maxpool ? 2 * L.tile + 1 : L.tile;
    const u64 side = (cts - 1) * L.stride + L.k;
    if (side * side * L.in_c_stored > config::fit_ifm_patch_bytes)
        return {err::NO_FIT, word_of(desc::F_TILE)};
    // guard of the dw patch banks (DW_DEPTH holds every patch the rule above admits)
    if (L.depthwise && ceil_div((u32)side, DW_K) * ceil_div((u32)side, DW_K) *
                               ceil_div(L.in_c_stored, TM) > DW_DEPTH)
        return {err::NO_FIT, word_of(desc::F_TILE)};
    if ((u64)TM * cts * cts * 4 > config::fit_acc_bytes) return {err::NO_FIT, word_of(desc::F_TILE)};
    return {err::OK, 0};
}

// The im2col buffer bounds (formats.im2col_fit_problems): BAD_FLAGS at the im2col word.
inline DescCheck check_im2col_fit(const Layer &L) {
    if (!L.im2col) return {err::OK, 0};
    if ((u64)TM * im2col_row_bytes(L) > config::fit_weight_group_bytes ||
        full_patch_side(L) * im2col_pitch(L) + AXI_BYTES > config::fit_ifm_patch_bytes)
        return fault(desc::F_IM2COL);
    return {err::OK, 0};
}

// Every check of formats.unpack_descriptor / validate_descriptor, then the region checks,
// in the order of dgfpga.interpreter._decode (the first fault is reported).
inline DescCheck check_descriptor(const u32 w[desc::WORDS], Layer &L, const Regions &R) {
    // reserved words, reserved bits, magic, version: BAD_MAGIC, entry 0
    u32 covered[desc::WORDS];
#pragma HLS ARRAY_PARTITION variable = covered complete
    for (u32 i = 0; i < desc::WORDS; i++) {
#pragma HLS UNROLL
        covered[i] = 0;
        for (u32 f = 0; f < desc::N_FIELDS; f++) {
#pragma HLS UNROLL
            if (desc::ALL_FIELDS[f].word == i) covered[i] |= desc::mask(desc::ALL_FIELDS[f]) << desc::ALL_FIELDS[f].lsb;
        }
    }
    for (u32 i = 0; i < desc::WORDS; i++) {
#pragma HLS UNROLL
        if (covered[i] == 0 && w[i] != 0) return {err::BAD_MAGIC, 0};
    }
    for (u32 i = 0; i < desc::WORDS; i++) {
#pragma HLS UNROLL
        if (w[i] & ~covered[i]) return {err::BAD_MAGIC, 0};
    }
    if (field(w, desc::magic) != fmt::DESC_MAGIC) return {err::BAD_MAGIC, 0};
    if (field(w, desc::version) != fmt::FORMAT_VERSION) return {err::BAD_MAGIC, 0};
    decode_descriptor(w, L);
    const u32 op = field(w, desc::op);
    if (op != fmt::OP_CONV && !(config::depthwise && op == fmt::OP_DWCONV))
        return fault(desc::F_OP);   // formats.validate_descriptor: BAD_OP at the op word
    if (!one_of(L.k, fmt::KERNELS, fmt::N_KERNELS)) return fault(desc::F_K);
    if (!one_of(L.stride, fmt::STRIDES, fmt::N_STRIDES)) return fault(desc::F_STRIDE);
    if (L.pad > L.k / 2) return fault(desc::F_PAD);
    if (L.shift < 1 || L.shift > 31) return fault(desc::F_SHIFT);
    if (L.in_h < 1 || L.in_h > config::max_height) return fault(desc::F_IN_H);
    if (L.out_h < 1 || L.out_h > config::max_height) return fault(desc::F_OUT_H);
    if (L.in_w < 1 || L.in_w > config::max_width) return fault(desc::F_IN_W);
    if (L.out_w < 1 || L.out_w > config::max_width) return fault(desc::F_OUT_W);
    if (L.in_c < 1 || L.in_c > MAX_IN) return fault(desc::F_IN_C);
    if (L.out_c < 1 || L.out_c > MAX_OUT) return fault(desc::F_OUT_C);
    if (L.in_h + 2 * L.pad < L.k || L.in_w + 2 * L.pad < L.k) return fault(desc::F_IN_H);
    L.conv_h = conv_out(L.in_h, L.k, L.stride, L.pad);
    L.conv_w = conv_out(L.in_w, L.k, L.stride, L.pad);
    const u32 want_h = L.maxpool ? conv_out(L.conv_h, fmt::POOL_K, fmt::POOL_STRIDE, fmt::POOL_PAD) : L.conv_h;
    const u32 want_w = L.maxpool ? conv_out(L.conv_w, fmt::POOL_K, fmt::POOL_STRIDE, fmt::POOL_PAD) : L.conv_w;
    if (L.out_h != want_h) return fault(desc::F_OUT_H);
    if (L.out_w != want_w) return fault(desc::F_OUT_W);
    // flags
    if (L.relu != !L.out_signed) return fault(desc::F_RELU);
    if (L.res_signed && !L.residual) return fault(desc::F_RES_SIGNED);
    if (L.residual && L.maxpool) return fault(desc::F_MAXPOOL);
    if (L.maxpool && (L.tile_gated || L.in_ch_gated || L.out_ch_gated)) return fault(desc::F_MAXPOOL);
    if (L.zero_halo && !L.tile_gated) return fault(desc::F_ZERO_HALO);
    // zero_halo: the input on the output's tile grid scaled by the stride (dg_patch.h maps
    // input pixel (y, x) to tile (y / (stride*tile), x / (stride*tile))): out = ceil(in /
    // stride), no max-pool, as formats.validate_descriptor
    if (L.zero_halo && (L.maxpool || ceil_div(L.in_h, L.stride) != L.out_h ||
                        ceil_div(L.in_w, L.stride) != L.out_w))
        return fault(desc::F_ZERO_HALO);
    if (L.residual) {
        if (L.res_mult >= 0x80000000u) return fault(desc::F_RES_MULT);
    } else if (L.res_mult) {
        return fault(desc::F_RES_MULT);
    }
    if (L.in_place) {
        if (!L.residual || !L.tile_gated) return fault(desc::F_IN_PLACE);
        if (L.out_ch_gated || L.out_offset != L.res_offset) return fault(desc::F_IN_PLACE);
        if (L.n_res_tiles) return fault(desc::F_N_RES_TILES);
    }
    if (L.from_gate) {   // a template whose counts come from the last gate record
        if (!L.tile_gated) return fault(desc::F_FROM_GATE);
        if (L.n_res_tiles) return fault(desc::F_N_RES_TILES);
    }
    if (L.im2col && (L.k == 1 || L.in_ch_gated || L.zero_halo)) return fault(desc::F_IM2COL);
    if (L.pixel_sums && !L.emit_sums) return fault(desc::F_PIXEL_SUMS);
    if (L.depthwise) {   // formats._check_depthwise, after the flag rules
        if (L.k != DW_K) return fault(desc::F_K);
        if (L.out_c != L.in_c) return fault(desc::F_OUT_C);
        if (L.residual) return fault(desc::F_RESIDUAL);
        if (L.maxpool) return fault(desc::F_MAXPOOL);
        if (L.im2col) return fault(desc::F_IM2COL);
        if (L.in_ch_gated != L.out_ch_gated) return fault(desc::F_IN_CH_GATED);
        if (L.n_active_in != L.n_active_out) return fault(desc::F_N_ACTIVE_IN);
    }
    // tiles and counts
    if (L.tile < 1 || L.tile > MAX_TILE) return fault(desc::F_TILE);
    if (L.grid_h != ceil_div(L.out_h, L.tile) || L.grid_h > config::max_grid) return fault(desc::F_GRID_H);
    if (L.grid_w != ceil_div(L.out_w, L.tile) || L.grid_w > config::max_grid) return fault(desc::F_GRID_W);
    if (L.tile_gated) {
        if (L.n_active_tiles > L.n_tiles) return fault(desc::F_N_ACTIVE_TILES);
    } else if (L.n_active_tiles != L.n_tiles) {
        return fault(desc::F_N_ACTIVE_TILES);
    }
    if (L.n_res_tiles) {
        if (!(L.residual && L.tile_gated)) return fault(desc::F_N_RES_TILES);
        if (L.n_active_tiles + L.n_res_tiles > L.n_tiles) return fault(desc::F_N_RES_TILES);
    }
    if (L.out_ch_gated ? L.n_active_out > L.out_c : L.n_active_out != L.out_c)
        return fault(desc::F_N_ACTIVE_OUT);
    if (L.in_ch_gated ? L.n_active_in > L.in_c : L.n_active_in != L.in_c)
        return fault(desc::F_N_ACTIVE_IN);
    // offsets: unused ones are 0, all aligned, no buffer past 4 GiB, no harmful overlap
    Buffer b[N_BUFFERS];
    layer_buffers(L, b);
    for (u32 i = 0; i < N_BUFFERS; i++) {
        if (!b[i].used && b[i].offset != 0) return fault(b[i].field_no);
        if (b[i].offset % AXI_BYTES) return fault(b[i].field_no);
    }
    // formats.descriptor_buffers order (the residual buffer after the params)
    const u32 order[N_BUFFERS] = {0, 1, 3, 4, 2, 5, 6, 7, 8, 9, 10};
    for (u32 j = 0; j < N_BUFFERS; j++) {
        const Buffer &x = b[order[j]];
        if (x.used && (u64)x.offset + x.bytes > 0x100000000ull) return fault(x.field_no);
    }
    if (overlap(b[0].offset, b[0].bytes, b[1].offset, b[1].bytes)) return fault(desc::F_OUT_OFFSET);
    if (L.residual && !L.in_place && overlap(b[2].offset, b[2].bytes, b[1].offset, b[1].bytes))
        return fault(desc::F_OUT_OFFSET);
    const DescCheck fit = check_fit(L);
    if (fit.code) return fit;
    const DescCheck fit2 = check_im2col_fit(L);
    if (fit2.code) return fit2;
    L.pitch = L.im2col ? im2col_pitch(L) : 0;
    // every buffer inside its region (the *_bytes registers)
    const u32 region_bytes[4] = {R.fmap, R.weight, R.work, R.sums};
    for (u32 j = 0; j < N_BUFFERS; j++) {
        const Buffer &x = b[order[j]];
        if (x.used && (u64)x.offset + x.bytes > region_bytes[x.region])
            return fault(x.field_no);
    }
    return {err::OK, 0};
}

}  // namespace dg

#endif  // DG_DESCRIPTOR_H
