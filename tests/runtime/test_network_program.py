"""The network program: a whole image in ONE engine start through the numpy interpreter.

References: the golden model (logits, gate decisions, every block output, MACs) and the
scheduler (`Scheduler.block`: the effective descriptors of the from_gate layers and the
WORK bytes the gate records write must be what it produces today).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dgfpga.contract import formats
from dgfpga.contract import program as P
from dgfpga.contract import regmap as R
from dgfpga.contract.engine_config import load_config
from dgfpga.numerics.golden import run_golden
from dgfpga.runtime import interpreter
from dgfpga.runtime.interpreter import run_program
from dgfpga.runtime.packer import plan_network, start_regions as _memory
from dgfpga.runtime.scheduler import Scheduler

SMALL = load_config("small")
RB = formats.DESCRIPTOR_BYTES
CKPT = Path(__file__).resolve().parents[2] / "models" / "checkpoints"


@pytest.fixture(scope="module")
def plan(test_qmodel):
    return plan_network(test_qmodel, SMALL)


def _tensor(plan, mem, name) -> np.ndarray:
    c, h, w = plan.qmodel.tensors[name].shape
    b = plan.fmap[name]
    raw = mem["fmap"][b.offset:b.offset + b.nbytes].reshape(h, w, c)
    return np.moveaxis(raw.view(np.int8) if plan.qmodel.tensors[name].signed else raw, -1, 0)


def _logits(plan, mem) -> np.ndarray:
    b = plan.logits
    return mem["work"][b.offset:b.offset + b.nbytes].view("<i8")


def _conv_macs(g, qm, n):
    return sum(int(v[n]) for k, v in g.macs.items() if ".mask_" not in k and k != qm.head.name)


def _check_image(plan, g, n, dense, every_block=False):
    """One start per image == golden: logits, masks (result and WORK), the final tensors,
    the MACs; with every_block, each block's output through a start of the program up to
    that block's conv2 (identity blocks overwrite their input in place)."""
    qm = plan.qmodel
    mem = _memory(plan, g.layers["input"][n])
    r = run_program(plan.program, plan.record_count, mem, plan.cfg,
                    P.RUN_DENSE if dense else 0)
    assert r.ok, r.message
    assert len(r.records) == plan.record_count and r.records[-1] == "head"
    np.testing.assert_array_equal(_logits(plan, mem), g.logits_int[n])
    assert len(r.gate_masks) == len(plan.blocks)
    for i, bp in enumerate(plan.blocks):
        sp, ch = r.gate_masks[i]
        np.testing.assert_array_equal(sp.reshape(-1), g.masks[i].spatial[n].reshape(-1),
                                      err_msg=f"image {n} block {i} spatial")
        np.testing.assert_array_equal(ch, g.masks[i].channel[n], err_msg=f"block {i} channel")
        m = bp.mask
        got = P.decode_masks(mem["work"][m.offset:m.offset + m.nbytes], sp.size, ch.size)
        assert np.array_equal(got[0], sp.reshape(-1)) and np.array_equal(got[1], ch)
    assert sum(r.macs) == _conv_macs(g, qm, n)
    np.testing.assert_array_equal(_tensor(plan, mem, plan.blocks[-1].out_tensor),
                                  g.layers[plan.blocks[-1].out_tensor][n])
    log = plan.cycle_log
    assert not mem["work"][log.offset:log.offset + log.nbytes].any()
    if every_block:
        ends = [k for k, rp in enumerate(plan.records) if rp.kind == "conv2"]
        for i, end in enumerate(ends):
            mem = _memory(plan, g.layers["input"][n])
            r = run_program(plan.program[:(end + 1) * RB], end + 1, mem, plan.cfg,
                            P.RUN_DENSE if dense else 0)
            assert r.ok, r.message
            name = plan.blocks[i].out_tensor
            np.testing.assert_array_equal(_tensor(plan, mem, name), g.layers[name][n],
                                          err_msg=f"image {n} block {i}")
    return mem, r


