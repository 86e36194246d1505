"""dgfpga.backends.rtl_sim without a simulator: numpy-only import, layout, register program, parameters."""
from __future__ import annotations

import subprocess
import sys

from dgfpga.contract import regmap
from dgfpga.backends import rtl_sim
from dgfpga.contract.engine_config import load_config
from pathlib import Path


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
    assert pairs[reg["RUN_FLAGS"].offset] == 0
    dense = dict(rtl_sim._reg_program({"fmap": 0, "weight": 0, "work": 0, "sums": 0},
                                      {"fmap": 1, "weight": 1, "work": 1, "sums": 1}, 1, run_flags=1))
    assert dense[reg["RUN_FLAGS"].offset] == 1


def test_config_include_is_the_configs_contract(tmp_path, monkeypatch):
    """The RTL is configured only by the include rendered for its config: every EngineConfig
    field as DG_<NAME>, the config hash, one folder per distinct content."""
    import dataclasses
    import re
    monkeypatch.setattr(rtl_sim, "BUILD", tmp_path)
    skew = load_config(Path(__file__).resolve().parent / "configs" / "skew.toml")
    dirs = set()
    for cfg in (load_config("small"), load_config("ultra96"), skew):
        d = rtl_sim.config_include(cfg)
        text = (d / rtl_sim.INCLUDE).read_text()
        assert "GENERATED FILE" in text
        vals = dict(re.findall(r"localparam (?:int unsigned|string|logic \[31:0\]) (DG_\w+) = ([^;]+);", text))
        for f in dataclasses.fields(cfg):
            v = getattr(cfg, f.name)
            want = f'"{v}"' if isinstance(v, str) else str(v)
            assert vals[f"DG_{f.name.upper()}"] == want, f.name
        assert vals["DG_CONFIG_HASH"] == f"32'h{cfg.config_hash:08X}"
        assert rtl_sim.config_include(cfg) == d          # cached, same folder
        dirs.add(d)
    assert len(dirs) == 3


def test_no_parameter_rename_table():
    """Nothing maps config fields to RTL parameter names by hand any more."""
    assert not hasattr(rtl_sim, "rtl_parameters")


def test_fast_run_has_a_wall_clock_limit(tmp_path):
    """A simulation that outlives its wall-clock limit is killed and reported, not waited on."""
    import pytest
    from conftest import require_verilator
    require_verilator()
    from dgfpga.backends import vectors
    sim = rtl_sim.FastSim("small")
    vs = next(vectors.layer_sweep(load_config("small")))
    regions = {r: vs.before[r].copy() for r in vectors.REGIONS}
    with pytest.raises(rtl_sim.RtlSimError, match="wall-clock limit of 0.001 s"):
        sim.run(vs.program, vs.layer_count, regions, wall_timeout_s=0.001)
    run = sim.run(vs.program, vs.layer_count, regions, wall_timeout_s=600)
    assert run.status == vs.expected_status
