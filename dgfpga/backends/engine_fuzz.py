"""Mutation fuzzer of the C-sim engine against the reference interpreter (numpy only).

Starting from the shared vector sets (`dgfpga.backends.vectors.layer_sweep`), each case
applies one to three mutations: a descriptor field (bit flip, small step, boundary or
random value), a reserved bit, an offset moved onto another buffer or to a region's end,
a consistent reshape (kernel, stride, pad, size, tile, pooling, channel counts changed
and the derived sizes, grid and counts recomputed, so the deeper rules are reached:
the fit, `zero_halo` on another grid, the region bounds), a work-list entry (index = its count, a duplicate, 0xFFFF...), a tile-bitmap bit, a
param word (`mult` >= 2^31 included), a region's size (one byte short of a buffer's end,
empty, larger), the layer count and the program (descriptors dropped, duplicated,
swapped, zeroed). On network programs (`network_bases`: gate records, from_gate convs, the
head; gated and dense; Bottleneck programs with their gate-2 records) also `NET_OPS`:
gate/gate-2/head record fields, gate and gate-2 parameter entries, the SUMS a gate reads (garbage sums: the engine's wrapping int64 path), run_flags and the
from_gate bit. Every case runs on

- the reference, `dgfpga.runtime.interpreter.run_program`,
- the C-sim engine through ctypes (`hls_csim.CsimEngine`),
- optionally the AddressSanitizer + UBSan build (`hls_csim` target `fuzz_asan`), where
  every region is a heap block of exactly its size,

(refusing what the HLS engine does not implement: `pending="hls"`, formats.PENDING_BY_ENGINE),
and must give the same STATUS and the same FMAP, WORK and SUMS bytes (the cycle log of a
completed network run aside: the interpreter writes zeros there). Regions of the first two
sit between guard bytes (`GUARD` bytes of a fixed pattern on each side); a guard byte
that changes, a change to WEIGHT, or to WORK by a program without gate or head records,
is a write outside the declared buffers.
Everything is deterministic in the seed.
"""
from __future__ import annotations

import struct
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from dgfpga.contract import formats, regmap
from dgfpga.contract import program as prog
from dgfpga.contract.engine_config import EngineConfig, load_config
from dgfpga.contract.formats import DESCRIPTOR_BYTES, DESCRIPTOR_FIELDS, FIELD_BY_NAME
from dgfpga.errors import FormatError

__all__ = ["FuzzCase", "FuzzReport", "mutate", "cases", "run_fuzz", "GUARD", "NET_OPS",
           "network_regions", "network_bases"]

REGIONS = ("fmap", "weight", "work", "sums")
GUARD = 64                          # guard bytes on each side of every region
MAX_REGION = 1 << 18                # a mutation never grows a region past this (bytes)
_GUARD_SALT = 0x6A
_RUNNER_MAGIC = 0x5A464744          # 'DGFZ', hls/tb/fuzz_dg_engine.cpp
_PROBE_MAGIC = 0x58464744           # 'DGFX': the runner's self-test, reads past FMAP
OPS = ("field", "field", "field", "reshape", "reshape", "fit", "reserved", "offset", "work_entry", "bitmap", "work_byte",
       "param", "fmap_byte", "region_size", "region_size", "layer_count", "program")
# network programs (gate and head records): applied to bases that hold such records, else
# they fall back to a descriptor field mutation
NET_OPS = ("gate_field", "gate_field", "gate_param", "gate_param", "gate_param", "gate_sums",
           "gate2_param", "gate2_param", "run_flags", "from_gate")


@dataclass
class FuzzCase:
    """One engine start: program, layer count, the four regions (exact sizes), run_flags."""
    name: str
    program: bytes
    layer_count: int
    regions: dict
    run_flags: int = 0


@dataclass
class FuzzReport:
    """Outcome of a fuzz run; every list holds one line per problem case."""
    seed: int
    cases: int = 0
    sanitized: int = 0                      # cases also run under ASan + UBSan
    status_mismatches: list = field(default_factory=list)
    memory_mismatches: list = field(default_factory=list)
    guard_violations: list = field(default_factory=list)
    reference_errors: list = field(default_factory=list)
    sanitizer_findings: list = field(default_factory=list)
    out_of_domain: int = 0                  # gate sums outside the integer gates' domain
    statuses: Counter = field(default_factory=Counter)   # STATUS code name -> cases
    ops: Counter = field(default_factory=Counter)         # mutation -> cases

    @property
    def problems(self) -> list:
        return (self.status_mismatches + self.memory_mismatches + self.guard_violations
                + self.reference_errors + self.sanitizer_findings)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        codes = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()))
        return (f"seed {self.seed}: {self.cases} cases ({self.sanitized} under ASan+UBSan); "
                f"STATUS mismatches {len(self.status_mismatches)}, memory mismatches "
                f"{len(self.memory_mismatches)}, writes outside buffers "
                f"{len(self.guard_violations)}, reference errors {len(self.reference_errors)}, "
                f"sanitizer findings {len(self.sanitizer_findings)}; gate sums outside the "
                f"domain (engine only) {self.out_of_domain}; statuses: {codes}")


