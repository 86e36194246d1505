"""dgfpga.perf.resources: the resource estimate of the HLS engine (an estimate, not synthesis)."""
from __future__ import annotations

import dataclasses
import subprocess

import pytest

from dgfpga.backends import hls_csim
from dgfpga.perf import resources
from dgfpga.contract.engine_config import load_config
from dgfpga.errors import ConfigError


@pytest.mark.parametrize("name", ["small", "ultra96"])
def test_shipped_configs_fit(name):
    cfg = load_config(name)
    est = resources.check_fits(cfg)
    t = est.totals()
    assert all(0 < v for v in t.values())
    assert est.budget == dict(dsp=360, bram36=216, lut=70560, ff=141120)
    u = est.utilisation()
    assert u["dsp"] <= 1.0 and u["bram36"] <= 1.0
    # LUT/FF (fitted to Yosys, not Vivado): an excess is a named warning, never a refusal
    over = [k for k in ("lut", "ff") if u[k] > 1.0]
    assert len(est.warnings) == len(over)
    assert all(k.upper() in w and "not enforced" in w for k, w in zip(over, est.warnings))
    assert "ESTIMATE" in est.table() and "not a synthesis report" in est.table()


def test_ultra96_dsp_count_follows_the_array():
    """Two int8 MACs per DSP48E2 (lanes m, m+1 packed): 256 MACs on 128 DSPs, one accumulator
    per output lane; the requantizers' 6 per lane, TM/4 lanes; the rest is the units' fitted
    allowances."""
    cfg = load_config("ultra96")
    est = resources.estimate(cfg)
    fitted = sum(i.dsp for i in est.items if i.component.endswith("(fitted)"))
    assert est.dsp == cfg.tm * cfg.tn // 2 + cfg.tm + (cfg.tm // 4) * resources.DSP_PER_REQUANT \
        + fitted
    mac = next(i for i in est.items if i.component == "MAC array multipliers")
    assert mac.dsp == 128
    # the MAC array dominates the DSPs; the weight buffers (64) and the depthwise patch banks
    # (9 banks x 2 memories (even, odd rows) x 512 x 128 bits, 2 BRAM36 each: 36) the BRAM;
    # nothing of the gate unit scales with channels x grid: per gate lane (8) one BRAM36 each
    # for the fc1 sums, logits and channel sums (256 x 45 / 64 / 41 bits), one BRAM18 each
    # for Pt/h, m1 and the pooled vector, three (one per tap column) for the spatial taps
    assert max(est.items, key=lambda i: i.dsp).component == "MAC array multipliers"
    top2 = sorted(est.items, key=lambda i: -i.bram36)[:2]
    assert [(i.component, i.bram36) for i in top2] == [("weight buffers", 64.0),
                                                       ("depthwise patch banks", 36.0)]
    assert sum(i.bram36 for i in est.items if i.unit == "gate unit") == 8 * (3 + 3 * 0.5 + 1.5)
    assert 60 <= est.bram36 <= 216


def test_every_item_is_in_a_synthesis_unit():
    """The estimate is built per unit of `dgfpga synth --by-module` (SYNTH_UNITS), so it can
    be compared with open synthesis unit by unit."""
    for name in ("small", "ultra96"):
        est = resources.estimate(load_config(name))
        assert {i.unit for i in est.items} == set(resources.UNITS)
        per_unit = est.unit_totals()
        for k in ("dsp", "lut", "ff"):
            assert sum(u[k] for u in per_unit.values()) == getattr(est, k)


@pytest.mark.parametrize("tm, tn, dsp", [(32, 16, 256), (16, 32, 256), (2, 4, 4), (1, 4, 4),
                                         (1, 1, 1)])
def test_mac_dsps_are_half_the_macs(tm, tn, dsp):
    """ceil(tm/2)*tn: a pair of output lanes per DSP and input lane; tm = 1 uses tn
    half-empty ones (as the Yosys mapping of dg_mac_array shows)."""
    cfg = dataclasses.replace(load_config("ultra96"), tm=tm, tn=tn)   # not validated
    mac = next(i for i in resources.estimate(cfg).items if i.component == "MAC array multipliers")
    assert mac.dsp == dsp


