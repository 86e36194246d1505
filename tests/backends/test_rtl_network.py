"""The engine RTL running a whole network program in ONE start (issue 13).

The shipped resdg20_cifar10_d50 (quantized with the embedded calibration set) packed for
`small` (`runtime.packer.plan_network`): stem, per block gate record + conv1 [+ shortcut] +
conv2 (from_gate templates), head. References: the golden model's memory image after the
start (`vectors.network_program_vectors`: FMAP, WORK with masks, lists and logits, SUMS), the
numpy interpreter on the same program and memory (every byte but the cycle log, which only
a clocked engine fills), and the golden logits and gate masks. Malformed gate / head records
and gate parameters: the interpreter's STATUS, nothing written.

A Bottleneck network (issue 15): `resdg29b_cifar10` (9 official Bottleneck blocks, 256
channels, random weights, mixed gates) on `ultra96` (`small` holds 64 channels): per block
gate record, conv1 (compact output and compact sums), gate-2 record, [projection], conv2
gated on both sides, conv3 + residual, in ONE start; the interpreter and the golden model
(logits, mask_s / mask_c1 / mask_c2 of every block) as references.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ROOT, require_verilator

N_IMAGES = 2
DENSE = 1                       # regmap RUN_FLAGS.DENSE (program.RUN_DENSE)


@pytest.fixture(scope="module")
def net(shipped_qmodel):
    require_verilator()
    from dgfpga.backends import rtl_sim
    from dgfpga.contract.engine_config import load_config
    from dgfpga.data import embedded as data
    from dgfpga.numerics.golden import run_golden
    from dgfpga.runtime.packer import plan_network
    cfg = load_config("small")
    qm = shipped_qmodel
    plan = plan_network(qm, cfg)
    images = data.load_split("test", N_IMAGES).images
    golden = {0: run_golden(qm, images), DENSE: run_golden(qm, images, masks="dense")}
    rb = plan.region_bytes
    sim = rtl_sim.FastSim(cfg, mem_bytes=sum(rb.values()) + len(plan.program) + 6 * 4096)

    def regions(img: int) -> dict:
        mem = {"fmap": np.zeros(rb["fmap"], np.uint8), "weight": plan.weight_image.copy(),
               "work": np.zeros(rb["work"], np.uint8), "sums": np.zeros(rb["sums"], np.uint8)}
        buf = plan.fmap[plan.input_tensor]
        x = golden[0].layers[plan.input_tensor][img]
        mem["fmap"][buf.offset:buf.offset + buf.nbytes] = \
            np.ascontiguousarray(np.moveaxis(x, 0, -1)).view(np.uint8).reshape(-1)
        return mem
    return {"cfg": cfg, "plan": plan, "golden": golden, "regions": regions, "sim": sim,
            "qm": qm, "images": images}


def _interpret(net, program: bytes, n: int, mem: dict, flags: int):
    from dgfpga.runtime.interpreter import run_program
    ref = {k: v.copy() for k, v in mem.items()}
    res = run_program(program, n, ref, net["cfg"], run_flags=flags)
    return res, ref


def _check_image(net, img: int, flags: int, got_regions: dict, cycles: int, status: int,
                 before: dict) -> dict:
    """Bit-exact against the interpreter and the golden model; returns cycles per record kind."""
    from dgfpga.contract import program as prog
    plan = net["plan"]
    res, ref = _interpret(net, plan.program, plan.record_count, before, flags)
    assert res.status == 0 and status == 0, (hex(res.status), hex(status))
    cl = plan.cycle_log
    work = got_regions["work"].copy()
    log = work[cl.offset:cl.offset + cl.nbytes].view("<u4").copy()
    work[cl.offset:cl.offset + cl.nbytes] = ref["work"][cl.offset:cl.offset + cl.nbytes]
    for name, got in (("fmap", got_regions["fmap"]), ("work", work), ("sums", got_regions["sums"])):
        diff = np.flatnonzero(got != ref[name])
        assert diff.size == 0, f"image {img} flags {flags}: {name} differs at {diff[:8]}"
    g = net["golden"][flags]
    lo = plan.logits
    np.testing.assert_array_equal(work[lo.offset:lo.offset + lo.nbytes].view("<i8"), g.logits_int[img])
    for b, buf in enumerate(plan.masks):
        sp, ch = prog.decode_masks(work[buf.offset:buf.offset + buf.nbytes], buf_tiles(plan, b),
                                   plan.blocks[b].conv1.template.out_c)
        np.testing.assert_array_equal(sp, np.asarray(g.masks[b].spatial[img]).reshape(-1))
        np.testing.assert_array_equal(ch, np.asarray(g.masks[b].channel[img]).reshape(-1))
    # the per-record cycle log: every record took cycles, together all but start/done
    kinds = [r.kind for r in plan.records]
    assert log.size == len(kinds) and (log > 0).all(), log
    # not in the log: ap_start/ap_done and the head's own log write and drain
    assert 0 <= cycles - int(log.sum()) <= 64, (cycles, int(log.sum()))
    per: dict = {}
    for k, c in zip(kinds, log.tolist()):
        per.setdefault(k, []).append(c)
    return per


def buf_tiles(plan, b: int) -> int:
    gh, gw = plan.blocks[b].grid
    return gh * gw


@pytest.mark.verilator
@pytest.mark.parametrize("flags", [0, pytest.param(DENSE, marks=pytest.mark.slow)],
                         ids=["gated", "dense"])      # dense: also in test_shipped_model_rtl
def test_fast_network_one_start(net, flags):
    """2 test images, each ONE engine start of the whole program on the fast harness: the
    golden model's memory image, the interpreter, the cycle log."""
    from dgfpga.backends import vectors
    plan = net["plan"]
    sets = list(vectors.network_program_vectors(net["qm"], net["images"], net["cfg"],
                                                dense=bool(flags), plan=plan))
    assert len(sets) == N_IMAGES
    for img, vs in enumerate(sets):
        assert vs.run_flags == flags and vs.layer_count == plan.record_count
        run = net["sim"].run(vs.program, vs.layer_count, {k: v.copy() for k, v in vs.before.items()},
                             run_flags=vs.run_flags)
        for r, want in vs.expected.items():
            got = run.regions[r].copy()
            for region, off, n in vs.ignore:
                if region == r:
                    got[off:off + n] = want[off:off + n]
            diff = np.flatnonzero(got != want)
            assert diff.size == 0, f"{vs.name}: {r} differs from the golden image at {diff[:8]}"
        per = _check_image(net, img, flags, run.regions, run.cycles, run.status, vs.before)
        print(f"image {img} {'dense' if flags else 'gated'}: {run.cycles} cycles; gate "
              f"{per['gate']}, head {per['head']}")


