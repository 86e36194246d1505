"""The engine as a vendor flow compiles it, simulated whole (issue 16 round 12).

Vivado compiles sim/rtl with SYNTHESIS and DG_VENDOR_PRIMITIVES defined (package_rtl_ip.tcl):
the `ifdef SYNTHESIS branches instantiate DSP48E2 cells (dg_mac_array, dg_requant, the sums
adds of dg_writeback, the spatial taps' lane pairs of dg_gate) where the simulation builds
run behavioural models, and the `ifndef SYNTHESIS checkers drop out. `FastSim(vendor=True)`
builds the fast harness that way with the DSP48E2 model (sim/tb/dsp48e2_model.sv) as the
primitive; these tests hold it to the normal build: the same memory, STATUS and cycles.

What exercises what: the shared vector sets (sweep + extra) hold no gate record, so the
gate's lane pairs run only in the network programs and the gate records here; the lane past
in_c (the pairs' INMODE switch-off) only where in_c is not a multiple of the gate lanes
(`small`: 4 lanes, 2 pairs; `syn_4x8w` and `ultra96`: 8 lanes, 4 pairs).
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, require_verilator

sys.path.insert(0, str(ROOT / "sim" / "tb"))

SYN_4X8W = ROOT / "tests" / "backends" / "configs" / "syn_4x8w.toml"
# (unit, the synthesis branch's DSP48E2 instance): what the vendor build compiles instead of
# the behavioural model
BRANCHES = ("dg_mac_array.sv", "dg_requant.sv", "dg_writeback.sv", "dg_gate.sv")


def _same(a, b, label: str) -> list:
    """Differences between two RtlRuns of the same start (STATUS, cycles, every region)."""
    bad = []
    if a.timeout or b.timeout:
        bad.append(f"{label}: timeout {a.timeout} / {b.timeout}")
    if a.status != b.status:
        bad.append(f"{label}: status {a.status:#x} / {b.status:#x}")
    if a.cycles != b.cycles:
        bad.append(f"{label}: cycles {a.cycles} / {b.cycles}")
    for r in a.regions:
        n = int(np.count_nonzero(a.regions[r] != b.regions[r]))
        if n:
            bad.append(f"{label}: {r} {n} bytes differ")
    return bad


@pytest.fixture(scope="module")
def small_pair():
    """(normal build, vendor build) of `small`."""
    require_verilator()
    from dgfpga.backends import rtl_sim
    with rtl_sim.FastSim("small") as a, rtl_sim.FastSim("small", vendor=True) as b:
        yield a, b


@pytest.mark.verilator
def test_vendor_build_compiles_the_synthesis_branches(small_pair):
    """The vendor build is the SYNTHESIS branches' model: each unit has a DSP48E2 instance
    under `ifdef SYNTHESIS, and the built model holds the DSP48E2 model (the normal build
    none); its own cache entry."""
    from dgfpga.backends import rtl_sim
    for f in BRANCHES:
        text = (rtl_sim.RTL / f).read_text()
        assert "`ifdef SYNTHESIS" in text and "DSP48E2 #(" in text, \
            f"{f}: no DSP48E2 instance in a SYNTHESIS branch"
    normal, vendor = (Path(s.exe).parent for s in small_pair)
    assert normal != vendor and vendor.name.startswith("fast-vendor-")
    assert list(vendor.glob("*DSP48E2*.h")) and not list(normal.glob("*DSP48E2*.h"))


# the default case: test_rtl_engine.py's cocotb cross-section (every layer kind, a fault) and
# two depthwise sets; `all` (slow): every set
SUBSET = {"dense_3x3_s1_edge_tiles", "stem_7x7_s2_maxpool", "conv1_gated_half",
          "conv2_identity_in_place", "conv2_downsample_res_only", "fault_bitmap_mismatch",
          "im2col_stem_7x7_s2_maxpool", "chain_4_layers"}


@pytest.mark.verilator
@pytest.mark.parametrize("which", ["subset", pytest.param("all", marks=pytest.mark.slow)])
def test_vendor_build_shared_vectors(small_pair, which):
    """The shared vector sets (sweep, extra, depthwise): bit-exact on the vendor build (memory
    and STATUS against the set), and the normal build's cycles and memory."""
    from dgfpga.contract.engine_config import load_config
    from dgfpga.backends.vectors import compare_expected, depthwise_vectors, layer_sweep
    import dg_extra_vectors
    cfg = load_config("small")
    bad, n = [], 0
    dw = list(depthwise_vectors(cfg))
    sets = list(layer_sweep(cfg)) + list(dg_extra_vectors.extra_vector_sets(cfg)) + dw
    if which == "subset":
        sets = [vs for vs in sets if vs.name in SUBSET] + dw[:2]
    for vs in sets:
        ra, rb = (s.run(vs.program, vs.layer_count,
                        {k: np.array(v, np.uint8) for k, v in vs.before.items()},
                        run_flags=vs.run_flags) for s in small_pair)
        bad += _same(ra, rb, vs.name)
        if rb.status != vs.expected_status:
            bad.append(f"{vs.name}: status {rb.status:#x}, expected {vs.expected_status:#x}")
        bad += [f"{vs.name}: {m}" for m in compare_expected(vs, rb.regions)]
        n += 1
    assert n >= (10 if which == "subset" else 60) and not bad, bad


def _gate_program(cfg, specs, seed: int):
    """A program of gate records, one per (in_c, out_c) of `specs`, each over its own map."""
    from test_rtl_gate_channels import _Program, add_gate
    p = _Program(cfg, np.random.default_rng([seed, *(c for spec in specs for c in spec)]))
    for in_c, out_c in specs:
        add_gate(p, in_c, out_c, (8, 12), 2, (4, 6))
    return p


