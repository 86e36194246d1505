"""cocotb testbench of dg_requant against the integer formula of docs/architecture.md.

SHARE (DG_PARAM_SHARE, default 1) is the time-sharing: one input per SHARE cycles (in_ready),
the result SHARE + 3 cycles after the input is taken."""
from __future__ import annotations

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

LANES = int(os.environ.get("DG_PARAM_LANES", "4"))
SHARE = int(os.environ.get("DG_PARAM_SHARE", "1"))


def ref(acc, mult, res, res_mult, shift, signed):
    z = acc * mult + res * res_mult
    y = (z + (1 << (shift - 1))) >> shift
    lo, hi = (-128, 127) if signed else (0, 255)
    return max(lo, min(hi, y)) & 0xFF


def pack(values, bits):
    v = 0
    for i, x in enumerate(values):
        v |= (int(x) & ((1 << bits) - 1)) << (i * bits)
    return v


async def _run_samples(dut, samples, what: str = "sample"):
    """Drive `samples` [(acc, mult, res, res_mult, shift, signed)] one at a time (each held
    until taken, then the pipeline drained: shift / res_mult / out_signed are per layer) and
    check every result against `ref`; returns the expected results."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    got, want = [], []

    async def monitor():
        while True:
            await RisingEdge(dut.clk)
            if int(dut.out_valid.value):
                y = int(dut.out_y.value)
                got.append([(y >> (8 * l)) & 0xFF for l in range(LANES)])

    cocotb.start_soon(monitor())
    for acc, mult, res, res_mult, shift, signed in samples:
        dut.in_acc.value = pack(acc, 33)
        dut.in_mult.value = pack(mult, 32)
        dut.in_res.value = pack(res, 9)
        dut.res_mult.value = res_mult
        dut.shift.value = shift
        dut.out_signed.value = int(signed)
        dut.in_tag.value = 0
        dut.in_valid.value = 1
        want.append([ref(a, m, r, res_mult, shift, signed) for a, m, r in zip(acc, mult, res)])
        await RisingEdge(dut.clk)
        while not int(dut.in_ready.value):
            await RisingEdge(dut.clk)
        dut.in_valid.value = 0
        await ClockCycles(dut.clk, SHARE + 3)
    await ClockCycles(dut.clk, 4)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"{what} {i} (shift {samples[i][4]}): got {g}, want {w}"
    return want


@cocotb.test()
async def test_random(dut):
    """Random accumulators, multipliers, residuals, shifts, both clamps."""
    rng = random.Random(2)
    samples = []
    for _ in range(300):
        shift = rng.randint(1, 31)
        signed = rng.random() < 0.5
        res_mult = rng.randrange(0, 1 << 31)
        acc = [rng.randint(-(1 << 32), (1 << 32) - 1) for _ in range(LANES)]
        mult = [rng.randrange(0, 1 << 31) for _ in range(LANES)]
        res = [rng.randint(-256, 255) for _ in range(LANES)]
        if rng.random() < 0.3:   # realistic magnitudes, mostly in range
            acc = [rng.randint(-50000, 50000) for _ in range(LANES)]
            mult = [rng.randint(1, 3000) for _ in range(LANES)]
            shift = 16
            res = [rng.randint(-128, 255) for _ in range(LANES)]
            res_mult = rng.randint(0, 1 << 17)
        samples.append((acc, mult, res, res_mult, shift, signed))
    await _run_samples(dut, samples)


@cocotb.test()
async def test_back_to_back(dut):
    """in_valid held with a new input whenever in_ready: one result per SHARE cycles, each the
    reference of the input taken (a phase of the next input must not overwrite a lane early),
    SHARE + 3 cycles after it was taken; the tag rides along."""
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.in_valid.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    rng = random.Random(5)
    shift, signed, res_mult = 12, 1, rng.randint(0, 1 << 16)
    dut.shift.value = shift
    dut.out_signed.value = signed
    dut.res_mult.value = res_mult
    got, want, taken_at, out_at = [], [], [], []
    n = 40
    cycle = 0

    def new_input():
        acc = [rng.randint(-(1 << 20), 1 << 20) for _ in range(LANES)]
        mult = [rng.randint(1, 1 << 12) for _ in range(LANES)]
        res = [rng.randint(-128, 255) for _ in range(LANES)]
        dut.in_acc.value = pack(acc, 33)
        dut.in_mult.value = pack(mult, 32)
        dut.in_res.value = pack(res, 9)
        dut.in_tag.value = len(want) & 0xFF
        want.append([ref(a, m, r, res_mult, shift, signed) for a, m, r in zip(acc, mult, res)])

    new_input()
    dut.in_valid.value = 1
    while len(got) < n and cycle < 20 * n * SHARE:
        await FallingEdge(dut.clk)          # mid-cycle: registers settled
        cycle += 1
        if int(dut.out_valid.value):
            y = int(dut.out_y.value)
            got.append(([(y >> (8 * l)) & 0xFF for l in range(LANES)], int(dut.out_tag.value)))
            out_at.append(cycle)
        if int(dut.in_valid.value) and int(dut.in_ready.value):
            taken_at.append(cycle)          # taken at the next rising edge
            await RisingEdge(dut.clk)
            if len(want) < n:
                new_input()
            else:
                dut.in_valid.value = 0
    assert len(got) == n, f"{len(got)} of {n} results"
    for i, ((g, tag), w) in enumerate(zip(got, want)):
        assert g == w and tag == i & 0xFF, f"result {i}: got {g} tag {tag}, want {w} tag {i}"
    gaps = {b - a for a, b in zip(out_at, out_at[1:])}
    assert gaps == {SHARE}, f"results every {gaps} cycles, want {SHARE}"
    lat = {o - t for t, o in zip(taken_at, out_at)}
    assert lat == {SHARE + 3}, f"latency {lat} cycles after the input was taken, want {SHARE + 3}"


@cocotb.test()
async def test_in_range_shifts(dut):
    """Results inside the clamp's range at every shift 1..31 (z near y * 2^shift for a small
    y): the byte (z >>> shift)[7:0] of each shift, which test_random's random magnitudes
    mostly clamp (its in-range samples use shift 16)."""
    rng = random.Random(7)
    samples = []
    for i in range(248):
        shift = i % 31 + 1
        signed = rng.random() < 0.5
        res_mult = rng.randrange(0, 1 << 12)
        mult = [rng.randint(1 << 8, 1 << 12) for _ in range(LANES)]
        res = [rng.randint(-256, 255) for _ in range(LANES)]
        acc = []
        for m in mult:
            z = (rng.randint(-140, 270) << shift) + rng.randrange(0, 1 << shift)
            acc.append(max(-(1 << 32), min((1 << 32) - 1, z // m)))
        samples.append((acc, mult, res, res_mult, shift, signed))
    want = await _run_samples(dut, samples)
    inside = sum(1 for w in want for y in w if y not in (0x00, 0x7F, 0x80, 0xFF))
    assert inside > len(want) * LANES // 3, f"only {inside} results inside the clamp's range"
