`default_nettype none
// dg_engine: reference RTL of the dgfpga sparse-conv engine (top: s_axi_control + one shared m_axi_gmem master).
//
// One engine start runs `layer_count` layer descriptors (dgfpga.formats) back to back.
// Per layer: fetch the descriptor, check it (dg_desc_check), fetch and check the work
// lists; on any error STATUS is set and nothing of that layer is written. Then four
// agents run concurrently over the m-groups (Tm active output channels) x tile sequence
// (active tiles, then residual-only tiles):
//   loader     params + weights of group g+1 into the other bank (ping-pong), through a
//              credit-managed beat FIFO, up to Tn/Tm bytes per cycle;
//   prefetch   input patch rows + residual bytes of the next tile into the other half;
//   compute    per conv pixel: kernel positions x n-groups, one MAC-array step per
//              cycle, tiles back to back;
//   write-back bias, requantize, residual, clamp, optional 3x3/s2 max-pool, per-tile
//              sums, strobed AXI writes.
// docs/rtl.md describes the micro-architecture, the STATUS codes and the cycle figures.
// Ports follow Vitis HLS naming (ap_clk, ap_rst_n, s_axi_control_*, m_axi_gmem_*,
// interrupt) so the same cocotb testbench can drive HLS-exported RTL.
module dg_engine #(
    // engine configuration (dgfpga/contract/configs/<name>.toml; dgfpga.rtl_sim passes them)
    parameter int TM = 4,                    // output channels per MAC-array step (power of two)
    parameter int TN = 4,                    // input channels per MAC-array step (power of two)
    parameter int MAX_TILE = 4,              // output tile side limit
    parameter int MAX_GRID = 8,              // tiles per side limit
    parameter int MAX_WIDTH = 32,            // feature-map width limit
    parameter int MAX_HEIGHT = 32,           // feature-map height limit
    parameter int MAX_IN = 64,               // input channel limit
    parameter int MAX_OUT = 64,              // output channel limit
    parameter int MAX_LAYERS = 4,            // descriptors per start
    parameter int WBUF_BYTES = 4608,         // weight_buffer_bytes (fit check; sizes the two weight banks)
    parameter int IFM_BYTES = 4608,          // ifm_buffer_bytes (two patch halves)
    parameter int OFM_BYTES = 1296,          // ofm_buffer_bytes (fit check)
    parameter logic [31:0] CONFIG_HASH = 32'hE3566D5F,  // EngineConfig.config_hash (ENGINE_ID)
    parameter int AXI_DATA_W = 64,           // m_axi data width, 32..512
    parameter int AXI_ADDR_W = 64,           // m_axi address width
    parameter int MAX_BURST = 16,            // m_axi burst length limit, 1..256
    parameter int CTRL_ADDR_W = 8            // s_axi_control address width
) (
    input  wire                      ap_clk,
    input  wire                      ap_rst_n,
    // AXI4-Lite control
    input  wire [CTRL_ADDR_W-1:0]    s_axi_control_awaddr,
    input  wire                      s_axi_control_awvalid,
    output wire                      s_axi_control_awready,
    input  wire [31:0]               s_axi_control_wdata,
    input  wire [3:0]                s_axi_control_wstrb,
    input  wire                      s_axi_control_wvalid,
    output wire                      s_axi_control_wready,
    output wire [1:0]                s_axi_control_bresp,
    output wire                      s_axi_control_bvalid,
    input  wire                      s_axi_control_bready,
    input  wire [CTRL_ADDR_W-1:0]    s_axi_control_araddr,
    input  wire                      s_axi_control_arvalid,
    output wire                      s_axi_control_arready,
    output wire [31:0]               s_axi_control_rdata,
    output wire [1:0]                s_axi_control_rresp,
    output wire                      s_axi_control_rvalid,
    input  wire                      s_axi_control_rready,
    // AXI4 master (all four regions)
    output wire [0:0]                m_axi_gmem_awid,
    output wire [AXI_ADDR_W-1:0]     m_axi_gmem_awaddr,
    output wire [7:0]                m_axi_gmem_awlen,
    output wire [2:0]                m_axi_gmem_awsize,
    output wire [1:0]                m_axi_gmem_awburst,
    output wire                      m_axi_gmem_awlock,
    output wire [3:0]                m_axi_gmem_awcache,
    output wire [2:0]                m_axi_gmem_awprot,
    output wire                      m_axi_gmem_awvalid,
    input  wire                      m_axi_gmem_awready,
    output wire [AXI_DATA_W-1:0]     m_axi_gmem_wdata,
    output wire [AXI_DATA_W/8-1:0]   m_axi_gmem_wstrb,
    output wire                      m_axi_gmem_wlast,
    output wire                      m_axi_gmem_wvalid,
    input  wire                      m_axi_gmem_wready,
    input  wire [0:0]                m_axi_gmem_bid,
    input  wire [1:0]                m_axi_gmem_bresp,
    input  wire                      m_axi_gmem_bvalid,
    output wire                      m_axi_gmem_bready,
    output wire [0:0]                m_axi_gmem_arid,
    output wire [AXI_ADDR_W-1:0]     m_axi_gmem_araddr,
    output wire [7:0]                m_axi_gmem_arlen,
    output wire [2:0]                m_axi_gmem_arsize,
    output wire [1:0]                m_axi_gmem_arburst,
    output wire                      m_axi_gmem_arlock,
    output wire [3:0]                m_axi_gmem_arcache,
    output wire [2:0]                m_axi_gmem_arprot,
    output wire                      m_axi_gmem_arvalid,
    input  wire                      m_axi_gmem_arready,
    input  wire [0:0]                m_axi_gmem_rid,
    input  wire [AXI_DATA_W-1:0]     m_axi_gmem_rdata,
    input  wire [1:0]                m_axi_gmem_rresp,
    input  wire                      m_axi_gmem_rlast,
    input  wire                      m_axi_gmem_rvalid,
    output wire                      m_axi_gmem_rready,
    /* verilator lint_off SYMRSVDWORD */
    output wire                      interrupt
    /* verilator lint_on SYMRSVDWORD */
);
`include "dg_params.svh"
    // ------------------------------------------------------------------ derived sizes
    localparam int AB = AXI_DATA_W / 8;                    // bytes per beat
    localparam int ABL = $clog2(AB);
    localparam int TNL = $clog2(TN);
    localparam int MAX_TILES = MAX_GRID * MAX_GRID;
    localparam int CT_MAX = 2 * MAX_TILE + 1;              // conv patch side under a fused pool
    localparam int PMAX = (CT_MAX - 1) * 2 + 7;            // input patch side limit
    localparam int NB = (TN > AB) ? TN : AB;               // byte banks of the patch buffer
    localparam int NBL = $clog2(NB);
    localparam int IHALF_RAW = IFM_BYTES / 2 + PMAX * 2 * AB + TN;
    localparam int IHALF = ((IHALF_RAW + NB - 1) / NB) * NB;   // bytes per patch half
    localparam int IDEPTH = 2 * IHALF / NB;                // rows per bank (both halves)
    localparam int IAW = $clog2(2 * IHALF);                // patch byte address width
    localparam int WD_A = 49 * ((MAX_IN + TN - 1) / TN);
    localparam int WD_B = WBUF_BYTES / 2 / TN + 49;
    localparam int WDEPTH = (WD_A < WD_B) ? WD_A : WD_B;   // weight buffer entries (Tm x Tn bytes)
    localparam int WAW = $clog2(WDEPTH);
    localparam int PW = $clog2(PMAX);                     // patch row/col index width
    // index widths of the limit-sized tables (indices are in range by the checks)
    localparam int I_MAX_TILES = (MAX_TILES > 1) ? $clog2(MAX_TILES) : 1;
    localparam int I_MAX_HEIGHT = (MAX_HEIGHT > 1) ? $clog2(MAX_HEIGHT) : 1;
    localparam int I_MAX_WIDTH = (MAX_WIDTH > 1) ? $clog2(MAX_WIDTH) : 1;
    localparam int I_MAX_OUT = (MAX_OUT > 1) ? $clog2(MAX_OUT) : 1;
    localparam int I_MAX_IN = (MAX_IN > 1) ? $clog2(MAX_IN) : 1;
    localparam int RPIX = MAX_TILE * MAX_TILE;             // output pixels of a tile
    localparam int PPIX = CT_MAX * CT_MAX;                 // conv pixels of a pooled tile
    localparam int DESC_BEATS = (96 + AB - 1) / AB + 1;
    localparam int PK_BYTES = 4 * TM;                      // largest write packet (sums)
    localparam int WIN_BEATS = (PK_BYTES + AB - 1) / AB + 1;
    localparam int WBQ_DEPTH = 16;
    localparam int PKQ_DEPTH = 16;
    localparam int PEND_DEPTH = 32;

    if ((TM & (TM - 1)) != 0 || (TN & (TN - 1)) != 0 || TM > 64 || TN > 64) begin : g_chk_tmtn
        $error("dg_engine: TM and TN must be powers of two <= 64");
    end
    if (AXI_DATA_W < 32 || AXI_DATA_W > 512 || (AXI_DATA_W & (AXI_DATA_W - 1)) != 0) begin : g_chk_dw
        $error("dg_engine: AXI_DATA_W must be 32..512, a power of two");
    end
    if (MAX_TILE < 1 || MAX_TILE > 255 || MAX_GRID < 1 || MAX_GRID > 255 || MAX_LAYERS < 1 || MAX_LAYERS > 255) begin : g_chk_lim
        $error("dg_engine: MAX_TILE/MAX_GRID/MAX_LAYERS must be 1..255");
    end
    if (PK_BYTES > 255) begin : g_chk_pk
        $error("dg_engine: 4*TM must fit a byte");
    end

    wire clk = ap_clk;
    wire rst = !ap_rst_n;

    // ------------------------------------------------------------------ registers (s_axi_control)
    wire ap_start;
    wire ap_done_pulse, ap_ready_pulse, ap_idle;
    wire [63:0] a_program, a_fmap_base, a_weight_base, a_work_base, a_sums_base;
    wire [31:0] a_layer_count, a_fmap_bytes, a_weight_bytes, a_work_bytes, a_sums_bytes;
    logic [31:0] status_reg;
    wire out_vld_pulse;
    logic [63:0] cycle_cnt;            // engine cycles since ap_start (CYCLES)
    dg_axil_regs #(.ADDR_W(CTRL_ADDR_W)) regs (
        .clk(clk), .rst(rst),
        .s_axil_awaddr(s_axi_control_awaddr), .s_axil_awvalid(s_axi_control_awvalid),
        .s_axil_awready(s_axi_control_awready), .s_axil_wdata(s_axi_control_wdata),
        .s_axil_wstrb(s_axi_control_wstrb), .s_axil_wvalid(s_axi_control_wvalid),
        .s_axil_wready(s_axi_control_wready), .s_axil_bresp(s_axi_control_bresp),
        .s_axil_bvalid(s_axi_control_bvalid), .s_axil_bready(s_axi_control_bready),
        .s_axil_araddr(s_axi_control_araddr), .s_axil_arvalid(s_axi_control_arvalid),
        .s_axil_arready(s_axi_control_arready), .s_axil_rdata(s_axi_control_rdata),
        .s_axil_rresp(s_axi_control_rresp), .s_axil_rvalid(s_axi_control_rvalid),
        .s_axil_rready(s_axi_control_rready),
        .ap_start(ap_start), .ap_done(ap_done_pulse), .ap_ready(ap_ready_pulse), .ap_idle(ap_idle),
        .arg_program(a_program), .arg_layer_count(a_layer_count),
        .arg_fmap_base(a_fmap_base), .arg_fmap_bytes(a_fmap_bytes),
        .arg_weight_base(a_weight_base), .arg_weight_bytes(a_weight_bytes),
        .arg_work_base(a_work_base), .arg_work_bytes(a_work_bytes),
        .arg_sums_base(a_sums_base), .arg_sums_bytes(a_sums_bytes),
        .out_status(status_reg), .out_status_vld(out_vld_pulse),
        .out_cycles(cycle_cnt), .out_cycles_vld(out_vld_pulse),
        .out_engine_id({DG_ENGINE_MAGIC, 16'(DG_FORMAT_VERSION), CONFIG_HASH}),
        .out_engine_id_vld(out_vld_pulse), .irq(interrupt));

    // ------------------------------------------------------------------ AXI masters
    logic [63:0] rcmd_addr;
    logic [23:0] rcmd_beats;
    logic rcmd_valid;
    wire rcmd_ready;
    wire [AXI_DATA_W-1:0] rd_data;
    wire rd_last, rd_valid;
    logic rd_ready;
    wire rd_idle, rd_err;
    logic err_clear;
    dg_axi_rd #(.ADDR_W(AXI_ADDR_W), .DATA_W(AXI_DATA_W), .MAX_BURST(MAX_BURST), .OUTSTANDING(8)) rdm (
        .clk(clk), .rst(rst), .cmd_addr(AXI_ADDR_W'(rcmd_addr)), .cmd_beats(rcmd_beats),
        .cmd_valid(rcmd_valid), .cmd_ready(rcmd_ready), .rd_data(rd_data), .rd_last(rd_last),
        .rd_valid(rd_valid), .rd_ready(rd_ready), .idle(rd_idle), .err(rd_err), .err_clear(err_clear),
        .m_axi_arid(m_axi_gmem_arid), .m_axi_rid(m_axi_gmem_rid), .m_axi_araddr(m_axi_gmem_araddr), .m_axi_arlen(m_axi_gmem_arlen), .m_axi_arsize(m_axi_gmem_arsize),
        .m_axi_arburst(m_axi_gmem_arburst), .m_axi_arvalid(m_axi_gmem_arvalid),
        .m_axi_arready(m_axi_gmem_arready), .m_axi_rdata(m_axi_gmem_rdata), .m_axi_rresp(m_axi_gmem_rresp),
        .m_axi_rlast(m_axi_gmem_rlast), .m_axi_rvalid(m_axi_gmem_rvalid), .m_axi_rready(m_axi_gmem_rready));
    assign m_axi_gmem_arlock = 1'b0;
    assign m_axi_gmem_arcache = 4'b0011;
    assign m_axi_gmem_arprot = 3'b000;

    logic [63:0] wcmd_addr;
    logic [23:0] wcmd_beats;
    logic wcmd_valid;
    wire wcmd_ready;
    logic [AXI_DATA_W-1:0] wd_data;
    logic [AB-1:0] wd_strb;
    logic wd_valid;
    wire wd_ready, wr_idle, wr_err;
    dg_axi_wr #(.ADDR_W(AXI_ADDR_W), .DATA_W(AXI_DATA_W), .MAX_BURST(MAX_BURST), .OUTSTANDING(8),
                .DATA_FIFO(16)) wrm (
        .clk(clk), .rst(rst), .cmd_addr(AXI_ADDR_W'(wcmd_addr)), .cmd_beats(wcmd_beats),
        .cmd_valid(wcmd_valid), .cmd_ready(wcmd_ready), .wd_data(wd_data), .wd_strb(wd_strb),
        .wd_valid(wd_valid), .wd_ready(wd_ready), .idle(wr_idle), .err(wr_err), .err_clear(err_clear),
        .m_axi_awid(m_axi_gmem_awid), .m_axi_bid(m_axi_gmem_bid), .m_axi_awaddr(m_axi_gmem_awaddr), .m_axi_awlen(m_axi_gmem_awlen), .m_axi_awsize(m_axi_gmem_awsize),
        .m_axi_awburst(m_axi_gmem_awburst), .m_axi_awvalid(m_axi_gmem_awvalid),
        .m_axi_awready(m_axi_gmem_awready), .m_axi_wdata(m_axi_gmem_wdata), .m_axi_wstrb(m_axi_gmem_wstrb),
        .m_axi_wlast(m_axi_gmem_wlast), .m_axi_wvalid(m_axi_gmem_wvalid), .m_axi_wready(m_axi_gmem_wready),
        .m_axi_bresp(m_axi_gmem_bresp), .m_axi_bvalid(m_axi_gmem_bvalid), .m_axi_bready(m_axi_gmem_bready));
    assign m_axi_gmem_awlock = 1'b0;
    assign m_axi_gmem_awcache = 4'b0011;
    assign m_axi_gmem_awprot = 3'b000;

    // ------------------------------------------------------------------ main state
    typedef enum logic [4:0] {
        ST_IDLE, ST_START, ST_DESC_REQ, ST_DESC_RX, ST_CHECK, ST_CHECK2, ST_LIST_SEL, ST_LIST_RX,
        ST_LIST_END, ST_HALO, ST_RUN, ST_LAYER_END,
        ST_ERR, ST_DONE
    } state_t;
    state_t state;
    logic [7:0] layer;

    // descriptor
    logic [DESC_BEATS*AB*8-1:0] desc_raw;
    logic [7:0] desc_beat;
    logic [ABL:0] desc_off;
    wire [24*32-1:0] desc = 768'(desc_raw >> (32'(desc_off) * 8));
    wire [7:0] chk_code;
    wire [15:0] chk_entry;
    dg_desc_check #(.TM(TM), .MAX_TILE(MAX_TILE), .MAX_GRID(MAX_GRID), .MAX_WIDTH(MAX_WIDTH),
                    .MAX_HEIGHT(MAX_HEIGHT), .MAX_IN(MAX_IN), .MAX_OUT(MAX_OUT),
                    .WBUF_BYTES(WBUF_BYTES), .IFM_BYTES(IFM_BYTES), .OFM_BYTES(OFM_BYTES),
                    .AXI_BYTES(AB)) chk (
        .desc(desc), .fmap_bytes(a_fmap_bytes), .weight_bytes(a_weight_bytes),
        .work_bytes(a_work_bytes), .sums_bytes(a_sums_bytes), .err_code(chk_code), .err_entry(chk_entry));

    // layer fields (latched in ST_CHECK2)
    logic [3:0] L_k;
    logic [1:0] L_stride;
    logic [2:0] L_pad;
    logic L_in_signed, L_out_signed, L_residual, L_res_signed, L_maxpool, L_emit_sums, L_tile_gated;
    logic L_in_ch_gated, L_out_ch_gated, L_zero_halo;
    logic [4:0] L_shift;
    logic [15:0] L_in_h, L_in_w, L_out_h, L_out_w, L_in_c, L_out_c, L_n_act, L_n_res, L_n_out, L_n_in;
    logic [7:0] L_tile, L_grid_h, L_grid_w;
    logic [31:0] L_res_mult;
    logic [63:0] L_in_abs, L_out_abs, L_res_abs, L_w_abs, L_p_abs, L_sums_abs;
    logic [31:0] L_tl_off, L_rl_off, L_ol_off, L_il_off, L_bm_off;
    logic [15:0] L_conv_h, L_conv_w;
    logic [15:0] L_cin_st, L_cout_st;
    logic [31:0] L_in_row_bytes;
    logic [15:0] L_N;            // n-groups per kernel position (>= 1)
    logic [15:0] L_G;            // m-groups
    logic [7:0]  L_kk;
    logic L_ic_layout;
    wire  L_no_mac = L_n_in == 16'd0;   // no active input channel: acc = 0 (+ bias), no patch, no weights

    // work lists
    logic [15:0] tile_list [MAX_TILES];
    logic [15:0] res_list [MAX_TILES];
    logic [15:0] outch_list [MAX_OUT];
    logic [15:0] inch_list [MAX_IN];
    logic [MAX_TILES-1:0] act_flags, bitmap;
    logic [2:0] list_kind;      // 0 tiles, 1 res tiles, 2 out ch, 3 in ch, 4 bitmap
    logic [15:0] list_n, list_e, list_limit;
    logic [AXI_DATA_W-1:0] list_beat;
    logic list_have;
    logic [15:0] list_slot;
    logic [15:0] list_prev;
    logic range_err, order_err, inter_err;
    logic [15:0] range_at, order_at;
    // halo tables: input row/col -> tile row base / tile col (zero_halo)
    logic [15:0] row_tbase_tab [MAX_HEIGHT];
    logic        row_tv_tab [MAX_HEIGHT];
    logic [7:0]  col_tile_tab [MAX_WIDTH];
    logic        col_tv_tab [MAX_WIDTH];
    logic [15:0] halo_i;
    logic [7:0]  halo_qr, halo_rr, halo_qc, halo_rc;

    // m-groups: two banks (ping-pong) of lane channel ids, params and weights; the loader
    // fills bank g%2 with group g while the pipeline computes group g-1 out of the other
    logic [15:0] n_seq;            // tile-sequence entries per group (active + residual-only)
    logic [15:0] ld_g;             // next group to load
    logic        ld_busy;
    wire         ld_b = ld_g[0];
    logic [15:0] bk_grp [2];       // group held by the bank
    logic [1:0]  bk_lanes;         // bank lane ids valid
    logic [1:0]  bk_ready;         // bank params (and weights) loaded
    logic [15:0] bk_m0 [2];
    logic [7:0]  bk_mg [2];
    logic [15:0] bk_ch [2][TM];
    logic [31:0] bk_bias [2][TM];
    logic [31:0] bk_mult [2][TM];
    logic [15:0] wb_gdone;         // groups completely written back (their bank is free)

    // error reporting
    logic [7:0] err_code;
    logic [15:0] err_entry;

    // owner of each outstanding read command in ST_RUN (1 = prefetcher, 0 = loader)
    logic own_push, own_in;
    wire own_in_ready, own_valid, own_out;
    wire own_pop = rd_valid && rd_ready && rd_last && own_valid;
    wire [6:0] own_count;
    dg_fifo #(.WIDTH(1), .DEPTH(64)) owner_fifo (
        .clk(clk), .rst(rst), .in_data(own_in), .in_valid(own_push), .in_ready(own_in_ready),
        .out_data(own_out), .out_valid(own_valid), .out_ready(own_pop), .count(own_count));
    wire rd_to_pf = own_valid && own_out;
    wire rd_to_ld = own_valid && !own_out;

    // ------------------------------------------------------------------ span loader (params, weights)
    // spans: (byte address, bytes) read one byte per cycle into the params / weight buffer
    typedef enum logic [1:0] {SP_PARAM, SP_WOC, SP_WIC} span_kind_t;
    logic [1:0]  sp_phase;         // issue side: 0 params, 1 weights, 2 done
    logic [15:0] sp_i, sp_j;       // issue counters (lane / in-channel, kernel position)
    // FIFO of issued spans: {kind, lane or n, kpos, off, nbytes}
    localparam int SPF_W = 2 + 16 + 8 + 8 + 16;
    logic [SPF_W-1:0] spf_in;
    logic spf_push;
    wire spf_in_ready, spf_valid;
    wire [SPF_W-1:0] spf_out;
    logic spf_pop;
    wire [5:0] spf_count;
    dg_fifo #(.WIDTH(SPF_W), .DEPTH(32)) span_fifo (
        .clk(clk), .rst(rst), .in_data(spf_in), .in_valid(spf_push), .in_ready(spf_in_ready),
        .out_data(spf_out), .out_valid(spf_valid), .out_ready(spf_pop), .count(spf_count));
    // loader beat FIFO (credit-managed)
    localparam int LDF_DEPTH = 64;
    wire ldf_in_ready, ldf_valid;
    wire [AXI_DATA_W-1:0] ldf_data;
    logic ldf_pop;
    wire [$clog2(LDF_DEPTH):0] ldf_count;
    logic [15:0] ld_out_beats;     // loader beats requested, not yet in the FIFO
    dg_fifo #(.WIDTH(AXI_DATA_W), .DEPTH(LDF_DEPTH)) ld_fifo (
        .clk(clk), .rst(rst), .in_data(rd_data), .in_valid(rd_valid && rd_to_ld), .in_ready(ldf_in_ready),
        .out_data(ldf_data), .out_valid(ldf_valid), .out_ready(ldf_pop), .count(ldf_count));
    // loader consume step (combinational, below): ld_k bytes from beat position pos
    logic [ABL:0] pos;             // byte position in the loader beat
    logic last_byte;
    localparam int KMAX = (TM > TN) ? TM : TN;   // loader bytes per cycle, at most
    logic [7:0] ld_k;
    logic [7:0] ld_byte [KMAX];
    wire ld_consume = ld_busy && spf_valid && ldf_valid;
    logic [15:0] sc_b;             // byte index within the span
    logic [ABL:0] sc_pos;          // byte position within the beat
    logic sc_started;
    logic [15:0] sc_nptr;          // oc layout: next active in-channel index

    // weight buffer: TM*TN byte banks
    logic [WAW:0] wb_waddr;
    logic [TM*TN-1:0] wb_we;
    logic [TM*TN*8-1:0] wb_wdata;  // per bank
    logic [WAW:0] wb_raddr;
    logic [TM*TN*8-1:0] wb_q;
    for (genvar b = 0; b < TM * TN; b++) begin : g_wbank
        logic [7:0] mem [2*WDEPTH];
        always_ff @(posedge clk) begin
            if (wb_we[b]) mem[wb_waddr] <= wb_wdata[b*8 +: 8];
            wb_q[b*8 +: 8] <= mem[wb_raddr];
        end
    end

    // ------------------------------------------------------------------ prefetch
    typedef enum logic [3:0] {PF_IDLE, PF_GEO, PF_GEO2, PF_GEO3, PF_ROWS, PF_RES, PF_WAIT} pf_state_t;
    pf_state_t pf_state;
    logic [15:0] pf_i;             // next tile-sequence entry to prefetch
    logic [15:0] pf_g;             // its m-group
    logic pf_h;                    // half being filled
    logic [1:0] full;              // half holds a complete tile
    logic [7:0] pf_ty, pf_tx;
    // per half tile record
    logic [15:0] t_idx [2];
    logic [15:0] t_o0y [2], t_o0x [2], t_cy0 [2], t_cx0 [2];
    logic [7:0]  t_oh [2], t_ow [2], t_chy [2], t_chw [2];
    logic        t_res_only [2];
    logic [15:0] t_g [2];          // m-group of the tile
    logic        t_glast [2];      // last tile of its group
    logic [IAW-1:0] rowbase [2][PMAX];
    logic           row_ok [2][PMAX];
    logic [15:0]    row_tb [2][PMAX];
    logic           row_tv [2][PMAX];
    logic [IAW-1:0] colbyte [2][PMAX];
    logic           col_ok [2][PMAX];
    logic [7:0]     col_t [2][PMAX];
    logic           col_tv [2][PMAX];
    // prefetch working values
    logic signed [31:0] pf_iy0, pf_ix0;
    logic [7:0] pf_ph, pf_pw, pf_r, pf_c;
    logic [15:0] pf_ixv0;
    logic [31:0] pf_row_bytes;
    logic [IAW-1:0] pf_bufptr;
    logic [7:0] pf_py, pf_px;
    logic [7:0] pf_jl;
    logic [63:0] pf_pixaddr;
    // pending read commands: {type, half, data}: patch {base} / residual {pixel, jl, jh, off}
    localparam int PEND_W = 2 + 32;
    logic [PEND_W-1:0] pend_in;
    logic pend_push;
    wire pend_in_ready, pend_valid;
    wire [PEND_W-1:0] pend_out;
    logic pend_pop;
    wire [$clog2(PEND_DEPTH):0] pend_count;
    dg_fifo #(.WIDTH(PEND_W), .DEPTH(PEND_DEPTH)) pend_fifo (
        .clk(clk), .rst(rst), .in_data(pend_in), .in_valid(pend_push), .in_ready(pend_in_ready),
        .out_data(pend_out), .out_valid(pend_valid), .out_ready(pend_pop), .count(pend_count));
    logic [15:0] pr_beat;          // beat index within the current patch row

    // patch buffer: NB byte banks, both halves
    logic [NB-1:0] ib_we;
    logic [$clog2(IDEPTH)-1:0] ib_waddr [NB];
    logic [7:0] ib_wdata [NB];
    logic [$clog2(IDEPTH)-1:0] ib_raddr [NB];
    logic [7:0] ib_q [NB];
    for (genvar b = 0; b < NB; b++) begin : g_ibank
        logic [7:0] mem [IDEPTH];
        always_ff @(posedge clk) begin
            if (ib_we[b]) mem[ib_waddr[b]] <= ib_wdata[b];
            ib_q[b] <= mem[ib_raddr[b]];
        end
    end
    // residual buffer: per lane, both halves
    logic [TM-1:0] rb_we;
    logic [$clog2(2*RPIX)-1:0] rb_waddr;
    logic [7:0] rb_wdata [TM];
    logic [$clog2(2*RPIX)-1:0] rb_raddr;
    logic [TM*8-1:0] rb_q;
    for (genvar l = 0; l < TM; l++) begin : g_rbank
        logic [7:0] mem [2*RPIX];
        always_ff @(posedge clk) begin
            if (rb_we[l]) mem[rb_waddr] <= rb_wdata[l];
            rb_q[l*8 +: 8] <= mem[rb_raddr];
        end
    end

    // ------------------------------------------------------------------ compute
    typedef enum logic [1:0] {CP_IDLE, CP_RUN} cp_state_t;
    cp_state_t cp_state;
    logic cp_h;
    logic [7:0] cp_py, cp_px, cp_ky, cp_kx;
    logic [15:0] cp_ng;
    logic [WAW-1:0] cp_wa;
    logic cp_res_only;
    logic cp_gb;                   // weight/param bank of the tile's group
    logic [7:0] cp_ny, cp_nx;      // loop extents (conv tile or output tile)
    logic [4:0] inflight;          // pixels issued whose sums are not yet in the write-back queue
    logic wb_busy;                 // maxpool interlock
    // tile records for the write-back: {gb, glast, idx, o0y, o0x, cy0, cx0, oh, ow, chy, chw}
    localparam int TR_W = 2 + 16 * 5 + 8 * 4;
    logic [TR_W-1:0] tr_in;
    logic tr_push;
    wire tr_in_ready, tr_valid;
    wire [TR_W-1:0] tr_out;
    wire tr_pop;
    logic tr_pop_pl;
    wire [2:0] tr_count;
    dg_fifo #(.WIDTH(TR_W), .DEPTH(4)) tile_rec_fifo (
        .clk(clk), .rst(rst), .in_data(tr_in), .in_valid(tr_push), .in_ready(tr_in_ready),
        .out_data(tr_out), .out_valid(tr_valid), .out_ready(tr_pop), .count(tr_count));

    // step pipeline c1 / c2
    logic c1_v, c1_first, c1_last, c1_ok, c1_res_only, c1_tlast, c1_gb;
    logic [TN-1:0] c1_lane;
    logic [IAW-1:0] c1_addr;
    logic [WAW-1:0] c1_wa;
    logic [$clog2(2*RPIX)-1:0] c1_rbaddr;
    logic [7:0] c1_py, c1_px;
    logic c2_v, c2_first, c2_last, c2_ok, c2_res_only, c2_tlast, c2_gb;
    logic [TN-1:0] c2_lane;
    logic [NBL-1:0] c2_rot;
    logic [7:0] c2_py, c2_px;
    localparam int MTAG_W = 3 + 16 + TM * 8;
    wire mac_v;
    wire [TM*32-1:0] mac_acc;
    wire [MTAG_W-1:0] mac_tag;
    logic [TN*9-1:0] c2_x;
    dg_mac_array #(.TM(TM), .TN(TN), .TAG_W(MTAG_W)) mac (
        .clk(clk), .rst(rst), .in_valid(c2_v), .in_first(c2_first), .in_last(c2_last),
        .in_w(wb_q), .in_x(c2_x), .in_tag({c2_gb, c2_res_only, c2_tlast, c2_py, c2_px, rb_q}),
        .out_valid(mac_v), .out_acc(mac_acc), .out_tag(mac_tag));

    // ------------------------------------------------------------------ write-back
    localparam int WBQ_W = TM * 32 + MTAG_W;
    wire wbq_in_ready, wbq_valid;
    wire [WBQ_W-1:0] wbq_out;
    logic wbq_pop;
    wire [$clog2(WBQ_DEPTH):0] wbq_count;
    dg_fifo #(.WIDTH(WBQ_W), .DEPTH(WBQ_DEPTH)) wb_fifo (
        .clk(clk), .rst(rst), .in_data({mac_tag, mac_acc}), .in_valid(mac_v), .in_ready(wbq_in_ready),
        .out_data(wbq_out), .out_valid(wbq_valid), .out_ready(wbq_pop), .count(wbq_count));
    wire [TM*32-1:0] wq_acc = wbq_out[TM*32-1:0];
    wire [MTAG_W-1:0] wq_tag = wbq_out[WBQ_W-1:TM*32];
    wire wq_res_only = wq_tag[MTAG_W-2];
    logic [TM*33-1:0] rq_acc;
    logic [TM*32-1:0] rq_mult;
    logic [TM*9-1:0] rq_res;
    wire rq_v;
    wire [TM*8-1:0] rq_y;
    wire [18:0] rq_tag;
    wire wq_gb = wq_tag[MTAG_W-1];
    logic [2:0] rq_inflight;
    dg_requant #(.LANES(TM), .TAG_W(19)) rq (
        .clk(clk), .rst(rst), .in_valid(wbq_pop), .in_acc(rq_acc), .in_mult(rq_mult), .in_res(rq_res),
        .res_mult(L_res_mult), .shift(L_shift), .out_signed(L_out_signed), .in_tag(wq_tag[MTAG_W-1 -: 19]),
        .out_valid(rq_v), .out_y(rq_y), .out_tag(rq_tag));

    // write packets: pixels (pkq) and sums (skq): {addr, nbytes, data}
    localparam int PKT_W = 64 + 8 + PK_BYTES * 8;
    logic [PKT_W-1:0] pkq_in, skq_in;
    logic pkq_push, skq_push;
    wire pkq_in_ready, pkq_valid, skq_in_ready, skq_valid;
    wire [PKT_W-1:0] pkq_out, skq_out;
    logic pkq_pop, skq_pop;
    wire [$clog2(PKQ_DEPTH):0] pkq_count;
    wire [2:0] skq_count;
    dg_fifo #(.WIDTH(PKT_W), .DEPTH(PKQ_DEPTH)) pk_fifo (
        .clk(clk), .rst(rst), .in_data(pkq_in), .in_valid(pkq_push), .in_ready(pkq_in_ready),
        .out_data(pkq_out), .out_valid(pkq_valid), .out_ready(pkq_pop), .count(pkq_count));
    dg_fifo #(.WIDTH(PKT_W), .DEPTH(4)) sk_fifo (
        .clk(clk), .rst(rst), .in_data(skq_in), .in_valid(skq_push), .in_ready(skq_in_ready),
        .out_data(skq_out), .out_valid(skq_valid), .out_ready(skq_pop), .count(skq_count));
    logic signed [31:0] sums [TM];
    // max-pool
    logic [7:0] pool_mem [TM][PPIX];
    typedef enum logic [1:0] {PL_IDLE, PL_RUN, PL_EMIT, PL_SUMS} pl_state_t;
    pl_state_t pl_state;
    logic [7:0] pl_oy, pl_ox;
    logic [3:0] pl_w;               // window position 0..8 being read
    logic pl_rv, pl_rvalid;         // read issued last cycle / its position is inside the map
    logic [7:0] pl_q [TM];
    logic [7:0] pl_max [TM];
    logic pl_any;
    logic [TM*8-1:0] pl_max_packed;
    always_comb for (int l = 0; l < TM; l++) pl_max_packed[l*8 +: 8] = pl_max[l];
    // packetizer
    logic pz_have, pz_cmd_done;
    logic [63:0] pz_addr;
    logic [7:0] pz_beats, pz_beat;
    logic [WIN_BEATS*AB*8-1:0] pz_data;
    logic [WIN_BEATS*AB-1:0] pz_strb;

    // ================================================================== tile record fields
    wire        tr_gb = tr_out[TR_W-1];
    wire        tr_glast = tr_out[TR_W-2];
    wire [15:0] tr_idx = tr_out[TR_W-3 -: 16];
    wire [15:0] tr_o0y = tr_out[TR_W-19 -: 16];
    wire [15:0] tr_o0x = tr_out[TR_W-35 -: 16];
    wire [15:0] tr_cy0 = tr_out[TR_W-51 -: 16];
    wire [15:0] tr_cx0 = tr_out[TR_W-67 -: 16];
    wire [7:0]  tr_oh = tr_out[31:24];
    wire [7:0]  tr_ow = tr_out[23:16];
    wire [7:0]  tr_chw = tr_out[7:0];

    // ================================================================== read-channel users
    wire pf_active = state == ST_RUN;
    wire sp_active = ld_busy;

    // ------------------------------------------------------------------ combinational: command muxes
    // span issue
    logic [63:0] sp_addr;
    logic [15:0] sp_nbytes;
    logic [1:0]  sp_kind;
    always_comb begin
        sp_kind = 2'(SP_PARAM);
        sp_addr = L_p_abs + 64'(bk_ch[ld_b][32'(sp_i) % TM]) * 64'd8;
        sp_nbytes = 16'd8;
        if (sp_phase == 2'd1) begin
            if (L_ic_layout) begin
                sp_kind = 2'(SP_WIC);
                sp_addr = L_w_abs + (64'(inch_list[I_MAX_IN'(sp_i)]) * 64'(L_kk) + 64'(sp_j)) * 64'(L_out_c)
                          + 64'(bk_m0[ld_b]);
                sp_nbytes = 16'(bk_mg[ld_b]);
            end else begin
                // one span per (lane sp_i, kernel position sp_j): in_c bytes
                sp_kind = 2'(SP_WOC);
                sp_addr = L_w_abs + (64'(bk_ch[ld_b][32'(sp_i) % TM]) * 64'(L_kk) + 64'(sp_j)) * 64'(L_in_c);
                sp_nbytes = L_in_c;
            end
        end
    end
    wire [ABL-1:0] sp_off = sp_addr[ABL-1:0];
    wire [23:0] sp_beats = 24'((32'(sp_off) + 32'(sp_nbytes) + AB - 1) >> ABL);
    // credit: a span is issued only if its beats fit the loader FIFO, so the in-order R
    // channel never waits on the byte-serial loader (the prefetcher shares it)
    wire [15:0] ldf_free = 16'(LDF_DEPTH) - 16'(ldf_count) - ld_out_beats;
    wire sp_can_issue = sp_active && sp_phase != 2'd2 && spf_in_ready && 16'(sp_beats) <= ldf_free;

    // prefetch issue (patch rows or residual reads)
    wire signed [31:0] pf_iy = pf_iy0 + 32'(pf_r);
    // a 1x1 stride-2 conv samples only the even patch rows: the odd ones are not loaded
    wire pf_row_used = !(L_k == 4'd1 && L_stride == 2'd2 && pf_r[0]);
    wire pf_row_ok = pf_iy >= 0 && pf_iy < 32'(L_in_h) && pf_row_used;
    wire [63:0] pf_row_addr = L_in_abs + 64'(pf_iy[15:0]) * 64'(L_in_row_bytes) + 64'(pf_ixv0) * 64'(L_cin_st);
    wire [ABL-1:0] pf_row_off = pf_row_addr[ABL-1:0];
    wire [23:0] pf_row_beats = 24'((pf_row_bytes + 32'(pf_row_off) + AB - 1) >> ABL);
    // residual: lanes jl..jh whose bytes share one beat
    logic [63:0] lane_addr [TM];
    logic [7:0] pf_jh;
    always_comb begin
        logic stop;
        for (int j = 0; j < TM; j++) lane_addr[j] = pf_pixaddr + 64'(bk_ch[pf_g[0]][j]);
        pf_jh = pf_jl;
        stop = 1'b0;
        for (int j = 0; j < TM; j++) begin
            if (!stop && 8'(j) > pf_jl) begin
                if (8'(j) < bk_mg[pf_g[0]] && (lane_addr[j] >> ABL) == (lane_addr[32'(pf_jl) % TM] >> ABL))
                    pf_jh = 8'(j);
                else
                    stop = 1'b1;
            end
        end
    end
    wire [63:0] pf_res_addr = lane_addr[32'(pf_jl) % TM];

    // list command (issued from ST_LIST_SEL)
    logic list_cmd_valid;
    logic [63:0] list_cmd_addr;
    logic [23:0] list_cmd_beats;
    logic [2:0] list_next;        // next list kind needed (5 = none)
    logic [15:0] list_next_n;
    logic [31:0] list_next_off;
    // read-command arbitration in ST_RUN: the prefetcher first (the compute waits on it),
    // the weight loader in the gaps; the owner FIFO routes the returning beats
    wire pf_req_row = pf_state == PF_ROWS && pf_r != pf_ph && pf_row_ok;
    wire pf_req_res = pf_state == PF_RES;
    wire pf_req = pf_active && (pf_req_row || pf_req_res) && pend_in_ready;
    wire ld_req = sp_can_issue;
    wire rd_grant = rcmd_ready && own_in_ready;
    wire pf_fire = pf_req && rd_grant;
    wire ld_fire = !pf_req && ld_req && rd_grant;
    always_comb begin
        rcmd_valid = 1'b0;
        rcmd_addr = 64'd0;
        rcmd_beats = 24'd1;
        pend_push = 1'b0;
        pend_in = '0;
        spf_push = 1'b0;
        spf_in = '0;
        own_push = 1'b0;
        own_in = 1'b0;
        case (state)
            ST_DESC_REQ: begin
                rcmd_valid = 1'b1;
                rcmd_addr = (a_program + 64'(layer) * 64'd96) & ~64'(AB - 1);
                rcmd_beats = 24'(((((a_program + 64'(layer) * 64'd96) & 64'(AB - 1)) + 64'd96 + 64'(AB - 1)) >> ABL));
            end
            ST_RUN: begin
                if (pf_req) begin
                    rcmd_valid = own_in_ready;
                    own_in = 1'b1;
                    pend_push = pf_fire;
                    if (pf_req_row) begin
                        rcmd_addr = pf_row_addr & ~64'(AB - 1);
                        rcmd_beats = pf_row_beats;
                        pend_in = {1'b0, pf_h, 32'(pf_bufptr)};
                    end else begin
                        rcmd_addr = pf_res_addr & ~64'(AB - 1);
                        rcmd_beats = 24'd1;
                        pend_in = {1'b1, pf_h, 8'(32'(pf_py) * 32'(t_ow[pf_h]) + 32'(pf_px)), pf_jl, pf_jh,
                                   8'(pf_pixaddr[ABL-1:0])};
                    end
                end else if (ld_req) begin
                    rcmd_valid = own_in_ready;
                    rcmd_addr = sp_addr & ~64'(AB - 1);
                    rcmd_beats = sp_beats;
                    spf_push = ld_fire;
                    spf_in = {sp_kind, sp_i, 8'(sp_j), 8'(sp_off), sp_nbytes};
                end
                own_push = pf_fire || ld_fire;
            end
            default: ;
        endcase
        if (list_cmd_valid) begin
            rcmd_valid = 1'b1;
            rcmd_addr = list_cmd_addr;
            rcmd_beats = list_cmd_beats;
        end
    end

    always_comb begin
        list_next = 3'd5;
        list_next_n = 16'd0;
        list_next_off = 32'd0;
        for (int kind = 4; kind >= 0; kind--) begin
            if (32'(kind) >= 32'(list_kind)) begin
                case (kind)
                    0: if (L_tile_gated && L_n_act != 0) begin list_next = 3'd0; list_next_n = L_n_act; list_next_off = L_tl_off; end
                    1: if (L_n_res != 0) begin list_next = 3'd1; list_next_n = L_n_res; list_next_off = L_rl_off; end
                    2: if (L_out_ch_gated && L_n_out != 0) begin list_next = 3'd2; list_next_n = L_n_out; list_next_off = L_ol_off; end
                    3: if (L_in_ch_gated && L_n_in != 0) begin list_next = 3'd3; list_next_n = L_n_in; list_next_off = L_il_off; end
                    default: if (L_zero_halo) begin
                        list_next = 3'd4;
                        list_next_n = 16'(32'd32 * ((32'(L_grid_h) * 32'(L_grid_w) + 32'd31) >> 5));
                        list_next_off = L_bm_off;
                    end
                endcase
            end
        end
        list_cmd_valid = state == ST_LIST_SEL && list_next != 3'd5;
        list_cmd_addr = (a_work_base + 64'(list_next_off)) & ~64'(AB - 1);
        list_cmd_beats = (list_next == 3'd4)
            ? 24'((32'(list_next_n) / 8 + 32'(AB) - 1) >> ABL)
            : 24'((32'd2 * 32'(list_next_n) + 32'(AB) - 1) >> ABL);
    end

    // tile index -> tile row: count the multiples of grid_w not above idx (MAX_GRID compares)
    function automatic logic [7:0] tile_row(input logic [15:0] idx);
        logic [7:0] r;
        r = 8'd0;
        for (int q = 1; q < MAX_GRID; q++)
            if (32'(idx) >= 32'(q) * 32'(L_grid_w)) r = r + 8'd1;
        return r;
    endfunction

    // ------------------------------------------------------------------ compute tile start
    // a tile in half h can start when it is complete, its group's bank is loaded, the
    // write-back can take its record, and (max-pool) the previous tile is pooled
    logic [1:0] cp_can_start;
    always_comb begin
        for (int h = 0; h < 2; h++)
            cp_can_start[h] = full[h] && tr_in_ready && !(L_maxpool && (wb_busy || cp_state == CP_RUN))
                              && bk_ready[t_g[h][0]] && bk_grp[t_g[h][0]] == t_g[h];
    end
    task automatic cp_start(input logic h);
        cp_res_only <= t_res_only[h];
        cp_gb <= t_g[h][0];
        cp_ny <= (t_res_only[h] || L_no_mac) ? t_oh[h] : t_chy[h];
        cp_nx <= (t_res_only[h] || L_no_mac) ? t_ow[h] : t_chw[h];
        cp_py <= 8'd0;
        cp_px <= 8'd0;
        cp_ky <= 8'd0;
        cp_kx <= 8'd0;
        cp_ng <= 16'd0;
        cp_wa <= '0;
        tr_push <= 1'b1;
        tr_in <= {t_g[h][0], t_glast[h], t_idx[h], t_o0y[h], t_o0x[h], t_cy0[h], t_cx0[h],
                  t_oh[h], t_ow[h], t_chy[h], t_chw[h]};
        wb_busy <= L_maxpool;
        cp_state <= CP_RUN;
    endtask

    // ------------------------------------------------------------------ compute issue (c0)
    wire [15:0] cp_r = 16'(32'(cp_py) * 32'(L_stride) + 32'(cp_ky));
    wire [15:0] cp_c = 16'(32'(cp_px) * 32'(L_stride) + 32'(cp_kx));
    wire [$clog2(PMAX)-1:0] cp_ri = $clog2(PMAX)'(cp_r);
    wire [$clog2(PMAX)-1:0] cp_ci = $clog2(PMAX)'(cp_c);
    wire [15:0] cp_bit = row_tb[cp_h][cp_ri] + 16'(col_t[cp_h][cp_ci]);
    wire cp_halo_ok = !L_zero_halo || (row_tv[cp_h][cp_ri] && col_tv[cp_h][cp_ci] && bitmap[I_MAX_TILES'(cp_bit)]);
    wire cp_ok = !cp_res_only && !L_no_mac && row_ok[cp_h][cp_ri] && col_ok[cp_h][cp_ci] && cp_halo_ok;
    wire [IAW-1:0] cp_addr = IAW'(32'(cp_h) * IHALF) + rowbase[cp_h][cp_ri] + colbyte[cp_h][cp_ci] + IAW'(32'(cp_ng) * TN);
    wire cp_first = cp_res_only || L_no_mac || (cp_ky == 0 && cp_kx == 0 && cp_ng == 0);
    wire cp_last = cp_res_only || L_no_mac || (cp_ky == 8'(L_k) - 8'd1 && cp_kx == 8'(L_k) - 8'd1 && cp_ng == L_N - 16'd1);
    wire cp_tlast = cp_last && cp_py == cp_ny - 8'd1 && cp_px == cp_nx - 8'd1;
    wire cp_stall = 32'(wbq_count) + 32'(inflight) >= WBQ_DEPTH - 2;
    wire cp_issue = cp_state == CP_RUN && !cp_stall;
    logic [TN-1:0] cp_lane;
    always_comb begin
        for (int i = 0; i < TN; i++) cp_lane[i] = 32'(cp_ng) * TN + i < 32'(L_n_in);
    end
    // patch banks read (c1 -> data at c2)
    always_comb begin
        for (int b = 0; b < NB; b++) begin
            logic [IAW-1:0] a;
            a = c1_addr;
            ib_raddr[b] = $clog2(IDEPTH)'((32'(a) >> NBL) + ((NBL'(b) < a[NBL-1:0]) ? 1 : 0));
        end
        wb_raddr = (WAW+1)'(32'(c1_gb) * WDEPTH + 32'(c1_wa));
        rb_raddr = c1_rbaddr;
    end
    always_comb begin
        for (int i = 0; i < TN; i++) begin
            logic [7:0] v;
            v = ib_q[(32'(c2_rot) + i) % NB];
            c2_x[i*9 +: 9] = (c2_ok && c2_lane[i]) ? (L_in_signed ? {v[7], v} : {1'b0, v}) : 9'd0;
        end
    end

    // ------------------------------------------------------------------ write-back combinational
    always_comb begin
        for (int l = 0; l < TM; l++) begin
            rq_acc[l*33 +: 33] = wq_res_only ? 33'd0
                : 33'($signed(wq_acc[l*32 +: 32])) + 33'($signed(bk_bias[wq_gb][l]));
            rq_mult[l*32 +: 32] = bk_mult[wq_gb][l];
            // tag = {res_only, tile_last, py, px, residual bytes [TM]}
            rq_res[l*9 +: 9] = L_residual ? (L_res_signed ? {wq_tag[l*8 + 7], wq_tag[l*8 +: 8]}
                                                          : {1'b0, wq_tag[l*8 +: 8]}) : 9'd0;
        end
    end
    assign tr_pop = tr_pop_pl || (rq_v && rq_tag[16] && !L_maxpool);
    wire pk_room = 32'(pkq_count) + 32'(rq_inflight) + 32'd2 < PKQ_DEPTH && 32'(skq_count) + 32'(rq_inflight) < 3;
    assign wbq_pop = wbq_valid && pk_room && pl_state == PL_IDLE;

    // packetizer: take sums first, then pixels
    wire pz_take_s = skq_valid;
    wire [PKT_W-1:0] pz_next = pz_take_s ? skq_out : pkq_out;
    wire pz_next_valid = skq_valid || pkq_valid;
    wire pz_cmd_fire = wcmd_valid && wcmd_ready;
    wire pz_data_fire = wd_valid && wd_ready;
    wire pz_cmd_ok = pz_cmd_done || pz_cmd_fire;
    wire pz_data_ok = (pz_beat == pz_beats) || (pz_data_fire && pz_beat + 8'd1 == pz_beats);
    wire pz_free = !pz_have || (pz_cmd_ok && pz_data_ok);
    assign pkq_pop = pz_free && !pz_take_s && pkq_valid;
    assign skq_pop = pz_free && pz_take_s;
    always_comb begin
        wcmd_valid = pz_have && !pz_cmd_done;
        wcmd_addr = pz_addr & ~64'(AB - 1);
        wcmd_beats = 24'(pz_beats);
        wd_valid = pz_have && pz_beat != pz_beats;
        wd_data = pz_data[32'(pz_beat) * AB * 8 +: AB * 8];
        wd_strb = pz_strb[32'(pz_beat) * AB +: AB];
    end

    wire wb_idle = !wbq_valid && rq_inflight == 0 && pl_state == PL_IDLE && !pkq_valid && !skq_valid
                   && !pz_have && !tr_valid && !rq_v;
    wire layer_done = wb_gdone == L_G && pf_state == PF_IDLE && cp_state == CP_IDLE && full == 2'b00
                      && inflight == 0 && !c1_v && !c2_v && wb_idle && !ld_busy;

    // ================================================================== sequential
    always_ff @(posedge clk) begin
        // defaults for pulses / write enables
        err_clear <= 1'b0;
        wb_we <= '0;
        ib_we <= '0;
        rb_we <= '0;
        pkq_push <= 1'b0;
        skq_push <= 1'b0;
        tr_push <= 1'b0;
        tr_pop_pl <= 1'b0;
        if (state != ST_IDLE) cycle_cnt <= cycle_cnt + 64'd1;

        case (state)
            ST_IDLE: begin
                if (ap_start) begin
                    state <= ST_START;
                    cycle_cnt <= 64'd1;
                    layer <= 8'd0;
                    err_clear <= 1'b1;
                    status_reg <= 32'd0;
                end
            end
            ST_START: begin
                if (a_layer_count > 32'(MAX_LAYERS)) begin
                    err_code <= DG_ERR_BAD_COUNT;
                    err_entry <= 16'd0;
                    state <= ST_ERR;
                end else if (a_layer_count == 32'd0) begin
                    state <= ST_DONE;
                end else begin
                    state <= ST_DESC_REQ;
                end
            end
            ST_DESC_REQ: begin
                if (rcmd_ready) begin
                    state <= ST_DESC_RX;
                    desc_beat <= 8'd0;
                    desc_off <= (ABL+1)'((a_program + 64'(layer) * 64'd96) & 64'(AB - 1));
                end
            end
            ST_DESC_RX: begin
                if (rd_valid) begin
                    desc_raw[32'(desc_beat) * AB * 8 +: AB * 8] <= rd_data;
                    desc_beat <= desc_beat + 8'd1;
                    if (rd_last) state <= ST_CHECK;
                end
            end
            ST_CHECK: begin
                // dg_desc_check settles on the registered descriptor; latch the layer
                L_k <= desc[23:20];
                L_stride <= desc[25:24];
                L_pad <= desc[28:26];
                L_in_signed <= desc[32];
                L_out_signed <= desc[33];
                L_residual <= desc[35];
                L_res_signed <= desc[36];
                L_maxpool <= desc[37];
                L_emit_sums <= desc[38];
                L_tile_gated <= desc[39];
                L_in_ch_gated <= desc[40];
                L_out_ch_gated <= desc[41];
                L_zero_halo <= desc[42];
                L_shift <= desc[52:48];
                L_in_h <= desc[64 +: 16];
                L_in_w <= desc[80 +: 16];
                L_out_h <= desc[96 +: 16];
                L_out_w <= desc[112 +: 16];
                L_in_c <= desc[128 +: 16];
                L_out_c <= desc[144 +: 16];
                L_tile <= desc[160 +: 8];
                L_grid_h <= desc[168 +: 8];
                L_grid_w <= desc[176 +: 8];
                L_n_act <= desc[192 +: 16];
                L_n_res <= desc[208 +: 16];
                L_n_out <= desc[224 +: 16];
                L_n_in <= desc[240 +: 16];
                L_res_mult <= desc[256 +: 32];
                L_in_abs <= a_fmap_base + 64'(desc[9*32 +: 32]);
                L_out_abs <= a_fmap_base + 64'(desc[10*32 +: 32]);
                L_res_abs <= a_fmap_base + 64'(desc[11*32 +: 32]);
                L_w_abs <= a_weight_base + 64'(desc[12*32 +: 32]);
                L_p_abs <= a_weight_base + 64'(desc[13*32 +: 32]);
                L_tl_off <= desc[14*32 +: 32];
                L_rl_off <= desc[15*32 +: 32];
                L_ol_off <= desc[16*32 +: 32];
                L_il_off <= desc[17*32 +: 32];
                L_bm_off <= desc[18*32 +: 32];
                L_sums_abs <= a_sums_base + 64'(desc[19*32 +: 32]);
                if (chk_code != 8'd0) begin
                    err_code <= chk_code;
                    err_entry <= chk_entry;
                    state <= ST_ERR;
                end else begin
                    state <= ST_CHECK2;
                end
            end
            ST_CHECK2: begin
                L_kk <= 8'(32'(L_k) * 32'(L_k));
                L_cin_st <= L_in_ch_gated ? L_n_in : L_in_c;
                L_cout_st <= L_out_ch_gated ? L_n_out : L_out_c;
                L_in_row_bytes <= 32'(L_in_w) * 32'(L_in_ch_gated ? L_n_in : L_in_c);
                L_N <= (L_n_in == 0) ? 16'd1 : 16'((32'(L_n_in) + TN - 1) >> TNL);
                L_G <= 16'((32'(L_n_out) + TM - 1) / TM);
                L_conv_h <= 16'(((32'(L_in_h) + 32'(2 * L_pad) - 32'(L_k)) >> (L_stride == 2'd2 ? 1 : 0)) + 1);
                L_conv_w <= 16'(((32'(L_in_w) + 32'(2 * L_pad) - 32'(L_k)) >> (L_stride == 2'd2 ? 1 : 0)) + 1);
                L_ic_layout <= L_in_ch_gated && !L_out_ch_gated;
                n_seq <= (L_n_out == 0) ? 16'd0 : L_n_act + L_n_res;
                act_flags <= L_tile_gated ? '0 : '1;
                bitmap <= '0;
                list_kind <= 3'd0;
                state <= ST_LIST_SEL;
            end
            ST_LIST_SEL: begin
                if (list_next == 3'd5) begin
                    state <= ST_HALO;
                    halo_i <= 16'd0;
                    halo_qr <= 8'd0;
                    halo_rr <= 8'd0;
                    halo_qc <= 8'd0;
                    halo_rc <= 8'd0;
                end else if (rcmd_ready) begin
                    list_kind <= list_next;
                    list_n <= list_next_n;
                    list_e <= 16'd0;
                    list_have <= 1'b0;
                    list_slot <= 16'd0;
                    range_err <= 1'b0;
                    order_err <= 1'b0;
                    inter_err <= 1'b0;
                    case (list_next)
                        3'd0, 3'd1: list_limit <= 16'(32'(L_grid_h) * 32'(L_grid_w));
                        3'd2: list_limit <= L_out_c;
                        default: list_limit <= L_in_c;
                    endcase
                    state <= ST_LIST_RX;
                end
            end
            ST_LIST_RX: begin
                if (!list_have) begin
                    if (rd_valid) begin
                        list_beat <= rd_data;
                        list_have <= 1'b1;
                        list_slot <= 16'd0;
                    end
                end else if (list_kind == 3'd4) begin
                    // bitmap: one bit per cycle
                    logic bit_v;
                    bit_v = list_beat[list_slot[$clog2(AXI_DATA_W)-1:0]];
                    // first bit that differs from the tile list (bits past the grid must be 0)
                    if (32'(list_e) >= 32'(L_grid_h) * 32'(L_grid_w)) begin
                        if (bit_v && !range_err) begin range_err <= 1'b1; range_at <= list_e; end
                    end else begin
                        bitmap[I_MAX_TILES'(list_e)] <= bit_v;
                        if (bit_v != act_flags[I_MAX_TILES'(list_e)] && !range_err) begin
                            range_err <= 1'b1;
                            range_at <= list_e;
                        end
                    end
                    list_e <= list_e + 16'd1;
                    list_slot <= list_slot + 16'd1;
                    if (32'(list_slot) == AXI_DATA_W - 1 || list_e + 16'd1 == list_n) list_have <= 1'b0;
                    if (list_e + 16'd1 == list_n) state <= ST_LIST_END;
                end else begin
                    logic [15:0] v;
                    v = list_beat[list_slot[ABL-1:0] * 16 +: 16];
                    // the earliest faulty entry is reported (range before order on the same entry)
                    if (!range_err && !order_err) begin
                        if (v >= list_limit) begin range_err <= 1'b1; range_at <= list_e; end
                        else if (list_e != 0 && v <= list_prev) begin order_err <= 1'b1; order_at <= list_e; end
                    end
                    list_prev <= v;
                    case (list_kind)
                        3'd0: begin
                            tile_list[I_MAX_TILES'(list_e)] <= v;
                            if (v < list_limit) act_flags[I_MAX_TILES'(v)] <= 1'b1;
                        end
                        3'd1: begin
                            res_list[I_MAX_TILES'(list_e)] <= v;
                            if (v < list_limit && act_flags[I_MAX_TILES'(v)]) inter_err <= 1'b1;
                        end
                        3'd2: outch_list[I_MAX_OUT'(list_e)] <= v;
                        default: inch_list[I_MAX_IN'(list_e)] <= v;
                    endcase
                    list_e <= list_e + 16'd1;
                    list_slot <= list_slot + 16'd1;
                    if (32'(list_slot) == AB / 2 - 1 || list_e + 16'd1 == list_n) list_have <= 1'b0;
                    if (list_e + 16'd1 == list_n) state <= ST_LIST_END;
                end
            end
            ST_LIST_END: begin
                if (range_err) begin
                    err_code <= (list_kind == 3'd4) ? DG_ERR_BITMAP_MISMATCH
                              : (list_kind <= 3'd1) ? DG_ERR_TILE_RANGE : DG_ERR_CHANNEL_RANGE;
                    err_entry <= range_at;
                    state <= ST_ERR;
                end else if (order_err) begin
                    err_code <= (list_kind == 3'd4) ? DG_ERR_BITMAP_MISMATCH
                              : (list_kind <= 3'd1) ? DG_ERR_TILE_ORDER : DG_ERR_CHANNEL_ORDER;
                    err_entry <= order_at;
                    state <= ST_ERR;
                end else if (inter_err) begin
                    // a tile both active and residual-only (interpreter: TILE_ORDER, entry 0)
                    err_code <= DG_ERR_TILE_ORDER;
                    err_entry <= 16'd0;
                    state <= ST_ERR;
                end else begin
                    list_kind <= list_kind + 3'd1;
                    state <= ST_LIST_SEL;
                end
            end
            ST_HALO: begin
                // input row -> (tile row * grid_w, inside grid) and col -> tile col tables
                if (32'(halo_i) < MAX_HEIGHT) begin
                    row_tbase_tab[I_MAX_HEIGHT'(halo_i)] <= 16'(32'(halo_qr) * 32'(L_grid_w));
                    row_tv_tab[I_MAX_HEIGHT'(halo_i)] <= halo_qr < L_grid_h;
                end
                if (32'(halo_i) < MAX_WIDTH) begin
                    col_tile_tab[I_MAX_WIDTH'(halo_i)] <= halo_qc;
                    col_tv_tab[I_MAX_WIDTH'(halo_i)] <= halo_qc < L_grid_w;
                end
                if (halo_rr + 8'd1 == L_tile) begin halo_rr <= 8'd0; halo_qr <= halo_qr + 8'd1; end
                else halo_rr <= halo_rr + 8'd1;
                if (halo_rc + 8'd1 == L_tile) begin halo_rc <= 8'd0; halo_qc <= halo_qc + 8'd1; end
                else halo_rc <= halo_rc + 8'd1;
                halo_i <= halo_i + 16'd1;
                if (!L_zero_halo || (halo_i + 16'd1 >= L_in_h && halo_i + 16'd1 >= L_in_w)) begin
                    state <= (n_seq == 0 || L_G == 0) ? ST_LAYER_END : ST_RUN;
                    ld_g <= 16'd0;
                    ld_busy <= 1'b0;
                    bk_lanes <= 2'b00;
                    bk_ready <= 2'b00;
                    bk_grp[0] <= 16'hFFFF;
                    bk_grp[1] <= 16'hFFFF;
                    wb_gdone <= 16'd0;
                    pf_state <= PF_IDLE;
                    pf_i <= 16'd0;
                    pf_g <= 16'd0;
                    pf_h <= 1'b0;
                    cp_h <= 1'b0;
                    full <= 2'b00;
                end
            end
            ST_RUN: begin
                if (layer_done) state <= ST_LAYER_END;
            end
            ST_LAYER_END: begin
                if (wr_idle && rd_idle) begin
                    if (rd_err || wr_err) begin
                        err_code <= DG_ERR_AXI_ERROR;
                        err_entry <= 16'd0;
                        state <= ST_ERR;
                    end else if (32'(layer) + 32'd1 == a_layer_count) begin
                        state <= ST_DONE;
                    end else begin
                        layer <= layer + 8'd1;
                        state <= ST_DESC_REQ;
                    end
                end
            end
            ST_ERR: begin
                if (wr_idle && rd_idle) begin
                    status_reg <= {err_entry, layer, err_code};
                    state <= ST_DONE;
                end
            end
            ST_DONE: begin
                // ap_done/ap_ready/ap_vld are asserted combinationally in this state, so
                // the register block clears ap_start on the same edge that returns to IDLE
                state <= ST_IDLE;
            end
            default: state <= ST_IDLE;
        endcase

        // span-consume side: pop the span FIFO and the beats
        // (handled combinationally below through sp_pop / sp_rd_ready)

        // -------------------------------------------------------------- group loader
        // bank ld_g%2 is free once group ld_g-2 is written back
        if (state == ST_RUN && !ld_busy && ld_g != L_G && 32'(wb_gdone) + 32'd1 >= 32'(ld_g)) begin
            bk_grp[ld_b] <= ld_g;
            bk_m0[ld_b] <= 16'(32'(ld_g) * TM);
            bk_mg[ld_b] <= (32'(L_n_out) - 32'(ld_g) * TM > TM) ? 8'(TM) : 8'(32'(L_n_out) - 32'(ld_g) * TM);
            for (int j = 0; j < TM; j++) begin
                logic [15:0] m;
                m = 16'(32'(ld_g) * TM + j);
                if (32'(m) >= 32'(L_n_out)) m = 16'(32'(ld_g) * TM);
                bk_ch[ld_b][j] <= L_out_ch_gated ? outch_list[I_MAX_OUT'(m)] : m;
            end
            bk_lanes[ld_b] <= 1'b1;
            bk_ready[ld_b] <= 1'b0;
            ld_busy <= 1'b1;
            sp_phase <= 2'd0;
            sp_i <= 16'd0;
            sp_j <= 16'd0;
            sc_b <= 16'd0;
            sc_started <= 1'b0;
            sc_nptr <= 16'd0;
        end
        if (ld_busy) begin
            // issue side
            if (ld_fire) begin
                if (sp_phase == 2'd0) begin
                    if (sp_i + 16'd1 == 16'(bk_mg[ld_b])) begin
                        sp_i <= 16'd0;
                        sp_phase <= (L_n_act == 0 || L_no_mac) ? 2'd2 : 2'd1;
                    end else sp_i <= sp_i + 16'd1;
                end else begin
                    // ic layout: in-channels x kernel positions; oc layout: lanes x kernel positions
                    if (sp_j + 16'd1 == 16'(L_kk)) begin
                        sp_j <= 16'd0;
                        if (sp_i + 16'd1 == (L_ic_layout ? L_n_in : 16'(bk_mg[ld_b]))) sp_phase <= 2'd2;
                        sp_i <= sp_i + 16'd1;
                    end else sp_j <= sp_j + 16'd1;
                end
            end
            // consume side: ld_k bytes per cycle (all into one weight-buffer row)
            if (ld_consume) begin
                logic [1:0] kind;
                logic [15:0] si;
                logic [7:0] sj;
                kind = spf_out[SPF_W-1 -: 2];
                si = spf_out[SPF_W-3 -: 16];
                sj = spf_out[SPF_W-19 -: 8];
                wb_we <= '0;
                wb_wdata <= '0;
                case (kind)
                    2'(SP_PARAM): begin
                        if (sc_b < 16'd4) bk_bias[ld_b][32'(si) % TM][sc_b[1:0] * 8 +: 8] <= ld_byte[0];
                        else bk_mult[ld_b][32'(si) % TM][sc_b[1:0] * 8 +: 8] <= ld_byte[0];
                    end
                    2'(SP_WIC): begin
                        // bytes sc_b.. = lanes, in-channel si, kernel position sj
                        wb_waddr <= (WAW+1)'(32'(ld_b) * WDEPTH + 32'(sj) * 32'(L_N) + (32'(si) >> TNL));
                        for (int t = 0; t < KMAX; t++) begin
                            if (32'(t) < 32'(ld_k) && 32'(sc_b) + t < TM) begin
                                wb_we[(32'(sc_b) + t) * TN + (32'(si) % TN)] <= 1'b1;
                                wb_wdata[((32'(sc_b) + t) * TN + (32'(si) % TN)) * 8 +: 8] <= ld_byte[t];
                            end
                        end
                    end
                    default: begin
                        // bytes = in-channels sc_b.. of lane si at kernel position sj; a compact
                        // input keeps only the listed channels (merge with the in-channel list,
                        // one byte per cycle)
                        logic keep;
                        logic [15:0] n;
                        keep = !L_in_ch_gated || (sc_nptr < L_n_in && inch_list[I_MAX_IN'(sc_nptr)] == sc_b);
                        n = L_in_ch_gated ? sc_nptr : sc_b;
                        wb_waddr <= (WAW+1)'(32'(ld_b) * WDEPTH + 32'(sj) * 32'(L_N) + (32'(n) >> TNL));
                        for (int t = 0; t < KMAX; t++) begin
                            if (32'(t) < 32'(ld_k) && keep && t < TN) begin
                                wb_we[32'(si % 16'(TM)) * TN + ((32'(n) + t) % TN)] <= 1'b1;
                                wb_wdata[(32'(si % 16'(TM)) * TN + ((32'(n) + t) % TN)) * 8 +: 8] <= ld_byte[t];
                            end
                        end
                        if (keep && L_in_ch_gated) sc_nptr <= sc_nptr + 16'd1;
                    end
                endcase
                sc_started <= 1'b1;
                sc_pos <= (32'(pos) + 32'(ld_k) >= AB) ? '0 : pos + (ABL+1)'(ld_k);
                sc_b <= sc_b + 16'(ld_k);
                if (last_byte) begin
                    sc_started <= 1'b0;
                    sc_b <= 16'd0;
                    sc_nptr <= 16'd0;
                end
            end
            if (sp_phase == 2'd2 && !spf_valid) begin
                bk_ready[ld_b] <= 1'b1;
                ld_g <= ld_g + 16'd1;
                ld_busy <= 1'b0;
            end
        end

        // -------------------------------------------------------------- prefetch
        if (pf_active) begin
            case (pf_state)
                PF_IDLE: begin
                    if (pf_g != L_G && !full[pf_h] && bk_lanes[pf_g[0]] && bk_grp[pf_g[0]] == pf_g) begin
                        logic [15:0] idx;
                        if (pf_i < L_n_act) idx = L_tile_gated ? tile_list[I_MAX_TILES'(pf_i)] : pf_i;
                        else idx = res_list[I_MAX_TILES'(pf_i - L_n_act)];
                        t_idx[pf_h] <= idx;
                        t_res_only[pf_h] <= pf_i >= L_n_act;
                        t_g[pf_h] <= pf_g;
                        t_glast[pf_h] <= pf_i + 16'd1 == n_seq;
                        pf_ty <= tile_row(idx);
                        pf_tx <= 8'(32'(idx) - 32'(tile_row(idx)) * 32'(L_grid_w));
                        pf_state <= PF_GEO;
                    end
                end
                PF_GEO: begin
                    logic [15:0] o0y, o0x;
                    o0y = 16'(32'(pf_ty) * 32'(L_tile));
                    o0x = 16'(32'(pf_tx) * 32'(L_tile));
                    t_o0y[pf_h] <= o0y;
                    t_o0x[pf_h] <= o0x;
                    t_oh[pf_h] <= (32'(L_out_h) - 32'(o0y) < 32'(L_tile)) ? 8'(L_out_h - o0y) : L_tile;
                    t_ow[pf_h] <= (32'(L_out_w) - 32'(o0x) < 32'(L_tile)) ? 8'(L_out_w - o0x) : L_tile;
                    pf_state <= PF_GEO2;
                end
                PF_GEO2: begin
                    if (L_maxpool) begin
                        logic [31:0] cy0, cx0, cy1, cx1;
                        cy0 = (t_o0y[pf_h] == 0) ? 32'd0 : 32'd2 * 32'(t_o0y[pf_h]) - 32'd1;
                        cx0 = (t_o0x[pf_h] == 0) ? 32'd0 : 32'd2 * 32'(t_o0x[pf_h]) - 32'd1;
                        cy1 = 32'd2 * (32'(t_o0y[pf_h]) + 32'(t_oh[pf_h]) - 32'd1) + 32'd2;
                        cx1 = 32'd2 * (32'(t_o0x[pf_h]) + 32'(t_ow[pf_h]) - 32'd1) + 32'd2;
                        if (cy1 > 32'(L_conv_h)) cy1 = 32'(L_conv_h);
                        if (cx1 > 32'(L_conv_w)) cx1 = 32'(L_conv_w);
                        t_cy0[pf_h] <= 16'(cy0);
                        t_cx0[pf_h] <= 16'(cx0);
                        t_chy[pf_h] <= 8'(cy1 - cy0);
                        t_chw[pf_h] <= 8'(cx1 - cx0);
                    end else begin
                        t_cy0[pf_h] <= t_o0y[pf_h];
                        t_cx0[pf_h] <= t_o0x[pf_h];
                        t_chy[pf_h] <= t_oh[pf_h];
                        t_chw[pf_h] <= t_ow[pf_h];
                    end
                    pf_state <= PF_GEO3;
                end
                PF_GEO3: begin
                    logic signed [31:0] ix0, ixe, ixv0, ixv1;
                    pf_iy0 <= 32'(t_cy0[pf_h]) * 32'(L_stride) - 32'(L_pad);
                    ix0 = 32'(t_cx0[pf_h]) * 32'(L_stride) - 32'(L_pad);
                    pf_ix0 <= ix0;
                    pf_ph <= 8'((32'(t_chy[pf_h]) - 32'd1) * 32'(L_stride) + 32'(L_k));
                    pf_pw <= 8'((32'(t_chw[pf_h]) - 32'd1) * 32'(L_stride) + 32'(L_k));
                    ixe = ix0 + (32'(t_chw[pf_h]) - 32'd1) * 32'(L_stride) + 32'(L_k);
                    ixv0 = (ix0 < 0) ? 32'sd0 : ix0;
                    ixv1 = (ixe > 32'(L_in_w)) ? 32'(L_in_w) : ixe;
                    pf_ixv0 <= 16'(ixv0);
                    pf_row_bytes <= 32'(ixv1 - ixv0) * 32'(L_cin_st);
                    pf_bufptr <= '0;
                    pf_r <= 8'd0;
                    pf_c <= 8'd0;
                    pf_py <= 8'd0;
                    pf_px <= 8'd0;
                    pf_jl <= 8'd0;
                    pf_pixaddr <= L_res_abs + (64'(t_o0y[pf_h]) * 64'(L_out_w) + 64'(t_o0x[pf_h])) * 64'(L_out_c);
                    pf_state <= (t_res_only[pf_h] || L_no_mac) ? (L_residual ? PF_RES : PF_WAIT) : PF_ROWS;
                end
                PF_ROWS: begin
                    // one patch row (a read command) and one patch column per cycle
                    if (pf_r != pf_ph && (!pf_row_ok || pf_fire)) begin
                        row_ok[pf_h][PW'(pf_r)] <= pf_row_ok;
                        rowbase[pf_h][PW'(pf_r)] <= pf_bufptr + IAW'(pf_row_off);
                        row_tb[pf_h][PW'(pf_r)] <= row_tbase_tab[I_MAX_HEIGHT'(pf_iy)];
                        row_tv[pf_h][PW'(pf_r)] <= pf_row_ok && row_tv_tab[I_MAX_HEIGHT'(pf_iy)];
                        if (pf_row_ok) pf_bufptr <= pf_bufptr + IAW'(32'(pf_row_beats) * AB);
                        pf_r <= pf_r + 8'd1;
                    end
                    if (pf_c != pf_pw) begin
                        logic signed [31:0] ix;
                        ix = pf_ix0 + 32'(pf_c);
                        col_ok[pf_h][PW'(pf_c)] <= ix >= 0 && ix < 32'(L_in_w);
                        colbyte[pf_h][PW'(pf_c)] <= IAW'((ix - ((pf_ix0 < 0) ? 32'sd0 : pf_ix0)) * 32'(L_cin_st));
                        col_t[pf_h][PW'(pf_c)] <= col_tile_tab[I_MAX_WIDTH'(ix)];
                        col_tv[pf_h][PW'(pf_c)] <= ix >= 0 && ix < 32'(L_in_w) && col_tv_tab[I_MAX_WIDTH'(ix)];
                        pf_c <= pf_c + 8'd1;
                    end
                    if ((pf_r == pf_ph || (pf_r + 8'd1 == pf_ph && (!pf_row_ok || pf_fire)))
                        && (pf_c == pf_pw || pf_c + 8'd1 == pf_pw))
                        pf_state <= L_residual ? PF_RES : PF_WAIT;
                end
                PF_RES: begin
                    if (pf_fire) begin
                        if (pf_jh + 8'd1 >= bk_mg[pf_g[0]]) begin
                            pf_jl <= 8'd0;
                            if (pf_px + 8'd1 == t_ow[pf_h]) begin
                                pf_px <= 8'd0;
                                pf_py <= pf_py + 8'd1;
                                pf_pixaddr <= pf_pixaddr + 64'(L_out_c) * (64'(L_out_w) - 64'(t_ow[pf_h]) + 64'd1);
                                if (pf_py + 8'd1 == t_oh[pf_h]) pf_state <= PF_WAIT;
                            end else begin
                                pf_px <= pf_px + 8'd1;
                                pf_pixaddr <= pf_pixaddr + 64'(L_out_c);
                            end
                        end else begin
                            pf_jl <= pf_jh + 8'd1;
                        end
                    end
                end
                PF_WAIT: begin
                    if (!pend_valid && !pend_push) begin
                        full[pf_h] <= 1'b1;
                        pf_h <= !pf_h;
                        if (pf_i + 16'd1 == n_seq) begin
                            pf_i <= 16'd0;
                            pf_g <= pf_g + 16'd1;
                        end else pf_i <= pf_i + 16'd1;
                        pf_state <= PF_IDLE;
                    end
                end
                default: pf_state <= PF_IDLE;
            endcase
            // receive side
            if (pend_valid && rd_valid && rd_to_pf) begin
                if (!pend_out[PEND_W-1]) begin
                    logic [IAW-1:0] a;
                    a = IAW'(32'(pend_out[32]) * IHALF + 32'(pend_out[31:0]) + 32'(pr_beat) * AB);
                    for (int l = 0; l < AB; l++) begin
                        ib_we[(32'(a) % NB) + l] <= 1'b1;
                        ib_waddr[(32'(a) % NB) + l] <= $clog2(IDEPTH)'(a >> NBL);
                        ib_wdata[(32'(a) % NB) + l] <= rd_data[l*8 +: 8];
                    end
                    pr_beat <= rd_last ? 16'd0 : pr_beat + 16'd1;
                end else begin
                    logic [7:0] p, jl, jh, off;
                    p = pend_out[31:24];
                    jl = pend_out[23:16];
                    jh = pend_out[15:8];
                    off = pend_out[7:0];
                    rb_waddr <= $clog2(2*RPIX)'(32'(pend_out[32]) * RPIX + 32'(p));
                    for (int l = 0; l < TM; l++) begin
                        logic [ABL-1:0] bo;
                        bo = ABL'(32'(off) + 32'(bk_ch[pf_g[0]][l]));
                        rb_we[l] <= 8'(l) >= jl && 8'(l) <= jh;
                        rb_wdata[l] <= rd_data[32'(bo) * 8 +: 8];
                    end
                end
            end
        end

        // -------------------------------------------------------------- compute
        c1_v <= cp_issue;
        c1_first <= cp_first;
        c1_last <= cp_last;
        c1_ok <= cp_ok;
        c1_lane <= cp_lane;
        c1_addr <= cp_addr;
        c1_wa <= WAW'(cp_wa);
        c1_rbaddr <= $clog2(2*RPIX)'(32'(cp_h) * RPIX + 32'(cp_py) * 32'(t_ow[cp_h]) + 32'(cp_px));
        c1_res_only <= cp_res_only;
        c1_gb <= cp_gb;
        c1_tlast <= cp_tlast;
        c1_py <= cp_py;
        c1_px <= cp_px;
        c2_v <= c1_v;
        c2_first <= c1_first;
        c2_last <= c1_last;
        c2_ok <= c1_ok;
        c2_lane <= c1_lane;
        c2_rot <= c1_addr[NBL-1:0];
        c2_res_only <= c1_res_only;
        c2_gb <= c1_gb;
        c2_tlast <= c1_tlast;
        c2_py <= c1_py;
        c2_px <= c1_px;
        inflight <= inflight + 5'(cp_issue && cp_last) - 5'(mac_v);
        if (pf_active) begin
            case (cp_state)
                CP_IDLE: begin
                    if (cp_can_start[cp_h]) begin
                        cp_start(cp_h);
                    end
                end
                CP_RUN: begin
                    if (cp_issue) begin
                        if (cp_last) begin
                            cp_ky <= 8'd0;
                            cp_kx <= 8'd0;
                            cp_ng <= 16'd0;
                            cp_wa <= '0;
                            if (cp_px + 8'd1 == cp_nx) begin
                                cp_px <= 8'd0;
                                cp_py <= cp_py + 8'd1;
                                if (cp_py + 8'd1 == cp_ny) begin
                                    // tile done: its half is read for the last time this
                                    // cycle (c0) and next cycle (c1 -> banks), long before
                                    // the prefetcher can refill it; chain the next tile
                                    full[cp_h] <= 1'b0;
                                    cp_h <= !cp_h;
                                    cp_state <= CP_IDLE;
                                    if (cp_can_start[!cp_h]) cp_start(!cp_h);
                                end
                            end else cp_px <= cp_px + 8'd1;
                        end else begin
                            cp_wa <= cp_wa + 1'b1;
                            if (cp_ng + 16'd1 == L_N) begin
                                cp_ng <= 16'd0;
                                if (cp_kx + 8'd1 == 8'(L_k)) begin
                                    cp_kx <= 8'd0;
                                    cp_ky <= cp_ky + 8'd1;
                                end else cp_kx <= cp_kx + 8'd1;
                            end else cp_ng <= cp_ng + 16'd1;
                        end
                    end
                end
                default: cp_state <= CP_IDLE;
            endcase
        end

        // -------------------------------------------------------------- write-back
        rq_inflight <= rq_inflight + 3'(wbq_pop) - 3'(rq_v);
        ld_out_beats <= ld_out_beats + (ld_fire ? 16'(sp_beats) : 16'd0) - 16'(rd_valid && rd_ready && rd_to_ld);
        if (tr_pop && tr_glast) wb_gdone <= wb_gdone + 16'd1;
        if (rq_v) begin
            logic [15:0] py, px;
            logic [63:0] a;
            logic tlast;
            logic gb;
            py = 16'(rq_tag[15:8]);
            px = 16'(rq_tag[7:0]);
            tlast = rq_tag[16];
            gb = rq_tag[18];
            if (L_maxpool) begin
                for (int l = 0; l < TM; l++) pool_mem[l][32'(py) * 32'(tr_chw) + 32'(px)] <= rq_y[l*8 +: 8];
                if (tlast) begin
                    pl_state <= PL_RUN;
                    pl_oy <= 8'd0;
                    pl_ox <= 8'd0;
                    pl_w <= 4'd0;
                    pl_rv <= 1'b0;
                    pl_any <= 1'b0;
                end
            end else begin
                a = L_out_abs + ((64'(tr_o0y) + 64'(py)) * 64'(L_out_w) + 64'(tr_o0x) + 64'(px)) * 64'(L_cout_st) + 64'(bk_m0[gb]);
                pkq_push <= 1'b1;
                pkq_in <= {a, bk_mg[gb], (PK_BYTES*8)'(rq_y)};
                for (int l = 0; l < TM; l++) begin
                    logic signed [31:0] s;
                    s = sums[l] + (L_out_signed ? 32'($signed(rq_y[l*8 +: 8])) : 32'(rq_y[l*8 +: 8]));
                    sums[l] <= tlast ? 32'sd0 : s;
                    skq_in[l*32 +: 32] <= s;
                end
                if (tlast) begin
                    // the tile record pops combinationally (tr_pop_px) so a back-to-back
                    // first pixel of the next tile already sees its own record
                    skq_in[PKT_W-1 -: 72] <= {L_sums_abs + (64'(tr_idx) * 64'(L_cout_st) + 64'(bk_m0[gb])) * 64'd4, 8'(32'(bk_mg[gb]) * 4)};
                    skq_push <= L_emit_sums;
                end
            end
        end
        // max-pool: 9 reads per output pixel, then emit
        case (pl_state)
            PL_RUN: begin
                logic signed [31:0] gy, gx, cy, cx;
                gy = 32'd2 * (32'(tr_o0y) + 32'(pl_oy)) - 32'd1 + 32'(pl_w) / 3;
                gx = 32'd2 * (32'(tr_o0x) + 32'(pl_ox)) - 32'd1 + 32'(pl_w) % 3;
                cy = gy - 32'(tr_cy0);
                cx = gx - 32'(tr_cx0);
                pl_rv <= pl_w != 4'd9;
                pl_rvalid <= gy >= 0 && gy < 32'(L_conv_h) && gx >= 0 && gx < 32'(L_conv_w);
                for (int l = 0; l < TM; l++) pl_q[l] <= pool_mem[l][$clog2(PPIX)'(cy * 32'(tr_chw) + cx)];
                // fold the value read last cycle
                if (pl_rv && pl_rvalid) begin
                    for (int l = 0; l < TM; l++) begin
                        logic greater;
                        greater = L_out_signed ? ($signed(pl_q[l]) > $signed(pl_max[l])) : (pl_q[l] > pl_max[l]);
                        if (!pl_any || greater) pl_max[l] <= pl_q[l];
                    end
                    pl_any <= 1'b1;
                end
                if (pl_w == 4'd9) begin
                    pl_state <= PL_EMIT;
                end else pl_w <= pl_w + 4'd1;
            end
            PL_EMIT: begin
                if (32'(pkq_count) + 32'd1 < PKQ_DEPTH) begin
                    logic [63:0] a;
                    logic last_px;
                    a = L_out_abs + ((64'(tr_o0y) + 64'(pl_oy)) * 64'(L_out_w) + 64'(tr_o0x) + 64'(pl_ox)) * 64'(L_cout_st) + 64'(bk_m0[tr_gb]);
                    pkq_push <= 1'b1;
                    pkq_in <= {a, bk_mg[tr_gb], (PK_BYTES*8)'(pl_max_packed)};
                    last_px = pl_ox + 8'd1 == tr_ow && pl_oy + 8'd1 == tr_oh;
                    for (int l = 0; l < TM; l++) begin
                        logic signed [31:0] s;
                        s = sums[l] + (L_out_signed ? 32'($signed(pl_max[l])) : 32'(pl_max[l]));
                        sums[l] <= last_px ? 32'sd0 : s;
                        skq_in[l*32 +: 32] <= s;
                    end
                    pl_w <= 4'd0;
                    pl_rv <= 1'b0;
                    pl_any <= 1'b0;
                    if (pl_ox + 8'd1 == tr_ow) begin
                        pl_ox <= 8'd0;
                        pl_oy <= pl_oy + 8'd1;
                    end else pl_ox <= pl_ox + 8'd1;
                    if (last_px) begin
                        skq_in[PKT_W-1 -: 72] <= {L_sums_abs + (64'(tr_idx) * 64'(L_cout_st) + 64'(bk_m0[tr_gb])) * 64'd4, 8'(32'(bk_mg[tr_gb]) * 4)};
                        skq_push <= L_emit_sums;
                        tr_pop_pl <= 1'b1;
                        pl_state <= PL_SUMS;
                    end else pl_state <= PL_RUN;
                end
            end
            PL_SUMS: begin
                pl_state <= PL_IDLE;
                wb_busy <= 1'b0;
            end
            default: ;
        endcase

        // -------------------------------------------------------------- packetizer
        if (pz_have) begin
            if (pz_cmd_fire) pz_cmd_done <= 1'b1;
            if (pz_data_fire) pz_beat <= pz_beat + 8'd1;
        end
        if (pz_free) begin
            pz_have <= pz_next_valid;
            if (pz_next_valid) begin
                logic [63:0] a;
                logic [7:0] n;
                logic [ABL-1:0] off;
                a = pz_next[PKT_W-1 -: 64];
                n = pz_next[PKT_W-65 -: 8];
                off = a[ABL-1:0];
                pz_addr <= a;
                pz_cmd_done <= 1'b0;
                pz_beat <= 8'd0;
                pz_beats <= 8'((32'(off) + 32'(n) + AB - 1) >> ABL);
                pz_data <= (WIN_BEATS*AB*8)'(pz_next[PK_BYTES*8-1:0]) << (32'(off) * 8);
                pz_strb <= ((WIN_BEATS*AB)'(1) << n) - 1'b1 << off;
            end
        end

        if (rst) begin
            state <= ST_IDLE;
            status_reg <= 32'd0;
            cycle_cnt <= 64'd0;
            pf_state <= PF_IDLE;
            cp_state <= CP_IDLE;
            pl_state <= PL_IDLE;
            full <= 2'b00;
            inflight <= '0;
            rq_inflight <= '0;
            c1_v <= 1'b0;
            c2_v <= 1'b0;
            pz_have <= 1'b0;
            wb_busy <= 1'b0;
            pr_beat <= 16'd0;
            for (int l = 0; l < TM; l++) sums[l] <= 32'sd0;
            ld_out_beats <= 16'd0;
        end
    end

    // read-data ready and FIFO pops
    always_comb begin
        rd_ready = 1'b0;
        spf_pop = 1'b0;
        ldf_pop = 1'b0;
        pend_pop = 1'b0;
        pos = '0;
        last_byte = 1'b0;
        case (state)
            ST_DESC_RX: rd_ready = 1'b1;
            ST_LIST_RX: rd_ready = !list_have;
            ST_RUN: begin
                if (rd_to_pf) begin
                    rd_ready = pend_valid;
                    pend_pop = pend_valid && rd_valid && rd_last;
                end else if (rd_to_ld) begin
                    rd_ready = ldf_in_ready;
                end
            end
            default: ;
        endcase
        ld_k = 8'd1;
        for (int t = 0; t < KMAX; t++) ld_byte[t] = 8'd0;
        if (ld_consume) begin
            logic [1:0] kind;
            logic [31:0] k, left_span, left_beat;
            kind = spf_out[SPF_W-1 -: 2];
            pos = sc_started ? sc_pos : (ABL+1)'(spf_out[23:16]);
            left_span = 32'(spf_out[15:0]) - 32'(sc_b);
            left_beat = AB - 32'(pos);
            k = 1;
            if (kind == 2'(SP_WIC)) k = KMAX;
            else if (kind == 2'(SP_WOC) && !L_in_ch_gated) k = TN - (32'(sc_b) % TN);
            if (k > left_span) k = left_span;
            if (k > left_beat) k = left_beat;
            ld_k = 8'(k);
            for (int t = 0; t < KMAX; t++)
                if (32'(pos) + t < AB) ld_byte[t] = ldf_data[(32'(pos) + t) * 8 +: 8];
            last_byte = k == left_span;
            ldf_pop = last_byte || 32'(pos) + k == AB;
            spf_pop = last_byte;
        end
    end

    assign ap_idle = state == ST_IDLE;
    assign ap_done_pulse = state == ST_DONE;
    assign ap_ready_pulse = state == ST_DONE;
    assign out_vld_pulse = state == ST_DONE;
    wire unused_ok = &{1'b0, wbq_in_ready, tr_count, spf_count,
                       pend_count, own_count, skq_in_ready, pkq_in_ready, rq_tag[17], L_in_c, wq_tag, t_chy[0],
                       tr_out[15:8], cp_r[15:PW], cp_c[15:PW], cp_bit};
endmodule
`default_nettype wire
