"""A functional model of the engine in numpy: executes program records over byte regions.

numpy only (torch-free). It reads exactly what the hardware reads (descriptors, work
lists, HWC feature maps, weight streams, params) from the four regions and writes what
the hardware writes, tile by tile, with the engine's checks and STATUS codes. It serves
two purposes:

- it proves the scheduled work lists say exactly what must be computed: run over a whole
  network it must reproduce the golden model bit for bit (tests/test_scheduler.py);
- it is the engine of the `numpy` host device (fast, no compiler needed).

A program holds conv descriptors and, in a network program (`dgfpga.contract.program`),
gate records (integer gates from the per-tile sums, `dgfpga.numerics.gates`; they write the
masks and the block's work lists through `formats.encode_work_list`, the one writer) and a
head record (int64 logits, then the per-record cycle log, zeros here: no clock), and for
Bottleneck blocks gate-2 records (mask_c2 from conv1's masked output: its compact per-tile
sums over the active tiles). A `from_gate` descriptor runs as `program.effective_descriptor`
under the last gate's counts (and the last gate-2 record's, after one).
Every record is checked before it writes anything; a fault stops the run with its STATUS.

What the contract defines but an engine does not implement yet (`formats.PENDING_BY_ENGINE`:
the depthwise op and `pixel_sums` of MobileNetV2) runs only with
`run_program(..., pending=True)`; by default what any engine refuses is refused as it
refuses it (BAD_OP / a reserved bit, BAD_MAGIC; ENTRY 0), and `pending="hls"`/`"rtl"`
refuses what that engine refuses, so the interpreter stays each engine's reference (the
C-sim fuzzer and the RTL's descriptor testbench compare them).

Per-layer arithmetic (docs/architecture.md): `acc = sum(w*x) + bias[m]`,
`z = acc*mult[m] + res*res_mult`, `y = clamp((z + 2^(shift-1)) >> shift, lo, hi)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from dgfpga.contract import formats
from dgfpga.contract import program as prog
from dgfpga.contract import regmap
from dgfpga.contract.engine_config import EngineConfig, default_config
from dgfpga.errors import FormatError
from dgfpga.contract.formats import DESCRIPTOR_BYTES, FIELD_BY_NAME, LayerDescriptor
from dgfpga.numerics import gates

__all__ = ["EngineError", "GateDomainError", "RunResult", "decode_layer", "run_program"]

ERR = regmap.ERR


class EngineError(Exception):
    """A fault the engine reports in STATUS (code, entry)."""

    def __init__(self, code: int, entry: int, msg: str):
        super().__init__(msg)
        self.code, self.entry = code, entry


class GateDomainError(FormatError):
    """A gate record's sums lie outside the integer gates' domain (|bin sum| >= 2^38 or
    |pooled| >= 2^17: not the sums of an 8-bit map). The engine computes *something* (int64,
    wrapping) and stays inside its buffers; the reference refuses to define the value."""


@dataclass
class RunResult:
    """Outcome of one engine start: STATUS word; per record executed its kind ("conv",
    "gate", "head", or "skipped": a from_gate layer with no work) and its MACs (0 but for
    conv); per gate record its decisions (spatial bool [gh, gw], channel bool [out_c]); per
    gate-2 record (Bottleneck blocks) its mask_c2 (bool [out_c])."""
    status: int
    macs: list[int] = field(default_factory=list)
    message: str = ""
    records: list[str] = field(default_factory=list)
    gate_masks: list[tuple] = field(default_factory=list)
    gate2_masks: list = field(default_factory=list)     # per gate-2 record: bool [out_c]

    @property
    def ok(self) -> bool:
        return self.status == 0


def _region_checks(d: LayerDescriptor, region_bytes: dict, cfg: EngineConfig) -> None:
    if d.tile_gated and d.n_active_tiles > d.n_tiles:
        raise EngineError(ERR["BAD_COUNT"], FIELD_BY_NAME["n_active_tiles"].word,
                          f"n_active_tiles={d.n_active_tiles} > {d.n_tiles} tiles")
    for region, name, off, nbytes in formats.descriptor_buffers(d, cfg):
        if off + nbytes > region_bytes[region]:
            raise EngineError(ERR["BAD_OFFSET"], FIELD_BY_NAME[name].word,
                              f"{name}: [{off}, {off + nbytes}) outside the {region} region "
                              f"of {region_bytes[region]} bytes")


def _descriptor_fault(exc: FormatError) -> EngineError:
    name = getattr(exc, "field", None)
    if getattr(exc, "no_fit", False):
        code = ERR["NO_FIT"]
    elif name in FIELD_BY_NAME:
        code = ERR[formats.FIELD_ERROR[name]]   # the field's STATUS code
    else:                      # magic, version, reserved bits
        code = ERR["BAD_MAGIC"]
    word = FIELD_BY_NAME[name].word if name in FIELD_BY_NAME else 0
    return EngineError(code, word, str(exc))


def _decode(raw: bytes, cfg: EngineConfig, region_bytes: dict) -> LayerDescriptor:
    """Unpack with the engine's checks: counts and regions first, then every field."""
    try:
        d = formats.unpack_descriptor(raw, cfg)  # field ranges and consistency
    except FormatError as exc:
        raise _descriptor_fault(exc) from None
    _region_checks(d, region_bytes, cfg)
    return d


