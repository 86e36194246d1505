`default_nettype none
// dg_burst_plan: the next burst's length for the AXI masters (dg_axi_rd, dg_axi_wr).
//
// Every term of the next burst's length is kept in registers, so no 4 KB-distance subtract
// or three-way minimum sits between two registers (issue 16: <= 8 LUT levels):
// cap = min(MAX_BURST, beats to the 4 KB boundary) is the length of every burst but the
// command's last (burst = left when left <= cap); after a burst of cap beats the next
// boundary distance is rem_reg (= distance - MAX_BURST) or, when the burst ended on the
// boundary (cap_at_4k), a whole 4 KB page. `start` (a command accepted at start_addr) takes
// precedence over `step` (a burst of cap beats issued) in the same cycle.
module dg_burst_plan #(
    parameter int AB = 16,           // bytes per beat
    parameter int MAX_BURST = 16,    // beats per burst, 1..256, MAX_BURST * AB <= 4096
    parameter int BEATS_W = 24,      // width of a command's beat count
    localparam int CW = $clog2(MAX_BURST + 1)
) (
    input  wire                 clk,
    input  wire                 start,        // plan the first burst of a command at start_addr
    input  wire [11:0]          start_addr,   // its byte address within the 4 KB page
    input  wire                 step,         // a burst of `cap` beats was issued
    input  wire [BEATS_W-1:0]   left,         // beats of the command not yet issued
    output logic [CW-1:0]       cap,          // min(MAX_BURST, beats to the 4 KB boundary)
    output wire                 is_last,      // the next burst is the command's last
    output wire [BEATS_W-1:0]   burst         // the next burst's length
);
    localparam int ABL = $clog2(AB);
    localparam int PAGE_BEATS = 4096 / AB;
    logic           cap_at_4k;            // cap is the distance to the 4 KB boundary
    logic [12:0]    rem_reg;              // distance - MAX_BURST (used when !cap_at_4k)
    logic           rem_le_max;           // rem_reg <= MAX_BURST
    wire  [12:0]    cmd_4k = 13'(PAGE_BEATS) - 13'(start_addr[11:ABL]);   // beats to the boundary
    assign is_last = left <= BEATS_W'(cap);
    assign burst = is_last ? left : BEATS_W'(cap);
    wire unused_ok = &{1'b0, start_addr[ABL-1:0]};    // beat-aligned: the byte offset is 0

    always_ff @(posedge clk) begin
        if (start) begin
            cap <= (cmd_4k <= 13'(MAX_BURST)) ? CW'(cmd_4k) : CW'(MAX_BURST);
            cap_at_4k <= cmd_4k <= 13'(MAX_BURST);
            rem_reg <= cmd_4k - 13'(MAX_BURST);
            rem_le_max <= cmd_4k <= 13'(2 * MAX_BURST);
        end else if (step) begin
            // (after a command's last burst the plan is don't-care: the next start replans)
            if (cap_at_4k) begin
                cap <= CW'(MAX_BURST);
                cap_at_4k <= MAX_BURST == PAGE_BEATS;
                rem_reg <= 13'(PAGE_BEATS - MAX_BURST);
                rem_le_max <= PAGE_BEATS - MAX_BURST <= MAX_BURST;
            end else begin
                cap <= rem_le_max ? CW'(rem_reg) : CW'(MAX_BURST);
                cap_at_4k <= rem_le_max;
                rem_reg <= rem_reg - 13'(MAX_BURST);
                rem_le_max <= rem_reg <= 13'(2 * MAX_BURST);
            end
        end
    end
endmodule
`default_nettype wire
