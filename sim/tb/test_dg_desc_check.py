"""cocotb testbench of dg_desc_check: random descriptor mutations against dgfpga.runtime.interpreter._decode.

Valid descriptors of the shared sweep (and the shared depthwise layers) get one to three fields (or reserved bits) set to
random values; the STATUS code and entry of the RTL must equal the interpreter's
(magic/version: BAD_MAGIC per regmap.ERROR_CODES, see docs/rtl.md). A second test sets
every limit-checked field to its config limit and one past it, and sweeps the channel counts
across the buffer-fit boundaries: run on a config whose limits differ pairwise (skew), a
limit or buffer size swapped in the RTL changes a (code, entry).

The checker is pipelined (a start pulse, `done` some twenty cycles later, docs/rtl.md): each
sample is applied, started, and read when `done` rises; a third test checks that `done`
waits for the whole check (the result is read only then) and that a check started over a
running one restarts it.
"""
from __future__ import annotations

import dataclasses
import os
import random
import struct

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, ReadOnly

from dgfpga.contract import formats
from dgfpga.runtime import interpreter
from dgfpga.contract import regmap
from dgfpga.contract.engine_config import load_config
from dgfpga.backends.vectors import build_layer_case, sweep_cases

CFG = load_config(os.environ.get("DG_CONFIG", "small"))   # the config the RTL was built for
BAD_MAGIC = regmap.ERR["BAD_MAGIC"]
# depthwise descriptors are built on CFG with the depthwise hardware ([features] depthwise):
# on a config without it (DG_DEPTHWISE = 0) they are the records the checker must refuse
DW_CFG = CFG if CFG.depthwise else dataclasses.replace(CFG, depthwise=True)


def expected(raw: bytes, sizes: dict) -> tuple[int, int]:
    try:
        interpreter.decode_layer(raw, CFG, sizes, pending="rtl")
    except interpreter.EngineError as exc:
        words = struct.unpack("<24I", raw)
        if (words[0] & 0xFF) != formats.DESC_MAGIC or ((words[0] >> 8) & 0xFF) != formats.FORMAT_VERSION:
            # reserved words/bits are checked first; then magic and version
            reserved = any(words[20:]) or (words[0] & 0xE000_0000) or (words[1] & 0xFFE0_F000) \
                or (words[5] & 0xFF00_0000)
            if not reserved:
                return BAD_MAGIC, 0
        return exc.code, exc.entry
    return 0, 0


MAX_CYCLES = 64          # a check that takes longer is a failure (docs/rtl.md: ~25 cycles)


async def start_clock(dut) -> None:
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.start.value = 0
    await RisingEdge(dut.clk)


async def run_check(dut) -> tuple[int, int]:
    """Start a check of the applied inputs; wait for done; return (code, entry) and the cycles."""
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    for cycles in range(1, MAX_CYCLES + 1):
        await RisingEdge(dut.clk)
        await ReadOnly()
        if int(dut.done.value):
            got = (int(dut.err_code.value), int(dut.err_entry.value))
            await RisingEdge(dut.clk)
            return got, cycles
    raise AssertionError(f"dg_desc_check: done did not rise within {MAX_CYCLES} cycles")


def mutate(rng: random.Random, raw: bytes) -> bytes:
    words = list(struct.unpack("<24I", raw))
    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        if r < 0.05:
            words[rng.randrange(20, 24)] = rng.getrandbits(32)
        elif r < 0.1:
            words[rng.choice((0, 1, 5))] |= 1 << rng.choice((29, 30, 31, 12, 15, 21, 24))
        else:
            f = rng.choice(formats.DESCRIPTOR_FIELDS)
            if f.width > 8 and rng.random() < 0.7:
                v = max(0, (words[f.word] >> f.lsb & f.mask) + rng.randint(-3, 3))  # near the valid value
            else:
                v = rng.getrandbits(f.width)
            words[f.word] = (words[f.word] & ~(f.mask << f.lsb)) | ((v & f.mask) << f.lsb)
    return struct.pack("<24I", *[w & 0xFFFFFFFF for w in words])


