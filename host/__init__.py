"""dgfpga_host: the board runtime (imports with numpy only; pynq only for the board device)."""
