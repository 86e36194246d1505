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
offsets point at their slot sections, then the head (`program.HeadRecord`). A Bottleneck
block (resdg50) runs gate record, conv1 (1x1 at the block input's resolution, tile = tile *
stride on the same grid, compact output and compact sums), gate-2 record
(`program.Gate2Record`: mask_c2), [shortcut], conv2 (3x3, gated on both sides) and conv3
(1x1, residual; in place for identity blocks). A MobileNetV2 (mobilenet_v2_dg) runs its
ungated blocks as dense layers ([expand,] depthwise, projection) and its gated (identity)
blocks as gate record, expand (1x1, compact output), depthwise (op OP_DWCONV, gated on both
sides by mask_c, zero_halo) and projection (1x1, residual, in place), then the tail conv and
the head; a gate whose pooling bins are not unions of the writer's tiles (7x7 maps) reads
per-pixel sums (`pixel_sums`). docs/formats.md "Depthwise layers and MobileNetV2".
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
           "start_regions",
           "program_template", "block_mask_layout"]


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
    kind: str                     # "stem" | "conv1" | "downsample" | "conv2" | "conv3" | "tail"
    block: int                    # block index (-1 for the stem)
    template: LayerDescriptor     # dense, all static offsets filled
    work_slot: Optional[Buffer]   # WORK slot for its per-image lists (None: dense layer)
    # the network program's record of the layer: `template` for a dense layer, else the
    # from_gate template (program_template)
    program_template: Optional[LayerDescriptor] = None
    # where its work-list sections are (formats.work_slots of work_slot, except a
    # Bottleneck conv3, whose tile list is conv2's): what the gate records and the
    # scheduler write
    slots: Optional[formats.WorkSlots] = None


@dataclass(frozen=True)
class RecordPlan:
    """One record of the network program."""
    name: str
    kind: str                     # "stem" | "gate" | "conv1" | "gate2" | "downsample" | "conv2"
                                  # | "conv3" | "tail" | "head"
    block: int                    # block index (-1 for the stem and the head)


@dataclass
class BlockPlan:
    """Layers and buffers of one block (gated; a MobileNetV2 block may be ungated: no gate
    record, mask or sums, dense layers, conv1 None without an expansion)."""
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
    # Bottleneck blocks (kind "bottleneck"): conv1 runs at the block input's resolution
    # (tile = tile * stride, the same grid), conv2 is gated on both sides, conv3 writes
    # the block output; the gate-2 record decides conv2's output channels (mask_c2)
    kind: str = "basic"
    conv3: Optional[LayerPlan] = None
    gate2_record: Optional[prog.Gate2Record] = None
    gate2_params: Optional[Buffer] = None   # WEIGHT: the gate-2 parameter blob
    conv1_sums: Optional[Buffer] = None     # SUMS: conv1's compact per-tile sums

    @property
    def gated(self) -> bool:
        return self.gate_record is not None

    @property
    def last(self) -> LayerPlan:
        """The layer that writes the block output (with the residual)."""
        return self.conv3 if self.conv3 is not None else self.conv2

    @property
    def convs(self) -> list:
        """The block's layers in program order (conv1, [shortcut], conv2[, conv3])."""
        return [lp for lp in (self.conv1, self.downsample, self.conv2, self.conv3)
                if lp is not None]


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
    tail: Optional[LayerPlan] = None        # MobileNetV2's final 1x1 conv (dense)

    @property
    def pending(self) -> bool:
        """The program uses what the engines do not implement yet (formats.PENDING_OPS /
        PENDING_FIELDS: the depthwise op, pixel_sums); run it with the interpreter's
        `pending=True`."""
        return any(lp.template.op in formats.PENDING_OPS
                   or any(getattr(lp.template, f) for f in formats.PENDING_FIELDS)
                   for lp in self.layers)

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
            out += b.convs
        return out + ([self.tail] if self.tail is not None else [])


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


