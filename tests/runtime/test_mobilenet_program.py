"""MobileNetV2 DGNets (mobilenet_v2_dg, official semantics) on the engine contract: the
network program (ungated blocks as dense [expand,] depthwise, projection layers; gated
identity blocks as gate record, expand, depthwise gated on both sides by mask_c, projection
+ residual in place; tail conv; head) through the numpy interpreter and the HLS C-sim (which
implements the depthwise op and `pixel_sums`), and the per-engine refusal of what an engine
does not implement (formats.PENDING_BY_ENGINE).

References, each independent of the code under test: the integer golden model
(`dgfpga.numerics.golden`: whole-map gates with PyTorch's adaptive bins, masked convs as
GEMMs / elementwise depthwise products; itself checked against the fake-quant torch path in
tests/quant/test_quantize_mobilenet.py) for logits, every decision, the persisting block
outputs and the MACs; a direct loop over pixels, channels and taps for one depthwise layer;
the interpreter for the C-sim's whole memory after a start. Input 96x96 (default suite): 48/24/12/6/3
maps, the last gated stage 3x3 with tile 2, i.e. 2x2 grids whose pooling bins [0,2) [1,3)
overlap, so the writers there emit per-pixel sums; 224x224 (official, 7x7 with 4x4 grids:
bins [0,2) [1,4) [3,6) [5,7)) runs too (~15 s). Engine: `ultra96` (its
2048-channel limits hold MobileNetV2's 960-channel expansions and 1280-channel tail).
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
from dgfpga.runtime.packer import plan_network, start_regions as _memory

CFG = load_config("ultra96")    # 2048-channel limits
RB = formats.DESCRIPTOR_BYTES


def _make(size: int, n: int = 4, seed: int = 0):
    pytest.importorskip("torch")
    pytest.importorskip("dgfpga_models", reason="dgfpga_models (models/) is not installed")
    import torch
    from dgfpga.quant.float_model import make_test_model
    from dgfpga.quant.quantizer import quantize_model
    torch.set_num_threads(1)
    x = np.random.default_rng(seed).normal(0, 1, (n, 3, size, size)).astype(np.float32)
    x = x.clip(-1.75, 2.0)
    model = make_test_model("mobilenet_v2_dg", x, input_size=(size, size), num_classes=10)
    return quantize_model(model, x), x


@pytest.fixture(scope="module")
def net():
    qm, x = _make(96)
    return plan_network(qm, CFG), x


def _tensor(plan, mem, name) -> np.ndarray:
    c, h, w = plan.qmodel.tensors[name].shape
    b = plan.fmap[name]
    raw = mem["fmap"][b.offset:b.offset + h * w * c].reshape(h, w, c)
    return np.moveaxis(raw.view(np.int8) if plan.qmodel.tensors[name].signed else raw, -1, 0)


def _conv_macs(g, qm, n):
    return sum(int(v[n]) for k, v in g.macs.items() if ".mask_" not in k and k != qm.head.name)


def _last_writer(plan) -> dict:
    """FMAP buffer offset -> the last tensor written there (in-place stages share one)."""
    qm = plan.qmodel
    last = {}
    for name in qm.tensors:
        if name in plan.fmap:
            last[plan.fmap[name].offset] = name
    order = [qm.stem.conv.out_tensor] + [c.out_tensor for b in qm.blocks for c in b.main_convs]
    if qm.tail is not None:
        order.append(qm.tail.out_tensor)
    for name in order:                       # program order: the later writer wins
        if name in plan.fmap:
            last[plan.fmap[name].offset] = name
    return last


def _check_image(plan, g, n, dense, csim=None):
    """One start == golden: logits, every gated block's mask_s / mask_c (the result and
    the WORK bytes), every tensor whose buffer no later layer overwrites, the MACs; with
    `csim` (a CsimEngine) the C-sim's start on the same memory leaves every region equal
    to the interpreter's (the cycle log aside: the interpreter has no clock) and STATUS 0."""
    qm = plan.qmodel
    mem = _memory(plan, g.layers["input"][n])
    ib = plan.fmap[plan.input_tensor]
    mem["fmap"][ib.offset + ib.nbytes:] = 0xAB   # never-written bytes must not matter
    mem["sums"][:] = 0xAB                        # (compact buffers' inactive tiles, halos)
    mem_c = {k: v.copy() for k, v in mem.items()}
    r = run_program(plan.program, plan.record_count, mem, plan.cfg,
                    P.RUN_DENSE if dense else 0, pending=True)
    assert r.ok, r.message
    if csim is not None:
        rc = csim.run(plan.program, plan.record_count, mem_c["fmap"], mem_c["weight"],
                      mem_c["work"], mem_c["sums"], P.RUN_DENSE if dense else 0)
        assert rc.status == 0, rc.describe()
        cl = plan.cycle_log
        assert mem_c["work"][cl.offset:cl.offset + cl.nbytes].any()   # the C-sim's estimates
        mem_c["work"][cl.offset:cl.offset + cl.nbytes] = 0
        for k in mem:
            np.testing.assert_array_equal(mem_c[k], mem[k], err_msg=f"C-sim image {n} {k}")
    lo = plan.logits
    np.testing.assert_array_equal(mem["work"][lo.offset:lo.offset + lo.nbytes].view("<i8"),
                                  g.logits_int[n])
    gated = [i for i, b in enumerate(qm.blocks) if b.gated]
    assert len(r.gate_masks) == len(gated)
    for (sp, ch), i in zip(r.gate_masks, gated):
        gm = g.masks[i]
        np.testing.assert_array_equal(sp.reshape(-1), gm.spatial[n].reshape(-1), f"block {i}")
        np.testing.assert_array_equal(ch, gm.channel[n], f"block {i} channels")
        m = plan.blocks[i].mask
        got = P.decode_masks(mem["work"][m.offset:m.offset + m.nbytes], sp.size, ch.size)
        assert np.array_equal(got[0], sp.reshape(-1)) and np.array_equal(got[1], ch)
    for b, gm in zip(qm.blocks, g.masks):
        assert (gm is None) == (not b.gated)
    assert sum(r.macs) == _conv_macs(g, qm, n)
    checked = 0
    for name in _last_writer(plan).values():
        if name in g.layers:
            np.testing.assert_array_equal(_tensor(plan, mem, name), g.layers[name][n],
                                          err_msg=f"image {n} tensor {name}")
            checked += 1
    assert checked >= 10
    return r