def _mutate_word(program: bytes, rec: int, word: int, value: int, mask: int, lsb: int) -> bytes:
    b = bytearray(program)
    o = rec * 96 + 4 * word
    w = int.from_bytes(b[o:o + 4], "little")
    w = (w & ~(mask << lsb) & 0xFFFFFFFF) | ((value & mask) << lsb)
    b[o:o + 4] = w.to_bytes(4, "little")
    return bytes(b)


def _field(program: bytes, rec: int, fields, name: str, value: int) -> bytes:
    f = {x.name: x for x in fields}[name]
    return _mutate_word(program, rec, f.word, value, f.mask, f.lsb)


def _malformed_cases(net):
    """(name, program, layer_count, weight patch or None, run_flags): one faulty record that
    runs first (a gate record alone reads only its sums and parameters; the head alone is
    the last record), so the engine must write nothing at all."""
    from dgfpga.contract import program as prog
    plan = net["plan"]
    cfg = net["cfg"]
    gi = next(i for i, r in enumerate(plan.records) if r.kind == "gate")
    ds = next(i for i, r in enumerate(plan.records) if r.kind == "gate" and plan.blocks[r.block].downsample)
    gate = plan.program[gi * 96:(gi + 1) * 96]
    gate_ds = plan.program[ds * 96:(ds + 1) * 96]
    hi = plan.record_count - 1
    head = plan.program[hi * 96:]
    conv1 = plan.program[(gi + 1) * 96:(gi + 2) * 96]
    G, H = prog.GATE_FIELDS, prog.HEAD_FIELDS
    r = plan.blocks[0].gate_record
    lay = prog.gate_param_layout(r.in_c, r.out_c, r.hidden, r.gh, r.gw, cfg.axi_bytes)
    base = r.param_offset

    def param(section: str, index: int, value: int, dtype: str):
        off = base + lay.offsets[section] + index * np.dtype(dtype).itemsize
        return off, np.array([value], dtype=dtype).view(np.uint8)
    cases = [
        ("gate_reserved_bit_word2", _mutate_word(gate, 0, 2, 1, 1, 25), None, 0),
        ("gate_flags_bit3", _mutate_word(gate, 0, 4, 1, 1, 3), None, 0),
        ("gate_reserved_word20", _mutate_word(gate, 0, 20, 7, 0xFFFFFFFF, 0), None, 0),
        ("gate_in_c_0", _field(gate, 0, G, "in_c", 0), None, 0),
        ("gate_out_c_big", _field(gate, 0, G, "out_c", cfg.max_out_channels + 1), None, 0),
        ("gate_hidden_gt_in_c", _field(gate, 0, G, "hidden", r.in_c + 1), None, 0),
        ("gate_shift_0", _field(gate, 0, G, "h_shift", 0), None, 0),
        ("gate_shift_63", _field(gate, 0, G, "h_shift", 63), None, 0),
        ("gate_gw_0", _field(gate, 0, G, "gw", 0), None, 0),
        ("gate_st_h_big", _field(gate, 0, G, "st_h", cfg.max_grid + 1), None, 0),
        ("gate_res_offset_without_list", _field(gate, 0, G, "c2_res_tiles_offset", 64), None, 0),
        ("gate_param_misaligned", _field(gate, 0, G, "param_offset", base + 4), None, 0),
        ("gate_sums_outside", _field(gate, 0, G, "sums_offset", plan.region_bytes["sums"]), None, 0),
        ("gate_bitmap_outside", _field(gate, 0, G, "c2_bitmap_offset", plan.region_bytes["work"]), None, 0),
        ("gate_ds_res_list_outside", _field(gate_ds, 0, G, "c2_res_tiles_offset",
                                            plan.region_bytes["work"] - 8), None, 0),
        ("gate_bin_start_ge_end", gate, param("bins", 2, 3, "u1"), 0),     # row bin 1: start 3
        ("gate_bin_end_past_grid", gate, param("bins", 2 * r.gh + 1, r.st_w + 1, "u1"), 0),
        ("gate_recip_0", gate, param("recip", 5, 0, "<u4"), 0),
        ("gate_recip_total_big", gate, param("recip", r.gh * r.gw, (1 << 24) + 1, "<u4"), 0),
        ("gate_bs_big", gate, param("bs", 0, 1 << 46, "<i8"), 0),
        ("gate_o1_big", gate, param("o1", r.hidden - 1, -(1 << 46), "<i8"), 0),
        ("gate_b2_big", gate, param("b2", r.out_c - 1, 1 << 50, "<i8"), 0),
        ("gate_b2_big_dense", gate, param("b2", 0, 1 << 50, "<i8"), DENSE),
        ("head_classes_0", _field(head, 0, H, "classes", 0), None, 0),
        ("head_classes_big", _field(head, 0, H, "classes", prog.MAX_CLASSES + 1), None, 0),
        ("head_in_c_big", _field(head, 0, H, "in_c", cfg.max_in_channels + 1), None, 0),
        ("head_st_w_0", _field(head, 0, H, "st_w", 0), None, 0),
        ("head_logits_outside", _field(head, 0, H, "logits_offset", plan.region_bytes["work"] - 8), None, 0),
        ("head_log_misaligned", _field(head, 0, H, "log_offset", 4), None, 0),
        ("head_reserved_word7", _mutate_word(head, 0, 7, 1, 1, 0), None, 0),
        ("head_not_last", head + gate, None, 0),
        ("unknown_op", _mutate_word(gate, 0, 0, 9, 0xF, 16), None, 0),
        ("bad_version", _mutate_word(gate, 0, 0, 1, 0xFF, 8), None, 0),
        ("from_gate_without_gate", conv1, None, 0),
    ]
    return cases


