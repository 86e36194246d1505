"""The packer on a NON-SQUARE network (16x32 input: every grid is wider than tall), where a
row/column mix-up in a layout shows.

Every other runtime test uses square CIFAR feature maps, where `grid[0] * grid[0]` and
`grid[0] * grid[1]` agree. Here the references are independent of the packer: the golden
model (bit-exact outputs through the scheduler + interpreter), and tile counts written as
ceil(H / tile) * ceil(W / tile) from the tensor shapes.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from dgfpga.contract.engine_config import load_config
from dgfpga.numerics.golden import run_golden
from dgfpga.runtime.interpreter import run_program
from dgfpga.runtime.packer import plan_network
from dgfpga.runtime.scheduler import Scheduler

SMALL = load_config("small")
H, W = 16, 32


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(3)
    return np.clip(rng.normal(0, 1, (6, 3, H, W)), -2.0, 2.7).astype(np.float32)


@pytest.fixture(scope="module")
def qm(images):
    pytest.importorskip("torch", reason="quantizing a model needs torch (extra 'torch')")
    from dgfpga.quant.float_model import make_test_model
    from dgfpga.quant.quantizer import quantize_model
    return quantize_model(make_test_model("resdg20_cifar10", images, input_size=(H, W)), images)


@pytest.fixture(scope="module")
def plan(qm):
    return plan_network(qm, SMALL)


def _tiles(shape, tile):
    _, h, w = shape
    return math.ceil(h / tile), math.ceil(w / tile)


def test_grids_are_non_square(qm, plan):
    for bp in plan.blocks:
        c, h, w = qm.tensors[bp.out_tensor].shape
        assert h != w and bp.grid == _tiles((c, h, w), bp.tile)
        assert bp.grid[0] != bp.grid[1], "the test needs non-square grids"


def test_sums_buffers_hold_one_int32_per_tile_and_channel(qm, plan):
    """[grid_h][grid_w][C] int32, disjoint (aliases of in-place blocks aside)."""
    seen = {}
    for name, (buf, tile, grid) in plan.sums.items():
        c = qm.tensors[name].shape[0]
        assert grid == _tiles(qm.tensors[name].shape, tile)
        assert buf.nbytes == grid[0] * grid[1] * c * 4, name
        seen[(buf.offset, buf.nbytes)] = buf
    spans = sorted(seen)
    for (o1, n1), (o2, _) in zip(spans, spans[1:]):
        assert o1 + n1 <= o2, "sums buffers overlap"
    assert spans[-1][0] + spans[-1][1] <= plan.region_bytes["sums"]


def test_densest_work_lists_fit_their_slots(plan):
    """All tiles on and all channels on: every list the scheduler writes lies inside the
    layer's own WORK slot, and the slots do not overlap."""
    sch = Scheduler(plan, validate=True)
    slots = []
    for i, bp in enumerate(plan.blocks):
        run = sch.block(i, np.ones(bp.grid, bool), np.ones(bp.conv1.template.out_c, bool))
        own = [lp.work_slot for lp in (bp.conv1, bp.conv2)]
        slots += own
        for off, data in run.work_writes:
            assert any(s.offset <= off and off + data.size <= s.offset + s.nbytes for s in own), \
                f"block {i}: work list [{off}, {off + data.size}) outside its slots {own}"
    spans = sorted((s.offset, s.nbytes) for s in slots)
    for (o1, n1), (o2, _) in zip(spans, spans[1:]):
        assert o1 + n1 <= o2, "work slots overlap"
    assert spans[-1][0] + spans[-1][1] <= plan.region_bytes["work"]


def _run_network(plan, sch, x_int8, masks):
    mem = {k: np.zeros(v, np.uint8) for k, v in plan.region_bytes.items()}
    mem["weight"][:] = plan.weight_image
    ib = plan.fmap["input"]
    mem["fmap"][ib.offset:ib.offset + ib.nbytes] = x_int8.transpose(1, 2, 0).view(np.uint8).reshape(-1)
    r = run_program(sch.stem().program, 1, mem, plan.cfg)
    assert r.ok, r.message
    outs = []
    for i, bp in enumerate(plan.blocks):
        run = sch.block(i, *masks[i])
        for off, data in run.work_writes:
            mem["work"][off:off + data.size] = data
        if run.layer_count:
            r = run_program(run.program, run.layer_count, mem, plan.cfg)
            assert r.ok, r.message
            assert sum(r.macs) == run.macs
        c, h, w = plan.qmodel.tensors[bp.out_tensor].shape
        ob = plan.fmap[bp.out_tensor]
        outs.append(mem["fmap"][ob.offset:ob.offset + ob.nbytes].reshape(h, w, c).transpose(2, 0, 1).copy())
    return outs, mem


@pytest.mark.parametrize("dense", [False, True])
def test_non_square_network_matches_golden(qm, plan, images, dense):
    """Scheduler + interpreter reproduce the golden model bit for bit, block outputs and the
    per-tile sums of the last tensor, on a 16x32 input."""
    sch = Scheduler(plan, validate=True)
    g = run_golden(qm, images[:2], masks="dense" if dense else None)
    for n in range(2):
        masks = [(m.spatial[n], m.channel[n]) for m in g.masks]
        outs, mem = _run_network(plan, sch, g.layers["input"][n], masks)
        for i, bp in enumerate(plan.blocks):
            np.testing.assert_array_equal(outs[i], g.layers[bp.out_tensor][n],
                                          err_msg=f"image {n} block {i}")
        last = plan.blocks[-1].out_tensor
        buf, tile, grid = plan.sums[last]
        c, h, w = qm.tensors[last].shape
        ts = mem["sums"][buf.offset:buf.offset + buf.nbytes].view("<i4").reshape(*grid, c)
        y = g.layers[last][n].astype(np.int64)
        want = np.zeros((*grid, c), np.int64)       # per-tile channel sums, by hand
        for ty in range(grid[0]):
            for tx in range(grid[1]):
                want[ty, tx] = y[:, ty * tile:(ty + 1) * tile, tx * tile:(tx + 1) * tile].sum((1, 2))
        np.testing.assert_array_equal(ts, want)


def test_models_the_engine_cannot_run_are_refused(qm):
    """A block kind the engine has no program for is refused by the packer before it lays
    anything out, naming the kind (BasicBlock, Bottleneck and MobileNetV2 networks run:
    tests/runtime/test_bottleneck_program.py, test_mobilenet_program.py)."""
    import dataclasses
    from dgfpga.errors import ConfigError
    kind = "shuffle_unit"
    other = dataclasses.replace(qm, blocks=[dataclasses.replace(qm.blocks[0], kind=kind)]
                                + qm.blocks[1:])
    with pytest.raises(ConfigError, match=f"engine runs BasicBlock, Bottleneck and MobileNetV2.*{kind}"):
        plan_network(other, load_config("small"))
