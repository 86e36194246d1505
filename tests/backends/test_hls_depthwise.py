"""The depthwise op (OP_DWCONV) and `pixel_sums` in the HLS engine (C-sim, hls/src).

References, independent of the code under test: the golden model's integer kernels
(`vectors.golden_layer`: a depthwise layer is `masked_conv2d_int` with groups = channels)
give the expected memory of every layer vector; the interpreter (`dgfpga.runtime.
interpreter`, the executable reference of the descriptor checks) must agree with them and
gives the STATUS of every corner, which `vectors.depthwise_corners` also states by hand
(code, ENTRY = the word of the field at fault). The whole FMAP and SUMS regions are
compared, so a write outside a layer's buffers fails too. Whole MobileNetV2 programs on the
C-sim: tests/runtime/test_mobilenet_program.py.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from dgfpga.backends import hls_csim, vectors
from dgfpga.contract import formats
from dgfpga.contract import regmap as R
from dgfpga.contract.engine_config import load_config
from dgfpga.runtime.interpreter import run_program
from conftest import require_csim

CONFIGS = ("small", "ultra96")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hls_dw_cache")


@pytest.fixture(scope="module")
def engines(cache_dir):
    require_csim()
    return {name: hls_csim.CsimEngine(load_config(name), cache_dir) for name in CONFIGS}


@pytest.fixture(scope="module")
def sets():
    return {name: (vectors.depthwise_vectors(load_config(name)),
                   vectors.depthwise_corners(load_config(name))) for name in CONFIGS}


def test_engine_implements_the_depthwise_contract():
    """The HLS engine refuses nothing of the contract (formats.PENDING_BY_ENGINE["hls"]
    empty, so its generated field table carries pixel_sums) and its dw patch banks are
    written for the contract's depthwise kernels (hls/src/dg_types.h DW_K)."""
    assert formats.pending_ops("hls") == () and formats.pending_fields("hls") == ()
    assert "pixel_sums" in [f.name for f in formats.engine_fields("hls")]
    src = (hls_csim.SRC_DIR / "dg_types.h").read_text()
    assert re.search(r"constexpr unsigned DW_K = fmt::DW_KERNEL;", src)
    gen = (hls_csim.SRC_DIR.parent / "generated" / "dg_config.h").read_text()
    m = re.search(r"constexpr unsigned DW_KERNEL = (\d+);", gen)
    assert m and formats.DW_KERNELS == (int(m.group(1)),)


