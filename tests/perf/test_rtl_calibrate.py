"""dgfpga.perf.calibration: measurements on the RTL are bit-exact and the fitted model is close."""
from __future__ import annotations

import pytest

from conftest import require_verilator


@pytest.mark.verilator
def test_measure_and_fit(tmp_path):
    require_verilator()
    from dgfpga.perf import calibration as calibrate
    from dgfpga.contract.engine_config import load_config
    cfg = load_config("small")
    layers = calibrate.calibration_layers(cfg, densities=(None, 0.5), max_blocks=4)
    recs = calibrate.measure(cfg, layers)
    assert all(r["bit_exact"] for r in recs), [r["name"] for r in recs if not r["bit_exact"]]
    jpath, cpath = calibrate.save_measurements(recs, tmp_path, "cycles")
    assert calibrate.load_measurements(jpath)[0]["cycles"] == recs[0]["cycles"]
    assert cpath.read_text().count("\n") == len(recs) + 1
    params, err = calibrate.fit(recs, cfg, iters=150)
    assert abs(err).max() < 0.10, dict(zip([r["name"] for r in recs], err))
    s = calibrate.summary(recs, cfg)
    assert s["density_0.5"]["realised_vs_array_steps"] > 0.95
    dense3 = [r for r in recs if r["density"] is None and r["k"] == 3]
    assert min(r["mac_utilisation"] for r in dense3) > 0.95


def test_array_steps_counts_rounding():
    from dgfpga.perf import calibration as calibrate
    from dgfpga.contract import formats
    from dgfpga.contract.engine_config import load_config
    import dataclasses
    cfg = load_config("small")
    d = formats.make_descriptor(k=3, stride=1, in_h=8, in_w=8, in_c=6, out_c=5, tile=4)
    rec = {"descriptor": dataclasses.asdict(d), "tiles": list(range(4)), "res_tiles": []}
    # 64 pixels x 9 x ceil(6/4)=2 x ceil(5/4)=2
    assert calibrate.array_steps(rec, cfg) == 64 * 9 * 2 * 2