def _zero_channel_gate(in_c: int, out_c: int):
    import types
    hid = max(in_c // 4, 1)
    z = np.zeros
    return types.SimpleNamespace(w1=z((hid, in_c), np.int16), m1=z(hid, np.int32),
                                 o1=z(hid, np.int64), shift=1, w2=z((out_c, hid), np.int16),
                                 b2=z(out_c, np.int64))


def _block_gates(b, in_c: int):
    """The block's integer gates; for a shape-only model (`perf.netshapes.shape_qmodel`, no
    gate parameters) zero gates of DGNet's shapes (hidden = C_in/4), so its program has the
    real layout."""
    if b.spatial_gate is not None and b.channel_gate is not None:
        return b.spatial_gate, b.channel_gate
    import types
    sg = types.SimpleNamespace(weight=np.zeros((in_c, 3, 3), np.int16), bias=0)
    return sg, _zero_channel_gate(in_c, b.conv1.out_channels)


def _block_gate2(b):
    """A Bottleneck block's mask_c2 gate (zero gate of DGNet's shape for shape-only models)."""
    if b.channel_gate2 is not None:
        return b.channel_gate2
    return _zero_channel_gate(b.conv1.out_channels, b.conv2.out_channels)


def _gated(b) -> bool:
    """Whether the engine gates block `b`: every BasicBlock / Bottleneck block (a shape-only
    model's too, whose gates are zero gates), a MobileNetV2 block when it has a tile grid
    (its identity blocks; the others have tile 0)."""
    return b.kind != "inverted_residual" or b.tile > 0


def block_mask_layout(n_tiles: int, c1: int, c2: Optional[int], align: int) -> tuple:
    """(bytes, offset of the mask_c2 bitmap or None) of a block's WORK mask buffer: the gate
    record's masks (tile bitmap, channel bitmap: `program.mask_bytes`), then for a
    Bottleneck block (c2 = conv2's output channels) the gate-2 record's mask_c2 bitmap at
    the next multiple of `align`."""
    m = prog.mask_bytes(n_tiles, c1)
    if c2 is None:
        return m, None
    off = -(-m // align) * align
    return off + formats.bitmap_bytes(c2), off


def _block_mask_bytes(b, align: int) -> int:
    """WORK bytes of a gated block's masks."""
    c2 = b.conv2.out_channels if b.kind == "bottleneck" else None
    return block_mask_layout(b.grid[0] * b.grid[1], b.conv1.out_channels, c2, align)[0]


def _check_input_tiles(b, hi: int, wi: int, t1: int) -> None:
    """conv1 of a Bottleneck block runs on the block's grid at the input resolution with
    tile side t1 (= tile * stride): the golden model's mask_s1 (the grid nearest-upsampled
    to the input) must be exactly that tiling, else the engine would gate other pixels."""
    gh, gw = b.grid
    for size, g, what in ((hi, gh, "rows"), (wi, gw, "columns")):
        ours = np.arange(size) // t1
        if -(-size // t1) != g or not np.array_equal(gates.nearest_source_index(size, g), ours):
            raise ConfigError(f"block {b.name}: mask_s1 upsampled to the {hi}x{wi} input is not "
                              f"a tiling by {t1}-pixel tiles of the {gh}x{gw} grid ({what}); "
                              "the engine cannot gate conv1 on it")


def program_template(d: LayerDescriptor, slots: formats.WorkSlots) -> LayerDescriptor:
    """The from_gate template of a gated layer: dense counts, every work-list offset set to
    its slot section (`formats.work_slots`), the residual-only list's section for a residual
    layer that is not in place (n_res_tiles 0: the gate record's counts set it)."""
    ch = dict(from_gate=True, n_res_tiles=0,
              tile_list_offset=slots.tiles if d.tile_gated else 0,
              res_tile_list_offset=slots.res_tiles if (d.residual and not d.in_place) else 0,
              out_ch_list_offset=slots.out_ch if d.out_ch_gated else 0,
              in_ch_list_offset=slots.in_ch if d.in_ch_gated and not d.depthwise else 0,
              bitmap_offset=slots.bitmap if d.zero_halo else 0)
    return d.replace(**ch)


def start_regions(plan: "NetworkPlan", image_int8: np.ndarray) -> dict:
    """The four regions of one engine start of `plan` for one image: WEIGHT as packed, the
    int8 input [C, H, W] in its FMAP buffer (HWC bytes), everything else zero."""
    mem = {k: np.zeros(v, np.uint8) for k, v in plan.region_bytes.items()}
    mem["weight"][:] = plan.weight_image
    ib = plan.fmap[plan.input_tensor]
    mem["fmap"][ib.offset:ib.offset + ib.nbytes] = \
        np.ascontiguousarray(np.moveaxis(np.asarray(image_int8, np.int8), 0, -1)
                             ).view(np.uint8).reshape(-1)
    return mem


def plan_network(qm: QModel, cfg: Optional[EngineConfig] = None, *,
                 im2col: bool = True) -> NetworkPlan:
    """Lay out `qm` for engine `cfg`. Raises ConfigError when a layer does not fit.

    `im2col`: set the descriptor flag on the layers where `formats.choose_im2col` says it
    takes fewer MAC-array steps (the stem); False lays every layer out without it."""
    cfg = cfg or default_config()
    other = sorted({b.kind for b in qm.blocks} - {"basic", "bottleneck", "inverted_residual"})
    if other:
        raise ConfigError(f"{qm.arch}: the engine runs BasicBlock, Bottleneck and MobileNetV2 "
                          f"(inverted residual) networks; this model has {', '.join(other)} "
                          f"blocks")
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
        wbytes = formats.pack_weights(conv.weight, layout, tn=cfg.tn, tm=cfg.tm)
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
    mobile = any(b.kind == "inverted_residual" for b in qm.blocks)
    # the tensors a gate reads its sums from: (tile, grid) of the first gated block reading it
    gate_input: dict = {}
    for b in qm.blocks:
        if _gated(b) and b.in_tensor not in gate_input:
            gate_input[b.in_tensor] = (b.tile, tuple(b.grid))

    def sums_tile_for(name: str, writer_tile: int) -> Optional[int]:
        """The sum-tile side the writer of tensor `name` (output tile `writer_tile`) emits
        for the gate that reads it: its own tile when that is the gate's tile and the
        gate's pooling bins are unions of those tiles, else 1 (one sum per pixel:
        `pixel_sums`, which every bin is a union of); None when no gate reads `name`."""
        if name not in gate_input:
            return None
        h, w, _ = _tensor_hwc(qm, name)
        tile, grid = gate_input[name]
        if writer_tile == tile:
            try:
                gates.bin_table(h, w, writer_tile, grid)
                return writer_tile
            except FormatError:
                pass
        return 1

    def dense_tile(conv: QConv, in_name: str, op: int, prefer: Optional[int]) -> int:
        """The tile of a dense layer: `prefer` (the tile of the gate reading its output) if
        the layer fits with it, else the largest that fits (max_grid, buffers)."""
        h, w, _ = _tensor_hwc(qm, in_name)
        cands = ([prefer] if prefer else []) + list(range(cfg.max_tile, 0, -1))
        for t in cands:
            d = formats.make_descriptor(k=conv.kernel, stride=conv.stride, pad=conv.pad,
                                        in_h=h, in_w=w, in_c=conv.in_channels,
                                        out_c=conv.out_channels, tile=t, op=op)
            if max(d.grid_h, d.grid_w) <= cfg.max_grid and not formats.layer_fit_problems(d, cfg):
                return t
        return cands[-1]                    # does not fit: _check_fits names the problem

    def plan_dense(conv: QConv, kind: str, block: int, in_name: str) -> LayerPlan:
        """A dense layer (MobileNetV2: the stem, ungated blocks' convs, the tail) writing
        tensor conv.out_tensor, with the sums a gate or the head reads from it."""
        op = formats.OP_DWCONV if conv.groups > 1 else formats.OP_CONV
        if conv.groups > 1 and (conv.groups != conv.in_channels
                                or conv.groups != conv.out_channels):
            raise ConfigError(f"layer {conv.name}: the engine runs grouped convs only as "
                              f"depthwise (groups = channels), not {conv.groups} groups")
        name = conv.out_tensor
        prefer = gate_input[name][0] if name in gate_input else None
        t = dense_tile(conv, in_name, op, prefer)
        st = t if name == qm.head.in_tensor else sums_tile_for(name, t)
        extra = {}
        if st is not None:
            sb = sums_buf(name, st)
            extra = dict(emit_sums=True, pixel_sums=st != t, sums_offset=sb.offset)
        d = template(conv, in_name, t, out_offset=fmap_buf(name).offset, op=op,
                     layout="dw" if op == formats.OP_DWCONV else "oc_k_k_ic", **extra)
        lp = LayerPlan(conv.name, kind, block, d, None)
        lp.program_template = d
        return lp

    # ---- stem: dense; emits sums at the first block's tile size (its gates' bins).
    first = qm.blocks[0]
    stem_conv = qm.stem.conv
    fmap_buf(INPUT_TENSOR)
    if mobile:
        stem = plan_dense(stem_conv, "stem", -1, INPUT_TENSOR)
    else:
        out0 = fmap_buf(qm.stem.out_tensor)
        s0 = sums_buf(qm.stem.out_tensor, first.tile)
        stem_t = template(stem_conv, INPUT_TENSOR, first.tile,
                          maxpool=qm.stem.maxpool, out_offset=out0.offset,
                          emit_sums=True, sums_offset=s0.offset)
        stem = LayerPlan(stem_conv.name, "stem", -1, stem_t, None)

    # ---- what the host reads back after a start, first in WORK and contiguous (one cache
    # invalidate per image): the head's logits and cycle log, then every block's masks.
    def block_records(b) -> int:
        if b.kind == "inverted_residual":
            return len(b.main_convs) + _gated(b)
        return (5 if b.kind == "bottleneck" else 3) + (b.downsample is not None)
    n_records = 2 + sum(block_records(b) for b in qm.blocks) + (qm.tail is not None)
    logits = wk.take(8 * qm.num_classes)
    log = wk.take(prog.cycle_log_bytes(n_records))
    masks = []
    for b in qm.blocks:             # b.grid: checked against the output size in the loop below
        masks.append(wk.take(_block_mask_bytes(b, a)) if _gated(b) else None)
    readback = Buffer("work", 0, wk.pos)

    def plan_shortcut(i: int, b, ds) -> tuple:
        """(LayerPlan or None, residual tensor name) of a block's shortcut: the dense 1x1
        projection (signed output; its program record is its template), or the block input."""
        if ds is None:
            return None, b.in_tensor
        ds_t = template(ds, b.in_tensor, b.tile, out_offset=fmap_buf(ds.out_tensor).offset)
        down = LayerPlan(ds.name, "downsample", i, ds_t, None)
        down.program_template = ds_t
        return down, ds.out_tensor

    def plan_bottleneck(i: int, b, grid: tuple, mask: Buffer) -> BlockPlan:
        """A Bottleneck block: gate, conv1 (1x1 at the input resolution, tile * stride,
        compact output + compact sums), gate 2, [shortcut], conv2 (3x3, in- and
        out-channel gated, compact output), conv3 (1x1, in-channel gated, residual, sums;
        in place for identity blocks)."""
        c1, c2, c3, ds = b.conv1, b.conv2, b.conv3, b.downsample
        h, w, _ = _tensor_hwc(qm, b.out_tensor)
        hi, wi, ci = _tensor_hwc(qm, b.in_tensor)
        n_tiles = grid[0] * grid[1]
        in_sums, in_tile, st = sums[b.in_tensor]
        if (c1.kernel, c1.stride, c3.kernel, c3.stride) != (1, 1, 1, 1) or \
                c2.kernel != 3 or c2.pad != 1:
            raise ConfigError(f"block {b.name}: the engine runs Bottleneck blocks of 1x1 -> "
                              f"3x3 (pad 1, stride on conv2) -> 1x1 convs")
        t1 = b.tile * c2.stride
        _check_input_tiles(b, hi, wi, t1)
        # conv1: gated tiles (at the input resolution) x mask_c1 channels, compact output,
        # compact per-tile sums for the gate-2 record
        compact1 = fm.take(hi * wi * c1.out_channels)
        sums1 = sm.take(n_tiles * c1.out_channels * formats.SUM_BYTES)
        c1_t = template(c1, b.in_tensor, t1, out_offset=compact1.offset, tile_gated=True,
                        out_ch_gated=True, emit_sums=True, sums_offset=sums1.offset)
        conv1 = LayerPlan(c1.name, "conv1", i, c1_t,
                          wk.take(_slot_bytes(n_tiles, c1.out_channels, 0, a)))
        down, res_name = plan_shortcut(i, b, ds)
        # conv2: gated tiles, mask_c1 in (compact conv1 buffer, halo through the bitmap at
        # tile * stride input pixels), mask_c2 out (compact)
        compact2 = fm.take(h * w * c2.out_channels)
        c2_t = template(c2, c1.out_tensor, b.tile, in_offset=compact1.offset, in_signed=False,
                        out_offset=compact2.offset, tile_gated=True, in_ch_gated=True,
                        out_ch_gated=True, zero_halo=True)
        conv2 = LayerPlan(c2.name, "conv2", i, c2_t,
                          wk.take(_slot_bytes(n_tiles, c2.out_channels, c2.in_channels, a)))
        # conv3: gated tiles (conv2's tile list), mask_c2 in, residual, sums
        if b.identity:
            if _tensor_hwc(qm, b.in_tensor) != (h, w, c3.out_channels):
                raise FormatError(f"block {b.name}: identity block changes the tensor shape")
            if in_tile != b.tile:
                raise FormatError(f"block {b.name}: in place needs the input sums at tile "
                                  f"{b.tile}, they are at {in_tile}")
            fmap[b.out_tensor] = fmap[b.in_tensor]
            sums[b.out_tensor] = sums[b.in_tensor]
            out_sums = in_sums
        else:
            out_sums = sums_buf(b.out_tensor, b.tile)
        out_buf = fmap_buf(b.out_tensor)
        tres = qm.tensors[res_name]
        c3_t = template(c3, c2.out_tensor, b.tile, layout="ic_g_k_k_m",
                        in_offset=compact2.offset, in_signed=False, out_offset=out_buf.offset,
                        residual=True, res_signed=tres.signed, res_mult=int(c3.res_mult),
                        res_offset=fmap[res_name].offset, tile_gated=True, in_ch_gated=True,
                        in_place=b.identity, emit_sums=True, sums_offset=out_sums.offset)
        conv3 = LayerPlan(c3.name, "conv3", i, c3_t,
                          wk.take(_slot_bytes(n_tiles, 0, c3.in_channels, a)))
        s1 = formats.work_slots(c1_t, conv1.work_slot.offset, a)
        s2 = formats.work_slots(c2_t, conv2.work_slot.offset, a)
        s3 = dataclasses.replace(formats.work_slots(c3_t, conv3.work_slot.offset, a),
                                 tiles=s2.tiles)
        conv1.slots, conv2.slots, conv3.slots = s1, s2, s3
        conv1.program_template = program_template(c1_t, s1)
        conv2.program_template = program_template(c2_t, s2)
        conv3.program_template = program_template(c3_t, s3)
        # gate record (mask_s, mask_c1) and gate-2 record (mask_c2)
        table = gates.bin_table(hi, wi, in_tile, grid)
        sg, cg = _block_gates(b, ci)
        gp_blob = prog.pack_gate_params(table, sg, cg, a)
        gp = wt.take(len(gp_blob))
        weights.append((gp.offset, gp_blob))
        cg2 = _block_gate2(b)
        g2_blob = prog.pack_gate2_params(gates.gate_reciprocal(hi * wi), cg2, a)
        g2p = wt.take(len(g2_blob))
        weights.append((g2p.offset, g2_blob))
        rec = prog.GateRecord(
            in_c=ci, out_c=c1.out_channels, hidden=int(cg.w1.shape[0]), h_shift=int(cg.shift),
            st_h=st[0], st_w=st[1], gh=grid[0], gw=grid[1], res_list=not b.identity,
            sums_offset=in_sums.offset, param_offset=gp.offset, mask_offset=mask.offset,
            c1_tiles_offset=s1.tiles, c1_out_ch_offset=s1.out_ch, c2_tiles_offset=s2.tiles,
            c2_res_tiles_offset=0 if b.identity else s3.res_tiles, c2_in_ch_offset=s2.in_ch,
            c2_bitmap_offset=s2.bitmap)
        rec2 = prog.Gate2Record(
            in_c=c1.out_channels, out_c=c2.out_channels, hidden=int(cg2.w1.shape[0]),
            h_shift=int(cg2.shift), st_h=grid[0], st_w=grid[1], sums_offset=sums1.offset,
            param_offset=g2p.offset, in_mask_offset=mask.offset,
            mask_offset=mask.offset + block_mask_layout(n_tiles, c1.out_channels,
                                                        c2.out_channels, a)[1],
            c2_out_ch_offset=s2.out_ch, c3_in_ch_offset=s3.in_ch)
        return BlockPlan(i, b.name, conv1, down, conv2, b.identity, b.tile, grid,
                         b.in_tensor, b.out_tensor, in_sums, out_sums, in_tile,
                         gate_params=gp, mask=mask, gate_record=rec, kind="bottleneck",
                         conv3=conv3, gate2_record=rec2, gate2_params=g2p, conv1_sums=sums1)

    def plan_inverted(i: int, b) -> BlockPlan:
        """A MobileNetV2 block. Ungated: [expand,] depthwise, projection, dense. Gated
        (stride 1, identity): gate record, expand (1x1, mask_s tiles x mask_c channels,
        compact output), depthwise (op OP_DWCONV, gated on both sides by mask_c: the
        expand's out-channel list is its list, zero_halo, compact output), projection
        (1x1, mask_c inputs, residual, in place, the sums the next gate reads)."""
        c1, dw, pw = b.conv1, b.conv2, b.conv3
        if not _gated(b):
            cur = b.in_tensor
            conv1 = None
            if c1 is not None:
                conv1, cur = plan_dense(c1, "conv1", i, cur), c1.out_tensor
            conv2 = plan_dense(dw, "conv2", i, cur)
            conv3 = plan_dense(pw, "conv3", i, dw.out_tensor)
            return BlockPlan(i, b.name, conv1, None, conv2, False, 0, (0, 0), b.in_tensor,
                             b.out_tensor, None, None, 0, kind="inverted_residual",
                             conv3=conv3)
        h, w, _ = _tensor_hwc(qm, b.out_tensor)
        hi, wi, ci = _tensor_hwc(qm, b.in_tensor)
        if c1 is None or not b.identity or dw.stride != 1 or (hi, wi) != (h, w):
            raise ConfigError(f"block {b.name}: the engine gates MobileNetV2 identity blocks "
                              f"with an expansion (stride 1, tied scales)")
        grid = (-(-h // b.tile), -(-w // b.tile))
        _check_input_tiles(b, hi, wi, b.tile)
        n_tiles = grid[0] * grid[1]
        if b.in_tensor not in sums:
            raise ConfigError(f"block {b.name}: no layer writes the sums its gates read")
        in_sums, in_tile, st = sums[b.in_tensor]
        if in_tile not in (b.tile, 1):
            raise FormatError(f"block {b.name}: in place needs the input sums at tile "
                              f"{b.tile} or per pixel, they are at {in_tile}")
        ch = c1.out_channels
        compact1 = fm.take(h * w * ch)
        c1_t = template(c1, b.in_tensor, b.tile, out_offset=compact1.offset, tile_gated=True,
                        out_ch_gated=True)
        conv1 = LayerPlan(c1.name, "conv1", i, c1_t, wk.take(_slot_bytes(n_tiles, ch, 0, a)))
        compact2 = fm.take(h * w * ch)
        dw_t = template(dw, c1.out_tensor, b.tile, op=formats.OP_DWCONV, layout="dw",
                        in_offset=compact1.offset, in_signed=False, out_offset=compact2.offset,
                        tile_gated=True, in_ch_gated=True, out_ch_gated=True, zero_halo=True)
        conv2 = LayerPlan(dw.name, "conv2", i, dw_t, wk.take(_slot_bytes(n_tiles, ch, 0, a)))
        fmap[b.out_tensor] = fmap[b.in_tensor]
        sums[b.out_tensor] = sums[b.in_tensor]
        # the projection writes the sums of the shared buffer when a later gate reads them
        sums_kw = {}
        if b.out_tensor in gate_input:
            if gate_input[b.out_tensor] != (b.tile, grid):
                raise FormatError(f"block {b.name}: the next gate reads the shared sums on "
                                  f"another grid {gate_input[b.out_tensor]}")
            sums_kw = dict(emit_sums=True, pixel_sums=in_tile != b.tile,
                           sums_offset=in_sums.offset)
        tres = qm.tensors[b.in_tensor]
        pw_t = template(pw, dw.out_tensor, b.tile, layout="ic_g_k_k_m",
                        in_offset=compact2.offset, in_signed=False,
                        out_offset=fmap[b.in_tensor].offset, residual=True,
                        res_signed=tres.signed, res_mult=int(pw.res_mult),
                        res_offset=fmap[b.in_tensor].offset, tile_gated=True, in_ch_gated=True,
                        in_place=True, **sums_kw)
        conv3 = LayerPlan(pw.name, "conv3", i, pw_t, wk.take(_slot_bytes(n_tiles, 0, ch, a)))
        s1 = formats.work_slots(c1_t, conv1.work_slot.offset, a)
        # the depthwise layer's channel list is the expand's out list (one list, both sides)
        s2 = dataclasses.replace(formats.work_slots(dw_t, conv2.work_slot.offset, a),
                                 out_ch=s1.out_ch)
        s3 = dataclasses.replace(formats.work_slots(pw_t, conv3.work_slot.offset, a),
                                 tiles=s2.tiles)
        conv1.slots, conv2.slots, conv3.slots = s1, s2, s3
        conv1.program_template = program_template(c1_t, s1)
        conv2.program_template = program_template(dw_t, s2)
        conv3.program_template = program_template(pw_t, s3)
        table = gates.bin_table(hi, wi, in_tile, grid)
        sg, cg = _block_gates(b, ci)
        gp_blob = prog.pack_gate_params(table, sg, cg, a)
        gp = wt.take(len(gp_blob))
        weights.append((gp.offset, gp_blob))
        mask = masks[i]
        rec = prog.GateRecord(
            in_c=ci, out_c=ch, hidden=int(cg.w1.shape[0]), h_shift=int(cg.shift),
            st_h=st[0], st_w=st[1], gh=grid[0], gw=grid[1], res_list=False,
            sums_offset=in_sums.offset, param_offset=gp.offset, mask_offset=mask.offset,
            c1_tiles_offset=s1.tiles, c1_out_ch_offset=s1.out_ch, c2_tiles_offset=s2.tiles,
            c2_res_tiles_offset=0, c2_in_ch_offset=s3.in_ch, c2_bitmap_offset=s2.bitmap)
        return BlockPlan(i, b.name, conv1, None, conv2, True, b.tile, grid, b.in_tensor,
                         b.out_tensor, in_sums, in_sums, in_tile, gate_params=gp, mask=mask,
                         gate_record=rec, kind="inverted_residual", conv3=conv3)

    blocks: list[BlockPlan] = []
    for i, b in enumerate(qm.blocks):
        if b.kind == "inverted_residual":
            blocks.append(plan_inverted(i, b))
            continue
        c1, c2, ds = b.conv1, b.conv2, b.downsample
        h, w, _ = _tensor_hwc(qm, b.out_tensor)
        grid = (-(-h // b.tile), -(-w // b.tile))
        if tuple(grid) != tuple(b.grid):
            raise FormatError(f"block {b.name}: grid {b.grid} is not ceil({h}x{w} / tile "
                              f"{b.tile}) = {grid}")
        n_tiles = grid[0] * grid[1]
        in_sums, in_tile, _ = sums[b.in_tensor]
        if b.kind == "bottleneck":
            blocks.append(plan_bottleneck(i, b, grid, masks[i]))
            continue
        # conv1: gated tiles x gated output channels, compact output.
        compact = fm.take(h * w * c1.out_channels)
        c1_t = template(c1, b.in_tensor, b.tile, out_offset=compact.offset,
                        tile_gated=True, out_ch_gated=True)
        conv1 = LayerPlan(c1.name, "conv1", i, c1_t,
                          wk.take(_slot_bytes(n_tiles, c1.out_channels, 0, a)))
        down, res_name = plan_shortcut(i, b, ds)
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
        c2_t = template(c2, b.out_tensor, b.tile, layout="ic_g_k_k_m",
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
        conv1.slots, conv2.slots = s1, s2
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
    tail = None
    if qm.tail is not None:
        tail = plan_dense(qm.tail, "tail", -1, qm.tail.in_tensor)

    # ---- head: params in WEIGHT; logits and the cycle log in WORK.
    records = [RecordPlan(stem.name, "stem", -1)]
    for bp in blocks:
        if bp.gated:
            records.append(RecordPlan(f"{bp.name}.gate", "gate", bp.index))
        for kind, lp in _block_records(bp):
            records.append(RecordPlan(f"{bp.name}.gate2" if kind == "gate2" else lp.name,
                                      kind, bp.index))
    if tail is not None:
        records.append(RecordPlan(tail.name, "tail", -1))
    h = qm.head
    records.append(RecordPlan(h.name, "head", -1))
    if h.in_tensor not in sums:
        raise FormatError(f"head {h.name}: no layer writes the sums of {h.in_tensor}")
    last_sums, _, last_grid = sums[h.in_tensor]
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
                       cycle_log=log, readback=readback, tail=tail)
    _check_fits(plan)
    plan.program = _pack_program(plan)
    return plan


def _block_records(bp: BlockPlan) -> list:
    """(kind, LayerPlan or None) of a block's records after its gate record, in program
    order: conv1, [gate2], [shortcut], conv2[, conv3]."""
    out = [("conv1", bp.conv1)] if bp.conv1 is not None else []
    if bp.kind == "bottleneck":
        out.append(("gate2", None))
    if bp.downsample is not None:
        out.append(("downsample", bp.downsample))
    out.append(("conv2", bp.conv2))
    if bp.conv3 is not None:
        out.append(("conv3", bp.conv3))
    return out


def _pack_program(plan: NetworkPlan) -> bytes:
    """The records of the network program, each checked as the engine checks it."""
    cfg, rb = plan.cfg, plan.region_bytes
    out = [formats.pack_descriptor(plan.stem.program_template, cfg)]
    for bp in plan.blocks:
        if bp.gated:
            out.append(prog.pack_gate_record(bp.gate_record, cfg))
            prog.validate_gate_record(bp.gate_record, cfg, rb)
        for kind, lp in _block_records(bp):
            if kind == "gate2":
                prog.validate_gate2_record(bp.gate2_record, cfg, rb)
                out.append(prog.pack_gate2_record(bp.gate2_record, cfg))
            else:
                out.append(formats.pack_descriptor(lp.program_template, cfg))
    if plan.tail is not None:
        out.append(formats.pack_descriptor(plan.tail.program_template, cfg))
    prog.validate_head_record(plan.head_record, cfg, rb, plan.record_count)
    out.append(prog.pack_head_record(plan.head_record, cfg))
    return b"".join(out)


def _check_fits(plan: NetworkPlan) -> None:
    """Every template must pass the format checks and fit the engine's buffers."""
    dw = [lp.name for lp in plan.layers if lp.template.depthwise]
    if dw and not plan.cfg.depthwise:
        raise ConfigError(f"the network has {len(dw)} depthwise layer(s) (first: {dw[0]}) but "
                          f"engine config '{plan.cfg.name}' has no depthwise hardware ([features] "
                          f"depthwise = false): use a config with it (e.g. --config ultra96)")
    for lp in plan.layers:
        try:
            formats.validate_descriptor(lp.template, plan.cfg, plan.region_bytes)
            formats.validate_descriptor(lp.program_template, plan.cfg, plan.region_bytes)
        except FormatError as exc:
            if getattr(exc, "field", None) in ("in_c", "out_c"):
                hint = (" with larger channel limits (the engines keep per-channel lists and "
                        "gate state for max_in_channels / max_out_channels on chip: "
                        "docs/formats.md \"Channel limits\")")
            else:
                hint = " (e.g. --config ultra96)" if plan.cfg.name != "ultra96" else ""
            raise ConfigError(f"layer {lp.name} does not fit engine '{plan.cfg.name}': {exc}. "
                              f"Use a larger engine configuration{hint}.") from None