def _check_effective(e: LayerDescriptor, cfg: EngineConfig, region_bytes: dict) -> None:
    """A from_gate layer's effective descriptor, checked as any descriptor."""
    try:
        formats.validate_descriptor(e, cfg)
    except FormatError as exc:
        raise _descriptor_fault(exc) from None
    _region_checks(e, region_bytes, cfg)


def _record_fault(exc: FormatError) -> EngineError:
    """A gate/head record or gate-parameter fault (program.record_error) as STATUS."""
    return EngineError(ERR[getattr(exc, "code", "BAD_GATE")], getattr(exc, "entry", 0) or 0,
                       str(exc))


def _work_list(d: LayerDescriptor, work: np.ndarray):
    """The layer's lists through the one validator (formats.read_work_list), its faults
    as the engine reports them in STATUS; dense dimensions as full index ranges."""
    try:
        wl = formats.read_work_list(d, work)
    except FormatError as exc:
        raise EngineError(ERR[getattr(exc, "code", "BAD_OFFSET")],
                          getattr(exc, "entry", None) or 0, str(exc)) from None
    tiles = wl.tiles.astype(np.int64)
    res = wl.res_tiles.astype(np.int64)
    outc = wl.out_channels.astype(np.int64) if d.out_ch_gated else np.arange(d.out_c)
    inc = wl.in_channels.astype(np.int64) if d.in_ch_gated else np.arange(d.in_c)
    return tiles, res, outc, inc, wl.bitmap


def _requant(acc: np.ndarray, mult: np.ndarray, shift: int, lo: int, hi: int,
             res: Optional[np.ndarray], res_mult: int) -> np.ndarray:
    z = acc * mult
    if res is not None:
        z = z + res * np.int64(res_mult)
    return np.clip((z + (np.int64(1) << np.int64(shift - 1))) >> np.int64(shift), lo, hi)


