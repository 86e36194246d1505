"""dgfpga.backends.rtl_sim without a simulator: numpy-only import, layout, register program, parameters."""
from __future__ import annotations

import subprocess
import sys

from dgfpga.contract import regmap
from dgfpga.backends import rtl_sim
from dgfpga.contract.engine_config import load_config


def test_imports_without_cocotb_or_torch():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['cocotb'] = None; "
            "import dgfpga.backends.rtl_sim, dgfpga.perf.calibration")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_layout_aligned_and_disjoint():
    import numpy as np
    regions = {"fmap": np.zeros(5000, np.uint8), "weight": np.zeros(10, np.uint8),
               "work": np.zeros(4096, np.uint8), "sums": np.zeros(1, np.uint8)}
    lay = rtl_sim.layout(b"\0" * 96, regions)
    spans = sorted((lay["bases"][r], lay["bases"][r] + regions[r].size) for r in regions)
    assert all(b % 4096 == 0 for b, _ in spans)
    assert all(e <= b2 for (_, e), (b2, _) in zip(spans, spans[1:]))
    assert spans[0][0] >= 96 and lay["size"] >= spans[-1][1]


def test_register_program_uses_regmap():
    pairs = dict(rtl_sim._reg_program({"fmap": 0x1000, "weight": 0x2000, "work": 0x3000,
                                       "sums": 0x1_0000_4000},
                                      {"fmap": 1, "weight": 2, "work": 3, "sums": 4}, 3))
    reg = regmap.BY_NAME
    assert pairs[reg["LAYER_COUNT"].offset] == 3
    assert pairs[reg["SUMS_BASE_HI"].offset] == 1 and pairs[reg["SUMS_BASE_LO"].offset] == 0x4000
    assert pairs[reg["GIE"].offset] == 1 and pairs[reg["IER"].offset] == 1


def test_parameters_follow_config():
    for name in ("small", "ultra96"):
        cfg = load_config(name)
        p = rtl_sim.rtl_parameters(cfg)
        assert (p["TM"], p["TN"], p["AXI_DATA_W"]) == (cfg.tm, cfg.tn, cfg.axi_data_bits)
        assert p["CONFIG_HASH"] == f"32'h{cfg.config_hash:08X}"
