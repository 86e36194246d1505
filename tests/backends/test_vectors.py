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


# ---- Bottleneck programs: the gate-2 record ------------------------------------------------
BOTTLENECK_CORNERS = {  # corner_gate2_<name> -> (STATUS code, record, entry)
    "without_gate": ("BAD_OP", 1, 0), "reserved_word": ("BAD_GATE", 3, 12),
    "reserved_bits": ("BAD_GATE", 3, 3), "reserved_bit_h_shift_word": ("BAD_GATE", 3, 2),
    "in_c_zero": ("BAD_SHAPE", 3, 1), "in_c_over": ("BAD_SHAPE", 3, 1),
    "out_c_over": ("BAD_SHAPE", 3, 1), "hidden_zero": ("BAD_SHAPE", 3, 2),
    "hidden_over_in_c": ("BAD_SHAPE", 3, 2), "shift_zero": ("BAD_GATE", 3, 2),
    "shift_63": ("BAD_GATE", 3, 2), "st_h_zero": ("BAD_TILE", 3, 3),
    "st_w_over": ("BAD_TILE", 3, 3), "sums_misaligned": ("BAD_OFFSET", 3, 4),
    "sums_outside": ("BAD_OFFSET", 3, 4), "params_outside": ("BAD_OFFSET", 3, 5),
    "in_mask_outside": ("BAD_OFFSET", 3, 6), "mask_misaligned": ("BAD_OFFSET", 3, 7),
    "out_list_outside": ("BAD_OFFSET", 3, 8), "in_list_misaligned": ("BAD_OFFSET", 3, 9),
    "recip_zero": ("BAD_GATE", 3, 0), "recip_over": ("BAD_GATE", 3, 0),
    "o1_limit": ("BAD_GATE", 3, 3), "b2_limit": ("BAD_GATE", 3, 5),
    "in_mask_padding": ("BAD_GATE", 3, 6),
}


@pytest.fixture(scope="module")
def bottleneck():
    from dgfpga.backends.vectors import bottleneck_program_vectors
    return bottleneck_program_vectors(load_config("small"))


def test_bottleneck_vectors_replay(bottleneck, tmp_path):
    """The shared Bottleneck program (two blocks, 13 records, one start) per image, gated
    and dense: the file round trip keeps it; the interpreter reproduces every expected byte
    and the MACs; the expected WORK holds the golden model's logits and each block's
    mask_s / mask_c1 / mask_c2 (decoded here from the bytes, compared with a fresh golden
    run); the gated images have mixed gates and block b1's mask_c1 count differs from
    b0's mask_c2 count (a stale nc2 would show)."""
    from dgfpga.backends.vectors import bottleneck_qmodel
    from dgfpga.contract import formats, program as P
    from dgfpga.numerics.golden import run_golden
    from dgfpga.runtime.packer import plan_network
    cfg = load_config("small")
    qm, images = bottleneck_qmodel()
    plan = plan_network(qm, cfg)
    assert [vs.name for vs in bottleneck] == ["bottleneck_gated_img0", "bottleneck_gated_img1",
                                              "bottleneck_dense_img0", "bottleneck_dense_img1"]
    kinds = [rp.kind for rp in plan.records]
    assert kinds == ["stem", "gate", "conv1", "gate2", "downsample", "conv2", "conv3",
                     "gate", "conv1", "gate2", "conv2", "conv3", "head"]
    d2 = plan.blocks[0].conv2.template
    assert d2.stride == 2 and d2.zero_halo and d2.in_ch_gated and d2.out_ch_gated
    assert plan.blocks[0].conv1.template.emit_sums and plan.blocks[1].conv3.template.in_place
    for vs in bottleneck:
        back = read_vector_set(write_vector_set(vs, tmp_path / vs.name))
        assert back.program == plan.program and back.run_flags == vs.run_flags
        _check_program(back, cfg)
        dense = "dense" in vs.name
        n = int(vs.name[-1])
        g = run_golden(qm, images[n:n + 1], masks="dense" if dense else None)
        lg = plan.logits
        assert np.array_equal(vs.expected["work"][lg.offset:lg.offset + lg.nbytes].view("<i8"),
                              g.logits_int[0])
        counts = []
        for i, bp in enumerate(plan.blocks):
            m, r2 = bp.mask, bp.gate2_record
            sp, ch = P.decode_masks(vs.expected["work"][m.offset:m.offset + m.nbytes],
                                    bp.grid[0] * bp.grid[1], r2.in_c)
            ch2 = formats.unpack_bitmap(vs.expected["work"][r2.mask_offset:r2.mask_offset + 4],
                                        r2.out_c)
            ids = vs.expected["work"][r2.c2_out_ch_offset:r2.c2_out_ch_offset + 2 * ch2.sum()]
            assert np.array_equal(ids.view("<u2"), np.flatnonzero(ch2))
            assert np.array_equal(sp, g.masks[i].spatial[0].reshape(-1))
            assert np.array_equal(ch, g.masks[i].channel[0])
            assert np.array_equal(ch2, g.masks[i].channel2[0])
            counts.append((sp.mean(), ch.mean(), ch2.mean()))
        if dense:
            assert all(c == (1, 1, 1) for c in counts)
        else:
            assert all(0 < v < 1 for c in counts for v in c), counts
            assert counts[1][1] * 8 != counts[0][2] * 8


