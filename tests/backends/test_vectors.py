"""Test vectors: the shared sweep and network vector sets, checked with the interpreter."""
import numpy as np
import pytest

from dgfpga.contract import regmap
from dgfpga.contract.engine_config import load_config
from dgfpga.errors import FormatError
from dgfpga.runtime.interpreter import run_program
from dgfpga.backends.vectors import (layer_sweep, network_vectors, read_vector_set, sweep_cases,
                            write_vector_set)


def _check(vs, cfg):
    mem = {k: v.copy() for k, v in vs.before.items()}
    r = run_program(vs.program, vs.layer_count, mem, cfg)
    assert r.status == vs.expected_status, (vs.name, regmap.describe_status(r.status), r.message)
    for k, exp in vs.expected.items():
        np.testing.assert_array_equal(mem[k], exp, err_msg=f"{vs.name}: region {k}")
    if not vs.expected_status:
        assert sum(r.macs) == vs.macs


@pytest.mark.parametrize("config", ["small", "ultra96"])
def test_layer_sweep_interpreter_bit_exact(config, tmp_path):
    cfg = load_config(config)
    sets = list(layer_sweep(cfg))
    assert len(sets) == len(sweep_cases(cfg)) >= 25
    faults = 0
    for vs in sets:
        back = read_vector_set(write_vector_set(vs, tmp_path / vs.name))
        assert back.program == vs.program and back.expected_status == vs.expected_status
        _check(back, cfg)
        faults += bool(vs.expected_status)
    assert faults == 7


def test_sweep_outputs_are_not_trivial():
    """Outputs span the range: neither all zero nor all saturated."""
    cfg = load_config("small")
    vs = next(v for v in layer_sweep(cfg) if v.name == "dense_3x3_s1")
    case = vs.meta["case"]
    out = vs.expected["fmap"]
    changed = out != vs.before["fmap"]
    vals = out[changed]
    assert vals.size > 0.5 * 8 * 8 * case.out_c
    assert 0.05 < np.mean((vals == 0) | (vals == 255)) < 0.6


def test_vector_sets_are_deterministic():
    cfg = load_config("small")
    a = [v.expected["fmap"].tobytes() for v in layer_sweep(cfg)]
    b = [v.expected["fmap"].tobytes() for v in layer_sweep(cfg)]
    assert a == b


def test_network_vectors_replay(test_qmodel, calib_images, tmp_path):
    cfg = load_config("small")
    n = 0
    for dense in (False, True):
        for vs in network_vectors(test_qmodel, calib_images[:1], cfg, dense=dense):
            _check(read_vector_set(write_vector_set(vs, tmp_path / vs.name)), cfg)
            n += 1
    assert n == 2 * (1 + len(test_qmodel.blocks))


def test_malformed_manifest(tmp_path):
    cfg = load_config("small")
    vs = next(layer_sweep(cfg))
    p = write_vector_set(vs, tmp_path / "v")
    (p / "vector.txt").write_text((p / "vector.txt").read_text().replace("macs", "maks"))
    with pytest.raises(FormatError, match="unknown key"):
        read_vector_set(p)
    p = write_vector_set(vs, tmp_path / "w")
    (p / "fmap.bin").write_bytes(b"\x00" * 3)
    with pytest.raises(FormatError, match="bytes"):
        read_vector_set(p)
    with pytest.raises(FormatError, match="not a vector set"):
        read_vector_set(tmp_path / "nothing")