@pytest.mark.verilator
def test_fast_malformed_records_flag_status_and_write_nothing(net):
    """Every malformed gate / head record or gate parameter: the interpreter's STATUS (code,
    record, entry), and not one byte of any region written."""
    from dgfpga.contract import regmap
    bad = []
    codes = set()
    for name, program, patch, flags in _malformed_cases(net):
        mem = net["regions"](0)
        # the block input's sums as the stem wrote them (a gate alone reads them)
        res0, ref0 = _interpret(net, net["plan"].program[:96], 1, mem, 0)
        mem = ref0
        if patch is not None:
            off, data = patch
            mem["weight"][off:off + data.size] = data
        n = len(program) // 96
        res, _ = _interpret(net, program, n, mem, flags)
        run = net["sim"].run(program, n, {k: v.copy() for k, v in mem.items()}, run_flags=flags)
        codes.add(res.status & 0xFF)           # STATUS.CODE (bits 7:0)
        changed = [k for k in mem if not np.array_equal(run.regions[k], mem[k])]
        if res.status == 0 or run.status != res.status or changed:
            bad.append((name, hex(res.status), hex(run.status), changed))
    assert not bad, bad
    assert regmap.ERR["BAD_GATE"] in codes and regmap.ERR["BAD_FLAGS"] in codes