def _run_layer(d: LayerDescriptor, regions: dict, cfg: EngineConfig) -> int:
    fm, wr, wk, sm = (regions[r] for r in ("fmap", "weight", "work", "sums"))
    tiles, res_tiles, outc, inc, on = _work_list(d, wk)
    if d.depthwise:
        return _run_depthwise(d, regions, cfg, tiles, outc, on)
    # --- reads
    cs = d.in_c_stored
    raw = fm[d.in_offset:d.in_offset + d.in_h * d.in_w * cs]
    buf = (raw.view(np.int8) if d.in_signed else raw).astype(np.int64).reshape(d.in_h, d.in_w, cs)
    x = np.zeros((d.in_h, d.in_w, d.in_c), dtype=np.int64)
    x[..., inc] = buf
    if on is not None:  # halo pixels of inactive tiles read as zero (same grid as the output)
        side = d.tile * d.stride        # input pixel (y, x) lies in tile (y, x) // side
        pix_on = on.reshape(d.grid_h, d.grid_w).repeat(side, 0).repeat(side, 1)
        x *= pix_on[:d.in_h, :d.in_w, None]
    kk = d.k * d.k
    # an im2col layer's stream is [C_out][(ky, kx, c) padded to tn]: unpacked to the same
    # weights, its sums are the same integers (the engines reduce in another order)
    w = formats.read_layer_weights(wr, d, cfg).astype(np.int64)
    bias, mult = formats.unpack_params(
        wr[d.param_offset:d.param_offset + d.out_c * formats.PARAM_BYTES].tobytes(), d.out_c)
    bias, mult = bias.astype(np.int64)[outc], mult.astype(np.int64)[outc]
    w = w[outc][:, inc]                                   # [M_act, C_act, k, k]
    xa = x[..., inc]
    p = d.pad
    xp = np.zeros((d.in_h + 2 * p, d.in_w + 2 * p, inc.size), dtype=np.int64)
    xp[p:p + d.in_h, p:p + d.in_w] = xa
    lo, hi = (-128, 127) if d.out_signed else (0, 255)
    res = None
    if d.residual:
        rraw = fm[d.res_offset:d.res_offset + d.out_h * d.out_w * d.out_c]
        res = (rraw.view(np.int8) if d.res_signed else rraw).astype(np.int64) \
            .reshape(d.out_h, d.out_w, d.out_c)[..., outc]
    s = d.stride

    def conv_rows(y0, y1, x0, x1):
        acc = np.zeros((y1 - y0, x1 - x0, outc.size), dtype=np.int64)
        for ky in range(d.k):
            for kx in range(d.k):
                slab = xp[y0 * s + ky:(y1 - 1) * s + ky + 1:s, x0 * s + kx:(x1 - 1) * s + kx + 1:s]
                acc += slab @ w[:, :, ky, kx].T
        return acc + bias

    cstore = d.out_c_stored
    out = fm[d.out_offset:d.out_offset + d.out_h * d.out_w * cstore].reshape(d.out_h, d.out_w, cstore)
    out_view = out.view(np.int8) if d.out_signed else out
    sums = _sums_view(d, sm)
    macs = 0
    if d.maxpool:  # dense: conv map, requant, 3x3/s2/pad1 max-pool, then tile by tile
        y = _requant(conv_rows(0, d.conv_h, 0, d.conv_w), mult, d.shift, lo, hi, None, 0)
        yp = np.full((d.conv_h + 2, d.conv_w + 2, outc.size), lo, dtype=np.int64)
        yp[1:-1, 1:-1] = y
        pooled = None
        for ky in range(3):
            for kx in range(3):
                v = yp[ky:ky + 2 * (d.out_h - 1) + 1:2, kx:kx + 2 * (d.out_w - 1) + 1:2]
                pooled = v if pooled is None else np.maximum(pooled, v)
        full = pooled
        macs = d.conv_h * d.conv_w * outc.size * inc.size * kk
    else:
        full = None
    for t in np.concatenate([tiles, res_tiles]).astype(np.int64):
        ty, tx = divmod(int(t), d.grid_w)
        y0, x0 = ty * d.tile, tx * d.tile
        y1, x1 = min(y0 + d.tile, d.out_h), min(x0 + d.tile, d.out_w)
        r = res[y0:y1, x0:x1] if res is not None else None
        if full is not None:
            yt = full[y0:y1, x0:x1]
        elif t in res_tiles:
            yt = _requant(np.zeros((y1 - y0, x1 - x0, outc.size), np.int64), mult, d.shift,
                          lo, hi, r, d.res_mult)
        else:
            yt = _requant(conv_rows(y0, y1, x0, x1), mult, d.shift, lo, hi, r, d.res_mult)
            macs += (y1 - y0) * (x1 - x0) * outc.size * inc.size * kk
        if d.out_ch_gated:
            out_view[y0:y1, x0:x1, :] = yt
        else:
            out_view[y0:y1, x0:x1, outc] = yt
        _write_sums(d, sums, t, out_view, y0, y1, x0, x1)
    return macs


