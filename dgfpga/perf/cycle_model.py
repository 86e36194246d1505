"""Analytical cycle model of the engine (torch-free).

It models the micro-architecture of docs/architecture.md: a Tm x Tn int8 MAC array, loop
order m-group (Tm active output channels; their weights stay on chip) -> active tiles,
then residual-only tiles -> kernel positions x tile pixels x n-groups pipelined at II=1,
write-back (requantize, residual, ReLU, sums) overlapped with the next tile, input patches
and the next m-group's weights double-buffered against compute, on TWO read ports (the
RTL's two `dg_axi_rd` masters, the HLS engine's `gmem_fmap` and `gmem_w` bundles: bursts of
at most `max_burst_beats`, `outstanding_reads` in flight, in order): the feature-map port
carries the patches and residuals, the weight port the params and weights, both against a
memory with `read_latency_cycles` (L) and `stall_pct` (s), and together at most the DRAM's
bytes per cycle D (docs/explore.md "The cycle model's DDR terms"). Per layer, with B = port
bytes per cycle, B' = B*(1-s), N = ceil(n_in / Tn), G = ceil(n_out / Tm),
m_g = min(Tm, n_out - g*Tm):

    C[g,t] = tile_overhead + pipeline_depth + max(k*k * pix[t] * N, rq * pix[t])   a step
    M[g,t] = (patch[t] * c_in_stored + opix[t] * m_g * residual) / B'     fmap-port bytes
    O[g,t] = write-channel beats: one packet per output pixel (+ one sum row per tile),
             one beat per cycle (the writes do not share the read ports)
    P[g,t] = prefetch_overhead + read_time'(the tile's own bursts)    (read_time': bursts
             from an empty port, the prefetcher drains it per tile)
    S[g,t] = max(C, M, O, P)
    R[g,r] = max(tile_overhead + max(opix[r], opix[r]*m_g / B', O),
                 prefetch_overhead + read_time(residual reads))     residual-only tiles
    W[g]   = max(bytes / B', read_time(param + weight spans), consume)   on the weight port
    group[g] = mgroup_overhead + max(sum_t S + sum_r R,
                                     rq * (sum_t pix + sum_r opix)   (the write-back's
                                         requantizers: residual-only pixels are priced here),
                                     sum_t M + sum_r opix*m_g/B',     (the fmap port)
                                     W[g+1],                           (the weight port)
                                     (fmap bytes + W_bytes[g+1]) / D)  (the DRAM, both ports)
    F      = min(C, P) of an average active tile: the pipeline's fill, once per layer
    X      = (descriptor + work-list bytes) / B' + L per list read
    total  = layer_overhead + W[0] + sum_g group[g] + F + X    (0 groups if nothing runs)

`read_time(n, b)` = max(L + n*b', L + b'*min(n, O) + (n/O - 1)^+ * (L + b')), b' =
b/(1-s), O = outstanding_reads: n bursts of b beats issued back to back in a stream;
`read_time'(n, b)` = max(L + n*b', R*(L + b') + L + (n - R*O)*b'), R = ceil(n/O) - 1: the
same from an empty port.

pix[t] = conv-output pixels of tile t (edge tiles clipped; under a fused max-pool the
(2t+1)^2 conv patch), opix[t] = its output pixels, patch[t] = input pixels of its patch
with halo (clipped to the map; padding is generated, not loaded). R covers residual-only
tiles. The overheads, pipeline depth and port efficiency are `CycleParams`, calibrated
against the RTL with ideal memory and with latency/stalls together (dgfpga.perf.calibration;
save/load as JSON); its memory fields are the memory's (`with_memory`), not fitted.

What is priced is the engine's one schedule, never a copy of it: `network_cycles(plan,
masks)` schedules every block with `dgfpga.runtime.scheduler.Scheduler` on the packed
plan (`dgfpga.runtime.packer`; from shapes alone: `dgfpga.perf.netshapes.shape_plan`),
reads each run's descriptors and work lists back through the one validator
(`formats.read_work_list`, `scheduled_layers`) and prices exactly those layers. A block
the scheduler leaves empty (an identity block with no active tile) costs nothing, not
even an engine start; the dense baseline is the scheduler's dense run (every tile and
channel listed). `tests/perf/test_one_schedule.py` checks this descriptor by descriptor.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from dgfpga.contract.engine_config import EngineConfig, default_config
from dgfpga.errors import ConfigError
from dgfpga.contract import formats
from dgfpga.contract.formats import (DESCRIPTOR_BYTES, LayerDescriptor, PARAM_BYTES, SUM_BYTES,
                                     WorkList, bitmap_bytes, read_work_list)
from dgfpga.perf.netshapes import BottleneckShape, NetShape, gate_macs


#: keys older parameter files carry that price nothing the engine has now (the per-start and
#: per-block host budget of the block-per-start runtime; the gaps of the one read port that
#: weights and patches shared before the weight port); `CycleParams.load` ignores them
OBSOLETE_PARAMS = ("start_overhead_cycles", "gate_cycles_per_block", "prefetch_idle_cycles")


@dataclass(frozen=True)
class CycleParams:
    """Fixed costs of the engine, in engine clock cycles unless named otherwise, and the
    memory it talks to (`read_latency_cycles`, `stall_pct`: what the RTL's simulation
    memory applies with `+latency=` / `+stall=`, sim/tb/dg_axi_mem.sv)."""
    layer_overhead_cycles: int = 200     # descriptor fetch, checks, loop setup, drain
    mgroup_overhead_cycles: int = 20     # switch weight buffers, reset accumulators
    tile_overhead_cycles: int = 12       # tile address setup, first burst issue
    pipeline_depth_cycles: int = 10      # MAC pipeline fill/drain per step (no rewind)
    prefetch_overhead_cycles: int = 5    # tile prefetch: geometry, row tables, hand-over
    axi_efficiency: float = 0.75         # fraction of the m_axi peak (axi_bytes/cycle) realised
    dram_bytes_per_s: float = 6.4e9      # DRAM limit (Ultra96-V2 LPDDR4 x32 ~8.5 GB/s peak)
    gate_fixed_cycles: float = 28.0      # gate record: dispatch, checks, hand-over (RTL fit)
    gate_stream_cycles: float = 4.0      # gate/head unit: command + first beat of a stream (RTL fit)
    head_fixed_cycles: float = 2.0       # head record: dispatch (RTL fit)
    gate2_fixed_cycles: float = 28.0     # gate-2 record: dispatch, checks, hand-over (RTL fit)
    # -- the memory (not fitted: set to the memory the engine runs against)
    read_latency_cycles: float = 0.0     # DDR read latency: AR accepted -> first R beat
    stall_pct: float = 0.0               # % of cycles the memory refuses a beat (contention)
    # -- the RTL's read master (sim/rtl/dg_axi_rd.sv, dg_engine.sv): not fitted
    outstanding_reads: int = 8           # read bursts in flight (OUTSTANDING)
    max_burst_beats: int = 16            # beats per read burst (MAX_BURST)

    def bytes_per_cycle(self, cfg: EngineConfig) -> float:
        """Sustained port bytes per cycle with an always-ready memory."""
        return min(cfg.axi_bytes * self.axi_efficiency, self.dram_bytes_per_cycle(cfg))

    def dram_bytes_per_cycle(self, cfg: EngineConfig) -> float:
        """What the DRAM gives all read ports together, per engine cycle."""
        return self.dram_bytes_per_s / cfg.clock_hz

    def stream_bytes_per_cycle(self, cfg: EngineConfig) -> float:
        """`bytes_per_cycle` under the memory's stalls: a stalled cycle moves no beat."""
        return self.bytes_per_cycle(cfg) * (1.0 - self.stall_pct / 100.0)

    def with_memory(self, latency: float = 0.0, stall_pct: float = 0.0) -> "CycleParams":
        """The same engine against another memory (`+latency=`, `+stall=` of the RTL)."""
        return dataclasses.replace(self, read_latency_cycles=float(latency),
                                   stall_pct=float(stall_pct))

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path) -> "CycleParams":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cycle parameters {path}: cannot read: {exc}") from None
        names = {f.name for f in dataclasses.fields(cls)}
        if isinstance(data, dict):      # the old host budget: not an engine cost, ignored
            data = {k: v for k, v in data.items() if k not in OBSOLETE_PARAMS}
        unknown = sorted(set(data) - names) if isinstance(data, dict) else ["<not an object>"]
        if unknown:
            raise ConfigError(f"cycle parameters {path}: unknown key(s) {', '.join(unknown)}")
        return cls(**data)