def test_depthwise_vectors_cover_the_cases(sets):
    """The vector sets are not trivial: gated depthwise layers with some but not all tiles
    and channels, several m-groups, strides 1 and 2, per-pixel sums from a depthwise layer,
    an in-place projection, residual-only tiles and the fused max-pool; each writes its
    output (expected FMAP differs from before) and its sums."""
    cfg = load_config("small")
    vs = {v.name: v for v in sets["small"][0]}
    for name, v in vs.items():
        d = formats.unpack_descriptor(v.program[:formats.DESCRIPTOR_BYTES], cfg)
        assert not np.array_equal(v.expected["fmap"], v.before["fmap"]), name
        if d.emit_sums:
            assert not np.array_equal(v.expected["sums"], v.before["sums"]), name
        if name.startswith("dw_gated_half"):
            assert d.depthwise and 0 < d.n_active_tiles < d.n_tiles
            assert 0 < d.n_active_out < d.out_c and d.zero_halo
    wide = formats.unpack_descriptor(vs["dw_wide_fit_bound"].program[:96], cfg)
    assert -(-wide.n_active_out // cfg.tm) >= 2
    assert not formats.layer_fit_problems(wide.replace(tile_gated=False), cfg)
    assert {formats.unpack_descriptor(vs[n].program[:96], cfg).stride
            for n in ("dw_dense_s1_edge_tiles", "dw_dense_s2_odd")} == {1, 2}
    assert sum(formats.unpack_descriptor(v.program[:96], cfg).pixel_sums
               for v in vs.values()) == 5


@pytest.mark.parametrize("config", CONFIGS)
def test_depthwise_and_pixel_sums_vectors_bit_exact(config, engines, sets):
    """Every depthwise / pixel_sums layer vector: golden == interpreter (as the HLS engine
    refuses, pending="hls": nothing) == C-sim, whole regions; MACs = active pixels x active
    channels x 9 for a depthwise layer."""
    cfg = load_config(config)
    for vs in sets[config][0]:
        mem = {r: vs.before[r].copy() for r in vectors.REGIONS}
        r = run_program(vs.program, vs.layer_count, mem, cfg, pending="hls")
        assert r.status == vs.expected_status, f"{vs.name}: {r.message}"
        assert vectors.compare_expected(vs, mem) == [], vs.name
        assert sum(r.macs) == vs.macs, vs.name
        chk = hls_csim.run_vector_set(vs, engines[config])
        assert chk.passed, f"{config} {vs.name}: {chk.message}"


@pytest.mark.parametrize("config", CONFIGS)
def test_depthwise_corners(config, engines, sets):
    """One fault per depthwise / pixel_sums rule (k, out_c, residual, maxpool, im2col, one
    gated side, n_active_in, an in-channel list offset, buffers outside their region, the
    fit bound, pixel_sums without emit_sums or with a per-tile SUMS buffer): the C-sim's
    STATUS (code, ENTRY) is the contract's and it writes nothing."""
    corners = sets[config][1]
    names = {vs.name for vs in corners}
    want = {"corner_dw_k1", "corner_dw_k7", "corner_dw_out_c", "corner_dw_residual",
            "corner_dw_maxpool", "corner_dw_im2col", "corner_dw_in_gated_only",
            "corner_dw_out_gated_only", "corner_dw_n_active_in", "corner_dw_in_list_offset",
            "corner_dw_weights_outside", "corner_pixel_sums_without_emit_sums",
            "corner_pixel_sums_outside"}
    assert want <= names
    if config == "small":
        assert "corner_dw_patch_no_fit" in names
    for vs in corners:
        assert vs.expected_status != 0, vs.name
        chk = hls_csim.run_vector_set(vs, engines[config])
        assert chk.passed, f"{config} {vs.name}: {chk.message} " \
                           f"({R.describe_status(chk.status)})"


@pytest.mark.slow
def test_depthwise_vectors_in_the_sanitized_testbench(engines, sets, cache_dir, tmp_path):
    """The C++ testbench under AddressSanitizer + UBSan on the depthwise vector folders
    (`small`: layers and corners): every set passes with no finding (slow: the sanitized
    build of this module's own cache takes ~60 s)."""
    sets_small = sets["small"][0] + sets["small"][1]
    folders = [vectors.write_vector_set(vs, tmp_path / vs.name) for vs in sets_small]
    code, lines = hls_csim.run_testbench(folders, load_config("small"), cache_dir,
                                         sanitize=True)
    assert code == 0, "\n".join(lines[-20:])
    assert len(lines) == len(folders) and all(ln.startswith("PASS ") for ln in lines)


def test_depthwise_vectors_round_trip(tmp_path):
    """write_depthwise_vectors writes every set; read back they equal what was built."""
    cfg = load_config("small")
    paths = vectors.write_depthwise_vectors(tmp_path, cfg)
    built = vectors.depthwise_vectors(cfg) + vectors.depthwise_corners(cfg)
    assert [p.name for p in paths] == [vs.name for vs in built]
    for p, vs in zip(paths, built):
        back = vectors.read_vector_set(p)
        assert back.program == vs.program and back.expected_status == vs.expected_status
        for r in ("fmap", "sums"):
            assert np.array_equal(back.expected[r], vs.expected[r]), (vs.name, r)


def _cyc(name: str, ctype: str = "u64") -> int:
    """A fixed overhead of the C-sim's estimate (hls/src/dg_types.h CYC_*, DW_BATCH)."""
    m = re.search(rf"constexpr {ctype} {name} = (\d+);", (hls_csim.SRC_DIR / "dg_types.h").read_text())
    assert m, name
    return int(m.group(1))


def _hand_dw_steps(cfg) -> int:
    """Steps per conv pixel of a 3x3 depthwise layer, counted by hand from the array: a lane
    pair's tn multiplies are one product each, tn/2 taps per lane and step; with tn = 1 the
    pair's one multiply serves its two lanes in turn (one lane when tm = 1)."""
    if cfg.tn == 1:
        return 9 * (2 if cfg.tm > 1 else 1)
    return -(-9 // (cfg.tn // 2))


def _dw_batch(groups: int, px: int, cfg) -> int:
    """m-groups per depthwise step, by hand from docs/hls.md: as many of the tile's m-groups
    as one accumulator half holds for a full tile of px pixels (ofm_buffer_bytes / (4 tm)
    words per lane), at most DW_BATCH, and no more than reach DW_BATCH_PIXELS pixels
    (hls/src/dg_types.h)."""
    acc_depth = cfg.ofm_buffer_bytes // (4 * cfg.tm)
    return max(1, min(groups, _cyc("DW_BATCH", "unsigned"), acc_depth // px,
                      -(-_cyc("DW_BATCH_PIXELS", "unsigned") // px)))


def _dw_steps_estimate(tiles: int, groups: int, px: int, patch: int, chans: int, cfg) -> int:
    """The step loop of a dense stride-1 depthwise layer, derived by hand from docs/hls.md
    (per step the slowest of its three stages + CYC_STEP): a step is one batch of B m-groups
    of a tile (`_dw_batch`; NB = ceil(groups / B) batches per tile, the last one shorter);
    tile 0's patch loads at step 0, tile u > 0's in NB row slices during steps
    (u-1)*NB+1 .. u*NB (slice sl: rows [sl*patch//NB, (sl+1)*patch//NB)); r rows cost
    r x columns x ceil(channel groups / F) + 2 (one fill) + AXI latency (F = max(1, bus
    bytes / tm) groups of one pixel per cycle, up to a beat); step s computes step s-1
    (nb x px x `_hand_dw_steps` + CYC_PIPE) and writes step s-2 back (nb x px x
    REQUANT_STEPS + CYC_PIPE)."""
    lat, pipe, step = _cyc("CYC_AXI_LATENCY"), _cyc("CYC_PIPE"), _cyc("CYC_STEP")
    f = max(1, cfg.axi_bytes // cfg.tm)
    b = _dw_batch(groups, px, cfg)
    nbt = -(-groups // b)

    def load(rows: int) -> int:
        return rows * patch * -(-(-(-chans // cfg.tm)) // f) + 2 + lat if rows else 0

    def nb(j: int) -> int:   # m-groups of step j's batch
        return min(b, groups - (j % nbt) * b)
    total, n = 0, tiles * nbt
    for s in range(n + 2):
        ld = load(patch) if s == 0 else 0
        if 1 <= s < n and (s - 1) // nbt + 1 < tiles:
            sl = (s - 1) % nbt
            ld = load((sl + 1) * patch // nbt - sl * patch // nbt)
        mac = nb(s - 1) * px * _hand_dw_steps(cfg) + pipe if 1 <= s <= n else 0
        wb = nb(s - 2) * px * formats.requant_cycles_per_pixel(cfg) + pipe if 2 <= s <= n + 1 else 0
        total += max(ld, mac, wb) + step
    return total


def _array_config(tm: int, tn: int):
    """`small` with a tm x tn array, buffers for 3x3 depthwise layers of up to 64 channels
    (`config_from_dict(..., fit=False)`, as tests/backends/test_rtl_depthwise.py builds its
    Tm 16 arrays): shapes the shipped configs do not have."""
    import dataclasses
    from dgfpga.contract.engine_config import config_from_dict
    d = dataclasses.asdict(load_config("small"))
    d.update(name=f"dw_tm{tm}_tn{tn}", tm=tm, tn=tn, weight_buffer_bytes=2 * 16 * 9 * 64,
             ofm_buffer_bytes=16 * 81 * 4, max_layers=3)
    return config_from_dict(d, f"dw_tm{tm}_tn{tn} (test)", fit=False)


# (tm, tn): Tn = 1 (the pair's one multiply takes its two lanes in turn: 18 steps per
# pixel), Tm = 1 (a pair without a low lane), Tn > Tm, Tn = 4 with 16 lanes (5 steps)
ARRAYS = ((16, 1), (1, 1), (2, 8), (16, 4))


class _Engines(dict):
    """C-sim engines of the ARRAYS, each built when a test first asks for it."""
    def __init__(self, cache_dir):
        super().__init__()
        self.cache_dir = cache_dir

    def __missing__(self, a):
        self[a] = hls_csim.CsimEngine(_array_config(*a), self.cache_dir)
        return self[a]


@pytest.fixture(scope="module")
def array_engines(cache_dir):
    require_csim()
    return _Engines(cache_dir)


# Tm 16 / Tn 4 in the default suite; the other arrays (a C-sim build each) are `slow`
@pytest.mark.parametrize("array", [a if a == (16, 4) else pytest.param(a, marks=pytest.mark.slow)
                                   for a in ARRAYS], ids=[f"tm{a}_tn{b}" for a, b in ARRAYS])
def test_depthwise_vectors_on_other_arrays(array, array_engines):
    """The MAC array's depthwise operand modes (dg_mac.h: one product per DSP, the high
    lane's taps on multiplies j < tn/2, the low lane's on the others; tn = 1 the lanes in
    turn) on arrays the shipped configs do not have: every depthwise / pixel_sums layer
    vector == golden (whole regions), and the contract's step count is the hand count."""
    cfg = _array_config(*array)
    for vs in vectors.depthwise_vectors(cfg):
        d = formats.unpack_descriptor(vs.program[:formats.DESCRIPTOR_BYTES], cfg)
        if d.depthwise and d.n_active_in:
            assert formats.mac_steps_per_pixel(d, cfg) == _hand_dw_steps(cfg)
        chk = hls_csim.run_vector_set(vs, array_engines[array])
        assert chk.passed, f"{array} {vs.name}: {chk.message}"


@pytest.mark.parametrize("config", ["ultra96", "small", pytest.param((16, 1), marks=pytest.mark.slow),
                                    (16, 4)], ids=["ultra96", "small", "tm16_tn1", "tm16_tn4"])
def test_dw_cycle_estimate_follows_the_steps(config, engines, array_engines):
    """The C-sim's cycle estimate of a depthwise layer: going from 16 to 32 channels (one
    m-group to two per tile with Tm 16, 4 to 8 on `small`; 16 tiles of 4x4 pixels, 6x6
    patches) adds exactly the hand-derived step costs (one patch per tile for all its
    m-groups, on `small` two channel groups per cycle (its 8-byte bus); a step is a batch of
    m-groups (`small`: 5 of the 8 then 3, its accumulator half holds 5 tiles of 16 pixels;
    Tm 16 on the test arrays: both; ultra96: both), one pipeline fill per batch; per step
    the slower of the write-back's REQUANT_STEPS cycles per pixel and the MAC array's
    `_hand_dw_steps`: on ultra96 2 steps, which show alone in the pipeline's fill step;
    `small` and Tn = 4: 5, Tn = 1: 18) plus 16 more params and 16 more weight rows of
    ceil(9/tn) words."""
    cfg = load_config(config) if isinstance(config, str) else _array_config(*config)
    eng = engines[config] if isinstance(config, str) else array_engines[config]
    est = []
    for c in (16, 32):
        case = vectors.LayerCase("dw_est", 3, 1, 16, c, c, 4, depthwise=True, emit_sums=False)
        vs = vectors.build_layer_case(case, cfg)
        d = formats.unpack_descriptor(vs.program[:formats.DESCRIPTOR_BYTES], cfg)
        assert formats.mac_steps_per_pixel(d, cfg) == _hand_dw_steps(cfg)
        chk = hls_csim.run_vector_set(vs, eng)
        assert chk.passed, chk.message
        est.append(chk.cycles_estimate)
    g16, g32 = -(-16 // cfg.tm), -(-32 // cfg.tm)
    want = (_dw_steps_estimate(16, g32, 16, 6, 32, cfg) - _dw_steps_estimate(16, g16, 16, 6, 16, cfg)
            + 16 + 16 * -(-9 // cfg.tn))
    assert est[1] - est[0] == want, est


@pytest.fixture(scope="module")
def mbv2_variant():
    """The reduced MobileNetV2 DGNet (`mobilenet_v2dg9_cifar10`), random weights, mixed
    gates, quantized on 8 structured random images and planned for ultra96: (qm, x, plan)."""
    pytest.importorskip("torch")
    pytest.importorskip("dgfpga_models", reason="dgfpga_models (models/) is not installed")
    import torch
    from dgfpga.quant.float_model import make_test_model
    from dgfpga.quant.quantizer import quantize_model
    from dgfpga.runtime.packer import plan_network
    torch.set_num_threads(1)
    x = np.random.default_rng(0).normal(0, 1, (8, 3, 32, 32)).astype(np.float32).clip(-1.75, 2.0)
    qm = quantize_model(make_test_model("mobilenet_v2dg9_cifar10", x), x)
    return qm, x, plan_network(qm, load_config("ultra96"))


@pytest.mark.parametrize("dense", [False, True], ids=["gated", "dense"])
def test_small_mobilenet_variant_one_start_on_ultra96(engines, mbv2_variant, dense):
    """The reduced MobileNetV2 DGNet (`mobilenet_v2dg9_cifar10`, random weights, mixed
    gates; 9 depthwise records, 4 of them gated on both sides) in one start of the ultra96
    C-sim per image, two images: logits == golden, every region == the interpreter's (the
    cycle log aside)."""
    from dgfpga.contract import program as P
    from dgfpga.numerics.golden import run_golden
    from dgfpga.runtime.packer import start_regions
    qm, x, plan = mbv2_variant
    cfg = plan.cfg
    dws = [lp for lp in plan.layers if lp.template.op == formats.OP_DWCONV]
    assert len(dws) == 9 and sum(lp.template.out_ch_gated for lp in dws) == 4
    g = run_golden(qm, x[:2], masks="dense" if dense else None)
    flags = P.RUN_DENSE if dense else 0
    for n in range(2):
        mem = start_regions(plan, g.layers["input"][n])
        ours = {k: v.copy() for k, v in mem.items()}
        r = run_program(plan.program, plan.record_count, ours, cfg, flags, pending="hls")
        assert r.ok, r.message
        c = engines["ultra96"].run(plan.program, plan.record_count, mem["fmap"], mem["weight"],
                                   mem["work"], mem["sums"], flags)
        assert c.status == 0, c.describe()
        lo, cl = plan.logits, plan.cycle_log
        np.testing.assert_array_equal(mem["work"][lo.offset:lo.offset + lo.nbytes].view("<i8"),
                                      g.logits_int[n])
        mem["work"][cl.offset:cl.offset + cl.nbytes] = 0
        for k in mem:
            np.testing.assert_array_equal(mem[k], ours[k], err_msg=f"image {n} {k}")
        if not dense:
            on = np.concatenate([sp.ravel() for sp, _ in r.gate_masks])
            assert 0 < on.mean() < 1


def test_fuzz_from_the_depthwise_vectors(engines):
    """The mutation fuzzer (dgfpga.backends.engine_fuzz) from the depthwise / pixel_sums
    vectors (`small`): field flips, reshapes, offsets, work-list entries, region sizes on
    depthwise records; the C-sim and the interpreter agree on STATUS and every byte."""
    from dgfpga.backends import engine_fuzz
    cfg = load_config("small")
    rep = engine_fuzz.run_fuzz(600, seed=21, cfg=cfg, engine=engines["small"],
                               sanitize=False, bases=vectors.depthwise_vectors(cfg))
    assert rep.ok, rep.summary() + "\n" + "\n".join(rep.problems[:10])
    assert rep.statuses["OK"] > 50 and rep.statuses["BAD_OP"] > 10


@pytest.mark.slow
def test_long_fuzz_from_the_depthwise_vectors(engines, cache_dir):
    """As above, 8000 cases, also under AddressSanitizer + UBSan (exact-size regions)."""
    from dgfpga.backends import engine_fuzz
    cfg = load_config("small")
    rep = engine_fuzz.run_fuzz(8000, seed=22, cfg=cfg, engine=engines["small"],
                               cache_dir=cache_dir, bases=vectors.depthwise_vectors(cfg))
    assert rep.ok, rep.summary() + "\n" + "\n".join(rep.problems[:10])


@pytest.mark.slow
def test_network_fuzz_of_the_small_mobilenet_variant(engines, mbv2_variant):
    """The network fuzzer (record fields, gate parameters, the sums a gate reads, run
    flags, from_gate) on the reduced MobileNetV2's whole program (ultra96, 2 images, gated
    and dense): C-sim == interpreter on STATUS and every byte (~40 s)."""
    from dgfpga.backends import engine_fuzz
    from dgfpga.numerics.golden import run_golden
    qm, x, plan = mbv2_variant
    cfg = plan.cfg
    bases = engine_fuzz.network_bases(plan, run_golden(qm, x[:2]).layers["input"][:2])
    rep = engine_fuzz.run_fuzz(300, seed=31, cfg=cfg, engine=engines["ultra96"],
                               sanitize=False, bases=bases)
    assert rep.ok, rep.summary() + "\n" + "\n".join(rep.problems[:10])
    assert rep.statuses["OK"] > 30


# The C-sim's estimate against the RTL's measured per-record cycles of the same starts
# (sim/results/records_dw_<config>.json, made by tests/backends/test_rtl_depthwise.py's
# helpers: mobilenet_v2dg9_cifar10, narrow on `small`, images 0 and 1, gated and dense).
# Bounds of (estimate - RTL) / RTL per depthwise record, measured 2026-12-07 on the RTL with
# the weight read port and the layer-end fix (docs/hls.md "Against the RTL's cycles"):
# `small` mean 7.4 %, +0.2 … +13.9 %; `ultra96` mean 17.6 %, -34.7 … +31.2 %: below the RTL on the 8x8 / 4x4
# layers of 144-192 channels, where the RTL loads the params one byte per cycle (8 per
# channel, docs/rtl.md) and the HLS one channel per cycle; above it on the load-bound
# 16x16x96 layer (one AXI latency per tile's patch, which the zero-latency RTL harness does
# not pay; most on image 1's gated start, the fewest active tiles). On the one-port RTL they
# were `small` mean 6.3 %, -0.1 … +10.5 %, `ultra96` mean 15.5 %, -35.6 … +32.9 %; with one
# m-group per step (no batches) `small` mean 55.5 % (+20 … +96 %), `ultra96` 39.8 % (-30 … +144 %).
# The conv records of the same starts (the 1x1 expand / project layers, "conv1"/"conv3" in
# the records file; batches of tiles per step): `small` mean 41.2 % (+7.9 … +84.1 %: load-
# bound, the patch loader's per-row restart), `ultra96` 23.2 % (-7.4 … +82.7 %); with one
# (m-group, tile) per step they were 90.5 % (+26 … +169 %) and 43.6 % (-14 … +122 %).
RTL_RECORD_BOUNDS = {("small", "dw"): (0.08, -0.02, 0.15), ("ultra96", "dw"): (0.18, -0.40, 0.35),
                     ("small", "conv"): (0.45, 0.0, 0.90), ("ultra96", "conv"): (0.25, -0.15, 0.90)}


@pytest.mark.slow
@pytest.mark.parametrize("config", ["small", "ultra96"])
def test_dw_estimate_follows_the_rtl_records(config, engines):
    """Every depthwise (and 1x1 conv) record's C-sim estimate (its cycle-log entry) against
    the RTL's measured cycles of the same record in the same start (the RTL's records file):
    mean |error| and the per-record range within RTL_RECORD_BOUNDS; each start bit-exact
    with the interpreter (every region byte, the cycle log aside). (~15 s per config.)"""
    import json
    import pathlib
    from dgfpga.contract import program as P
    from dgfpga.numerics.golden import run_golden
    from dgfpga.runtime.packer import start_regions
    from test_rtl_depthwise import _mbv2_plan
    path = pathlib.Path(__file__).resolve().parents[2] / "sim" / "results" / f"records_dw_{config}.json"
    rec = json.loads(path.read_text())
    rtl = {(r["image"], r["dense"], r["record"]): r["rtl"] for r in rec["records"]}
    kind = {r["record"]: r["kind"] for r in rec["records"]}
    plan, qm, x = _mbv2_plan(config, small=(config == "small"))
    cfg = plan.cfg
    errs = {"dw": [], "conv": []}
    for img in rec["images"]:
        for dense in (False, True):
            flags = P.RUN_DENSE if dense else 0
            g = run_golden(qm, x[img:img + 1], masks="dense" if dense else None)
            mem = start_regions(plan, g.layers["input"][0])
            ref = {k: v.copy() for k, v in mem.items()}
            r = run_program(plan.program, plan.record_count, ref, cfg, flags, pending="hls")
            assert r.ok, r.message
            c = engines[config].run(plan.program, plan.record_count, mem["fmap"], mem["weight"],
                                    mem["work"], mem["sums"], flags)
            assert c.status == 0, c.describe()
            cl = plan.cycle_log
            log = mem["work"][cl.offset:cl.offset + cl.nbytes].view("<u4").copy()
            mem["work"][cl.offset:cl.offset + cl.nbytes] = ref["work"][cl.offset:cl.offset + cl.nbytes]
            for k in mem:
                np.testing.assert_array_equal(mem[k], ref[k], err_msg=f"image {img} {k}")
            for i in range(plan.record_count):
                op = P.record_op(plan.program[i * formats.DESCRIPTOR_BYTES:(i + 1) * formats.DESCRIPTOR_BYTES])
                k = "dw" if op == formats.OP_DWCONV else "conv" if kind[i] in ("conv1", "conv3") else None
                if k:
                    errs[k].append((int(log[i]) - rtl[(img, dense, i)]) / rtl[(img, dense, i)])
    assert [len(errs[k]) for k in ("dw", "conv")] == ([20, 36] if config == "small" else [36, 68])
    for k, e in errs.items():
        mean_max, lo, hi = RTL_RECORD_BOUNDS[(config, k)]
        e = np.array(e)
        assert np.abs(e).mean() <= mean_max and lo <= e.min() and e.max() <= hi, (k, np.round(e, 3))