def _sums_view(d: LayerDescriptor, sm: np.ndarray) -> Optional[np.ndarray]:
    """The layer's SUMS buffer as int32 [sum tiles][C stored] (None without emit_sums)."""
    if not d.emit_sums:
        return None
    c = d.out_c_stored
    return sm[d.sums_offset:d.sums_offset + d.n_sum_tiles * c * 4].view("<i4") \
        .reshape(d.n_sum_tiles, c)


def _write_sums(d: LayerDescriptor, sums, t: int, out_view, y0, y1, x0, x1) -> None:
    """Tile t's sums: one row per tile, or with pixel_sums one row per output pixel (the
    output values themselves, widened to int32)."""
    if sums is None:
        return
    block = out_view[y0:y1, x0:x1].astype(np.int64)
    if d.pixel_sums:
        rows = (np.arange(y0, y1)[:, None] * d.out_w + np.arange(x0, x1)[None, :]).reshape(-1)
        sums[rows, :] = block.reshape(-1, block.shape[-1])
    else:
        sums[t, :] = block.sum(axis=(0, 1))


def _run_depthwise(d: LayerDescriptor, regions: dict, cfg: EngineConfig, tiles, outc,
                   on) -> int:
    """A depthwise layer (op OP_DWCONV): channel outc[j] of the output reads channel
    outc[j] of the input only (stored as compact channel j when gated), k*k taps, then the
    same requantization; tile by tile, halo pixels of inactive tiles read as zero."""
    fm, wr, sm = regions["fmap"], regions["weight"], regions["sums"]
    cs = d.in_c_stored
    raw = fm[d.in_offset:d.in_offset + d.in_h * d.in_w * cs]
    x = (raw.view(np.int8) if d.in_signed else raw).astype(np.int64).reshape(d.in_h, d.in_w, cs)
    if not d.in_ch_gated:
        x = x[..., outc]                       # dense: the stored channel is the id
    x = x.copy()
    if on is not None:
        side = d.tile * d.stride
        pix_on = on.reshape(d.grid_h, d.grid_w).repeat(side, 0).repeat(side, 1)
        x *= pix_on[:d.in_h, :d.in_w, None]
    w = formats.read_layer_weights(wr, d, cfg).astype(np.int64)[outc, 0]   # [M_act, k, k]
    bias, mult = formats.unpack_params(
        wr[d.param_offset:d.param_offset + d.out_c * formats.PARAM_BYTES].tobytes(), d.out_c)
    bias, mult = bias.astype(np.int64)[outc], mult.astype(np.int64)[outc]
    p, s = d.pad, d.stride
    xp = np.zeros((d.in_h + 2 * p, d.in_w + 2 * p, outc.size), dtype=np.int64)
    xp[p:p + d.in_h, p:p + d.in_w] = x
    lo, hi = (-128, 127) if d.out_signed else (0, 255)
    cstore = d.out_c_stored
    out = fm[d.out_offset:d.out_offset + d.out_h * d.out_w * cstore].reshape(d.out_h, d.out_w, cstore)
    out_view = out.view(np.int8) if d.out_signed else out
    sums = _sums_view(d, sm)
    macs = 0
    for t in tiles.astype(np.int64):
        ty, tx = divmod(int(t), d.grid_w)
        y0, x0 = ty * d.tile, tx * d.tile
        y1, x1 = min(y0 + d.tile, d.out_h), min(x0 + d.tile, d.out_w)
        acc = np.zeros((y1 - y0, x1 - x0, outc.size), dtype=np.int64)
        for ky in range(d.k):
            for kx in range(d.k):
                acc += xp[y0 * s + ky:(y1 - 1) * s + ky + 1:s,
                          x0 * s + kx:(x1 - 1) * s + kx + 1:s] * w[:, ky, kx]
        yt = _requant(acc + bias, mult, d.shift, lo, hi, None, 0)
        macs += (y1 - y0) * (x1 - x0) * outc.size * d.k * d.k
        if d.out_ch_gated:
            out_view[y0:y1, x0:x1, :] = yt
        else:
            out_view[y0:y1, x0:x1, outc] = yt
        _write_sums(d, sums, int(t), out_view, y0, y1, x0, x1)
    return macs


