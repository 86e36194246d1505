"""The reference RTL's depthwise tap banks at their size limit (dg_loader: k*k banks, each
two memories of even and odd rows; dg_pkg.sv DW_HALF from the generated DG_DW_BANK_HALF_BYTES = formats.dw_bank_half_bytes).

The largest patch the fit rule admits on `small` (ifm_buffer_bytes/2 = 2304, 64 channels,
AXI 8 bytes): side 7, 47 channels (7 x 7 x 47 = 2303 <= 2304), which puts ceil(7/3)^2 x 47 =
9 x 47 = 423 bytes in the dw bank of phase (0, 0), its last byte in the half's last row
(DW_HALF = 424 = 53 rows of 8). A 12 x 12 x 47 map, stride 2, pad 1, 3 x 3 tiles (max_tile
4): tile (0, 0) loads rows and columns -1..5 (side (3 - 1) x 2 + 3 = 7); all four tiles fill
their half.
Bit for bit against the interpreter and a direct loop (tests/backends/test_rtl_depthwise.py
dw_case); a DW_HALF one row short stops the simulation ($error in dg_loader) or corrupts the
other half.
"""
from __future__ import annotations

import pytest

from conftest import require_verilator
from dgfpga.contract import formats
from dgfpga.contract.engine_config import load_config
from dgfpga.perf import resources
from test_rtl_depthwise import _check_layer, dw_case


@pytest.fixture(scope="module")
def small_sim():
    require_verilator()
    from dgfpga.backends.rtl_sim import FastSim
    with FastSim("small") as sim:
        yield sim


def test_limit_case_is_the_largest_fitting_patch():
    """The case below is at the limit by hand: it fits (2303 <= 2304), one more channel does
    not (7 x 7 x 48 = 2352), and its bank bytes are the bound's."""
    cfg = load_config("small")
    _, d, *_ = dw_case(cfg, h=12, w=12, c=47, tile=3, stride=2, seed=21)
    assert formats.input_patch_side(d) == 7
    assert formats.layer_fit_problems(d, cfg) == []
    assert formats.layer_fit_problems(d.replace(in_c=48, out_c=48), cfg)
    assert formats.dw_bank_bytes(7, 7, 47) == 423 == formats.dw_bank_half_bytes(cfg)
    assert resources.rtl_geometry(cfg)["DW_DEPTH"] == 2 * 53


@pytest.mark.verilator
@pytest.mark.parametrize("kw", [dict(), dict(gated=True), dict(in_signed=True, seed=22)],
                         ids=["dense", "gated", "signed"])
def test_depthwise_fills_the_dw_bank_half(small_sim, kw):
    """12 x 12 x 47, stride 2, 3 x 3 tiles on `small`: every tile's patch fills a dw bank
    half to its last row (gated: compact channels, fewer bytes; still two halves in turn)."""
    _check_layer(small_sim, load_config("small"), **dict(dict(h=12, w=12, c=47, tile=3,
                                                              stride=2, seed=21), **kw))
