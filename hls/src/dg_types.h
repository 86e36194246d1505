// dg_types.h - engine-wide types, derived buffer sizes and the decoded layer of the dgfpga engine.
//
// Everything here derives from the generated contract header dg_config.h (`dgfpga gen`,
// from dgfpga/contract/configs/*.toml, dgfpga/contract/regmap.py, dgfpga/contract/formats.py); nothing is written
// twice. The derived on-chip sizes are this micro-architecture's choice (docs/hls.md).
#ifndef DG_TYPES_H
#define DG_TYPES_H

#include <cstdint>

#include "ap_int.h"
#include "dg_config.h"

namespace dg {

typedef uint8_t u8;
typedef int8_t s8;
typedef uint16_t u16;
typedef int16_t s16;
typedef uint32_t u32;
typedef int32_t s32;
typedef uint64_t u64;
typedef int64_t s64;

// ---- array and limits (from the engine configuration) ----
constexpr unsigned TM = config::tm;                 // output-channel lanes of the MAC array
constexpr unsigned TN = config::tn;                 // input-channel lanes (reduced per cycle)
constexpr unsigned MAX_TILE = config::max_tile;     // output tile side
constexpr unsigned MAX_TILES = config::max_tiles;   // tiles of the largest grid
constexpr unsigned MAX_IN = config::max_in_channels;
constexpr unsigned MAX_OUT = config::max_out_channels;
constexpr unsigned MAX_LAYERS = config::max_layers;
constexpr unsigned BITMAP_WORDS = config::bitmap_words;
constexpr unsigned AXI_BYTES = config::axi_bytes;
constexpr unsigned MAX_KERNEL = fmt::MAX_KERNEL;             // largest kernel side
constexpr unsigned MAX_KERNEL_TAPS = fmt::MAX_KERNEL_TAPS;   // its k*k weights per channel pair

constexpr unsigned ceil_div(unsigned a, unsigned b) { return (a + b - 1) / b; }
constexpr unsigned max_u(unsigned a, unsigned b) { return a > b ? a : b; }

// ---- on-chip buffers (one half of each ping-pong pair) ----
// Weights: per lane m a column of TN-byte words, word r = kpos * NGI + n-group, the channel
// dimension zero-padded to TN. Depth = half the configured bytes / (TM*TN) plus MAX_KERNEL_TAPS
// words of padding slack, so every layer with tm*k*k*n_in <= weight_buffer_bytes/2
// (formats.layer_fit_problems) fits although its channel count is padded to TN.
constexpr unsigned W_DEPTH = ceil_div(config::fit_weight_group_bytes, TM * TN) + MAX_KERNEL_TAPS;
// Input patch: (patch pixel, stored channel) bytes packed densely (pixel * n + channel), TN
// cyclic banks; a read of TN consecutive bytes hits each bank once (rotated). Capacity =
// half the configured bytes, exactly the formats' check. The last (partial) channel group
// over-reads past the data; those bytes are masked, and the row index wraps to stay inside.
constexpr unsigned IFM_HALF_BYTES = config::fit_ifm_patch_bytes;
constexpr unsigned IFM_DEPTH = (IFM_HALF_BYTES + TN - 1) / TN;
// Accumulators of one m-group x one conv patch (the largest is (2*max_tile+1)^2 under a
// fused max-pool); ofm_buffer_bytes per half, ping-ponged between compute and write-back.
constexpr unsigned ACC_DEPTH = config::fit_acc_bytes / (4 * TM);
constexpr unsigned MAX_CONV_SIDE = 2 * MAX_TILE + 1;
constexpr unsigned MAX_PATCH_SIDE = (MAX_CONV_SIDE - 1) * 2 + MAX_KERNEL;
constexpr unsigned MAX_NGI = ceil_div(MAX_IN, TN);  // input-channel groups
constexpr unsigned MAX_G = ceil_div(MAX_OUT, TM);   // output-channel groups (m-groups)
constexpr unsigned PARAM_ROWS = MAX_G;              // params stored [m-group][lane]
// Requantizers: a 33x31-bit and a 9x31-bit product per lane cost ~6 DSP48E2, so the
// write-back requantizes TM/4 lanes per cycle (4 cycles per output pixel). It hides behind
// the MAC array whenever k*k*ceil(C_in/TN) >= 4 (every 3x3/7x7 layer; 1x1 from 4 groups).
constexpr unsigned REQUANT_LANES = TM >= fmt::REQUANT_SHARE ? TM / fmt::REQUANT_SHARE : 1;
constexpr unsigned REQUANT_STEPS = TM / REQUANT_LANES;

// Loop trip-count bounds for the tripcount pragmas (worst cases of the configuration).
constexpr unsigned TC_PATCH_PIXELS = MAX_PATCH_SIDE * MAX_PATCH_SIDE;
constexpr unsigned TC_MAC_STEPS = MAX_KERNEL_TAPS * MAX_NGI;
constexpr unsigned TC_CONV_PIXELS = MAX_CONV_SIDE * MAX_CONV_SIDE;
constexpr unsigned TC_STEPS = MAX_G * MAX_TILES + 2;

// ---- depthwise mode (op OP_DWCONV, docs/formats.md "Depthwise layers") ----
// The depthwise kernel side (formats.DW_KERNELS, one value: 3x3), from the generated contract.
constexpr unsigned DW_K = fmt::DW_KERNEL;
constexpr unsigned DW_TAPS = DW_K * DW_K;
// Weight words (TN taps each) per depthwise row (formats.dw_row_bytes / TN); the MAC array
// reduces TN/2 of them per step (dg_descriptor.h DW_PIX_STEPS).
constexpr unsigned DW_MAX_STEPS = ceil_div(DW_TAPS, TN);
// The dw patch buffer: DW_K x DW_K banks by (patch row mod 3, patch column mod 3), each TM
// bytes wide (byte m = channel m of a TM-channel group), so the 9 taps of one conv pixel lie
// in 9 different banks for either stride and the TM lanes read their own channels in one
// cycle. Bank (a, b) holds the patch pixels (y, x) with y % 3 = a, x % 3 = b at word
// ((y / 3) * ceil(sw / 3) + x / 3) * ceil(n / TM) + group. DW_DEPTH is the deepest bank of
// any patch that passes the fit rule (P^2 * n <= fit_ifm_patch_bytes, n <= MAX_IN), so no
// fitting layer overflows it: the rounding of P to 3 and of n to TM is its cost.
constexpr unsigned MAX_DW_SIDE = (MAX_TILE - 1) * 2 + DW_K;
constexpr unsigned dw_depth_bound() {
    unsigned best = 1;
    for (unsigned p = DW_K; p <= MAX_DW_SIDE; p++) {
        unsigned n = IFM_HALF_BYTES / (p * p);
        if (n > MAX_IN) n = MAX_IN;
        const unsigned d = ceil_div(p, DW_K) * ceil_div(p, DW_K) * ceil_div(n, TM);
        if (d > best) best = d;
    }
    return best;
}
constexpr unsigned DW_DEPTH = dw_depth_bound();
constexpr unsigned TC_DW_WORDS = ceil_div(MAX_DW_SIDE, DW_K) * ceil_div(MAX_DW_SIDE, DW_K);
// m-groups per depthwise step (a batch): the MAC array and the write-back run the batch's
// m-groups of one tile in ONE flattened pipelined loop each (one fill/drain and one step
// sync per batch instead of per m-group, as the RTL runs its passes back to back), their
// accumulators side by side in one accumulator half: batch = min(G, DW_BATCH,
// ACC_DEPTH / (tile pixels)) (dg_engine.cpp dw_batch). DW_BATCH bounds the write-back's
// per-batch channel-sum registers (DW_BATCH x TM int32).
constexpr unsigned DW_BATCH = 16;
constexpr unsigned DW_BATCH_PIXELS = 64;
// Tiles per conv step (a batch, dg_engine.cpp conv_batch): the patch loader, the MAC array
// and the write-back run B tiles of one m-group in one call each (their patches side by
// side in one patch half, their accumulators in one accumulator half), so a step's fill,
// sync and AXI latency are paid once per batch. Only layers without the fused max-pool and
// im2col; B tiles' patches must fit a patch half, their pixels an accumulator half, and B
// stays below the size whose per-tile work reaches CONV_BATCH_CYCLES.
constexpr unsigned CONV_BATCH = DW_BATCH;
constexpr unsigned CONV_BATCH_CYCLES = 256;

static_assert(TM >= 1 && TM <= 64 && (TM & (TM - 1)) == 0, "TM must be a power of two <= 64");
static_assert(TN >= 1 && TN <= 64 && (TN & (TN - 1)) == 0, "TN must be a power of two <= 64");
static_assert(ACC_DEPTH >= MAX_CONV_SIDE * MAX_CONV_SIDE,
              "ofm_buffer_bytes must hold tm accumulators of the fused max-pool conv patch");
// The config rule (EngineConfig.min_weight_buffer_bytes = 2*tm*max(max_in, 9*tn)): one m-group
// of a 1x1 layer at the channel limit, or of a 3x3 layer with one n-group. Wider 3x3 layers
// are the per-layer fit rule (check_fit: NO_FIT at the tile word, as formats.layer_fit_problems).
static_assert(W_DEPTH >= ceil_div(MAX_IN, TN) && W_DEPTH >= 9,
              "weight buffer must hold a 1x1 m-group at max_in_channels and a 3x3 one of tn inputs");
static_assert(IFM_HALF_BYTES >= (MAX_TILE + 2) * (MAX_TILE + 2) * TN,
              "input buffer must hold a max tile with its 3x3 halo");
static_assert(fmt::LIST_ENTRY_BITS == 8 * sizeof(u16), "work-list entries are the u16 of WorkList");
static_assert(fmt::BITMAP_WORD_BITS == 8 * sizeof(u32), "bitmap words are the u32 of WorkList");

// ---- fixed overheads of the cycle estimate (engine clocks; see docs/hls.md) ----
constexpr u64 CYC_START = 4;          // ap_start accepted, ENGINE_ID/argument latch
constexpr u64 CYC_LAYER = 32;         // descriptor checks and loop setup of one layer
constexpr u64 CYC_AXI_LATENCY = 24;   // first beat of an AXI read burst (DDR latency)
constexpr u64 CYC_STEP = 4;           // one ping-pong step: start/sync of its three stages
constexpr u64 CYC_PIPE = 12;          // fill/drain of a pipelined stage (MAC tree, requant)

// ---- STATUS and ENGINE_ID (bit positions from the register map, regmap.py) ----
inline u32 pack_status(u32 code, u32 layer, u32 entry) {
    ap_uint<32> s = 0;
    s.range(reg::STATUS_CODE_LSB + reg::STATUS_CODE_WIDTH - 1, reg::STATUS_CODE_LSB) = code;
    s.range(reg::STATUS_LAYER_LSB + reg::STATUS_LAYER_WIDTH - 1, reg::STATUS_LAYER_LSB) = layer;
    s.range(reg::STATUS_ENTRY_LSB + reg::STATUS_ENTRY_WIDTH - 1, reg::STATUS_ENTRY_LSB) = entry;
    return (u32)s;
}

inline u64 engine_id_value() {
    ap_uint<64> id = 0;
    id.range(reg::ENGINE_ID_CONFIG_HASH_LSB + reg::ENGINE_ID_CONFIG_HASH_WIDTH - 1,
             reg::ENGINE_ID_CONFIG_HASH_LSB) = config::config_hash;
    id.range(reg::ENGINE_ID_FORMAT_VERSION_LSB + reg::ENGINE_ID_FORMAT_VERSION_WIDTH - 1,
             reg::ENGINE_ID_FORMAT_VERSION_LSB) = fmt::FORMAT_VERSION;
    id.range(reg::ENGINE_ID_MAGIC_LSB + reg::ENGINE_ID_MAGIC_WIDTH - 1,
             reg::ENGINE_ID_MAGIC_LSB) = reg::ENGINE_MAGIC;
    return (u64)id;
}

// ---- the decoded layer descriptor (field names = formats.DESCRIPTOR_FIELDS) ----
struct Layer {
    u32 k, stride, pad, shift;
    bool in_signed, out_signed, relu, residual, res_signed, maxpool, emit_sums;
    bool tile_gated, in_ch_gated, out_ch_gated, zero_halo, in_place, from_gate;
    bool depthwise;    // op OP_DWCONV: output channel m reads input channel m only
    bool pixel_sums;   // with emit_sums: SUMS rows per output pixel (the output values)
    u32 in_h, in_w, out_h, out_w, in_c, out_c, tile, grid_h, grid_w;
    u32 n_active_tiles, n_res_tiles, n_active_out, n_active_in;
    u32 res_mult;
    u32 in_offset, out_offset, res_offset, weight_offset, param_offset;
    u32 tile_list_offset, res_tile_list_offset, out_ch_list_offset, in_ch_list_offset;
    u32 bitmap_offset, sums_offset;
    // derived
    u32 conv_h, conv_w, n_tiles, in_c_stored, out_c_stored, kk, ngi;
    bool w_ic_major;   // weight layout [C_in][G][k][k][m_g] (conv2) else [C_out][k][k][C_in]
    bool im2col;       // reduce over the flattened (ky, kx, c) taps (formats im2col flag)
    u32 kc;            // k * in_c: flattened taps of one kernel row (im2col)
    u32 kkc;           // k * k * in_c: flattened taps of the kernel (im2col)
    u32 steps;         // MAC-array steps per conv pixel (formats.mac_steps_per_pixel)
    u32 n_groups;      // m-groups: ceil(n_active_out / TM)
    u32 pitch;         // patch buffer bytes per patch row (formats.im2col_row_pitch if im2col)
    u32 i2c_qa, i2c_ra;   // TN / kc, TN % kc: advance of lane 0's tap per MAC step (im2col)
};

// The work list of one layer, on chip (validated before anything is written).
struct WorkList {
    u16 tiles[MAX_TILES];       // active tiles (the full grid when not tile_gated)
    u16 res_tiles[MAX_TILES];   // residual-only tiles
    u16 out_ch[MAX_OUT];        // output channel id of each compact output position
    u16 in_ch[MAX_IN];          // input channel id of each stored input position
    u32 bitmap[BITMAP_WORDS];   // tile bitmap (zero_halo)
};

// Geometry of one output tile and the conv patch / input patch it needs.
struct TileGeom {
    int oy0, ox0, th, tw;   // output pixels
    int cy0, cx0, ch, cw;   // conv-output pixels computed (= output unless max-pool)
    int iy0, ix0, sh, sw;   // input patch (may start/end in the zero padding)
};

inline TileGeom tile_geom(const Layer &L, u32 tile_id) {
#pragma HLS INLINE
    TileGeom g;
    const int t = (int)L.tile;
    const int ty = (int)(tile_id / L.grid_w), tx = (int)(tile_id % L.grid_w);
    g.oy0 = ty * t;
    g.ox0 = tx * t;
    g.th = (int)L.out_h - g.oy0 < t ? (int)L.out_h - g.oy0 : t;
    g.tw = (int)L.out_w - g.ox0 < t ? (int)L.out_w - g.ox0 : t;
    if (L.maxpool) {  // pooled rows oy use conv rows 2*oy-1 .. 2*oy+1 (pad 1)
        int cy1 = 2 * (g.oy0 + g.th - 1) + 1, cx1 = 2 * (g.ox0 + g.tw - 1) + 1;
        g.cy0 = 2 * g.oy0 - 1 < 0 ? 0 : 2 * g.oy0 - 1;
        g.cx0 = 2 * g.ox0 - 1 < 0 ? 0 : 2 * g.ox0 - 1;
        if (cy1 > (int)L.conv_h - 1) cy1 = (int)L.conv_h - 1;
        if (cx1 > (int)L.conv_w - 1) cx1 = (int)L.conv_w - 1;
        g.ch = cy1 - g.cy0 + 1;
        g.cw = cx1 - g.cx0 + 1;
    } else {
        g.cy0 = g.oy0;
        g.cx0 = g.ox0;
        g.ch = g.th;
        g.cw = g.tw;
    }
    g.iy0 = g.cy0 * (int)L.stride - (int)L.pad;
    g.ix0 = g.cx0 * (int)L.stride - (int)L.pad;
    g.sh = (g.ch - 1) * (int)L.stride + (int)L.k;
    g.sw = (g.cw - 1) * (int)L.stride + (int)L.k;
    return g;
}

// The tiles of one conv step (a batch of n <= CONV_BATCH active tiles of one m-group; a
// depthwise step or an unbatched conv step: n = 1): their geometry, ids and the byte offset
// of each tile's patch in the patch half (a multiple of TN: whole bank rows), the batch's
// conv-output and output pixels (the MAC and write-back trip counts: no stage reads all n
// entries at once, so the per-tile arrays can be LUTRAM rows read one per tile).
struct TileBatch {
    TileGeom g[CONV_BATCH];
    u32 id[CONV_BATCH];
    u32 base[CONV_BATCH];
    u32 n, conv_px, out_px;
};

// Requantization (docs/architecture.md): y = clamp((acc*mult + res*res_mult + 2^(s-1)) >> s).
inline int requant(s64 acc_plus_bias, s32 mult, int res, u32 res_mult, u32 shift, int lo, int hi) {
#pragma HLS INLINE
    s64 z = acc_plus_bias * (s64)mult + (s64)res * (s64)res_mult;
    s64 y = (z + ((s64)1 << (shift - 1))) >> shift;
    return y < lo ? lo : (y > hi ? hi : (int)y);
}

}  // namespace dg

#endif  // DG_TYPES_H