@cocotb.test()
async def test_random_mutations(dut):
    """Every sweep descriptor unchanged (OK) and 1500 random mutations: same (code, entry)."""
    await start_clock(dut)
    rng = random.Random(17)
    bases = []
    for case in sweep_cases(CFG):
        vs = build_layer_case(case, CFG)
        sizes = {r: int(vs.before[r].size) for r in ("fmap", "weight", "work", "sums")}
        bases.append((vs.program[:formats.DESCRIPTOR_BYTES], sizes))
    # depthwise layers and pixel_sums (the shared depthwise vectors, when present): the RTL
    # implements them (formats.PENDING_BY_ENGINE["rtl"]), so their mutations are checked too
    from dgfpga.backends import vectors
    for vs in vectors.depthwise_vectors(DW_CFG):
        sizes = {r: int(vs.before[r].size) for r in ("fmap", "weight", "work", "sums")}
        bases.append((vs.program[:formats.DESCRIPTOR_BYTES], sizes))
    samples = [(raw, sizes) for raw, sizes in bases]
    # NO_FIT: a 7x7 kernel over dense_3x3_s1's 16 channels (weights of one m-group too big)
    words = list(struct.unpack("<24I", bases[0][0]))
    for name, v in (("k", 7), ("pad", 3)):
        f = formats.FIELD_BY_NAME[name]
        words[f.word] = (words[f.word] & ~(f.mask << f.lsb)) | (v << f.lsb)
    samples.append((struct.pack("<24I", *words), bases[0][1]))
    samples += [(mutate(rng, raw), sizes) for raw, sizes in (rng.choice(bases) for _ in range(1500))]
    # a conv turned depthwise and a depthwise layer turned conv (op alone), both ways
    for raw, sizes in bases:
        words = list(struct.unpack("<24I", raw))
        op = (words[0] >> 16) & 0xF
        _set(words, "op", formats.OP_DWCONV if op == formats.OP_CONV else formats.OP_CONV)
        samples.append((struct.pack("<24I", *words), sizes))
    seen, bad = {}, []
    for raw, sizes in samples:
        dut.desc.value = int.from_bytes(raw, "little")
        dut.fmap_bytes.value = sizes["fmap"]
        dut.weight_bytes.value = sizes["weight"]
        dut.work_bytes.value = sizes["work"]
        dut.sums_bytes.value = sizes["sums"]
        got, _ = await run_check(dut)
        want = expected(raw, sizes)
        seen[want[0]] = seen.get(want[0], 0) + 1
        if got != want:
            bad.append((raw.hex(), got, want))
    dut._log.info("codes exercised: %s", {regmap.ERROR_NAMES[c]: n for c, n in sorted(seen.items())})
    assert not bad, f"{len(bad)} mismatches, first: {bad[:3]}"
    assert len(seen) >= 9 and regmap.ERR["NO_FIT"] in seen, f"too few error codes exercised: {seen}"


def _set(words: list, name: str, v: int) -> None:
    f = formats.FIELD_BY_NAME[name]
    words[f.word] = (words[f.word] & ~(f.mask << f.lsb)) | ((v & f.mask) << f.lsb)


async def _check(dut, samples) -> list:
    bad = []
    for raw, sizes in samples:
        dut.desc.value = int.from_bytes(raw, "little")
        for r in ("fmap", "weight", "work", "sums"):
            getattr(dut, f"{r}_bytes").value = sizes[r]
        got, _ = await run_check(dut)
        want = expected(raw, sizes)
        if got != want:
            bad.append((raw.hex(), got, want))
    return bad


