"""Memory mapping edges of the resource estimate, worked out from the BRAM18/BRAM36 aspect
ratios (UG573): 16Kx1 .. 512x36 per BRAM18, 512x72 per BRAM36; LUTRAM up to 2048 bits, in
the cells Yosys maps a one-write one-read memory to (RAM32M16: 32 x 14, RAM64M8: 64 x 7, 8
LUTs each; UG574)."""
from __future__ import annotations

import pytest

from dgfpga.perf import resources


@pytest.mark.parametrize("depth, width, want", [
    (64, 32, (0.0, 40)),      # 2048 bits: LUTRAM, ceil(32 / 7) = 5 RAM64M8 (8 LUTs each)
    (32, 14, (0.0, 8)),       # one RAM32M16 (32 rows x 14 bits, 8 LUTs)
    (32, 15, (0.0, 16)),      # a 15th bit: a second RAM32M16
    (65, 7, (0.0, 16)),       # a 65th row: two RAM64M8
    (64, 33, (0.5, 0)),       # 2112 bits: one BRAM18 (512 x 36)
    (512, 72, (1.0, 0)),      # exactly one BRAM36 in 512 x 72 (or two 512 x 36 BRAM18)
    (512, 73, (1.5, 0)),      # 3 x BRAM18 512 x 36 beats 2 x BRAM36 512 x 72
    (513, 36, (1.0, 0)),      # one row past 512: two BRAM18 (or one 1K x 18 pair)
    (16384, 1, (0.5, 0)),     # the deepest BRAM18 mode
])
def test_memory_edges(depth, width, want):
    assert resources._memory(depth, width) == want


def test_ultra96_weight_buffers_by_hand():
    """One weight RAM per output lane (TM = 16, dg_loader.sv), both ping-pong halves: a
    half holds min(49 taps x ceil(512 / 16), 147456 / 2 / 256 + 49) = min(1568, 337) = 337
    rows of TN*8 = 128 bits (dg_pkg.sv WDEPTH), 674 in all -> 2 x 2 BRAM36 in 512 x 72 (or
    8 BRAM18 in 1K x 18) = 4 per lane, 64 in all."""
    from dgfpga.contract.engine_config import load_config
    cfg = load_config("ultra96")
    assert resources.rtl_geometry(cfg)["WDEPTH"] == 337
    item = next(i for i in resources.estimate(cfg).items if i.component == "weight buffers")
    assert item.bram36 == 64.0 and item.note.startswith("16 x 674x128 bit BRAM")


def test_depthwise_banks_in_distributed_ram_by_the_byte():
    """The depthwise patch banks (dg_loader.sv g_dwbank) are written a byte column at a time
    and read through a register: at `small` (18 memories of 53 rows x 64 bits, distributed
    RAM) each byte is two RAM64M8 (one write enable per cell, 7 bits a cell): 8 x 2 x 8 = 128
    LUTs a memory instead of ceil(64/7) x 8 = 80, and the read register's 64 FFs; in block
    RAM (ultra96: 512 x 128 bits) the register is the BRAM's own."""
    from dgfpga.contract.engine_config import load_config
    small = {i.component: i for i in resources.estimate(load_config("small")).items}
    dw = small["depthwise patch banks"]
    assert (dw.bram36, dw.lut, dw.ff) == (0.0, 18 * 128, 18 * 64)
    u96 = {i.component: i for i in resources.estimate(load_config("ultra96")).items}
    dw = u96["depthwise patch banks"]
    assert (dw.bram36, dw.lut, dw.ff) == (36.0, 0, 0)