# ---- the program's shape ---------------------------------------------------------------
def test_program_records(net):
    """Ungated blocks: dense layers only; gated blocks: gate, expand (out-gated, compact),
    depthwise (op OP_DWCONV, gated on both sides through the expand's out list, zero_halo),
    projection (in-gated, residual, in place); the tail, then the head. The 3x3 stage's
    writers emit per-pixel sums (its 2x2 pooling bins overlap), the others per-tile sums."""
    plan, _ = net
    qm = plan.qmodel
    kinds = [r.kind for r in plan.records]
    assert kinds[0] == "stem" and kinds[-2:] == ["tail", "head"]
    assert kinds.count("gate") == sum(b.gated for b in qm.blocks) == 10
    assert plan.record_count == len(plan.program) // RB
    # pending exactly while an engine does not implement the depthwise op or pixel_sums
    assert plan.pending == (formats.OP_DWCONV in formats.PENDING_OPS
                            or "pixel_sums" in formats.PENDING_FIELDS)
    for bp, b in zip(plan.blocks, qm.blocks):
        if not b.gated:
            assert bp.gate_record is None and bp.mask is None
            assert all(not lp.template.tile_gated and lp.program_template == lp.template
                       for lp in bp.convs)
            assert bp.conv2.template.op == formats.OP_DWCONV
            assert (bp.conv1 is None) == (b.conv1 is None)
            continue
        dw, e, pw = (bp.conv2.program_template, bp.conv1.program_template,
                     bp.conv3.program_template)
        assert dw.op == formats.OP_DWCONV and dw.from_gate and dw.zero_halo
        assert dw.in_ch_gated and dw.out_ch_gated and dw.in_ch_list_offset == 0
        assert dw.out_ch_list_offset == e.out_ch_list_offset == bp.gate_record.c1_out_ch_offset
        assert pw.in_place and pw.residual and pw.in_ch_gated and not pw.out_ch_gated
        assert pw.tile_list_offset == dw.tile_list_offset == bp.gate_record.c2_tiles_offset
        assert pw.in_ch_list_offset == bp.gate_record.c2_in_ch_offset
        assert dw.bitmap_offset == bp.gate_record.c2_bitmap_offset
        assert plan.fmap[b.out_tensor] == plan.fmap[b.in_tensor]
    pix = [lp.name for lp in plan.layers if lp.template.pixel_sums]
    assert pix == ["features.14.conv3", "features.15.conv3"]
    g15 = plan.blocks[14].gate_record
    assert (g15.st_h, g15.st_w, g15.gh, g15.gw) == (3, 3, 2, 2)
    assert plan.head_record.in_c == qm.tail.out_channels == 1280