def test_bottleneck_vectors_detect_an_engine_that_ignores_gate2(bottleneck, monkeypatch):
    """The expectation is sharp for the gate-2 semantics: an engine whose from_gate layers
    ignore the gate-2 count (conv2/conv3 with mask_c1's count), or that does not clear it
    at the next gate record (block b1's conv1 with b0's mask_c2 count), differs in memory."""
    from dgfpga.backends.vectors import compare_expected
    from dgfpga.contract import program as P
    from dgfpga.runtime.interpreter import GateDomainError
    cfg = load_config("small")
    real = P.effective_descriptor
    wrong = {
        "ignores nc2": lambda d, nt, nc, nc2=None: real(d, nt, nc, None),
        "stale nc2": None,
    }
    state = {}

    def stale(d, nt, nc, nc2=None):            # keeps the last gate-2 count across blocks
        if nc2 is not None:
            state["nc2"] = nc2
        return real(d, nt, nc, state.get("nc2"))
    wrong["stale nc2"] = stale
    for vs in bottleneck[:2]:                  # each gated image on its own
        for what, fn in wrong.items():
            state.clear()
            monkeypatch.setattr(P, "effective_descriptor", fn)
            mem = {k: v.copy() for k, v in vs.before.items()}
            try:
                run_program(vs.program, vs.layer_count, mem, cfg, vs.run_flags)
            except GateDomainError:    # the wrong count fed pattern bytes to a gate: caught
                continue
            assert compare_expected(vs, mem) != [], (vs.name, what)
        monkeypatch.setattr(P, "effective_descriptor", real)
        mem = {k: v.copy() for k, v in vs.before.items()}
        run_program(vs.program, vs.layer_count, mem, cfg, vs.run_flags)
        assert compare_expected(vs, mem) == []


def test_bottleneck_builder_refuses_a_reference_that_disagrees_with_golden(monkeypatch):
    """The vectors' expected memory is the interpreter's, accepted only when it equals the
    golden model: an interpreter whose gate-2 decisions are off is refused by the builder."""
    from dgfpga.backends import vectors as V
    from dgfpga.runtime import interpreter
    real = interpreter._run_gate2

    def flipped(*a, **kw):
        ch2 = real(*a, **kw)
        ch2[0] = not ch2[0]
        return ch2
    monkeypatch.setattr(interpreter, "_run_gate2", flipped)
    with pytest.raises(AssertionError, match="differ from the golden"):
        V.bottleneck_program_vectors(load_config("small"), n_images=1)


def test_bottleneck_corners_cover_every_gate2_check(tmp_path):
    """One corner per gate-2 check, each with the contract's STATUS (code, record, ENTRY;
    every field word 1..9, a reserved word, each parameter section checked, the masks'
    padding bits): the file round trip keeps it, the interpreter reproduces STATUS and
    memory, the records after the faulty one never ran and the faulty record wrote none of
    its sections (mask_c2, conv2's out-channel list, conv3's in-channel list)."""
    from dgfpga.backends.vectors import bottleneck_corners, bottleneck_qmodel
    from dgfpga.runtime.packer import plan_network
    cfg = load_config("small")
    sets = {vs.name: vs for vs in bottleneck_corners(cfg)}
    assert set(sets) == {f"corner_gate2_{n}" for n in BOTTLENECK_CORNERS}
    assert {e for _, rec, e in BOTTLENECK_CORNERS.values() if rec == 3} >= set(range(10)) | {12}
    r2 = plan_network(bottleneck_qmodel()[0], cfg).blocks[0].gate2_record
    own = [(r2.mask_offset, 4), (r2.c2_out_ch_offset, 2 * r2.out_c),
           (r2.c3_in_ch_offset, 2 * r2.out_c)]
    for name, (code, rec, entry) in BOTTLENECK_CORNERS.items():
        vs = read_vector_set(write_vector_set(sets[f"corner_gate2_{name}"], tmp_path / name))
        assert regmap.unpack_status(vs.expected_status) == (regmap.ERR[code], rec, entry), name
        r = _check_program(vs, cfg)
        assert len(r.records) == rec
        for off, nb in own:
            assert np.array_equal(vs.expected["work"][off:off + nb],
                                  vs.before["work"][off:off + nb]), name


def test_write_bottleneck_vectors_writes_every_set(bottleneck, tmp_path):
    """`write_bottleneck_vectors`: the 4 programs and every gate-2 corner as folders whose
    sets read back equal (program, memory before, expectation, STATUS, run_flags)."""
    from dgfpga.backends.vectors import write_bottleneck_vectors
    paths = write_bottleneck_vectors(tmp_path, load_config("small"))
    assert len(paths) == len(bottleneck) + len(BOTTLENECK_CORNERS)
    assert sorted(p.name for p in paths) == sorted(
        [vs.name for vs in bottleneck] + [f"corner_gate2_{n}" for n in BOTTLENECK_CORNERS])
    for vs in bottleneck:
        back = read_vector_set(tmp_path / vs.name)
        assert back.program == vs.program and back.run_flags == vs.run_flags
        for r in ("fmap", "weight", "work", "sums"):
            assert np.array_equal(back.before[r], vs.before[r])
        for r in vs.expected:
            assert np.array_equal(back.expected[r], vs.expected[r])
