`default_nettype none
// dg_mac_array: Tm x Tn array of int8 (weights) x 9-bit (u8 or s8 activations) MACs into Tm int32 accumulators.
//
// One array step per cycle (no stall): stage 1 and 2 multiply-add in the DSPs, stage 3 sums
// each lane's cascades into its accumulator. `in_first` starts a new accumulation, `in_last`
// closes it: the Tm sums come out on `out_valid` three cycles after the last step, with the
// tag given on that step. Accumulation wraps at 32 bits like int32.
//
// Two MACs per DSP48E2 (the UltraScale+ INT8 packing, Xilinx WP486): output lanes 2k and
// 2k+1 share the activation x[n], so one 27x18 signed multiply computes both products,
//     P = ((w[2k] << 18) + w[2k+1]) * x        (the sum is the DSP's 27-bit pre-adder A+D)
// and a pair's products are summed in cascades of CS = 2 or 3 consecutive products (DSP 0:
// P = (A+D)*B + 2^17 (its C port), stage 1; with CS = 3 DSP 2: P = (A+D)*B, stage 1; DSP 1:
// A/D/B registers, P = (A+D)*B + PCIN (+ DSP 2's P on its C port), stage 2):
//     P = H * 2^18 + L + 2^17,   H = sum w[2k] x,   L = sum w[2k+1] x    (over the CS products)
//     H = P >>> 18,   L = P[17:0] - 2^17 (P[17] inverted, sign-extended)
// exact because |L| <= 3 * 256 * 128 = 3 * 2^15 < 2^17 (int8 weights x the 9-bit port's whole
// range -256..255): 0 <= L + 2^17 < 2^18, the low field never spills into the high one. Tn
// splits into as many 3-product cascades as leave an even rest (Tn = 16: 3+3+3+3+2+2), so a
// lane has fewer cascade fields to sum, at the same latency (a cascade of 4 would need x >
// -256 and two more cycles). Stage 3 sums a lane's cascade fields in balanced trees of
// two-input adders, each as wide as its sum needs (one carry chain per adder, a LUT per bit),
// plus the accumulator (with the DSP48E2s: the accumulator is one more DSP48E2 per lane,
// P + (A + D) * 1 + C, so the fields go into three trees whose roots are its A, D and C).
// ceil(Tm/2)*Tn multiplies (Tm = 1: its pair has a zero low weight), and in synthesis Tm
// accumulator DSP48E2s.
// Synthesis (`SYNTHESIS`) instantiates the DSP48E2s (Yosys packs no DSP48E2 pre-adder,
// post-adder, register or cascade itself: it would map the adds and registers to the
// fabric); simulation runs the behavioural model g_model, the same values in the same
// cycles. Tn = 1: one product per cascade, model only.
//
// Depthwise mode (`in_dw`, op OP_DWCONV: lane m multiplies its own weights wd[m][j] by its
// own activations in_xd[m][j], j < TPS taps per step; wd[m][j] is byte j (+ TPS when
// `in_whalf`; Tn = 1: byte 0) of lane m's in_w row where in_won[m][j], else zero, so the
// depthwise weights need no operand port of their own): the pair's two lanes no longer share an
// activation, so each DSP computes ONE product: pair k's multiplies n < TPS take the high
// lane's tap n (w[2k][n] << 18, x[2k][n]), multiplies TPS <= n < 2*TPS the low lane's tap
// n - TPS (w[2k+1][n-TPS], x[2k+1][n-TPS]). The sums are unchanged: a lone high
// product has a zero low half and a lone low product a zero high half, so each lane sums
// exactly its own TPS products, with or without a cascade (TPS = Tn/2: all Tm*Tn/2 multiplies busy). With Tn = 1
// (TPS = 1) the pair's one multiply takes both lanes in packed form and the caller feeds
// one of them per step (the other's weight and activation zero). The conv mode (in_dw = 0)
// is unchanged. The zero weights (a slot off, the unused half of a depthwise product, Tm = 1's
// missing low lane) are not selected in the fabric: the DSP's dynamic INMODE switches its A
// ("A off", INMODE[1]) or D ("D on", INMODE[2]) pre-adder input off, so a slot that is off
// gives a zero product whatever its activation (Tn > 1: in_xd of an off slot is don't-care).
`ifdef SYNTHESIS
`ifndef DG_VENDOR_PRIMITIVES
// The UltraScale+ DSP slice as a black box for the open synthesis front end (Yosys maps it to
// its own DSP48E2 cell; not simulated: the simulation builds use the behavioural model in
// g_model). Vivado defines SYNTHESIS too but has the primitive: its flows define
// DG_VENDOR_PRIMITIVES (package_rtl_ip.tcl), so this declaration does not shadow it.
(* blackbox *)
module DSP48E2
`include "dg_dsp48e2_ports.svh"
endmodule
`endif
`endif

