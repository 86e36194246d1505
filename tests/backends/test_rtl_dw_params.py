"""The depthwise parameter rows (dg_loader g_dwparams: per lane a RAM of {mult, bias} words,
row g = channel g * Tm + lane, read by the write-back through a registered port at the
m-group its first stage takes next; at ultra96 lanes 0 .. Tm/2-1 in block RAM, the others in
distributed RAM) on the RTL (fast harness), bit for bit against the interpreter and a direct
loop, in the cases that stress the reads:

- 1-pixel tiles: every write-back entry is the next m-group, so the row changes with every
  pixel, and the reads of consecutive pixels come as close as the requantizer front allows;
- many m-groups per tile, C not a multiple of Tm (a partial last row);
- C > 64 * Tm (rows past 64: the upper half of a 128-row lane RAM);
- consecutive depthwise layers with different C in ONE start (the later layer's rows
  overwrite the earlier's; rows the later layer does not write keep stale values that must
  never be read).

Each parameter is distinct per channel (bias and mult random over a wide range), so a stale
row, a row of the wrong m-group or a lane's word in another lane changes the output.
"""
from __future__ import annotations

import numpy as np
import pytest

from dgfpga.contract import regmap as R
from dgfpga.contract.engine_config import load_config
from dgfpga.runtime.interpreter import run_program

import test_rtl_depthwise
from test_rtl_depthwise import dw_case

# the FastSim fixtures are test_rtl_depthwise's (module-scoped: one simulator per module)
small_sim = test_rtl_depthwise.small_sim
ultra96_sim = test_rtl_depthwise.ultra96_sim


def _copy(regions):
    return {n: a.copy() for n, a in regions.items()}


def _program(cfg, layers):
    """The depthwise layers `layers` (dw_case keyword dicts) as ONE program: each layer's
    regions placed after the previous layers' (its descriptor's offsets moved with them).
    Returns (program bytes, count, regions, [(descriptor, want, on)])."""
    from dgfpga.contract import formats
    a = cfg.axi_bytes
    base = {n: 0 for n in ("fmap", "weight", "work", "sums")}
    parts, recs, checks = {n: [] for n in base}, [], []
    for kw in layers:
        _raw, d, regions, want, on, _chans = dw_case(cfg, **kw)
        fb, wb, kb, sb = base["fmap"], base["weight"], base["work"], base["sums"]
        moved = dict(in_offset=d.in_offset + fb, out_offset=d.out_offset + fb,
                     weight_offset=d.weight_offset + wb, param_offset=d.param_offset + wb,
                     sums_offset=d.sums_offset + sb)
        # the work lists the layer has (a depthwise layer: tiles, their bitmap, the out-channel list)
        if d.tile_gated:
            moved["tile_list_offset"] = d.tile_list_offset + kb
            moved["bitmap_offset"] = d.bitmap_offset + kb
        if d.out_ch_gated:
            moved["out_ch_list_offset"] = d.out_ch_list_offset + kb
        d = d.replace(**moved)
        recs.append(formats.pack_descriptor(d, cfg))
        checks.append((d, want, on))
        for n in base:
            r = regions[n]
            pad = -(-r.size // a) * a - r.size
            parts[n].append(np.concatenate([r, np.zeros(pad, np.uint8)]))
            base[n] += r.size + pad
    regions = {n: np.concatenate(parts[n]) for n in base}
    return b"".join(recs), len(layers), regions, checks


def _check(sim, cfg, layers):
    raw, count, regions, checks = _program(cfg, layers)
    ref = _copy(regions)
    r = run_program(raw, count, ref, cfg, pending="rtl")
    assert r.ok, r.message
    run = sim.run(raw, count, _copy(regions))
    assert run.status == 0, R.unpack_status(run.status)
    for n in ("fmap", "work", "sums"):
        np.testing.assert_array_equal(run.regions[n], ref[n], err_msg=f"{n} {layers}")
    for d, want, on in checks:
        out = run.regions["fmap"][d.out_offset:d.out_offset + d.out_h * d.out_w * d.out_c_stored]
        out = out.reshape(d.out_h, d.out_w, d.out_c_stored).astype(np.int64)
        np.testing.assert_array_equal(out[on], want[on], err_msg=str(d))
    return run


#: single layers: 1-pixel tiles (the row changes every pixel), many m-groups, partial rows
ULTRA96_LAYERS = {
    # 16 one-pixel tiles x 10 m-groups (the last 5 of 16 lanes)
    "t1_4x4x149": dict(h=4, w=4, c=149, tile=1, seed=21),
    # gated: a tile subset and a channel subset (compact rows), 1-pixel tiles
    "t1_gated_5x5x70": dict(h=5, w=5, c=70, tile=1, gated=True, seed=22),
    # stride 2, 1-pixel tiles, s8 input
    "t1_s2_6x6x40": dict(h=6, w=6, c=40, tile=1, stride=2, in_signed=True, seed=23),
    # 2x2 tiles (4-pixel passes), 13 m-groups, C = 13 * 16 - 1
    "t2_6x5x207": dict(h=6, w=5, c=207, tile=2, seed=24),
    # rows past 64 (the upper half of a lane's 128 rows): 69 m-groups, 1-pixel tiles
    "t1_3x3x1100": dict(h=3, w=3, c=1100, tile=1, seed=25),
}


@pytest.mark.verilator
@pytest.mark.parametrize("name", list(ULTRA96_LAYERS))
def test_dw_param_rows_ultra96(ultra96_sim, name):
    """One depthwise layer per start on ultra96: bit-exact with the interpreter and the
    direct loop."""
    _check(ultra96_sim, load_config("ultra96"), [ULTRA96_LAYERS[name]])


@pytest.mark.verilator
def test_dw_param_rows_consecutive_layers_ultra96(ultra96_sim):
    """Three depthwise layers with different C in one start (149, then 37: rows 3 .. 9 keep
    layer 1's values, then 100 with gating): every layer reads only its own rows."""
    _check(ultra96_sim, load_config("ultra96"), [
        dict(h=4, w=4, c=149, tile=1, seed=31),
        dict(h=5, w=4, c=37, tile=1, in_signed=True, seed=32),
        dict(h=6, w=6, c=100, tile=2, gated=True, seed=33),
    ])


@pytest.mark.verilator
def test_dw_param_rows_small(small_sim):
    """The same stresses on `small` (Tm = 4, 16 rows per lane, all distributed RAM): 1-pixel
    tiles with many m-groups and consecutive layers with different C."""
    _check(small_sim, load_config("small"), [
        dict(h=4, w=4, c=23, tile=1, seed=41),
        dict(h=5, w=5, c=10, tile=1, gated=True, seed=42),
        dict(h=4, w=5, c=61, tile=2, in_signed=True, seed=43),
    ])
