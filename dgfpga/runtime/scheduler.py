"""The mask scheduler: one block's gate decisions -> the engine run that computes them.

numpy only (torch-free). It is THE reference for the work the engine generates itself in a
network program (`dgfpga.contract.program`): a gate record's effective descriptors
(`program.effective_descriptor`) and WORK bytes (`program.gate_work_writes`) must equal
what `Scheduler.block` produces (tests/runtime/test_network_program.py); the cycle model
prices its runs; and it drives the per-block flow (one start per block, the host between
starts: calibration, layer vectors). It is written for speed: every layer's descriptor is a precomputed template (`dgfpga.runtime.packer`)
held as 24 uint32 words, and per image only the counts, flags and work-list offsets are
patched; the work lists are `np.flatnonzero` of the masks, laid out by the one work-list
writer (`formats.encode_work_list`) at fixed slots of the WORK region (`formats.work_slots`).
`validate=True` re-reads everything through the checking unpackers of
`dgfpga.contract.formats` (`unpack_descriptor`, `read_work_list`: what the engine does), for
tests and for cautious hosts. The cycle model prices these runs, never a copy of them.

What a block's run contains (DESIGN.md section 3 in work lists):

- conv1: active tiles x active output channels (compact output), all input channels;
  omitted when no tile or no channel is active.
- shortcut (downsample blocks): dense.
- conv2: active tiles, reading the active input channels from the compact buffer (halo
  pixels in inactive tiles read as zero), residual + ReLU; downsample blocks also list the
  inactive tiles as residual-only; identity blocks are in place and skip inactive tiles,
  and are omitted entirely when no tile is active.
- Bottleneck blocks (`block(..., channel2=...)`, mask_c2 given): conv1 at the input
  resolution (active tiles x mask_c1), [shortcut], conv2 (mask_c1 in, mask_c2 out; omitted
  without a tile or a mask_c2 channel), conv3 (mask_c2 in, residual; as conv2 above).
- MobileNetV2 blocks: ungated ones dense (`block(i)` without masks); gated (identity)
  ones expand (active tiles x mask_c channels; omitted without either), depthwise (the
  same tiles and channels, one list for both sides; omitted likewise), projection (active
  tiles from the mask_c channels + residual, in place; omitted without a tile). The tail
  conv is dense (`tail()`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from dgfpga.contract import formats
from dgfpga.errors import FormatError
from dgfpga.contract.formats import FIELD_BY_NAME, LayerDescriptor
from dgfpga.runtime.packer import BlockPlan, LayerPlan, NetworkPlan

__all__ = ["EngineRun", "LayerWork", "Scheduler"]


@dataclass
class LayerWork:
    """One scheduled layer: its name, kind and the MACs its work list requires."""
    name: str
    kind: str
    macs: int
    n_tiles: int
    n_channels: int


@dataclass
class EngineRun:
    """One engine start: descriptors back to back, and the WORK bytes they need.

    program: bytes of `len(layers)` packed descriptors; work_writes: (offset, uint8 array)
    to write into the WORK region before the start. An empty run needs no engine start.
    """
    block: int
    program: bytes
    layers: list[LayerWork]
    work_writes: list[tuple[int, np.ndarray]] = field(default_factory=list)

    @property
    def layer_count(self) -> int:
        return len(self.layers)

    @property
    def macs(self) -> int:
        return sum(lw.macs for lw in self.layers)

    def descriptors(self, cfg=None) -> list[LayerDescriptor]:
        """Unpack (and validate) the descriptors of this run."""
        b = formats.DESCRIPTOR_BYTES
        return [formats.unpack_descriptor(self.program[i * b:(i + 1) * b], cfg)
                for i in range(self.layer_count)]


def _words(d: LayerDescriptor, cfg) -> np.ndarray:
    """A descriptor as 24 uint32 words (pack_descriptor validates it once, here, against
    the plan's engine config: never the default one, which would need TOML on the board)."""
    return np.frombuffer(formats.pack_descriptor(d, cfg), dtype="<u4").astype(np.uint32)


def _setter(name: str):
    f = FIELD_BY_NAME[name]
    clear = np.uint32(~(f.mask << f.lsb) & 0xFFFFFFFF)

    def put(words: np.ndarray, value: int) -> None:
        words[f.word] = (words[f.word] & clear) | np.uint32((int(value) & f.mask) << f.lsb)
    return put


_SET = {n: _setter(n) for n in (
    "tile_gated", "n_active_tiles", "n_res_tiles", "n_active_out", "n_active_in",
    "tile_list_offset", "res_tile_list_offset", "out_ch_list_offset", "in_ch_list_offset",
    "bitmap_offset")}


def _slots(lp: LayerPlan, align: int) -> formats.WorkSlots:
    """The layer's work-list slot layout (formats.work_slots) inside its packed WORK slot."""
    if lp.slots is not None:        # the packer's (a Bottleneck conv3 shares conv2's tiles)
        return lp.slots
    s = formats.work_slots(lp.template, lp.work_slot.offset, align)
    if s.nbytes > lp.work_slot.nbytes:  # pragma: no cover - packer/scheduler disagree
        raise FormatError(f"layer {lp.name}: work slot of {lp.work_slot.nbytes} bytes too small")
    return s


def _fill(words: np.ndarray, d: LayerDescriptor, slots: formats.WorkSlots, tiles,
          res_tiles=None, out_channels=None, in_channels=None) -> list:
    """Lay the lists out with the one writer (formats.encode_work_list) and patch the
    descriptor words with the counts and offsets it returns; returns the WORK writes."""
    fields, writes = formats.encode_work_list(d, slots, tiles, res_tiles, out_channels,
                                              in_channels)
    for name, value in fields.items():
        _SET[name](words, value)
    return writes


def _tile_pixels(d: LayerDescriptor) -> np.ndarray:
    """Output pixels of each tile (edge tiles are clipped), row-major, int64 [n_tiles]."""
    ys = np.minimum(d.tile, d.out_h - d.tile * np.arange(d.grid_h))
    xs = np.minimum(d.tile, d.out_w - d.tile * np.arange(d.grid_w))
    return (ys[:, None] * xs[None, :]).reshape(-1).astype(np.int64)


class Scheduler:
    """Schedules the blocks of one packed network (`NetworkPlan`)."""

    def __init__(self, plan: NetworkPlan, validate: bool = False):
        self.plan = plan
        self.validate = validate
        a = plan.cfg.axi_bytes
        self._w = {lp.name: _words(lp.template, plan.cfg) for lp in plan.layers}
        self._slots = {lp.name: _slots(lp, a) for lp in plan.layers if lp.work_slot}
        self._pix = {b.index: _tile_pixels(b.conv2.template) for b in plan.blocks}
        # Bottleneck conv1 runs on the same grid at the input resolution (tile * stride)
        self._pix_in = {b.index: _tile_pixels(b.conv1.template) for b in plan.blocks
                        if b.kind == "bottleneck"}
        self._stem = self._dense_run(-1, [plan.stem])
        self._tail = self._dense_run(-1, [plan.tail]) if plan.tail is not None else None

    # ---- helpers ----
    def _dense_macs(self, d: LayerDescriptor) -> int:
        per = 1 if d.depthwise else d.in_c       # a depthwise output reads one channel
        return d.conv_h * d.conv_w * d.out_c * per * d.k * d.k

    def _dense_run(self, block: int, layers: list[LayerPlan]) -> EngineRun:
        prog = b"".join(self._w[lp.name].tobytes() for lp in layers)
        works = [LayerWork(lp.name, lp.kind, self._dense_macs(lp.template),
                           lp.template.n_tiles, lp.template.out_c) for lp in layers]
        return EngineRun(block, prog, works)

    def stem(self) -> EngineRun:
        """The stem's run (dense; the same every image)."""
        return self._stem

    def tail(self) -> Optional[EngineRun]:
        """MobileNetV2's tail conv run (dense), None for networks without one."""
        return self._tail

    # ---- the block schedule ----
    def block(self, index: int, spatial: Optional[np.ndarray] = None,
              channel: Optional[np.ndarray] = None,
              channel2: Optional[np.ndarray] = None) -> EngineRun:
        """The run for block `index` under its gate decisions.

        spatial: bool [grid_h, grid_w] (or flat), channel: bool [C_out of conv1]; for a
        Bottleneck block channel2: bool [C_out of conv2] (mask_c2; None: all on).
        None for all means dense (every tile and channel on): the baseline.
        """
        bp: BlockPlan = self.plan.blocks[index]
        if bp.kind == "bottleneck":
            return self._bottleneck(bp, spatial, channel, channel2)
        if bp.kind == "inverted_residual":
            return self._inverted(bp, spatial, channel, channel2)
        if channel2 is not None:
            raise FormatError(f"block {bp.name}: a BasicBlock has no second channel mask")
        d1 = bp.conv1.template
        n_tiles = d1.n_tiles
        if spatial is None:
            sp = np.ones(n_tiles, dtype=bool)
        else:
            sp = np.asarray(spatial, dtype=bool).reshape(-1)
            if sp.size != n_tiles:
                raise FormatError(f"block {bp.name}: spatial mask has {sp.size} cells, the "
                                  f"grid has {bp.grid[0]}x{bp.grid[1]} = {n_tiles}")
        if channel is None:
            ch = np.ones(d1.out_c, dtype=bool)
        else:
            ch = np.asarray(channel, dtype=bool).reshape(-1)
            if ch.size != d1.out_c:
                raise FormatError(f"block {bp.name}: channel mask has {ch.size} entries, "
                                  f"conv1 has {d1.out_c} output channels")
        tiles = np.flatnonzero(sp).astype("<u2")
        chans = np.flatnonzero(ch).astype("<u2")
        nt, nc = tiles.size, chans.size
        pix = self._pix[index]
        act_pix = int(pix[tiles].sum()) if nt else 0
        words, works, writes = [], [], []

        if nt and nc:                                   # conv1
            lp = bp.conv1
            w = self._w[lp.name].copy()
            writes += _fill(w, d1, self._slots[lp.name], tiles, out_channels=chans)
            words.append(w)
            works.append(LayerWork(lp.name, lp.kind, act_pix * nc * d1.in_c * d1.k * d1.k,
                                   nt, nc))
        if bp.downsample is not None:                   # shortcut, dense
            lp = bp.downsample
            words.append(self._w[lp.name])
            works.append(LayerWork(lp.name, lp.kind, self._dense_macs(lp.template),
                                   lp.template.n_tiles, lp.template.out_c))
        if nt or not bp.identity:                       # conv2
            lp = bp.conv2
            d2 = lp.template
            w = self._w[lp.name].copy()
            res = None if bp.identity else np.flatnonzero(~sp).astype("<u2")
            writes += _fill(w, d2, self._slots[lp.name], tiles, res_tiles=res,
                            in_channels=chans)
            words.append(w)
            works.append(LayerWork(lp.name, lp.kind, act_pix * d2.out_c * nc * d2.k * d2.k,
                                   nt, nc))
        run = EngineRun(index, b"".join(w.astype("<u4").tobytes() for w in words), works,
                        writes)
        if self.validate:
            self.check(run)
        return run

    def _masks(self, bp: BlockPlan, spatial, channel, channel2):
        d1 = bp.conv1.template
        out = []
        for m, n, what in ((spatial, d1.n_tiles, f"spatial mask (grid {bp.grid[0]}x{bp.grid[1]})"),
                           (channel, d1.out_c, "channel mask (conv1's output channels)"),
                           (channel2, bp.conv2.template.out_c,
                            "channel2 mask (conv2's output channels)")):
            a = np.ones(n, bool) if m is None else np.asarray(m, dtype=bool).reshape(-1)
            if a.size != n:
                raise FormatError(f"block {bp.name}: {what} has {a.size} entries, expected {n}")
            out.append(a)
        return out

    def _bottleneck(self, bp: BlockPlan, spatial, channel, channel2) -> EngineRun:
        """A Bottleneck block's run (what its gate and gate-2 records generate): conv1 on
        the active tiles at the input resolution x mask_c1 channels (omitted when none);
        [shortcut, dense]; conv2 on the active tiles from the mask_c1 channels into the
        mask_c2 channels (omitted when no tile or no mask_c2 channel); conv3 on the active
        tiles from the mask_c2 channels + residual (residual-only tiles for projection
        blocks; in place and omitted without active tiles for identity blocks)."""
        sp, ch, ch2 = self._masks(bp, spatial, channel, channel2)
        tiles = np.flatnonzero(sp).astype("<u2")
        c1s = np.flatnonzero(ch).astype("<u2")
        c2s = np.flatnonzero(ch2).astype("<u2")
        nt, nc1, nc2 = tiles.size, c1s.size, c2s.size
        act_in = int(self._pix_in[bp.index][tiles].sum()) if nt else 0
        act = int(self._pix[bp.index][tiles].sum()) if nt else 0
        words, works, writes = [], [], []

        def add(lp, macs, n_ch, **lists):
            w = self._w[lp.name].copy()
            writes.extend(_fill(w, lp.template, self._slots[lp.name], tiles, **lists))
            words.append(w)
            works.append(LayerWork(lp.name, lp.kind, macs, nt, n_ch))

        d1, d2, d3 = bp.conv1.template, bp.conv2.template, bp.conv3.template
        if nt and nc1:
            add(bp.conv1, act_in * nc1 * d1.in_c * d1.k * d1.k, nc1, out_channels=c1s)
        if bp.downsample is not None:
            lp = bp.downsample
            words.append(self._w[lp.name])
            works.append(LayerWork(lp.name, lp.kind, self._dense_macs(lp.template),
                                   lp.template.n_tiles, lp.template.out_c))
        if nt and nc2:
            add(bp.conv2, act * nc2 * nc1 * d2.k * d2.k, nc2, in_channels=c1s,
                out_channels=c2s)
        if nt or not bp.identity:
            res = None if bp.identity else np.flatnonzero(~sp).astype("<u2")
            add(bp.conv3, act * d3.out_c * nc2 * d3.k * d3.k, nc2, res_tiles=res,
                in_channels=c2s)
        run = EngineRun(bp.index, b"".join(w.astype("<u4").tobytes() for w in words), works,
                        writes)
        if self.validate:
            self.check(run)
        return run

    def _inverted(self, bp: BlockPlan, spatial, channel, channel2) -> EngineRun:
        """A MobileNetV2 block's run (what its gate record generates; dense when ungated)."""
        if channel2 is not None:
            raise FormatError(f"block {bp.name}: a MobileNetV2 block has no second channel mask")
        if not bp.gated:
            if spatial is not None or channel is not None:
                raise FormatError(f"block {bp.name}: an ungated block takes no masks")
            return self._dense_run(bp.index, bp.convs)
        sp, ch, _ = self._masks(bp, spatial, channel, None)
        tiles = np.flatnonzero(sp).astype("<u2")
        chans = np.flatnonzero(ch).astype("<u2")
        nt, nc = tiles.size, chans.size
        act = int(self._pix[bp.index][tiles].sum()) if nt else 0
        words, works, writes = [], [], []

        def add(lp, macs, **lists):
            w = self._w[lp.name].copy()
            writes.extend(_fill(w, lp.template, self._slots[lp.name], tiles, **lists))
            words.append(w)
            works.append(LayerWork(lp.name, lp.kind, macs, nt, nc))

        d1, d2, d3 = bp.conv1.template, bp.conv2.template, bp.conv3.template
        if nt and nc:
            add(bp.conv1, act * nc * d1.in_c * d1.k * d1.k, out_channels=chans)
            add(bp.conv2, act * nc * d2.k * d2.k, out_channels=chans)
        if nt:
            add(bp.conv3, act * d3.out_c * nc * d3.k * d3.k, in_channels=chans)
        run = EngineRun(bp.index, b"".join(w.astype("<u4").tobytes() for w in words), works,
                        writes)
        if self.validate:
            self.check(run)
        return run

    def check(self, run: EngineRun) -> None:
        """Re-read a run as the engine does: every descriptor and work list validated."""
        work = np.zeros(self.plan.region_bytes["work"], dtype=np.uint8)
        for off, data in run.work_writes:
            work[off:off + data.size] = data
        for d in run.descriptors(self.plan.cfg):
            formats.validate_descriptor(d, self.plan.cfg, self.plan.region_bytes)
            formats.read_work_list(d, work)
