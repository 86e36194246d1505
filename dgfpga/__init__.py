"""dgfpga: FPGA co-design toolkit for Dynamic Dual Gating networks (DGNet)."""
__version__ = "0.1.0"