def test_effective_descriptors_and_gate_work_equal_the_scheduler(net):
    """E of every from_gate layer of a gated block (the gate record's counts) ==
    Scheduler.block's descriptor field for field, skipped exactly where it omits a layer
    (random decisions, all off, all on, no channel, no tile); the gate record's WORK bytes
    == its writes and the engine reads them back; ungated blocks and the tail: the dense
    templates; the scheduler's MACs == the golden model's on an image's own decisions."""
    from dgfpga.runtime.scheduler import Scheduler
    plan, x = net
    sch = Scheduler(plan, validate=True)
    rng = np.random.default_rng(5)
    for kind in ("random", "off", "on", "c_off", "tiles_off"):
        for i, bp in enumerate(plan.blocks):
            if not bp.gated:
                assert sch.block(i).descriptors(plan.cfg) == [lp.template for lp in bp.convs]
                continue
            n, c = bp.grid[0] * bp.grid[1], bp.conv1.template.out_c
            sp = rng.random(n) < 0.5 if kind == "random" else \
                np.full(n, kind not in ("off", "tiles_off"))
            ch = rng.random(c) < 0.5 if kind == "random" else \
                np.full(c, kind not in ("off", "c_off"))
            run = sch.block(i, sp, ch)
            want = run.descriptors(plan.cfg)
            nt, nc = int(sp.sum()), int(ch.sum())
            got = [P.effective_descriptor(lp.program_template, nt, nc) for lp in bp.convs]
            assert [d for d in got if d is not None] == want, (kind, i)
            work = np.zeros(plan.region_bytes["work"], np.uint8)
            for off, data in P.gate_work_writes(bp.gate_record, sp, ch):
                work[off:off + data.size] = data
            for off, data in run.work_writes:
                np.testing.assert_array_equal(work[off:off + data.size], data,
                                              err_msg=f"{kind} block {i} at {off}")
            for d in want:
                formats.read_work_list(d, work)
    assert sch.tail().descriptors(plan.cfg) == [plan.tail.template]
    g = run_golden(plan.qmodel, x[:1])
    macs = sch.stem().macs + sch.tail().macs
    for i, (bp, m) in enumerate(zip(plan.blocks, g.masks)):
        macs += (sch.block(i, m.spatial[0], m.channel[0]) if bp.gated else sch.block(i)).macs
    assert macs == _conv_macs(g, plan.qmodel, 0)


@pytest.mark.parametrize("dense", [False, True], ids=["gated", "dense"])
def test_one_start_equals_golden(net, dense):
    """Two images, one start each: golden == interpreter bit for bit (gated: mixed
    decisions in every gated block over the two images)."""
    plan, x = net
    g = run_golden(plan.qmodel, x[:2], masks="dense" if dense else None)
    if not dense:
        sp = np.concatenate([m.spatial[:2].ravel() for m in g.masks if m is not None])
        ch = np.concatenate([m.channel[:2].ravel() for m in g.masks if m is not None])
        assert 0.1 < sp.mean() < 0.9 and 0.1 < ch.mean() < 0.9
    for n in range(2):
        _check_image(plan, g, n, dense)