#: What bounds a layer's cycles (`LayerCycles.bounds`; docs/explore.md "What bounds a layer"):
#: the MAC array's steps, the fixed part of a compute-bound tile's step (its tile overhead
#: and pipeline fill), the write-back's time-shared requantizers, the read port's bytes
#: (the feature-map port: patches and residuals), a tile's prefetch (its
#: read bursts against the latency L, `outstanding_reads` in flight, one tile ahead of the
#: compute), the write channel, the loader's weight
#: spans (exposed: the first group's, and a group whose next weights take longer than its
#: tiles) and the fixed overheads (layer, m-group, the pipeline fill, record and list reads).
BOUNDS = ("compute", "tile overhead", "requant", "read bandwidth", "prefetch", "write",
          "weights", "overhead")
_TILE_BOUNDS = ("compute", "read bandwidth", "write", "prefetch")   # max(C, M, O, P)


def _tile_bounds(acc: dict, w, terms, fixed: float) -> None:
    """Add each tile's step S = max(terms) (weighted by `w`) to the bound that set it (the
    first of `_TILE_BOUNDS` on a tie); of a compute-bound step, `fixed` cycles (the step's
    tile overhead and pipeline fill) go to "tile overhead"."""
    w = np.asarray(w, float)
    t = np.stack([np.broadcast_to(np.asarray(x, float), w.shape) for x in terms])
    win = np.argmax(t, axis=0)
    s = t.max(axis=0)
    for i, name in enumerate(_TILE_BOUNDS):
        _add(acc, name, float(w @ np.where(win == i, s, 0.0)))
    _add(acc, "compute", -fixed * float(w @ (win == 0)))
    _add(acc, "tile overhead", fixed * float(w @ (win == 0)))


def _add(acc: dict, name: str, cycles: float) -> None:
    acc[name] = acc.get(name, 0.0) + float(cycles)


@dataclass(frozen=True)
class LayerCycles:
    name: str
    compute_cycles: float     # sum of the compute terms (MAC steps + their overheads)
    memory_cycles: float      # all DDR bytes / B
    total_cycles: float       # with the overlap model
    ddr_bytes: float
    macs: float               # MACs actually executed
    dense_macs: int           # MACs of the dense layer
    weight_bytes: float = 0.0  # of ddr_bytes: params + weight streams of every m-group
    #: total_cycles split by what bounded them ({BOUNDS name: cycles}; sums to total_cycles)
    bounds: dict = field(default_factory=dict, compare=False, hash=False)


def _tile_geometry(d: LayerDescriptor):
    """Per tile of the grid: (conv pixels, output pixels, input patch pixels, patch rows
    loaded, patch row width)."""
    t = d.tile
    conv_h, conv_w = d.conv_h, d.conv_w

    def axis(out_size: int, conv_size: int, in_size: int, g: int):
        o0 = np.arange(g) * t
        o1 = np.minimum(o0 + t, out_size)
        if d.maxpool:   # conv rows feeding pooled rows [o0, o1): [2*o0-1, 2*(o1-1)+1]
            c0 = np.maximum(2 * o0 - 1, 0)
            c1 = np.minimum(2 * (o1 - 1) + 2, conv_size)
        else:
            c0, c1 = o0, o1
        i0 = np.maximum(c0 * d.stride - d.pad, 0)
        i1 = np.minimum((c1 - 1) * d.stride - d.pad + d.k, in_size)
        return o1 - o0, c1 - c0, i1 - i0

    oh, ch, ih = axis(d.out_h, conv_h, d.in_h, d.grid_h)
    ow, cw, iw = axis(d.out_w, conv_w, d.in_w, d.grid_w)
    if d.k < d.stride:   # rows between the sampled ones are not loaded (one burst per row)
        ih = np.minimum(ch * d.k, ih)
    pix = np.outer(ch, cw).reshape(-1).astype(float)
    opix = np.outer(oh, ow).reshape(-1).astype(float)
    patch = np.outer(ih, iw).reshape(-1).astype(float)
    rows = np.outer(ih, np.ones_like(iw)).reshape(-1).astype(float)
    width = np.outer(np.ones_like(ih), iw).reshape(-1).astype(float)
    return pix, opix, patch, rows, width


def _weights(n_tiles: int, count: int, tiles: Optional[Sequence[int]]) -> np.ndarray:
    """Multiplicity of each grid tile: the given tiles, or `count` tiles spread evenly."""
    w = np.zeros(n_tiles)
    if tiles is not None:
        w[np.asarray(tiles, dtype=np.int64)] = 1.0
    elif n_tiles:
        w[:] = count / n_tiles
    return w


def _mac_steps(d: LayerDescriptor, cfg: EngineConfig, pix):
    """MAC-array steps of a tile of `pix` conv pixels for one m-group: the per-pixel step
    count is the contract's (`formats.mac_steps_per_pixel`: k*k x n-groups, or the im2col
    stem's ceil(k*k*C/tn)), the one the engines' loops run."""
    return formats.mac_steps_per_pixel(d, cfg) * pix


def _beats(nbytes, AB: int, aligned: bool):
    """AXI beats of a read of `nbytes` (vectorised): ceil(nbytes/AB), plus on average
    (AB-1)/AB beat when the start is not beat-aligned."""
    b = np.ceil(np.asarray(nbytes, float) / AB)
    return b if aligned else b + (AB - 1) / AB


