"""The network runner: one image through the engine in ONE start (numpy only).

At construction the bundle's network program (`NetworkPlan.program`: stem, per block a
gate record, conv1, [shortcut], conv2 - a Bottleneck block: gate, conv1, gate-2 record,
[shortcut], conv2, conv3 - then the head) and the packed weights are written
once, the four regions are flushed once (so no dirty CPU line of them is ever written back
over what the engine writes), and the engine is pointed at them. Per image:

1. the quantized input is written into its FMAP buffer and only that byte range flushed;
2. RUN_FLAGS is written (0: gated; `RUN_DENSE`: every gate on, the speedup baseline), the
   whole program is started once and waited for (a finite timeout), STATUS is checked;
3. only what the host reads is invalidated and copied out: the int64 logits, every
   block's masks (the gate records wrote them, and a Bottleneck block's gate-2 record its
   mask_c2; decoded when looked at) and the per-record cycle log.

The engine evaluates the gates and writes its own work lists: no gate evaluation and no
scheduling happen on the host. `ImageResult.host_s` is the thread CPU time of the host's
work per image (`time.thread_time`, so neither the wait nor a simulator's own threads
count), cache maintenance excluded; `cache_s` and the byte counts report that separately
(on the simulators memory is coherent: the byte counts are kept, the no-op calls are not
timed and cost ~1 us of host time).
The same code runs on the board (PYNQ device) and on the simulators.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from dgfpga.contract import program as P
from dgfpga.numerics.qmodel import quantize_input
from dgfpga_host.bundle import Bundle
from dgfpga_host.device import DeviceError, Device, EngineDriver, EngineFault

__all__ = ["ImageResult", "NetworkRunner", "CacheStats", "measure_host_cpu"]


@dataclass
class CacheStats:
    """Cache maintenance of one image: bytes flushed / invalidated, thread CPU seconds."""
    flushed: int = 0
    invalidated: int = 0
    seconds: float = 0.0


@dataclass
class ImageResult:
    """What one image produced. `spatial`, `channel`, `layer_cycles`, `logits` and `macs`
    are derived (decoded, named, converted, counted) when first looked at, outside the
    timed host work."""
    logits_int: np.ndarray            # int64 [K], as the head wrote them
    readback: np.ndarray              # uint8: the logits, cycle log and masks, as read
    cycle_log: np.ndarray             # u32 [records]: cycles per record (engine's log)
    run_cycles: list                  # per engine start: CYCLES (one start)
    engine_s: float                   # wall time from start to done (incl. the wait)
    host_s: float                     # thread CPU time of the host work (no wait, no cache)
    total_s: float                    # wall time of the whole image
    starts: int                       # engine starts issued (1)
    cache: CacheStats = field(default_factory=CacheStats)
    dense: bool = False
    runner: Optional["NetworkRunner"] = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def cycles(self) -> int:
        return int(sum(self.run_cycles))

    @property
    def cache_s(self) -> float:
        return self.cache.seconds

    @property
    def logits(self) -> np.ndarray:
        """float64 [K]: the int logits times the head's logit scale."""
        return self.logits_int * self.runner.qm.head.logit_scale

    @property
    def prediction(self) -> int:
        """The predicted class (argmax of the logits)."""
        return int(np.argmax(self.logits_int))

    @property
    def mask_words(self) -> list:
        """Per gated block (`NetworkRunner.gated`) the raw mask bytes its gate record wrote."""
        return [self.readback[a:b].tobytes() for a, b in self.runner._cuts[2:]]

    def _masks(self) -> tuple[list, list, list]:
        if "masks" not in self._cache:
            from dgfpga.contract.formats import bitmap_bytes, unpack_bitmap
            from dgfpga.runtime.packer import block_mask_layout
            sp, ch, ch2 = [], [], []
            a = self.runner.plan.cfg.axi_bytes
            blocks = self.runner.plan.blocks
            for bp, raw in zip((blocks[i] for i in self.runner.gated), self.mask_words):
                n, c1 = bp.grid[0] * bp.grid[1], bp.conv1.template.out_c
                s, c = P.decode_masks(raw, n, c1)
                sp.append(s.reshape(bp.grid))
                ch.append(c)
                if bp.kind == "bottleneck":     # the gate-2 record's mask_c2 bitmap
                    c2 = bp.conv2.template.out_c
                    off = block_mask_layout(n, c1, c2, a)[1]
                    ch2.append(unpack_bitmap(raw[off:off + bitmap_bytes(c2)], c2,
                                             "channel2 mask"))
                else:
                    ch2.append(None)
            self._cache["masks"] = (sp, ch, ch2)
        return self._cache["masks"]

    @property
    def spatial(self) -> list:
        """Per gated block (`NetworkRunner.gated`; every block of a ResNet) bool [gh, gw]:
        the spatial gate's decisions (from the engine's masks)."""
        return self._masks()[0]

    @property
    def channel(self) -> list:
        """Per gated block bool [C]: the channel gate's decisions."""
        return self._masks()[1]

    @property
    def channel2(self) -> list:
        """Per gated block bool [C2]: a Bottleneck block's second channel gate (mask_c2,
        its gate-2 record's decisions); None for other blocks."""
        return self._masks()[2]

    @property
    def layer_cycles(self) -> dict:
        """Record name -> cycles from the engine's cycle log (every record: stem, gates,
        convs (0 if skipped by the gate: its fetch only), head)."""
        return {r.name: int(c) for r, c in zip(self.runner.plan.records, self.cycle_log)}

    @property
    def macs(self) -> int:
        """Convolution MACs the engine's work required for these masks (the scheduler's
        count, `dgfpga.runtime.scheduler`: the reference of what the engine generates)."""
        if "macs" not in self._cache:
            self._cache["macs"] = self.runner.macs_for(
                None if self.dense else self.spatial, None if self.dense else self.channel,
                None if self.dense else self.channel2)
        return self._cache["macs"]


