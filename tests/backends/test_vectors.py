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
    assert faults == 11


BOUNDARIES = {  # case -> (STATUS code, faulty layer)
    "fault_tile_range": ("TILE_RANGE", 1),
    "fault_res_tile_range_at_count": ("TILE_RANGE", 1),
    "fault_channel_range": ("CHANNEL_RANGE", 1),
    "fault_out_channel_range_at_count": ("CHANNEL_RANGE", 1),
    "fault_bad_count": ("BAD_COUNT", 1),
    "fault_res_count_over": ("BAD_COUNT", 1),
    "fault_layer_count_over_max": ("BAD_COUNT", 0),
}


@pytest.mark.parametrize("config", ["small", "ultra96"])
def test_sweep_has_the_boundaries(config):
    """index = count, count = max + 1 and max_layers (+1) faults are in the shared sweep
    (so the C-sim and RTL sweeps run them), with the faulty value exactly at the boundary."""
    from dgfpga.contract import formats
    cfg = load_config(config)
    sets = {vs.name: vs for vs in layer_sweep(cfg)}
    for name, (code, layer) in BOUNDARIES.items():
        vs = sets[name]
        assert regmap.unpack_status(vs.expected_status)[:2] == (regmap.ERR[code], layer), name
    top = sets["max_layers"]
    assert top.layer_count == cfg.max_layers and top.expected_status == 0
    assert sets["fault_layer_count_over_max"].layer_count == cfg.max_layers + 1
    b = formats.DESCRIPTOR_BYTES
    for name, section, limit in (("fault_tile_range", "tile_list_offset", "n_tiles"),
                                 ("fault_res_tile_range_at_count", "res_tile_list_offset", "n_tiles"),
                                 ("fault_channel_range", "in_ch_list_offset", "in_c"),
                                 ("fault_out_channel_range_at_count", "out_ch_list_offset", "out_c")):
        vs = sets[name]
        d = formats.unpack_descriptor(vs.program[b:2 * b], cfg)
        count = {"tile_list_offset": d.n_active_tiles, "res_tile_list_offset": d.n_res_tiles,
                 "in_ch_list_offset": d.n_active_in, "out_ch_list_offset": d.n_active_out}[section]
        off = getattr(d, section)
        last = int(vs.before["work"][off + 2 * count - 2:off + 2 * count].view("<u2")[0])
        assert last == getattr(d, limit), name                 # index == count exactly
        with pytest.raises(FormatError) as ei:                 # the one validator agrees
            formats.read_work_list(d, vs.before["work"])
        assert ei.value.code == BOUNDARIES[name][0] and ei.value.entry == count - 1


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
