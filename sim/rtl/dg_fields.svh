// dg_fields.svh: field access through the generated contract constants (dg_pkg).
`ifndef DG_FIELDS_SVH
`define DG_FIELDS_SVH
// descriptor field F (the formats.DESCRIPTOR_FIELDS name in upper case) of a packed
// descriptor vector (word w at bits w*32 +: 32)
`define DG_DESC(vec, F) vec[DG_DESC_``F``_WORD * 32 + DG_DESC_``F``_LSB +: DG_DESC_``F``_WIDTH]
// field F of a network-program record of kind P (GATE, HEAD: dgfpga.contract.program
// GATE_FIELDS / HEAD_FIELDS through the generated DG_<P>_<F>_WORD/_LSB/_WIDTH)
`define DG_REC(vec, P, F) vec[DG_``P``_``F``_WORD * 32 + DG_``P``_``F``_LSB +: DG_``P``_``F``_WIDTH]
// whole descriptor word w
`define DG_DESC_WORD(vec, w) vec[(w) * 32 +: 32]
// register field F of register R (regmap names) in a 32-bit register value
`define DG_REG_FIELD(val, R, F) val[DG_REG_``R``_``F``_LSB +: DG_REG_``R``_``F``_WIDTH]
`endif