# ----------------------------------------------------------------------------- mutations
def _words(program: bytes) -> np.ndarray:
    n = len(program) // DESCRIPTOR_BYTES
    return np.frombuffer(program[:n * DESCRIPTOR_BYTES], "<u4").reshape(n, -1).copy()


def _get(words: np.ndarray, layer: int, name: str) -> int:
    f = FIELD_BY_NAME[name]
    return (int(words[layer, f.word]) >> f.lsb) & f.mask


def _set(words: np.ndarray, layer: int, name: str, value: int) -> None:
    f = FIELD_BY_NAME[name]
    w = int(words[layer, f.word]) & ~(f.mask << f.lsb) & 0xFFFFFFFF
    words[layer, f.word] = w | ((int(value) & f.mask) << f.lsb)


def _decoded(words: np.ndarray, layer: int, cfg: EngineConfig):
    try:
        return formats.unpack_descriptor(words[layer].astype("<u4").tobytes(), cfg)
    except FormatError:
        return None


_LIMITS = {"in_h": "max_height", "out_h": "max_height", "in_w": "max_width",
           "out_w": "max_width", "in_c": "max_in_channels", "out_c": "max_out_channels",
           "tile": "max_tile", "grid_h": "max_grid", "grid_w": "max_grid"}


def _field_value(rng, f, old: int, cfg: EngineConfig) -> int:
    r = rng.random()
    if r < 0.3:
        return old ^ (1 << int(rng.integers(f.width)))
    if r < 0.6:
        return old + int(rng.integers(-3, 4))
    if r < 0.8:
        lim = getattr(cfg, _LIMITS[f.name]) if f.name in _LIMITS else 1
        return int(rng.choice([0, 1, f.mask, lim, lim + 1, 1 << 31 if f.width == 32 else 0]))
    return int(rng.integers(0, f.mask + 1))


def _records(words: np.ndarray, ops: tuple) -> list[int]:
    return [i for i in range(len(words)) if (int(words[i, 0]) >> 16) & 0xF in ops]


_NET_LIMITS = {"in_c": "max_in_channels", "out_c": "max_out_channels",
               "hidden": "max_in_channels", "st_h": "max_grid", "st_w": "max_grid",
               "gh": "max_grid", "gw": "max_grid"}


def _set_rec(words: np.ndarray, i: int, f, value: int) -> None:
    w = int(words[i, f.word]) & ~(f.mask << f.lsb) & 0xFFFFFFFF
    words[i, f.word] = w | ((int(value) & f.mask) << f.lsb)


def _gate_record(words: np.ndarray, i: int):
    vals = {f.name: (int(words[i, f.word]) >> f.lsb) & f.mask for f in prog.GATE_FIELDS
            if f.name not in ("magic", "version", "op")}
    vals["res_list"] = bool(vals["res_list"])
    return prog.GateRecord(**vals)


_S64 = (1 << 63) - 1


