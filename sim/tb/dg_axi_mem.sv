`default_nettype none
// dg_axi_mem: simulation-only AXI4 slave memory (INCR bursts, byte strobes) with read latency,
// back-pressure and error injection.
//
// `mem` is public (verilator public_flat_rw): the fast harness's C++ main
// (sim/tb/dg_fast_main.cpp) copies the segments of a start straight into it before reset
// and reads the writable regions back after $finish (byte i of a word = bits [8i+7:8i],
// i.e. the array is the memory image byte for byte on a little-endian host). Two read ports
// on the one `mem` (s_axi_* and the read-only s_axi_w_*: two HP ports on one DDR), each a
// dg_axi_mem_rd: up to 16 outstanding AR, each served RD_LATENCY cycles after acceptance, in
// order. Writes: AW and W taken in order, B after the last beat. `stall_pct` (0..99)
// deasserts the ready and valid signals of the slave pseudo-randomly (LFSR; the second read
// port its own LFSR stream) to model DDR contention.
//
// Error injection (plusargs, while `err_arm` is high): +rd_err_port=<0|1> +rd_err_addr=<byte
// address>: the read burst of that port whose bytes cover the address answers SLVERR on every
// beat (the data is the memory's); +wr_err_addr=<byte address>: the write burst covering it
// answers SLVERR on B (its data is written). Every burst covering the address while armed
// errs, not only the first.
module dg_axi_mem #(
    parameter int ADDR_W = 64,          // AXI address width
    parameter int DATA_W = 64,          // AXI data width
    parameter int MEM_WORDS = 1 << 18   // memory size in DATA_W words (power of two)
) (
    input  wire                 clk,
    input  wire                 rst,
    input  wire [31:0]          rd_latency,  // cycles from AR acceptance to the first R beat
    input  wire [6:0]           stall_pct,   // percent of cycles the slave stalls
    input  wire                 err_arm,     // the plusargs' error injection applies
    input  wire [ADDR_W-1:0]    s_axi_awaddr,
    input  wire [7:0]           s_axi_awlen,
    input  wire                 s_axi_awvalid,
    output wire                 s_axi_awready,
    input  wire [DATA_W-1:0]    s_axi_wdata,
    input  wire [DATA_W/8-1:0]  s_axi_wstrb,
    input  wire                 s_axi_wlast,
    input  wire                 s_axi_wvalid,
    output wire                 s_axi_wready,
    output wire [1:0]           s_axi_bresp,
    output wire                 s_axi_bvalid,
    input  wire                 s_axi_bready,
    input  wire [ADDR_W-1:0]    s_axi_araddr,
    input  wire [7:0]           s_axi_arlen,
    input  wire                 s_axi_arvalid,
    output wire                 s_axi_arready,
    output wire [DATA_W-1:0]    s_axi_rdata,
    output wire [1:0]           s_axi_rresp,
    output wire                 s_axi_rlast,
    output wire                 s_axi_rvalid,
    input  wire                 s_axi_rready,
    // second read port (read only)
    input  wire [ADDR_W-1:0]    s_axi_w_araddr,
    input  wire [7:0]           s_axi_w_arlen,
    input  wire                 s_axi_w_arvalid,
    output wire                 s_axi_w_arready,
    output wire [DATA_W-1:0]    s_axi_w_rdata,
    output wire [1:0]           s_axi_w_rresp,
    output wire                 s_axi_w_rlast,
    output wire                 s_axi_w_rvalid,
    input  wire                 s_axi_w_rready
);
    localparam int AB = DATA_W / 8;
    localparam int ABL = $clog2(AB);
    localparam int WL = $clog2(MEM_WORDS);
    logic [DATA_W-1:0] mem [MEM_WORDS] /*verilator public_flat_rw*/;

    // error injection settings
    int rd_err_port;
    logic [63:0] rd_err_addr, wr_err_addr;
    bit wr_err_on;
    initial begin
        if (!$value$plusargs("rd_err_port=%d", rd_err_port)) rd_err_port = -1;
        if (!$value$plusargs("rd_err_addr=%d", rd_err_addr)) rd_err_port = -1;
        wr_err_on = $value$plusargs("wr_err_addr=%d", wr_err_addr) != 0;
    end
    function automatic bit covers(input logic [ADDR_W-1:0] a, input logic [7:0] len,
                                  input logic [63:0] e);
        return 64'(a) <= e && e < 64'(a) + ((64'(len) + 64'd1) << ABL);
    endfunction

    // pseudo-random stall: port 0 and the write channels on `lfsr`, port 1 on `lfsr_w`
    logic [31:0] lfsr, lfsr_w;
    wire stall = (lfsr[15:0] % 100) < 16'(stall_pct);
    wire stall2 = (lfsr[31:16] % 100) < 16'(stall_pct);
    wire stall_w = (lfsr_w[15:0] % 100) < 16'(stall_pct);
    wire stall_w2 = (lfsr_w[31:16] % 100) < 16'(stall_pct);
    logic [63:0] now;

    // ---- the two read ports
    wire [WL-1:0] r_word [2];
    dg_axi_mem_rd #(.ADDR_W(ADDR_W), .DATA_W(DATA_W), .WL(WL)) rd0 (
        .clk(clk), .rst(rst), .now(now), .rd_latency(rd_latency), .stall_ar(stall), .stall_r(stall2),
        .ar_err(err_arm && rd_err_port == 0 && covers(s_axi_araddr, s_axi_arlen, rd_err_addr)),
        .araddr(s_axi_araddr), .arlen(s_axi_arlen), .arvalid(s_axi_arvalid), .arready(s_axi_arready),
        .rresp(s_axi_rresp), .rlast(s_axi_rlast), .rvalid(s_axi_rvalid), .rready(s_axi_rready),
        .word(r_word[0]));
    dg_axi_mem_rd #(.ADDR_W(ADDR_W), .DATA_W(DATA_W), .WL(WL)) rd1 (
        .clk(clk), .rst(rst), .now(now), .rd_latency(rd_latency), .stall_ar(stall_w), .stall_r(stall_w2),
        .ar_err(err_arm && rd_err_port == 1 && covers(s_axi_w_araddr, s_axi_w_arlen, rd_err_addr)),
        .araddr(s_axi_w_araddr), .arlen(s_axi_w_arlen), .arvalid(s_axi_w_arvalid),
        .arready(s_axi_w_arready), .rresp(s_axi_w_rresp), .rlast(s_axi_w_rlast),
        .rvalid(s_axi_w_rvalid), .rready(s_axi_w_rready), .word(r_word[1]));
    assign s_axi_rdata = mem[r_word[0]];
    assign s_axi_w_rdata = mem[r_word[1]];

    // ---- writes
    logic [ADDR_W-1:0] aw_addr [16];
    logic [7:0]        aw_len [16];
    logic              aw_err [16];
    logic [4:0]        aw_wp, aw_rp;
    logic [7:0]        w_beat;
    logic              b_err [256];  // the responses owed, in order
    logic [7:0]        b_wp, b_rp;
    wire aw_full = (aw_wp - aw_rp) == 5'd16;
    wire aw_empty = aw_wp == aw_rp;
    assign s_axi_awready = !aw_full && !stall2;
    assign s_axi_wready = !aw_empty && !stall;
    assign s_axi_bvalid = b_wp != b_rp;
    assign s_axi_bresp = b_err[b_rp] ? 2'b10 : 2'b00;
    wire [ADDR_W-1:0] w_addr = aw_addr[aw_rp[3:0]] + (ADDR_W'(w_beat) << ABL);
    wire w_end = s_axi_wvalid && s_axi_wready && (s_axi_wlast || w_beat == aw_len[aw_rp[3:0]]);

    always_ff @(posedge clk) begin
        lfsr <= {lfsr[30:0], lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]};
        lfsr_w <= {lfsr_w[30:0], lfsr_w[31] ^ lfsr_w[21] ^ lfsr_w[1] ^ lfsr_w[0]};
        now <= now + 64'd1;
        if (s_axi_awvalid && s_axi_awready) begin
            aw_addr[aw_wp[3:0]] <= s_axi_awaddr;
            aw_len[aw_wp[3:0]] <= s_axi_awlen;
            aw_err[aw_wp[3:0]] <= err_arm && wr_err_on && covers(s_axi_awaddr, s_axi_awlen, wr_err_addr);
            aw_wp <= aw_wp + 5'd1;
        end
        if (s_axi_wvalid && s_axi_wready) begin
            for (int i = 0; i < AB; i++)
                if (s_axi_wstrb[i]) mem[WL'(w_addr >> ABL)][i*8 +: 8] <= s_axi_wdata[i*8 +: 8];
            if (w_end) begin
                w_beat <= 8'd0;
                aw_rp <= aw_rp + 5'd1;
            end else w_beat <= w_beat + 8'd1;
        end
        if (w_end) begin
            b_err[b_wp] <= aw_err[aw_rp[3:0]];
            b_wp <= b_wp + 8'd1;
        end
        if (s_axi_bvalid && s_axi_bready) b_rp <= b_rp + 8'd1;
        if (rst) begin
            lfsr <= 32'hACE1_2468;
            lfsr_w <= 32'h1357_9BDF;
            now <= 64'd0;
            aw_wp <= '0;
            aw_rp <= '0;
            w_beat <= '0;
            b_wp <= '0;
            b_rp <= '0;
        end
    end
endmodule

// dg_axi_mem_rd: one read port of dg_axi_mem (the queue of accepted bursts with their ready
// time, the beat counter, the error flag of each burst); the memory array stays in the parent,
// which reads word `word` for the R beat.
module dg_axi_mem_rd #(
    parameter int ADDR_W = 64,
    parameter int DATA_W = 64,
    parameter int WL = 18
) (
    input  wire                 clk,
    input  wire                 rst,
    input  wire [63:0]          now,
    input  wire [31:0]          rd_latency,
    input  wire                 stall_ar,    // AR not ready this cycle
    input  wire                 stall_r,     // R not valid this cycle
    input  wire                 ar_err,      // the burst on AR answers SLVERR (the caller's covers())
    input  wire [ADDR_W-1:0]    araddr,
    input  wire [7:0]           arlen,
    input  wire                 arvalid,
    output wire                 arready,
    output wire [1:0]           rresp,
    output wire                 rlast,
    output wire                 rvalid,
    input  wire                 rready,
    output wire [WL-1:0]        word
);
    localparam int ABL = $clog2(DATA_W / 8);
    logic [ADDR_W-1:0] ar_addr [16];
    logic [7:0]        ar_len [16];
    logic [63:0]       ar_time [16];
    logic              ar_err_q [16];
    logic [4:0]        ar_wp, ar_rp;
    logic [7:0]        r_beat;
    wire ar_full = (ar_wp - ar_rp) == 5'd16;
    wire ar_empty = ar_wp == ar_rp;
    assign arready = !ar_full && !stall_ar;
    assign rvalid = !ar_empty && now >= ar_time[ar_rp[3:0]] && !stall_r;
    wire [ADDR_W-1:0] r_addr = ar_addr[ar_rp[3:0]] + (ADDR_W'(r_beat) << ABL);
    assign word = WL'(r_addr >> ABL);
    assign rresp = ar_err_q[ar_rp[3:0]] ? 2'b10 : 2'b00;
    assign rlast = r_beat == ar_len[ar_rp[3:0]];

    always_ff @(posedge clk) begin
        if (arvalid && arready) begin
            ar_addr[ar_wp[3:0]] <= araddr;
            ar_len[ar_wp[3:0]] <= arlen;
            ar_time[ar_wp[3:0]] <= now + 64'(rd_latency);
            ar_err_q[ar_wp[3:0]] <= ar_err;
            ar_wp <= ar_wp + 5'd1;
        end
        if (rvalid && rready) begin
            if (rlast) begin
                r_beat <= 8'd0;
                ar_rp <= ar_rp + 5'd1;
            end else r_beat <= r_beat + 8'd1;
        end
        if (rst) begin
            ar_wp <= '0;
            ar_rp <= '0;
            r_beat <= '0;
        end
    end
endmodule
`default_nettype wire