@pytest.mark.slow        # the cocotb harness runs by default in test_rtl_engine's cocotb tests
@pytest.mark.verilator
def test_cocotb_network_first_block(net, tmp_path):
    """cocotb + AxiRam: stem, gate record, conv1, conv2 in one start (WORK written by the
    gate: masks and lists), bit-exact with the interpreter."""
    from dgfpga.backends import rtl_sim
    from dgfpga.backends.vectors import VectorSet, write_vector_set
    n = 4
    program = net["plan"].program[:n * 96]
    mem = net["regions"](0)
    res, ref = _interpret(net, program, n, mem, 0)
    assert res.status == 0 and res.records == ["conv", "gate", "conv", "conv"]
    vs = VectorSet("net_first_block", net["cfg"].name, net["cfg"].config_hash, program, n, mem,
                   {k: ref[k] for k in ("fmap", "work", "sums")}, 0, sum(res.macs))
    out = rtl_sim.run_cocotb(net["cfg"], [write_vector_set(vs, tmp_path / vs.name)])
    assert len(out) == 1 and out[0]["pass"], out


@pytest.mark.slow
@pytest.mark.verilator
@pytest.mark.parametrize("flags", [0, DENSE], ids=["gated", "dense"])
def test_cocotb_network_two_images(net, tmp_path, flags):
    """cocotb + AxiRam: the whole program, 2 images, one start each (~1.5 M / 2.6 M cycles):
    the golden memory image (the set's expected FMAP / WORK / SUMS), the interpreter, the
    cycle log (dumped WORK)."""
    from dgfpga.backends import rtl_sim, vectors
    sets = list(vectors.network_program_vectors(net["qm"], net["images"], net["cfg"],
                                                dense=bool(flags), plan=net["plan"]))
    dirs = [vectors.write_vector_set(vs, tmp_path / vs.name) for vs in sets]
    dump = tmp_path / "dump"
    res = rtl_sim.run_cocotb(net["cfg"], dirs, dump_dir=dump, timeout_cycles=4_000_000)
    assert len(res) == N_IMAGES and all(r["pass"] for r in res), \
        [(r["name"], r["pass"], r.get("work")) for r in res]
    for img, (r, vs) in enumerate(zip(res, sets)):
        got = {k: np.frombuffer((dump / f"{r['name']}.{k}.bin").read_bytes(), np.uint8)
               for k in ("fmap", "weight", "work", "sums")}
        _check_image(net, img, flags, got, r["cycles"], r["status"], vs.before)


@pytest.mark.slow
@pytest.mark.verilator
def test_fast_network_skew_config(net, tmp_path):
    """The same program on tests/backends/configs/skew.toml with max_layers 255 (Tm 8 != Tn 4,
    a 128-bit bus, max_grid 9): gate streams with 16-byte beats, bit-exact with the golden
    image, gated and dense."""
    from dgfpga.backends import rtl_sim, vectors
    from dgfpga.contract.engine_config import load_config
    from dgfpga.runtime.packer import plan_network
    text = (ROOT / "tests" / "backends" / "configs" / "skew.toml").read_text()
    text = text.replace('name = "skew"', 'name = "skew255"')
    text = "\n".join("max_layers = 255" if ln.startswith("max_layers") else ln for ln in text.splitlines())
    (tmp_path / "skew255.toml").write_text(text + "\n")
    cfg = load_config(tmp_path / "skew255.toml")
    assert cfg.axi_bytes == 16 and cfg.tm != cfg.tn
    plan = plan_network(net["qm"], cfg)
    sim = rtl_sim.FastSim(cfg, mem_bytes=sum(plan.region_bytes.values()) + len(plan.program) + 6 * 4096)
    bad = []
    for dense in (False, True):
        for vs in vectors.network_program_vectors(net["qm"], net["images"], cfg, dense=dense, plan=plan):
            r = rtl_sim.run_fast(vs, sim=sim)
            if not r["pass"]:
                bad.append((vs.name, hex(r["status"]), {k: v for k, v in r.items() if k.endswith("_mismatches")}))
    assert not bad, bad


