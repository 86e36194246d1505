"""The write-back's timing structure (issue 16, sim/rtl/dg_writeback.sv, dg_requant.sv).

The write-back computes its addresses with counters and a per-tile pipeline instead of
per-pixel products, keeps the max-pool buffer in one RAM per lane with a registered read,
and the requantizer clamps with a masked range test beside the shift. Every RTL simulation
checks the counters against the products they replace (`ifndef SYNTHESIS` $error in
dg_writeback.sv) and the engine tests check every byte against the interpreter; here: the
requantizer at the ultra96 geometry, and the pool buffer at a tile size whose RAM is a
block RAM (max_tile 8: 17 x 17 conv pixels, a 1024-deep RAM per lane)."""
from __future__ import annotations

import re

import pytest

from conftest import require_verilator


@pytest.mark.verilator
@pytest.mark.parametrize("lanes,share", [(16, 4), (2, 2)])
def test_requant_clamp_and_pace(lanes, share):
    """sim/tb/test_dg_requant.py (reference formula, random values across the int64 range,
    both clamps, every shift 1..31; one result per SHARE cycles, SHARE + 3 latency) on the
    ultra96 write-back's requantizer (16 lanes, 4 phases) and a two-lane one."""
    require_verilator()
    from dgfpga.backends import rtl_sim
    res = rtl_sim.run_unit_test("dg_requant", ["dg_requant.sv"], "test_dg_requant",
                                {"LANES": lanes, "SHARE": share})
    assert res["tests"] > 0 and not res["failures"], res


@pytest.mark.slow
@pytest.mark.verilator
def test_maxpool_at_tile_8(tmp_path):
    """The layer sweep (its fused max-pool cases included) bit-exact on `small` with
    max_tile 8: the pool RAM address {half, y * 17 + x} is 9 + 1 bits, the window counters
    step by 2 * 17 per row of output pixels; buffers raised to the config's minimums."""
    require_verilator()
    from dgfpga.backends import rtl_sim
    from dgfpga.backends.vectors import write_sweep
    from dgfpga.contract.engine_config import load_config
    from dgfpga.contract.engine_config import CONFIG_DIR
    text = (CONFIG_DIR / "small.toml").read_text()
    for key, value in (("name", '"small_t8"'), ("max_tile", "8"), ("ofm_buffer_bytes", "4624")):
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert n == 1, key
    path = tmp_path / "small_t8.toml"
    path.write_text(text)
    cfg = load_config(path)
    assert cfg.max_tile == 8 and cfg.ofm_buffer_bytes >= cfg.min_ofm_buffer_bytes
    sim = rtl_sim.FastSim(cfg)
    res = [rtl_sim.run_fast(p, sim=sim) for p in write_sweep(tmp_path / "v", cfg)]
    assert any("maxpool" in r["name"] for r in res), [r["name"] for r in res]
    bad = [(r["name"], hex(r["status"]), hex(r["expected_status"]), r["fmap_mismatches"])
           for r in res if not r["pass"]]
    assert not bad, bad
