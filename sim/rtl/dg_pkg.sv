`default_nettype none
// dg_pkg: the engine contract as a package, so module headers (port widths) can use it.
//
// dg_params.svh is GENERATED per engine config (dgfpga.contract.codegen; dgfpga.backends.rtl_sim
// renders the config's copy into its build folder and puts it first on the include path):
// DG_ + the TOML name in upper case for every EngineConfig field (DG_TM, DG_MAX_IN_CHANNELS,
// DG_WEIGHT_BUFFER_BYTES, DG_CONFIG_HASH, ...), the register offsets and fields, the STATUS
// codes and DG_DESC_<FIELD>_WORD/_LSB/_WIDTH of every descriptor field. The RTL has no
// configuration parameters of its own: which engine it is depends only on this include.
// The include's elaboration checks are generate blocks, which a package cannot hold: they
// are left out here (DG_PARAMS_NO_CHECKS); EngineConfig validation covers them and dg_engine
// checks what its micro-architecture assumes.
`define DG_PARAMS_NO_CHECKS
package dg_pkg;
`include "dg_params.svh"

    // ---- micro-architecture sizes derived from the contract (shared by the engine's modules)
    localparam int AB = DG_AXI_BYTES;                      // bytes per AXI beat
    localparam int ABL = $clog2(AB);
    localparam int TNL = $clog2(DG_TN);
    localparam int CT_MAX = 2 * DG_MAX_TILE + 1;           // conv patch side under a fused pool
    localparam int PMAX = (CT_MAX - 1) * 2 + DG_MAX_KERNEL;  // input patch side limit
    localparam int PW = $clog2(PMAX);                      // patch row/col index width
    localparam int NB = (DG_TN > AB) ? DG_TN : AB;         // byte banks of the patch buffer
    localparam int NBL = $clog2(NB);
    localparam int IHALF_RAW = DG_IFM_BUFFER_BYTES / 2 + PMAX * 2 * AB + DG_TN;
    localparam int IHALF = ((IHALF_RAW + NB - 1) / NB) * NB;   // bytes per patch half
    localparam int IDEPTH = 2 * IHALF / NB;                // rows per bank (both halves)
    localparam int IAW = $clog2(2 * IHALF);                // patch byte address width
    localparam int WD_A = DG_MAX_KERNEL_TAPS * ((DG_MAX_IN_CHANNELS + DG_TN - 1) / DG_TN);
    // a group's rows: k*k*ceil(n_in/TN) <= TM*k*k*n_in/(TM*TN) + k*k, and the fit rule
    // (formats.layer_fit_problems) bounds TM*k*k*n_in (im2col: TM*kp) by half the buffer
    localparam int WD_B = DG_WEIGHT_BUFFER_BYTES / 2 / (DG_TM * DG_TN) + DG_MAX_KERNEL_TAPS;
    localparam int WDEPTH = (WD_A < WD_B) ? WD_A : WD_B;   // weight buffer entries (Tm x Tn bytes) per bank
    localparam int WAW = $clog2(WDEPTH);
    // index widths of the limit-sized tables (indices are in range by the checks)
    localparam int I_MAX_TILES = (DG_MAX_TILES > 1) ? $clog2(DG_MAX_TILES) : 1;
    localparam int I_MAX_HEIGHT = (DG_MAX_HEIGHT > 1) ? $clog2(DG_MAX_HEIGHT) : 1;
    localparam int I_MAX_WIDTH = (DG_MAX_WIDTH > 1) ? $clog2(DG_MAX_WIDTH) : 1;
    localparam int I_MAX_LAYERS = (DG_MAX_LAYERS > 1) ? $clog2(DG_MAX_LAYERS) : 1;
    localparam int RPIX = DG_MAX_TILE * DG_MAX_TILE;       // output pixels of a tile
    localparam int RAW = $clog2(2 * RPIX);                 // residual buffer address width
    localparam int PPIX = CT_MAX * CT_MAX;                 // conv pixels of a pooled tile
    localparam int PK_BYTES = 4 * DG_TM;                   // largest write packet (sums)
    localparam int WBQ_DEPTH = 16;                         // write-back queue (MAC results)
    // depthwise (OP_DWCONV, k = DG_DW_KERNEL): the tap-banked dw patch buffer (dg_loader):
    // DW_NBK = k*k banks by (patch row mod k, patch column mod k), so the k*k taps of a conv
    // pixel (stride 1 or 2) never share a bank and one read gives every tap of the TM lanes.
    // Each bank holds its pixels' stored channels as a byte stream over DW_NBW byte columns
    // (as the NB patch banks do), so a beat's AB bytes and a read's TM lanes never collide.
    localparam int DW_K = DG_DW_KERNEL;
    localparam int DW_NBK = DW_K * DW_K;
    localparam int DW_NBW = (DG_TM > AB) ? DG_TM : AB;     // byte columns per dw bank
    localparam int DW_NBWL = $clog2(DW_NBW);
    // bytes per bank per half: the most any depthwise patch the fit rule admits puts in one
    // tap bank (generated: formats.dw_bank_half_bytes; ultra96 8192 B), in whole DW_NBW rows
    localparam int DW_HALF = ((DG_DW_BANK_HALF_BYTES + DW_NBW - 1) / DW_NBW) * DW_NBW;
    localparam int DW_DEPTH = 2 * DW_HALF / DW_NBW;         // rows per byte column (both halves)
    // dg_loader splits each dw bank into two DW_NBW-byte-wide memories of even and odd rows
    // (a read or write touches rows R and R + 1 of a bank): DW_DEPTH / 2 rows each
    localparam int DW_RAW = $clog2(DW_DEPTH / 2);            // their row address width
    localparam int DW_AW = $clog2(2 * DW_HALF);            // dw bank byte address width
    // Padded depthwise pixel stride (DW_PADDED; dg_loader's dw_cst, dg_compute's lane picks):
    // a pixel takes C rounded up to a multiple of dw_pad_g(C), the largest power of two <=
    // DW_NBW with that <= k * C, instead of C bytes; on when the banks hold every patch the
    // fit rule admits so padded (ultra96; not small, whose banks it would overflow)
    function automatic int dw_pad_g(input int c);
        int g;
        g = 1;
        for (int q = 2; q <= DW_NBW; q = q * 2)
            if (((c + q - 1) / q) * q <= DW_K * c) g = q;
        return g;
    endfunction
    function automatic bit dw_pad_fits();
        for (int p = 1; p <= PMAX; p++) begin
            int cmax, n;
            cmax = (DG_IFM_BUFFER_BYTES / 2) / (p * p);
            if (cmax > DG_MAX_IN_CHANNELS) cmax = DG_MAX_IN_CHANNELS;
            n = ((p + DW_K - 1) / DW_K) * ((p + DW_K - 1) / DW_K);
            // (padded bytes grow with C from DW_NBW / 2 on: C <= DW_NBW and cmax cover the max)
            for (int i = 1; i <= DW_NBW + 1; i++) begin
                int c;
                c = (i <= DW_NBW) ? i : cmax;
                if (c <= cmax && n * (((c + dw_pad_g(c) - 1) / dw_pad_g(c)) * dw_pad_g(c)) > DW_HALF) return 1'b0;
            end
        end
        return 1'b1;
    endfunction
    localparam bit DW_PADDED = dw_pad_fits();
    // the MAC array in dw mode: one product per DSP48E2, so a lane pair's Tn multiplies give
    // each of its two lanes DW_TPS taps per step (Tn = 1: the pair's one multiply takes its two
    // lanes in turn, DW_PAR = 2 steps per tap); DW_TSTEPS * DW_PAR array steps cover a
    // conv pixel's k*k taps for one m-group
    localparam int DW_TPS = (DG_TN >= 2) ? DG_TN / 2 : 1;
    localparam int DW_PAR = (DG_TN == 1 && DG_TM > 1) ? 2 : 1;
    localparam int DW_TSTEPS = (DW_NBK + DW_TPS - 1) / DW_TPS;
    // depthwise: loop order tiles -> m-groups (one patch per tile): the whole layer's params
    // and weight rows stay on chip, params in [SG_MAX][TM] banks (dg_loader dw_bias/dw_mult)
    localparam int SG_MAX = (DG_MAX_OUT_CHANNELS + DG_TM - 1) / DG_TM;
    localparam int I_SG = (SG_MAX > 1) ? $clog2(SG_MAX) : 1;
    localparam int TML = $clog2(DG_TM);
    // requantizer time-sharing (dg_requant SHARE): TM/4 lanes of 64-bit multipliers, one output
    // pixel per RQ_SHARE cycles (as the HLS engine and dgfpga.perf.resources assume)
    localparam int RQ_SHARE = (DG_TM >= DG_REQUANT_SHARE) ? DG_REQUANT_SHARE : DG_TM;
    // MAC-array tag: {bank, res_only, tile_last, py, px, sg, residual bytes [TM]}
    // (sg: the depthwise m-group of the tile pass, 0 otherwise)
    localparam int MTAG_W = 3 + 16 + 16 + DG_TM * 8;
    // tile record (compute -> write-back): {bank, glast, idx, o0y, o0x, cy0, cx0, oh, ow, chy, chw, sg}
    localparam int TR_W = 2 + 16 * 5 + 8 * 4 + 16;
    // work lists: u16 index entries, u32 bitmap words (formats)
    localparam int LEB = DG_LIST_ENTRY_BITS;               // bits of a list entry
    localparam int EPB = DG_AXI_DATA_BITS / LEB;           // list entries per beat
    localparam int BMW = DG_BITMAP_WORD_BITS;              // bits of a bitmap word

    // One layer as the engine runs it: the descriptor fields (widths from the contract), the
    // region-absolute addresses and the derived sizes. dg_sequencer latches it per layer
    // (ST_CHECK, ST_CHECK2); the loader, compute and write-back read it.
    typedef struct packed {
        logic [DG_DESC_K_WIDTH-1:0]      k;
        logic [DG_DESC_STRIDE_WIDTH-1:0] stride;
        logic [DG_DESC_PAD_WIDTH-1:0]    pad;
        logic in_signed, out_signed, residual, res_signed, maxpool, emit_sums, tile_gated;
        logic in_ch_gated, out_ch_gated, zero_halo;
        logic im2col;                     // flattened (ky, kx, c) reduction (formats im2col)
        logic [DG_DESC_SHIFT_WIDTH-1:0]  shift;
        logic [DG_DESC_IN_H_WIDTH-1:0]   in_h;
        logic [DG_DESC_IN_W_WIDTH-1:0]   in_w;
        logic [DG_DESC_OUT_H_WIDTH-1:0]  out_h;
        logic [DG_DESC_OUT_W_WIDTH-1:0]  out_w;
        logic [DG_DESC_IN_C_WIDTH-1:0]   in_c;
        logic [DG_DESC_OUT_C_WIDTH-1:0]  out_c;
        logic [DG_DESC_N_ACTIVE_TILES_WIDTH-1:0] n_act;
        logic [DG_DESC_N_RES_TILES_WIDTH-1:0]    n_res;
        logic [DG_DESC_N_ACTIVE_OUT_WIDTH-1:0]   n_out;
        logic [DG_DESC_N_ACTIVE_IN_WIDTH-1:0]    n_in;
        logic [DG_DESC_TILE_WIDTH-1:0]   tile;
        logic [DG_DESC_GRID_H_WIDTH-1:0] grid_h;
        logic [DG_DESC_GRID_W_WIDTH-1:0] grid_w;
        logic [DG_DESC_RES_MULT_WIDTH-1:0] res_mult;
        logic dw;                         // depthwise conv (op OP_DWCONV): lane m reads channel m only
        logic pixel_sums;                 // with emit_sums: one int32 sum row per output pixel
        logic [63:0] in_abs, out_abs, res_abs, w_abs, p_abs, sums_abs;   // absolute addresses
        logic [31:0] tl_off, rl_off, ol_off, il_off, bm_off;             // WORK offsets
        // derived (ST_CHECK2)
        logic [15:0] conv_h, conv_w;      // conv output size (before a fused max-pool)
        logic [15:0] cin_st, cout_st;     // stored channels of the input / output map
        logic [31:0] in_row_bytes;        // bytes of one input row
        logic [15:0] N;                   // n-groups per kernel position (>= 1)
        logic [15:0] G;                   // m-groups (depthwise: 1, its m-groups run per tile)
        logic [15:0] SG;                  // depthwise: m-groups per tile (1 otherwise)
        logic [7:0]  kk;                  // kernel taps
        logic        ic_layout;           // weights in ic_g_k_k_m layout (in-gated, out dense)
        logic [15:0] n_seq;               // tile-sequence entries per group (active + residual-only)
        // im2col (ST_CHECK2; formats.mac_steps_per_pixel, im2col_row_bytes, im2col_row_pitch)
        logic [15:0] kc;                  // k * in_c: flattened taps of one kernel row
        logic [15:0] kkc;                 // k * k * in_c: flattened taps of the kernel
        logic [15:0] S;                   // MAC steps per conv pixel = ceil(kkc / TN)
        logic [15:0] kp;                  // weight row bytes per output channel = S * TN
        logic [15:0] pitch;               // patch buffer bytes per patch row (= kc mod NB)
        logic [15:0] i2c_qa, i2c_ra;      // TN / kc, TN % kc: tap-offset advance per step
        logic [15:0] i2c_dq;              // (pitch - kc) / NB: bank rows per patch-row crossing
    } dg_layer_t;
endpackage
`undef DG_PARAMS_NO_CHECKS
`default_nettype wire