# ---- a Bottleneck network: gate-2 records (issue 15) ----------------------------------------
BOTTLENECK_CONFIG = "ultra96"       # holds resdg29b's 256 channels (small: 64)


@pytest.fixture(scope="module")
def bnet():
    """resdg29b_cifar10 with random weights and mixed gates (the model of
    tests/runtime/test_bottleneck_program.py), packed for ultra96, its golden runs, a fast
    simulator."""
    pytest.importorskip("torch")
    pytest.importorskip("dgfpga_models", reason="dgfpga_models (models/) is not installed")
    require_verilator()
    import torch
    from dgfpga.backends import rtl_sim
    from dgfpga.contract.engine_config import load_config
    from dgfpga.numerics.golden import run_golden
    from dgfpga.quant.float_model import make_test_model
    from dgfpga.quant.quantizer import quantize_model
    from dgfpga.runtime.packer import plan_network
    torch.set_num_threads(1)
    x = np.random.default_rng(0).normal(0, 1, (8, 3, 32, 32)).astype(np.float32).clip(-1.9, 2.0)
    qm = quantize_model(make_test_model("resdg29b_cifar10", x), x)
    cfg = load_config(BOTTLENECK_CONFIG)
    plan = plan_network(qm, cfg)
    golden = {0: run_golden(qm, x[:1]), DENSE: run_golden(qm, x[:1], masks="dense")}
    sim = rtl_sim.FastSim(cfg, mem_bytes=sum(plan.region_bytes.values()) + len(plan.program) + 6 * 4096)
    return {"cfg": cfg, "plan": plan, "golden": golden, "sim": sim, "qm": qm, "x": x}


@pytest.mark.slow               # ~10 s per image, but a cold ultra96 build takes ~80 s
@pytest.mark.verilator
@pytest.mark.parametrize("flags", [0, DENSE], ids=["gated", "dense"])
def test_fast_bottleneck_network_one_start(bnet, flags):
    """resdg29b_cifar10, one image in ONE start on the fast harness: FMAP, WORK (masks, lists,
    logits) and SUMS equal the interpreter's byte for byte (the cycle log aside), the logits and
    every block's mask_s / mask_c1 / mask_c2 (WORK bytes) equal the golden model's; the gates
    are mixed on the gated image, so the gate-2 decisions and the nc2 counts matter."""
    _check_bottleneck_one_start(bnet, flags)


@pytest.fixture(scope="module")
def trained_bnet(bnet):
    """The shipped trained Bottleneck DGNet (resdg11b_cifar10_d55, quantized as `dgfpga
    quantize --calib embedded:256:train`), packed for ultra96, on an embedded test image."""
    from dgfpga.data.embedded import load_split
    from dgfpga.numerics.golden import run_golden
    from dgfpga.quant.float_model import load_float_model
    from dgfpga.quant.quantizer import QuantConfig, quantize_model
    from dgfpga.runtime.packer import plan_network
    from conftest import ROOT
    model, _ = load_float_model(ROOT / "models" / "checkpoints" / "resdg11b_cifar10_d55.pth.tar")
    qm = quantize_model(model, load_split("train", 256).images, QuantConfig(calibration_mode="gated"))
    plan = plan_network(qm, bnet["cfg"])
    x = load_split("test").images[:1]
    golden = {0: run_golden(qm, x), DENSE: run_golden(qm, x, masks="dense")}
    return {**bnet, "plan": plan, "golden": golden, "qm": qm, "x": x, "mixed": False}


@pytest.mark.slow
@pytest.mark.verilator
@pytest.mark.parametrize("flags", [0, DENSE], ids=["gated", "dense"])
def test_fast_trained_bottleneck_one_start(trained_bnet, flags):
    """The shipped trained Bottleneck network on a real test image, one start on the RTL:
    the same checks as for resdg29b (interpreter bytes, golden logits and masks)."""
    _check_bottleneck_one_start(trained_bnet, flags)


