// Simulation model of the subset of the UltraScale+ DSP48E2 (UG579, "DSP48E2 Slice") that
// the synthesis branches (`ifdef SYNTHESIS: the cells Yosys keeps as DSP48E2) of dg_mac_array,
// dg_requant and dg_writeback use, so that the branch the netlist is built from is simulated
// too (tests/backends/test_rtl_modules.py::test_mac_array_synthesis_branch,
// test_requant_synthesis_branch). Any setting outside
// the subset stops the simulation ($fatal) or drives X. Subset: A/B/D/INMODE input registers (0 or 1 stage), pre-adder D +/- A with
// INMODE[1] (A off), INMODE[2] (D on), INMODE[3] (subtract), AMULTSEL "AD", signed 27x18
// multiply, optional MREG, ALU Z + W + X + Y with X/Y = M (01/01), Z = 0/PCIN/P/C, W = 0/C
// (OPMODE[8:7] 00 / 11), ALUMODE 0000, PREG; PCOUT = P. The parameter and port list is the one of the synthesis black
// box (sim/rtl/dg_dsp48e2_ports.svh, one copy).
module DSP48E2
`include "dg_dsp48e2_ports.svh"
    initial begin
        if (AMULTSEL != "AD" || BMULTSEL != "B" || PREADDINSEL != "A" || USE_MULT != "MULTIPLY"
            || USE_SIMD != "ONE48" || ADREG != 0 || CREG != 0 || OPMODEREG != 0 || ALUMODEREG != 0
            || ACASCREG != AREG || BCASCREG != BREG)
            $fatal(1, "DSP48E2 model: configuration outside the modelled subset");
    end
    logic [29:0] a_r; logic [17:0] b_r; logic [26:0] d_r; logic [4:0] im_r;
    logic signed [44:0] m_r; logic [47:0] p_r;
    always_ff @(posedge CLK) begin
        a_r <= A; b_r <= B; d_r <= D; im_r <= INMODE;
    end
    wire [29:0] a_q = AREG ? a_r : A;
    wire [17:0] b_q = BREG ? b_r : B;
    wire [26:0] d_q = DREG ? d_r : D;
    wire [4:0] im = INMODEREG ? im_r : INMODE;
    wire signed [26:0] a_pre = im[1] ? 27'sd0 : $signed(a_q[26:0]);
    wire signed [26:0] d_pre = im[2] ? $signed(d_q) : 27'sd0;
    wire signed [26:0] ad = im[3] ? d_pre - a_pre : d_pre + a_pre;
    wire signed [44:0] m = ad * $signed(b_q);
    always_ff @(posedge CLK) m_r <= m;
    wire signed [44:0] m_q = MREG ? m_r : m;
    logic [47:0] z, w;
    always_comb begin
        case (OPMODE[6:4])
            3'b000: z = 48'd0;
            3'b001: z = PCIN;
            3'b010: z = p_r;
            3'b011: z = C;
            default: z = 48'hx;
        endcase
        case (OPMODE[8:7])
            2'b00: w = 48'd0;
            2'b11: w = C;
            default: w = 48'hx;
        endcase
        if (OPMODE[3:0] != 4'b0101 || ALUMODE != 4'b0000 || CARRYIN || CARRYINSEL != 3'b000)
            z = 48'hx;
    end
    wire [47:0] alu = z + w + 48'($signed(m_q));
    always_ff @(posedge CLK) p_r <= alu;
    assign P = PREG ? p_r : alu;
    assign PCOUT = P;
    assign ACOUT = '0; assign BCOUT = '0; assign CARRYCASCOUT = 1'b0; assign CARRYOUT = '0;
    assign MULTSIGNOUT = 1'b0; assign OVERFLOW = 1'b0; assign PATTERNBDETECT = 1'b0;
    assign PATTERNDETECT = 1'b0; assign UNDERFLOW = 1'b0; assign XOROUT = '0;
endmodule