# ---- the program's shape ---------------------------------------------------------------
def test_program_records(plan):
    kinds = [rp.kind for rp in plan.records]
    assert kinds[0] == "stem" and kinds[-1] == "head" and kinds.count("head") == 1
    assert kinds.count("gate") == len(plan.blocks)
    assert len(plan.program) == plan.record_count * RB
    for k, rp in enumerate(plan.records):
        raw = plan.program[k * RB:(k + 1) * RB]
        op = P.record_op(raw)
        if rp.kind == "gate":
            assert op == P.OP_GATE
            assert P.unpack_gate_record(raw, SMALL, plan.region_bytes) == \
                plan.blocks[rp.block].gate_record
        elif rp.kind == "head":
            assert op == P.OP_HEAD
            assert P.unpack_head_record(raw, SMALL, plan.region_bytes,
                                        plan.record_count) == plan.head_record
        else:
            d = formats.unpack_descriptor(raw, SMALL, plan.region_bytes)
            assert d.from_gate == (rp.kind in ("conv1", "conv2"))
    want = ["stem"]
    for bp in plan.blocks:
        want += ["gate", "conv1"] + (["downsample"] if bp.downsample else []) + ["conv2"]
    assert kinds == want + ["head"]
    for bp in plan.blocks:               # each gate points at its block's slots
        r = bp.gate_record
        s1 = formats.work_slots(bp.conv1.template, bp.conv1.work_slot.offset, SMALL.axi_bytes)
        s2 = formats.work_slots(bp.conv2.template, bp.conv2.work_slot.offset, SMALL.axi_bytes)
        assert (r.c1_tiles_offset, r.c1_out_ch_offset) == (s1.tiles, s1.out_ch)
        assert (r.c2_tiles_offset, r.c2_in_ch_offset, r.c2_bitmap_offset) == \
            (s2.tiles, s2.in_ch, s2.bitmap)
        assert r.res_list == (not bp.identity)
        assert r.c2_res_tiles_offset == (0 if bp.identity else s2.res_tiles)


def _mask_sets(plan, rng):
    for kind in ("random", "off", "on", "tiles_only", "channels_only"):
        out = []
        for bp in plan.blocks:
            n, c = bp.grid[0] * bp.grid[1], bp.conv1.template.out_c
            sp = {"random": rng.random(n) < 0.5, "off": np.zeros(n, bool), "on": np.ones(n, bool),
                  "tiles_only": np.ones(n, bool), "channels_only": np.zeros(n, bool)}[kind]
            ch = {"random": rng.random(c) < 0.5, "off": np.zeros(c, bool), "on": np.ones(c, bool),
                  "tiles_only": np.zeros(c, bool), "channels_only": np.ones(c, bool)}[kind]
            out.append((sp, ch))
        yield kind, out


def test_effective_descriptors_and_gate_work_equal_the_scheduler(plan):
    """E of every from_gate layer == Scheduler.block's descriptor, field for field (skipped
    exactly when the scheduler omits the layer), and the gate's WORK bytes == its writes."""
    sch = Scheduler(plan, validate=True)
    rng = np.random.default_rng(5)
    for kind, masks in _mask_sets(plan, rng):
        for i, bp in enumerate(plan.blocks):
            sp, ch = masks[i]
            run = sch.block(i, sp, ch)
            want = run.descriptors(SMALL)
            nt, nc = int(sp.sum()), int(ch.sum())
            got = [P.effective_descriptor(lp.program_template, nt, nc) if lp.kind != "downsample"
                   else lp.program_template
                   for lp in (bp.conv1, bp.downsample, bp.conv2) if lp is not None]
            got = [d for d in got if d is not None]
            assert got == want, (kind, i)
            work = np.zeros(plan.region_bytes["work"], np.uint8)
            for off, data in P.gate_work_writes(bp.gate_record, sp, ch):
                work[off:off + data.size] = data
            for off, data in run.work_writes:
                np.testing.assert_array_equal(work[off:off + data.size], data,
                                              err_msg=f"{kind} block {i} at {off}")
            for d in want:                         # the engine's reads of them validate
                formats.read_work_list(d, work)


# ---- one start == golden --------------------------------------------------------------
@pytest.mark.parametrize("dense", [False, True])
def test_one_start_equals_golden(plan, test_qmodel, calib_images, dense):
    g = run_golden(test_qmodel, calib_images[:2], masks="dense" if dense else None)
    for n in range(2):
        _check_image(plan, g, n, dense, every_block=(n == 0))