def _mutate_net(rng, op: str, c: FuzzCase, words: np.ndarray, cfg: EngineConfig) -> Optional[str]:
    """One network-program mutation, or None when the case has no record for it."""
    gates = _records(words, (prog.OP_GATE,))
    if op == "run_flags":
        c.run_flags = int(rng.choice([c.run_flags ^ prog.RUN_DENSE, prog.RUN_DENSE | 2,
                                      0x80000000, 0]))
        return "run_flags"
    if op == "from_gate":
        convs = _records(words, (formats.OP_CONV,))
        if not convs:
            return None
        i = convs[int(rng.integers(len(convs)))]
        words[i, 1] ^= np.uint32(1 << FIELD_BY_NAME["from_gate"].lsb)
        c.program = words.tobytes() + c.program[words.size * 4:]
        return "from_gate"
    if op == "gate_field":
        recs = _records(words, (prog.OP_GATE, prog.OP_GATE2, prog.OP_HEAD))
        if not recs:
            return None
        i = recs[int(rng.integers(len(recs)))]
        kind = (int(words[i, 0]) >> 16) & 0xF
        table = {prog.OP_GATE: prog.GATE_FIELDS, prog.OP_GATE2: prog.GATE2_FIELDS}
        fields = [f for f in table.get(kind, prog.HEAD_FIELDS)
                  if f.name not in ("magic", "version")]
        f = fields[int(rng.integers(len(fields)))]
        old = (int(words[i, f.word]) >> f.lsb) & f.mask
        r = rng.random()
        if r < 0.3:
            v = old ^ (1 << int(rng.integers(f.width)))
        elif r < 0.6:
            v = old + int(rng.integers(-3, 4))
        elif r < 0.85:
            lim = getattr(cfg, _NET_LIMITS[f.name]) if f.name in _NET_LIMITS else \
                (prog.MAX_CLASSES if f.name == "classes" else prog.GATE_SHIFT_MAX)
            v = int(rng.choice([0, 1, f.mask, lim, lim + 1]))
        else:
            v = int(rng.integers(0, f.mask + 1))
        _set_rec(words, i, f, v)
        c.program = words.tobytes() + c.program[words.size * 4:]
        return f"gate_field:{f.name}"
    if op == "gate2_param":
        return _mutate_gate2_param(rng, c, words, cfg)
    if not gates:
        return None
    i = gates[int(rng.integers(len(gates)))]
    g = _gate_record(words, i)
    if op == "gate_sums":
        # the start begins at this gate record (else the layer before it rewrites its sums)
        c.program = words[i:].tobytes() + c.program[words.size * 4:]
        c.layer_count = max(c.layer_count - i, 0)
        need = min(c.layer_count, cfg.max_layers) * DESCRIPTOR_BYTES
        c.program += bytes(max(need - len(c.program), 0))   # the host never starts a short one
        sm = c.regions["sums"]
        n = g.st_h * g.st_w * g.in_c
        if g.sums_offset + 4 * n > sm.size or not n:
            return "gate_sums:outside"
        idx = rng.integers(n, size=int(rng.integers(1, 17)))
        vals = rng.choice(np.array([-(1 << 31), (1 << 31) - 1, -1, 0, 1 << 30], np.int64),
                          size=idx.size)
        view = sm[g.sums_offset:g.sums_offset + 4 * n].view("<i4")
        view[idx] = vals.astype("<i4")
        return "gate_sums"
    # gate_param: one entry of the parameter blob
    try:
        lay = prog.gate_param_layout(g.in_c, g.out_c, g.hidden, g.gh, g.gw, cfg.axi_bytes)
    except Exception:       # noqa: BLE001 - a mutated record may have any field values
        return "gate_param:none"
    name = str(rng.choice(prog.GATE_PARAM_NAMES))
    dt = np.dtype({"bins": "u1", "recip": "<u4", "ws": "<i2", "bs": "<i8", "w1": "<i2",
                   "m1": "<i4", "o1": "<i8", "w2": "<i2", "b2": "<i8"}[name])
    count = lay.counts[name]
    if not count:
        return "gate_param:none"
    j = int(rng.integers(count))
    pos = g.param_offset + lay.offsets[name] + j * dt.itemsize
    weight = c.regions["weight"]
    if pos + dt.itemsize > weight.size:
        return "gate_param:outside"
    lim = prog.GATE_BIAS_LIMIT
    choices = {
        "bins": [0, 1, g.st_h, g.st_w, g.st_h + 1, 255, int(rng.integers(256))],
        "recip": [0, 1, prog.GATE_RECIP_MAX, prog.GATE_RECIP_MAX + 1, 0xFFFFFFFF,
                  int(rng.integers(0, 1 << 32))],
        "ws": [-32768, 32767, -32767, 0], "w1": [-32768, 32767, 0], "w2": [-32768, 32767, 0],
        "m1": [-(1 << 31), (1 << 31) - 1, 0, 1],
        "bs": [lim, -lim, lim - 1, -(lim - 1), -(1 << 63), _S64, 0],
        "o1": [lim, -lim, lim - 1, -(lim - 1), -(1 << 63), _S64],
        "b2": [lim, -lim, lim - 1, -(lim - 1), -(1 << 63), _S64, 0],
    }[name]
    v = int(rng.choice(choices))
    weight[pos:pos + dt.itemsize] = np.frombuffer(np.array([v], dt).tobytes(), np.uint8)
    if name == "m1" and rng.random() < 0.5:         # and a shift at its limits
        _set_rec(words, i, prog.GATE_FIELDS[[f.name for f in prog.GATE_FIELDS].index("h_shift")],
                 int(rng.choice([1, 62, 63, 0])))
        c.program = words.tobytes() + c.program[words.size * 4:]
    return f"gate_param:{name}"


def _mutate_gate2_param(rng, c: FuzzCase, words: np.ndarray,
                        cfg: EngineConfig) -> Optional[str]:
    """One entry of a gate-2 record's parameter blob set to a boundary or random value
    (recip at 0 / 2^24 / 2^24 + 1, o1 and b2 at the +-2^46 limit, the int16/int32 ends)."""
    recs = _records(words, (prog.OP_GATE2,))
    if not recs:
        return None
    i = recs[int(rng.integers(len(recs)))]
    val = {f.name: (int(words[i, f.word]) >> f.lsb) & f.mask for f in prog.GATE2_FIELDS}
    try:
        lay = prog.gate2_param_layout(val["in_c"], val["out_c"], val["hidden"], cfg.axi_bytes)
    except Exception:       # noqa: BLE001 - a mutated record may have any field values
        return "gate2_param:none"
    name = str(rng.choice(prog.GATE2_PARAM_NAMES))
    dt = np.dtype(dict((n, t) for n, t, _, _ in prog.GATE2_PARAM_SECTIONS)[name])
    if not lay.counts[name]:
        return "gate2_param:none"
    j = int(rng.integers(lay.counts[name]))
    pos = val["param_offset"] + lay.offsets[name] + j * dt.itemsize
    weight = c.regions["weight"]
    if pos + dt.itemsize > weight.size:
        return "gate2_param:outside"
    lim = prog.GATE_BIAS_LIMIT
    choices = {
        "recip": [0, 1, prog.GATE_RECIP_MAX, prog.GATE_RECIP_MAX + 1, 0xFFFFFFFF,
                  int(rng.integers(0, 1 << 32))],
        "w1": [-32768, 32767, 0], "w2": [-32768, 32767, 0],
        "m1": [-(1 << 31), (1 << 31) - 1, 0, 1],
        "o1": [lim, -lim, lim - 1, -(lim - 1), -(1 << 63), _S64],
        "b2": [lim, -lim, lim - 1, -(lim - 1), -(1 << 63), _S64, 0],
    }[name]
    v = int(rng.choice(choices))
    weight[pos:pos + dt.itemsize] = np.frombuffer(np.array([v], dt).tobytes(), np.uint8)
    return f"gate2_param:{name}"