@pytest.mark.parametrize("what", ["no_tiles", "no_channels"])
def test_gate_all_off_in_one_block(net, what):
    """One gated block's gate forced off through its parameters (spatial bias or every
    channel bias -2^45): no tiles - expand, depthwise and projection are skipped and the
    block output is its input; no channels - expand and depthwise are skipped, the
    projection runs on its active tiles from no input channel (bias + residual only).
    The interpreter's decisions given to the golden model: the same logits and MACs."""
    plan, x = net
    qm = plan.qmodel
    i = [k for k, b in enumerate(qm.blocks) if b.gated][3]
    bp, r0 = plan.blocks[i], plan.blocks[i].gate_record
    lay = P.gate_param_layout(r0.in_c, r0.out_c, r0.hidden, r0.gh, r0.gw, plan.cfg.axi_bytes)
    g0 = run_golden(qm, x[:1])
    mem = _memory(plan, g0.layers["input"][0])
    base = bp.gate_params.offset
    if what == "no_tiles":
        off = base + lay.offsets["bs"]
        mem["weight"][off:off + 8] = np.array([-(1 << 45)], "<i8").view(np.uint8)
    else:
        off = base + lay.offsets["b2"]
        mem["weight"][off:off + 8 * r0.out_c] = \
            np.full(r0.out_c, -(1 << 45), "<i8").view(np.uint8)
    r = run_program(plan.program, plan.record_count, mem, plan.cfg, pending=True)
    assert r.ok, r.message
    gi = [k for k, b in enumerate(qm.blocks) if b.gated].index(i)
    sp, ch = r.gate_masks[gi]
    assert (not sp.any()) if what == "no_tiles" else (sp.any() and not ch.any())
    k = next(n for n, rp in enumerate(plan.records) if rp.kind == "gate" and rp.block == i)
    skipped = [rp.name for rp, kind in zip(plan.records[k + 1:k + 4], r.records[k + 1:k + 4])
               if kind == "skipped"]
    want = [bp.conv1.name, bp.conv2.name] + ([bp.conv3.name] if what == "no_tiles" else [])
    assert skipped == want
    masks = []
    it = iter(r.gate_masks)
    for b in qm.blocks:
        masks.append(tuple(m[None] for m in next(it)) if b.gated else None)
    g = run_golden(qm, x[:1], masks=masks)
    lo = plan.logits
    np.testing.assert_array_equal(mem["work"][lo.offset:lo.offset + lo.nbytes].view("<i8"),
                                  g.logits_int[0])
    assert sum(r.macs) == _conv_macs(g, qm, 0)
    if what == "no_tiles":
        np.testing.assert_array_equal(g.layers[qm.blocks[i].out_tensor][0],
                                      g.layers[qm.blocks[i].in_tensor][0])


