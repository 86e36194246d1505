"""The network runner: one image through the engine, block by block (numpy only).

Per image: quantize the input into its buffer, run the stem, then per block evaluate the
gates from the per-tile channel sums the previous layer emitted (`dgfpga.numerics.gates`, the same
function the golden model calls), schedule the block's work lists (`dgfpga.runtime.scheduler`),
with `validate=True` check them before the start (the one work-list validator,
`dgfpga.contract.formats.read_work_list`, as the engine reads them), run the engine and check
STATUS; finally the head from the last block's sums.
Dense mode runs the same network with every gate on: the speedup baseline.

The same code runs on the board (PYNQ device) and on the simulators.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from dgfpga.numerics import gates
from dgfpga.contract.formats import DESCRIPTOR_BYTES
from dgfpga.numerics.qmodel import quantize_input
from dgfpga.runtime.scheduler import EngineRun, Scheduler
from dgfpga_host.bundle import Bundle
from dgfpga_host.device import Device, EngineDriver, EngineFault

__all__ = ["ImageResult", "NetworkRunner"]


@dataclass
class ImageResult:
    """What one image produced."""
    logits_int: np.ndarray            # int64 [K]
    logits: np.ndarray                # float64 [K]
    spatial: list                     # per block bool [gh, gw]
    channel: list                     # per block bool [C]
    layer_cycles: dict                # layer name -> engine cycles (0 if skipped)
    run_cycles: list                  # per engine start: cycles
    macs: int                         # MACs the work lists required
    engine_s: float                   # wall time inside engine starts
    host_s: float                     # wall time of gates + scheduling (host overhead)
    total_s: float
    starts: int = 0                   # engine starts issued

    @property
    def cycles(self) -> int:
        return int(sum(self.run_cycles))

    @property
    def prediction(self) -> int:
        """The predicted class (argmax of the float logits)."""
        return int(np.argmax(self.logits))


class NetworkRunner:
    """Runs a bundle's network on a device."""

    def __init__(self, bundle: Bundle, device: Device, timeout_s: float = 10.0,
                 validate: bool = False, check_engine_id: bool = True):
        self.bundle = bundle
        self.plan = bundle.plan
        self.qm = bundle.qmodel
        self.device = device
        self.driver = EngineDriver(device, timeout_s)
        self.scheduler = Scheduler(self.plan, validate=validate)
        rb = self.plan.region_bytes
        self.regions = {name: device.allocate(rb[name]) for name in ("fmap", "weight", "work", "sums")}
        self.regions["weight"].array[:] = self.plan.weight_image
        self.regions["weight"].flush()
        self.program = device.allocate(DESCRIPTOR_BYTES * bundle.cfg.max_layers)
        self.driver.set_regions(self.regions)
        if check_engine_id:      # the identify run leaves the region registers as set
            from dgfpga.contract.regmap import check_engine_id as _check
            _check(self.driver.engine_id(), bundle.cfg)

    # ---- pieces ----
    def _sums(self, tensor: str) -> tuple[np.ndarray, int, tuple]:
        buf, tile, grid = self.plan.sums[tensor]
        region = self.regions["sums"]
        region.invalidate()
        c = self.qm.tensors[tensor].shape[0]
        arr = region.array[buf.offset:buf.offset + buf.nbytes].view("<i4").reshape(*grid, c)
        return arr, tile, grid

    def _start(self, run: EngineRun, what: str) -> int:
        if not run.layer_count:
            return 0
        work = self.regions["work"]
        for off, data in run.work_writes:
            work.array[off:off + data.size] = data
        work.flush()
        self.program.array[:len(run.program)] = np.frombuffer(run.program, dtype=np.uint8)
        self.program.flush()
        info = self.driver.run(self.program, run.layer_count)
        if info.status:
            raise EngineFault(info.status, what)
        self.regions["fmap"].invalidate()
        return info.cycles

    def gates_for(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Block `index`'s gate decisions from the sums of its input (as on the board)."""
        bp = self.plan.blocks[index]
        qb = self.qm.blocks[index]
        tin = self.qm.tensors[bp.in_tensor]
        c, h, w = tin.shape
        ts, tile, _ = self._sums(bp.in_tensor)
        bins, counts = gates.sums_region_bins(ts, tile, h, w, *qb.grid)
        spatial = gates.eval_spatial_gate(np.moveaxis(bins, -1, 0)[None], counts, tin.scale,
                                          qb.spatial_gate)[0]
        total = ts.reshape(-1, c).astype(np.int64).sum(axis=0)
        channel = gates.eval_channel_gate(total[None], h * w, tin.scale, qb.channel_gate)[0]
        return spatial, channel

    # ---- one image ----
    def run_image(self, image: np.ndarray, dense: bool = False) -> ImageResult:
        """Run one image: float normalised [C, H, W] (quantized here) or int8."""
        t0 = time.perf_counter()
        img = np.asarray(image)
        if img.shape != tuple(self.qm.input_shape):
            raise ValueError(f"image shape {img.shape}, the network takes {self.qm.input_shape}")
        xq = img if img.dtype == np.int8 else quantize_input(img[None], self.qm.input_scale)[0]
        fm = self.regions["fmap"]
        ib = self.plan.fmap[self.plan.input_tensor]
        fm.array[ib.offset:ib.offset + ib.nbytes] = \
            np.ascontiguousarray(xq.transpose(1, 2, 0)).view(np.uint8).reshape(-1)
        fm.flush()
        layer_cycles: dict = {}
        run_cycles, spatial, channel = [], [], []
        host_s = engine_s = 0.0
        macs = 0
        starts = 0

        def engine(run: EngineRun, what: str):
            nonlocal engine_s, macs, starts
            t = time.perf_counter()
            cyc = self._start(run, what)
            engine_s += time.perf_counter() - t
            starts += 1 if run.layer_count else 0
            run_cycles.append(cyc)
            macs += run.macs
            for lw in run.layers:   # cycles are per start; attribute by share of MACs
                layer_cycles[lw.name] = (cyc * lw.macs // run.macs) if run.macs else 0

        engine(self.scheduler.stem(), "stem")
        for i, bp in enumerate(self.plan.blocks):
            t = time.perf_counter()
            if dense:
                sp, ch = np.ones(bp.grid, bool), np.ones(bp.conv1.template.out_c, bool)
                run = self.scheduler.block(i, None, None)
            else:
                sp, ch = self.gates_for(i)
                run = self.scheduler.block(i, sp, ch)
            host_s += time.perf_counter() - t
            spatial.append(sp)
            channel.append(ch)
            for lp in (bp.conv1, bp.downsample, bp.conv2):
                if lp is not None:
                    layer_cycles.setdefault(lp.name, 0)
            engine(run, f"block {bp.name}")
        t = time.perf_counter()
        last = self.plan.blocks[-1].out_tensor
        ts, _, _ = self._sums(last)
        pooled = ts.reshape(-1, ts.shape[-1]).astype(np.int64).sum(axis=0)
        h = self.qm.head
        logits_int = h.weight.astype(np.int64) @ pooled + h.bias.astype(np.int64)
        host_s += time.perf_counter() - t
        return ImageResult(logits_int, logits_int * h.logit_scale, spatial, channel,
                           layer_cycles, run_cycles, macs, engine_s, host_s,
                           time.perf_counter() - t0, starts)
