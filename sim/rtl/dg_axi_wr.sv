`default_nettype none
// dg_axi_wr: AXI4 write master: beat-aligned commands + strobed data -> INCR bursts (max burst, no 4 KB crossing).
module dg_axi_wr
    import dg_pkg::DG_AXI_DATA_BITS;
#(
    parameter int ADDR_W = 64,       // AXI address width, 13..64
    parameter int DATA_W = DG_AXI_DATA_BITS,  // AXI data width: 32, 64, 128, 256 or 512
    parameter int MAX_BURST = 16,    // beats per burst, 1..256
    parameter int OUTSTANDING = 8,   // bursts awaiting their data/response, power of two >= 2
    parameter int DATA_FIFO = 16,    // data beats buffered ahead of their burst, power of two >= 2
    parameter int BEATS_W = 24       // width of a command's beat count
) (
    input  wire                 clk,
    input  wire                 rst,
    // command: write cmd_beats beats at cmd_addr (aligned to DATA_W/8)
    input  wire [ADDR_W-1:0]    cmd_addr,
    input  wire [BEATS_W-1:0]   cmd_beats,     // >= 1
    input  wire                 cmd_valid,
    output wire                 cmd_ready,
    // data beats of the commands, in order
    input  wire [DATA_W-1:0]    wd_data,
    input  wire [DATA_W/8-1:0]  wd_strb,
    input  wire                 wd_valid,
    output wire                 wd_ready,
    output wire                 idle,          // nothing pending, every response received
    output logic                err,           // sticky: a non-OKAY write response was seen
    input  wire                 err_clear,
    // AXI4 write channels (single ID 0)
    output wire [0:0]           m_axi_awid,
    output wire [ADDR_W-1:0]    m_axi_awaddr,
    output wire [7:0]           m_axi_awlen,
    output wire [2:0]           m_axi_awsize,
    output wire [1:0]           m_axi_awburst,
    output wire                 m_axi_awvalid,
    input  wire                 m_axi_awready,
    output wire [DATA_W-1:0]    m_axi_wdata,
    output wire [DATA_W/8-1:0]  m_axi_wstrb,
    output wire                 m_axi_wlast,
    output wire                 m_axi_wvalid,
    input  wire                 m_axi_wready,
    input  wire [0:0]           m_axi_bid,
    input  wire [1:0]           m_axi_bresp,
    input  wire                 m_axi_bvalid,
    output wire                 m_axi_bready
);
    localparam int AB = DATA_W / 8;
    localparam int ABL = $clog2(AB);
    localparam int OL = $clog2(OUTSTANDING);
    if (DATA_W != 32 && DATA_W != 64 && DATA_W != 128 && DATA_W != 256 && DATA_W != 512) begin : g_chk_dw
        $error("dg_axi_wr: DATA_W must be 32..512, a power of two");
    end
    if (MAX_BURST < 1 || MAX_BURST > 256 || MAX_BURST * AB > 4096) begin : g_chk_burst
        $error("dg_axi_wr: MAX_BURST must be 1..256 and a burst at most 4 KB");
    end

    logic [ADDR_W-1:0]  addr_reg;
    logic [BEATS_W-1:0] left_reg;
    logic               busy_reg;
    logic [7:0]         wcnt_reg;          // beats sent of the current W burst
    logic [OL:0]        b_pending_reg;     // bursts issued on AW whose B is not yet back

    wire aw_hs = m_axi_awvalid && m_axi_awready;
    // the next burst's length, every term in registers (dg_burst_plan)
    localparam int CW = $clog2(MAX_BURST + 1);
    logic [CW-1:0]  cap_reg;
    wire            is_last_burst;
    wire [BEATS_W-1:0] burst;
    dg_burst_plan #(.AB(AB), .MAX_BURST(MAX_BURST), .BEATS_W(BEATS_W)) plan (
        .clk(clk), .start(cmd_valid && cmd_ready), .start_addr(cmd_addr[11:0]), .step(aw_hs),
        .left(left_reg), .cap(cap_reg), .is_last(is_last_burst), .burst(burst));

    // burst lengths issued on AW, consumed by the W channel
    wire [7:0] len_head;
    wire len_valid, len_in_ready;
    wire [OL:0] len_count;
    wire w_hs = m_axi_wvalid && m_axi_wready;
    wire b_hs = m_axi_bvalid && m_axi_bready;
    dg_fifo #(.WIDTH(8), .DEPTH(OUTSTANDING)) len_fifo (
        .clk(clk), .rst(rst), .in_data(8'(burst - 1'b1)), .in_valid(aw_hs), .in_ready(len_in_ready),
        .out_data(len_head), .out_valid(len_valid), .out_ready(w_hs && m_axi_wlast), .count(len_count));

    // data beats, buffered so a client can push a beat with its command
    wire [DATA_W+AB-1:0] df_out;
    wire df_valid;
    wire [$clog2(DATA_FIFO):0] df_count;
    dg_fifo #(.WIDTH(DATA_W + AB), .DEPTH(DATA_FIFO)) data_fifo (
        .clk(clk), .rst(rst), .in_data({wd_strb, wd_data}), .in_valid(wd_valid), .in_ready(wd_ready),
        .out_data(df_out), .out_valid(df_valid), .out_ready(w_hs), .count(df_count));

    assign m_axi_awid = 1'b0;
    assign m_axi_awaddr = addr_reg;
    assign m_axi_awlen = 8'(burst - 1'b1);
    assign m_axi_awsize = 3'(ABL);
    assign m_axi_awburst = 2'b01;
    assign m_axi_awvalid = busy_reg && len_in_ready && (b_pending_reg < (OL+1)'(OUTSTANDING));
    assign cmd_ready = !busy_reg || (aw_hs && is_last_burst);

    assign m_axi_wdata = df_out[DATA_W-1:0];
    assign m_axi_wstrb = df_out[DATA_W+AB-1:DATA_W];
    assign m_axi_wvalid = df_valid && len_valid;
    assign m_axi_wlast = wcnt_reg == len_head;
    assign m_axi_bready = 1'b1;
    assign idle = !busy_reg && b_pending_reg == '0 && !df_valid;

    always_ff @(posedge clk) begin
        if (aw_hs) begin
            // (a command's last burst leaves them don't-care: busy_reg clears)
            addr_reg <= addr_reg + (ADDR_W'(cap_reg) << ABL);
            left_reg <= left_reg - BEATS_W'(cap_reg);
        end
        if (cmd_valid && cmd_ready) begin
            addr_reg <= cmd_addr;
            left_reg <= cmd_beats;
        end
        if (rst) begin
            busy_reg <= 1'b0;
            wcnt_reg <= '0;
            b_pending_reg <= '0;
            err <= 1'b0;
        end else begin
            if (aw_hs && is_last_burst) busy_reg <= 1'b0;
            if (cmd_valid && cmd_ready) busy_reg <= 1'b1;
            if (w_hs) wcnt_reg <= m_axi_wlast ? 8'd0 : wcnt_reg + 8'd1;
            b_pending_reg <= b_pending_reg + (OL+1)'(aw_hs) - (OL+1)'(b_hs);
            if (err_clear) err <= 1'b0;
            if (b_hs && m_axi_bresp != 2'b00) err <= 1'b1;
        end
    end
    wire unused_ok = &{1'b0, len_count, df_count, m_axi_bid};
endmodule
`default_nettype wire
