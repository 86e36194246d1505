"""cocotb testbench of dg_fifo against a Python queue: random pushes and pops (full, empty,
simultaneous push and pop at every fill level), the data, count and flags every cycle, with
the head from the memory (HEAD_REG 0) or from the head register (HEAD_REG 1)."""
from __future__ import annotations

import collections
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

WIDTH = int(os.environ.get("DG_PARAM_WIDTH", "8"))
DEPTH = int(os.environ.get("DG_PARAM_DEPTH", "4"))


async def _reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.in_valid.value = 0
    dut.out_ready.value = 0
    dut.in_data.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0


async def _run(dut, model: collections.deque, cycles: int, p_push: float, p_pop: float,
               seed: int):
    """Drive random handshakes for `cycles` cycles; check the outputs each cycle between edges
    (in_ready / out_valid are registers, so they do not depend on this cycle's inputs);
    `model` holds the FIFO's entries (kept from run to run)."""
    rng = random.Random(seed)
    levels = collections.Counter()
    for _ in range(cycles):
        await FallingEdge(dut.clk)
        assert int(dut.count.value) == len(model), (int(dut.count.value), len(model))
        assert int(dut.in_ready.value) == (len(model) < DEPTH)
        assert int(dut.out_valid.value) == (len(model) > 0)
        if model:
            assert int(dut.out_data.value) == model[0], (hex(int(dut.out_data.value)), hex(model[0]))
        push = rng.random() < p_push
        pop = rng.random() < p_pop
        word = rng.getrandbits(WIDTH)
        dut.in_valid.value = int(push)
        dut.in_data.value = word
        dut.out_ready.value = int(pop)
        # the transfers at the next edge: a push when not full, a pop when not empty (both
        # as the FIFO is now: a push into an empty FIFO is not popped in the same cycle)
        take, give = push and len(model) < DEPTH, pop and len(model) > 0
        levels[(len(model), take, give)] += 1
        if give:
            model.popleft()
        if take:
            model.append(word)
    return levels


@cocotb.test()
async def test_random_handshakes(dut):
    await _reset(dut)
    seen = collections.Counter()
    model = collections.deque()
    # mostly filling, mostly draining, balanced: every level with and without each transfer
    for seed, (pp, pq) in enumerate([(0.8, 0.3), (0.3, 0.8), (0.6, 0.6), (1.0, 1.0), (0.5, 0.5)]):
        seen.update(await _run(dut, model, 2000, pp, pq, seed))
    for level in range(DEPTH + 1):
        # a simultaneous push and pop at every level where both can happen
        if 0 < level < DEPTH:
            assert seen[(level, True, True)], level
        assert sum(v for (lv, _, _), v in seen.items() if lv == level), level
