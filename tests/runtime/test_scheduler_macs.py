"""MACs the scheduler reports for dense layers, counted by hand from the layer shapes.

The fused max-pool stem (ImageNet ResNets) convolves the full pre-pool map: resdg18's stem
is a 7x7/2 conv of 3 -> 64 channels on 224x224, 112x112 conv outputs before the 3x3/2 pool
to 56x56, so 112*112 * 64 * 3 * 49 MACs, not 56*56 * ... (the pooled size).
"""
from __future__ import annotations

from dgfpga.contract.engine_config import load_config
from dgfpga.perf.netshapes import shape_plan
from dgfpga.runtime.scheduler import Scheduler

U96 = load_config("ultra96")


def test_maxpool_stem_macs_count_the_pre_pool_map():
    plan = shape_plan("resdg18", U96)
    d = plan.stem.template
    assert (d.k, d.stride, d.in_h, d.in_w, d.maxpool, d.out_h, d.out_w) == (7, 2, 224, 224, True, 56, 56)
    assert Scheduler(plan).stem().macs == 112 * 112 * 64 * 3 * 49 == 118_013_952


def test_plain_stem_macs():
    plan = shape_plan("resdg20_cifar10", U96)      # 3x3/1 conv, 3 -> 16 channels on 32x32
    assert Scheduler(plan).stem().macs == 32 * 32 * 16 * 3 * 9
