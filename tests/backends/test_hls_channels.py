"""The HLS engine (C-sim) at 2048-channel limits on ultra96's buffers (issue 15).

Engine: ultra96 (ultra96's 16x16 array, 147,456-byte weight
buffer, 65,536-byte ifm buffer, max_in/out_channels 2048). References, each independent of
the C++ under test: the numpy interpreter (`dgfpga.runtime.interpreter`, the executable
contract) for every byte of every region and every STATUS; the integer gate model
(`dgfpga.numerics.gates`) for the logits the biases are set against, so every channel gate
decision sits at its edge (logit 0 / -1..2) and any difference in summation, pooling or
requantization flips one. Whole networks at 2048 channels: test_hls_csim.py
(`resdg50`) and tests/runtime/test_mobilenet_program.py (`mobilenet_v2_dg`).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import require_csim
from dgfpga.backends import hls_csim, vectors
from dgfpga.backends.vectors import LayerCase
from dgfpga.contract import formats, regmap
from dgfpga.contract import program as prog
from dgfpga.contract.engine_config import load_config
from dgfpga.numerics import gates
from dgfpga.runtime import interpreter

ROOT = Path(__file__).resolve().parents[2]
R50 = load_config("ultra96")    # 2048-channel limits
ERR = regmap.ERR
A = R50.axi_bytes
RB = formats.DESCRIPTOR_BYTES


@pytest.fixture(scope="module")
def r50(tmp_path_factory):
    require_csim()
    return hls_csim.CsimEngine(R50, tmp_path_factory.mktemp("csim_r50"))


def test_config_is_ultra96_with_2048_channels():
    u = load_config("ultra96")
    assert (R50.tm, R50.tn, R50.weight_buffer_bytes, R50.ifm_buffer_bytes,
            R50.ofm_buffer_bytes) == (u.tm, u.tn, u.weight_buffer_bytes, u.ifm_buffer_bytes,
                                      u.ofm_buffer_bytes)
    assert R50.max_in_channels == R50.max_out_channels == 2048


# ---- the per-layer weight fit (the 1x1 config rule; wider 3x3 layers are NO_FIT) -------
def _run_both(engine, vs, program: bytes, count: int):
    mem = {r: vs.before[r].copy() for r in vectors.REGIONS}
    ref = {r: vs.before[r].copy() for r in vectors.REGIONS}
    res = engine.run(program, count, mem["fmap"], mem["weight"], mem["work"], mem["sums"])
    r = interpreter.run_program(program, count, ref, R50)
    return res, r, mem, ref


def test_1x1_at_1024_runs_and_3x3_at_1024_is_no_fit_as_in_the_interpreter(r50):
    """A 1x1 conv with 1024 inputs fits ultra96's weight buffer (16 x 1024 bytes per
    m-group): bit-exact with the golden layer. The same layer as 3x3 (16 x 9 x 1024 =
    147,456 > 73,728 bytes per half) is NO_FIT at the tile word on the C-sim exactly as on
    the interpreter, and nothing is written. (Tile 2: the 3x3 input patch, 4x4x1024 bytes,
    fits the ifm buffer, so the weights are the only reason.)"""
    vs = vectors.build_layer_case(LayerCase("r50_1x1_1024", 1, 1, 8, 1024, 32, 2), R50, seed=3)
    chk = hls_csim.run_vector_set(vs, r50)
    assert chk.passed, chk.message
    words = np.frombuffer(vs.program[:RB], "<u4").copy()
    for name, v in (("k", 3), ("pad", 1)):
        f = formats.FIELD_BY_NAME[name]
        words[f.word] = (int(words[f.word]) & ~(f.mask << f.lsb) & 0xFFFFFFFF) | (v << f.lsb)
    res, r, mem, ref = _run_both(r50, vs, words.tobytes(), 1)
    want = regmap.pack_status(ERR["NO_FIT"], 0, formats.FIELD_BY_NAME["tile"].word)
    assert r.status == want, r.message
    assert res.status == want, res.describe()
    for k in vectors.REGIONS:
        assert np.array_equal(mem[k], vs.before[k]), k


def test_3x3_at_512_is_the_widest_that_fits(r50):
    """The 3x3 bound on these buffers: 512 inputs (16 x 9 x 512 = 73,728 bytes, exactly
    half the weight buffer) run bit-exact."""
    vs = vectors.build_layer_case(LayerCase("r50_3x3_512", 3, 1, 6, 512, 16, 3), R50, seed=4)
    chk = hls_csim.run_vector_set(vs, r50)
    assert chk.passed, chk.message


# ---- gate, gate-2 and head records at the channel limit --------------------------------
class _Alloc:
    def __init__(self):
        self.pos = 0

    def __call__(self, nbytes: int) -> int:
        o = self.pos
        self.pos += -(-nbytes // A) * A
        return o


def _channel_gate(rng, in_c, out_c, hidden, pooled_totals, shift=12):
    """A random IntChannelGate whose logits on `pooled_totals` sit at the decision edge:
    b2 = -logit(b2=0) + a value in -1..2 (so about half the channels on, each within 2)."""
    w1 = rng.integers(-200, 201, (hidden, in_c)).astype(np.int16)
    m1 = rng.integers(1, 1 << 10, hidden).astype(np.int32)
    o1 = rng.integers(-(1 << 30), 1 << 30, hidden).astype(np.int64)
    w2 = rng.integers(-300, 301, (out_c, hidden)).astype(np.int16)
    cg = gates.IntChannelGate(w1, m1, o1, shift, w2, np.zeros(out_c, np.int64))
    lc = gates.channel_gate_logits_int(pooled_totals, cg)
    b2 = -lc + rng.integers(-1, 3, out_c)
    assert np.abs(b2).max() < prog.GATE_BIAS_LIMIT
    return gates.IntChannelGate(w1, m1, o1, shift, w2, b2)


def _gate_program(seed: int, in_c: int, out_c: int, out_c2: int, hidden: int, hw, sums_tile,
                  grid, classes: int):
    """gate -> gate-2 -> head in one start (WORK/SUMS/WEIGHT laid out here), random sums of
    an 8-bit map; returns (program, count, regions, expected masks (spatial, c1) from the
    integer gate model)."""
    rng = np.random.default_rng(seed)
    h, w = hw
    st_h, st_w = -(-h // sums_tile), -(-w // sums_tile)
    gh, gw = grid
    table = gates.bin_table(h, w, sums_tile, grid)
    # per-tile channel sums of a u8 map (edge tiles hold fewer pixels)
    px = np.minimum(sums_tile, h - np.arange(st_h) * sums_tile)[:, None] * \
        np.minimum(sums_tile, w - np.arange(st_w) * sums_tile)[None, :]
    ts = (rng.random((st_h, st_w, in_c)) * 255 * px[..., None]).astype(np.int64)
    # the spatial gate, its bias at the median logit (that bin exactly at 0)
    ws = rng.integers(-400, 401, (in_c, 3, 3)).astype(np.int16)
    bins = np.array([[ts[r0:r1, c0:c1].sum(axis=(0, 1)) for c0, c1 in table.cols]
                     for r0, r1 in table.rows])
    pooled = gates.gate_pool(np.moveaxis(bins, -1, 0), table.recip)
    ls = gates.spatial_gate_logits_int(pooled, gates.IntSpatialGate(ws, 0)).reshape(-1)
    bs = -int(np.sort(ls)[ls.size // 2])
    sg = gates.IntSpatialGate(ws, bs)
    pt = gates.gate_pool(ts.sum(axis=(0, 1)), table.recip_total)
    cg = _channel_gate(rng, in_c, out_c, hidden, pt)
    spatial = (ls + bs) >= 0
    chan = gates.channel_gate_logits_int(pt, cg) >= 0
    assert 0 < spatial.sum() < spatial.size and 0 < chan.sum() < chan.size

    work, sums, weight = _Alloc(), _Alloc(), _Alloc()
    n = gh * gw
    g_sums = sums(4 * st_h * st_w * in_c)
    g2_sums = sums(4 * n * out_c)
    gblob = prog.pack_gate_params(table, sg, cg, A)
    g_par = weight(len(gblob))
    # gate-2: totals of conv1's compact sums over the active tiles (as the golden reads them)
    cs = rng.integers(0, 255 * (h * w // n), (n, int(chan.sum()))).astype(np.int64)  # <= 255 H W
    tot2 = np.zeros(out_c, np.int64)
    tot2[chan] = cs[spatial].sum(axis=0)
    rt2 = gates.gate_reciprocal(h * w)
    cg2 = _channel_gate(rng, out_c, out_c2, max(1, hidden // 2), gates.gate_pool(tot2, rt2))
    g2blob = prog.pack_gate2_params(rt2, cg2, A)
    g2_par = weight(len(g2blob))
    hw_ = rng.integers(-128, 128, (classes, in_c)).astype(np.int8)
    hb = rng.integers(-(1 << 31), 1 << 31, classes).astype(np.int32)
    hblob = prog.pack_head_params(hw_, hb, A)
    h_par = weight(len(hblob))
    mlay = prog.mask_bytes(n, out_c)
    g = prog.GateRecord(in_c, out_c, hidden, cg.shift, st_h, st_w, gh, gw, res_list=True,
                        sums_offset=g_sums, param_offset=g_par, mask_offset=work(mlay),
                        c1_tiles_offset=work(2 * n), c1_out_ch_offset=work(2 * out_c),
                        c2_tiles_offset=work(2 * n), c2_res_tiles_offset=work(2 * n),
                        c2_in_ch_offset=work(2 * out_c), c2_bitmap_offset=work(4 * 8))
    g2 = prog.Gate2Record(out_c, out_c2, max(1, hidden // 2), cg2.shift, gh, gw,
                          sums_offset=g2_sums, param_offset=g2_par,
                          in_mask_offset=g.mask_offset, mask_offset=work(4 * (out_c2 // 32 + 1)),
                          c2_out_ch_offset=work(2 * out_c2), c3_in_ch_offset=work(2 * out_c2))
    hd = prog.HeadRecord(in_c, classes, st_h, st_w, sums_offset=g_sums, param_offset=h_par,
                         logits_offset=work(8 * classes), log_offset=work(4 * 3))
    program = prog.pack_gate_record(g, R50) + prog.pack_gate2_record(g2, R50) + \
        prog.pack_head_record(hd, R50)
    regions = {"fmap": np.zeros(64, np.uint8), "weight": np.zeros(weight.pos, np.uint8),
               "work": rng.integers(0, 256, work.pos).astype(np.uint8),
               "sums": np.zeros(sums.pos, np.uint8)}
    regions["sums"][g_sums:g_sums + ts.size * 4] = ts.astype("<i4").reshape(-1).view(np.uint8)
    full = np.zeros((n, out_c), "<i4")            # compact rows: nc sums per tile
    full.reshape(-1)[:cs.size] = cs.reshape(-1)
    regions["sums"][g2_sums:g2_sums + full.nbytes] = full.view(np.uint8).reshape(-1)
    for o, b in ((g_par, gblob), (g2_par, g2blob), (h_par, hblob)):
        regions["weight"][o:o + len(b)] = np.frombuffer(b, np.uint8)
    return program, 3, regions, (spatial, chan), hd


GATE_CASES = [
    # in_c, out_c (conv1), out_c2 (conv2), hidden, map, sums tile, grid, classes
    pytest.param(2048, 1024, 2048, 128, (7, 7), 1, (4, 4), 1000, id="2048_pixel_sums_7x7_bins"),
    pytest.param(1030, 2048, 1100, 1030, (24, 30), 2, (3, 5), 17, id="1030_partial_group"),
    pytest.param(2048, 2048, 2048, 2048, (32, 32), 2, (16, 16), 1000, id="2048_grid16_hidden2048"),
]


@pytest.mark.parametrize("in_c,out_c,out_c2,hidden,hw,st,grid,classes", GATE_CASES)
def test_gate_gate2_head_at_the_channel_limit(r50, in_c, out_c, out_c2, hidden, hw, st, grid,
                                              classes):
    """gate -> gate-2 -> head with in_c/out_c up to 2048 (the lists longer than 512, the
    channel groups streamed), gated and dense: the C-sim leaves every region byte as the
    interpreter does (the cycle log aside), STATUS 0, and the gate record's masks are the
    integer gate model's, with the channel logits at their edges."""
    program, count, regions, (spatial, chan), hd = _gate_program(
        7 + in_c, in_c, out_c, out_c2, hidden, hw, st, grid, classes)
    for flags in (0, prog.RUN_DENSE):
        mem = {k: v.copy() for k, v in regions.items()}
        ref = {k: v.copy() for k, v in regions.items()}
        r = interpreter.run_program(program, count, ref, R50, flags)
        assert r.ok, r.message
        res = r50.run(program, count, mem["fmap"], mem["weight"], mem["work"], mem["sums"],
                      run_flags=flags)
        assert res.status == 0, res.describe()
        log = mem["work"][hd.log_offset:hd.log_offset + 4 * count].view("<u4")
        assert (log > 0).all()
        mem["work"][hd.log_offset:hd.log_offset + 4 * count] = \
            ref["work"][hd.log_offset:hd.log_offset + 4 * count]
        for k in vectors.REGIONS:
            i = np.flatnonzero(mem[k] != ref[k])
            assert not i.size, f"{k} differs from the interpreter at byte {i[0]} (flags {flags})"
        sp, ch = r.gate_masks[0]
        if flags:
            assert sp.all() and ch.all() and r.gate2_masks[0].all()
        else:
            np.testing.assert_array_equal(sp.reshape(-1), spatial)
            np.testing.assert_array_equal(ch, chan)
            assert 0 < r.gate2_masks[0].sum() < r.gate2_masks[0].size


