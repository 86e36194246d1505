"""Engine features a config may leave out: `[features] depthwise = false`.

An engine without the depthwise hardware (`tests/backends/configs/small_nodw.toml`, the
test-sized twin of the shipped `ultra96_resnet`) must run every other layer exactly as the
engine with it, and refuse a depthwise record with BAD_OP at the op word, writing nothing
(docs/formats.md "Engine features"). References, independent of the engines: the golden
kernels give the expected memory of every layer vector (`vectors.build_layer_case`), the
interpreter (the executable reference of the descriptor checks) the STATUS of the refused
records, which `vectors.depthwise_refused` also states by hand (BAD_OP, ENTRY = op's word).
Levels: the HLS engine (C-sim, `config::depthwise` false) and the RTL (FastSim, the
generated `DG_DEPTHWISE` 0).
"""
from __future__ import annotations

import pytest

from conftest import ROOT, require_csim, require_verilator
from dgfpga.backends import vectors
from dgfpga.contract import regmap as R
from dgfpga.contract.engine_config import load_config

NODW = ROOT / "tests" / "backends" / "configs" / "small_nodw.toml"


@pytest.fixture(scope="module")
def cfg():
    return load_config(NODW)


@pytest.fixture(scope="module")
def sets(cfg):
    """The sweep (every conv / stem / gated / residual case of `small`, and its faults) and
    the depthwise feature's vectors, all for the engine without depthwise."""
    return list(vectors.layer_sweep(cfg)) + vectors.no_depthwise_vectors(cfg)


def test_the_vectors_cover_both_sides(cfg, sets):
    """Ordinary layers that write memory, and every depthwise case refused at op's word."""
    refused = [vs for vs in sets if vs.name.startswith("refused_")]
    n_dw = sum(c.depthwise for c in vectors.depthwise_cases(cfg))
    assert len(refused) == n_dw >= 10
    op_word = vectors.FIELD_BY_NAME["op"].word
    for vs in refused:
        assert R.unpack_status(vs.expected_status) == (R.ERR["BAD_OP"], 0, op_word), vs.name
        assert all((vs.expected[r] == vs.before[r]).all() for r in ("fmap", "sums")), vs.name
    ok = [vs for vs in sets if vs.expected_status == 0]
    assert len(ok) >= 25 and sum(vs.macs > 0 for vs in ok) >= len(ok) - 2   # (2 empty layers)


def test_the_same_layers_are_refused_with_the_feature_on(cfg):
    """The refused programs are valid depthwise layers: on `small` (depthwise on) the
    interpreter runs them to OK."""
    import dataclasses
    from dgfpga.runtime.interpreter import run_program
    twin = dataclasses.replace(cfg, depthwise=True)
    for vs in vectors.depthwise_refused(cfg)[:3]:
        mem = {r: vs.before[r].copy() for r in vectors.REGIONS}
        assert run_program(vs.program, vs.layer_count, mem, twin).status == 0, vs.name


def test_hls_csim_without_depthwise(cfg, sets, tmp_path_factory):
    """C-sim of the HLS engine built with config::depthwise false: every vector bit-exact,
    STATUS included."""
    require_csim()
    from dgfpga.backends import hls_csim
    engine = hls_csim.CsimEngine(cfg, tmp_path_factory.mktemp("csim_nodw"))
    bad = [(vs.name, chk.message) for vs in sets
           if not (chk := hls_csim.run_vector_set(vs, engine)).passed]
    assert not bad, bad


@pytest.mark.verilator
def test_rtl_without_depthwise(sets, tmp_path):
    """The RTL built with DG_DEPTHWISE = 0 (FastSim): every vector bit-exact, STATUS
    included."""
    require_verilator()
    from dgfpga.backends import rtl_sim
    folders = [vectors.write_vector_set(vs, tmp_path / vs.name) for vs in sets]
    with rtl_sim.FastSim(str(NODW)) as sim:
        bad = []
        for folder in folders:
            r = rtl_sim.run_fast(folder, sim=sim)
            if not r["pass"]:
                bad.append((folder.name, hex(r["status"]), hex(r["expected_status"]),
                            r["fmap_mismatches"], r["sums_mismatches"], r["timeout"]))
    assert not bad, bad