class NetworkRunner:
    """Runs a bundle's network on a device: one engine start per image."""

    def __init__(self, bundle: Bundle, device: Device, timeout_s: Optional[float] = None,
                 validate: bool = False, check_engine_id: bool = True):
        self.bundle = bundle
        self.plan = plan = bundle.plan
        self.qm = bundle.qmodel
        self.device = device
        self.validate = validate
        self.driver = EngineDriver(device, timeout_s)
        rb = plan.region_bytes
        self.regions = {name: device.allocate(rb[name]) for name in ("fmap", "weight", "work", "sums")}
        self.regions["weight"].array[:] = plan.weight_image
        program = np.frombuffer(plan.program, dtype=np.uint8)
        self.record_count = int(plan.record_count)
        if validate:
            self.check_program()
        self.program = device.allocate(program.size)
        self.program.array[:program.size] = program
        #: cache maintenance at construction (once per bundle, not per image)
        self.setup_cache = CacheStats()
        for buf in (*self.regions.values(), self.program):   # written (or zeroed) by the CPU
            self.setup_cache.flushed += buf.flush()
        self.driver.set_regions(self.regions)
        if check_engine_id:      # the identify run leaves the region registers as set
            from dgfpga.contract.regmap import check_engine_id as _check
            _check(self.driver.engine_id(), bundle.cfg)
        self.driver.set_program(self.program, self.record_count)
        self._flags: Optional[int] = None
        self._timeout = self.driver.timeout_s
        ib = plan.fmap[plan.input_tensor]
        c, h, w = self.qm.input_shape
        self._input = (ib.offset, ib.nbytes, (h * w, c))
        self._flush = self.regions["fmap"].check_ranges([(ib.offset, ib.nbytes)])
        # cache maintenance is timed where it does something (non-coherent buffers)
        self._timed_cache = not (self.regions["fmap"].coherent and
                                 self.regions["work"].coherent)
        # what the host reads back after a start, all in WORK: the logits, the cycle log,
        # every block's masks; the packer lays them out as one span at the start of WORK
        # (`NetworkPlan.readback`), invalidated with one call and copied out with one gather
        self._logits = (plan.logits.offset, 8 * self.qm.num_classes)
        self._log = (plan.cycle_log.offset, 4 * self.record_count)
        #: indices of the blocks with gates (all of a ResNet's; MobileNetV2's residual ones):
        #: the per-block lists of an ImageResult and a self-check follow this order
        self.gated = [i for i, bp in enumerate(plan.blocks) if bp.gated]
        self._mask_ranges = [(plan.masks[i].offset, plan.masks[i].nbytes) for i in self.gated]
        reads = [self._logits, self._log, *self._mask_ranges]
        rb_span = plan.readback
        if not all(rb_span.offset <= o and o + n <= rb_span.offset + rb_span.nbytes
                   for o, n in reads):  # pragma: no cover - packer invariant
            raise DeviceError("bundle plan: a read-back range lies outside the readback span")
        self._invalidate = self.regions["work"].check_ranges([(rb_span.offset, rb_span.nbytes)])
        self._gather = np.concatenate([np.arange(o, o + n) for o, n in reads])
        bounds = np.cumsum([0] + [n for _, n in reads])
        self._cuts = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        self._scheduler = None
        self._dense_macs: Optional[int] = None

    def check_program(self) -> None:
        """Check every record of the program on the host, with the engine's rules and the
        region sizes (FormatError naming the record); the engine checks them again."""
        from dgfpga.contract import formats
        from dgfpga.errors import FormatError
        cfg, rb, prog = self.bundle.cfg, self.plan.region_bytes, self.plan.program
        n = self.record_count
        for i in range(n):
            raw = prog[i * formats.DESCRIPTOR_BYTES:(i + 1) * formats.DESCRIPTOR_BYTES]
            try:
                op = P.record_op(raw)
                if op == P.OP_GATE:
                    P.unpack_gate_record(raw, cfg, rb)
                elif op == P.OP_GATE2:
                    P.unpack_gate2_record(raw, cfg, rb)
                elif op == P.OP_HEAD:
                    P.unpack_head_record(raw, cfg, rb, n)
                else:
                    formats.unpack_descriptor(raw, cfg)
            except FormatError as exc:
                raise FormatError(f"program record {i} ({self.plan.records[i].name}): {exc}"
                                  ) from None

    # ---- reference accounting (not host work: only when a figure asks for it) ----
    def macs_for(self, spatial, channel, channel2=None) -> int:
        """Convolution MACs of one image for these masks (None, None: dense), counted by
        the scheduler (the reference for the engine's generated work). The lists are per
        gated block (`gated`); channel2: per gated block mask_c2 or None (Bottleneck
        blocks). Ungated blocks, the stem and a tail run dense."""
        from dgfpga.runtime.scheduler import Scheduler
        if self._scheduler is None:
            self._scheduler = Scheduler(self.plan, validate=self.validate)
        s = self._scheduler
        fixed = s.stem().macs + (s.tail().macs if s.tail() is not None else 0)
        if spatial is None:
            if self._dense_macs is None:
                self._dense_macs = fixed + sum(s.block(i).macs
                                               for i in range(len(self.plan.blocks)))
            return self._dense_macs
        if channel2 is None:
            channel2 = [None] * len(self.gated)
        per = dict(zip(self.gated, zip(spatial, channel, channel2)))
        return fixed + sum(s.block(i, *per.get(i, (None, None, None))).macs
                           for i in range(len(self.plan.blocks)))

    # ---- one image ----
    def _quantize(self, image: np.ndarray) -> np.ndarray:
        img = np.asarray(image)
        if img.shape != tuple(self.qm.input_shape):
            raise ValueError(f"image shape {img.shape}, the network takes {self.qm.input_shape}")
        return img if img.dtype == np.int8 else quantize_input(img[None], self.qm.input_scale)[0]

    def run_image(self, image: np.ndarray, dense: bool = False) -> ImageResult:
        """Run one image (float normalised [C, H, W], quantized here, or int8) in one
        engine start; `dense`: every gate on (RUN_FLAGS.DENSE)."""
        clock = time.thread_time
        t0 = time.perf_counter()
        c0 = clock()
        xq = self._quantize(image)
        off, nbytes, pc = self._input
        fm, work = self.regions["fmap"], self.regions["work"]
        dst = fm.array[off:off + nbytes].view(np.int8).reshape(pc)
        for ch in range(pc[1]):                  # CHW -> HWC, a plane at a time
            dst[:, ch] = xq[ch].reshape(-1)
        timed = self._timed_cache
        k0 = clock() if timed else 0.0
        flushed = fm.flush_ranges(self._flush)
        k1 = clock() if timed else 0.0
        flags = P.RUN_DENSE if dense else 0
        if flags != self._flags:                 # registers keep their value between starts
            self.driver.set_run_flags(flags)
            self._flags = flags
        self.driver.start()                      # the driver's checked deadline
        c1 = clock()
        w0 = time.perf_counter()
        self.driver.wait(self._timeout)
        engine_s = time.perf_counter() - w0
        c2 = clock()
        k2 = clock() if timed else 0.0
        invalidated = work.invalidate_ranges(self._invalidate)
        k3 = clock() if timed else 0.0
        info = self.driver.result()
        if info.status:
            raise EngineFault(info.status, "dense run" if dense else "gated run")
        blob = work.array[self._gather]          # one copy of everything the host reads
        c3 = clock()
        cache = CacheStats(flushed, invalidated, (k1 - k0) + (k3 - k2))
        host_s = (c1 - c0) + (c3 - c2) - cache.seconds
        (la, lb), (ga, gb) = self._cuts[0], self._cuts[1]
        return ImageResult(blob[la:lb].view("<i8"), blob, blob[ga:gb].view("<u4"), [info.cycles], engine_s, host_s,
                           time.perf_counter() - t0, 1, cache, dense, self)