def _gate_objects(p: prog.GateParams, shift: int):
    """The decoded parameters as the integer gates of dgfpga.numerics.gates. Built without
    the constructors' range checks: the engine checks what STATUS names (program.
    check_gate_params), any other int16/int32 value is computed as it is."""
    sg = object.__new__(gates.IntSpatialGate)
    sg.weight, sg.bias = p.ws.astype(np.int16), int(p.bs)
    cg = object.__new__(gates.IntChannelGate)
    cg.w1, cg.m1, cg.o1 = p.w1.astype(np.int16), p.m1.astype(np.int32), p.o1.astype(np.int64)
    cg.shift, cg.w2, cg.b2 = int(shift), p.w2.astype(np.int16), p.b2.astype(np.int64)
    return sg, cg


def _read_sums(sm: np.ndarray, off: int, st_h: int, st_w: int, c: int) -> np.ndarray:
    n = st_h * st_w * c * formats.SUM_BYTES
    return sm[off:off + n].view("<i4").reshape(st_h, st_w, c).astype(np.int64)


def gate_decisions(tile_sums: np.ndarray, p: prog.GateParams, shift: int):
    """What a gate record computes from the sums (int64 [st_h, st_w, C]) and its decoded
    parameters: bin sums of whole sum tiles, totals of all of them, then the integer gates
    (gates.gate_pool, spatial_gate_logits_int, channel_gate_logits_int). Returns (spatial
    bool [gh, gw], channel bool [out_c])."""
    ts = np.asarray(tile_sums, dtype=np.int64)
    cum = np.zeros((ts.shape[0] + 1, ts.shape[1] + 1, ts.shape[2]), np.int64)
    cum[1:, 1:] = ts.cumsum(0).cumsum(1)
    r0, r1 = p.rows[:, 0][:, None], p.rows[:, 1][:, None]
    c0, c1 = p.cols[:, 0][None, :], p.cols[:, 1][None, :]
    bins = cum[r1, c1] - cum[r0, c1] - cum[r1, c0] + cum[r0, c0]        # [gh, gw, C]
    total = ts.sum(axis=(0, 1))
    sg, cg = _gate_objects(p, shift)
    try:
        pooled = gates.gate_pool(np.moveaxis(bins, -1, 0), p.recip)
        spatial = gates.spatial_gate_logits_int(pooled, sg) >= 0
        channel = gates.channel_gate_logits_int(gates.gate_pool(total, p.recip_total), cg) >= 0
    except ValueError as exc:
        raise GateDomainError(f"gate record: sums outside the integer gates' domain (not the "
                              f"sums of an 8-bit map): {exc}") from None
    return spatial, channel


def _run_gate(raw: bytes, cfg: EngineConfig, regions: dict, sizes: dict, dense: bool):
    """Check (record, then parameters), evaluate, write. Returns (spatial, channel)."""
    try:
        r = prog.unpack_gate_record(raw, cfg, sizes)
        lay = prog.gate_param_layout(r.in_c, r.out_c, r.hidden, r.gh, r.gw, cfg.axi_bytes)
        blob = regions["weight"][r.param_offset:r.param_offset + lay.nbytes].tobytes()
        p = prog.unpack_gate_params(blob, r.in_c, r.out_c, r.hidden, r.gh, r.gw, cfg.axi_bytes)
        prog.check_gate_params(p, r.st_h, r.st_w)
    except FormatError as exc:
        raise _record_fault(exc) from None
    if dense:
        spatial, channel = np.ones((r.gh, r.gw), bool), np.ones(r.out_c, bool)
    else:
        spatial, channel = gate_decisions(
            _read_sums(regions["sums"], r.sums_offset, r.st_h, r.st_w, r.in_c), p, r.h_shift)
    for off, data in prog.gate_work_writes(r, spatial, channel):
        regions["work"][off:off + data.size] = data
    return spatial, channel


