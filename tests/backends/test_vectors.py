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
    assert faults == 12


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


# ---- network program: one start per image -------------------------------------------------
def _check_program(vs, cfg):
    """Replay through the interpreter: STATUS, every expected region (ignore ranges out),
    MACs."""
    from dgfpga.backends.vectors import compare_expected
    mem = {k: v.copy() for k, v in vs.before.items()}
    r = run_program(vs.program, vs.layer_count, mem, cfg, vs.run_flags)
    assert r.status == vs.expected_status, (vs.name, regmap.describe_status(r.status), r.message)
    assert compare_expected(vs, mem) == [], vs.name
    if not vs.expected_status:
        assert sum(r.macs) == vs.macs
    return r


def test_network_program_vectors_replay(test_qmodel, calib_images, tmp_path):
    """One vector set per image and mode; expected memory from the golden model equals the
    interpreter's after ONE start; masks and logits in the expected WORK are the golden
    ones; the set survives the file round trip (run_flags, ignore)."""
    from dgfpga.backends.vectors import write_network_program_vectors
    from dgfpga.contract import program as P
    from dgfpga.numerics.golden import run_golden
    from dgfpga.runtime.packer import plan_network
    cfg = load_config("small")
    qm = test_qmodel
    paths = write_network_program_vectors(tmp_path, qm, calib_images[:2], cfg)
    assert len(paths) == 4
    plan = plan_network(qm, cfg)
    for p in paths:
        vs = read_vector_set(p)
        dense = "dense" in vs.name
        assert vs.layer_count == plan.record_count and vs.program == plan.program
        assert vs.run_flags == (P.RUN_DENSE if dense else 0)
        assert vs.ignore == [("work", plan.cycle_log.offset, plan.cycle_log.nbytes)]
        r = _check_program(vs, cfg)
        n = int(vs.name[-1])
        g = run_golden(qm, calib_images[n:n + 1], masks="dense" if dense else None)
        lg = plan.logits
        assert np.array_equal(vs.expected["work"][lg.offset:lg.offset + lg.nbytes].view("<i8"),
                              g.logits_int[0])
        for i, bp in enumerate(plan.blocks):
            m = bp.mask
            sp, ch = P.decode_masks(vs.expected["work"][m.offset:m.offset + m.nbytes],
                                    bp.grid[0] * bp.grid[1], bp.conv1.template.out_c)
            assert np.array_equal(sp, g.masks[i].spatial[0].reshape(-1))
            assert np.array_equal(ch, g.masks[i].channel[0])
        assert r.records.count("gate") == len(plan.blocks)


def test_network_program_vector_detects_a_wrong_engine(test_qmodel, calib_images):
    """The expectation is sharp: a flipped gate decision or a changed logit is caught."""
    from dgfpga.backends.vectors import compare_expected, network_program_vectors
    cfg = load_config("small")
    vs = next(network_program_vectors(test_qmodel, calib_images[:1], cfg))
    mem = {k: v.copy() for k, v in vs.before.items()}
    run_program(vs.program, vs.layer_count, mem, cfg, vs.run_flags ^ 1)   # dense instead
    assert any(d.startswith("work") for d in compare_expected(vs, mem))
    mem = {k: v.copy() for k, v in vs.before.items()}
    run_program(vs.program, vs.layer_count, mem, cfg, vs.run_flags)
    region, off, nb = vs.ignore[0]
    mem["work"][off:off + nb] = 0xAB                     # the cycle log is not compared
    assert compare_expected(vs, mem) == []
    mem["work"][off - 1] ^= 1                            # the logits before it are
    assert compare_expected(vs, mem) != []


PROGRAM_CORNERS = {  # name -> (STATUS code, record, entry)
    "corner_prog_gated": ("OK", 0, 0), "corner_prog_dense": ("OK", 0, 0),
    "corner_prog_res_list": ("OK", 0, 0), "corner_prog_all_off": ("OK", 0, 0),
    "corner_bad_op": ("BAD_OP", 0, 0), "corner_gate_shift_zero": ("BAD_GATE", 0, 2),
    "corner_gate_shift_63": ("BAD_GATE", 0, 2), "corner_gate_reserved_word": ("BAD_GATE", 0, 14),
    "corner_gate_flags": ("BAD_FLAGS", 0, 4), "corner_gate_hidden_over_in_c": ("BAD_SHAPE", 0, 2),
    "corner_gate_list_outside_work": ("BAD_OFFSET", 0, 8),
    "corner_gate_mask_misaligned": ("BAD_OFFSET", 0, 7),
    "corner_gate_bin_out_of_range": ("BAD_GATE", 0, 3), "corner_gate_bin_empty": ("BAD_GATE", 0, 9),
    "corner_gate_recip_zero": ("BAD_GATE", 0, 5), "corner_gate_recip_total_over": ("BAD_GATE", 0, 16),
    "corner_gate_bias_limit": ("BAD_GATE", 0, 0), "corner_gate_o1_limit": ("BAD_GATE", 0, 3),
    "corner_gate_b2_limit": ("BAD_GATE", 0, 15), "corner_head_not_last": ("BAD_OP", 2, 0),
    "corner_from_gate_without_gate": ("BAD_FLAGS", 0, 1),
    "corner_head_classes_over": ("BAD_SHAPE", 3, 1),
    "corner_head_log_outside_work": ("BAD_OFFSET", 3, 6),
    "corner_head_reserved_word": ("BAD_GATE", 3, 7),
}


@pytest.mark.parametrize("config", ["small", "ultra96"])
def test_contract_corners_include_the_program_records(config, tmp_path):
    from dgfpga.backends.vectors import contract_corners
    cfg = load_config(config)
    sets = {vs.name: vs for vs in contract_corners(cfg)}
    assert set(PROGRAM_CORNERS) <= set(sets)
    for name, (code, rec, entry) in PROGRAM_CORNERS.items():
        vs = read_vector_set(write_vector_set(sets[name], tmp_path / name))
        assert regmap.unpack_status(vs.expected_status) == (regmap.ERR[code], rec, entry), name
        r = _check_program(vs, cfg)
        if code != "OK":                 # records after the faulty one never ran
            assert len(r.records) == rec
        if code != "OK" and rec == 0:    # the faulty first record wrote nothing
            for k in ("fmap", "work", "sums"):
                assert np.array_equal(vs.expected[k], vs.before[k]), (name, k)
    gated = sets["corner_prog_gated"]
    assert gated.meta["records"] == ["gate", "conv", "conv", "head"] and gated.macs > 0
    assert sets["corner_prog_all_off"].meta["records"] == ["gate", "skipped", "skipped", "head"]
    assert sets["corner_prog_dense"].run_flags == 1
    assert sets["corner_prog_dense"].macs > gated.macs


def test_manifest_ignore_and_run_flags(tmp_path):
    cfg = load_config("small")
    vs = next(layer_sweep(cfg))
    vs.run_flags, vs.ignore = 1, [("work", 0, 8)]
    p = write_vector_set(vs, tmp_path / "v")
    back = read_vector_set(p)
    assert back.run_flags == 1 and back.ignore == [("work", 0, 8)]
    text = (p / "vector.txt").read_text()
    (p / "vector.txt").write_text(text.replace("ignore work 0 8", "ignore work 0"))
    with pytest.raises(FormatError, match="ignore needs"):
        read_vector_set(p)
    (p / "vector.txt").write_text(text.replace("ignore work 0 8", f"ignore work {10 ** 9} 8"))
    with pytest.raises(FormatError, match="outside"):
        read_vector_set(p)
