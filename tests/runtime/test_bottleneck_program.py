"""Bottleneck DGNets (official semantics) on the engine contract: the network program of a
Bottleneck network (gate record, conv1 at the input resolution, gate-2 record, [shortcut],
conv2 gated on both sides, conv3 + residual) through the numpy interpreter and the runner.

References, each independent of the code under test: the integer golden model
(`dgfpga.numerics.golden`: whole-map gates, mask_c2 from conv1's masked output as a dense
int64 map, masked convs as GEMMs; itself checked against the fake-quant torch path in
tests/quant/test_quantize_bottleneck.py) for logits, every decision, every block output and
the MACs; the scheduler (`Scheduler.block`) for the descriptors and WORK bytes the gate and
gate-2 records generate. Networks: `resdg29b_cifar10` (official Bottleneck blocks in the
CIFAR layout: 9 blocks, 256 channels, stride-2 blocks with projection shortcuts) on
`ultra96`; `resdg50` at 64x64 and at the official 224x224 (slow) on `ultra96` (its
2048-channel limits are what ResNet-50 needs).
"""
from __future__ import annotations


import numpy as np
import pytest

from dgfpga.contract import formats
from dgfpga.contract import program as P
from dgfpga.contract import regmap as R
from dgfpga.contract.engine_config import load_config
from dgfpga.errors import ConfigError
from dgfpga.numerics.golden import run_golden
from dgfpga.runtime.interpreter import run_program
from dgfpga.runtime.packer import block_mask_layout, plan_network, start_regions as _memory
from dgfpga.runtime.scheduler import Scheduler

ULTRA96 = load_config("ultra96")
R50_CFG = "ultra96"    # 2048-channel limits
RB = formats.DESCRIPTOR_BYTES


def _make(arch: str, size: int, n: int = 8, seed: int = 0):
    pytest.importorskip("torch")
    pytest.importorskip("dgfpga_models", reason="dgfpga_models (models/) is not installed")
    import torch
    from dgfpga.quant.float_model import make_test_model
    from dgfpga.quant.quantizer import quantize_model
    torch.set_num_threads(1)
    lo = -1.9 if arch.endswith("cifar10") else -1.75       # inside the normalised range
    x = np.random.default_rng(seed).normal(0, 1, (n, 3, size, size)).astype(np.float32)
    x = x.clip(lo, 2.0)
    kw = {} if arch.endswith("cifar10") else dict(input_size=(size, size), num_classes=10)
    return quantize_model(make_test_model(arch, x, **kw), x), x


@pytest.fixture(scope="module")
def net():
    qm, x = _make("resdg29b_cifar10", 32)
    return plan_network(qm, ULTRA96), x


def _tensor(plan, mem, name) -> np.ndarray:
    c, h, w = plan.qmodel.tensors[name].shape
    b = plan.fmap[name]
    raw = mem["fmap"][b.offset:b.offset + h * w * c].reshape(h, w, c)
    return np.moveaxis(raw.view(np.int8) if plan.qmodel.tensors[name].signed else raw, -1, 0)


def _conv_macs(g, qm, n):
    return sum(int(v[n]) for k, v in g.macs.items() if ".mask_" not in k and k != qm.head.name)


