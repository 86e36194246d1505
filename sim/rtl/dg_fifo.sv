`default_nettype none
// dg_fifo: small synchronous FIFO (register array, first-word fall-through).
module dg_fifo #(
    parameter int WIDTH = 8,     // bits per entry, >= 1
    parameter int DEPTH = 4      // entries, power of two >= 2
) (
    input  wire              clk,
    input  wire              rst,
    input  wire [WIDTH-1:0]  in_data,
    input  wire              in_valid,
    output wire              in_ready,
    output wire [WIDTH-1:0]  out_data,
    output wire              out_valid,
    input  wire              out_ready,
    output wire [$clog2(DEPTH):0] count
);
    localparam int AW = $clog2(DEPTH);
    if (DEPTH < 2 || (DEPTH & (DEPTH - 1)) != 0) begin : g_chk
        $error("dg_fifo: DEPTH must be a power of two >= 2");
    end
    logic [WIDTH-1:0] mem [DEPTH];
    logic [AW:0] wr_ptr_reg, rd_ptr_reg;
    wire full = (wr_ptr_reg[AW] != rd_ptr_reg[AW]) && (wr_ptr_reg[AW-1:0] == rd_ptr_reg[AW-1:0]);
    wire empty = wr_ptr_reg == rd_ptr_reg;
    assign in_ready = !full;
    assign out_valid = !empty;
    assign out_data = mem[rd_ptr_reg[AW-1:0]];
    assign count = wr_ptr_reg - rd_ptr_reg;
    always_ff @(posedge clk) begin
        if (in_valid && !full) begin
            mem[wr_ptr_reg[AW-1:0]] <= in_data;
        end
        if (rst) begin
            wr_ptr_reg <= '0;
            rd_ptr_reg <= '0;
        end else begin
            if (in_valid && !full) wr_ptr_reg <= wr_ptr_reg + 1'b1;
            if (out_ready && !empty) rd_ptr_reg <= rd_ptr_reg + 1'b1;
        end
    end
endmodule
`default_nettype wire