def _gate_records(pair, programs) -> list:
    """Programs of gate records (the spatial 3x3 over the lane pairs) on both builds: the
    interpreter's STATUS and memory, the same cycles. A record with every lane on before one
    whose last lane group runs past in_c leaves the lanes' pooled-value and tap-weight banks
    holding its values, so only the pairs' switch-off keeps them out of the sums."""
    from dgfpga.runtime.interpreter import run_program
    normal, vendor = pair
    bad = []
    for specs in programs:
        p = _gate_program(normal.cfg, specs, 16)
        mem = p.memory()
        ref = {k: v.copy() for k, v in mem.items()}
        res = run_program(p.program(), len(specs), ref, normal.cfg)
        assert res.status == 0, res.message
        for sp, _ in res.gate_masks:
            sp = np.asarray(sp, bool)
            assert 0 < sp.sum() < sp.size, "spatial mask not mixed: a wrong logit could go unseen"
        runs = [s.run(p.program(), len(specs), {k: v.copy() for k, v in mem.items()})
                for s in pair]
        bad += _same(*runs, f"gates {specs}")
        for r in ("fmap", "work", "sums"):
            if not np.array_equal(runs[1].regions[r], ref[r]):
                bad.append(f"gates {specs}: {r} differs from the interpreter")
    return bad


@pytest.mark.verilator
def test_vendor_build_gate_records_small(small_pair):
    """`small` (4 gate lanes, 2 lane pairs): gate records whose in_c leaves lanes of the last
    group past in_c (13 after 16 channels, 3: the pairs' INMODE switch-off)."""
    assert small_pair[0].cfg.gate_lanes == 4
    bad = _gate_records(small_pair, [[(16, 12), (13, 20)], [(3, 10)]])
    assert not bad, bad


def _network(qm, cfg_name, n_images: int = 1):
    from dgfpga.backends import vectors
    from dgfpga.contract.engine_config import load_config
    from dgfpga.data import embedded as data
    from dgfpga.runtime.packer import plan_network
    cfg = load_config(str(cfg_name))
    plan = plan_network(qm, cfg)
    sets = list(vectors.network_program_vectors(qm, data.load_split("test", n_images).images, cfg,
                                                dense=False, plan=plan))
    return cfg, plan, sets


def _network_on_both(cfg, plan, sets, rtl_dir=None) -> list:
    from dgfpga.backends import rtl_sim
    mb = sum(plan.region_bytes.values()) + len(plan.program) + 6 * 4096
    bad = []
    with rtl_sim.FastSim(cfg, mem_bytes=mb) as a, \
            rtl_sim.FastSim(cfg, mem_bytes=mb, vendor=True, rtl_dir=rtl_dir) as b:
        for vs in sets:
            ra, rb = (s.run(vs.program, vs.layer_count, {k: v.copy() for k, v in vs.before.items()},
                            run_flags=vs.run_flags) for s in (a, b))
            bad += _same(ra, rb, vs.name)
            for r, want in vs.expected.items():
                got = rb.regions[r].copy()
                for region, off, n in vs.ignore:
                    if region == r:
                        got[off:off + n] = want[off:off + n]
                if not np.array_equal(got, want):
                    bad.append(f"{vs.name}: {r} differs from the golden image")
    return bad


@pytest.mark.verilator
def test_vendor_build_network_small(shipped_qmodel):
    """resdg20 (gated, one test image, ONE start of the whole program: gate records, convs,
    residuals, head) on `small`: the golden image, and the normal build's cycles and memory."""
    require_verilator()
    bad = _network_on_both(*_network(shipped_qmodel, "small"))
    assert not bad, bad


@pytest.mark.verilator
@pytest.mark.slow
def test_vendor_build_eight_gate_lanes(shipped_qmodel):
    """`syn_4x8w` (128-bit bus: 8 gate lanes, 4 lane pairs, as ultra96): resdg20 gated (16-64
    channels: every pair full) and gate records with lanes past in_c (29, 5, each after
    a record with every lane on)."""
    require_verilator()
    from dgfpga.backends import rtl_sim
    cfg, plan, sets = _network(shipped_qmodel, SYN_4X8W)
    assert cfg.gate_lanes == 8
    bad = _network_on_both(cfg, plan, sets)
    with rtl_sim.FastSim(cfg) as a, rtl_sim.FastSim(cfg, vendor=True) as b:
        bad += _gate_records((a, b), [[(32, 12), (29, 20)], [(16, 8), (5, 12)]])
    assert not bad, bad


@pytest.mark.verilator
@pytest.mark.slow
def test_vendor_build_catches_a_broken_lane_pair(tmp_path, shipped_qmodel):
    """The check has teeth: a copy of sim/rtl whose gate lane pairs lose their cascade (lane
    2i's product not added into lane 2i + 1's cell) fails the comparison (resdg20 on small)."""
    require_verilator()
    from dgfpga.backends import rtl_sim
    copy = tmp_path / "rtl"
    shutil.copytree(rtl_sim.RTL, copy)
    gate = copy / "dg_gate.sv"
    text = gate.read_text()
    cascade = ".PCIN(j == 1 ? pc[0] : 48'd0),"
    assert text.count(cascade) == 1, "dg_gate.sv: the lane pair's cascade is not where expected"
    gate.write_text(text.replace(cascade, ".PCIN(48'd0),"))
    bad = _network_on_both(*_network(shipped_qmodel, "small"), rtl_dir=copy)
    assert any("cycles" in b or "differs" in b for b in bad), "the broken lane pair went unseen"