def _check_image(plan, g, n, dense, every_block=False):
    """One start == golden: logits, mask_s / mask_c1 / mask_c2 (the result and the WORK
    bytes), the last block output, the executed MACs; with every_block each block's output
    through a start of the program up to that block's conv3."""
    qm = plan.qmodel
    mem = _memory(plan, g.layers["input"][n])
    r = run_program(plan.program, plan.record_count, mem, plan.cfg, P.RUN_DENSE if dense else 0)
    assert r.ok, r.message
    assert r.records.count("gate2") + r.records.count("gate") == 2 * len(plan.blocks)
    lo = plan.logits
    np.testing.assert_array_equal(mem["work"][lo.offset:lo.offset + lo.nbytes].view("<i8"),
                                  g.logits_int[n])
    for i, bp in enumerate(plan.blocks):
        sp, ch = r.gate_masks[i]
        gm = g.masks[i]
        np.testing.assert_array_equal(sp.reshape(-1), gm.spatial[n].reshape(-1), f"block {i} s")
        np.testing.assert_array_equal(ch, gm.channel[n], f"block {i} c1")
        np.testing.assert_array_equal(r.gate2_masks[i], gm.channel2[n], f"block {i} c2")
        m = bp.mask
        raw = mem["work"][m.offset:m.offset + m.nbytes]
        got = P.decode_masks(raw, sp.size, ch.size)
        off = block_mask_layout(sp.size, ch.size, gm.channel2.shape[1], plan.cfg.axi_bytes)[1]
        c2 = formats.unpack_bitmap(raw[off:].tobytes(), gm.channel2.shape[1])
        assert np.array_equal(got[0], sp.reshape(-1)) and np.array_equal(got[1], ch)
        assert np.array_equal(c2, gm.channel2[n])
    assert sum(r.macs) == _conv_macs(g, qm, n)
    last = plan.blocks[-1].out_tensor
    np.testing.assert_array_equal(_tensor(plan, mem, last), g.layers[last][n])
    if every_block:
        ends = [k for k, rp in enumerate(plan.records) if rp.kind == "conv3"]
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
def test_program_records(net):
    plan, _ = net
    kinds = [rp.kind for rp in plan.records]
    want = ["stem"]
    for bp in plan.blocks:
        assert bp.kind == "bottleneck"
        want += ["gate", "conv1", "gate2"] + (["downsample"] if bp.downsample else []) \
            + ["conv2", "conv3"]
    assert kinds == want + ["head"]
    for k, rp in enumerate(plan.records):
        raw = plan.program[k * RB:(k + 1) * RB]
        if rp.kind == "gate2":
            assert P.record_op(raw) == P.OP_GATE2
            assert P.unpack_gate2_record(raw, ULTRA96, plan.region_bytes) == \
                plan.blocks[rp.block].gate2_record
        elif rp.kind in ("conv1", "conv2", "conv3"):
            assert formats.unpack_descriptor(raw, ULTRA96, plan.region_bytes).from_gate
    a = ULTRA96.axi_bytes
    for bp in plan.blocks:
        d1, d2, d3 = (lp.template for lp in (bp.conv1, bp.conv2, bp.conv3))
        s = bp.conv2.template.stride
        # conv1 at the input resolution on the block grid; conv2 both-gated, halo at stride
        assert (d1.k, d1.stride, d1.tile, d1.grid_h, d1.grid_w) == (1, 1, bp.tile * s, *bp.grid)
        assert d1.out_ch_gated and d1.emit_sums and not d1.in_ch_gated
        assert d2.in_ch_gated and d2.out_ch_gated and d2.zero_halo and d2.weight_layout == "oc_k_k_ic"
        assert d3.in_ch_gated and not d3.out_ch_gated and d3.residual and d3.emit_sums
        assert d3.in_place == bp.identity and d3.weight_layout == "ic_g_k_k_m"
        s1, s2, s3 = bp.conv1.slots, bp.conv2.slots, bp.conv3.slots
        assert s3.tiles == s2.tiles                 # conv3 reads conv2's tile list
        r, r2 = bp.gate_record, bp.gate2_record
        assert (r.c1_tiles_offset, r.c1_out_ch_offset) == (s1.tiles, s1.out_ch)
        assert (r.c2_tiles_offset, r.c2_in_ch_offset, r.c2_bitmap_offset) == \
            (s2.tiles, s2.in_ch, s2.bitmap)
        assert r.c2_res_tiles_offset == (0 if bp.identity else s3.res_tiles)
        assert (r2.in_c, r2.out_c, r2.st_h, r2.st_w) == (d1.out_c, d2.out_c, *bp.grid)
        assert (r2.sums_offset, r2.in_mask_offset) == (bp.conv1_sums.offset, bp.mask.offset)
        assert r2.mask_offset == bp.mask.offset + block_mask_layout(
            d1.n_tiles, d1.out_c, d2.out_c, a)[1]
        assert (r2.c2_out_ch_offset, r2.c3_in_ch_offset) == (s2.out_ch, s3.in_ch)