def test_512_macs_by_the_calibrated_estimate():
    """A 32x16 array (the config `dgfpga synth` measures, tests/backends/configs/
    ultra96_32x16.toml) by the calibrated estimate: 256 DSP48E2 of packed MACs, 32
    accumulators, 48 of requantizers, and the address products of the compute unit (per input lane) and the
    loader, write-back and gate unit (their fitted allowances)."""
    cfg = dataclasses.replace(load_config("ultra96"), tm=32, tn=16, weight_buffer_bytes=2 * 32 * 9 * 512,
                              ofm_buffer_bytes=32 * 17 * 17 * 4)
    est = resources.estimate(cfg)
    fitted = sum(i.dsp for i in est.items if i.component.endswith("(fitted)"))
    assert est.dsp == 256 + 32 + 8 * resources.DSP_PER_REQUANT + fitted
    assert fitted > 0


def test_bigger_array_is_refused_with_the_reason():
    cfg = dataclasses.replace(load_config("ultra96"), tm=32, tn=32)   # not validated: 1024 MACs
    with pytest.raises(ConfigError, match=r"DSP \d+ > 360.*MAC array"):
        resources.check_fits(cfg)


def test_oversized_buffers_are_refused():
    cfg = dataclasses.replace(load_config("ultra96"), weight_buffer_bytes=1_600_000)
    with pytest.raises(ConfigError, match=r"BRAM36 \d+ > 216.*weight buffers"):
        resources.check_fits(cfg)


def test_unknown_part_family_is_an_error():
    cfg = dataclasses.replace(load_config("small"), part="xc7z020clg400-1")
    with pytest.raises(ConfigError, match="no LUT/FF budget"):
        resources.estimate(cfg)


def test_memory_mapping():
    assert resources._memory(2048, 8) == (0.5, 0)           # one BRAM18 (2K x 9)
    assert resources._memory(337, 128) == (2.0, 0)          # 512x72 x 2 on BRAM36
    assert resources._memory(32, 32)[0] == 0                # small: distributed RAM
    assert resources._memory(4096, 9) == (1.0, 0)


@pytest.mark.parametrize("name", ["small", "ultra96"])
def test_geometry_matches_the_hls_constants(name, tmp_path):
    """buffer_geometry mirrors hls/src/dg_types.h: compile the header and compare."""
    try:
        cxx, ap = hls_csim.compiler(), hls_csim.ap_types_dir()
    except hls_csim.CsimError as exc:
        pytest.skip(f"C-sim toolchain missing: {exc}")
    cfg = load_config(name)
    (tmp_path / "dg_config.h").write_text(hls_csim._config_header(cfg))
    keys = ("W_DEPTH", "IFM_DEPTH", "ACC_DEPTH", "PARAM_ROWS", "REQUANT_LANES", "MAX_TILES",
            "BITMAP_WORDS")
    prog = '#include <cstdio>\n#include "dg_types.h"\nint main(){\n' + "".join(
        f'std::printf("{k} %u\\n", (unsigned)dg::{k});\n' for k in keys) + "}\n"
    (tmp_path / "geo.cpp").write_text(prog)
    subprocess.run([cxx, *hls_csim.CXXFLAGS, "-isystem", str(ap), "-I", str(tmp_path), "-I",
                    str(hls_csim.SRC_DIR), str(tmp_path / "geo.cpp"), "-o", str(tmp_path / "geo")],
                   check=True, capture_output=True)
    out = subprocess.run([str(tmp_path / "geo")], check=True, capture_output=True, text=True).stdout
    got = {k: int(v) for k, v in (ln.split() for ln in out.splitlines())}
    assert got == resources.buffer_geometry(cfg)


def test_docs_quote_the_estimate(repo_root):
    """docs/hls.md's resource table is the estimate (the one DSP/BRAM model), not a copy
    that drifts: DSP and BRAM36 exactly, LUT/FF to the quoted 0.1k."""
    import re
    text = (repo_root / "docs" / "hls.md").read_text()
    for name in ("small", "ultra96", "ultra96_resnet"):
        row = re.search(rf"^\| {name} \| (\d+)[^|]*\| (\d+)[^|]*\| ~([\d.]+)k \| ~([\d.]+)k \|$",
                        text, re.M)
        assert row, f"docs/hls.md has no resource row for {name}"
        t = resources.estimate(load_config(name)).totals()
        assert (int(row[1]), int(row[2])) == (t["dsp"], t["bram36"]), name
        assert (float(row[3]), float(row[4])) == (round(t["lut"] / 1e3, 1), round(t["ff"] / 1e3, 1))
