`default_nettype none
// dg_requant: per-lane requantization y = clamp((acc*mult + res*res_mult + 2^(shift-1)) >>> shift, lo, hi).
//
// acc already includes the bias (the caller adds it, or not for residual-only pixels).
// int64 arithmetic wraps like numpy int64 (the quantizer proves |z| < 2^62). Three
// pipeline stages, no stall; the tag rides along.
module dg_requant
    import dg_pkg::DG_TM;
#(
    parameter int LANES = DG_TM,     // lanes in parallel (tm), >= 1
    parameter int TAG_W = 8      // sideband bits
) (
    input  wire                  clk,
    input  wire                  rst,
    input  wire                  in_valid,
    input  wire [LANES*33-1:0]   in_acc,     // acc + bias per lane, signed 33-bit
    input  wire [LANES*32-1:0]   in_mult,    // per lane, a signed int32 multiplier (formats: any param word is valid)
    input  wire [LANES*9-1:0]    in_res,     // residual per lane, signed 9-bit (0 without)
    input  wire [31:0]           res_mult,   // 0 <= res_mult < 2^31
    input  wire [4:0]            shift,      // 1..31
    input  wire                  out_signed, // clamp -128..127 (else 0..255)
    input  wire [TAG_W-1:0]      in_tag,
    output logic                 out_valid,
    output logic [LANES*8-1:0]   out_y,      // result bytes (two's complement if signed)
    output logic [TAG_W-1:0]     out_tag
);
    if (LANES < 1) begin : g_chk
        $error("dg_requant: LANES must be >= 1");
    end
    logic signed [63:0] p1_reg [LANES];
    logic signed [63:0] p2_reg [LANES];
    logic signed [63:0] z_reg [LANES];
    logic v1, v2;
    logic [TAG_W-1:0] t1, t2;
    wire signed [63:0] rnd = 64'sd1 <<< (shift - 5'd1);

    always_ff @(posedge clk) begin
        for (int l = 0; l < LANES; l++) begin
            p1_reg[l] <= 64'($signed(in_acc[l*33 +: 33])) * 64'($signed(in_mult[l*32 +: 32]));
            p2_reg[l] <= 64'($signed(in_res[l*9 +: 9])) * $signed({32'd0, res_mult});
        end
        t1 <= in_tag;
        for (int l = 0; l < LANES; l++) z_reg[l] <= p1_reg[l] + p2_reg[l] + rnd;
        t2 <= t1;
        for (int l = 0; l < LANES; l++) begin
            logic signed [63:0] y;
            y = z_reg[l] >>> shift;
            if (out_signed) begin
                if (y > 64'sd127) y = 64'sd127;
                if (y < -64'sd128) y = -64'sd128;
            end else begin
                if (y > 64'sd255) y = 64'sd255;
                if (y < 64'sd0) y = 64'sd0;
            end
            out_y[l*8 +: 8] <= y[7:0];
        end
        out_tag <= t2;
        if (rst) begin
            v1 <= 1'b0;
            v2 <= 1'b0;
            out_valid <= 1'b0;
        end else begin
            v1 <= in_valid;
            v2 <= v1;
            out_valid <= v2;
        end
    end
endmodule
`default_nettype wire