def _mask_sets(plan, rng):
    for kind in ("random", "off", "on", "c1_off", "c2_off", "tiles_off"):
        out = []
        for bp in plan.blocks:
            n, c1, c2 = bp.grid[0] * bp.grid[1], bp.conv1.template.out_c, bp.conv2.template.out_c
            sp = rng.random(n) < 0.5 if kind == "random" else np.full(n, kind not in ("off", "tiles_off"))
            ch = rng.random(c1) < 0.5 if kind == "random" else np.full(c1, kind not in ("off", "c1_off"))
            ch2 = rng.random(c2) < 0.5 if kind == "random" else np.full(c2, kind not in ("off", "c2_off"))
            out.append((sp, ch, ch2))
        yield kind, out


def test_effective_descriptors_and_gate_work_equal_the_scheduler(net):
    """E of every from_gate layer (with the gate's and the gate-2 record's counts) ==
    Scheduler.block's descriptor field for field, skipped exactly where it omits a layer;
    the gate and gate-2 records' WORK bytes == its writes, and the engine reads them back."""
    plan, _ = net
    sch = Scheduler(plan, validate=True)
    rng = np.random.default_rng(5)
    for kind, masks in _mask_sets(plan, rng):
        for i, bp in enumerate(plan.blocks):
            sp, ch, ch2 = masks[i]
            run = sch.block(i, sp, ch, ch2)
            want = run.descriptors(ULTRA96)
            nt, nc, nc2 = int(sp.sum()), int(ch.sum()), int(ch2.sum())
            got = [P.effective_descriptor(bp.conv1.program_template, nt, nc)]
            if bp.downsample is not None:
                got.append(bp.downsample.program_template)
            got += [P.effective_descriptor(lp.program_template, nt, nc, nc2)
                    for lp in (bp.conv2, bp.conv3)]
            assert [d for d in got if d is not None] == want, (kind, i)
            work = np.zeros(plan.region_bytes["work"], np.uint8)
            for off, data in P.gate_work_writes(bp.gate_record, sp, ch) + \
                    P.gate2_work_writes(bp.gate2_record, ch2):
                work[off:off + data.size] = data
            for off, data in run.work_writes:
                np.testing.assert_array_equal(work[off:off + data.size], data,
                                              err_msg=f"{kind} block {i} at {off}")
            for d in want:
                formats.read_work_list(d, work)


# ---- one start == golden ---------------------------------------------------------------
@pytest.mark.parametrize("dense", [False, True])
def test_one_start_equals_golden(net, dense):
    plan, x = net
    g = run_golden(plan.qmodel, x[:2], masks="dense" if dense else None)
    if not dense:             # mixed decisions on every gate, so the masks matter
        for name in ("spatial", "channel", "channel2"):
            on = np.concatenate([getattr(m, name)[:2].ravel() for m in g.masks])
            assert 0.1 < on.mean() < 0.9, name
        assert g.density.max() < 0.9
    for n in range(2):
        _check_image(plan, g, n, dense, every_block=(n == 0))