def _check_bottleneck_one_start(bnet, flags):
    from dgfpga.contract import formats
    from dgfpga.contract import program as prog
    from dgfpga.runtime.interpreter import run_program
    from dgfpga.runtime.packer import block_mask_layout, start_regions
    plan, g, cfg = bnet["plan"], bnet["golden"][flags], bnet["cfg"]
    if not flags and bnet.get("mixed", True):
        for name in ("spatial", "channel", "channel2"):
            on = np.concatenate([getattr(m, name)[:1].ravel() for m in g.masks])
            assert 0.1 < on.mean() < 0.9, name
    mem = start_regions(plan, g.layers["input"][0])
    ref = {k: v.copy() for k, v in mem.items()}
    res = run_program(plan.program, plan.record_count, ref, cfg, run_flags=flags)
    assert res.ok, res.message
    assert res.records.count("gate2") == len(plan.blocks)
    run = bnet["sim"].run(plan.program, plan.record_count, {k: v.copy() for k, v in mem.items()},
                          run_flags=flags)
    assert run.status == 0, hex(run.status)
    cl = plan.cycle_log
    work = run.regions["work"].copy()
    log = work[cl.offset:cl.offset + cl.nbytes].view("<u4").copy()
    work[cl.offset:cl.offset + cl.nbytes] = ref["work"][cl.offset:cl.offset + cl.nbytes]
    for name, got in (("fmap", run.regions["fmap"]), ("work", work), ("sums", run.regions["sums"])):
        diff = np.flatnonzero(got != ref[name])
        assert diff.size == 0, f"flags {flags}: {name} differs from the interpreter at {diff[:8]}"
    lo = plan.logits
    np.testing.assert_array_equal(work[lo.offset:lo.offset + lo.nbytes].view("<i8"), g.logits_int[0])
    for i, bp in enumerate(plan.blocks):
        n, c1 = bp.grid[0] * bp.grid[1], bp.conv1.template.out_c
        c2 = bp.conv2.template.out_c
        raw = work[bp.mask.offset:bp.mask.offset + bp.mask.nbytes]
        sp, ch = prog.decode_masks(raw, n, c1)
        ch2 = formats.unpack_bitmap(raw[block_mask_layout(n, c1, c2, cfg.axi_bytes)[1]:].tobytes(), c2)
        np.testing.assert_array_equal(sp, np.asarray(g.masks[i].spatial[0]).reshape(-1), f"block {i}")
        np.testing.assert_array_equal(ch, g.masks[i].channel[0], f"block {i}")
        np.testing.assert_array_equal(ch2, g.masks[i].channel2[0], f"block {i}")
    kinds = [r.kind for r in plan.records]
    assert log.size == len(kinds) and (log > 0).all(), log
    assert 0 <= run.cycles - int(log.sum()) <= 64, (run.cycles, int(log.sum()))
    per: dict = {}
    for k, c in zip(kinds, log.tolist()):
        per.setdefault(k, []).append(c)
    print(f"{plan.qmodel.arch} {'dense' if flags else 'gated'} on {cfg.name}: {run.cycles} cycles; " +
          ", ".join(f"{k} {len(v)}x = {sum(v)}" for k, v in per.items()))


