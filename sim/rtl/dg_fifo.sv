`default_nettype none
// dg_fifo: small synchronous FIFO (register array, first-word fall-through).
module dg_fifo #(
    parameter int WIDTH = 8,     // bits per entry, >= 1
    parameter int DEPTH = 4,     // entries, power of two >= 2
    parameter bit HEAD_REG = 0   // out_data from a register (the head, loaded a cycle ahead)
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
    // full / empty as registers (the users' handshakes start at a flip-flop, not at a pointer
    // compare), their next values from the current count's compares and push / pop in one
    // last gate (push / pop, the users' deepest inputs, are not added to the pointers first)
    logic full, empty;
    wire push = in_valid && !full;
    wire pop = out_ready && !empty;
    wire [AW:0] wr_next = wr_ptr_reg + (AW+1)'(push);
    wire [AW:0] rd_next = rd_ptr_reg + (AW+1)'(pop);
    assign in_ready = !full;
    assign out_valid = !empty;
    assign count = wr_ptr_reg - rd_ptr_reg;
    wire c_one = count == (AW+1)'(1);
    wire c_afull = count == (AW+1)'(DEPTH - 1);
    if (HEAD_REG) begin : g_head
        // the head as a register, so a user's logic on out_data starts at a flip-flop: on a
        // pop the entry after it (more than one entry: written before) or the entry pushed in
        // the same cycle; an empty FIFO takes the pushed entry
        logic [WIDTH-1:0] head;
        logic [AW-1:0] rd_p1;          // rd_ptr_reg + 1 (the read address of the next head)
        logic many;                    // more than one entry
        always_ff @(posedge clk) begin
            if (pop && many) head <= mem[rd_p1];
            else if (pop || empty) head <= in_data;
            rd_p1 <= rd_next[AW-1:0] + AW'(1);
            // (more than one entry after this cycle: count + push - pop >= 2)
            many <= (push && !pop) ? count >= (AW+1)'(1) : (pop && !push) ? count >= (AW+1)'(3)
                    : count >= (AW+1)'(2);
            if (rst) begin
                rd_p1 <= AW'(1);
                many <= 1'b0;
            end
        end
        assign out_data = head;
    end else begin : g_mem
        assign out_data = mem[rd_ptr_reg[AW-1:0]];
    end
    always_ff @(posedge clk) begin
        if (push) begin
            mem[wr_ptr_reg[AW-1:0]] <= in_data;
        end
        if (rst) begin
            wr_ptr_reg <= '0;
            rd_ptr_reg <= '0;
            full <= 1'b0;
            empty <= 1'b1;
        end else begin
            wr_ptr_reg <= wr_next;
            rd_ptr_reg <= rd_next;
            // (a push and a pop together keep the count: empty cannot pop, full cannot push)
            full <= !pop && (full || (push && c_afull));
            empty <= !push && (empty || (pop && c_one));
        end
    end
`ifndef SYNTHESIS
    // (the flags and pointers are undefined before the first reset)
    /* verilator lint_off PROCASSINIT */
    logic reset_seen = 1'b0;
    /* verilator lint_on PROCASSINIT */
    always_ff @(posedge clk) if (rst) reset_seen <= 1'b1;
    always_ff @(posedge clk)
        if (reset_seen && !rst && (full != ((wr_ptr_reg[AW] != rd_ptr_reg[AW]) && (wr_ptr_reg[AW-1:0] == rd_ptr_reg[AW-1:0]))
                     || empty != (wr_ptr_reg == rd_ptr_reg)))
            $error("dg_fifo: full %0d / empty %0d differ from the pointers", full, empty);
    if (HEAD_REG) begin : g_head_chk
        always_ff @(posedge clk)
            if (reset_seen && !rst && !empty && g_head.head != mem[rd_ptr_reg[AW-1:0]])
                $error("dg_fifo: the head register differs from the head entry");
    end
`endif
endmodule
`default_nettype wire