def test_given_masks_all_off_and_on_per_block(net):
    """Blocks with no active tile, no mask_c1 channel or no mask_c2 channel (layers skipped
    or run with no input channels) still equal the golden model given the same masks: the
    engine decides them itself, so its gate parameters are set so that they fire so."""
    import dataclasses
    plan, x = net
    qm = plan.qmodel
    blocks = []
    for i, b in enumerate(qm.blocks):          # force decisions through the gate biases
        sg, cg, cg2 = b.spatial_gate, b.channel_gate, b.channel_gate2
        big = P.GATE_BIAS_LIMIT - 1
        kind = i % 3
        sg = _with(sg, bias=-big if kind == 0 else sg.bias)
        cg = _with(cg, b2=np.full_like(cg.b2, -big) if kind == 1 else cg.b2)
        cg2 = _with(cg2, b2=np.full_like(cg2.b2, -big) if kind == 2 else cg2.b2)
        blocks.append(dataclasses.replace(b, spatial_gate=sg, channel_gate=cg, channel_gate2=cg2))
    qm2 = dataclasses.replace(qm, blocks=blocks)
    plan2 = plan_network(qm2, ULTRA96)
    g = run_golden(qm2, x[:1])
    assert not g.masks[0].spatial.any() and not g.masks[1].channel.any()
    assert not g.masks[2].channel2.any()
    _, r = _check_image(plan2, g, 0, False)
    assert "skipped" in r.records


def _with(gate, **changes):
    import copy
    out = copy.copy(gate)
    for k, v in changes.items():
        setattr(out, k, v)
    return out


def test_runner_on_the_numpy_device(net):
    """The NetworkRunner: one start per image on the numpy device, logits and all three
    masks (mask_c2 from the gate-2 records) equal the golden model; its MAC count (the
    scheduler's, from the engine's masks) equals the golden model's executed conv MACs."""
    from dgfpga_host.bundle import Bundle
    from dgfpga_host.runner import NetworkRunner
    from dgfpga_host.sim_devices import NumpyDevice
    plan, x = net
    g = run_golden(plan.qmodel, x[:2])
    runner = NetworkRunner(Bundle(None, {}, plan.cfg, plan.qmodel, plan, None),
                           NumpyDevice(plan.cfg), validate=True)
    for n in range(2):
        res = runner.run_image(x[n])
        np.testing.assert_array_equal(res.logits_int, g.logits_int[n])
        for i, gm in enumerate(g.masks):
            np.testing.assert_array_equal(res.spatial[i], gm.spatial[n])
            np.testing.assert_array_equal(res.channel[i], gm.channel[n])
            np.testing.assert_array_equal(res.channel2[i], gm.channel2[n])
        assert res.macs == _conv_macs(g, plan.qmodel, n)
        assert res.cycles > 0 and len(res.layer_cycles) == plan.record_count
    d = runner.run_image(x[0], dense=True)
    np.testing.assert_array_equal(d.logits_int,
                                  run_golden(plan.qmodel, x[:1], masks="dense").logits_int[0])
    assert res.cycles < d.cycles             # the gated image costs fewer model cycles


# ---- faults ------------------------------------------------------------------------------
def _status(r):
    return tuple(R.unpack_status(r.status))


def _gate2_index(plan, block=0):
    return next(k for k, rp in enumerate(plan.records) if rp.kind == "gate2" and rp.block == block)


def test_gate2_without_a_gate_record_is_bad_op(net):
    plan, x = net
    k = _gate2_index(plan)
    prog = plan.program[:RB] + plan.program[k * RB:(k + 1) * RB]
    mem = _memory(plan, np.zeros(plan.qmodel.input_shape, np.int8))
    r = run_program(prog, 2, mem, plan.cfg)
    assert _status(r) == (R.ERR["BAD_OP"], 1, 0), r.message