@pytest.mark.slow          # the ASan/UBSan testbench build for ultra96 (~1 min)
def test_gate_programs_in_the_sanitized_testbench(r50, tmp_path):
    """The gate -> gate-2 -> head programs of GATE_CASES, gated and dense, as vector folders
    (expected FMAP, WORK, SUMS from the interpreter; the cycle log ignored) through the C++
    testbench under AddressSanitizer + UBSan at 2048 channels: every set passes, no finding
    (no access outside the channel-group windows, the in-place gate-2 expansion, the lists)."""
    folders = []
    for p in GATE_CASES:
        in_c, out_c, out_c2, hidden, hw, st, grid, classes = p.values
        program, count, regions, _, hd = _gate_program(7 + in_c, in_c, out_c, out_c2, hidden,
                                                       hw, st, grid, classes)
        for flags in (0, prog.RUN_DENSE):
            ref = {k: v.copy() for k, v in regions.items()}
            assert interpreter.run_program(program, count, ref, R50, flags).ok
            vs = vectors.VectorSet(f"gates_{p.id}_{flags}", R50.name, R50.config_hash, program,
                                   count, {k: v.copy() for k, v in regions.items()},
                                   {k: ref[k] for k in ("fmap", "work", "sums")},
                                   run_flags=flags, ignore=[("work", hd.log_offset, 4 * count)])
            folders.append(vectors.write_vector_set(vs, tmp_path / vs.name))
    code, lines = hls_csim.run_testbench(folders, R50, Path(r50.lib_path).parent.parent,
                                         sanitize=True)
    assert code == 0, "\n".join(lines[-20:])
    assert len(lines) == len(folders) and all(ln.startswith("PASS ") for ln in lines), lines


