"""dgfpga_models: the DGNet model zoo (PyTorch), state_dict-compatible with the official code."""
