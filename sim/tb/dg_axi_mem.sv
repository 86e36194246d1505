`default_nettype none
// dg_axi_mem: simulation-only AXI4 slave memory (INCR bursts, byte strobes) with read latency and back-pressure.
//
// `mem` is public (verilator public_flat_rw): the fast harness's C++ main
// (sim/tb/dg_fast_main.cpp) copies the segments of a start straight into it before reset
// and reads the writable regions back after $finish (byte i of a word = bits [8i+7:8i],
// i.e. the array is the memory image byte for byte on a little-endian host). Two read ports
// on the one `mem` (s_axi_* and the read-only s_axi_w_*: two HP ports on one DDR), each: up
// to 16 outstanding AR, each served RD_LATENCY cycles after acceptance, in order. Writes: AW
// and W taken in order, B after the last beat. `stall_pct` (0..99) deasserts the ready
// and valid signals of the slave pseudo-randomly (LFSR; the second read port its own LFSR
// stream) to model DDR contention.
module dg_axi_mem #(
    parameter int ADDR_W = 64,          // AXI address width
    parameter int DATA_W = 64,          // AXI data width
    parameter int MEM_WORDS = 1 << 18   // memory size in DATA_W words (power of two)
) (
    input  wire                 clk,
    input  wire                 rst,
    input  wire [31:0]          rd_latency,  // cycles from AR acceptance to the first R beat
    input  wire [6:0]           stall_pct,   // percent of cycles the slave stalls
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

    // pseudo-random stall
    logic [31:0] lfsr;
    wire stall = (lfsr[15:0] % 100) < 16'(stall_pct);
    wire stall2 = (lfsr[31:16] % 100) < 16'(stall_pct);

    // ---- reads: queue of accepted bursts with their ready time
    logic [ADDR_W-1:0] ar_addr [16];
    logic [7:0]        ar_len [16];
    logic [63:0]       ar_time [16];
    logic [4:0]        ar_wp, ar_rp;
    logic [7:0]        r_beat;
    logic [63:0]       now;
    wire ar_full = (ar_wp - ar_rp) == 5'd16;
    wire ar_empty = ar_wp == ar_rp;
    assign s_axi_arready = !ar_full && !stall;
    wire r_ready_time = !ar_empty && now >= ar_time[ar_rp[3:0]];
    assign s_axi_rvalid = r_ready_time && !stall2;
    wire [ADDR_W-1:0] r_addr = ar_addr[ar_rp[3:0]] + (ADDR_W'(r_beat) << ABL);
    assign s_axi_rdata = mem[WL'(r_addr >> ABL)];
    assign s_axi_rresp = 2'b00;
    assign s_axi_rlast = r_beat == ar_len[ar_rp[3:0]];

    // ---- second read port: the same queue, its own stall stream
    logic [31:0] lfsr_w;
    wire stall_w = (lfsr_w[15:0] % 100) < 16'(stall_pct);
    wire stall_w2 = (lfsr_w[31:16] % 100) < 16'(stall_pct);
    logic [ADDR_W-1:0] war_addr [16];
    logic [7:0]        war_len [16];
    logic [63:0]       war_time [16];
    logic [4:0]        war_wp, war_rp;
    logic [7:0]        wr_beat;
    wire war_full = (war_wp - war_rp) == 5'd16;
    wire war_empty = war_wp == war_rp;
    assign s_axi_w_arready = !war_full && !stall_w;
    assign s_axi_w_rvalid = !war_empty && now >= war_time[war_rp[3:0]] && !stall_w2;
    wire [ADDR_W-1:0] wr_addr = war_addr[war_rp[3:0]] + (ADDR_W'(wr_beat) << ABL);
    assign s_axi_w_rdata = mem[WL'(wr_addr >> ABL)];
    assign s_axi_w_rresp = 2'b00;
    assign s_axi_w_rlast = wr_beat == war_len[war_rp[3:0]];

    // ---- writes
    logic [ADDR_W-1:0] aw_addr [16];
    logic [7:0]        aw_len [16];
    logic [4:0]        aw_wp, aw_rp;
    logic [7:0]        w_beat;
    logic [7:0]        b_pending;
    wire aw_full = (aw_wp - aw_rp) == 5'd16;
    wire aw_empty = aw_wp == aw_rp;
    assign s_axi_awready = !aw_full && !stall2;
    assign s_axi_wready = !aw_empty && !stall;
    assign s_axi_bvalid = b_pending != 0;
    assign s_axi_bresp = 2'b00;
    wire [ADDR_W-1:0] w_addr = aw_addr[aw_rp[3:0]] + (ADDR_W'(w_beat) << ABL);

    always_ff @(posedge clk) begin
        lfsr <= {lfsr[30:0], lfsr[31] ^ lfsr[21] ^ lfsr[1] ^ lfsr[0]};
        now <= now + 64'd1;
        if (s_axi_arvalid && s_axi_arready) begin
            ar_addr[ar_wp[3:0]] <= s_axi_araddr;
            ar_len[ar_wp[3:0]] <= s_axi_arlen;
            ar_time[ar_wp[3:0]] <= now + 64'(rd_latency);
            ar_wp <= ar_wp + 5'd1;
        end
        if (s_axi_rvalid && s_axi_rready) begin
            if (s_axi_rlast) begin
                r_beat <= 8'd0;
                ar_rp <= ar_rp + 5'd1;
            end else r_beat <= r_beat + 8'd1;
        end
        lfsr_w <= {lfsr_w[30:0], lfsr_w[31] ^ lfsr_w[21] ^ lfsr_w[1] ^ lfsr_w[0]};
        if (s_axi_w_arvalid && s_axi_w_arready) begin
            war_addr[war_wp[3:0]] <= s_axi_w_araddr;
            war_len[war_wp[3:0]] <= s_axi_w_arlen;
            war_time[war_wp[3:0]] <= now + 64'(rd_latency);
            war_wp <= war_wp + 5'd1;
        end
        if (s_axi_w_rvalid && s_axi_w_rready) begin
            if (s_axi_w_rlast) begin
                wr_beat <= 8'd0;
                war_rp <= war_rp + 5'd1;
            end else wr_beat <= wr_beat + 8'd1;
        end
        if (s_axi_awvalid && s_axi_awready) begin
            aw_addr[aw_wp[3:0]] <= s_axi_awaddr;
            aw_len[aw_wp[3:0]] <= s_axi_awlen;
            aw_wp <= aw_wp + 5'd1;
        end
        if (s_axi_wvalid && s_axi_wready) begin
            for (int i = 0; i < AB; i++)
                if (s_axi_wstrb[i]) mem[WL'(w_addr >> ABL)][i*8 +: 8] <= s_axi_wdata[i*8 +: 8];
            if (s_axi_wlast || w_beat == aw_len[aw_rp[3:0]]) begin
                w_beat <= 8'd0;
                aw_rp <= aw_rp + 5'd1;
            end else w_beat <= w_beat + 8'd1;
        end
        b_pending <= b_pending + 8'(s_axi_wvalid && s_axi_wready && (s_axi_wlast || w_beat == aw_len[aw_rp[3:0]]))
                     - 8'(s_axi_bvalid && s_axi_bready);
        if (rst) begin
            lfsr <= 32'hACE1_2468;
            now <= 64'd0;
            ar_wp <= '0;
            ar_rp <= '0;
            r_beat <= '0;
            lfsr_w <= 32'h1357_9BDF;
            war_wp <= '0;
            war_rp <= '0;
            wr_beat <= '0;
            aw_wp <= '0;
            aw_rp <= '0;
            w_beat <= '0;
            b_pending <= '0;
        end
    end
endmodule
`default_nettype wire