@pytest.mark.parametrize("what", ["reserved", "recip", "in_mask", "shift"])
def test_gate2_faults_write_nothing(net, what):
    """A faulty gate-2 record (or its params, or the masks it reads) stops the start with
    its STATUS and writes nothing (its mask and lists stay as they were)."""
    from dgfpga.numerics.qmodel import quantize_input
    plan, x = net
    k = _gate2_index(plan)
    bp = plan.blocks[0]
    r2 = bp.gate2_record
    prog = bytearray(plan.program[:(k + 1) * RB])
    mem = _memory(plan, quantize_input(x[:1], plan.qmodel.input_scale)[0])
    want = {"reserved": ("BAD_GATE", 12), "recip": ("BAD_GATE", 0),
            "in_mask": ("BAD_GATE", P.GATE2_IN_MASK_WORD), "shift": ("BAD_GATE", 2)}[what]
    if what == "reserved":
        prog[k * RB + 4 * 12] = 1
    elif what == "recip":
        mem["weight"][r2.param_offset:r2.param_offset + 4] = 0
    elif what == "shift":
        words = np.frombuffer(bytes(prog[k * RB:(k + 1) * RB]), "<u4").copy()
        words[2] &= ~np.uint32(0x3F << 16)                  # h_shift = 0
        prog[k * RB:(k + 1) * RB] = words.tobytes()
    if what == "in_mask":
        # the masks the record reads, with a padding bit set, in WORK space of their own
        n = bp.grid[0] * bp.grid[1]
        assert r2.in_c % 32, "the test needs padding bits in the channel bitmap"
        a = plan.cfg.axi_bytes
        copy_off = -(-mem["work"].size // a) * a
        nb = P.mask_bytes(n, r2.in_c)
        work = np.zeros(copy_off + nb, np.uint8)
        work[:mem["work"].size] = mem["work"]
        work[copy_off:copy_off + nb] = np.frombuffer(
            P.encode_masks(np.ones(n, bool), np.ones(r2.in_c, bool)), np.uint8)
        pad = copy_off + formats.bitmap_bytes(n) + r2.in_c // 8   # the first padding bit
        work[pad] |= np.uint8(1 << (r2.in_c % 8))                 # of the channel bitmap
        mem["work"] = work
        prog[k * RB:(k + 1) * RB] = P.pack_gate2_record(r2.replace(in_mask_offset=copy_off),
                                                         plan.cfg)
    before = mem["work"].copy()
    r = run_program(bytes(prog), k + 1, mem, plan.cfg)
    for off, nb2 in ((r2.mask_offset, 4), (r2.c2_out_ch_offset, 2 * r2.out_c),
                     (r2.c3_in_ch_offset, 2 * r2.out_c)):
        np.testing.assert_array_equal(mem["work"][off:off + nb2], before[off:off + nb2])
    assert _status(r) == (R.ERR[want[0]], k, want[1]), r.message


def test_resdg50_on_a_512_channel_engine_is_refused_with_the_limit_named():
    """ResNet-50 has 2048-channel layers: ultra96's engine with 512-channel limits cannot
    hold them, and the packer says which limit (before laying anything out in memory)."""
    import dataclasses
    from dgfpga.contract.engine_config import config_from_dict
    from dgfpga.perf.netshapes import net_shape, shape_qmodel
    c512 = config_from_dict(dataclasses.asdict(ULTRA96) | dict(
        name="ultra96_c512", max_in_channels=512, max_out_channels=512))
    with pytest.raises(ConfigError, match="max_in_channels|max_out_channels"):
        plan_network(shape_qmodel(net_shape("resdg50")), c512)
    assert plan_network(shape_qmodel(net_shape("resdg50")), ULTRA96).cfg is ULTRA96


# ---- ResNet-50 --------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("size", [64, 224])
def test_resdg50_one_start_equals_golden(size):
    """resdg50 (random weights, mixed gates), 2 images, gated and dense, on ultra96's engine
    with ResNet-50's channel limits: one start == golden (logits, every decision, the
    last block, MACs; every block output on the first gated image at 64x64)."""
    qm, x = _make("resdg50", size, n=4)
    plan = plan_network(qm, load_config(R50_CFG))
    for dense in (False, True):
        g = run_golden(qm, x[:2], masks="dense" if dense else None)
        if not dense:
            on = np.concatenate([m.channel2[:2].ravel() for m in g.masks])
            assert 0.05 < on.mean() < 0.95
        for n in range(2):
            _check_image(plan, g, n, dense, every_block=(size == 64 and n == 0 and not dense))


# ---- the HLS engine today ----------------------------------------------------------------
def test_csim_runs_the_bottleneck_program_and_a_stride2_conv2(net, tmp_path_factory):
    """The C-sim on a Bottleneck program, gated and dense, with the gate-2 record
    (docs/formats.md): the whole start bit-exact with the interpreter (FMAP, SUMS, WORK
    but the cycle log). A Bottleneck conv2 on its own (stride 2, gated on both sides,
    zero_halo on the input grid tile*stride; the lists the interpreter wrote; garbage in
    the inactive input tiles): its output equals the interpreter's byte for byte."""
    from dgfpga.backends import hls_csim
    from dgfpga.numerics.qmodel import quantize_input
    try:
        hls_csim.compiler()
        hls_csim.ap_types_dir()
    except Exception as exc:  # noqa: BLE001 - any missing piece of the toolchain
        pytest.skip(f"C-sim toolchain missing: {exc}")
    plan, x = net
    eng = hls_csim.CsimEngine(plan.cfg, cache_dir=tmp_path_factory.mktemp("csim"))
    xq = quantize_input(x[:1], plan.qmodel.input_scale)[0]
    for flags in (0, P.RUN_DENSE):
        mem = _memory(plan, xq)
        ours = {n: a.copy() for n, a in mem.items()}
        r = eng.run(plan.program, plan.record_count, mem["fmap"], mem["weight"], mem["work"],
                    mem["sums"], flags)
        assert r.ok, r.describe()
        # the whole start bit-exact with the interpreter (the cycle log aside: the
        # interpreter has no clock)
        assert run_program(plan.program, plan.record_count, ours, plan.cfg, flags).ok
        for n in ("fmap", "sums"):
            np.testing.assert_array_equal(mem[n], ours[n], err_msg=n)
        log = plan.cycle_log
        for n in (mem, ours):
            n["work"][log.offset:log.offset + log.nbytes] = 0
        np.testing.assert_array_equal(mem["work"], ours["work"])
    k2 = next(i for i, rp in enumerate(plan.records)
              if rp.kind == "conv2" and plan.blocks[rp.block].conv2.template.stride == 2)
    mem = _memory(plan, xq)
    res = run_program(plan.program[:k2 * RB], k2, mem, plan.cfg)
    assert res.ok, res.message
    bp = plan.blocks[plan.records[k2].block]
    sp = res.gate_masks[-1][0]
    e = P.effective_descriptor(bp.conv2.program_template, int(sp.sum()),
                               int(res.gate_masks[-1][1].sum()), int(res.gate2_masks[-1].sum()))
    assert e.stride == 2 and e.zero_halo and 0 < e.n_active_tiles < e.n_tiles
    # garbage in conv1's compact output at the inactive tiles (never written there): both
    # engines must read it as zero through the bitmap at tile*stride input pixels
    side = e.tile * e.stride
    on = sp.reshape(e.grid_h, e.grid_w).repeat(side, 0).repeat(side, 1)[:e.in_h, :e.in_w]
    buf = mem["fmap"][e.in_offset:e.in_offset + e.in_h * e.in_w * e.n_active_in]
    buf.reshape(e.in_h, e.in_w, e.n_active_in)[~on] = 0xAB
    raw = formats.pack_descriptor(e, plan.cfg)
    ours = {n: a.copy() for n, a in mem.items()}
    r = eng.run(raw, 1, mem["fmap"], mem["weight"], mem["work"], mem["sums"])
    assert run_program(raw, 1, ours, plan.cfg).ok
    assert r.ok, r.describe()
    np.testing.assert_array_equal(mem["fmap"], ours["fmap"])
    clean = {n: a.copy() for n, a in ours.items()}       # and the garbage made no difference
    cb = clean["fmap"][e.in_offset:e.in_offset + buf.size].reshape(e.in_h, e.in_w, -1)
    cb[~on] = 0
    assert run_program(raw, 1, clean, plan.cfg).ok
    o, nb = e.out_offset, e.out_h * e.out_w * e.n_active_out
    np.testing.assert_array_equal(clean["fmap"][o:o + nb], mem["fmap"][o:o + nb])