def _run_gate2(raw: bytes, cfg: EngineConfig, regions: dict, sizes: dict, dense: bool):
    """Check (record, parameters, the masks it reads), evaluate mask_c2 from conv1's masked
    output sums, write. Returns channel2 bool [out_c]."""
    try:
        r = prog.unpack_gate2_record(raw, cfg, sizes)
        lay = prog.gate2_param_layout(r.in_c, r.out_c, r.hidden, cfg.axi_bytes)
        blob = regions["weight"][r.param_offset:r.param_offset + lay.nbytes].tobytes()
        p = prog.unpack_gate2_params(blob, r.in_c, r.out_c, r.hidden, cfg.axi_bytes)
        prog.check_gate2_params(p)
        _, _, totals = prog.read_gate2_inputs(r, regions["work"], regions["sums"])
    except FormatError as exc:
        raise _record_fault(exc) from None
    if dense:
        channel2 = np.ones(r.out_c, bool)
    else:
        cg = object.__new__(gates.IntChannelGate)
        cg.w1, cg.m1, cg.o1 = p.w1, p.m1, p.o1
        cg.shift, cg.w2, cg.b2 = int(r.h_shift), p.w2, p.b2
        try:
            channel2 = gates.channel_gate_logits_int(gates.gate_pool(totals, p.recip_total),
                                                     cg) >= 0
        except ValueError as exc:
            raise GateDomainError(f"gate-2 record: sums outside the integer gates' domain: "
                                  f"{exc}") from None
    for off, data in prog.gate2_work_writes(r, channel2):
        regions["work"][off:off + data.size] = data
    return channel2


def _run_head(raw: bytes, cfg: EngineConfig, regions: dict, sizes: dict, layer_count: int):
    try:
        r = prog.unpack_head_record(raw, cfg, sizes, layer_count)
        lay = prog.head_param_layout(r.in_c, r.classes, cfg.axi_bytes)
        w, b = prog.unpack_head_params(
            regions["weight"][r.param_offset:r.param_offset + lay.nbytes].tobytes(),
            r.in_c, r.classes, cfg.axi_bytes)
    except FormatError as exc:
        raise _record_fault(exc) from None
    pooled = _read_sums(regions["sums"], r.sums_offset, r.st_h, r.st_w, r.in_c).sum(axis=(0, 1))
    logits = w.astype(np.int64) @ pooled + b.astype(np.int64)
    wk = regions["work"]
    wk[r.logits_offset:r.logits_offset + 8 * r.classes] = logits.astype("<i8").view(np.uint8)
    n = prog.cycle_log_bytes(layer_count)
    wk[r.log_offset:r.log_offset + n] = 0            # no clock: every entry 0


def _pending_fault(raw: bytes, op: int, engine: Optional[str] = None
                   ) -> Optional[EngineError]:
    """How an engine refuses a record that uses a feature pending on it
    (formats.PENDING_BY_ENGINE; `engine` None: pending on any engine): a pending op is
    BAD_OP, a pending field's bit a reserved bit (BAD_MAGIC); ENTRY 0."""
    who = "the engines" if engine is None else f"the {engine.upper()} engine"
    if op in formats.pending_ops(engine):
        return EngineError(ERR["BAD_OP"], 0, f"record op {op} ({prog.RECORD_OPS[op]}) is not "
                           f"implemented by {who} yet (run_program(..., pending=True))")
    words = np.frombuffer(raw, "<u4")
    for name in formats.pending_fields(engine):
        f = FIELD_BY_NAME[name]
        if (int(words[f.word]) >> f.lsb) & f.mask:
            return EngineError(ERR["BAD_MAGIC"], 0, f"descriptor field {name} is not "
                               f"implemented by {who} yet: a reserved bit to it")
    return None


def decode_layer(raw: bytes, cfg: EngineConfig, region_bytes: dict,
                 pending: "bool | str" = False) -> LayerDescriptor:
    """A conv/depthwise record checked as today's engines check it (EngineError with their
    STATUS code and ENTRY): a pending feature is refused first, then every descriptor rule
    (`_decode`). `pending`: True runs every feature the contract defines; False refuses
    what any engine does not implement yet (formats.PENDING_OPS/PENDING_FIELDS); "hls" or
    "rtl" refuses what that engine does not (formats.PENDING_BY_ENGINE)."""
    if pending is not True:
        engine = pending if isinstance(pending, str) else None
        if engine is not None and engine not in formats.ENGINES:
            raise ValueError(f"pending={pending!r}: True, False or one of {formats.ENGINES}")
        try:
            op = prog.record_op(raw)
        except FormatError:          # _decode reports magic/version in the engines' order
            op = None
        fault = _pending_fault(raw, op, engine) if op is not None else None
        if fault is not None:
            raise fault
    return _decode(raw, cfg, region_bytes)


