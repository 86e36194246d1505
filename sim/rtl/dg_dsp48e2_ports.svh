// dg_dsp48e2_ports.svh: the parameter and port list of the UltraScale+ DSP48E2 slice (UG579),
// the one copy of it. Included right after `module DSP48E2` by the synthesis front end's black
// box (sim/rtl/dg_mac_array.sv, under `ifdef SYNTHESIS: Yosys keeps the instances as DSP48E2
// cells) and by the simulation model of the subset the array uses (sim/tb/dsp48e2_model.sv,
// test_rtl_modules.py::test_mac_array_synthesis_branch). No include guard: each compilation
// declares DSP48E2 once, from one of the two.
#(
    parameter integer AREG = 1, ACASCREG = 1, BREG = 1, BCASCREG = 1, DREG = 1, ADREG = 1,
    parameter integer MREG = 1, PREG = 1, CREG = 1, INMODEREG = 1, OPMODEREG = 1,
    parameter integer ALUMODEREG = 1, CARRYINREG = 1, CARRYINSELREG = 1,
    parameter AMULTSEL = "A", BMULTSEL = "B", PREADDINSEL = "A", USE_MULT = "MULTIPLY",
    parameter USE_SIMD = "ONE48"
) (
    input wire CLK, input wire [29:0] A, ACIN, input wire [17:0] B, BCIN, input wire [47:0] C, PCIN,
    input wire [26:0] D, input wire CARRYCASCIN, MULTSIGNIN, CARRYIN, input wire [2:0] CARRYINSEL,
    input wire [4:0] INMODE, input wire [8:0] OPMODE, input wire [3:0] ALUMODE,
    input wire CEA1, CEA2, CEAD, CEALUMODE, CEB1, CEB2, CEC, CECARRYIN, CECTRL, CED, CEINMODE,
    input wire CEM, CEP, RSTA, RSTALLCARRYIN, RSTALUMODE, RSTB, RSTC, RSTCTRL, RSTD, RSTINMODE,
    input wire RSTM, RSTP,
    output wire [29:0] ACOUT, output wire [17:0] BCOUT, output wire CARRYCASCOUT,
    output wire [3:0] CARRYOUT, output wire MULTSIGNOUT, OVERFLOW, output wire [47:0] P, PCOUT,
    output wire PATTERNBDETECT, PATTERNDETECT, UNDERFLOW, output wire [7:0] XOROUT
);