# ---- depthwise arithmetic against a direct loop -------------------------------------------
def _dw_case(cfg, gated: bool, pixel_sums: bool, seed=3):
    """A depthwise 3x3 layer on a 7x7x12 map, tile 3 (3x3 grid, clipped edge tiles), with
    random weights/params, gated (tiles 0, 4, 8; channels 1, 5, 6, 11) or dense."""
    rng = np.random.default_rng(seed)
    h = w = 7
    c = 12
    x = rng.integers(0, 256, (h, w, c)).astype(np.uint8)
    wt = rng.integers(-128, 128, (c, 1, 3, 3)).astype(np.int8)
    bias = rng.integers(-3000, 3000, c)
    mult = rng.integers(1 << 20, 1 << 22, c)
    tiles = np.array([0, 4, 8]) if gated else np.arange(9)
    chans = np.array([1, 5, 6, 11]) if gated else np.arange(c)
    a = cfg.axi_bytes

    def up(n):
        return -(-n // a) * a
    in_bytes = h * w * (chans.size if gated else c)
    fm = np.zeros(up(in_bytes) + up(h * w * chans.size) + up(h * w * c), np.uint8)
    if gated:   # compact input: channel j of the buffer is channels[j]; garbage elsewhere
        fm[:in_bytes] = x[..., chans].reshape(-1)
    else:
        fm[:in_bytes] = x.reshape(-1)
    wbytes = formats.pack_weights(wt, "dw", tn=cfg.tn)
    params = formats.pack_params(bias, mult)
    weight = np.zeros(up(len(wbytes)) + up(len(params)), np.uint8)
    weight[:len(wbytes)] = np.frombuffer(wbytes, np.uint8)
    weight[up(len(wbytes)):up(len(wbytes)) + len(params)] = np.frombuffer(params, np.uint8)
    n_sum = h * w if pixel_sums else 9
    sums = np.zeros(n_sum * chans.size * 4, np.uint8)
    d = formats.make_descriptor(
        k=3, stride=1, in_h=h, in_w=w, in_c=c, out_c=c, tile=3, op=formats.OP_DWCONV,
        shift=20, in_offset=0, out_offset=up(in_bytes), weight_offset=0,
        param_offset=up(len(wbytes)), emit_sums=True, pixel_sums=pixel_sums, sums_offset=0)
    work = np.zeros(256, np.uint8)
    if gated:
        d = d.replace(tile_gated=True, in_ch_gated=True, out_ch_gated=True, zero_halo=True)
        slots = formats.work_slots(d, 0, a)
        fields, writes = formats.encode_work_list(d, slots, tiles, out_channels=chans)
        for off, data in writes:
            work[off:off + data.size] = data
        d = d.replace(**fields)
    # the direct reference: per active tile pixel and channel, 9 taps; inputs outside the
    # map, in inactive tiles (gated) or of inactive channels are zero
    on = np.zeros((h, w), bool)
    for t in tiles:
        ty, tx = divmod(int(t), 3)
        on[ty * 3:ty * 3 + 3, tx * 3:tx * 3 + 3] = True
    want = np.zeros((h, w, chans.size), np.int64)
    for y in range(h):
        for xx in range(w):
            if not on[y, xx]:
                continue
            for j, ch in enumerate(chans):
                acc = 0
                for ky in range(3):
                    for kx in range(3):
                        yy, xs = y + ky - 1, xx + kx - 1
                        if 0 <= yy < h and 0 <= xs < w and on[yy, xs]:
                            acc += int(x[yy, xs, ch]) * int(wt[ch, 0, ky, kx])
                z = (acc + int(bias[ch])) * int(mult[ch])
                want[y, xx, j] = min(max((z + (1 << 19)) >> 20, 0), 255)
    regions = {"fmap": fm, "weight": weight, "work": work, "sums": sums}
    return formats.pack_descriptor(d, cfg), d, regions, want, on, chans


@pytest.mark.parametrize("gated", [False, True], ids=["dense", "gated"])
def test_depthwise_layer_equals_a_direct_loop(gated):
    """One depthwise layer (op OP_DWCONV) on the interpreter == a loop over pixels,
    channels and taps: the weight stream [C][9 taps padded to tn], the compact input
    (channel j = list entry j), halos of inactive tiles as zero, the requantization, the
    compact output and per-tile sums; MACs = active pixels x active channels x 9."""
    cfg = load_config("small")
    raw, d, regions, want, on, chans = _dw_case(cfg, gated, pixel_sums=False)
    r = run_program(raw, 1, regions, cfg, pending=True)
    assert r.ok, r.message
    out = regions["fmap"][d.out_offset:d.out_offset + d.out_h * d.out_w * d.out_c_stored]
    out = out.reshape(d.out_h, d.out_w, d.out_c_stored).astype(np.int64)
    got = out if gated else out[..., chans]
    np.testing.assert_array_equal(got[on], want[on])
    assert r.macs == [int(on.sum()) * chans.size * 9]
    sums = regions["sums"].view("<i4").reshape(9, -1)
    for t in (0, 4, 8):
        ty, tx = divmod(t, 3)
        np.testing.assert_array_equal(
            sums[t], want[ty * 3:ty * 3 + 3, tx * 3:tx * 3 + 3].sum(axis=(0, 1)))


def test_pixel_sums_are_the_output_per_pixel():
    """`pixel_sums`: one int32 row per output pixel of the computed tiles (the output
    values), pixels of tiles not computed untouched."""
    cfg = load_config("small")
    raw, d, regions, want, on, chans = _dw_case(cfg, True, pixel_sums=True)
    regions["sums"][:] = 0xEE
    r = run_program(raw, 1, regions, cfg, pending=True)
    assert r.ok, r.message
    sums = regions["sums"].view("<i4").reshape(d.out_h, d.out_w, chans.size)
    np.testing.assert_array_equal(sums[on], want[on])
    assert (regions["sums"].reshape(d.out_h, d.out_w, -1)[~on] == 0xEE).all()


# ---- what today's engines do not implement: refused, not ignored --------------------------
def _status(r):
    return tuple(R.unpack_status(r.status))


def _both_pending(monkeypatch):
    """The table as it was before either engine implemented the features."""
    table = {e: {"ops": (formats.OP_DWCONV,), "fields": ("pixel_sums",)} for e in formats.ENGINES}
    monkeypatch.setattr(formats, "PENDING_BY_ENGINE", table)
    monkeypatch.setattr(formats, "PENDING_OPS", (formats.OP_DWCONV,))
    monkeypatch.setattr(formats, "PENDING_FIELDS", ("pixel_sums",))


def test_pending_features_refused_as_an_engine_does(net, monkeypatch):
    """With the features pending on the engines (formats.PENDING_BY_ENGINE as before they
    implemented them), the interpreter without pending=True refuses as such an engine
    does: the network program stops at its first depthwise record with BAD_OP, ENTRY 0; a
    conv record with pixel_sums is a reserved bit: BAD_MAGIC, ENTRY 0. Nothing written."""
    _both_pending(monkeypatch)
    plan, x = net
    assert plan.pending
    k = next(i for i, rp in enumerate(plan.records) if rp.kind == "conv2")
    assert plan.blocks[0].conv2.program_template.op == formats.OP_DWCONV
    mem = _memory(plan, np.zeros(plan.qmodel.input_shape, np.int8))
    r = run_program(plan.program, plan.record_count, mem, plan.cfg)
    assert _status(r) == (R.ERR["BAD_OP"], k, 0), r.message
    cfg = load_config("small")
    raw, d, regions, *_ = _dw_case(cfg, False, pixel_sums=False)
    conv = d.replace(op=formats.OP_CONV, in_c=12, out_c=12)   # not depthwise: the fit rule
    # a plain conv record with pixel_sums (weights as for a 12->12 conv, a fresh layout)
    w = np.zeros(12 * 9 * 12 + 12 * 8 + 64, np.uint8)
    conv = conv.replace(weight_offset=0, param_offset=-(-12 * 9 * 12 // 16) * 16,
                        pixel_sums=True)
    regions["weight"] = w
    regions["sums"] = np.zeros(7 * 7 * 12 * formats.SUM_BYTES, np.uint8)   # per pixel
    before = {n: a.copy() for n, a in regions.items()}
    raw2 = formats.pack_descriptor(conv, cfg)
    r2 = run_program(raw2, 1, regions, cfg)
    assert _status(r2) == (R.ERR["BAD_MAGIC"], 0, 0), r2.message
    for n in regions:
        np.testing.assert_array_equal(regions[n], before[n])
    assert run_program(raw2, 1, regions, cfg, pending=True).ok


def test_pending_is_per_engine(monkeypatch):
    """`pending="hls"`/`"rtl"` refuses what that engine has not implemented
    (formats.PENDING_BY_ENGINE), so one engine can implement a feature before the other;
    the generated tables follow (formats.engine_fields)."""
    cfg = load_config("small")
    raw, d, regions, *_ = _dw_case(cfg, False, pixel_sums=False)
    table = {"hls": {"ops": (), "fields": ()},
             "rtl": {"ops": (formats.OP_DWCONV,), "fields": ("pixel_sums",)}}
    monkeypatch.setattr(formats, "PENDING_BY_ENGINE", table)
    assert run_program(raw, 1, {n: a.copy() for n, a in regions.items()}, cfg,
                       pending="hls").ok
    r = run_program(raw, 1, {n: a.copy() for n, a in regions.items()}, cfg, pending="rtl")
    assert _status(r) == (R.ERR["BAD_OP"], 0, 0)
    assert "RTL" in r.message
    assert [f.name for f in formats.engine_fields("hls")][-1] == "pixel_sums"
    assert "pixel_sums" not in [f.name for f in formats.engine_fields("rtl")]
    with pytest.raises(ValueError, match="pending="):
        run_program(raw, 1, regions, cfg, pending="gpu")


def _csim(cfg, tmp_path_factory):
    from dgfpga.backends import hls_csim
    try:
        hls_csim.compiler()
        hls_csim.ap_types_dir()
    except Exception as exc:  # noqa: BLE001 - any missing piece of the toolchain
        pytest.skip(f"C-sim toolchain missing: {exc}")
    return hls_csim.CsimEngine(cfg, cache_dir=tmp_path_factory.mktemp("csim"))


def test_csim_depthwise_layer_equals_a_direct_loop(tmp_path_factory):
    """The HLS engine (C-sim) implements the depthwise op and pixel_sums: the depthwise
    layer of `_dw_case`, dense and gated, with per-tile and per-pixel sums, leaves every
    region as the interpreter does (pending="hls": the HLS engine refuses nothing), and its
    output and sums equal the direct loop over pixels, channels and taps (`small`; both
    configs run the shared depthwise vectors: tests/backends/test_hls_depthwise.py)."""
    cfg = load_config("small")
    eng = _csim(cfg, tmp_path_factory)
    for gated in (False, True):
        for ps in (False, True):
            raw, d, regions, want, on, chans = _dw_case(cfg, gated, pixel_sums=ps)
            regions["sums"][:] = 0xEE
            ours = {n: a.copy() for n, a in regions.items()}
            r = eng.run(raw, 1, regions["fmap"], regions["weight"], regions["work"],
                        regions["sums"])
            assert _status(r) == (0, 0, 0), (gated, ps, r.describe())
            assert run_program(raw, 1, ours, cfg, pending="hls").ok
            for n in regions:
                np.testing.assert_array_equal(regions[n], ours[n], err_msg=f"{gated} {ps} {n}")
            out = regions["fmap"][d.out_offset:d.out_offset + d.out_h * d.out_w * d.out_c_stored]
            out = out.reshape(d.out_h, d.out_w, d.out_c_stored).astype(np.int64)
            np.testing.assert_array_equal((out if gated else out[..., chans])[on], want[on])
            if ps:
                sums = regions["sums"].view("<i4").reshape(d.out_h, d.out_w, -1)
                np.testing.assert_array_equal(sums[on][:, :chans.size] if gated else
                                              sums[on][:, chans], want[on])


@pytest.fixture(scope="module")
def csim_r50(tmp_path_factory):
    return _csim(CFG, tmp_path_factory)


@pytest.mark.parametrize("dense", [False, True], ids=["gated", "dense"])
def test_csim_one_start_equals_golden(net, csim_r50, dense):
    """The whole MobileNetV2 (96x96, random weights, mixed gates) in one start of the HLS
    C-sim per image, two images, gated and dense: golden == interpreter == C-sim (every
    region, the cycle log aside)."""
    plan, x = net
    g = run_golden(plan.qmodel, x[:2], masks="dense" if dense else None)
    for n in range(2):
        _check_image(plan, g, n, dense, csim=csim_r50)


# ---- sizes the engine cannot gate, official size ----------------------------------------
def test_unaligned_upsampling_is_refused_naming_the_block():
    """At 112x112 the first gated block (features.3) has 28x28 maps with tile 8, a 4x4
    grid, and PyTorch's nearest upsampling maps 7 rows to each grid cell: not a tiling by
    8-pixel tiles, so no tile list can gate the expansion exactly; the packer says which
    block."""
    qm, _ = _make(112, n=2)
    with pytest.raises(ConfigError, match=r"block features\.3: mask_s1 upsampled .* 8-pixel"):
        plan_network(qm, CFG)


def test_a_512_channel_engine_refuses_the_channel_counts(net):
    """ultra96's engine with 512-channel limits refuses MobileNetV2's 960/1280 channels,
    naming the limit; ultra96 itself (2048) plans it."""
    import dataclasses
    from dgfpga.contract.engine_config import config_from_dict
    plan, _ = net
    c512 = config_from_dict(dataclasses.asdict(load_config("ultra96")) | dict(
        name="ultra96_c512", max_in_channels=512, max_out_channels=512))
    with pytest.raises(ConfigError, match="max_in_channels|max_out_channels"):
        plan_network(plan.qmodel, c512)
    assert plan.cfg.name == "ultra96"


def test_an_engine_without_depthwise_refuses_the_network(net):
    """ultra96_resnet ([features] depthwise = false) refuses MobileNetV2 before anything
    runs, counting its depthwise layers and naming the first and the feature."""
    plan, _ = net
    n_dw = sum(lp.template.depthwise for lp in plan.layers)
    first = next(lp.name for lp in plan.layers if lp.template.depthwise)
    with pytest.raises(ConfigError, match=rf"{n_dw} depthwise layer\(s\) \(first: {first}\)"
                                          r".*no depthwise hardware"):
        plan_network(plan.qmodel, load_config("ultra96_resnet"))


@pytest.fixture(scope="module")
def net224():
    qm, x = _make(224, n=4)
    return plan_network(qm, CFG), x


def test_official_size_one_start_equals_golden(net224):
    """224x224 (the official size: 7x7 maps with 4x4 grids, overlapping bins read from
    per-pixel sums), 2 images, gated and dense: one start == golden (~15 s)."""
    plan, x = net224
    assert [lp.name for lp in plan.layers if lp.template.pixel_sums] == \
        ["features.14.conv3", "features.15.conv3"]
    for dense in (False, True):
        g = run_golden(plan.qmodel, x[:2], masks="dense" if dense else None)
        for n in range(2):
            _check_image(plan, g, n, dense)


@pytest.mark.slow
def test_official_size_csim_equals_golden(net224, csim_r50):
    """224x224 on the HLS C-sim, 2 images, gated (mixed decisions) and dense: golden ==
    interpreter == C-sim (slow: ~1.3 s gated, ~2.2 s dense per image on the C-sim, plus
    the interpreter and golden runs)."""
    plan, x = net224
    for dense in (False, True):
        g = run_golden(plan.qmodel, x[:2], masks="dense" if dense else None)
        if not dense:
            sp = np.concatenate([m.spatial[:2].ravel() for m in g.masks if m is not None])
            assert 0.1 < sp.mean() < 0.9
        for n in range(2):
            _check_image(plan, g, n, dense, csim=csim_r50)


def test_build_hls_refuses_only_what_an_engine_does_not_run(net, monkeypatch, tmp_path):
    """`build-hls` (dgfpga.workflows.build) packages the HLS engine and the RTL: it refuses
    a MobileNetV2 program exactly while one of them has the depthwise op or pixel_sums
    pending (formats.PENDING_BY_ENGINE), naming that engine and the features, before any
    file is written; with both implemented nothing is refused."""
    from dgfpga.workflows import build
    plan, x = net
    rtl_only = {"hls": {"ops": (), "fields": ()},
                "rtl": {"ops": (formats.OP_DWCONV,), "fields": ("pixel_sums",)}}
    monkeypatch.setattr(formats, "PENDING_BY_ENGINE", rtl_only)
    assert build.engine_refusals(plan) == {"rtl": ["op 5 (dwconv)", "pixel_sums"]}
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"the RTL \(sim/rtl\) does not implement op 5 "
                                          r"\(dwconv\), pixel_sums") as exc:
        build.build_hls(plan.qmodel, CFG, out, x[:1])
    assert "HLS engine" not in str(exc.value) and not out.exists()
    monkeypatch.setattr(formats, "PENDING_BY_ENGINE",
                        {"hls": rtl_only["rtl"], "rtl": rtl_only["hls"]})
    assert build.engine_refusals(plan) == {"hls": ["op 5 (dwconv)", "pixel_sums"]}
    monkeypatch.setattr(formats, "PENDING_BY_ENGINE", {e: rtl_only["hls"] for e in formats.ENGINES})
    assert build.engine_refusals(plan) == {}