def run_program(program: bytes, layer_count: int, regions: dict,
                cfg: Optional[EngineConfig] = None, run_flags: int = 0,
                pending: "bool | str" = False) -> RunResult:
    """Execute `layer_count` records over `regions` (name -> writable uint8 array).

    Stops at the first faulty record (nothing written for it) and returns its STATUS.
    `run_flags`: regmap RUN_FLAGS (bit 0 DENSE: every gate on, no evaluation; the other
    bits are reserved and ignored). `pending`: True also runs what the contract defines but
    the engines do not implement yet (formats.PENDING_OPS / PENDING_FIELDS); False refuses
    it as they do; "hls"/"rtl" refuses what that engine refuses (decode_layer).
    """
    cfg = cfg or default_config()
    sizes = {k: int(v.size) for k, v in regions.items()}
    dense = bool(int(run_flags) & prog.RUN_DENSE)
    result = RunResult(0)
    if len(program) < layer_count * DESCRIPTOR_BYTES:
        result.status = regmap.pack_status(ERR["BAD_COUNT"], 0, 0)
        result.message = f"program holds {len(program) // DESCRIPTOR_BYTES} records, " \
                         f"layer_count is {layer_count}"
        return result
    if layer_count > cfg.max_layers:
        result.status = regmap.pack_status(ERR["BAD_COUNT"], 0, 0)
        result.message = f"layer_count {layer_count} > max_layers {cfg.max_layers}"
        return result
    counts = None                      # (nt, nc) of the last gate record of this start
    nc2 = None                         # active channels of the last gate-2 record after it
    for i in range(layer_count):
        raw = bytes(program[i * DESCRIPTOR_BYTES:(i + 1) * DESCRIPTOR_BYTES])
        try:
            try:
                op = prog.record_op(raw)
            except FormatError as exc:
                raise _record_fault(exc) from None
            if op in (prog.OP_CONV, prog.OP_DWCONV):
                d = decode_layer(raw, cfg, sizes, pending)
                if d.from_gate:
                    if counts is None:
                        raise EngineError(ERR["BAD_FLAGS"], FIELD_BY_NAME["from_gate"].word,
                                          "from_gate layer without a gate record before it "
                                          "in this start")
                    d = prog.effective_descriptor(d, *counts, nc2)
                    if d is None:
                        result.records.append("skipped")
                        result.macs.append(0)
                        continue
                    _check_effective(d, cfg, sizes)
                result.macs.append(_run_layer(d, regions, cfg))
                result.records.append("conv")
            elif op == prog.OP_GATE:
                sp, ch = _run_gate(raw, cfg, regions, sizes, dense)
                counts = (int(sp.sum()), int(ch.sum()))
                nc2 = None
                result.gate_masks.append((sp, ch))
                result.records.append("gate")
                result.macs.append(0)
            elif op == prog.OP_GATE2:
                if counts is None:
                    raise EngineError(ERR["BAD_OP"], 0, "gate-2 record without a gate record "
                                      "before it in this start")
                ch2 = _run_gate2(raw, cfg, regions, sizes, dense)
                nc2 = int(ch2.sum())
                result.gate2_masks.append(ch2)
                result.records.append("gate2")
                result.macs.append(0)
            elif op == prog.OP_HEAD:
                if i != layer_count - 1:
                    raise EngineError(ERR["BAD_OP"], 0, f"head record at {i} is not the last "
                                      f"of the {layer_count} records")
                _run_head(raw, cfg, regions, sizes, layer_count)
                result.records.append("head")
                result.macs.append(0)
            else:
                raise EngineError(ERR["BAD_OP"], 0, f"unknown record op {op} (known: "
                                  f"{prog.RECORD_OPS})")
        except EngineError as exc:
            result.status = regmap.pack_status(exc.code, i, min(exc.entry, regmap.STATUS_ENTRY_MAX))
            result.message = f"record {i}: {exc}"
            return result
    return result
