"""cocotb testbench of dg_mac_array: Tm x Tn int8 x (u8|s8) accumulations against numpy.

The array packs two int8 products into one multiply (lanes 2k, 2k+1 share x; see the RTL
header): the "extreme" accumulations draw weights and activations from the values where the
packing's sign correction matters most (-128, -1, 0, 1, 127 and 255 / -256 for x)."""
from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

TM = int(os.environ.get("DG_PARAM_TM", "4"))
TN = int(os.environ.get("DG_PARAM_TN", "4"))
# dg_mac_array LP (depthwise by lane parity): DSP n of pair k takes tap n of lane 2k or 2k+1 with
# weight byte n, its B operand whole from in_xd (k*TPS + n) for n < TPS, in conv steps too
LP = int(os.environ.get("DG_PARAM_LP", "0"))
# depthwise taps per lane and step (dg_mac_array TPS)
TPS = int(os.environ.get("DG_PARAM_TPS", str(TN // 2 if TN >= 2 else 1)))
NP = (TM + 1) // 2


def pack(values, bits):
    v = 0
    for i, x in enumerate(values):
        v |= (int(x) & ((1 << bits) - 1)) << (i * bits)
    return v


async def start(dut):
    """Clock, reset for 3 cycles, inputs idle."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    dut.in_dw.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0


def drive_x(dut, x):
    """A conv step's activations: in_x, and with LP the B operands of DSPs n < TPS in in_xd."""
    dut.in_x.value = pack(x, 9)
    if LP:
        dut.in_xd.value = pack(np.tile(np.asarray(x)[:TPS], NP), 9)


async def collect(dut, got: list, tags: bool = False):
    """Append every output's Tm accumulators (uint32), with its tag when `tags`."""
    while True:
        await RisingEdge(dut.clk)
        if int(dut.out_valid.value):
            acc = int(dut.out_acc.value)
            lanes = [((acc >> (32 * m)) & 0xFFFFFFFF) for m in range(TM)]
            got.append((lanes, int(dut.out_tag.value)) if tags else lanes)


@cocotb.test()
async def test_random_accumulations(dut):
    """Back-to-back accumulations of random lengths, with idle gaps; tags ride along."""
    await start(dut)
    rng = random.Random(11)
    nprng = np.random.default_rng(11)
    expected, got = [], []

    cocotb.start_soon(collect(dut, got, tags=True))
    for n_acc in range(40):
        steps = rng.randint(1, 12)
        signed = rng.random() < 0.5
        extreme = rng.random() < 0.3
        acc = np.zeros(TM, np.int64)
        for s in range(steps):
            w = nprng.integers(-128, 128, (TM, TN))
            x = nprng.integers(-128, 128, TN) if signed else nprng.integers(0, 256, TN)
            if extreme:         # the 9-bit port's whole range, at the packing's corner values
                w = nprng.choice([-128, -127, -1, 0, 1, 127], (TM, TN))
                x = nprng.choice([-256, -128, -1, 0, 1, 127, 255], TN)
            if n_acc == 0:
                w[:] = -128
                x[:] = 255 if not signed else -128
            acc += w @ x
            dut.in_w.value = pack(w.reshape(-1), 8)
            drive_x(dut, x)
            dut.in_first.value = int(s == 0)
            dut.in_last.value = int(s == steps - 1)
            dut.in_tag.value = n_acc & 0xFF
            dut.in_valid.value = 1
            await RisingEdge(dut.clk)
            if rng.random() < 0.2:
                dut.in_valid.value = 0
                await RisingEdge(dut.clk)
        expected.append(([int(a) & 0xFFFFFFFF for a in acc], n_acc & 0xFF))
    dut.in_valid.value = 0
    await ClockCycles(dut.clk, 6)
    assert len(got) == len(expected), f"{len(got)} results, want {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == e, f"accumulation {i}: got {g}, want {e}"


@cocotb.test()
async def test_depthwise_mode(dut):
    """Depthwise steps (in_dw): lane m accumulates sum_j wd[m][j] * in_xd[m][j] over its
    TPS = Tn/2 tap slots (its own weights and activations, one product per DSP), where wd[m][j]
    is byte j (+ TPS when in_whalf) of lane m's in_w row if in_won[m][j], else 0 (the other
    bytes of the row are random and must not count; a slot off with a non-zero activation
    must add nothing), mixed back to back with conv steps in other accumulations; with Tn = 1
    a lane pair's one multiply takes one lane per step (the other lane off, its activation
    zero, as dg_compute feeds it)."""
    await start(dut)
    rng = random.Random(23)
    nprng = np.random.default_rng(23)
    expected, got = [], []

    cocotb.start_soon(collect(dut, got))
    for n_acc in range(30):
        dw = n_acc % 3 != 2
        steps = rng.randint(1, 10)
        acc = np.zeros(TM, np.int64)
        for s in range(steps):
            if dw and LP:       # lane parity s % 2 of each pair fed, tap n on DSP n (byte n)
                w = nprng.integers(-128, 128, (TM, TN))
                xd = nprng.choice([-256, -128, -1, 0, 1, 127, 255], (TM, TPS)) if n_acc % 4 == 0 \
                    else nprng.integers(-128, 256, (TM, TPS))
                won = nprng.random((TM, TPS)) < 0.85
                won[(np.arange(TM) % 2) != (s % 2)] = False
                acc += (np.where(won, w[:, :TPS], 0) * xd).sum(axis=1)
                b = np.array([[xd[min(2 * k + s % 2, TM - 1)][n] for n in range(TPS)] for k in range(NP)])
                dut.in_w.value = pack(w.reshape(-1), 8)
                dut.in_won.value = pack(won.reshape(-1), 1)
                dut.in_whalf.value = 0
                dut.in_xd.value = pack(b.reshape(-1), 9)
                dut.in_x.value = pack(nprng.integers(-128, 128, TN), 9)
            elif dw:
                wd = nprng.choice([-128, -127, -1, 0, 1, 127], (TM, TPS)) if n_acc % 4 == 0 \
                    else nprng.integers(-128, 128, (TM, TPS))
                xd = nprng.choice([-256, -128, -1, 0, 1, 127, 255], (TM, TPS)) if n_acc % 4 == 0 \
                    else nprng.integers(-128, 256, (TM, TPS))
                won = nprng.random((TM, TPS)) < 0.85
                whalf = TN >= 2 and rng.random() < 0.5
                if TN == 1 and TM > 1:          # one lane of each pair per step
                    off = (np.arange(TM) % 2) != (s % 2)
                    won[off] = False
                    xd[off] = 0
                acc += (np.where(won, wd, 0) * xd).sum(axis=1)
                w = nprng.integers(-128, 128, (TM, TN))     # the row: wd at j (+ TPS)
                w[:, (TPS if whalf else 0):(TPS if whalf else 0) + TPS] = wd
                dut.in_w.value = pack(w.reshape(-1), 8)
                dut.in_won.value = pack(won.reshape(-1), 1)
                dut.in_whalf.value = int(whalf)
                dut.in_xd.value = pack(xd.reshape(-1), 9)
                dut.in_x.value = pack(nprng.integers(-128, 128, TN), 9)
            else:
                w = nprng.integers(-128, 128, (TM, TN))
                x = nprng.integers(0, 256, TN)
                acc += w @ x
                dut.in_w.value = pack(w.reshape(-1), 8)
                drive_x(dut, x)
                dut.in_won.value = pack(nprng.random(TM * TPS) < 0.5, 1)       # ignored
                dut.in_whalf.value = int(rng.random() < 0.5)
                if not LP:
                    dut.in_xd.value = pack(nprng.integers(-128, 128, TM * TPS), 9)
            dut.in_dw.value = int(dw)
            dut.in_first.value = int(s == 0)
            dut.in_last.value = int(s == steps - 1)
            dut.in_tag.value = n_acc & 0xFF
            dut.in_valid.value = 1
            await RisingEdge(dut.clk)
        expected.append([int(a) & 0xFFFFFFFF for a in acc])
    dut.in_valid.value = 0
    await ClockCycles(dut.clk, 6)
    assert got == expected, f"{sum(g != e for g, e in zip(got, expected))} of {len(expected)} differ"


@cocotb.test()
async def test_cascade_corners(dut):
    """The packed sign correction summed over a DSP cascade (the RTL header): per lane pair,
    the low lane's sum over a cascade must never spill into the high lane's field. Every step
    puts the same corner on all n (all -128 x -128, all -128 x -256 = the low field's largest
    sum, -128 x 255 its smallest, 127 x -256, ...), then steps mixing corners per product
    (high and low lane of opposite signs, so that P[17] is set and must be added back), over
    single- and multi-step accumulations; against numpy int64 sums wrapped to int32."""
    await start(dut)
    nprng = np.random.default_rng(31)
    wc = [-128, -127, -1, 0, 1, 127]
    xc = [-256, -255, -128, -1, 0, 1, 127, 255]
    steps_list = []
    for wh in wc:                       # homogeneous: one corner on every product
        for wl in wc:
            for x in xc:
                w = np.empty((TM, TN), np.int64)
                w[0::2] = wh
                w[1::2] = wl
                steps_list.append([(w, np.full(TN, x, np.int64))])
    for n_acc in range(60):             # mixed corners, 1..6 steps (the long ones wrap int32)
        steps = []
        for _ in range(1 + n_acc % 6):
            w = nprng.choice(wc, (TM, TN))
            x = nprng.choice(xc, TN)
            if n_acc % 3 == 0 and TM > 1:   # low lane = -high lane: P[17] set where low < 0
                w[1::2] = np.clip(-w[0::2][: TM // 2], -128, 127)
            steps.append((w, x))
        steps_list.append(steps)
    expected, got = [], []

    cocotb.start_soon(collect(dut, got))
    for i, steps in enumerate(steps_list):
        acc = np.zeros(TM, np.int64)
        for s, (w, x) in enumerate(steps):
            acc += w @ x
            dut.in_w.value = pack(w.reshape(-1), 8)
            drive_x(dut, x)
            dut.in_first.value = int(s == 0)
            dut.in_last.value = int(s == len(steps) - 1)
            dut.in_tag.value = i & 0xFF
            dut.in_valid.value = 1
            await RisingEdge(dut.clk)
        expected.append([int(a) & 0xFFFFFFFF for a in acc])
    dut.in_valid.value = 0
    await ClockCycles(dut.clk, 6)
    assert len(got) == len(expected), f"{len(got)} results, want {len(expected)}"
    bad = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
    assert not bad, (f"{len(bad)} of {len(expected)} accumulations differ, first #{bad[0]}: "
                     f"got {got[bad[0]]}, want {expected[bad[0]]}")
