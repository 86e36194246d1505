`default_nettype none
// dg_axi_rd: AXI4 read master: beat-aligned commands -> INCR bursts (max burst, no 4 KB crossing), in-order data.
module dg_axi_rd
    import dg_pkg::DG_AXI_DATA_BITS;
#(
    parameter int ADDR_W = 64,       // AXI address width, 13..64
    parameter int DATA_W = DG_AXI_DATA_BITS,  // AXI data width: 32, 64, 128, 256 or 512
    parameter int MAX_BURST = 16,    // beats per burst, 1..256 (AXI4 INCR limit)
    parameter int OUTSTANDING = 8,   // bursts in flight, power of two >= 2
    parameter int BEATS_W = 24       // width of a command's beat count
) (
    input  wire                 clk,
    input  wire                 rst,
    // command: read cmd_beats beats from cmd_addr (byte address aligned to DATA_W/8)
    input  wire [ADDR_W-1:0]    cmd_addr,
    input  wire [BEATS_W-1:0]   cmd_beats,     // >= 1
    input  wire                 cmd_valid,
    output wire                 cmd_ready,
    // data, in command order; rd_last marks the last beat of a command
    output wire [DATA_W-1:0]    rd_data,
    output wire                 rd_last,
    output wire                 rd_valid,
    input  wire                 rd_ready,
    output wire                 idle,          // no command pending, no burst outstanding
    output logic                err,           // sticky: a non-OKAY response was seen
    input  wire                 err_clear,
    // AXI4 read address / data channels (single ID 0: responses in order)
    output wire [0:0]           m_axi_arid,
    output wire [ADDR_W-1:0]    m_axi_araddr,
    output wire [7:0]           m_axi_arlen,
    output wire [2:0]           m_axi_arsize,
    output wire [1:0]           m_axi_arburst,
    output wire                 m_axi_arvalid,
    input  wire                 m_axi_arready,
    input  wire [0:0]           m_axi_rid,
    input  wire [DATA_W-1:0]    m_axi_rdata,
    input  wire [1:0]           m_axi_rresp,
    input  wire                 m_axi_rlast,
    input  wire                 m_axi_rvalid,
    output wire                 m_axi_rready
);
    localparam int AB = DATA_W / 8;
    localparam int ABL = $clog2(AB);
    localparam int OL = $clog2(OUTSTANDING);
    if (DATA_W != 32 && DATA_W != 64 && DATA_W != 128 && DATA_W != 256 && DATA_W != 512) begin : g_chk_dw
        $error("dg_axi_rd: DATA_W must be 32..512, a power of two");
    end
    if (MAX_BURST < 1 || MAX_BURST > 256 || MAX_BURST * AB > 4096) begin : g_chk_burst
        $error("dg_axi_rd: MAX_BURST must be 1..256 and a burst at most 4 KB");
    end

    logic [ADDR_W-1:0]  addr_reg;
    logic [BEATS_W-1:0] left_reg;
    logic               busy_reg;
    // per outstanding burst: is it the last burst of its command?
    logic [OL:0]        wr_ptr_reg, rd_ptr_reg;
    logic               last_mem [OUTSTANDING];

    wire [OL:0] outstanding = wr_ptr_reg - rd_ptr_reg;
    wire ar_hs = m_axi_arvalid && m_axi_arready;
    // the next burst's length, every term in registers (dg_burst_plan)
    localparam int CW = $clog2(MAX_BURST + 1);
    logic [CW-1:0]  cap_reg;
    wire            is_last_burst;
    wire [BEATS_W-1:0] burst;
    dg_burst_plan #(.AB(AB), .MAX_BURST(MAX_BURST), .BEATS_W(BEATS_W)) plan (
        .clk(clk), .start(cmd_valid && cmd_ready), .start_addr(cmd_addr[11:0]), .step(ar_hs),
        .left(left_reg), .cap(cap_reg), .is_last(is_last_burst), .burst(burst));
    wire r_hs = m_axi_rvalid && m_axi_rready;

    assign m_axi_arid = 1'b0;
    assign m_axi_araddr = addr_reg;
    assign m_axi_arlen = 8'(burst - 1'b1);
    assign m_axi_arsize = 3'(ABL);
    assign m_axi_arburst = 2'b01;
    assign m_axi_arvalid = busy_reg && (outstanding < (OL+1)'(OUTSTANDING));
    assign cmd_ready = !busy_reg || (ar_hs && is_last_burst);

    assign rd_data = m_axi_rdata;
    assign rd_valid = m_axi_rvalid;
    assign rd_last = m_axi_rlast && last_mem[rd_ptr_reg[OL-1:0]];
    assign m_axi_rready = rd_ready;
    assign idle = !busy_reg && outstanding == '0;

    always_ff @(posedge clk) begin
        if (ar_hs) last_mem[wr_ptr_reg[OL-1:0]] <= is_last_burst;
        if (ar_hs) begin
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
            wr_ptr_reg <= '0;
            rd_ptr_reg <= '0;
            err <= 1'b0;
        end else begin
            if (ar_hs && is_last_burst) busy_reg <= 1'b0;
            if (cmd_valid && cmd_ready) busy_reg <= 1'b1;
            if (ar_hs) wr_ptr_reg <= wr_ptr_reg + 1'b1;
            if (r_hs && m_axi_rlast) rd_ptr_reg <= rd_ptr_reg + 1'b1;
            if (err_clear) err <= 1'b0;
            if (r_hs && m_axi_rresp != 2'b00) err <= 1'b1;
        end
    end
    wire unused_ok = &{1'b0, m_axi_rid};
endmodule
`default_nettype wire