@pytest.mark.slow
@pytest.mark.verilator
def test_fast_bottleneck_blocks_all_off(bnet):
    """The edge counts of the gate-2 path on the RTL: blocks whose gates are forced (through
    their biases) to no active tile (nt = 0: no conv1 sums to add, the totals are 0), no mask_c1
    channel (nc = 0: conv1 skipped, no sums stream) or no mask_c2 channel (nc2 = 0: conv2
    skipped, conv3 reads no channels), in turn: FMAP / WORK / SUMS equal the interpreter's, the
    logits and every mask the golden model's, and some layer is skipped."""
    import copy
    import dataclasses
    from dgfpga.contract import program as prog
    from dgfpga.numerics.golden import run_golden
    from dgfpga.runtime.interpreter import run_program
    from dgfpga.runtime.packer import plan_network, start_regions
    qm, cfg = bnet["qm"], bnet["cfg"]
    big = prog.GATE_BIAS_LIMIT - 1
    blocks = []
    for i, b in enumerate(qm.blocks):
        sg, cg, cg2 = copy.copy(b.spatial_gate), copy.copy(b.channel_gate), copy.copy(b.channel_gate2)
        if i % 3 == 0:
            sg.bias = -big
        elif i % 3 == 1:
            cg.b2 = np.full_like(cg.b2, -big)
        else:
            cg2.b2 = np.full_like(cg2.b2, -big)
        blocks.append(dataclasses.replace(b, spatial_gate=sg, channel_gate=cg, channel_gate2=cg2))
    qm2 = dataclasses.replace(qm, blocks=blocks)
    plan = plan_network(qm2, cfg)
    g = run_golden(qm2, bnet["x"][:1])
    assert not g.masks[0].spatial.any() and not g.masks[1].channel.any() and not g.masks[2].channel2.any()
    mem = start_regions(plan, g.layers["input"][0])
    ref = {k: v.copy() for k, v in mem.items()}
    res = run_program(plan.program, plan.record_count, ref, cfg)
    assert res.ok and "skipped" in res.records, res.message
    sim = bnet["sim"]
    run = sim.run(plan.program, plan.record_count, {k: v.copy() for k, v in mem.items()})
    assert run.status == 0, hex(run.status)
    cl = plan.cycle_log
    work = run.regions["work"].copy()
    work[cl.offset:cl.offset + cl.nbytes] = ref["work"][cl.offset:cl.offset + cl.nbytes]
    for name, got in (("fmap", run.regions["fmap"]), ("work", work), ("sums", run.regions["sums"])):
        diff = np.flatnonzero(got != ref[name])
        assert diff.size == 0, f"{name} differs from the interpreter at {diff[:8]}"
    lo = plan.logits
    np.testing.assert_array_equal(work[lo.offset:lo.offset + lo.nbytes].view("<i8"), g.logits_int[0])


# ---- the ResNet build: an engine without the depthwise hardware ------------------------------
@pytest.mark.slow               # a cold ultra96_resnet build (~80 s) and two networks
@pytest.mark.verilator
def test_fast_network_on_the_resnet_build(net, bnet):
    """`ultra96_resnet` (`ultra96` with [features] depthwise = false: the RTL's DG_DEPTHWISE 0
    prunes the depthwise hardware) runs the shipped BasicBlock model (against the golden
    model's memory image: FMAP, WORK, SUMS) and the Bottleneck network (against the
    interpreter, the golden logits and every block's masks) in one start each, gated and
    dense, in the cycles the `ultra96` RTL takes for the same programs (the feature removes
    hardware these programs never use)."""
    from dgfpga.backends import rtl_sim, vectors
    from dgfpga.contract.engine_config import load_config
    from dgfpga.runtime.packer import plan_network, start_regions
    rn = load_config("ultra96_resnet")
    assert not rn.depthwise and load_config("ultra96").depthwise
    cycles = {}
    for name in ("ultra96_resnet", "ultra96"):
        cfg = load_config(name)
        plan = plan_network(net["qm"], cfg)
        with rtl_sim.FastSim(cfg, mem_bytes=sum(plan.region_bytes.values()) + len(plan.program)
                             + 6 * 4096) as sim:
            for dense in (False, True):
                for vs in vectors.network_program_vectors(net["qm"], net["images"], cfg,
                                                          dense=dense, plan=plan):
                    r = rtl_sim.run_fast(vs, sim=sim)
                    assert r["pass"], (name, vs.name, hex(r["status"]),
                                       {k: v for k, v in r.items() if k.endswith("_mismatches")})
                    cycles[name, "resdg20", vs.name] = r["cycles"]
    plan = plan_network(bnet["qm"], rn)
    with rtl_sim.FastSim(rn, mem_bytes=sum(plan.region_bytes.values()) + len(plan.program)
                         + 6 * 4096) as sim:
        b_rn = dict(bnet, cfg=rn, plan=plan, sim=sim)
        for flags in (0, DENSE):
            _check_bottleneck_one_start(b_rn, flags)
            start = start_regions(plan, bnet["golden"][flags].layers["input"][0])
            for name, s, p in (("ultra96_resnet", sim, plan), ("ultra96", bnet["sim"], bnet["plan"])):
                run = s.run(p.program, p.record_count, {k: v.copy() for k, v in start.items()},
                            run_flags=flags)
                cycles[name, "resdg29b", flags] = run.cycles
    keys = sorted({k[1:] for k in cycles}, key=str)
    assert len(keys) == 2 * N_IMAGES + 2
    assert [cycles[("ultra96_resnet",) + k] for k in keys] == [cycles[("ultra96",) + k] for k in keys]
