`default_nettype none
// dg_mac_array: Tm x Tn array of int8 (weights) x 9-bit (u8 or s8 activations) MACs into Tm int32 accumulators.
//
// One array step per cycle (no stall): products (stage 1), per-output adder trees
// (stage 2), accumulate (stage 3). `in_first` starts a new accumulation, `in_last`
// closes it: the Tm sums come out on `out_valid` three cycles after the last step,
// with the tag given on that step. Accumulation wraps at 32 bits like int32.
//
// Two MACs per DSP48E2 (the UltraScale+ INT8 packing, Xilinx WP486): output lanes 2k and
// 2k+1 share the activation x[n], so one 27x18 signed multiply computes both products,
//     P = ((w[2k] << 18) + w[2k+1]) * x        (the sum is the DSP's 27-bit pre-adder A+D)
//     lo = sign-extended P[17:0]               = w[2k+1] * x
//     hi = (P - lo) >>> 18 = (P >>> 18) + P[17] = w[2k] * x   (the sign correction)
// exact because |w * x| <= 128 * 256 < 2^17 (int8 x signed 9-bit). Stage 1 registers P
// (36 bits per pair: the DSP's P register). Stage 2 sums each lane's Tn products in a
// balanced tree of two-input adders (one carry chain per adder: a LUT per bit, where one
// Tn-input sum would be mapped as full-adder compressors, two LUTs per bit); a high lane's
// Tn correction bits P[17] are the carry-ins of its Tn - 1 tree adders, the last one is
// registered (`cor_reg`) and is the carry-in of the accumulate. ceil(Tm/2)*Tn multiplies
// (Tm = 1: its pair has a zero low weight).
//
// Depthwise mode (`in_dw`, op OP_DWCONV: lane m multiplies its own weights wd[m][j] by its
// own activations in_xd[m][j], j < TPS taps per step; wd[m][j] is byte j (+ TPS when
// `in_whalf`; Tn = 1: byte 0) of lane m's in_w row where in_won[m][j], else zero, so the
// depthwise weights need no operand port of their own): the pair's two lanes no longer share an
// activation, so each DSP computes ONE product: pair k's multiplies n < TPS take the high
// lane's tap n (w[2k][n] << 18, x[2k][n]), multiplies TPS <= n < 2*TPS the low lane's tap
// n - TPS (w[2k+1][n-TPS], x[2k+1][n-TPS]). The stage-2 trees are unchanged: a lone high
// product has a zero low half and a lone low product a zero high half, so each lane sums
// exactly its own TPS products (TPS = Tn/2: all Tm*Tn/2 multiplies busy). With Tn = 1
// (TPS = 1) the pair's one multiply takes both lanes in packed form and the caller feeds
// one of them per step (the other's weight and activation zero). The conv mode (in_dw = 0)
// is unchanged.
module dg_mac_array
    import dg_pkg::DG_TM, dg_pkg::DG_TN;
#(
    parameter int TM = DG_TM,    // output channels (accumulators), power of two 1..64
    parameter int TN = DG_TN,    // input channels reduced per step, power of two 1..64
    parameter int TAG_W = 8,     // sideband bits carried from the last step to the output
    parameter int TPS = (TN >= 2) ? TN / 2 : 1   // depthwise taps per lane and step
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
    localparam int SUM_W = 17 + $clog2(TN) + 1;

    localparam int NP = (TM + 1) / 2;     // lane pairs: one packed multiply per pair and n
    localparam int PW = 36;               // packed product width: |P| < 2^34 (27x9 bits)

    // stage 1: packed products
    logic signed [PW-1:0] prod_reg [NP][TN];
    logic s1_valid, s1_first, s1_last;
    logic [TAG_W-1:0] s1_tag;
    // stage 2: lane sums (a high lane's last correction bit apart, in cor_reg)
    logic signed [SUM_W-1:0] sum_reg [TM];
    logic [TM-1:0] cor_reg;
    // the stage-2 trees: node j of lane m (heap order: leaves TN .. 2TN-1 = the products,
    // node j < TN = node 2j + node 2j+1 + carry-in: the correction bit of product j - 1 for
    // a high lane); kept apart so that every node is one two-input adder
    (* keep *) logic signed [SUM_W-1:0] tree [TM][2*TN];
    logic [TN-1:0] cbit [TM];
    always_comb begin
        for (int m = 0; m < TM; m++) begin
            tree[m][0] = '0;
            for (int n = 0; n < TN; n++) begin
                if (m % 2 == 1) begin       // low product: P[17:0], sign-extended
                    tree[m][TN + n] = SUM_W'($signed(prod_reg[m/2][n][17:0]));
                    cbit[m][n] = 1'b0;
                end else begin              // high product: (P >>> 18) + P[17]
                    tree[m][TN + n] = SUM_W'($signed(prod_reg[m/2][n][PW-1:18]));
                    cbit[m][n] = prod_reg[m/2][n][17];
                end
            end
            for (int j = TN - 1; j >= 1; j--)
                tree[m][j] = tree[m][2*j] + tree[m][2*j+1] + SUM_W'(cbit[m][j-1]);
        end
    end
    logic s2_valid, s2_first, s2_last;
    logic [TAG_W-1:0] s2_tag;
    // stage 3: accumulators
    logic signed [31:0] acc_reg [TM];

    always_ff @(posedge clk) begin
        for (int k = 0; k < NP; k++) begin
            for (int n = 0; n < TN; n++) begin
                logic signed [26:0] w_hi, w_lo, ad; // pre-adder operands (A, D) and sum
                logic signed [8:0] xv;
                w_hi = 27'($signed(in_w[((2*k)*TN+n)*8 +: 8])) <<< 18;
                w_lo = (2*k + 1 < TM) ? 27'($signed(in_w[((2*k+1)*TN+n)*8 +: 8])) : 27'sd0;
                xv = $signed(in_x[n*9 +: 9]);
                if (in_dw) begin
                    w_hi = 27'sd0;
                    w_lo = 27'sd0;
                    xv = 9'sd0;
                    if (TN == 1) begin              // both lanes packed; one of them is zero
                        if (in_won[(2*k)*TPS])
                            w_hi = 27'($signed(in_w[((2*k)*TN)*8 +: 8])) <<< 18;
                        if (2*k + 1 < TM && in_won[(2*k+1)*TPS])
                            w_lo = 27'($signed(in_w[((2*k+1)*TN)*8 +: 8]));
                        xv = $signed(in_xd[(2*k)*TPS*9 +: 9])
                           | ((2*k + 1 < TM) ? $signed(in_xd[(2*k+1)*TPS*9 +: 9]) : 9'sd0);
                    end else if (n < TPS) begin     // the high lane's tap n: byte n (+ TPS)
                        if (in_won[(2*k)*TPS+n])
                            w_hi = 27'($signed(in_w[((2*k)*TN+n+(in_whalf ? TPS : 0))*8 +: 8])) <<< 18;
                        xv = $signed(in_xd[((2*k)*TPS+n)*9 +: 9]);
                    end else if (n < 2*TPS && 2*k + 1 < TM) begin  // the low lane's tap n - TPS
                        if (in_won[(2*k+1)*TPS+n-TPS])
                            w_lo = 27'($signed(in_w[((2*k+1)*TN+n-(in_whalf ? 0 : TPS))*8 +: 8]));
                        xv = $signed(in_xd[((2*k+1)*TPS+n-TPS)*9 +: 9]);
                    end
                end
                ad = w_hi + w_lo;
                prod_reg[k][n] <= PW'(ad * xv);
            end
        end
        s1_first <= in_first;
        s1_last <= in_last;
        s1_tag <= in_tag;
        for (int m = 0; m < TM; m++) begin
            sum_reg[m] <= (TN == 1) ? tree[m][TN] : tree[m][1];
            cor_reg[m] <= cbit[m][TN-1];
        end
        s2_first <= s1_first;
        s2_last <= s1_last;
        s2_tag <= s1_tag;
        if (s2_valid) begin
            for (int m = 0; m < TM; m++) begin
                logic signed [31:0] a;
                a = (s2_first ? 32'sd0 : acc_reg[m]) + 32'(sum_reg[m]) + 32'(cor_reg[m]);
                acc_reg[m] <= a;
                out_acc[m*32 +: 32] <= a;
            end
            out_tag <= s2_tag;
        end
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
endmodule
`default_nettype wire