def test_stem_im2col_is_set_and_changes_no_result(plan, test_qmodel, calib_images):
    """The packer sets im2col on the 3-channel stem only (formats.choose_im2col) and lays
    its weights out flattened; without it (plan_network(im2col=False)) the one start
    writes exactly the same logits, masks, feature maps and sums."""
    flags = [lp.template.im2col for lp in plan.layers]
    assert flags[0] and not any(flags[1:])
    t = plan.stem.template
    want = np.zeros((t.out_c, formats.im2col_row_bytes(t, SMALL)), np.int8)
    w = test_qmodel.stem.conv.weight
    want[:, :w[0].size] = w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
    got = plan.weight_image[t.weight_offset:t.weight_offset + want.size].view(np.int8)
    np.testing.assert_array_equal(got, want.reshape(-1))
    off = plan_network(test_qmodel, SMALL, im2col=False)
    assert not any(lp.template.im2col for lp in off.layers)
    x = run_golden(test_qmodel, calib_images[:1]).layers["input"][0]
    a, b = _memory(plan, x), _memory(off, x)
    ra = run_program(plan.program, plan.record_count, a, plan.cfg)
    rb = run_program(off.program, off.record_count, b, off.cfg)
    assert ra.ok and rb.ok and ra.macs == rb.macs
    for r in ("fmap", "work", "sums"):
        np.testing.assert_array_equal(a[r], b[r], err_msg=r)


def test_one_start_after_a_different_image_leaves_nothing_stale(plan, test_qmodel, calib_images):
    """The same memory reused image after image (what the host does): no stale state."""
    g = run_golden(test_qmodel, calib_images[:3])
    mem = _memory(plan, g.layers["input"][0])
    for n in (0, 1, 2, 1):
        ib = plan.fmap[plan.input_tensor]
        mem["fmap"][ib.offset:ib.offset + ib.nbytes] = \
            np.ascontiguousarray(np.moveaxis(g.layers["input"][n], 0, -1)).view(np.uint8).reshape(-1)
        r = run_program(plan.program, plan.record_count, mem, SMALL)
        assert r.ok, r.message
        np.testing.assert_array_equal(_logits(plan, mem), g.logits_int[n])


def test_gate_decisions_equal_gates_from_tile_sums(plan, test_qmodel, calib_images):
    """The interpreter's bin route equals numerics.gates.gates_from_tile_sums (H1's one
    definition) on the engine's own sums."""
    from dgfpga.numerics import gates
    qm = test_qmodel
    g = run_golden(qm, calib_images[:1])
    for i, bp in enumerate(plan.blocks):
        x = np.moveaxis(g.layers[bp.in_tensor][0].astype(np.int64), 0, -1)
        ts = formats.tile_pixel_sums(x, bp.in_sums_tile).astype(np.int64)
        h, w = x.shape[:2]
        table = gates.bin_table(h, w, bp.in_sums_tile, bp.grid)
        want = gates.gates_from_tile_sums(ts, table, qm.blocks[i].spatial_gate,
                                          qm.blocks[i].channel_gate)
        r = bp.gate_record
        blob = plan.weight_image[r.param_offset:].tobytes()
        p = P.unpack_gate_params(blob, r.in_c, r.out_c, r.hidden, r.gh, r.gw, SMALL.axi_bytes)
        got = interpreter.gate_decisions(ts, p, r.h_shift)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), i


# ---- faults through run_program -------------------------------------------------------
def _status(r):
    code, layer, entry = R.unpack_status(r.status)
    return R.ERROR_NAMES[code], layer, entry


def _fault_run(plan, program, count, weight=None):
    mem = _memory(plan, np.zeros(plan.qmodel.input_shape, np.int8))
    if weight is not None:
        mem["weight"][:] = weight
    return run_program(program, count, mem, SMALL), mem


def _rec(plan, kind, block=0):
    k = next(k for k, rp in enumerate(plan.records) if rp.kind == kind and
             (rp.block == block or kind == "head"))
    return k, plan.program[k * RB:(k + 1) * RB]


