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
    // the operands of the phase issued this cycle: an array indexed by h_ph (a SHARE-way
    // mux per bit, one LUT6 for SHARE = 4; a compare per phase made it two)
    logic [C*33-1:0] src_acc;
    logic [C*32-1:0] src_mult;
    logic [C*9-1:0]  src_res;
    logic [C*33-1:0] ph_acc [2**PHW];
    logic [C*32-1:0] ph_mult [2**PHW];
    logic [C*9-1:0]  ph_res [2**PHW];
    always_comb begin
        for (int p = 0; p < 2**PHW; p++) begin
            int q;
            q = (p < SHARE) ? p : 0;     // (h_ph < SHARE)
            ph_acc[p] = in_acc[C*33-1:0];
            ph_mult[p] = in_mult[C*32-1:0];
            ph_res[p] = in_res[C*9-1:0];
            if (q > 0) begin
                ph_acc[p] = h_acc[q*C*33 +: C*33];
                ph_mult[p] = h_mult[q*C*32 +: C*32];
                ph_res[p] = h_res[q*C*9 +: C*9];
            end
        end
        src_acc = ph_acc[h_ph];
        src_mult = ph_mult[h_ph];
        src_res = ph_res[h_ph];
    end
    wire [TAG_W-1:0] src_tag = h_idle ? in_tag : h_tag;

    logic signed [63:0] z_reg [C];
    logic [14:0] zc_reg [C];         // stage 2: z[38:0] >> (shift & 24), the byte's coarse shift
    logic [7:0] y3_reg [C];          // stage 3: the byte (z >>> shift)[7:0] ...
    logic [C-1:0] sat3_reg;          // ... out of the clamp's range ...
    logic [C-1:0] neg3_reg;          // ... below it
    logic v1, v2, v3;
    logic last1, last2, last3;       // the input's last phase
    logic [TAG_W-1:0] t1, t2, t3;
    // the rounding constant, added in stage 1 (from `shift` as the input is taken)
    wire signed [47:0] rnd = 48'sd1 <<< (shift - 5'd1);

    // Stages 1-2: z = acc * mult + res * res_mult + rnd as a chain of six 27x18 products (one
    // DSP48E2 each, a 48-bit post-adder each) on 17-bit operand pieces: acc = a1 * 2^17 + a0,
    // mult = b1 * 2^17 + b0, res_mult = r1 * 2^17 + r0 (a0, b0, r0 the unsigned low 17 bits,
    // a1 / b1 signed, r1 unsigned):
    //   e1 = res * r0 + rnd      d1 = a0 * b0 + e1                  -> z[16:0]  = d1[16:0]
    //   e2 = res * r1 + (d1 >>> 17)  [registered: end of stage 1]
    //   d2 = a1 * b0 + e2        d3 = a0 * b1 + d2                  -> z[33:17] = d3[16:0]
    //   d4 = a1 * b1 + (d3 >>> 17)                                  -> z[63:34] = d4[29:0]
    // Every partial sum stays within 48 bits (|d1| < 2^35, |d3| < 2^33, |d4| < 2^30 + 2^16),
    // so the sums run in the DSPs' post-adders and cascades instead of fabric carry chains
    // (Yosys packs no DSP48E2 post-adder itself; a 33 x 32 product and its sums otherwise
    // take ~240 LUTs per lane). Stage 2's operands are the DSPs' input registers.
    logic [C*48-1:0] d1_p, d3_p, d4_p;        // the chain's P outputs used outside it
    logic [16:0] lo_reg [C];                  // z[16:0], from stage 1
    // per-layer constants (registered: see the header)
    // bits of z that must equal the sign (signed) / be 0: z[38:7] where masked, and z[63:39]
    // (shift <= 31: always above shift + 7)
    logic [31:0] hi_mask;
    always_ff @(posedge clk) begin
        hi_mask <= 32'(~39'd0 << (32'(shift) + (out_signed ? 32'd7 : 32'd8)) >> 7);
    end

    // the chain's operands per lane: 30-bit A / 18-bit B port values (A's low 27 bits and B
    // are the signed multiplier inputs)
    logic [29:0] op_a0 [C], op_a1 [C], op_r [C];
    logic [17:0] op_b0 [C], op_b1 [C], op_r0 [C], op_r1 [C];
    always_comb begin
        for (int j = 0; j < C; j++) begin
            op_a0[j] = {13'd0, src_acc[j*33 +: 17]};
            op_a1[j] = 30'($signed(src_acc[j*33 + 17 +: 16]));
            op_r[j] = 30'($signed(src_res[j*9 +: 9]));
            op_b0[j] = {1'b0, src_mult[j*32 +: 17]};
            op_b1[j] = 18'($signed(src_mult[j*32 + 17 +: 15]));
            op_r0[j] = {1'b0, res_mult[16:0]};
            op_r1[j] = {3'b000, res_mult[31:17]};
        end
    end
`ifdef SYNTHESIS
    // The chain as DSP48E2 cells (UG579; the black box of dg_mac_array.sv): per lane
    // e1 (Z = C: rnd), d1 (Z = PCIN), e2 (Z = C: d1 >>> 17 wired, P register), then d2, d3,
    // d4 with A / B input registers (stage 2; Z = PCIN, PCIN, C: d3 >>> 17 wired). OPMODE W = 0,
    // Y = X = M; ALUMODE 0000: Z + M; INMODE 0 (A2, B2; the pre-adder passes A). Same values in
    // the same cycles as the model below.
    for (genvar j = 0; j < C; j++) begin : g_dsp
        wire [47:0] pc [6], pp [6];
        wire [29:0] a_in [6];
        wire [17:0] b_in [6];
        wire [47:0] c_in [6];
        assign a_in[0] = op_r[j];  assign b_in[0] = op_r0[j];  assign c_in[0] = 48'(rnd);
        assign a_in[1] = op_a0[j]; assign b_in[1] = op_b0[j];  assign c_in[1] = 48'd0;
        assign a_in[2] = op_r[j];  assign b_in[2] = op_r1[j];
        assign c_in[2] = 48'($signed(pp[1][47:17]));
        assign a_in[3] = op_a1[j]; assign b_in[3] = op_b0[j];  assign c_in[3] = 48'd0;
        assign a_in[4] = op_a0[j]; assign b_in[4] = op_b1[j];  assign c_in[4] = 48'd0;
        assign a_in[5] = op_a1[j]; assign b_in[5] = op_b1[j];
        assign c_in[5] = 48'($signed(pp[4][47:17]));
        for (genvar k = 0; k < 6; k++) begin : g_k
            localparam int IR = (k >= 3) ? 1 : 0;               // stage 2: input registers
            localparam logic [2:0] ZM = (k == 0 || k == 2 || k == 5) ? 3'b011 : 3'b001;
            DSP48E2 #(.AREG(IR), .ACASCREG(IR), .BREG(IR), .BCASCREG(IR), .DREG(0), .ADREG(0),
                      .MREG(0), .PREG(k == 2 ? 1 : 0), .CREG(0), .INMODEREG(0), .OPMODEREG(0),
                      .ALUMODEREG(0), .CARRYINREG(0), .CARRYINSELREG(0),
                      .AMULTSEL("AD"), .BMULTSEL("B"), .PREADDINSEL("A"),
                      .USE_MULT("MULTIPLY"), .USE_SIMD("ONE48"))
            dsp (.CLK(clk), .A(a_in[k]), .D(27'd0), .B(b_in[k]), .C(c_in[k]),
                 .PCIN((k == 1 || k == 3 || k == 4) ? pc[k-1] : 48'd0),
                 .ACIN(30'd0), .BCIN(18'd0), .CARRYCASCIN(1'b0), .MULTSIGNIN(1'b0),
                 .CARRYIN(1'b0), .CARRYINSEL(3'b000), .INMODE(5'b00000),
                 .OPMODE({2'b00, ZM, 2'b01, 2'b01}), .ALUMODE(4'b0000),
                 .CEA1(1'b1), .CEA2(1'b1), .CEAD(1'b1), .CEALUMODE(1'b1), .CEB1(1'b1),
                 .CEB2(1'b1), .CEC(1'b1), .CECARRYIN(1'b1), .CECTRL(1'b1), .CED(1'b1),
                 .CEINMODE(1'b1), .CEM(1'b1), .CEP(1'b1), .RSTA(1'b0),
                 .RSTALLCARRYIN(1'b0), .RSTALUMODE(1'b0), .RSTB(1'b0), .RSTC(1'b0),
                 .RSTCTRL(1'b0), .RSTD(1'b0), .RSTINMODE(1'b0), .RSTM(1'b0), .RSTP(1'b0),
                 .PCOUT(pc[k]), .P(pp[k]));
        end
        assign d1_p[j*48 +: 48] = pp[1];
        assign d3_p[j*48 +: 48] = pp[4];
        assign d4_p[j*48 +: 48] = pp[5];
    end
`else
    // behavioural model of the chain (the simulation builds)
    logic signed [47:0] e2_reg [C];
    logic [29:0] a0_q [C], a1_q [C];
    logic [17:0] b0_q [C], b1_q [C];
    always_ff @(posedge clk) begin
        for (int j = 0; j < C; j++) begin
            e2_reg[j] <= 48'($signed(op_r[j][26:0]) * $signed(op_r1[j]))
                       + 48'($signed(d1_p[j*48 + 17 +: 31]));
            a0_q[j] <= op_a0[j];
            a1_q[j] <= op_a1[j];
            b0_q[j] <= op_b0[j];
            b1_q[j] <= op_b1[j];
        end
    end
    always_comb begin
        for (int j = 0; j < C; j++) begin
            logic signed [47:0] e1, d2;
            e1 = 48'($signed(op_r[j][26:0]) * $signed(op_r0[j])) + rnd;
            d1_p[j*48 +: 48] = 48'($signed(op_a0[j][26:0]) * $signed(op_b0[j])) + e1;
            d2 = 48'($signed(a1_q[j][26:0]) * $signed(b0_q[j])) + e2_reg[j];
            d3_p[j*48 +: 48] = 48'($signed(a0_q[j][26:0]) * $signed(b1_q[j])) + d2;
            d4_p[j*48 +: 48] = 48'($signed(a1_q[j][26:0]) * $signed(b1_q[j]))
                             + 48'($signed(d3_p[j*48 + 17 +: 31]));
        end
    end
`endif

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
        // stage 1: the chain's first half (above)
        for (int j = 0; j < C; j++)
            lo_reg[j] <= d1_p[j*48 +: 17];
        t1 <= src_tag;
        last1 <= 32'(h_ph) + 1 == SHARE;
        // stage 2: z from the chain, and its bits from the byte's shift rounded down to a
        // multiple of 8 (stage 3 then selects the byte among 8 positions, not 31)
        for (int j = 0; j < C; j++) begin
            logic signed [63:0] z;
            z = {d4_p[j*48 +: 30], d3_p[j*48 +: 17], lo_reg[j]};
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
