"""Pack a quantized model for the engine: memory plan, weight streams, descriptor templates.

numpy only (torch-free): the board runtime loads the result from the bundle.

`plan_network(qmodel, cfg)` lays the network out once, statically:

- **WEIGHT** region: per layer its weight stream (gated dimension outermost, see
  `formats.pack_weights`) and its per-channel params (bias int32, mult int32).
- **FMAP** region: one HWC buffer per tensor (the s8 input image, the stem output, per block
  the compact conv1 buffer, the shortcut output and the block output). An identity block
  (tied scales) writes its output *in place* over its input, so a stage of identity blocks
  shares one buffer and inactive tiles cost nothing.
- **SUMS** region: per block-input tensor an int32 `[tile][C]` buffer of per-tile channel
  sums, written by the layer that produces the tensor, aliased through in-place blocks.
- **WORK** region: per gated layer a fixed slot large enough for its densest work list
  (the engine's gate records, or the scheduler in the per-block flow, fill it per image).
  First in WORK, as one span the host invalidates once per image (`NetworkPlan.readback`):
  the head's int64 logits, the per-record cycle log and per block a mask slot.
- **WEIGHT** also holds per block the gate parameter blob (`program.pack_gate_params`) and
  the head's int8 fc + int32 bias (`program.pack_head_params`).

Each layer gets a *template* descriptor with every static field and offset set; the
scheduler (`dgfpga.runtime.scheduler`) only fills counts, flags and work-list offsets per
image (the per-block flow: one engine start per block). The *network program*
(`NetworkPlan.program`) runs a whole image in one start: stem, per block a gate record
(`program.GateRecord`), conv1, [shortcut], conv2 as `from_gate` templates whose list
offsets point at their slot sections, then the head (`program.HeadRecord`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from dgfpga.contract import formats
from dgfpga.contract import program as prog
from dgfpga.contract.engine_config import EngineConfig, default_config
from dgfpga.errors import ConfigError, FormatError
from dgfpga.contract.formats import LayerDescriptor
from dgfpga.numerics import gates
from dgfpga.numerics.qmodel import INPUT_TENSOR, QConv, QModel

__all__ = ["Buffer", "LayerPlan", "BlockPlan", "NetworkPlan", "RecordPlan", "plan_network",
           "program_template"]


@dataclass(frozen=True)
class Buffer:
    """A byte range of one region."""
    region: str
    offset: int
    nbytes: int


@dataclass
class LayerPlan:
    """One engine layer of the network: its template descriptor and work-list slot."""
    name: str
    kind: str                     # "stem" | "conv1" | "downsample" | "conv2"
    block: int                    # block index (-1 for the stem)
    template: LayerDescriptor     # dense, all static offsets filled
    work_slot: Optional[Buffer]   # WORK slot for its per-image lists (None: dense layer)
    # the network program's record of the layer: `template` for a dense layer, else the
    # from_gate template (program_template)
    program_template: Optional[LayerDescriptor] = None


@dataclass(frozen=True)
class RecordPlan:
    """One record of the network program."""
    name: str
    kind: str                     # "stem" | "gate" | "conv1" | "downsample" | "conv2" | "head"
    block: int                    # block index (-1 for the stem and the head)


@dataclass
class BlockPlan:
    """Layers and buffers of one gated block."""
    index: int
    name: str
    conv1: LayerPlan
    downsample: Optional[LayerPlan]
    conv2: LayerPlan
    identity: bool                # in place: output buffer == input buffer
    tile: int
    grid: tuple[int, int]
    in_tensor: str
    out_tensor: str
    in_sums: Buffer               # per-tile sums of the block input (for its gates)
    out_sums: Buffer              # per-tile sums of the block output (written by conv2)
    in_sums_tile: int             # tile size those input sums were emitted at
    gate_params: Optional[Buffer] = None    # WEIGHT: the gate parameter blob
    mask: Optional[Buffer] = None           # WORK: the masks the gate record writes
    gate_record: Optional[prog.GateRecord] = None


@dataclass
class NetworkPlan:
    """The static layout of a quantized network on one engine configuration."""
    cfg: EngineConfig
    qmodel: QModel
    region_bytes: dict            # name -> bytes
    weight_image: np.ndarray      # uint8, the whole WEIGHT region
    fmap: dict                    # tensor name -> Buffer
    sums: dict                    # tensor name -> (Buffer, tile, grid)
    stem: LayerPlan
    blocks: list[BlockPlan]
    input_tensor: str = INPUT_TENSOR
    program: bytes = b""          # the network program: record_count records
    records: list = dataclasses.field(default_factory=list)   # RecordPlan per record
    head_record: Optional[prog.HeadRecord] = None
    head_params: Optional[Buffer] = None    # WEIGHT: int8 W, int32 bias
    logits: Optional[Buffer] = None         # WORK: int64 [classes]
    cycle_log: Optional[Buffer] = None      # WORK: u32 [record_count]
    readback: Optional[Buffer] = None       # WORK: logits + cycle log + masks, one span

    @property
    def record_count(self) -> int:
        return len(self.records)

    @property
    def masks(self) -> list:
        """Per block: the WORK buffer of its masks (`program.decode_masks`)."""
        return [b.mask for b in self.blocks]

    def check_program(self) -> None:
        """ConfigError if the network program is longer than the engine runs in one start."""
        if self.record_count > self.cfg.max_layers:
            raise ConfigError(f"the network program has {self.record_count} records, engine "
                              f"'{self.cfg.name}' runs at most max_layers={self.cfg.max_layers} "
                              "per start")

    @property
    def layers(self) -> list[LayerPlan]:
        out = [self.stem]
        for b in self.blocks:
            out += [b.conv1] + ([b.downsample] if b.downsample else []) + [b.conv2]
        return out


class _Allocator:
    """Bump allocator of one region; every buffer aligned to the AXI beat."""

    def __init__(self, region: str, align: int):
        self.region, self.align, self.pos = region, align, 0

    def take(self, nbytes: int) -> Buffer:
        buf = Buffer(self.region, self.pos, nbytes)
        self.pos += -(-max(nbytes, 1) // self.align) * self.align
        return buf


def _tensor_hwc(qm: QModel, name: str) -> tuple[int, int, int]:
    c, h, w = qm.tensors[name].shape
    return h, w, c


def _slot_bytes(n_tiles: int, c_out: int, c_in: int, align: int) -> int:
    """Worst-case WORK bytes of one layer (every section present, each aligned)."""
    def up(n: int) -> int:
        return -(-n // align) * align
    return (2 * up(2 * n_tiles) + up(2 * c_out) + up(2 * c_in)
            + up(formats.bitmap_bytes(n_tiles)))


def _block_gates(b, in_c: int):
    """The block's integer gates; for a shape-only model (`perf.netshapes.shape_qmodel`, no
    gate parameters) zero gates of DGNet's shapes (hidden = C_in/4), so its program has the
    real layout."""
    if b.spatial_gate is not None and b.channel_gate is not None:
        return b.spatial_gate, b.channel_gate
    import types
    hid, out_c = max(in_c // 4, 1), b.conv1.out_channels
    z16 = np.zeros
    sg = types.SimpleNamespace(weight=z16((in_c, 3, 3), np.int16), bias=0)
    cg = types.SimpleNamespace(w1=z16((hid, in_c), np.int16), m1=z16(hid, np.int32),
                               o1=z16(hid, np.int64), shift=1, w2=z16((out_c, hid), np.int16),
                               b2=z16(out_c, np.int64))
    return sg, cg


def program_template(d: LayerDescriptor, slots: formats.WorkSlots) -> LayerDescriptor:
    """The from_gate template of a gated layer: dense counts, every work-list offset set to
    its slot section (`formats.work_slots`), the residual-only list's section for a residual
    layer that is not in place (n_res_tiles 0: the gate record's counts set it)."""
    ch = dict(from_gate=True, n_res_tiles=0,
              tile_list_offset=slots.tiles if d.tile_gated else 0,
              res_tile_list_offset=slots.res_tiles if (d.residual and not d.in_place) else 0,
              out_ch_list_offset=slots.out_ch if d.out_ch_gated else 0,
              in_ch_list_offset=slots.in_ch if d.in_ch_gated else 0,
              bitmap_offset=slots.bitmap if d.zero_halo else 0)
    return d.replace(**ch)


def plan_network(qm: QModel, cfg: Optional[EngineConfig] = None, *,
                 im2col: bool = True) -> NetworkPlan:
    """Lay out `qm` for engine `cfg`. Raises ConfigError when a layer does not fit.

    `im2col`: set the descriptor flag on the layers where `formats.choose_im2col` says it
    takes fewer MAC-array steps (the stem); False lays every layer out without it."""
    cfg = cfg or default_config()
    other = sorted({b.kind for b in qm.blocks} - {"basic"})
    if other:
        raise ConfigError(f"{qm.arch}: the engine runs BasicBlock networks; this model has "
                          f"{', '.join(other)} blocks, which the quantizer and the golden model "
                          f"support but the engine levels do not yet (run it with the golden "
                          f"model: dgfpga qreport)")
    a = cfg.axi_bytes
    fm, wt, wk, sm = (_Allocator(r, a) for r in ("fmap", "weight", "work", "sums"))
    weights: list[tuple[int, bytes]] = []
    fmap: dict[str, Buffer] = {}
    sums: dict[str, tuple] = {}

    def fmap_buf(name: str) -> Buffer:
        if name not in fmap:
            h, w, c = _tensor_hwc(qm, name)
            fmap[name] = fm.take(h * w * c)
        return fmap[name]

    def sums_buf(name: str, tile: int) -> Buffer:
        h, w, c = _tensor_hwc(qm, name)
        grid = (-(-h // tile), -(-w // tile))
        buf = sm.take(grid[0] * grid[1] * c * formats.SUM_BYTES)
        sums[name] = (buf, tile, grid)
        return buf

    def put_weights(conv: QConv, layout: str) -> tuple[int, int]:
        wbytes = formats.pack_weights(conv.weight, layout, tn=cfg.tn)
        w = wt.take(len(wbytes))
        weights.append((w.offset, wbytes))
        p = wt.take(conv.out_channels * formats.PARAM_BYTES)
        weights.append((p.offset, formats.pack_params(conv.bias, conv.mult)))
        return w.offset, p.offset

    def template(conv: QConv, in_name: str, tile: int, *, maxpool=False,
                 layout="oc_k_k_ic", in_offset=None, in_signed=None,
                 **kw) -> LayerDescriptor:
        """Dense template of `conv` reading tensor `in_name` (or the buffer at in_offset)."""
        h, w, _ = _tensor_hwc(qm, in_name)
        if in_offset is None:
            in_offset = fmap_buf(in_name).offset
        if in_signed is None:
            in_signed = qm.tensors[in_name].signed
        try:
            d = formats.make_descriptor(
                k=conv.kernel, stride=conv.stride, pad=conv.pad, in_h=h, in_w=w,
                in_c=conv.in_channels, out_c=conv.out_channels, tile=tile, maxpool=maxpool,
                in_signed=in_signed, out_signed=conv.lo < 0, shift=conv.shift,
                in_offset=in_offset, **kw)
        except TypeError as exc:  # pragma: no cover - programming error
            raise FormatError(f"layer {conv.name}: {exc}") from None
        # im2col where it takes fewer MAC-array steps (in practice: the few-channel stem)
        if im2col and formats.choose_im2col(d, cfg):
            d, layout = d.replace(im2col=True), "im2col"
        w_off, p_off = put_weights(conv, layout)
        return d.replace(weight_offset=w_off, param_offset=p_off)

    if not qm.blocks:
        raise FormatError("quantized model has no blocks: nothing for the engine to gate")
    # ---- stem: dense; emits sums at the first block's tile size (its gates' bins).
    first = qm.blocks[0]
    stem_conv = qm.stem.conv
    fmap_buf(INPUT_TENSOR)
    out0 = fmap_buf(qm.stem.out_tensor)
    s0 = sums_buf(qm.stem.out_tensor, first.tile)
    stem_t = template(stem_conv, INPUT_TENSOR, first.tile,
                      maxpool=qm.stem.maxpool, out_offset=out0.offset,
                      emit_sums=True, sums_offset=s0.offset)
    stem = LayerPlan(stem_conv.name, "stem", -1, stem_t, None)

    # ---- what the host reads back after a start, first in WORK and contiguous (one cache
    # invalidate per image): the head's logits and cycle log, then every block's masks.
    n_records = 2 + sum(3 + (b.downsample is not None) for b in qm.blocks)
    logits = wk.take(8 * qm.num_classes)
    log = wk.take(prog.cycle_log_bytes(n_records))
    masks = []
    for b in qm.blocks:             # b.grid: checked against the output size in the loop below
        masks.append(wk.take(prog.mask_bytes(b.grid[0] * b.grid[1], b.conv1.out_channels)))
    readback = Buffer("work", 0, wk.pos)

    blocks: list[BlockPlan] = []
    for i, b in enumerate(qm.blocks):
        c1, c2, ds = b.conv1, b.conv2, b.downsample
        h, w, _ = _tensor_hwc(qm, b.out_tensor)
        grid = (-(-h // b.tile), -(-w // b.tile))
        if tuple(grid) != tuple(b.grid):
            raise FormatError(f"block {b.name}: grid {b.grid} is not ceil({h}x{w} / tile "
                              f"{b.tile}) = {grid}")
        n_tiles = grid[0] * grid[1]
        in_sums, in_tile, _ = sums[b.in_tensor]
        # conv1: gated tiles x gated output channels, compact output.
        compact = fm.take(h * w * c1.out_channels)
        c1_t = template(c1, b.in_tensor, b.tile, out_offset=compact.offset,
                        tile_gated=True, out_ch_gated=True)
        conv1 = LayerPlan(c1.name, "conv1", i, c1_t,
                          wk.take(_slot_bytes(n_tiles, c1.out_channels, 0, a)))
        # shortcut: dense 1x1 (signed output).
        down = None
        if ds is not None:
            ds_out = fmap_buf(ds.out_tensor)
            ds_t = template(ds, b.in_tensor, b.tile, out_offset=ds_out.offset)
            down = LayerPlan(ds.name, "downsample", i, ds_t, None)
            res_name = ds.out_tensor
        else:
            res_name = b.in_tensor
        # conv2: gated tiles, compact input, residual, sums; in place for identity blocks.
        if b.identity:
            if b.in_tensor in fmap and _tensor_hwc(qm, b.in_tensor) != (h, w, c2.out_channels):
                raise FormatError(f"block {b.name}: identity block changes the tensor shape")
            fmap[b.out_tensor] = fmap[b.in_tensor]
            if in_tile != b.tile:
                raise FormatError(f"block {b.name}: in place needs the input sums at tile "
                                  f"{b.tile}, they are at {in_tile}")
            sums[b.out_tensor] = sums[b.in_tensor]
            out_sums = in_sums
        else:
            out_sums = sums_buf(b.out_tensor, b.tile)
        out_buf = fmap_buf(b.out_tensor)
        tres = qm.tensors[res_name]
        # conv2 reads the compact conv1 buffer (u8), a buffer of no tensor of its own.
        c2_t = template(c2, b.out_tensor, b.tile, layout="ic_k_k_oc",
                        in_offset=compact.offset, in_signed=False, out_offset=out_buf.offset, residual=True, res_signed=tres.signed,
                        res_mult=int(c2.res_mult), res_offset=fmap[res_name].offset,
                        tile_gated=True, in_ch_gated=True, zero_halo=True,
                        in_place=b.identity, emit_sums=True, sums_offset=out_sums.offset)
        conv2 = LayerPlan(c2.name, "conv2", i, c2_t,
                          wk.take(_slot_bytes(n_tiles, 0, c2.in_channels, a)))
        # the network program's parts: gate params, mask slot, from_gate templates
        hi, wi, ci = _tensor_hwc(qm, b.in_tensor)
        table = gates.bin_table(hi, wi, in_tile, grid)
        sg, cg = _block_gates(b, ci)
        gp_blob = prog.pack_gate_params(table, sg, cg, a)
        gp = wt.take(len(gp_blob))
        weights.append((gp.offset, gp_blob))
        mask = masks[i]
        s1 = formats.work_slots(c1_t, conv1.work_slot.offset, a)
        s2 = formats.work_slots(conv2.template, conv2.work_slot.offset, a)
        conv1.program_template = program_template(c1_t, s1)
        conv2.program_template = program_template(conv2.template, s2)
        if down is not None:
            down.program_template = down.template
        st = sums[b.in_tensor][2]
        rec = prog.GateRecord(
            in_c=ci, out_c=c1.out_channels, hidden=int(cg.w1.shape[0]), h_shift=int(cg.shift), st_h=st[0], st_w=st[1], gh=grid[0], gw=grid[1],
            res_list=not b.identity, sums_offset=in_sums.offset, param_offset=gp.offset,
            mask_offset=mask.offset, c1_tiles_offset=s1.tiles, c1_out_ch_offset=s1.out_ch,
            c2_tiles_offset=s2.tiles, c2_res_tiles_offset=0 if b.identity else s2.res_tiles,
            c2_in_ch_offset=s2.in_ch, c2_bitmap_offset=s2.bitmap)
        blocks.append(BlockPlan(i, b.name, conv1, down, conv2, b.identity, b.tile, grid,
                                b.in_tensor, b.out_tensor, in_sums, out_sums, in_tile,
                                gate_params=gp, mask=mask, gate_record=rec))
    stem.program_template = stem.template

    # ---- head: params in WEIGHT; logits and the cycle log in WORK.
    records = [RecordPlan(stem.name, "stem", -1)]
    for bp in blocks:
        records.append(RecordPlan(f"{bp.name}.gate", "gate", bp.index))
        for lp in (bp.conv1, bp.downsample, bp.conv2):
            if lp is not None:
                records.append(RecordPlan(lp.name, lp.kind, bp.index))
    h = qm.head
    records.append(RecordPlan(h.name, "head", -1))
    last_sums, _, last_grid = sums[blocks[-1].out_tensor]
    classes, c_last = np.asarray(h.weight).shape
    hp_blob = prog.pack_head_params(h.weight, h.bias, a)
    hp = wt.take(len(hp_blob))
    weights.append((hp.offset, hp_blob))
    if len(records) != n_records:  # pragma: no cover - the pre-pass and the loop disagree
        raise FormatError(f"packer: {len(records)} records, the readback area has {n_records}")
    head = prog.HeadRecord(in_c=c_last, classes=classes, st_h=last_grid[0], st_w=last_grid[1],
                           sums_offset=last_sums.offset, param_offset=hp.offset,
                           logits_offset=logits.offset, log_offset=log.offset)

    region_bytes = {"fmap": fm.pos, "weight": wt.pos, "work": wk.pos, "sums": sm.pos}
    image = np.zeros(wt.pos, dtype=np.uint8)
    for off, blob in weights:
        image[off:off + len(blob)] = np.frombuffer(blob, dtype=np.uint8)
    plan = NetworkPlan(cfg, qm, region_bytes, image, fmap, sums, stem, blocks,
                       records=records, head_record=head, head_params=hp, logits=logits,
                       cycle_log=log, readback=readback)
    _check_fits(plan)
    plan.program = _pack_program(plan)
    return plan


def _pack_program(plan: NetworkPlan) -> bytes:
    """The records of the network program, each checked as the engine checks it."""
    cfg, rb = plan.cfg, plan.region_bytes
    out = [formats.pack_descriptor(plan.stem.program_template, cfg)]
    for bp in plan.blocks:
        out.append(prog.pack_gate_record(bp.gate_record, cfg))
        prog.validate_gate_record(bp.gate_record, cfg, rb)
        for lp in (bp.conv1, bp.downsample, bp.conv2):
            if lp is not None:
                out.append(formats.pack_descriptor(lp.program_template, cfg))
    prog.validate_head_record(plan.head_record, cfg, rb, plan.record_count)
    out.append(prog.pack_head_record(plan.head_record, cfg))
    return b"".join(out)


def _check_fits(plan: NetworkPlan) -> None:
    """Every template must pass the format checks and fit the engine's buffers."""
    for lp in plan.layers:
        try:
            formats.validate_descriptor(lp.template, plan.cfg, plan.region_bytes)
            formats.validate_descriptor(lp.program_template, plan.cfg, plan.region_bytes)
        except FormatError as exc:
            raise ConfigError(f"layer {lp.name} does not fit engine '{plan.cfg.name}': {exc}. "
                              "Use a larger engine configuration (e.g. --config ultra96).") from None