def test_head_not_last_is_bad_op(plan):
    kh, head = _rec(plan, "head")
    prog = plan.program[:RB] + head + plan.program[RB:2 * RB]
    r, _ = _fault_run(plan, prog, 3)
    assert _status(r) == ("BAD_OP", 1, 0) and r.records == ["conv"]


def test_from_gate_without_gate_is_bad_flags(plan):
    k1, conv1 = _rec(plan, "conv1")
    r, _ = _fault_run(plan, plan.program[:RB] + conv1, 2)
    assert _status(r) == ("BAD_FLAGS", 1, formats.FIELD_BY_NAME["from_gate"].word)


def test_unknown_op_is_bad_op(plan):
    w = np.frombuffer(plan.program[:RB], "<u4").copy()
    for op in (0, 4, 15):
        w[0] = (int(w[0]) & ~(0xF << 16)) | (op << 16)
        r, _ = _fault_run(plan, w.tobytes(), 1)
        assert _status(r) == ("BAD_OP", 0, 0), op


def test_malformed_gate_params_write_nothing(plan, test_qmodel, calib_images):
    """A bad bin / recip / bias in the WEIGHT blob: BAD_GATE at that entry, the gate
    record writes nothing (masks and lists untouched), earlier records completed."""
    kg, _ = _rec(plan, "gate", 1)
    rec = plan.blocks[1].gate_record
    lay = P.gate_param_layout(rec.in_c, rec.out_c, rec.hidden, rec.gh, rec.gw, SMALL.axi_bytes)
    x = run_golden(test_qmodel, calib_images[:1]).layers["input"][0]
    clean = _memory(plan, x)
    ok = run_program(plan.program[:kg * RB], kg, clean, SMALL)
    assert ok.ok
    cases = [("bins", 1, np.uint8(rec.st_h + 1), "u1", 1),
             ("recip", 2, np.uint32(0), "<u4", 2),
             ("o1", 1, np.int64(1 << 46), "<i8", 1),
             ("b2", 3, np.int64(-(1 << 46)), "<i8", 3)]
    for section, idx, value, dt, entry in cases:
        weight = plan.weight_image.copy()
        size = np.dtype(dt).itemsize
        o = rec.param_offset + lay.offsets[section] + idx * size
        weight[o:o + size] = np.frombuffer(np.array([value], dtype=dt).tobytes(), np.uint8)
        mem = _memory(plan, x)
        mem["weight"][:] = weight
        r = run_program(plan.program, plan.record_count, mem, SMALL)
        assert _status(r) == ("BAD_GATE", kg, entry), section
        for reg in ("fmap", "work", "sums"):
            np.testing.assert_array_equal(mem[reg], clean[reg], err_msg=f"{section}: {reg}")


def test_dense_flag_checks_the_gate_params_too(plan):
    kg, _ = _rec(plan, "gate", 0)
    rec = plan.blocks[0].gate_record
    weight = plan.weight_image.copy()
    lay = P.gate_param_layout(rec.in_c, rec.out_c, rec.hidden, rec.gh, rec.gw, SMALL.axi_bytes)
    weight[rec.param_offset + lay.offsets["recip"]:][:4] = 0
    mem = _memory(plan, np.zeros(plan.qmodel.input_shape, np.int8))
    mem["weight"][:] = weight
    r = run_program(plan.program, plan.record_count, mem, SMALL, P.RUN_DENSE)
    assert _status(r) == ("BAD_GATE", kg, 0)


def test_program_longer_than_max_layers(plan):
    import dataclasses
    cfg = dataclasses.replace(SMALL, max_layers=plan.record_count - 1)
    mem = _memory(plan, np.zeros(plan.qmodel.input_shape, np.int8))
    r = run_program(plan.program, plan.record_count, mem, cfg)
    assert _status(r) == ("BAD_COUNT", 0, 0)
    plan.check_program()
    with pytest.raises(Exception, match="max_layers"):
        dataclasses.replace(plan, cfg=cfg).check_program()


def test_old_per_block_flow_still_runs(plan):
    """Conv-only programs (the scheduler's per-block starts) run as before."""
    sch = Scheduler(plan)
    mem = _memory(plan, np.zeros(plan.qmodel.input_shape, np.int8))
    r = run_program(sch.stem().program, 1, mem, SMALL)
    assert r.ok and r.records == ["conv"] and r.gate_masks == []