def measure_host_cpu(plan, n: int = 21, dense: bool = False) -> float:
    """The host's CPU seconds per image of this runner for `plan` (a packed
    `dgfpga.runtime.packer.NetworkPlan`, e.g. from shapes), measured on this machine: the
    median `ImageResult.host_s` + `cache_s` over `n` int8 images (after 3 warm-up runs) on a
    `NullDevice` (an engine that finishes at once: what is timed is exactly the host's work
    around one start, with no simulator on this CPU between its steps, as on the board).
    Used by `dgfpga predict`, the demo and `dgfpga-host bench` for the host term."""
    from dgfpga_host.sim_devices import NullDevice
    bundle = Bundle(None, {}, plan.cfg, plan.qmodel, plan, None)
    runner = NetworkRunner(bundle, NullDevice(plan.cfg), check_engine_id=False)
    rng = np.random.default_rng(0)
    n = max(int(n), 1)
    images = rng.integers(-128, 128, size=(n, *plan.qmodel.input_shape), dtype=np.int8)
    for x in images[:3]:                          # warm-up, not counted
        runner.run_image(x, dense=dense)
    times = []
    for x in images:
        r = runner.run_image(x, dense=dense)
        times.append(r.host_s + r.cache_s)
    runner.device.close()
    return float(np.median(times))
