"""The packer + scheduler + numpy interpreter against the golden model, on a whole network.

Running the scheduled work lists through the interpreter (which reads only what the engine
reads) must reproduce the golden model bit for bit, executing exactly the golden model's
MACs: the work lists say what must be computed, no more and no less.
"""
import numpy as np
import pytest

from dgfpga.contract import formats
from dgfpga.contract.engine_config import load_config
from dgfpga.errors import ConfigError, FormatError
from dgfpga.numerics.golden import run_golden
from dgfpga.runtime.interpreter import run_program
from dgfpga.runtime.packer import plan_network
from dgfpga.runtime.scheduler import Scheduler


@pytest.fixture(scope="module")
def plan(test_qmodel):
    return plan_network(test_qmodel, load_config("small"))


def _regions(plan):
    r = {k: np.zeros(v, np.uint8) for k, v in plan.region_bytes.items()}
    r["weight"][:] = plan.weight_image
    return r


def _run_network(plan, sch, x_int8, masks):
    """Drive stem + blocks through the interpreter with the given per-block masks."""
    cfg = plan.cfg
    mem = _regions(plan)
    ib = plan.fmap["input"]
    mem["fmap"][ib.offset:ib.offset + ib.nbytes] = x_int8.transpose(1, 2, 0).view(np.uint8).reshape(-1)
    macs = 0
    r = run_program(sch.stem().program, 1, mem, cfg)
    assert r.ok, r.message
    macs += sum(r.macs)
    outs = []
    for i, bp in enumerate(plan.blocks):
        run = sch.block(i, *masks[i]) if masks is not None else sch.block(i)
        for off, data in run.work_writes:
            mem["work"][off:off + data.size] = data
        if run.layer_count:
            r = run_program(run.program, run.layer_count, mem, cfg)
            assert r.ok, r.message
            assert sum(r.macs) == run.macs
            macs += sum(r.macs)
        c, h, w = plan.qmodel.tensors[bp.out_tensor].shape
        ob = plan.fmap[bp.out_tensor]
        outs.append(mem["fmap"][ob.offset:ob.offset + ob.nbytes].reshape(h, w, c).transpose(2, 0, 1).copy())
    return outs, macs, mem


def _conv_macs(g, qm, n):
    return sum(int(v[n]) for k, v in g.macs.items() if ".mask_" not in k and k != qm.head.name)


@pytest.mark.parametrize("dense", [False, True])
def test_interpreter_reproduces_golden_network(test_qmodel, calib_images, plan, dense):
    qm = test_qmodel
    sch = Scheduler(plan, validate=True)
    g = run_golden(qm, calib_images[:3], masks="dense" if dense else None)
    for n in range(3):
        masks = None if dense else [(m.spatial[n], m.channel[n]) for m in g.masks]
        outs, macs, mem = _run_network(plan, sch, g.layers["input"][n], masks)
        for i, bp in enumerate(plan.blocks):
            np.testing.assert_array_equal(outs[i], g.layers[bp.out_tensor][n],
                                          err_msg=f"image {n} block {i}")
        assert macs == _conv_macs(g, qm, n)


def test_gates_from_engine_sums_match_golden(test_qmodel, calib_images, plan):
    """Sums the engine emits, pooled into bins on the host, give the golden decisions."""
    from dgfpga.numerics import gates
    qm = test_qmodel
    sch = Scheduler(plan)
    g = run_golden(qm, calib_images[:2])
    for n in range(2):
        masks = [(m.spatial[n], m.channel[n]) for m in g.masks]
        _, _, mem = _run_network(plan, sch, g.layers["input"][n], masks)
        # the last block's input sums were overwritten by later blocks only where aliased;
        # check the final tensor's sums equal a direct tile sum of the golden output
        last = plan.blocks[-1].out_tensor
        buf, tile, grid = plan.sums[last]
        c = qm.tensors[last].shape[0]
        ts = mem["sums"][buf.offset:buf.offset + buf.nbytes].view("<i4").reshape(*grid, c)
        want = formats.tile_pixel_sums(np.moveaxis(g.layers[last][n], 0, -1), tile)
        np.testing.assert_array_equal(ts, want)
        assert gates.bin_counts(*qm.tensors[last].shape[1:], grid).sum() == np.prod(qm.tensors[last].shape[1:])


def test_masks_all_off_and_all_on(test_qmodel, calib_images, plan):
    qm = test_qmodel
    sch = Scheduler(plan, validate=True)
    for fill in (False, True):
        masks = [(np.full(b.grid, fill), np.full(b.conv1.out_channels, fill)) for b in qm.blocks]
        g = run_golden(qm, calib_images[:1], masks=[(s[None], c[None]) for s, c in masks])
        outs, macs, _ = _run_network(plan, sch, g.layers["input"][0], masks)
        for i, bp in enumerate(plan.blocks):
            np.testing.assert_array_equal(outs[i], g.layers[bp.out_tensor][0])
        assert macs == _conv_macs(g, qm, 0)


def test_identity_blocks_skip_entirely_when_off(test_qmodel, plan):
    sch = Scheduler(plan)
    for i, bp in enumerate(plan.blocks):
        run = sch.block(i, np.zeros(bp.grid, bool), np.zeros(bp.conv1.template.out_c, bool))
        if bp.identity:
            assert run.layer_count == 0 and run.macs == 0
        else:   # the dense shortcut and the residual-only conv2 remain
            assert [lw.kind for lw in run.layers] == ["downsample", "conv2"]


def test_in_place_aliasing(plan):
    for bp in plan.blocks:
        if bp.identity:
            assert plan.fmap[bp.out_tensor] == plan.fmap[bp.in_tensor]
            assert bp.in_sums == bp.out_sums


def test_bad_masks_are_clear_errors(plan):
    sch = Scheduler(plan)
    with pytest.raises(FormatError, match="spatial mask has"):
        sch.block(0, np.ones(3, bool), None)
    with pytest.raises(FormatError, match="channel mask has"):
        sch.block(0, None, np.ones(5, bool))


def test_plan_refuses_config_that_does_not_fit(test_qmodel):
    import dataclasses
    small = load_config("small")
    tiny = dataclasses.replace(small, max_in_channels=8, max_out_channels=8)
    with pytest.raises((ConfigError, FormatError)):
        plan_network(test_qmodel, tiny)


def test_ultra96_plan_is_valid(test_qmodel):
    plan = plan_network(test_qmodel, load_config("ultra96"))
    sch = Scheduler(plan, validate=True)
    for i, bp in enumerate(plan.blocks):
        sch.block(i, np.eye(*bp.grid, dtype=bool), np.arange(bp.conv1.template.out_c) % 3 == 0)