module dg_mac_array
    import dg_pkg::DG_TM, dg_pkg::DG_TN, dg_pkg::DG_DEPTHWISE;
#(
    parameter int TM = DG_TM,    // output channels (accumulators), power of two 1..64
    parameter int TN = DG_TN,    // input channels reduced per step, power of two 1..64
    parameter int TAG_W = 8,     // sideband bits carried from the last step to the output
    parameter int TPS = (TN >= 2) ? TN / 2 : 1,  // depthwise taps per lane and step
    // depthwise: slots j < WHS may be fed in an `in_whalf` step (the caller's kernel has no tap
    // for the others there: they are off, their weight byte is don't-care, so their A operand
    // needs no half select)
    parameter int WHS = TPS,
    // the depthwise mode exists (the config's depthwise feature): 0 leaves in_dw unused, so the
    // DSP operands are the conv mode's only (no per-DSP mode selects)
    parameter bit DW = DG_DEPTHWISE,
    // depthwise by lane parity (LP; TPS <= TN taps): lane m's tap n is DSP n of its pair with
    // weight byte n of its row (A for the high lane, D for the low one: the conv operands, no
    // weight select), one lane of each pair fed per step; the caller gives DSP (k, n < TPS) its
    // B operand whole in in_xd (bits (k*TPS+n)*9: the conv activation in a conv step, the fed
    // lane's tap in a depthwise one), so no conv / depthwise select on B here either
    parameter bit LP = 1'b0
) (
    input  wire                  clk,
    input  wire                  rst,
    input  wire                  in_valid,
    input  wire                  in_first,
    input  wire                  in_last,
    input  wire [TM*TN*8-1:0]    in_w,      // weight [m][n] at bits (m*TN+n)*8, int8
    input  wire [TN*9-1:0]       in_x,      // activation [n] at bits n*9, signed 9-bit
    input  wire                  in_dw,     // depthwise step: in_won / in_whalf / in_xd instead of in_x
    input  wire [TM*TPS-1:0]     in_won,    // depthwise: lane m's tap j weight is used (bit m*TPS+j)
    input  wire                  in_whalf,  // depthwise: tap j's weight is byte j + TPS of the row
    input  wire [TM*TPS*9-1:0]   in_xd,     // depthwise: its activation at bits (m*TPS+j)*9
    input  wire [TAG_W-1:0]      in_tag,
    output logic                 out_valid,
    output logic [TM*32-1:0]     out_acc,   // accumulator [m] at bits m*32, int32
    output logic [TAG_W-1:0]     out_tag
);
    if (TM < 1 || TM > 64 || (TM & (TM - 1)) != 0 || TN < 1 || TN > 64 || (TN & (TN - 1)) != 0) begin : g_chk
        $error("dg_mac_array: TM and TN must be powers of two in 1..64");
    end

    localparam int NP = (TM + 1) / 2;     // lane pairs: one packed multiply per pair and n
    // cascades per pair: N3 of three products, then N2 of two (Tn = 1: one of one); N3 is even
    // so that the rest is even
    localparam int N3 = (TN >= 2) ? 2 * (TN / 6) : 0;
    localparam int N2 = (TN >= 2) ? (TN - 3 * N3) / 2 : 0;
    localparam int NC = (TN >= 2) ? N3 + N2 : 1;
    // cascade c's product count and its first product
    function automatic int csz(input int c);
        return (TN < 2) ? 1 : (c < N3) ? 3 : 2;
    endfunction
    function automatic int cst(input int c);
        return (c < N3) ? 3 * c : 3 * N3 + 2 * (c - N3);
    endfunction
    // cascade c's second and third product (its first where it has fewer)
    function automatic int c1(input int c);
        return cst(c) + ((csz(c) >= 2) ? 1 : 0);
    endfunction
    function automatic int c2(input int c);
        return cst(c) + ((csz(c) == 3) ? 2 : 0);
    endfunction
    // the width of a signed sum of np products |w x|, -2^15 + 2^7 .. 2^15 (int8 x 9-bit)
    function automatic int sw(input int np);
        return 1 + $clog2(np * 32768 + 1);
    endfunction
    localparam int PW = 38;               // packed product / cascade sum: |P| < 2^35
    // every cascade sum carries + 2^17 (DSP 0's C): P = H * 2^18 + (L + 2^17) with 0 <= L + 2^17
    // < 2^18, so the high field is P[PW-1:18] exactly and the low one P[17:0] - 2^17 (its top
    // bit inverted): no sign-correction bits
    localparam logic [47:0] OFS = 48'h20000;

    // the DSP operands of pair k, product n (pre-adder inputs A, D and B), from the ports, and
    // which of A / D enter the pre-adder (`op_aoff`, `op_don`: the DSP's dynamic INMODE[1] "A
    // off" and INMODE[2] "D on", so zeroing an operand costs no fabric select): conv steps take
    // A = w[2k][n] << 18, D = w[2k+1][n]; a depthwise slot's unused half, an off tap and the
    // missing low lane of Tm = 1 are switched off. The operand muxes are left only where a
    // depthwise tap takes another byte of the row than the conv step (the `in_whalf` half).
    logic signed [26:0] op_hi [NP][TN];
    logic signed [26:0] op_lo [NP][TN];
    logic signed [8:0] op_x [NP][TN];
    logic op_aoff [NP][TN];
    logic op_don [NP][TN];
    wire dw_on = DW && in_dw;
    always_comb begin
        for (int k = 0; k < NP; k++) begin
            for (int n = 0; n < TN; n++) begin
                logic signed [26:0] w_hi, w_lo; // pre-adder operands (A, D)
                logic signed [8:0] xv;
                logic aoff, don;
                w_hi = 27'($signed(in_w[((2*k)*TN+n)*8 +: 8])) <<< 18;
                w_lo = (2*k + 1 < TM) ? 27'($signed(in_w[((2*k+1)*TN+n)*8 +: 8])) : 27'sd0;
                xv = $signed(in_x[n*9 +: 9]);
                aoff = 1'b0;
                don = (2*k + 1 < TM);
                if (LP && n < TPS)
                    xv = $signed(in_xd[(k*TPS + ((n < TPS) ? n : 0))*9 +: 9]);
                if (dw_on && LP) begin          // lane 2k's (A) or 2k+1's (D) tap n, if fed
                    aoff = !(n < TPS && in_won[(2*k)*TPS + ((n < TPS) ? n : 0)]);
                    don = n < TPS && 2*k + 1 < TM
                          && in_won[((2*k + 1 < TM) ? 2*k + 1 : 0)*TPS + ((n < TPS) ? n : 0)];
                end else if (dw_on) begin
                    aoff = 1'b1;
                    don = 1'b0;
                    if (TN == 1) begin              // both lanes packed; one of them is zero
                        aoff = !in_won[(2*k)*TPS];
                        don = (2*k + 1 < TM) && in_won[(2*k+1)*TPS];
                        xv = $signed(in_xd[(2*k)*TPS*9 +: 9])
                           | ((2*k + 1 < TM) ? $signed(in_xd[(2*k+1)*TPS*9 +: 9]) : 9'sd0);
                    end else if (n < TPS) begin     // the high lane's tap n: byte n (+ TPS)
                        aoff = !in_won[(2*k)*TPS+n];
                        if (in_whalf && n < WHS)
                            w_hi = 27'($signed(in_w[((2*k)*TN+n+TPS)*8 +: 8])) <<< 18;
                        xv = $signed(in_xd[((2*k)*TPS+n)*9 +: 9]);
                    end else if (n < 2*TPS && 2*k + 1 < TM) begin  // the low lane's tap n - TPS
                        don = in_won[(2*k+1)*TPS+n-TPS];
                        if (!in_whalf || n - TPS >= WHS)
                            w_lo = 27'($signed(in_w[((2*k+1)*TN+n-TPS)*8 +: 8]));
                        xv = $signed(in_xd[((2*k+1)*TPS+n-TPS)*9 +: 9]);
                    end
                end
                op_hi[k][n] = w_hi;
                op_lo[k][n] = w_lo;
                op_x[k][n] = xv;
                op_aoff[k][n] = aoff;
                op_don[k][n] = don;
            end
        end
    end

    // stages 1 and 2: cascade c of pair k sums products cst(c) .. cst(c) + csz(c) - 1 (cs[k][c])
    logic signed [PW-1:0] cs [NP][NC];
`ifdef SYNTHESIS
    localparam bit PRIM = (TN >= 2);       // Yosys packs no DSP48E2 adder or register itself
`else
    localparam bit PRIM = 1'b0;
`endif
    if (PRIM) begin : g_dsp
        // DSP48E2 (UG579): DSP 0 = (D + A) * B + C (C = OFS) into its P register (stage 1),
        // DSP 2 (three-product cascades) = (D + A) * B into its P register (stage 1), DSP 1 =
        // its A, D, B and INMODE registers (stage 1), (D + A) * B + PCIN (+ C = DSP 2's P) into
        // its P register (stage 2). INMODE {B2, add, D on, A off, A2}: AD = (D on ? D : 0) +
        // (A off ? 0 : A2) (A2 = A when AREG = 0); OPMODE W = 0 or C (DSP 1 of three), Z = C
        // (DSP 0) / PCIN (DSP 1) / 0 (DSP 2), Y = M, X = M; ALUMODE 0000: Z + W + X + Y. Same
        // values, same cycles as the model below.
        for (genvar k = 0; k < NP; k++) begin : g_k
            for (genvar c = 0; c < NC; c++) begin : g_c
                localparam int SZ = csz(c);
                localparam int ST = cst(c);
                wire [47:0] pco [3], pp [3];
                for (genvar j = 0; j < SZ; j++) begin : g_j
                    localparam bit R = (j == 1);   // DSP 1: input registers
                    localparam logic [8:0] OPM = (j == 0) ? 9'b00_011_01_01
                                               : (j == 2) ? 9'b00_000_01_01
                                               : (SZ == 3) ? 9'b11_001_01_01 : 9'b00_001_01_01;
                    DSP48E2 #(.AREG(R), .ACASCREG(R), .BREG(R), .BCASCREG(R), .DREG(R), .ADREG(0),
                              .MREG(0), .PREG(1), .CREG(0), .INMODEREG(R), .OPMODEREG(0),
                              .ALUMODEREG(0), .CARRYINREG(0), .CARRYINSELREG(0),
                              .AMULTSEL("AD"), .BMULTSEL("B"), .PREADDINSEL("A"),
                              .USE_MULT("MULTIPLY"), .USE_SIMD("ONE48"))
                    dsp (.CLK(clk), .A(30'($signed(op_hi[k][ST+j]))), .D(op_lo[k][ST+j]),
                         .B(18'($signed(op_x[k][ST+j]))),
                         .C(j == 0 ? OFS : (j == 1 && SZ == 3) ? pp[2] : 48'd0),
                         .PCIN(j == 1 ? pco[0] : 48'd0),
                         .ACIN(30'd0), .BCIN(18'd0), .CARRYCASCIN(1'b0), .MULTSIGNIN(1'b0),
                         .CARRYIN(1'b0), .CARRYINSEL(3'b000),
                         .INMODE({2'b00, op_don[k][ST+j], op_aoff[k][ST+j], 1'b0}),
                         .OPMODE(OPM), .ALUMODE(4'b0000),
                         .CEA1(1'b1), .CEA2(1'b1), .CEAD(1'b1), .CEALUMODE(1'b1), .CEB1(1'b1),
                         .CEB2(1'b1), .CEC(1'b1), .CECARRYIN(1'b1), .CECTRL(1'b1), .CED(1'b1),
                         .CEINMODE(1'b1), .CEM(1'b1), .CEP(1'b1), .RSTA(1'b0),
                         .RSTALLCARRYIN(1'b0), .RSTALUMODE(1'b0), .RSTB(1'b0), .RSTC(1'b0),
                         .RSTCTRL(1'b0), .RSTD(1'b0), .RSTINMODE(1'b0), .RSTM(1'b0), .RSTP(1'b0),
                         .PCOUT(pco[j]), .P(pp[j]));
                end
                assign cs[k][c] = pp[1][PW-1:0];
            end
        end
    end else begin : g_model
        // stage 1: the first (and with three, the third) product of every cascade (DSP 0 / 2:
        // multiply, P register) and the second product's operands (DSP 1's A, D and B input
        // registers); stage 2: the cascade sums (DSP 1: P = (A + D) * B + PCIN + C, P register)
        logic signed [PW-1:0] p0_reg [NP][NC], p2_reg [NP][NC];
        logic signed [26:0] hi1_reg [NP][NC], lo1_reg [NP][NC];
        logic signed [8:0] x1_reg [NP][NC];
        logic signed [PW-1:0] cs_reg [NP][NC];
        logic signed [26:0] ga [NP][TN], gd [NP][TN];   // the pre-adder inputs after INMODE
        always_comb begin
            for (int k = 0; k < NP; k++) begin
                for (int n = 0; n < TN; n++) begin
                    ga[k][n] = op_aoff[k][n] ? 27'sd0 : op_hi[k][n];
                    gd[k][n] = op_don[k][n] ? op_lo[k][n] : 27'sd0;
                end
            end
        end
        always_ff @(posedge clk) begin
            for (int k = 0; k < NP; k++) begin
                for (int c = 0; c < NC; c++) begin
                    p0_reg[k][c] <= PW'(27'(ga[k][cst(c)] + gd[k][cst(c)]) * op_x[k][cst(c)]) + PW'(OFS);
                    p2_reg[k][c] <= (csz(c) == 3) ? PW'(27'(ga[k][c2(c)] + gd[k][c2(c)]) * op_x[k][c2(c)]) : '0;
                    hi1_reg[k][c] <= ga[k][c1(c)];
                    lo1_reg[k][c] <= gd[k][c1(c)];
                    x1_reg[k][c] <= op_x[k][c1(c)];
                    cs_reg[k][c] <= (csz(c) >= 2) ? PW'(27'(hi1_reg[k][c] + lo1_reg[k][c]) * x1_reg[k][c])
                                                    + p0_reg[k][c] + p2_reg[k][c] : p0_reg[k][c];
                end
            end
        end
        assign cs = cs_reg;
    end

    logic s1_valid, s1_first, s1_last;
    logic [TAG_W-1:0] s1_tag;
    logic s2_valid, s2_first, s2_last;
    logic [TAG_W-1:0] s2_tag;
    // stage 3: each lane's NC cascade fields summed into the accumulator, in NR trees (with the
    // DSP48E2s, PRIM: up to three, the accumulator DSP's A, D and C; the model: one). Tree q
    // sums the GN(q) fields from GS(q) on in heap order (node j < GN = node 2j + node 2j+1,
    // leaves GN .. 2GN-1 = the fields, root node 1), each node kept apart so that it is one
    // two-input adder (a LUT per bit) as wide as its sum needs (sw of its product count).
    localparam int NR = PRIM ? ((NC < 3) ? NC : 3) : 1;
    function automatic int gn(input int q);
        return NC / NR + ((q < NC % NR) ? 1 : 0);
    endfunction
    function automatic int gs(input int q);
        return q * (NC / NR) + ((q < NC % NR) ? q : NC % NR);
    endfunction
    // products under node j of a tree of g fields from field f (its leaves below it, level t)
    function automatic int np_node(input int g, input int f, input int j);
        int n = 0;
        for (int t = 0; t < 8; t++)
            for (int i = 0; i < (1 << t); i++)
                if ((j << t) + i >= g && (j << t) + i < 2 * g) n += csz(f + (j << t) + i - g);
        return n;
    endfunction
    logic signed [47:0] root [TM][NR];
    for (genvar m = 0; m < TM; m++) begin : g_m
        for (genvar q = 0; q < NR; q++) begin : g_q
            localparam int GN = gn(q);
            localparam int GS = gs(q);
            for (genvar j = 2 * GN - 1; j >= 1; j--) begin : g_n
                localparam int W = sw(np_node(GN, GS, j));
                (* keep *) logic signed [W-1:0] v;
                if (j >= GN) begin : g_leaf
                    if (m % 2 == 1) begin : g_lo    // low lane: P[17:0] - 2^17
                        assign v = W'($signed({~cs[m/2][GS+j-GN][17], cs[m/2][GS+j-GN][16:0]}));
                    end else begin : g_hi           // high lane: P >>> 18
                        assign v = W'($signed(cs[m/2][GS+j-GN][PW-1:18]));
                    end
                end else begin : g_add
                    assign v = W'(g_n[2*j].v) + W'(g_n[2*j+1].v);
                end
            end
            assign root[m][q] = 48'(g_n[1].v);
        end
    end

    always_ff @(posedge clk) begin
        s1_first <= in_first;
        s1_last <= in_last;
        s1_tag <= in_tag;
        s2_first <= s1_first;
        s2_last <= s1_last;
        s2_tag <= s1_tag;
        if (s2_valid) out_tag <= s2_tag;
        if (rst) begin
            s1_valid <= 1'b0;
            s2_valid <= 1'b0;
            out_valid <= 1'b0;
        end else begin
            s1_valid <= in_valid;
            s2_valid <= s1_valid;
            out_valid <= s2_valid && s2_last;
        end
    end
    if (PRIM) begin : g_acc
        // per lane a DSP48E2 adds the NR tree roots (A + D, B = 1, and C: OPMODE W = C) to its P
        // register, the accumulator: Z = P (OPMODE Z = 010), or 0 on a first step (000); a cycle
        // without a step switches A and D off (INMODE) and C (W = 0) and keeps P. out_acc is
        // P's low 32 bits (int32 wrap: the low bits of the 48-bit sum)
        for (genvar m = 0; m < TM; m++) begin : g_m
            wire [47:0] pa;
            wire [26:0] da = 27'(root[m][0]);
            wire [26:0] dd = (NR >= 2) ? 27'(root[m][NR >= 2 ? 1 : 0]) : 27'd0;
            wire [47:0] dc = (NR >= 3) ? root[m][NR >= 3 ? 2 : 0] : 48'd0;
            DSP48E2 #(.AREG(0), .ACASCREG(0), .BREG(0), .BCASCREG(0), .DREG(0), .ADREG(0),
                      .MREG(0), .PREG(1), .CREG(0), .INMODEREG(0), .OPMODEREG(0),
                      .ALUMODEREG(0), .CARRYINREG(0), .CARRYINSELREG(0),
                      .AMULTSEL("AD"), .BMULTSEL("B"), .PREADDINSEL("A"),
                      .USE_MULT("MULTIPLY"), .USE_SIMD("ONE48"))
            acc (.CLK(clk), .A(30'($signed(da))), .D(dd), .B(18'd1), .C(dc), .PCIN(48'd0),
                 .ACIN(30'd0), .BCIN(18'd0), .CARRYCASCIN(1'b0), .MULTSIGNIN(1'b0),
                 .CARRYIN(1'b0), .CARRYINSEL(3'b000),
                 .INMODE({2'b00, s2_valid && NR >= 2, !s2_valid, 1'b0}),
                 .OPMODE({(s2_valid && NR >= 3) ? 2'b11 : 2'b00,
                          (s2_valid && s2_first) ? 3'b000 : 3'b010, 2'b01, 2'b01}),
                 .ALUMODE(4'b0000),
                 .CEA1(1'b1), .CEA2(1'b1), .CEAD(1'b1), .CEALUMODE(1'b1), .CEB1(1'b1),
                 .CEB2(1'b1), .CEC(1'b1), .CECARRYIN(1'b1), .CECTRL(1'b1), .CED(1'b1),
                 .CEINMODE(1'b1), .CEM(1'b1), .CEP(1'b1), .RSTA(1'b0),
                 .RSTALLCARRYIN(1'b0), .RSTALUMODE(1'b0), .RSTB(1'b0), .RSTC(1'b0),
                 .RSTCTRL(1'b0), .RSTD(1'b0), .RSTINMODE(1'b0), .RSTM(1'b0), .RSTP(1'b0),
                 .P(pa));
            assign out_acc[m*32 +: 32] = pa[31:0];
        end
    end else begin : g_accm
        logic signed [31:0] acc_reg [TM];
        always_ff @(posedge clk) begin
            if (s2_valid) begin
                for (int m = 0; m < TM; m++)
                    acc_reg[m] <= (s2_first ? 32'sd0 : acc_reg[m]) + 32'(root[m][0]);
            end
        end
        for (genvar m = 0; m < TM; m++) begin : g_m
            assign out_acc[m*32 +: 32] = acc_reg[m];
        end
    end
`ifndef SYNTHESIS
    // the caller's promise behind WHS: no slot j >= WHS is fed in an in_whalf step
    always_ff @(posedge clk)
        if (in_valid && dw_on && in_whalf && TN > 1)
            for (int m = 0; m < TM; m++)
                for (int j = WHS; j < TPS; j++)
                    if (in_won[m*TPS+j]) $error("dg_mac_array: lane %0d slot %0d fed in a whalf step (WHS %0d)", m, j, WHS);
`endif
endmodule
`default_nettype wire