# ---- the gate unit's on-chip arrays ---------------------------------------------------
def test_gate_unit_arrays_do_not_scale_with_channels_times_grid(r50, tmp_path):
    """sizeof(GateBufs) (the gate unit's and the head's one set of arrays) compiled for
    ultra96 (2048 channels, grid 16): <= 64 KB with the hardware's widths (bool = 1 bit),
    and no member is sized channels x grid or channels x taps (each at most one per-channel
    vector): the restructured, channel-group-outer gate unit."""
    cxx, ap = hls_csim.compiler(), hls_csim.ap_types_dir()
    inc = Path(r50.lib_path).parent / "include"          # the generated dg_config.h
    src = tmp_path / "sizes.cpp"
    members = ["bins", "recip", "ws", "bs", "tot", "rowsum", "logit", "hid", "tile_on",
               "ch_on", "chans", "cbits", "in_words"]
    body = "".join(f'    std::printf("{m} %zu %zu\\n", sizeof(B.{m}), '
                   f'sizeof(B.{m}) / sizeof(dg::u8));\n' for m in members)
    src.write_text('#include <cstdio>\n#include "dg_head.h"\nint main() {\n'
                   '    const dg::GateBufs &B = dg::gate_bufs();\n' + body +
                   '    std::printf("total %zu 0\\n", sizeof(dg::GateBufs));\n}\n')
    exe = tmp_path / "sizes"
    subprocess.run([cxx, "-std=c++14", "-O0", "-Wno-unknown-pragmas", "-isystem", str(ap),
                    "-I", str(inc), "-I", str(hls_csim.SRC_DIR), str(src), "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    sizes = {m: int(b) for m, b, _ in
             (ln.split() for ln in subprocess.run([str(exe)], capture_output=True,
                                                  text=True, check=True).stdout.splitlines())}
    hw_bytes = sum(sizes[m] / (8 if m in ("tile_on", "ch_on") else 1) for m in members)
    assert hw_bytes <= 64 * 1024, sizes
    per_channel = 8 * R50.max_in_channels          # the largest single vector: int64 x 2048
    for m in members:
        assert sizes[m] <= per_channel, (m, sizes[m])
    assert sizes["rowsum"] == 8 * R50.max_grid * R50.tn and sizes["ws"] == 2 * 9 * R50.tn

