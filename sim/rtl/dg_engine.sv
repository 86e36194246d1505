`default_nettype none
// dg_engine: reference RTL of the dgfpga sparse-conv engine (top: s_axi_control, m_axi_gmem, m_axi_gmem_w).
//
// One engine start runs `layer_count` records of a network program (dgfpga.contract.program:
// conv descriptors, gate records, the head) back to back. The top wires five modules with
// one job each (docs/rtl.md):
//   dg_sequencer  record fetch + dispatch, descriptor check (from_gate: the effective
//                 descriptor), work lists, layer state, STATUS / CYCLES / cycle log;
//   dg_gate       gate and gate-2 records (integer gates -> masks + work lists) and the
//                 head (logits, cycle log), on the same read and write masters;
//   dg_loader     params + weights per m-group (ping-pong banks) on the weight read
//                 master, input patches + residual bytes per tile (two halves) on the
//                 read master;
//   dg_compute    drives the Tm x Tn MAC array (dg_mac_array), one step per cycle;
//   dg_writeback  bias, requantize, residual, clamp, max-pool, sums, AXI writes.
// Every configuration value is a generated DG_ constant of the config the RTL is built for
// (dg_pkg.sv: the engine has no configuration parameters).
// Ports follow Vitis HLS naming (ap_clk, ap_rst_n, s_axi_control_*, m_axi_gmem_*,
// m_axi_gmem_w_*, interrupt) so the same cocotb testbench can drive HLS-exported RTL.
// Two AXI4 masters, as the HLS engine's weight bundle (gmem_w) beside its others: m_axi_gmem
// (read + write: program records, work lists, gates, input patches, residual bytes, every
// write) and m_axi_gmem_w (read only: the loader's params and weight spans), so the weights
// of the next m-group load while the prefetcher reads patches (two HP ports on one DDR).
module dg_engine
    import dg_pkg::*;   // the engine contract of the config it is built for (dg_pkg.sv)
#(
    // AXI implementation choices (not part of the engine config)
    parameter int AXI_ADDR_W = 64,           // m_axi address width
    parameter int MAX_BURST = 16             // m_axi burst length limit, 1..256
) (
    input  wire                      ap_clk,
    input  wire                      ap_rst_n,
    // AXI4-Lite control
    input  wire [DG_REG_ADDR_BITS-1:0]    s_axi_control_awaddr,
    input  wire                      s_axi_control_awvalid,
    output wire                      s_axi_control_awready,
    input  wire [31:0]               s_axi_control_wdata,
    input  wire [3:0]                s_axi_control_wstrb,
    input  wire                      s_axi_control_wvalid,
    output wire                      s_axi_control_wready,
    output wire [1:0]                s_axi_control_bresp,
    output wire                      s_axi_control_bvalid,
    input  wire                      s_axi_control_bready,
    input  wire [DG_REG_ADDR_BITS-1:0]    s_axi_control_araddr,
    input  wire                      s_axi_control_arvalid,
    output wire                      s_axi_control_arready,
    output wire [31:0]               s_axi_control_rdata,
    output wire [1:0]                s_axi_control_rresp,
    output wire                      s_axi_control_rvalid,
    input  wire                      s_axi_control_rready,
    // AXI4 master (all four regions; the weight region's params and weights are read on m_axi_gmem_w)
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
    output wire [DG_AXI_DATA_BITS-1:0]     m_axi_gmem_wdata,
    output wire [DG_AXI_DATA_BITS/8-1:0]   m_axi_gmem_wstrb,
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
    input  wire [DG_AXI_DATA_BITS-1:0]     m_axi_gmem_rdata,
    input  wire [1:0]                m_axi_gmem_rresp,
    input  wire                      m_axi_gmem_rlast,
    input  wire                      m_axi_gmem_rvalid,
    output wire                      m_axi_gmem_rready,
    // AXI4 read-only master (the weight region: params, weights)
    output wire [0:0]                m_axi_gmem_w_arid,
    output wire [AXI_ADDR_W-1:0]     m_axi_gmem_w_araddr,
    output wire [7:0]                m_axi_gmem_w_arlen,
    output wire [2:0]                m_axi_gmem_w_arsize,
    output wire [1:0]                m_axi_gmem_w_arburst,
    output wire                      m_axi_gmem_w_arlock,
    output wire [3:0]                m_axi_gmem_w_arcache,
    output wire [2:0]                m_axi_gmem_w_arprot,
    output wire                      m_axi_gmem_w_arvalid,
    input  wire                      m_axi_gmem_w_arready,
    input  wire [0:0]                m_axi_gmem_w_rid,
    input  wire [DG_AXI_DATA_BITS-1:0]     m_axi_gmem_w_rdata,
    input  wire [1:0]                m_axi_gmem_w_rresp,
    input  wire                      m_axi_gmem_w_rlast,
    input  wire                      m_axi_gmem_w_rvalid,
    output wire                      m_axi_gmem_w_rready,
    /* verilator lint_off SYMRSVDWORD */
    output wire                      interrupt
    /* verilator lint_on SYMRSVDWORD */
);
`include "dg_fields.svh"

    if ((DG_TM & (DG_TM - 1)) != 0 || (DG_TN & (DG_TN - 1)) != 0 || DG_TM > 64 || DG_TN > 64) begin : g_chk_tmtn
        $error("dg_engine: TM and TN must be powers of two <= 64");
    end
    if (DG_AXI_DATA_BITS < 32 || DG_AXI_DATA_BITS > 512 || (DG_AXI_DATA_BITS & (DG_AXI_DATA_BITS - 1)) != 0) begin : g_chk_dw
        $error("dg_engine: AXI data width must be 32..512, a power of two");
    end
    if (DG_MAX_TILE < 1 || DG_MAX_TILE > 255 || DG_MAX_GRID < 1 || DG_MAX_GRID > 255 || DG_MAX_LAYERS < 1 || DG_MAX_LAYERS > 255) begin : g_chk_lim
        $error("dg_engine: MAX_TILE/MAX_GRID/MAX_LAYERS must be 1..255");
    end
    if (PK_BYTES > 255) begin : g_chk_pk
        $error("dg_engine: 4*TM must fit a byte");
    end

    // ENGINE_ID (64-bit value; regmap field positions)
    function automatic logic [63:0] engine_id_value();
        logic [63:0] v;
        v = '0;
        `DG_REG_FIELD(v, ENGINE_ID, CONFIG_HASH) = DG_REG_ENGINE_ID_CONFIG_HASH_WIDTH'(DG_CONFIG_HASH);
        `DG_REG_FIELD(v, ENGINE_ID, FORMAT_VERSION) = DG_REG_ENGINE_ID_FORMAT_VERSION_WIDTH'(DG_FORMAT_VERSION);
        `DG_REG_FIELD(v, ENGINE_ID, MAGIC) = DG_REG_ENGINE_ID_MAGIC_WIDTH'(DG_ENGINE_MAGIC);
        return v;
    endfunction
    localparam logic [63:0] ENGINE_ID = engine_id_value();


    wire clk = ap_clk;
    wire rst = !ap_rst_n;

    // ------------------------------------------------------------------ registers (s_axi_control)
    wire ap_start;
    wire ap_done_pulse, ap_ready_pulse, ap_idle;
    wire [63:0] a_program, a_fmap_base, a_weight_base, a_work_base, a_sums_base;
    wire [31:0] a_layer_count, a_fmap_bytes, a_weight_bytes, a_work_bytes, a_sums_bytes, a_run_flags;
    wire [31:0] status_reg;
    wire out_vld_pulse;
    wire [63:0] cycle_cnt;             // engine cycles since ap_start (CYCLES)
    dg_axil_regs #(.ADDR_W(DG_REG_ADDR_BITS)) regs (
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
        .arg_sums_base(a_sums_base), .arg_sums_bytes(a_sums_bytes), .arg_run_flags(a_run_flags),
        .out_status(status_reg), .out_status_vld(out_vld_pulse),
        .out_cycles(cycle_cnt), .out_cycles_vld(out_vld_pulse),
        .out_engine_id(ENGINE_ID),
        .out_engine_id_vld(out_vld_pulse), .irq(interrupt));

    // ------------------------------------------------------------------ AXI masters
    wire [63:0] rcmd_addr;
    wire [23:0] rcmd_beats;
    wire rcmd_valid;
    wire rcmd_ready;
    wire [DG_AXI_DATA_BITS-1:0] rd_data;
    wire rd_last, rd_valid;
    wire rd_ready;
    wire rd_idle, rd_err;              // both read masters (the sequencer's STATUS / drain)
    wire rdm_idle, rdm_err, rdw_idle, rdw_err;
    wire err_clear;
    dg_axi_rd #(.ADDR_W(AXI_ADDR_W), .DATA_W(DG_AXI_DATA_BITS), .MAX_BURST(MAX_BURST), .OUTSTANDING(8)) rdm (
        .clk(clk), .rst(rst), .cmd_addr(AXI_ADDR_W'(rcmd_addr)), .cmd_beats(rcmd_beats),
        .cmd_valid(rcmd_valid), .cmd_ready(rcmd_ready), .rd_data(rd_data), .rd_last(rd_last),
        .rd_valid(rd_valid), .rd_ready(rd_ready), .idle(rdm_idle), .err(rdm_err), .err_clear(err_clear),
        .m_axi_arid(m_axi_gmem_arid), .m_axi_rid(m_axi_gmem_rid), .m_axi_araddr(m_axi_gmem_araddr), .m_axi_arlen(m_axi_gmem_arlen), .m_axi_arsize(m_axi_gmem_arsize),
        .m_axi_arburst(m_axi_gmem_arburst), .m_axi_arvalid(m_axi_gmem_arvalid),
        .m_axi_arready(m_axi_gmem_arready), .m_axi_rdata(m_axi_gmem_rdata), .m_axi_rresp(m_axi_gmem_rresp),
        .m_axi_rlast(m_axi_gmem_rlast), .m_axi_rvalid(m_axi_gmem_rvalid), .m_axi_rready(m_axi_gmem_rready));
    assign m_axi_gmem_arlock = 1'b0;
    assign m_axi_gmem_arcache = 4'b0011;
    assign m_axi_gmem_arprot = 3'b000;

    // the weight read master: the loader's params and weight spans (its only user)
    wire [63:0] wtcmd_addr;
    wire [23:0] wtcmd_beats;
    wire wtcmd_valid, wtcmd_ready;
    wire [DG_AXI_DATA_BITS-1:0] wt_data;
    wire wt_last, wt_valid, wt_ready;
    dg_axi_rd #(.ADDR_W(AXI_ADDR_W), .DATA_W(DG_AXI_DATA_BITS), .MAX_BURST(MAX_BURST), .OUTSTANDING(8)) rdm_w (
        .clk(clk), .rst(rst), .cmd_addr(AXI_ADDR_W'(wtcmd_addr)), .cmd_beats(wtcmd_beats),
        .cmd_valid(wtcmd_valid), .cmd_ready(wtcmd_ready), .rd_data(wt_data), .rd_last(wt_last),
        .rd_valid(wt_valid), .rd_ready(wt_ready), .idle(rdw_idle), .err(rdw_err), .err_clear(err_clear),
        .m_axi_arid(m_axi_gmem_w_arid), .m_axi_rid(m_axi_gmem_w_rid), .m_axi_araddr(m_axi_gmem_w_araddr),
        .m_axi_arlen(m_axi_gmem_w_arlen), .m_axi_arsize(m_axi_gmem_w_arsize),
        .m_axi_arburst(m_axi_gmem_w_arburst), .m_axi_arvalid(m_axi_gmem_w_arvalid),
        .m_axi_arready(m_axi_gmem_w_arready), .m_axi_rdata(m_axi_gmem_w_rdata), .m_axi_rresp(m_axi_gmem_w_rresp),
        .m_axi_rlast(m_axi_gmem_w_rlast), .m_axi_rvalid(m_axi_gmem_w_rvalid), .m_axi_rready(m_axi_gmem_w_rready));
    assign m_axi_gmem_w_arlock = 1'b0;
    assign m_axi_gmem_w_arcache = 4'b0011;
    assign m_axi_gmem_w_arprot = 3'b000;
    // STATUS as with one master: idle when both are, an AXI error on either reports
    assign rd_idle = rdm_idle && rdw_idle;
    assign rd_err = rdm_err || rdw_err;

    wire [63:0] wcmd_addr;
    wire [23:0] wcmd_beats;
    wire wcmd_valid;
    wire wcmd_ready;
    wire [DG_AXI_DATA_BITS-1:0] wd_data;
    wire [AB-1:0] wd_strb;
    wire wd_valid;
    wire wd_ready, wr_idle, wr_err;
    dg_axi_wr #(.ADDR_W(AXI_ADDR_W), .DATA_W(DG_AXI_DATA_BITS), .MAX_BURST(MAX_BURST), .OUTSTANDING(8),
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


    // ------------------------------------------------------------------ sequencer
    dg_layer_t L;
    wire run, run_init, layer_done, seq_idle, seq_done;
    wire seq_rcmd_valid, seq_rd_ready;
    wire [63:0] seq_rcmd_addr;
    wire [23:0] seq_rcmd_beats;
    // work lists / zero-halo tables: the sequencer's distributed RAMs, read by the loader
    wire [I_MAX_TILES-1:0] tl_ra, rl_ra;
    wire [15:0] tl_q, rl_q;
    wire [1:0] ch_we;                  // channel-list entries, sequencer -> loader's list RAMs
    wire [15:0] ch_idx, ch_val;
    logic [DG_MAX_TILES-1:0] bitmap;
    wire [I_MAX_HEIGHT-1:0] row_ra;
    wire [15:0] row_tb_q;
    wire row_tv_q;
    wire [I_MAX_WIDTH-1:0] col_ra;
    wire [7:0] col_t_q;
    wire col_tv_q;
    wire g_start, g_is_head, g_dense, g_done;
    wire [DG_DESC_WORDS*32-1:0] g_rec;
    wire [7:0] g_err_code;
    wire [15:0] g_err_entry, g_nt, g_nc, g_nc2;
    wire [23:0] cyc_ra;
    wire [DG_AXI_DATA_BITS-1:0] cyc_q;
    wire [31:0] rec_cycles;
    dg_sequencer u_seq (
        .clk(clk), .rst(rst), .ap_start(ap_start), .a_program(a_program), .a_layer_count(a_layer_count),
        .a_fmap_base(a_fmap_base), .a_fmap_bytes(a_fmap_bytes), .a_weight_base(a_weight_base),
        .a_weight_bytes(a_weight_bytes), .a_work_base(a_work_base), .a_work_bytes(a_work_bytes),
        .a_sums_base(a_sums_base), .a_sums_bytes(a_sums_bytes), .a_run_flags(a_run_flags),
        .status_reg(status_reg),
        .cycle_cnt(cycle_cnt), .idle(seq_idle), .done(seq_done),
        .rcmd_valid(seq_rcmd_valid), .rcmd_addr(seq_rcmd_addr), .rcmd_beats(seq_rcmd_beats),
        .rcmd_ready(rcmd_ready), .rd_data(rd_data), .rd_valid(rd_valid), .rd_last(rd_last),
        .rd_ready(seq_rd_ready), .rd_idle(rd_idle), .wr_idle(wr_idle), .rd_err(rd_err), .wr_err(wr_err),
        .err_clear(err_clear), .L(L), .run(run), .run_init(run_init), .layer_done(layer_done),
        .tl_ra(tl_ra), .tl_q(tl_q), .rl_ra(rl_ra), .rl_q(rl_q), .ch_we(ch_we), .ch_idx(ch_idx), .ch_val(ch_val),
        .bitmap(bitmap), .row_ra(row_ra), .row_tb_q(row_tb_q), .row_tv_q(row_tv_q),
        .col_ra(col_ra), .col_t_q(col_t_q), .col_tv_q(col_tv_q),
        .g_start(g_start), .g_is_head(g_is_head), .g_rec(g_rec), .g_dense(g_dense), .g_done(g_done),
        .g_err_code(g_err_code), .g_err_entry(g_err_entry), .g_nt(g_nt), .g_nc(g_nc), .g_nc2(g_nc2),
        .cyc_ra(cyc_ra), .cyc_q(cyc_q), .rec_cycles(rec_cycles));
    assign ap_idle = seq_idle;
    assign ap_done_pulse = seq_done;
    assign ap_ready_pulse = seq_done;
    assign out_vld_pulse = seq_done;

    // ------------------------------------------------------------------ loader
    wire ld_rcmd_valid, ld_rd_ready;
    wire [63:0] ld_rcmd_addr;
    wire [23:0] ld_rcmd_beats;
    logic [15:0] bk_m0 [2];
    logic [7:0] bk_mg [2];
    logic [31:0] bk_bias [2][DG_TM];
    logic [31:0] bk_mult [2][DG_TM];
    logic [31:0] dw_bias_q [DG_TM];
    logic [31:0] dw_mult_q [DG_TM];
    wire dw_re;
    wire [I_SG-1:0] dw_ra;
    wire [15:0] wb_gdone;
    wire ld_busy, pf_idle, tile_done, cp_h;
    wire [1:0] full;
    logic [15:0] t_idx [2];
    logic [15:0] t_o0y [2], t_o0x [2], t_cy0 [2], t_cx0 [2];
    logic [7:0]  t_oh [2], t_ow [2], t_chy [2], t_chw [2];
    logic        t_res_only [2];
    logic [15:0] t_g [2];
    logic        t_glast [2];
    wire [1:0]   t_bk_ok;
    logic [IAW-1:0] rowbase [2][PMAX];
    logic           row_ok [2][PMAX];
    logic [15:0]    row_tb [2][PMAX];
    logic           row_tv [2][PMAX];
    logic [IAW-1:0] colbyte [2][PMAX];
    logic           col_ok [2][PMAX];
    logic [7:0]     col_t [2][PMAX];
    logic           col_tv [2][PMAX];
    logic [15:0]    t_lo [2], t_hi [2];
    wire [IAW-1:0] c1_addr;
    logic [IAW-1:0] c1_badd [NB];
    wire c1_gb, c1_v, c2_v;
    wire [WAW-1:0] c1_wa;
    wire [RAW-1:0] c1_rbaddr;
    wire [DG_TM*DG_TN*8-1:0] wb_q;
    logic [7:0] ib_q [NB];
    logic [31:0] t_dwrb [2];
    wire [15:0] dw_cst;
    logic [DW_AW-1:0] c1_dwlin [DW_NBK];
    logic [7:0] dw_q [DW_NBK][DW_NBW];
    wire [DG_TM*8-1:0] rb_q;
    dg_loader u_ld (
        .clk(clk), .rst(rst), .L(L), .run(run), .run_init(run_init),
        .tl_ra(tl_ra), .tl_q(tl_q), .rl_ra(rl_ra), .rl_q(rl_q), .ch_we(ch_we), .ch_idx(ch_idx), .ch_val(ch_val),
        .row_ra(row_ra), .row_tb_q(row_tb_q), .row_tv_q(row_tv_q), .col_ra(col_ra), .col_t_q(col_t_q),
        .col_tv_q(col_tv_q), .rcmd_valid(ld_rcmd_valid), .rcmd_addr(ld_rcmd_addr),
        .rcmd_beats(ld_rcmd_beats), .rcmd_ready(rcmd_ready), .rd_data(rd_data), .rd_valid(rd_valid),
        .rd_last(rd_last), .rd_ready(ld_rd_ready),
        .wt_rcmd_valid(wtcmd_valid), .wt_rcmd_addr(wtcmd_addr), .wt_rcmd_beats(wtcmd_beats),
        .wt_rcmd_ready(wtcmd_ready), .wt_rd_data(wt_data), .wt_rd_valid(wt_valid), .wt_rd_ready(wt_ready),
        .bk_m0(bk_m0), .bk_mg(bk_mg), .bk_bias(bk_bias), .bk_mult(bk_mult),
        .dw_re(dw_re), .dw_ra(dw_ra), .dw_bias_q(dw_bias_q), .dw_mult_q(dw_mult_q),
        .wb_gdone(wb_gdone), .ld_busy(ld_busy), .full(full), .tile_done(tile_done), .cp_h(cp_h),
        .t_idx(t_idx), .t_o0y(t_o0y), .t_o0x(t_o0x), .t_cy0(t_cy0), .t_cx0(t_cx0), .t_oh(t_oh),
        .t_ow(t_ow), .t_chy(t_chy), .t_chw(t_chw), .t_res_only(t_res_only), .t_g(t_g),
        .t_glast(t_glast), .t_bk_ok(t_bk_ok), .rowbase(rowbase), .row_ok(row_ok), .row_tb(row_tb), .row_tv(row_tv),
        .colbyte(colbyte), .col_ok(col_ok), .col_t(col_t), .col_tv(col_tv), .t_lo(t_lo),
        .t_hi(t_hi), .pf_idle(pf_idle), .c1_addr(c1_addr), .c1_badd(c1_badd), .c1_gb(c1_gb), .c1_wa(c1_wa), .c1_rbaddr(c1_rbaddr), .wb_q(wb_q),
        .ib_q(ib_q), .rb_q(rb_q), .t_dwrb(t_dwrb), .dw_cst(dw_cst), .c1_dwlin(c1_dwlin), .dw_q(dw_q));

    // ------------------------------------------------------------------ gate / head unit
    wire gt_rcmd_valid, gt_rd_ready, gt_wcmd_valid, gt_wd_valid;
    wire [63:0] gt_rcmd_addr, gt_wcmd_addr;
    wire [23:0] gt_rcmd_beats, gt_wcmd_beats;
    wire [DG_AXI_DATA_BITS-1:0] gt_wd_data;
    wire [AB-1:0] gt_wd_strb;
    dg_gate u_gate (
        .clk(clk), .rst(rst), .start(g_start), .is_head(g_is_head), .rec(g_rec), .dense(g_dense),
        .a_weight_base(a_weight_base), .a_weight_bytes(a_weight_bytes), .a_work_base(a_work_base),
        .a_work_bytes(a_work_bytes), .a_sums_base(a_sums_base), .a_sums_bytes(a_sums_bytes),
        .a_layer_count(a_layer_count), .rec_cycles(rec_cycles), .cyc_ra(cyc_ra), .cyc_q(cyc_q),
        .rcmd_valid(gt_rcmd_valid), .rcmd_addr(gt_rcmd_addr), .rcmd_beats(gt_rcmd_beats),
        .rcmd_ready(rcmd_ready), .rd_data(rd_data), .rd_valid(rd_valid), .rd_ready(gt_rd_ready),
        .wcmd_valid(gt_wcmd_valid), .wcmd_addr(gt_wcmd_addr), .wcmd_beats(gt_wcmd_beats),
        .wcmd_ready(wcmd_ready), .wd_data(gt_wd_data), .wd_strb(gt_wd_strb), .wd_valid(gt_wd_valid),
        .wd_ready(wd_ready), .done(g_done), .err_code(g_err_code), .err_entry(g_err_entry),
        .nt(g_nt), .nc(g_nc), .nc2(g_nc2));

    // the read master: the sequencer outside the run, the gate unit in a gate/head record,
    // the loader's prefetcher in a conv run (never two at once)
    assign rcmd_valid = seq_rcmd_valid || ld_rcmd_valid || gt_rcmd_valid;
    assign rcmd_addr = seq_rcmd_valid ? seq_rcmd_addr : gt_rcmd_valid ? gt_rcmd_addr : ld_rcmd_addr;
    assign rcmd_beats = seq_rcmd_valid ? seq_rcmd_beats : gt_rcmd_valid ? gt_rcmd_beats : ld_rcmd_beats;
    assign rd_ready = seq_rd_ready || ld_rd_ready || gt_rd_ready;

    // ------------------------------------------------------------------ compute
    wire tr_push, tr_in_ready, start_fire, wb_busy, mac_v, cp_idle;
    wire [TR_W-1:0] tr_in;
    wire [$clog2(WBQ_DEPTH):0] wbq_count;
    wire [DG_TM*32-1:0] mac_acc;
    wire [MTAG_W-1:0] mac_tag;
    dg_compute u_cp (
        .clk(clk), .rst(rst), .L(L), .run(run), .run_init(run_init), .bitmap(bitmap), .full(full),
        .t_idx(t_idx), .t_o0y(t_o0y), .t_o0x(t_o0x), .t_cy0(t_cy0), .t_cx0(t_cx0), .t_oh(t_oh),
        .t_ow(t_ow), .t_chy(t_chy), .t_chw(t_chw), .t_res_only(t_res_only), .t_g(t_g),
        .t_glast(t_glast), .rowbase(rowbase), .row_ok(row_ok), .row_tb(row_tb), .row_tv(row_tv),
        .colbyte(colbyte), .col_ok(col_ok), .col_t(col_t), .col_tv(col_tv), .t_lo(t_lo),
        .t_hi(t_hi), .t_bk_ok(t_bk_ok), .cp_h(cp_h), .tile_done(tile_done), .c1_v(c1_v), .c1_addr(c1_addr),
        .c1_badd(c1_badd),
        .c1_gb(c1_gb), .c1_wa(c1_wa), .c1_rbaddr(c1_rbaddr), .c2_v(c2_v), .wb_q(wb_q), .ib_q(ib_q),
        .t_dwrb(t_dwrb), .dw_cst(dw_cst), .c1_dwlin(c1_dwlin), .dw_q(dw_q),
        .rb_q(rb_q), .tr_push(tr_push), .tr_in(tr_in), .tr_in_ready(tr_in_ready),
        .start_fire(start_fire), .wb_busy(wb_busy), .wbq_count(wbq_count), .mac_v(mac_v),
        .mac_acc(mac_acc), .mac_tag(mac_tag), .idle(cp_idle));

    // ------------------------------------------------------------------ write-back
    wire wb_idle;
    wire wb_wcmd_valid, wb_wd_valid;
    wire [63:0] wb_wcmd_addr;
    wire [23:0] wb_wcmd_beats;
    wire [DG_AXI_DATA_BITS-1:0] wb_wd_data;
    wire [AB-1:0] wb_wd_strb;
    dg_writeback u_wb (
        .clk(clk), .rst(rst), .L(L), .run_init(run_init), .mac_v(mac_v), .mac_acc(mac_acc),
        .mac_tag(mac_tag), .wbq_count(wbq_count), .tr_push(tr_push), .tr_in(tr_in),
        .tr_in_ready(tr_in_ready), .start_fire(start_fire), .wb_busy(wb_busy), .bk_m0(bk_m0),
        .bk_mg(bk_mg), .bk_bias(bk_bias), .bk_mult(bk_mult), .dw_re(dw_re), .dw_ra(dw_ra), .dw_bias_q(dw_bias_q), .dw_mult_q(dw_mult_q),
        .wb_gdone(wb_gdone), .wb_idle(wb_idle),
        .wcmd_valid(wb_wcmd_valid), .wcmd_addr(wb_wcmd_addr), .wcmd_beats(wb_wcmd_beats),
        .wcmd_ready(wcmd_ready), .wd_data(wb_wd_data), .wd_strb(wb_wd_strb), .wd_valid(wb_wd_valid),
        .wd_ready(wd_ready));
    // the write master: the write-back in a conv run, the gate unit in a gate/head record
    assign wcmd_valid = wb_wcmd_valid || gt_wcmd_valid;
    assign wcmd_addr = gt_wcmd_valid ? gt_wcmd_addr : wb_wcmd_addr;
    assign wcmd_beats = gt_wcmd_valid ? gt_wcmd_beats : wb_wcmd_beats;
    assign wd_valid = wb_wd_valid || gt_wd_valid;
    assign wd_data = gt_wd_valid ? gt_wd_data : wb_wd_data;
    assign wd_strb = gt_wd_valid ? gt_wd_strb : wb_wd_strb;

    // the layer is done when every group is written back and every agent is idle
    assign layer_done = wb_gdone == L.G && pf_idle && cp_idle && full == 2'b00 && wb_idle && !ld_busy;
    wire unused_ok = &{1'b0, c1_v, c2_v, wt_last};
endmodule
`default_nettype wire
