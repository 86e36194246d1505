"""The depthwise tap banks' size bound (formats.dw_bank_half_bytes = dg_pkg.sv DW_HALF
before rounding to whole rows): every depthwise patch the fit rule admits fits a bank half,
and the bound is attained, worked out by hand for the shipped configs."""
from __future__ import annotations

import pytest

from dgfpga.contract import formats
from dgfpga.contract.engine_config import load_config
from dgfpga.perf import resources


def test_bank_bytes_by_hand():
    # bank (r mod 3, c mod 3) of a 4 x 5 patch: rows 0, 3 x columns 0, 3 = 4 pixels
    assert formats.dw_bank_bytes(4, 5, 10) == 4 * 10
    assert formats.dw_bank_bytes(3, 3, 7) == 7
    assert formats.dw_bank_bytes(7, 9, 2) == 3 * 3 * 2


@pytest.mark.parametrize("name, want, depth", [
    # ultra96: fit 65536/2 = 32768; side 4 with C = 2048 (4 x 4 x 2048 = 32768): 2 x 2 pixels
    # per bank x 2048 = 8192 = 512 rows of 16 (2 x 512 x 128 bits per bank: 2 BRAM36 each);
    # side 3: 2048, side 5: 4 x 1310 = 5240, side 7: 9 x 668 = 6012 are smaller
    ("ultra96", 8192, 1024),
    # small: fit 2304, 64 channels: side 7 with C = 47 (2303): 9 x 47 = 423 -> 53 rows of 8
    ("small", 423, 106),
])
def test_bound_by_hand(name, want, depth):
    cfg = load_config(name)
    assert formats.dw_bank_half_bytes(cfg) == want
    assert resources.rtl_geometry(cfg)["DW_DEPTH"] == depth


@pytest.mark.parametrize("name", ["ultra96", "small", "tests/backends/configs/skew.toml",
                                  "tests/backends/configs/syn_8x4.toml",
                                  "tests/backends/configs/syn_8x8.toml"])
def test_every_fitting_patch_fits_a_bank_half(name):
    """All sides p (k <= p <= the RTL's patch limit) and channel counts C: a depthwise layer
    whose patch passes the fit rule (layer_fit_problems, the same as NO_FIT) has at most the
    bound's bytes in a bank; some layer reaches it."""
    cfg = load_config(name)
    bound = formats.dw_bank_half_bytes(cfg)
    g = resources.rtl_geometry(cfg)
    assert bound <= g["DW_DEPTH"] // 2 * g["DW_NBW"]
    fit = formats.fit_limits(cfg)["fit_ifm_patch_bytes"]
    worst = 0
    for p in range(3, 4 * cfg.max_tile + formats.MAX_KERNEL + 1):
        c = min(cfg.max_in_channels, fit // (p * p))
        if c == 0:
            break
        over = c + 1
        ok = formats.layer_fit_problems(_dw(p, c), cfg) == []
        if ok:
            worst = max(worst, formats.dw_bank_bytes(p, p, c))
            assert formats.dw_bank_bytes(p, p, c) <= bound, (p, c)
        if over <= cfg.max_in_channels and p * p * over > fit:
            assert formats.layer_fit_problems(_dw(p, over), cfg), (p, over)
    assert worst == bound


def _dw(p: int, c: int):
    """A stride-1 depthwise 3x3 layer whose full tile's patch side is p (tile p - 2)."""
    t = p - 2
    return formats.make_descriptor(k=3, stride=1, pad=1, in_h=t, in_w=t, in_c=c, out_c=c,
                                   tile=t, op=formats.OP_DWCONV, shift=0)