def _span_beats(stride: int, first: int, nbytes: int, AB: int) -> float:
    """Beats of a read of `nbytes` starting at byte `first` of rows `stride` bytes long:
    exact when the rows are beat-aligned (stride % AB == 0), else the average."""
    if stride % AB == 0:
        a = first % AB
        return float((a + nbytes - 1) // AB + 1)
    return float(_beats(nbytes, AB, False))


def _ic_row_beats(m_g: int, kk: int, out_c: int, cfg: EngineConfig) -> float:
    """Mean beats of an ic_g_k_k_m row read (m_g bytes of kernel position j, j < kk, at byte
    i*kk*out_c + g*kk*tm + j*m_g of the stream): exact over j when every channel's group
    block starts on a beat (kk*out_c and kk*tm multiples of the beat), else also averaged
    over the block's offset."""
    AB = cfg.axi_bytes
    bases = [0] if (kk * out_c) % AB == 0 and (kk * cfg.tm) % AB == 0 else range(AB)
    return float(np.mean([((b + j * m_g) % AB + m_g - 1) // AB + 1
                          for b in bases for j in range(kk)]))


def read_time(n, beats_each, p: CycleParams, restart: bool = False):
    """Cycles from the first command to the last beat of `n` read bursts of `beats_each`
    beats issued back to back by the RTL's read master (sim/rtl/dg_axi_rd.sv), vectorised.

    The memory answers each burst `read_latency_cycles` after it takes it and returns beats
    in order, one per cycle, a cycle refused with probability `stall_pct` (so `beats /
    (1 - stall)` cycles a burst). At most `outstanding_reads` bursts are in flight: when
    the latency is longer than the data of the others in flight, every further round of
    `outstanding_reads` bursts waits for a slot and pays the latency again. Part of a long
    stream (`restart` False: the rounds averaged over the stream):
        max(L + n*b,  L + b*min(n, O) + (n/O - 1)^+ * (L + b)),   0 for n = 0;
    issued from an empty port (`restart`: a tile's prefetch, which dg_loader.sv's PF_WAIT
    lets drain before the next tile's first command), the R = ceil(n/O) - 1 further rounds
    each wait the whole latency:
        max(L + n*b,  R * (L + b) + L + (n - R*O) * b).
    """
    n = np.asarray(n, float)
    L, O = float(p.read_latency_cycles), float(p.outstanding_reads)
    b = np.asarray(beats_each, float) / (1.0 - p.stall_pct / 100.0)
    stream = L + n * b
    if restart:
        R = np.maximum(np.ceil(n / O) - 1.0, 0.0)
        rounds = R * (L + b) + L + (n - R * O) * b
    else:
        rounds = L + b * np.minimum(n, O) + np.maximum(n / O - 1.0, 0.0) * (L + b)
    return np.where(n > 0, np.maximum(stream, rounds), 0.0)


def layer_cycles(d: LayerDescriptor, cfg: Optional[EngineConfig] = None,
                 params: Optional[CycleParams] = None, tiles: Optional[Sequence[int]] = None,
                 res_tiles: Optional[Sequence[int]] = None, name: str = "") -> LayerCycles:
    """Cycles of one layer from its descriptor (counts) and, if given, its exact tile lists.

    Without tile lists the active tiles are an average tile of the grid each (exact for
    dense layers and for grids without clipped edge tiles). The model (module docstring):
    per m-group, the steps of its tiles (active, then residual-only) each take the longest
    of compute, port bytes and the prefetch of the tile (one read latency + its bursts);
    the next group's weights load on the weight port meanwhile.
    """
    cfg = cfg or default_config()
    p = params or CycleParams()
    B = p.bytes_per_cycle(cfg)
    Bs = p.stream_bytes_per_cycle(cfg)
    D = p.dram_bytes_per_cycle(cfg) * (1.0 - p.stall_pct / 100.0)   # both ports, under stalls
    L = float(p.read_latency_cycles)
    AB = cfg.axi_bytes
    burst = max(1, int(p.max_burst_beats))
    pix, opix, patch, rows, width = _tile_geometry(d)
    wa = _weights(d.n_tiles, d.n_active_tiles, tiles)
    wr = _weights(d.n_tiles, d.n_res_tiles, res_tiles)
    kk = d.k * d.k
    rq = formats.requant_cycles_per_pixel(cfg)
    n_in, n_out = d.n_active_in, d.n_active_out
    active = wa.sum() > 0
    G = math.ceil(n_out / cfg.tm) if (n_out and (active or wr.sum() > 0)) else 0
    res = 1 if d.residual else 0
    dw = d.depthwise
    # read bursts of a tile's patch: one command per loaded row, split at max_burst beats
    row_beats = _beats(width * d.in_c_stored, AB, d.in_c_stored % AB == 0)
    row_bursts = rows * np.ceil(row_beats / burst)
    patch_beats = rows * row_beats
    if dw:
        return _depthwise_cycles(d, cfg, p, name, wa, pix, opix, patch, row_bursts,
                                 patch_beats)
    # sum rows a tile writes (int32 per lane): one per tile, or one per output pixel
    sums_rows = (opix if d.pixel_sums else 1.0) if d.emit_sums else 0.0

    def res_cmds(m_g: int, g: int) -> float:
        """1-beat residual reads per output pixel: the beats the group's lanes span."""
        return _span_beats(d.out_c, g * cfg.tm, m_g, AB)

    stall = 1.0 - p.stall_pct / 100.0

    def write_cycles(m_g: int, g: int) -> float:
        """Write-channel cycles of one output pixel's packet (the group's lanes' bytes)."""
        return _span_beats(d.out_c_stored, g * cfg.tm, m_g, AB) / stall

    def sum_beats(m_g: int) -> float:
        """Write-channel cycles of one sum row (m_g int32, beat-aligned rows)."""
        return math.ceil(m_g * SUM_BYTES / AB) / stall

    def weights(m_g: int, g: int) -> tuple:
        """(bytes, cycles) of a group's params + weights:
        the loader's read commands (one per span; an ic_g_k_k_m in-channel's k*k spans in
        one when `formats.ic_weight_run_beats` merges them) against the memory, and its
        consumer (dg_loader.sv: params one
        byte per cycle; up to max(Tm, Tn) lane bytes per cycle of an ic-layout span; up to
        Tn of an oc-layout span, one byte per cycle when the input is channel-compact)."""
        n_p, beats = m_g, float(m_g)
        nbytes = m_g * PARAM_BYTES
        consume = float(nbytes)
        if active and n_in and d.im2col:            # one span per lane: its padded taps row
            row = formats.im2col_row_bytes(d, cfg)
            nbytes += m_g * row
            spans, each = m_g, float(_beats(row, AB, row % AB == 0))
            consume += spans * math.ceil(row / cfg.tn)
            n_p += spans
            beats += spans * each
        elif active and n_in:
            nbytes += m_g * kk * n_in
            if d.weight_layout == "ic_g_k_k_m":     # per (in-channel, position) m_g bytes:
                run = formats.ic_weight_run_beats(m_g, kk, d.out_c, cfg)
                if run:                             # one read per in-channel (its k*k rows)
                    spans, each = n_in, float(run)
                else:                               # one per (in-channel, position)
                    spans, each = n_in * kk, _ic_row_beats(m_g, kk, d.out_c, cfg)
                consume += n_in * kk * math.ceil(m_g / max(cfg.tm, cfg.tn))
            else:                                   # one per (lane, position): in_c bytes
                spans, each = m_g * kk, float(_beats(d.in_c, AB, d.in_c % AB == 0))
                consume += spans * (d.in_c if d.in_ch_gated else math.ceil(d.in_c / cfg.tn))
            n_p += spans
            beats += spans * each
        if not n_p:
            return nbytes, 0.0
        return nbytes, float(max(nbytes / Bs, consume, read_time(n_p, beats / n_p, p)))

    compute = 0.0
    total = float(p.layer_overhead_cycles)
    bounds = {"overhead": total}
    nbytes = wbytes = 0.0
    none = (0.0, 0.0)
    w_next = weights(min(cfg.tm, n_out), 0) if G else none
    fill = None
    if G:
        total += w_next[1]                          # the first group's weights: exposed
        _add(bounds, "weights", w_next[1])
    for g in range(G):
        m_g = min(cfg.tm, n_out - g * cfg.tm)
        w_bytes = w_next[0]
        w_next = (weights(min(cfg.tm, n_out - (g + 1) * cfg.tm), g + 1) if g + 1 < G
                  else none)
        rc = res_cmds(m_g, g)
        steps = port = requant = 0.0
        tb: dict = {}                               # this group's steps by bound
        # residual-only tiles: read the residual, write the output. The compute passes a
        # residual-only pixel in one step; its requantization runs in the decoupled
        # write-back (dg_writeback.sv's queue) behind the next tiles' prefetches: it bounds
        # the group as a whole (`requant`, below), not the tile
        r_compute = rq * opix
        r_bytes = 2 * opix * m_g + sums_rows * m_g * SUM_BYTES
        r_wr = write_cycles(m_g, g) * opix + sums_rows * sum_beats(m_g)
        r_pf = read_time(opix * rc, 1.0, p, restart=True)
        r_S = np.maximum(p.tile_overhead_cycles
                         + np.maximum(opix, np.maximum(opix * m_g / Bs, r_wr)),
                         p.prefetch_overhead_cycles + r_pf)
        if active:
            # the MAC array and the write-back's time-shared requantizers (one conv pixel per
            # formats.requant_cycles_per_pixel cycles) run as a pipeline: the slower paces
            C = (p.tile_overhead_cycles + p.pipeline_depth_cycles
                 + np.maximum(_mac_steps(d, cfg, pix), rq * pix))
            # the tile's bytes: its patch, its output (and residual) pixels and the channel
            # sums the write-back writes with them at the tile's end (dg_writeback.sv). The
            # reads take the feature-map port (the next group's weights have their own); the
            # writes go out on the write channel, one packet per output pixel (and sum row),
            # one beat per cycle: they overlap
            read_bytes = patch * d.in_c_stored + opix * m_g * res
            step_bytes = read_bytes + opix * m_g + sums_rows * m_g * SUM_BYTES
            w_cyc = write_cycles(m_g, g) * opix + sums_rows * sum_beats(m_g)
            cmds = row_bursts + res * opix * rc         # the tile's read bursts
            tile_beats = patch_beats + res * opix * rc
            pf = read_time(cmds, tile_beats / np.maximum(cmds, 1), p, restart=True)
            S = np.maximum(np.maximum(C, np.maximum(read_bytes / Bs, w_cyc)),
                           p.prefetch_overhead_cycles + pf)
            if fill is None:     # the layer's pipeline fill and drain, once (see below)
                fill = float(wa @ np.minimum(C, p.prefetch_overhead_cycles + pf)) / float(wa.sum())
            nbytes += float(wa @ step_bytes)
            compute += float(wa @ C)
            requant += float(wa @ (rq * pix))
            steps += float(wa @ S)
            _tile_bounds(tb, wa, (C, read_bytes / Bs, w_cyc, p.prefetch_overhead_cycles + pf),
                         p.tile_overhead_cycles + p.pipeline_depth_cycles)
            port += float(wa @ read_bytes) / Bs
        if wr.sum() > 0:
            nbytes += float(wr @ r_bytes)
            compute += float(wr @ r_compute)
            requant += float(wr @ r_compute)
            steps += float(wr @ r_S)
            _tile_bounds(tb, wr, (p.tile_overhead_cycles + opix,
                                  p.tile_overhead_cycles + opix * m_g / Bs,
                                  p.tile_overhead_cycles + r_wr, p.prefetch_overhead_cycles + r_pf),
                         p.tile_overhead_cycles)
            port += float(wr @ (opix * m_g)) / Bs
        nbytes += w_bytes
        wbytes += w_bytes
        # the next group's weights load on their own port during this group's steps; both
        # ports draw on one DRAM
        group = (steps, requant, port, w_next[1], (port * Bs + w_next[0]) / D)
        total += p.mgroup_overhead_cycles + max(group)
        _add(bounds, "overhead", p.mgroup_overhead_cycles)
        win = int(np.argmax(group))
        if win == 0:
            for k, v in tb.items():
                _add(bounds, k, v)
        else:
            _add(bounds, ("requant", "read bandwidth", "weights", "read bandwidth")[win - 1],
                 group[win])
    # the tile pipeline (prefetch -> compute -> write-back) runs across the groups without
    # draining: once per layer the first tile's prefetch or the last one's compute is
    # not overlapped (n tiles of max(P, C) take n*max + min(P, C))
    total += fill or 0.0
    extra, reads = _record_extra(d, wa, wr, opix, sums=False)   # sums: in the tiles' bytes
    nbytes += extra
    total += extra / Bs + reads * L
    _add(bounds, "overhead", (fill or 0.0) + extra / Bs + reads * L)
    macs = float(wa @ pix) * n_out * n_in * kk
    dense_macs = d.conv_h * d.conv_w * d.out_c * d.in_c * kk
    return LayerCycles(name, compute, nbytes / B, total, nbytes, macs, dense_macs, wbytes,
                       bounds)


def _record_extra(d: LayerDescriptor, wa, wr, opix, sums: bool = True) -> tuple:
    """(bytes, read commands) of a layer besides its data: the record fetch, its work lists
    and bitmap, and (`sums`) the sums it writes (a depthwise layer's one list serves both
    sides). `layer_cycles` prices a conv's sums with its tiles instead (`sums=False`)."""
    extra = DESCRIPTOR_BYTES
    reads = 1                                       # the record fetch
    if d.tile_gated:
        extra += 2 * (d.n_active_tiles + d.n_res_tiles)
        reads += 1 + (1 if d.n_res_tiles else 0)
    in_list = d.in_ch_gated and not d.depthwise
    extra += 2 * ((d.n_active_out if d.out_ch_gated else 0)
                  + (d.n_active_in if in_list else 0))
    reads += int(d.out_ch_gated) + int(in_list)
    if d.zero_halo:
        extra += bitmap_bytes(d.n_tiles)
        reads += 1
    if d.emit_sums and sums:
        rows = (float(wa @ opix + wr @ opix) if d.pixel_sums
                else d.n_active_tiles + d.n_res_tiles)        # sum rows written
        extra += rows * d.out_c_stored * SUM_BYTES
    return extra, reads


#: cycles between two m-group passes of a depthwise tile on the RTL (dg_compute.sv CP_SUB:
#: the pass's tile record), measured on the RTL (records_dw_*.json)
DW_PASS_CYCLES = 1.0


def _depthwise_cycles(d: LayerDescriptor, cfg: EngineConfig, p: CycleParams, name: str,
                      wa, pix, opix, patch, row_bursts, patch_beats) -> LayerCycles:
    """A depthwise layer as the RTL runs it (docs/rtl.md "Depthwise layers"; checked against
    RTL measurements, sim/results/records_dw_*.json): every active channel's params and
    weight row (formats.dw_row_bytes) loaded once (one span each, params one byte per cycle, rows Tn bytes
    per cycle; exposed before the first tile, beyond the first tile's patch bursts that load
    meanwhile on the other port), then per tile ONE patch of every stored
    channel (rows as any conv's) and its SG = ceil(n_out/Tm) m-groups back to back on it,
    each `formats.mac_steps_per_pixel` steps per conv pixel (ceil(k*k / (Tn/2)): the packed
    DSP pair gives each of its two lanes Tn/2 taps per step, docs/rtl.md), paced by the
    time-shared requantizers; per pass the output (and per-pixel sum) packets on the write
    channel."""
    B, Bs = p.bytes_per_cycle(cfg), p.stream_bytes_per_cycle(cfg)
    AB = cfg.axi_bytes
    L = float(p.read_latency_cycles)
    rq = formats.requant_cycles_per_pixel(cfg)
    n_out = d.n_active_out
    kk = d.k * d.k
    active = n_out > 0 and wa.sum() > 0
    stall = 1.0 - p.stall_pct / 100.0
    sums_rows = (opix if d.pixel_sums else 1.0) if d.emit_sums else 0.0
    total = float(p.layer_overhead_cycles)
    bounds = {"overhead": total}
    nbytes = wbytes = compute = 0.0
    if active:
        row = formats.dw_row_bytes(d, cfg)             # k*k taps padded to Tn
        wbytes = float(n_out * (row + PARAM_BYTES))
        spans = 2 * n_out                              # a row and a param entry each
        beats = n_out * (float(_beats(row, AB, row % AB == 0)) + 1)
        # params one byte per cycle; a row span is issued every other cycle (dg_loader.sv:
        # a new span index forms its address first) and consumed Tn bytes per cycle
        consume = n_out * (max(math.ceil(row / cfg.tn), 2) + PARAM_BYTES)
        w_time = max(wbytes / Bs, consume, read_time(spans, beats / spans, p))
        total += w_time
        _add(bounds, "weights", w_time)
        SG = math.ceil(n_out / cfg.tm)
        m_g = [min(cfg.tm, n_out - g * cfg.tm) for g in range(SG)]
        steps = formats.mac_steps_per_pixel(d, cfg) * pix   # n_active_in = n_out > 0
        C = (p.tile_overhead_cycles + p.pipeline_depth_cycles
             + SG * (DW_PASS_CYCLES + np.maximum(steps, rq * pix)))
        read_bytes = patch * d.in_c_stored
        w_cyc = sum(_span_beats(d.out_c_stored, g * cfg.tm, m, AB) * opix
                    + sums_rows * math.ceil(m * SUM_BYTES / AB) for g, m in enumerate(m_g)) / stall
        pf = read_time(row_bursts, patch_beats / np.maximum(row_bursts, 1), p, restart=True)
        S = np.maximum(np.maximum(C, np.maximum(read_bytes / Bs, w_cyc)),
                       p.prefetch_overhead_cycles + pf)
        fill = float(wa @ np.minimum(C, p.prefetch_overhead_cycles + pf)) / wa.sum()
        # the first tile's patch bursts (not the prefetcher's setup) run on the feature-map
        # port while the layer's rows and params load on the weight port: the compute waits
        # for the longer of the two (RTL: records_dw_ultra96.json, -20 % on the 16x16x96
        # layers against the weight load alone)
        hidden = min(w_time, float(wa @ pf) / wa.sum())
        total += p.mgroup_overhead_cycles + float(wa @ S) + fill - hidden
        _add(bounds, "weights", -hidden)
        _tile_bounds(bounds, wa, (C, read_bytes / Bs, w_cyc, p.prefetch_overhead_cycles + pf),
                     p.tile_overhead_cycles + p.pipeline_depth_cycles)
        _add(bounds, "overhead", p.mgroup_overhead_cycles + fill)
        compute = float(wa @ C)
        nbytes = wbytes + float(wa @ (read_bytes + opix * n_out + sums_rows * n_out * SUM_BYTES))
    extra, reads = _record_extra(d, wa, np.zeros_like(wa), opix, sums=False)
    nbytes += extra
    total += extra / Bs + reads * L
    _add(bounds, "overhead", extra / Bs + reads * L)
    macs = float(wa @ pix) * n_out * kk
    dense_macs = d.conv_h * d.conv_w * d.out_c * kk
    return LayerCycles(name, compute, nbytes / B, total, nbytes, macs, dense_macs, wbytes,
                       bounds)


# --------------------------------------------------------------------------------------
# Networks: blocks with random masks of given densities
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockMask:
    """Active output tiles (row-major ids) and active conv1 output channels of one block;
    for a Bottleneck block also the active conv2 output channels (mask_c2; None: all on)."""
    tiles: np.ndarray
    channels: np.ndarray
    channels2: Optional[np.ndarray] = None


def random_block_masks(net: NetShape, densities: Sequence[float], seed: int = 0,
                       spatial_share: float = 0.5) -> list[BlockMask]:
    """Random masks whose per-block MAC density approximates `densities`.

    Method: a block's gated MACs (conv1 and conv2) scale with s*c, the spatial density
    (active tiles / tiles) times the channel density (active channels / channels). We set
    s = d**spatial_share and c = d**(1 - spatial_share) (0.5: equal split), draw
    round(s * tiles) tiles and round(c * channels) channels uniformly without replacement
    (numpy Generator seeded by `seed`), at least one of each when d > 0. The realised
    density differs from d by the rounding (see `block_density`).
    """
    if len(densities) != len(net.blocks):
        raise ConfigError(f"{net.name}: {len(densities)} densities for {len(net.blocks)} blocks")
    if not 0.0 <= spatial_share <= 1.0:
        raise ConfigError(f"spatial_share must be in [0, 1], got {spatial_share}")
    rng = np.random.default_rng(seed)
    masks = []
    for b, d in zip(net.blocks, densities):
        if not 0.0 <= d <= 1.0:
            raise ConfigError(f"{b.name}: density {d} outside [0, 1]")
        s, c = d ** spatial_share, d ** (1.0 - spatial_share)
        gc = getattr(b, "gated_c", b.out_c)
        nt = 0 if d == 0 else max(1, round(s * b.n_tiles))
        nc = 0 if d == 0 else max(1, round(c * gc))
        tiles = np.sort(rng.choice(b.n_tiles, size=nt, replace=False)).astype(np.uint16)
        chans = np.sort(rng.choice(gc, size=nc, replace=False)).astype(np.uint16)
        chans2 = None
        if isinstance(b, BottleneckShape):      # mask_c2: the same channel density
            chans2 = np.sort(rng.choice(gc, size=nc, replace=False)).astype(np.uint16)
        masks.append(BlockMask(tiles, chans, chans2))
    return masks


def block_density(b, m: BlockMask) -> float:
    """Realised density of a block's gated convs (their MACs over dense): BasicBlock
    s*c (conv1 and conv2 both scale with it); Bottleneck the MAC-weighted mean of conv1
    (s*c1), conv2 (s*c1*c2) and conv3 (s*c2), the shortcut dense."""
    s = len(m.tiles) / b.n_tiles
    if not isinstance(b, BottleneckShape):
        return s * (len(m.channels) / b.out_c)
    c1 = len(m.channels) / b.width
    c2 = 1.0 if m.channels2 is None else len(m.channels2) / b.width
    sc = b.shortcut.macs if b.shortcut is not None else 0
    gated = s * (c1 * b.conv1.macs + c1 * c2 * b.conv2.macs + c2 * b.conv3.macs)
    return (gated + sc) / b.dense_macs


# --------------------------------------------------------------------------------------
# Gate and head records of the one-start program
# --------------------------------------------------------------------------------------
def _record_fetch(B: float, p: CycleParams) -> float:
    """Fetch and check of one 96-byte record (every op; a skipped layer costs this)."""
    return p.layer_overhead_cycles + DESCRIPTOR_BYTES / B


def _cdiv(a, b) -> int:
    return -(-int(a) // int(b))


def _list_scan(candidates: int, selected: int) -> float:
    """Cycles the gate unit scans to emit `selected` ascending indices of `candidates` (one
    candidate per cycle, stopping after the last selected one): the expected position of the
    last of `selected` evenly spread picks, `candidates` when all are selected."""
    return candidates * selected / (selected + 1)


def gate_lanes(cfg: EngineConfig) -> int:
    """The gate unit's lanes (`dg_gate.sv` GL): `EngineConfig.gate_lanes`."""
    return cfg.gate_lanes


def gate_record_terms(in_c: int, out_c: int, hidden: int, st_h: int, st_w: int, gh: int,
                      gw: int, res_list: bool, nt: int, nc: int, dense: bool,
                      cfg: EngineConfig) -> tuple[float, int]:
    """(cycles, read/write streams) of one gate record in the RTL's gate unit (`dg_gate.sv`,
    docs/rtl.md "Gate unit cycles"), ideal memory, without the record fetch and the fixed
    and per-stream overheads `gate_record_cycles` adds.

    Streams move one AXI beat (AB = axi_bytes) per cycle. Gated: the bin table and the
    reciprocals (checked entry by entry, one bin row/column per cycle), the block input's
    SUMS once per bin and sum-tile row (a row of w_bin tiles x C int32), pooling
    `gate_lanes` channels per cycle per bin, the whole SUMS again for the channel totals,
    the spatial weights, the 3x3 over the bins (per cell and kernel row: ceil(C/gate_lanes)
    cycles in the grid, 1 outside), fc1 / m1 / o1 / fc2 / b2 streamed. DENSE: only the checked sections (bin table,
    reciprocals, the three biases). Then the masks and the work lists: one candidate index
    per cycle up to the last selected one, plus one cycle per written beat.
    """
    AB, gl = cfg.axi_bytes, gate_lanes(cfg)
    n, c = gh * gw, in_c
    cyc = _cdiv(2 * gh + 2 * gw, AB) + gh + gw + _cdiv(4 * (n + 1), AB)
    streams = 2
    if dense:
        cyc += _cdiv(8, AB) + _cdiv(8 * hidden, AB) + _cdiv(8 * out_c, AB)
        streams += 3
    else:
        from dgfpga.contract.formats import pool_bins
        rows, cols = pool_bins(st_h, gh), pool_bins(st_w, gw)
        for r0, r1 in rows:
            for c0, c1 in cols:
                cyc += (r1 - r0) * _cdiv(4 * (c1 - c0) * c, AB)
                streams += r1 - r0
        lanes = _cdiv(c, gl)
        # the pool passes (n bins, the totals): gate_lanes channels per cycle and one more
        # cycle for the multiply stage (the pool pipeline drains before the next step)
        cyc += n * lanes + _cdiv(4 * st_h * st_w * c, AB) + lanes + _cdiv(18 * c, AB) + n + 1
        for gy in range(gh):
            inside = sum(1 for ky in range(3) if 0 <= gy + ky - 1 < gh)
            cyc += gw * (inside * lanes + (3 - inside))
        cyc += (_cdiv(2 * hidden * c, AB) + _cdiv(12 * hidden, AB)
                + _cdiv(2 * out_c * hidden, AB) + _cdiv(8 * out_c, AB))
        streams += 8                    # totals, ws, bs, w1, m1, o1, w2, b2
    from dgfpga.contract.program import mask_bytes
    scan = (2 * _list_scan(n, nt) + 2 * _list_scan(out_c, nc)
            + (_list_scan(n, n - nt) if res_list else 0))
    beats = (_cdiv(mask_bytes(n, out_c), AB) + 2 * _cdiv(2 * nt, AB) + 2 * _cdiv(2 * nc, AB)
             + (_cdiv(2 * (n - nt), AB) if res_list else 0) + _cdiv(bitmap_bytes(n), AB))
    return cyc + scan + beats, streams


def gate_record_cycles(in_c: int, out_c: int, hidden: int, st_h: int, st_w: int, gh: int,
                       gw: int, res_list: bool, nt: int, nc: int, dense: bool,
                       cfg: Optional[EngineConfig] = None,
                       params: Optional[CycleParams] = None) -> float:
    """Cycles of one gate record (fields as in `dgfpga.contract.program.GateRecord`; nt/nc
    the active tiles/channels it decides): the record fetch (96 bytes at one beat per
    cycle), `gate_record_terms`, and the two costs fitted on the RTL's per-record cycle log
    (`gate_fixed_cycles` per record, `gate_stream_cycles` per stream; `fit_record_params`)."""
    cfg = cfg or default_config()
    p = params or CycleParams()
    cyc, streams = gate_record_terms(in_c, out_c, hidden, st_h, st_w, gh, gw, res_list, nt,
                                     nc, dense, cfg)
    return record_cycles("gate", DESCRIPTOR_BYTES / cfg.axi_bytes + cyc, streams, p)


def _sum_rows_cycles(n: int, nt: int, row: int, AB: int, spatial=None) -> tuple:
    """(stream cycles, runs) of the gate-2 read of conv1's compact sums: per run of
    consecutive active tiles [t0, t0+L) one stream of L rows of `row` bytes from byte t0*row,
    one beat per cycle, and one more cycle per row boundary inside a beat (a beat segment
    that crosses a row, dg_gate.sv). Exact from the spatial mask; else the expectation for
    nt tiles in `tile_runs` runs (a run starts at a random offset, a boundary is inside a
    beat unless row * k is beat-aligned)."""
    if spatial is not None:
        on = np.asarray(spatial, bool).reshape(-1)[:n]
        cyc, runs, t = 0.0, 0, 0
        while t < n:
            if not on[t]:
                t += 1
                continue
            t0 = t
            while t < n and on[t]:
                t += 1
            o = t0 * row % AB
            cyc += -(-(o + (t - t0) * row) // AB)
            cyc += sum(1 for k in range(t0 + 1, t) if (k * row) % AB)
            runs += 1
        return cyc, float(runs)
    runs = tile_runs(n, nt)
    period = AB // math.gcd(row, AB) if row else 1      # rows per beat-aligned boundary
    inside = 1.0 - 1.0 / period
    return nt * row / AB + runs * (1.0 - 1.0 / period) + (nt - runs) * inside, runs


def tile_runs(n: int, nt: int, spatial=None) -> float:
    """Runs of consecutive active tiles (row-major) among `n`: counted from the spatial mask
    when given, else the expectation for `nt` active tiles spread at random,
    nt * (n - nt + 1) / n."""
    if spatial is not None:
        on = np.asarray(spatial, bool).reshape(-1)[:n].astype(np.int8)
        return float(np.count_nonzero(np.diff(np.concatenate(([0], on))) == 1))
    return float(nt * (n - nt + 1) / n) if n else 0.0


def gate2_record_terms(in_c: int, out_c: int, hidden: int, st_h: int, st_w: int, nt: int,
                       nc1: int, nc2: int, dense: bool, cfg: EngineConfig,
                       spatial=None) -> tuple[float, float]:
    """(cycles, streams) of one gate-2 record (a Bottleneck block's mask_c2,
    `program.Gate2Record`) in the gate unit (`dg_gate.sv`), written as `gate_record_terms`
    is: R(H*W) and the gate record's masks it reads (a stream each); gated, the tile scan
    (one tile per cycle) with conv1's compact sums, one stream per run of consecutive active
    tiles (a row of nc1 int32 per tile, `_sum_rows_cycles`: exact from the gate's spatial
    mask `spatial` if given, else expected), pooling `gate_lanes` channels per cycle,
    fc1 / m1 streamed; then o1, [fc2], b2; then the mask_c2 bitmap and the two channel lists
    (one candidate per cycle up to the last selected one, one cycle per written beat).
    DENSE: only the checked sections (recip, masks, o1, b2) and the writes."""
    from dgfpga.contract.program import mask_bytes
    AB, gl = cfg.axi_bytes, gate_lanes(cfg)
    n = st_h * st_w
    cyc = _cdiv(mask_bytes(n, in_c), AB) + _cdiv(4, AB) + _cdiv(8 * hidden, AB) + _cdiv(8 * out_c, AB)
    streams = 4.0
    if not dense:
        sums, r = _sum_rows_cycles(n, nt, 4 * max(nc1, 1), AB, spatial)
        cyc += n + sums + _cdiv(in_c, gl) + 2          # the pool pass, its read and multiply stages
        cyc += (_cdiv(2 * hidden * in_c, AB) + _cdiv(4 * hidden, AB)
                + _cdiv(2 * out_c * hidden, AB))
        streams += r + 3
    scan = 2 * _list_scan(out_c, nc2)
    beats = _cdiv(bitmap_bytes(out_c), AB) + 2 * _cdiv(2 * nc2, AB)
    return cyc + scan + beats, streams + 3


def gate2_record_cycles(in_c: int, out_c: int, hidden: int, st_h: int, st_w: int, nt: int,
                        nc1: int, nc2: int, dense: bool, cfg: Optional[EngineConfig] = None,
                        params: Optional[CycleParams] = None,
                        spatial=None) -> float:
    """Cycles of one gate-2 record: the record fetch, `gate2_record_terms`, the gate-2
    record's own fixed cost (`gate2_fixed_cycles`) and the gate unit's per-stream cost, both
    fitted on the RTL's cycle log (`fit_record_params`)."""
    cfg = cfg or default_config()
    p = params or CycleParams()
    cyc, streams = gate2_record_terms(in_c, out_c, hidden, st_h, st_w, nt, nc1, nc2, dense,
                                      cfg, spatial)
    return record_cycles("gate2", DESCRIPTOR_BYTES / cfg.axi_bytes + cyc, streams, p)


def record_cycles(kind: str, fixed: float, streams: int, params: CycleParams) -> float:
    """A gate or head record's cycles from its formula part `fixed` (fetch + terms) and its
    stream count, with the fitted costs of `params` (what `fit_record_params` fits)."""
    own = {"gate": params.gate_fixed_cycles, "gate2": params.gate2_fixed_cycles,
           "head": params.head_fixed_cycles}[kind]
    return fixed + own + params.gate_stream_cycles * streams


def head_record_terms(in_c: int, classes: int, st_h: int, st_w: int,
                      cfg: EngineConfig) -> tuple[float, int]:
    """(cycles, streams) of the head up to its cycle-log write (`dg_gate.sv`): the whole
    SUMS, the int8 weights one class row at a time, the int32 biases, the int64 logits.
    A stream segment holds at most `gate_lanes` elements (the gate unit's on-chip arrays are
    that many RAM banks, one entry each per cycle), so the int8 weights move that many per
    cycle."""
    AB = cfg.axi_bytes
    cyc = (_cdiv(4 * st_h * st_w * in_c, AB) + classes * _cdiv(in_c, gate_lanes(cfg))
           + _cdiv(4 * classes, AB) + _cdiv(8 * classes, AB))
    return cyc, 4


def head_record_cycles(in_c: int, classes: int, st_h: int, st_w: int,
                       cfg: Optional[EngineConfig] = None,
                       params: Optional[CycleParams] = None) -> float:
    """Cycles of the head record up to its cycle-log write: fetch, `head_record_terms`,
    `head_fixed_cycles` and `gate_stream_cycles` per stream (fitted on the RTL)."""
    cfg = cfg or default_config()
    p = params or CycleParams()
    cyc, streams = head_record_terms(in_c, classes, st_h, st_w, cfg)
    return record_cycles("head", DESCRIPTOR_BYTES / cfg.axi_bytes + cyc, streams, p)


def fit_record_params(samples: Sequence[dict], base: Optional[CycleParams] = None
                      ) -> CycleParams:
    """Fit `gate_fixed_cycles`, `gate_stream_cycles`, `head_fixed_cycles` and
    `gate2_fixed_cycles` (least squares, one per-stream cost for the whole gate unit) to
    RTL-measured records: each sample {"kind": "gate"|"gate2"|"head", "rtl": cycles, "fixed":
    the formula's cycles without the fitted terms (fetch + terms), "streams": n}. Without
    gate-2 samples `gate2_fixed_cycles` stays the base's."""
    base = base or CycleParams()
    cols = {"gate": 0, "head": 2, "gate2": 3}
    rows, y = [], []
    for s in samples:
        if s["kind"] not in cols:
            raise ConfigError(f"record sample of kind {s['kind']!r}: expected gate, gate2 or head")
        row = [0.0, float(s["streams"]), 0.0, 0.0]
        row[cols[s["kind"]]] = 1.0
        rows.append(row)
        y.append(float(s["rtl"]) - float(s["fixed"]))
    if not rows:
        raise ConfigError("no gate or head records measured: nothing to fit")
    a = np.asarray(rows)
    keep = a.any(axis=0)
    coef = np.zeros(4)
    coef[keep] = np.linalg.lstsq(a[:, keep], np.asarray(y), rcond=None)[0]
    return dataclasses.replace(base, gate_fixed_cycles=float(coef[0]),
                               gate_stream_cycles=float(coef[1]),
                               head_fixed_cycles=float(coef[2]),
                               gate2_fixed_cycles=float(coef[3]) if keep[3]
                               else base.gate2_fixed_cycles)


def skipped_layer_cycles(cfg: Optional[EngineConfig] = None,
                         params: Optional[CycleParams] = None) -> float:
    """A conv record the gate leaves with nothing to do: its fetch and check."""
    cfg = cfg or default_config()
    p = params or CycleParams()
    return _record_fetch(p.bytes_per_cycle(cfg), p)


def program_cycles(program: bytes, n_records: int, work: np.ndarray, gate_masks: Sequence,
                   dense: bool, cfg: Optional[EngineConfig] = None,
                   params: Optional[CycleParams] = None) -> list:
    """Per-record cycles of one start of a network program (what the engine's cycle log
    holds), after the start ran: `work` is the WORK region it left (the work lists the gate
    records wrote), `gate_masks` the (spatial, channel) of each gate record that ran (the
    interpreter's `RunResult.gate_masks`). Conv records with `from_gate` are priced as
    their effective descriptor (`program.effective_descriptor`) with their exact tile lists."""
    return [c for c, _ in program_records(program, n_records, work, gate_masks, dense, cfg,
                                          params)]


def program_records(program: bytes, n_records: int, work: np.ndarray, gate_masks: Sequence,
                    dense: bool, cfg: Optional[EngineConfig] = None,
                    params: Optional[CycleParams] = None) -> list:
    """`program_cycles` with the conv records' LayerCycles: [(cycles, LayerCycles or None
    for gate/head records and skipped layers)] per record."""
    from dgfpga.contract import program as P
    from dgfpga.contract.formats import unpack_descriptor
    cfg = cfg or default_config()
    p = params or CycleParams()
    out = []
    gates = iter(gate_masks)
    nt = nc = 0
    nc2 = sp_last = None
    for i in range(n_records):
        raw = bytes(program[i * DESCRIPTOR_BYTES:(i + 1) * DESCRIPTOR_BYTES])
        op = P.record_op(raw)
        if op == P.OP_GATE:
            g = P.unpack_gate_record(raw, cfg, None)
            sp, ch = next(gates)
            sp_last = sp
            nt, nc = int(np.count_nonzero(sp)), int(np.count_nonzero(ch))
            nc2 = None
            out.append((gate_record_cycles(g.in_c, g.out_c, g.hidden, g.st_h, g.st_w, g.gh,
                                           g.gw, g.res_list, nt, nc, dense, cfg, p), None))
        elif op == P.OP_GATE2:
            g2 = P.unpack_gate2_record(raw, cfg, None)
            bits = np.unpackbits(work[g2.mask_offset:g2.mask_offset +
                                      bitmap_bytes(g2.out_c)], bitorder="little")
            nc2 = int(np.count_nonzero(bits[:g2.out_c]))     # the mask_c2 it wrote
            out.append((gate2_record_cycles(g2.in_c, g2.out_c, g2.hidden, g2.st_h, g2.st_w,
                                            nt, nc, nc2, dense, cfg, p, sp_last), None))
        elif op == P.OP_HEAD:
            h = P.unpack_head_record(raw, cfg, None, n_records)
            out.append((head_record_cycles(h.in_c, h.classes, h.st_h, h.st_w, cfg, p), None))
        else:
            d = unpack_descriptor(raw, cfg)
            if getattr(d, "from_gate", False):
                d = P.effective_descriptor(d, nt, nc, nc2)
            if d is None:
                out.append((skipped_layer_cycles(cfg, p), None))
                continue
            u16 = (lambda off, k: work[off:off + 2 * k].view("<u2").astype(np.int64))
            tiles = u16(d.tile_list_offset, d.n_active_tiles) if d.tile_gated else None
            res = u16(d.res_tile_list_offset, d.n_res_tiles) if d.n_res_tiles else None
            lc = layer_cycles(d, cfg, p, tiles=tiles, res_tiles=res)
            out.append((lc.total_cycles, lc))
    return out


def program_network_cycles(plan, masks: Optional[Sequence], params: Optional[CycleParams] = None,
                           host_s: float = 0.0) -> "NetworkCycles":
    """One image as one start of `plan`'s network program, priced record by record
    (`program_records`) without the scheduler: what each gate record writes for the given
    decisions (`program.gate_work_writes`) is laid into WORK first. Works for every plan
    the packer makes without gate-2 records (MobileNetV2's ungated blocks, depthwise
    layers and tail included). `masks`: per GATED block (spatial bool [N], channel bool
    [C]); None: the dense baseline (RUN_FLAGS.DENSE, every gate on, no gate MACs). MACs:
    the convs as the lists require + the gates (official counting) + the fc."""
    from dgfpga.contract import program as P
    from dgfpga.numerics.gates import channel_gate_macs, spatial_gate_macs
    cfg = plan.cfg
    p = params or CycleParams()
    gated = [bp for bp in plan.blocks if bp.gate_record is not None]
    if any(bp.gate2_record is not None for bp in gated):
        raise ConfigError("program_network_cycles: Bottleneck programs (gate-2 records) are "
                          "priced by network_cycles")
    if masks is not None and len(masks) != len(gated):
        raise ConfigError(f"{plan.qmodel.arch}: {len(masks)} masks for {len(gated)} gated "
                          "blocks")
    work = np.zeros(plan.region_bytes["work"], np.uint8)
    decisions, gate_macs_total = [], 0
    for k, bp in enumerate(gated):
        r = bp.gate_record
        if masks is None:
            sp, ch = np.ones(r.gh * r.gw, bool), np.ones(r.out_c, bool)
        else:
            sp, ch = (np.asarray(m, bool).reshape(-1) for m in masks[k])
            gate_macs_total += (spatial_gate_macs((r.gh, r.gw), r.in_c)
                                + channel_gate_macs(r.in_c, r.hidden, r.out_c))
        for off, data in P.gate_work_writes(r, sp, ch):
            work[off:off + data.size] = data
        decisions.append((sp, ch))
    recs = program_records(plan.program, plan.record_count, work, decisions, masks is None,
                           cfg, p)
    layers = tuple(dataclasses.replace(lc, name=rp.name)
                   for (_, lc), rp in zip(recs, plan.records) if lc is not None)
    gate = sum(c for (c, _), rp in zip(recs, plan.records) if rp.kind == "gate")
    head = sum(c for (c, _), rp in zip(recs, plan.records) if rp.kind == "head")
    skipped = sum(c for (c, lc), rp in zip(recs, plan.records)
                  if lc is None and rp.kind not in ("gate", "head"))
    fc = int(np.asarray(plan.qmodel.head.weight).size)
    engine = float(sum(c for c, _ in recs))
    host = float(host_s) * cfg.clock_hz
    macs = sum(lc.macs for lc in layers) + gate_macs_total + fc
    dense_macs = sum(lp.template.conv_h * lp.template.conv_w * lp.template.out_c
                     * (1 if lp.template.depthwise else lp.template.in_c)
                     * lp.template.k ** 2 for lp in plan.layers) + fc
    return NetworkCycles(plan.qmodel.arch, layers, engine, host, engine + host, float(macs),
                         float(dense_macs), gate, head, skipped)


def random_gated_masks(plan, density: float, seed: int = 0) -> list:
    """Random decisions of every gated block of `plan` at block density `density`: a
    fraction sqrt(density) of the tiles and of the channels (a MobileNetV2 block's MACs
    are tiles x channels in all three layers), at least one of each."""
    rng = np.random.default_rng(seed)
    f = float(np.sqrt(min(max(density, 0.0), 1.0)))
    out = []
    for bp in plan.blocks:
        r = bp.gate_record
        if r is None:
            continue
        n, c = r.gh * r.gw, r.out_c
        sp, ch = np.zeros(n, bool), np.zeros(c, bool)
        sp[rng.choice(n, max(1, round(f * n)), replace=False)] = True
        ch[rng.choice(c, max(1, round(f * c)), replace=False)] = True
        out.append((sp, ch))
    return out


@dataclass(frozen=True)
class NetworkCycles:
    name: str
    layers: tuple              # LayerCycles of every conv layer that runs
    engine_cycles: float       # every record of the one start: convs, gates, head
    host_cycles: float         # the host's CPU time per image (measured; see network_cycles)
    total_cycles: float
    macs: float                # MACs executed (convs + gates + fc), official counting
    dense_macs: float
    gate_cycles: float = 0.0   # gate records (included in engine_cycles)
    head_cycles: float = 0.0   # head record (included in engine_cycles)
    skipped_cycles: float = 0.0  # fetch/check of conv records the gates left empty

    def seconds(self, cfg: EngineConfig) -> float:
        return self.total_cycles / cfg.clock_hz

def _bool_masks(bp, mask: BlockMask) -> tuple:
    """(spatial, channel, channel2 or None) bool vectors of a BlockMask for block `bp`."""
    sp = np.zeros(bp.conv1.template.n_tiles, bool)
    sp[np.asarray(mask.tiles, dtype=np.int64)] = True
    ch = np.zeros(bp.conv1.template.out_c, bool)
    ch[np.asarray(mask.channels, dtype=np.int64)] = True
    ch2 = None
    if bp.kind == "bottleneck" and mask.channels2 is not None:
        ch2 = np.zeros(bp.conv2.template.out_c, bool)
        ch2[np.asarray(mask.channels2, dtype=np.int64)] = True
    return sp, ch, ch2


def scheduled_layers(run, cfg: EngineConfig, work: np.ndarray) -> list:
    """What one engine start (a `dgfpga.runtime.scheduler.EngineRun`) asks of the engine:
    [(descriptor, work list)] per layer, the lists read back from the WORK region after the
    run's writes through the one validator (`formats.read_work_list`), as the engine reads
    them. `work`: the WORK region (uint8, updated in place)."""
    for off, data in run.work_writes:
        work[off:off + data.size] = data
    return [(d, read_work_list(d, work)) for d in run.descriptors(cfg)]


def price_layer(d: LayerDescriptor, wl: WorkList, cfg: EngineConfig, params: CycleParams,
                name: str = "") -> LayerCycles:
    """`layer_cycles` of one scheduled layer with its exact tile lists."""
    return layer_cycles(d, cfg, params, tiles=wl.tiles if d.tile_gated else None,
                        res_tiles=wl.res_tiles if len(wl.res_tiles) else None, name=name)


def network_runs(plan, masks: Optional[Sequence[BlockMask]]) -> list:
    """The engine starts of one image as the scheduler emits them: the stem's, then one per
    block (`masks=None`: the dense baseline, every gate on). Empty runs (an identity block
    with no active tile) are kept: they cost no engine start."""
    from dgfpga.runtime.scheduler import Scheduler
    sch = Scheduler(plan)
    if masks is not None and len(masks) != len(plan.blocks):
        raise ConfigError(f"{plan.qmodel.arch}: {len(masks)} masks for {len(plan.blocks)} blocks")
    runs = [sch.stem()]
    for i, bp in enumerate(plan.blocks):
        runs.append(sch.block(i) if masks is None else sch.block(i, *_bool_masks(bp, masks[i])))
    return runs


def network_macs(plan, masks: Optional[Sequence[BlockMask]]) -> int:
    """MACs of one image, official counting: the convolutions the scheduled work lists
    require (stem, conv1, shortcut, conv2), the gates of every block (none for the dense
    baseline, `masks=None`) and the fc."""
    from dgfpga.numerics.gates import channel_gate_macs
    macs = int(plan.qmodel.head.weight.size)
    for k, run in enumerate(network_runs(plan, masks)):
        macs += run.macs
        if k and masks is not None:
            bp = plan.blocks[k - 1]
            t = bp.conv1.template
            macs += gate_macs(t.in_c, t.out_c, t.n_tiles)
            if bp.kind == "bottleneck":             # mask_c2: width -> width/4 -> width
                w2 = bp.conv2.template.out_c
                macs += channel_gate_macs(t.out_c, t.out_c // 4, w2)
    return macs


def _gate_fields(plan, i: int) -> tuple:
    """(in_c, out_c, hidden, st_h, st_w, gh, gw, res_list) of block i's gate record, from
    the plan (the same fields the packer writes into the record)."""
    bp = plan.blocks[i]
    qb = plan.qmodel.blocks[i]
    t1 = bp.conv1.template
    in_c = plan.qmodel.tensors[bp.in_tensor].shape[0]
    cg = qb.channel_gate
    hidden = getattr(cg, "hidden", None) or max(1, in_c // 4)
    st_h, st_w = plan.sums[bp.in_tensor][2]
    return (in_c, t1.out_c, int(hidden), int(st_h), int(st_w), *bp.grid,
            bp.downsample is not None)


def network_cycles(plan, masks: Optional[Sequence[BlockMask]],
                   params: Optional[CycleParams] = None, host_s: float = 0.0) -> NetworkCycles:
    """One image as ONE engine start of the network program: stem, per block its gate
    record, conv1, [shortcut], conv2 (Bottleneck: gate, conv1, gate-2 record, [shortcut],
    conv2, conv3; the gate-2 record priced by `gate2_record_cycles`), then the head. The conv layers are exactly those the
    scheduler emits for the masks (`network_runs`; the engine's generated work equals the
    scheduler's, SPEC13 section 3), each priced by `layer_cycles` with its exact lists; a
    conv record the gates leave empty costs its fetch (`skipped_layer_cycles`); gate
    records `gate_record_cycles` (`masks=None`: the dense baseline, RUN_FLAGS.DENSE: no
    evaluation, masks and lists still written), the head `head_record_cycles`.

    `host_s`: the host's CPU time per image (the runner's host work around the one start,
    measured: `dgfpga-host bench`'s host CPU median); there is no modelled host constant.
    `plan`: a `dgfpga.runtime.packer.NetworkPlan` (of a quantized model, or from shapes:
    `dgfpga.perf.netshapes.shape_plan`). MACs: the convolutions the work lists require
    (the scheduler's count) + gates + fc, the official counting.
    """
    cfg = plan.cfg
    p = params or CycleParams()
    work = np.zeros(plan.region_bytes["work"], np.uint8)
    layers = []
    gate = skipped = 0.0
    runs = network_runs(plan, masks)
    for (d, wl), lw in zip(scheduled_layers(runs[0], cfg, work), runs[0].layers):
        layers.append(price_layer(d, wl, cfg, p, name=lw.name))
    for i, (bp, run) in enumerate(zip(plan.blocks, runs[1:])):
        if masks is None:
            nt, nc = bp.conv1.template.n_tiles, bp.conv1.template.out_c
        else:
            nt, nc = len(masks[i].tiles), len(masks[i].channels)
        gate += gate_record_cycles(*_gate_fields(plan, i), nt, nc, masks is None, cfg, p)
        if bp.kind == "bottleneck":
            r2 = bp.gate2_record
            m2 = None if masks is None else masks[i].channels2
            nc2 = r2.out_c if m2 is None else len(m2)
            n2 = r2.st_h * r2.st_w
            sp = (None if masks is None else
                  np.isin(np.arange(n2), np.asarray(masks[i].tiles, dtype=np.int64)))
            gate += gate2_record_cycles(r2.in_c, r2.out_c, r2.hidden, r2.st_h, r2.st_w, nt,
                                        nc, nc2, masks is None, cfg, p, sp)
        ran = {lw.name for lw in run.layers}
        for lp in bp.convs:
            if lp.name not in ran:
                skipped += skipped_layer_cycles(cfg, p)
        for (d, wl), lw in zip(scheduled_layers(run, cfg, work), run.layers):
            layers.append(price_layer(d, wl, cfg, p, name=lw.name))
    last = plan.blocks[-1].out_tensor
    st_h, st_w = plan.sums[last][2]
    h = plan.qmodel.head
    head = head_record_cycles(int(h.weight.shape[1]), int(h.weight.shape[0]), int(st_h),
                              int(st_w), cfg, p)
    engine = sum(l.total_cycles for l in layers) + gate + skipped + head
    host = float(host_s) * cfg.clock_hz
    return NetworkCycles(plan.qmodel.arch, tuple(layers), engine, host, engine + host,
                         float(network_macs(plan, masks)), float(network_macs(plan, None)),
                         gate, head, skipped)


@dataclass(frozen=True)
class Comparison:
    dense: NetworkCycles
    gated: NetworkCycles

    @property
    def speedup(self) -> float:
        return self.dense.total_cycles / self.gated.total_cycles

    @property
    def mac_reduction(self) -> float:
        return self.dense.macs / self.gated.macs

    @property
    def efficiency(self) -> float:
        """Realised speedup / theoretical MAC reduction (1.0 = all of the saving)."""
        return self.speedup / self.mac_reduction


def compare(plan, masks: Sequence[BlockMask], params: Optional[CycleParams] = None,
            host_s: float = 0.0) -> Comparison:
    """Dense baseline vs gated run of the same network (`plan`, `host_s`: see
    `network_cycles`; the host work per image is the same in both modes)."""
    return Comparison(network_cycles(plan, None, params, host_s),
                      network_cycles(plan, masks, params, host_s))