def _mutate_once(rng, c: FuzzCase, cfg: EngineConfig) -> str:
    words = _words(c.program)
    if len(_records(words, (prog.OP_GATE, prog.OP_HEAD))) and rng.random() < 0.5:
        op = str(rng.choice(NET_OPS))
        done = _mutate_net(rng, op, c, words, cfg)
        if done is not None:
            return done
        words = _words(c.program)
    op = str(rng.choice(OPS))
    n = len(words)
    layer = int(rng.integers(n)) if n else 0
    regions = c.regions
    if op in ("field", "reserved", "offset") and not n:
        op = "layer_count"
    if op == "field":
        f = DESCRIPTOR_FIELDS[int(rng.integers(len(DESCRIPTOR_FIELDS)))]
        _set(words, layer, f.name, _field_value(rng, f, _get(words, layer, f.name), cfg))
        c.program = words.tobytes() + c.program[words.size * 4:]
        return f"field:{f.name}"
    if op == "reserved":
        covered = [0] * formats.DESCRIPTOR_WORDS
        for f in DESCRIPTOR_FIELDS:
            covered[f.word] |= f.mask << f.lsb
        free = [(w, b) for w in range(formats.DESCRIPTOR_WORDS) for b in range(32)
                if not covered[w] >> b & 1]
        w, b = free[int(rng.integers(len(free)))]
        words[layer, w] |= np.uint32(1 << b)
        c.program = words.tobytes() + c.program[words.size * 4:]
        return "reserved"
    d = _decoded(words, layer, cfg) if n else None
    if op == "reshape":
        return _reshape(rng, c, words, layer, cfg)
    if op == "fit":
        return _reshape(rng, c, words, layer, cfg, _fit_edge(rng, cfg))
    if op == "offset":
        if d is None:
            return "offset:none"
        bufs = formats.descriptor_buffers(d, cfg)
        reg, name, off, nbytes = bufs[int(rng.integers(len(bufs)))]
        size = regions[reg].size
        a = cfg.axi_bytes
        others = [o for r, _, o, _ in bufs if r == reg]
        new = int(rng.choice([
            others[int(rng.integers(len(others)))],             # onto another buffer
            max(size - nbytes, 0) // a * a,                     # flush with the region end
            (max(size - nbytes, 0) // a + 1) * a,               # one beat past it
            off + a, max(off - a, 0), 0]))
        _set(words, layer, name, new)
        c.program = words.tobytes() + c.program[words.size * 4:]
        return f"offset:{name}"
    if op in ("work_entry", "bitmap"):
        if d is None:
            op = "work_byte"
        else:
            lists = []
            if d.tile_gated and d.n_active_tiles:
                lists.append((d.tile_list_offset, d.n_active_tiles, d.n_tiles))
            if d.n_res_tiles:
                lists.append((d.res_tile_list_offset, d.n_res_tiles, d.n_tiles))
            if d.out_ch_gated and d.n_active_out:
                lists.append((d.out_ch_list_offset, d.n_active_out, d.out_c))
            if d.in_ch_gated and d.n_active_in:
                lists.append((d.in_ch_list_offset, d.n_active_in, d.in_c))
            work = regions["work"]
            if op == "bitmap" and d.zero_halo:
                bit = int(rng.integers(32 * ((d.n_tiles + 31) // 32)))
                pos = d.bitmap_offset + bit // 8
                if pos < work.size:
                    work[pos] ^= np.uint8(1 << (bit % 8))
                return "bitmap"
            if not lists:
                op = "work_byte"
            else:
                off, count, limit = lists[int(rng.integers(len(lists)))]
                j = int(rng.integers(count))
                pos = off + 2 * j
                if pos + 2 > work.size:
                    return "work_entry:outside"
                old = int(work[pos]) | int(work[pos + 1]) << 8
                prev = int(work[pos - 2]) | int(work[pos - 1]) << 8 if j else 0
                v = int(rng.choice([limit, limit - 1, prev, old + 1, max(old - 1, 0), 0xFFFF,
                                    0, int(rng.integers(0, 0x10000))]))
                work[pos:pos + 2] = np.frombuffer(struct.pack("<H", v & 0xFFFF), np.uint8)
                return "work_entry"
    if op == "work_byte":
        work = regions["work"]
        if work.size:
            work[int(rng.integers(work.size))] = rng.integers(256)
        return "work_byte"
    if op == "param":
        weight = regions["weight"]
        if d is None or not d.out_c:
            return "param:none"
        ch = int(rng.integers(d.out_c))
        pos = d.param_offset + ch * formats.PARAM_BYTES + 4 * int(rng.integers(2))
        v = int(rng.choice([0x80000000, 0xFFFFFFFF, 0x7FFFFFFF, 0, 1,
                            int(rng.integers(0, 1 << 32))]))
        if pos + 4 <= weight.size:
            weight[pos:pos + 4] = np.frombuffer(struct.pack("<I", v), np.uint8)
        return "param"
    if op == "fmap_byte":
        fm = regions["fmap"]
        if fm.size:
            idx = rng.integers(fm.size, size=int(rng.integers(1, 9)))
            fm[idx] = rng.choice(np.array([0, 1, 127, 128, 255], np.uint8), size=idx.size)
        return "fmap_byte"
    if op == "region_size":
        reg = str(rng.choice(REGIONS))
        arr = regions[reg]
        ends = [o + b for r, _, o, b in (formats.descriptor_buffers(d, cfg) if d else []) if r == reg]
        choices = [0, arr.size // 2, max(arr.size - 1, 0), arr.size + 1 + int(rng.integers(64))]
        choices += [max(e - 1, 0) for e in ends]
        new = min(int(rng.choice(choices)), MAX_REGION)
        if reg == "sums":
            new -= new % 4
        if new <= arr.size:
            regions[reg] = arr[:new].copy()
        else:
            regions[reg] = np.concatenate([arr, rng.integers(0, 256, new - arr.size,
                                                             dtype=np.uint8)])
        return f"region_size:{reg}"
    if op == "layer_count":
        choice = int(rng.choice([0, n - 1, n + 1, cfg.max_layers, cfg.max_layers + 1,
                                 int(rng.integers(0, cfg.max_layers + 2))]))
        c.layer_count = max(choice, 0)
        need = min(c.layer_count, cfg.max_layers) * DESCRIPTOR_BYTES
        if len(c.program) < need:         # the host never starts a short program
            fill = c.program if c.program and rng.random() < 0.5 else b""
            c.program += (fill * (need // max(len(fill), 1) + 1))[:need - len(c.program)] \
                if fill else bytes(need - len(c.program))
        return "layer_count"
    # program: drop, duplicate, swap or zero a descriptor
    kind = str(rng.choice(["drop", "dup", "swap", "zero"]))
    descs = [words[i].tobytes() for i in range(n)]
    if kind == "drop" and n > 1:
        descs.pop(int(rng.integers(n)))
    elif kind == "dup" and n < cfg.max_layers:
        descs.insert(layer, descs[layer])
    elif kind == "swap" and n > 1:
        i, j = rng.choice(n, 2, replace=False)
        descs[i], descs[j] = descs[j], descs[i]
    elif n:
        descs[layer] = bytes(DESCRIPTOR_BYTES)
    c.program = b"".join(descs)
    c.layer_count = len(descs)
    return f"program:{kind}"


_RESHAPE = {"k": formats.KERNELS, "stride": formats.STRIDES, "pad": (0, 1, 2, 3),
            "maxpool": (0, 1), "tile": None, "in_h": None, "in_w": None,
            "n_active_out": None, "n_active_in": None, "in_c": None, "out_c": None}


def _fit_edge(rng, cfg: EngineConfig) -> dict:
    """Fields that put a layer at the edge of one NO_FIT bound (formats.fit_limits): the
    input channels one below, at or one above the weight bound (all tm lanes) or the
    input-patch bound, with fewer active outputs than tm now and then."""
    lim = formats.fit_limits(cfg)
    k = int(rng.choice(formats.KERNELS))
    tile = int(rng.integers(1, cfg.max_tile + 1))
    side = (tile - 1) + k
    if rng.random() < 0.5:
        edge = lim["fit_weight_group_bytes"] // (cfg.tm * k * k)
    else:
        edge = lim["fit_ifm_patch_bytes"] // (side * side)
    n_in = max(1, min(cfg.max_in_channels, edge + int(rng.integers(-1, 2))))
    n_out = int(rng.integers(0, cfg.tm + 1)) if rng.random() < 0.6 else None
    ch = {"k": k, "pad": k // 2, "stride": 1, "tile": tile, "in_c": n_in, "n_active_in": n_in}
    if n_out is not None:
        ch["n_active_out"] = n_out
    return ch


def _reshape(rng, c: FuzzCase, words: np.ndarray, layer: int, cfg: EngineConfig,
             changes: Optional[dict] = None) -> str:
    """Change one geometry field (or `changes`), then recompute what derives from it
    (sizes, grid, dense counts) as the packer would, and sometimes grow the regions to
    hold every buffer."""
    g = lambda f: _get(words, layer, f)  # noqa: E731
    if changes:
        for f, v in changes.items():
            _set(words, layer, f, v)
        if g("maxpool") and rng.random() < 0.5:
            _set(words, layer, "maxpool", 0)
        name, v = "fit", None
    else:
        name = str(rng.choice(list(_RESHAPE)))
    if name == "fit":
        pass
    elif _RESHAPE[name] is not None:
        v = int(rng.choice(_RESHAPE[name]))
    elif name == "tile":
        v = int(rng.integers(1, cfg.max_tile + 1))
    elif name in ("in_h", "in_w"):
        v = int(rng.integers(1, max(cfg.max_height, cfg.max_width) + 1))
    elif name in ("in_c", "n_active_in"):
        v = int(rng.integers(0 if name.startswith("n_") else 1, cfg.max_in_channels + 1))
    else:
        v = int(rng.integers(0 if name.startswith("n_") else 1, cfg.max_out_channels + 1))
    if v is not None:
        _set(words, layer, name, v)
    if name in ("k",) and g("pad") > v // 2:
        _set(words, layer, "pad", v // 2)
    k, st, pad, mp = g("k"), g("stride"), g("pad"), g("maxpool")
    for src, dst in (("in_h", "out_h"), ("in_w", "out_w")):
        if g(src) + 2 * pad >= k and k and st:
            _set(words, layer, dst, formats.layer_out_size(g(src), k, st, pad, bool(mp)))
    t = g("tile")
    if t:
        _set(words, layer, "grid_h", -(-g("out_h") // t))
        _set(words, layer, "grid_w", -(-g("out_w") // t))
    if not g("tile_gated"):
        _set(words, layer, "n_active_tiles", g("grid_h") * g("grid_w"))
    if not g("out_ch_gated"):
        _set(words, layer, "n_active_out", g("out_c"))
    if not g("in_ch_gated"):
        _set(words, layer, "n_active_in", g("in_c"))
    c.program = words.tobytes() + c.program[words.size * 4:]
    d = _decoded(words, layer, cfg)
    if d is not None and rng.random() < 0.7:
        for reg, _, off, nbytes in formats.descriptor_buffers(d, cfg):
            arr = c.regions[reg]
            need = off + nbytes + (-(off + nbytes) % 4 if reg == "sums" else 0)
            if arr.size < need <= MAX_REGION:
                c.regions[reg] = np.concatenate(
                    [arr, rng.integers(0, 256, need - arr.size, dtype=np.uint8)])
    return "fit" if changes else f"reshape:{name}"


def network_regions(plan, image) -> dict:
    """The four regions of one image of a packed network (`runtime.packer.start_regions`):
    WEIGHT as packed, the input (int8, or float quantized here) in its FMAP buffer, the
    rest zero."""
    from dgfpga.numerics.qmodel import quantize_input
    from dgfpga.runtime.packer import start_regions
    img = np.asarray(image)
    xq = img if img.dtype == np.int8 else quantize_input(img[None], plan.qmodel.input_scale)[0]
    return start_regions(plan, xq)


def network_bases(plan, images, flags: Sequence[int] = (0, prog.RUN_DENSE)) -> list:
    """Fuzz bases of a network program (one start per image): per image and run_flags
    value, the whole program over the image's regions (vector sets without expectations:
    the fuzzer compares with the interpreter)."""
    from dgfpga.backends.vectors import VectorSet
    cfg = plan.cfg
    out = []
    for n, img in enumerate(images):
        mem = network_regions(plan, img)
        for f in flags:
            out.append(VectorSet(f"net_img{n}{'_dense' if f & prog.RUN_DENSE else ''}",
                                 cfg.name, cfg.config_hash, plan.program, plan.record_count,
                                 {r: v.copy() for r, v in mem.items()}, {},
                                 meta={"run_flags": int(f)}))
    return out


def _base_run_flags(base) -> int:
    flags = getattr(base, "run_flags", None)
    if flags is None:
        flags = (getattr(base, "meta", None) or {}).get("run_flags", 0)
    return int(flags)


def mutate(rng, base, cfg: EngineConfig) -> tuple[FuzzCase, list[str]]:
    """One to three mutations of `base` (a VectorSet): the case and the operators applied."""
    c = FuzzCase(base.name, bytes(base.program), int(base.layer_count),
                 {r: np.array(base.before[r], np.uint8, copy=True) for r in REGIONS},
                 _base_run_flags(base))
    ops = [_mutate_once(rng, c, cfg) for _ in range(int(rng.integers(1, 4)))]
    c.name = f"{base.name}+{'+'.join(ops)}"
    return c, ops


def cases(n: int, seed: int, cfg: EngineConfig, bases: Optional[Sequence] = None):
    """`n` mutated cases, deterministic in `seed` (bases: the shared layer sweep)."""
    from dgfpga.backends import vectors
    bases = list(bases) if bases is not None else list(vectors.layer_sweep(cfg))
    rng = np.random.default_rng([seed, 0xF022])
    for i in range(n):
        c, ops = mutate(rng, bases[int(rng.integers(len(bases)))], cfg)
        c.name = f"#{i} {c.name}"
        yield c, ops


# ----------------------------------------------------------------------------- runs
def _guard_pattern(n: int, salt: int) -> np.ndarray:
    return np.random.default_rng([_GUARD_SALT, salt, n]).integers(0, 256, n, dtype=np.uint8)


def _guarded(regions: dict) -> tuple[dict, dict]:
    """Copies of the regions inside guard bytes: (backing arrays, region views)."""
    backs, views = {}, {}
    for i, r in enumerate(REGIONS):
        a = regions[r]
        b = _guard_pattern(a.size + 2 * GUARD, i)
        b[GUARD:GUARD + a.size] = a
        backs[r], views[r] = b, b[GUARD:GUARD + a.size]
    return backs, views


def _guards_changed(backs: dict, regions: dict) -> list[str]:
    bad = []
    for i, r in enumerate(REGIONS):
        b, n = backs[r], regions[r].size
        want = _guard_pattern(n + 2 * GUARD, i)
        if not np.array_equal(b[:GUARD], want[:GUARD]) or \
                not np.array_equal(b[GUARD + n:], want[GUARD + n:]):
            bad.append(r)
    return bad


def _first_diff(a: np.ndarray, b: np.ndarray) -> Optional[int]:
    if a.size != b.size:
        return min(a.size, b.size)
    d = np.flatnonzero(a != b)
    return int(d[0]) if d.size else None


def _status(s: int) -> str:
    return regmap.describe_status(s)


def _runner_input(batch: Sequence[FuzzCase], probe_last: bool = False) -> bytes:
    out = []
    for i, c in enumerate(batch):
        sizes = [c.regions[r].size for r in REGIONS]
        magic = _PROBE_MAGIC if probe_last and i == len(batch) - 1 else _RUNNER_MAGIC
        out.append(struct.pack("<8I", magic, c.layer_count, len(c.program), *sizes,
                               c.run_flags & 0xFFFFFFFF))
        out.append(c.program)
        out += [c.regions[r].tobytes() for r in REGIONS]
    return b"".join(out)


def run_sanitized(exe: Union[str, Path], batch: Sequence[FuzzCase], timeout_s: float = 600,
                  probe_last: bool = False) -> tuple[list, Optional[tuple[int, str]]]:
    """Run `batch` through the ASan+UBSan runner: ([(status, fmap, work, sums)] of the cases
    that completed, (index, report) of the first sanitizer finding or None).

    `probe_last`: the last record is the runner's self-test, which reads one byte past
    its FMAP block (proves the sanitizer is live: it must be a finding)."""
    from dgfpga.backends import hls_csim
    with tempfile.TemporaryFile() as inp:
        inp.write(_runner_input(batch, probe_last))
        inp.seek(0)
        try:
            proc = subprocess.run([str(exe)], stdin=inp, capture_output=True,
                                  timeout=timeout_s, env=hls_csim.sanitizer_env())
        except subprocess.TimeoutExpired:
            raise hls_csim.CsimError(f"{exe} did not finish within {timeout_s} s") from None
    out, pos, results = proc.stdout, 0, []
    for c in batch:
        nf, nw, ns = (c.regions[r].size for r in ("fmap", "work", "sums"))
        if pos + 12 + nf + nw + ns > len(out):
            break
        status, = struct.unpack_from("<I", out, pos)
        fm = np.frombuffer(out, np.uint8, nf, pos + 12).copy()
        wk = np.frombuffer(out, np.uint8, nw, pos + 12 + nf).copy()
        sm = np.frombuffer(out, np.uint8, ns, pos + 12 + nf + nw).copy()
        results.append((status, fm, wk, sm))
        pos += 12 + nf + nw + ns
    finding = None
    if proc.returncode != 0 or len(results) < len(batch):
        report = proc.stderr.decode(errors="replace").strip().splitlines()
        key = [ln for ln in report if "ERROR" in ln or "runtime error" in ln] or report[-3:]
        finding = (len(results), f"exit {proc.returncode}: " + " | ".join(key[:3]))
    return results, finding


def run_fuzz(n: int, seed: int = 0, cfg: Optional[EngineConfig] = None, engine=None,
             sanitize: bool = True, cache_dir: Union[str, Path, None] = None,
             bases: Optional[Sequence] = None, max_findings: int = 20,
             batch_size: int = 500) -> FuzzReport:
    """Fuzz `n` mutated cases; compare the C-sim engine (and its sanitizer build, run in
    batches of `batch_size` cases) with the interpreter. Returns a FuzzReport (`ok` when
    nothing disagreed)."""
    from dgfpga.backends import hls_csim
    from dgfpga.runtime import interpreter
    cfg = cfg or load_config("small")
    engine = engine or hls_csim.CsimEngine(cfg, cache_dir)
    rep = FuzzReport(seed)
    exe = hls_csim.build(cfg, "fuzz_asan", cache_dir) if sanitize else None
    ran: list = []                      # (case, engine status, fmap, sums) for the ASan pass
    for c, ops in cases(n, seed, cfg, bases):
        rep.cases += 1
        rep.ops.update(o.split(":")[0] for o in ops)
        rbacks, ref = _guarded(c.regions)
        try:
            r = interpreter.run_program(c.program, c.layer_count, ref, cfg,
                                        run_flags=c.run_flags, pending="hls")
        except interpreter.GateDomainError:
            # sums outside the integer gates' domain (not from an 8-bit map): the reference
            # leaves the decisions undefined; the engine must still stay inside its buffers
            r = None
            rep.out_of_domain += 1
        except Exception as exc:        # noqa: BLE001 - the reference must never raise
            rep.reference_errors.append(f"{c.name}: {type(exc).__name__}: {exc}")
            continue
        ebacks, mem = _guarded(c.regions)
        res = engine.run(c.program, c.layer_count, mem["fmap"], mem["weight"], mem["work"],
                         mem["sums"], run_flags=c.run_flags)
        if r is not None:
            rep.statuses[regmap.ERROR_NAMES.get(regmap.unpack_status(r.status)[0], "?")] += 1
            if res.status != r.status:
                rep.status_mismatches.append(f"{c.name}: engine {_status(res.status)}, "
                                             f"interpreter {_status(r.status)}: {r.message}")
            log = _cycle_log_range(c, r)        # the interpreter has no clock: zeros
            for reg in REGIONS:
                got = mem[reg]
                if reg == "work" and log is not None:
                    got = got.copy()
                    got[log[0]:log[1]] = 0
                i = _first_diff(got, ref[reg])
                if i is not None:
                    rep.memory_mismatches.append(f"{c.name}: {reg} byte {i}: engine "
                                                 f"{got[i]}, interpreter {ref[reg][i]}")
                    break
        # WEIGHT is read-only; WORK is written by gate and head records only (the memory
        # comparison with the interpreter covers what they write)
        if not np.array_equal(mem["weight"], c.regions["weight"]) or \
                not np.array_equal(ref["weight"], c.regions["weight"]):
            rep.guard_violations.append(f"{c.name}: read-only region weight written")
        if not _writes_work(c) and (not np.array_equal(mem["work"], c.regions["work"]) or
                                    not np.array_equal(ref["work"], c.regions["work"])):
            rep.guard_violations.append(f"{c.name}: region work written without a gate or "
                                        "head record")
        for who, backs in (("engine", ebacks), ("interpreter", rbacks)):
            bad = _guards_changed(backs, c.regions)
            if bad:
                rep.guard_violations.append(f"{c.name}: {who} wrote outside {', '.join(bad)}")
        if sanitize:
            ran.append((c, res.status, mem["fmap"].copy(), mem["work"].copy(),
                        mem["sums"].copy()))
            if len(ran) >= batch_size:
                _sanitized_pass(rep, exe, ran, max_findings)
                ran = []
    if ran:
        _sanitized_pass(rep, exe, ran, max_findings)
    return rep


def _cycle_log_range(c: FuzzCase, r) -> Optional[tuple[int, int]]:
    """[start, end) of the cycle log in WORK when the run completed with a head record."""
    if r.status or not r.records or r.records[-1] != "head":
        return None
    raw = c.program[(c.layer_count - 1) * DESCRIPTOR_BYTES:c.layer_count * DESCRIPTOR_BYTES]
    f = next(f for f in prog.HEAD_FIELDS if f.name == "log_offset")
    off = (struct.unpack_from("<I", raw, 4 * f.word)[0] >> f.lsb) & f.mask
    return off, off + prog.cycle_log_bytes(c.layer_count)


def _writes_work(c: FuzzCase) -> bool:
    """Whether a record of the case's program may write WORK (a gate or head record)."""
    n = min(c.layer_count, len(c.program) // DESCRIPTOR_BYTES)
    if not n:
        return False
    w = np.frombuffer(c.program[:n * DESCRIPTOR_BYTES], "<u4").reshape(n, -1)
    return bool(np.isin((w[:, 0] >> 16) & 0xF, (prog.OP_GATE, prog.OP_HEAD)).any())


def _sanitized_pass(rep: FuzzReport, exe, ran: list, max_findings: int) -> None:
    """Run the cases of `ran` under ASan+UBSan; compare with the ctypes build's results.
    After a finding the runner restarts at the next case."""
    start = 0
    while start < len(ran) and len(rep.sanitizer_findings) < max_findings:
        batch = ran[start:]
        results, finding = run_sanitized(exe, [b[0] for b in batch])
        for (c, status, fm, wk, sm), (s2, fm2, wk2, sm2) in zip(batch, results):
            rep.sanitized += 1
            if s2 != status or not np.array_equal(fm2, fm) or not np.array_equal(sm2, sm) \
                    or not np.array_equal(wk2, wk):
                rep.memory_mismatches.append(f"{c.name}: sanitizer build differs from the "
                                             f"ctypes build ({_status(s2)})")
        if finding is None:
            return
        i, report = finding
        rep.sanitizer_findings.append(f"{batch[i][0].name}: {report}")
        start += i + 1