# ---- the shipped model -----------------------------------------------------------------
_SHIPPED: dict = {}


def _shipped(name: str):
    """A shipped checkpoint quantized (64 calibration images) and 20 test images (cached)."""
    if name not in _SHIPPED:
        pytest.importorskip("torch")
        pytest.importorskip("dgfpga_models", reason="dgfpga_models (models/) is not installed")
        from dgfpga.data.embedded import load_split
        from dgfpga.quant.float_model import load_float_model
        from dgfpga.quant.quantizer import quantize_model
        model, _ = load_float_model(CKPT / f"resdg20_cifar10_{name}.pth.tar", "resdg20_cifar10")
        qm = quantize_model(model, load_split("train", 64).images)
        _SHIPPED[name] = plan_network(qm, SMALL), load_split("test", 20).images
    return _SHIPPED[name]


@pytest.mark.parametrize("dense", [False, True])
def test_shipped_model_one_start(dense):
    plan, images = _shipped("d50")
    g = run_golden(plan.qmodel, images[:2], masks="dense" if dense else None)
    for n in range(2):
        _check_image(plan, g, n, dense, every_block=(n == 0))


@pytest.mark.slow
@pytest.mark.parametrize("ckpt", ["d50", "d30", "dense"])
@pytest.mark.parametrize("dense", [False, True])
def test_shipped_models_one_start_20_images(ckpt, dense):
    """Every shipped checkpoint, 20 test images, gated and dense: logits, masks, every
    block output and the MACs of one start equal the golden model."""
    plan, images = _shipped(ckpt)
    g = run_golden(plan.qmodel, images, masks="dense" if dense else None)
    assert g.logits_int.shape[0] >= 20
    for n in range(g.logits_int.shape[0]):
        _check_image(plan, g, n, dense, every_block=True)


# ---- ResNet-18 (random weights, mixed gates) on the ultra96 engine ---------------------
@pytest.mark.slow
def test_random_resdg18_ultra96_one_start():
    pytest.importorskip("torch")
    pytest.importorskip("dgfpga_models", reason="dgfpga_models (models/) is not installed")
    from dgfpga.quant.float_model import make_test_model
    from dgfpga.quant.quantizer import quantize_model
    rng = np.random.default_rng(18)
    images = np.clip(rng.normal(0, 1, (4, 3, 224, 224)), -1.8, 2.2).astype(np.float32)
    qm = quantize_model(make_test_model("resdg18", images), images)
    plan = plan_network(qm, load_config("ultra96"))
    plan.check_program()
    g = run_golden(qm, images[:1])
    on = [float(m.spatial[0].mean()) for m in g.masks]
    assert 0 < np.mean(on) < 1, "mixed gates"
    gd = run_golden(qm, images[:1], masks="dense")
    _check_image(plan, g, 0, False)
    _check_image(plan, gd, 0, True)


def test_sums_outside_the_gate_domain_are_refused(plan, test_qmodel, calib_images):
    """Sums no 8-bit map can produce (a bin sum >= 2^38 or a pooled value >= 2^17): the reference refuses to define
    the decisions (GateDomainError) instead of returning a number the engines need not match."""
    kg, _ = _rec(plan, "gate", 0)
    x = run_golden(test_qmodel, calib_images[:1]).layers["input"][0]
    mem = _memory(plan, x)
    assert run_program(plan.program[:kg * RB], kg, mem, SMALL).ok
    rec = plan.blocks[0].gate_record
    n = rec.st_h * rec.st_w * rec.in_c
    mem["sums"][rec.sums_offset:rec.sums_offset + 4 * n] = \
        np.full(n, 2 ** 31 - 1, "<i4").view(np.uint8)
    with pytest.raises(interpreter.GateDomainError, match="domain"):
        run_program(plan.program[kg * RB:(kg + 1) * RB], 1, mem, SMALL)
    r = run_program(plan.program[kg * RB:(kg + 1) * RB], 1, mem, SMALL, P.RUN_DENSE)
    assert r.ok and r.gate_masks[0][0].all()     # dense: no evaluation, no domain
