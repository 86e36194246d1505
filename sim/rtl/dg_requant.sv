`default_nettype none
// dg_requant: per-lane requantization y = clamp((acc*mult + res*res_mult + 2^(shift-1)) >>> shift, lo, hi).
//
// acc already includes the bias (the caller adds it, or not for residual-only pixels).
// int64 arithmetic wraps like numpy int64 (the quantizer proves |z| < 2^62). Four
// pipeline stages per phase (SHARE phases per input, below); the tag rides along.
// Stage 3 does not shift and then compare 64-bit values: the byte (z >>> shift)[7:0] and the
// range test run side by side (z >>> shift is in the clamp's range iff z's bits from
// shift + 7 (signed; unsigned: shift + 8) up all equal its sign (are 0)), with the mask of
// those bits registered from the per-layer shift; stage 4 picks
// the byte or the clamp bound (shift, res_mult and out_signed are per layer: they must be
// stable from one cycle before an input is taken until its result is out).
module dg_requant
    import dg_pkg::DG_TM;
#(
    parameter int LANES = DG_TM,     // lanes of one input (tm), >= 1
    parameter int SHARE = 1,         // cycles per input: LANES / SHARE lanes share each multiplier pair
    parameter int TAG_W = 8      // sideband bits
) (
    input  wire                  clk,
    input  wire                  rst,
    input  wire                  in_valid,
    output wire                  in_ready,   // one input per SHARE cycles
    input  wire [LANES*33-1:0]   in_acc,     // acc + bias per lane, signed 33-bit
    input  wire [LANES*32-1:0]   in_mult,    // per lane, a signed int32 multiplier (formats: any param word is valid)
    input  wire [LANES*9-1:0]    in_res,     // residual per lane, signed 9-bit (0 without)
    input  wire [31:0]           res_mult,   // 0 <= res_mult < 2^31
    input  wire [4:0]            shift,      // 1..31
    input  wire                  out_signed, // clamp -128..127 (else 0..255)
    input  wire [TAG_W-1:0]      in_tag,
    output logic                 out_valid,
    output logic [LANES*8-1:0]   out_y,      // result bytes (two's complement if signed), valid with out_valid
    output logic [TAG_W-1:0]     out_tag
);
    if (LANES < 1 || SHARE < 1 || LANES % SHARE != 0) begin : g_chk
        $error("dg_requant: LANES >= 1 and SHARE must divide LANES");
    end
    // Time-shared (issue 16: the requantizer's 64-bit products are ~6 DSP48E2 per lane):
    // an input is taken when in_ready; its lanes go through the C = LANES / SHARE multiplier
    // pairs in SHARE consecutive phases, lanes p*C .. p*C + C-1 in phase p: phase 0 straight
    // from the inputs, phase p > 0 from a holding register loaded when the input is taken
    // (the operands: a SHARE-way select by phase of constant lane slices, no run-time lane
    // index arithmetic). Each phase runs the four stages below; its C result bytes enter
    // out_y from the top, which shifts down by C lanes, so after the last phase out_y holds
    // lane 0 at the bottom; out_valid rises with the last phase, SHARE + 3 cycles after the
    // input was taken. SHARE = 1: one input per cycle, 4 cycles.
    localparam int C = LANES / SHARE;
    localparam int PHW = (SHARE > 1) ? $clog2(SHARE) : 1;
    logic [LANES*33-1:0] h_acc;
    logic [LANES*32-1:0] h_mult;
    logic [LANES*9-1:0]  h_res;
    logic [TAG_W-1:0]    h_tag;
    logic [PHW-1:0]      h_ph;       // phase issued from the holding register this cycle (0: none)
    logic                h_idle;     // h_ph == 0, registered (in_ready feeds the caller's pipeline enables)
    wire take = in_valid && in_ready;
    assign in_ready = h_idle;
    wire iss_v = take || !h_idle;
    // the operands of the phase issued this cycle
    logic [C*33-1:0] src_acc;
    logic [C*32-1:0] src_mult;
    logic [C*9-1:0]  src_res;
    always_comb begin
        src_acc = in_acc[C*33-1:0];
        src_mult = in_mult[C*32-1:0];
        src_res = in_res[C*9-1:0];
        for (int p = 1; p < SHARE; p++) begin
            if (32'(h_ph) == p) begin
                src_acc = h_acc[p*C*33 +: C*33];
                src_mult = h_mult[p*C*32 +: C*32];
                src_res = h_res[p*C*9 +: C*9];
            end
        end
    end
    wire [TAG_W-1:0] src_tag = h_idle ? in_tag : h_tag;

    logic signed [63:0] p1_reg [C];
    logic signed [63:0] p2_reg [C];
    logic signed [63:0] z_reg [C];
    logic [14:0] zc_reg [C];         // stage 2: z[38:0] >> (shift & 24), the byte's coarse shift
    logic [7:0] y3_reg [C];          // stage 3: the byte (z >>> shift)[7:0] ...
    logic [C-1:0] sat3_reg;          // ... out of the clamp's range ...
    logic [C-1:0] neg3_reg;          // ... below it
    logic v1, v2, v3;
    logic last1, last2, last3;       // the input's last phase
    logic [TAG_W-1:0] t1, t2, t3;
    // the rounding constant, added in stage 1 (from `shift` as the input is taken)
    wire signed [63:0] rnd = 64'sd1 <<< (shift - 5'd1);
    // per-layer constants (registered: see the header)
    // bits of z that must equal the sign (signed) / be 0: z[38:7] where masked, and z[63:39]
    // (shift <= 31: always above shift + 7)
    logic [31:0] hi_mask;
    always_ff @(posedge clk) begin
        hi_mask <= 32'(~39'd0 << (32'(shift) + (out_signed ? 32'd7 : 32'd8)) >> 7);
    end

    always_ff @(posedge clk) begin
        // holding register: the input, for its phases 1 .. SHARE-1
        if (take) begin
            h_acc <= in_acc;
            h_mult <= in_mult;
            h_res <= in_res;
            h_tag <= in_tag;
        end
        if (SHARE > 1) begin
            if (iss_v) begin
                h_ph <= (32'(h_ph) + 1 == SHARE) ? '0 : h_ph + 1'b1;
                h_idle <= 32'(h_ph) + 1 == SHARE;
            end
        end else begin
            h_ph <= '0;
            h_idle <= 1'b1;
        end
        // stage 1: the products (the rounding constant added to the narrow residual product:
        // stage 2 then adds two terms, not three)
        for (int j = 0; j < C; j++) begin
            p1_reg[j] <= 64'($signed(src_acc[j*33 +: 33])) * 64'($signed(src_mult[j*32 +: 32]));
            p2_reg[j] <= 64'($signed(src_res[j*9 +: 9])) * $signed({32'd0, res_mult}) + rnd;
        end
        t1 <= src_tag;
        last1 <= 32'(h_ph) + 1 == SHARE;
        // stage 2: the sum, and its bits from the byte's shift rounded down to a multiple of 8
        // (stage 3 then selects the byte among 8 positions, not 31)
        for (int j = 0; j < C; j++) begin
            logic signed [63:0] z;
            z = p1_reg[j] + p2_reg[j];
            z_reg[j] <= z;
            zc_reg[j] <= 15'(z[38:0] >> {shift[4:3], 3'b000});
        end
        t2 <= t1;
        last2 <= last1;
        // stage 3: the byte and the range test side by side
        for (int j = 0; j < C; j++) begin
            logic any1, all1;
            // shift <= 31: the result byte is z[shift + 7 : shift], within z[38:0]
            y3_reg[j] <= 8'(zc_reg[j] >> shift[2:0]);
            neg3_reg[j] <= z_reg[j][63];
            any1 = |z_reg[j][63:39] || |(z_reg[j][38:7] & hi_mask);    // a masked bit is 1
            all1 = &z_reg[j][63:39] && &(z_reg[j][38:7] | ~hi_mask);   // every masked bit is 1
            sat3_reg[j] <= out_signed ? (z_reg[j][63] ? !all1 : any1) : (z_reg[j][63] || any1);
        end
        t3 <= t2;
        last3 <= last2;
        // stage 4: the clamp; the phase's bytes enter out_y from the top
        if (v3) begin
            logic [C*8-1:0] ys;
            for (int j = 0; j < C; j++) begin
                ys[j*8 +: 8] = !sat3_reg[j] ? y3_reg[j]
                             : out_signed ? (neg3_reg[j] ? 8'h80 : 8'h7F)
                             : (neg3_reg[j] ? 8'h00 : 8'hFF);
            end
            out_y <= (LANES*8)'({ys, out_y} >> (C*8));
        end
        out_tag <= t3;
        if (rst) begin
            h_ph <= '0;
            h_idle <= 1'b1;
            v1 <= 1'b0;
            v2 <= 1'b0;
            v3 <= 1'b0;
            out_valid <= 1'b0;
        end else begin
            v1 <= iss_v;
            v2 <= v1;
            v3 <= v2;
            out_valid <= v3 && last3;
        end
    end
endmodule
`default_nettype wire