@cocotb.test()
async def test_limit_boundaries(dut):
    """Each limit at its config value and one past it; channel counts across the buffer fits."""
    await start_clock(dut)
    case = next(c for c in sweep_cases(CFG) if c.name == "dense_3x3_s1")
    vs = build_layer_case(case, CFG)
    big = 1 << 31
    sizes = {r: big for r in ("fmap", "weight", "work", "sums")}
    base = list(struct.unpack("<24I", vs.program[:formats.DESCRIPTOR_BYTES]))
    samples, codes = [], set()
    limits = {"in_h": CFG.max_height, "out_h": CFG.max_height, "in_w": CFG.max_width,
              "out_w": CFG.max_width, "in_c": CFG.max_in_channels, "n_active_in": CFG.max_in_channels,
              "out_c": CFG.max_out_channels, "n_active_out": CFG.max_out_channels,
              "tile": CFG.max_tile, "grid_h": CFG.max_grid, "grid_w": CFG.max_grid}
    for name, lim in limits.items():
        for v in (lim - 1, lim, lim + 1):
            w = list(base)
            _set(w, name, v)
            samples.append((struct.pack("<24I", *w), sizes))
    # every channel count, 3x3 and 7x7: NO_FIT starts where the weight / patch buffer is full
    for k in (3, 7):
        for c in range(1, max(CFG.max_in_channels, CFG.max_out_channels) + 2):
            for names in (("in_c", "n_active_in"), ("out_c", "n_active_out")):
                w = list(base)
                _set(w, "k", k)
                _set(w, "pad", k // 2)
                for n in names:
                    _set(w, n, c)
                samples.append((struct.pack("<24I", *w), sizes))
    for raw, sz in samples:
        codes.add(expected(raw, sz)[0])
    bad = await _check(dut, samples)
    assert not bad, f"{len(bad)} of {len(samples)} mismatches, first: {bad[:3]}"
    assert {regmap.ERR["NO_FIT"], regmap.ERR["BAD_SHAPE"], regmap.ERR["BAD_TILE"], 0} <= codes, codes


@cocotb.test()
async def test_done_waits_for_the_check(dut):
    """done stays low while a check runs (the result of the previous descriptor must not be
    taken), rises after a fixed number of cycles, and a start during a check restarts it."""
    await start_clock(dut)
    case = next(c for c in sweep_cases(CFG) if c.name == "dense_3x3_s1")
    vs = build_layer_case(case, CFG)
    sizes = {r: int(vs.before[r].size) for r in ("fmap", "weight", "work", "sums")}
    good = vs.program[:formats.DESCRIPTOR_BYTES]
    words = list(struct.unpack("<24I", good))
    _set(words, "n_active_in", CFG.max_in_channels + 1)   # a late check (not the first field)
    bad = struct.pack("<24I", *words)
    want_bad = expected(bad, sizes)
    assert want_bad[0] != 0
    for r in ("fmap", "weight", "work", "sums"):
        getattr(dut, f"{r}_bytes").value = sizes[r]
    dut.desc.value = int.from_bytes(good, "little")
    got, n_good = await run_check(dut)
    assert got == (0, 0), got
    dut.desc.value = int.from_bytes(bad, "little")
    got, n_bad = await run_check(dut)
    assert got == want_bad and n_bad == n_good, (got, want_bad, n_good, n_bad)
    # restart: start the good descriptor, switch to the bad one mid-check and start again
    dut.desc.value = int.from_bytes(good, "little")
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    for _ in range(n_good // 2):
        await RisingEdge(dut.clk)
        await ReadOnly()
        assert not int(dut.done.value), "done rose during a check"
    await RisingEdge(dut.clk)
    dut.desc.value = int.from_bytes(bad, "little")
    got, n = await run_check(dut)
    assert got == want_bad and n == n_good, (got, n)


@cocotb.test()
async def test_depthwise_feature(dut):
    """The depthwise records (the shared depthwise layers and their rule corners, built with the
    depthwise hardware): on a config with it, the interpreter's (code, entry); without it
    (DG_DEPTHWISE = 0) each is BAD_OP at the op word, whatever else is wrong after the op
    (formats.validate_descriptor: the op check precedes every other field check, so the
    depthwise rules are not reached), and the same records as conv layers (op alone
    changed) get the interpreter's (code, entry) as on any config: the other checks unchanged."""
    from dgfpga.backends import vectors
    await start_clock(dut)
    rng = random.Random(29)
    bases = []
    for vs in vectors.depthwise_vectors(DW_CFG) + vectors.depthwise_corners(DW_CFG):
        raw = vs.program[:formats.DESCRIPTOR_BYTES]
        f = formats.FIELD_BY_NAME["op"]
        if struct.unpack("<24I", raw)[f.word] >> f.lsb & f.mask != formats.OP_DWCONV:
            continue                            # (the pixel_sums conv layers among them)
        sizes = {r: int(vs.before[r].size) for r in ("fmap", "weight", "work", "sums")}
        bases.append((raw, sizes))
    samples = list(bases)
    # one to three fields other than magic / version / op set to random values
    fields = [f for f in formats.DESCRIPTOR_FIELDS if f.name not in ("magic", "version", "op")]
    for _ in range(300):
        raw, sizes = rng.choice(bases)
        words = list(struct.unpack("<24I", raw))
        for _ in range(rng.randint(1, 3)):
            f = rng.choice(fields)
            _set(words, f.name, rng.getrandbits(f.width))
        samples.append((struct.pack("<24I", *words), sizes))
    as_conv = []
    for raw, sizes in samples:
        words = list(struct.unpack("<24I", raw))
        _set(words, "op", formats.OP_CONV)
        as_conv.append((struct.pack("<24I", *words), sizes))
    op_err = (regmap.ERR["BAD_OP"], formats.FIELD_BY_NAME["op"].word)
    if not CFG.depthwise:
        want = [expected(raw, sizes) for raw, sizes in samples]
        assert all(w == op_err for w in want), "the interpreter must refuse op 5 without depthwise"
        assert expected(*bases[0]) == op_err
    else:
        assert expected(*bases[0]) == (0, 0)
    bad = await _check(dut, samples)
    assert not bad, f"depthwise records: {len(bad)} of {len(samples)} mismatches, first: {bad[:3]}"
    bad = await _check(dut, as_conv)
    assert not bad, f"as conv layers: {len(bad)} of {len(as_conv)} mismatches, first: {bad[:3]}"
