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
        self._stem = self._dense_run(-1, [plan.stem])

    # ---- helpers ----
    def _dense_macs(self, d: LayerDescriptor) -> int:
        return d.out_h * d.out_w * d.out_c * d.in_c * d.k * d.k if not d.maxpool else \
            d.conv_h * d.conv_w * d.out_c * d.in_c * d.k * d.k

    def _dense_run(self, block: int, layers: list[LayerPlan]) -> EngineRun:
        prog = b"".join(self._w[lp.name].tobytes() for lp in layers)
        works = [LayerWork(lp.name, lp.kind, self._dense_macs(lp.template),
                           lp.template.n_tiles, lp.template.out_c) for lp in layers]
        return EngineRun(block, prog, works)

    def stem(self) -> EngineRun:
        """The stem's run (dense; the same every image)."""
        return self._stem

    # ---- the block schedule ----
    def block(self, index: int, spatial: Optional[np.ndarray] = None,
              channel: Optional[np.ndarray] = None) -> EngineRun:
        """The run for block `index` under its gate decisions.

        spatial: bool [grid_h, grid_w] (or flat), channel: bool [C_out of conv1].
        None for both means dense (every tile and channel on): the baseline.
        """
        bp: BlockPlan = self.plan.blocks[index]
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

    def check(self, run: EngineRun) -> None:
        """Re-read a run as the engine does: every descriptor and work list validated."""
        work = np.zeros(self.plan.region_bytes["work"], dtype=np.uint8)
        for off, data in run.work_writes:
            work[off:off + data.size] = data
        for d in run.descriptors(self.plan.cfg):
            formats.validate_descriptor(d, self.plan.cfg, self.plan.region_bytes)
            formats.read_work_list(d, work)
