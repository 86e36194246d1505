"""The numpy engine's program-level checks: the STATUS word it reports, field by field.

STATUS = CODE | LAYER << 8 | ENTRY << 16 (docs/register_map.md); the expected words are
written out by hand from that layout.
"""
from __future__ import annotations

import numpy as np

from dgfpga.contract import formats as F
from dgfpga.contract import regmap
from dgfpga.contract.engine_config import load_config
from dgfpga.runtime.interpreter import run_program

SMALL = load_config("small")
BAD_COUNT = regmap.ERR["BAD_COUNT"]


def _one_dense_layer():
    """A dense 3x3 conv, 4x4x4 -> 4x4x4, weights and params zero, its regions."""
    d = F.make_descriptor(k=3, stride=1, in_h=4, in_w=4, in_c=4, out_c=4, tile=4,
                          in_offset=0, out_offset=64, weight_offset=0, param_offset=256,
                          shift=1)
    regions = {"fmap": np.zeros(128, np.uint8), "weight": np.zeros(512, np.uint8),
               "work": np.zeros(64, np.uint8), "sums": np.zeros(64, np.uint8)}
    return F.pack_descriptor(d, SMALL), regions


def test_a_program_of_exactly_layer_count_descriptors_runs():
    prog, regions = _one_dense_layer()
    r = run_program(prog * 2, 2, regions, SMALL)
    assert r.ok and r.status == 0 and r.macs == [16 * 4 * 4 * 9] * 2


def test_program_shorter_than_layer_count_is_bad_count_at_layer_0_entry_0():
    prog, regions = _one_dense_layer()
    before = {k: v.copy() for k, v in regions.items()}
    for program, count in ((b"", 1), (prog, 2), (prog + prog[:-1], 2)):
        r = run_program(program, count, regions, SMALL)
        assert r.status == BAD_COUNT, (program[:0], count, hex(r.status))   # layer 0, entry 0
        assert regmap.unpack_status(r.status) == (BAD_COUNT, 0, 0)
        assert r.macs == [] and "layer_count is" in r.message
    for k in regions:                                # nothing was run
        assert np.array_equal(regions[k], before[k])


def test_layer_count_over_the_maximum_is_bad_count_at_layer_0_entry_0():
    prog, regions = _one_dense_layer()
    n = SMALL.max_layers + 1
    r = run_program(prog * n, n, regions, SMALL)
    assert r.status == BAD_COUNT and r.macs == [] and "max_layers" in r.message


def test_a_fault_reports_the_failing_layer_index():
    """Second descriptor with a bad magic: CODE=BAD_MAGIC, LAYER=1, the first layer ran."""
    prog, regions = _one_dense_layer()
    bad = bytearray(prog)
    bad[0] ^= 0xFF
    r = run_program(prog + bytes(bad), 2, regions, SMALL)
    assert r.status == regmap.ERR["BAD_MAGIC"] | 1 << 8, hex(r.status)
    assert len(r.macs) == 1


def test_zero_layers_is_an_identify_run():
    r = run_program(b"", 0, _one_dense_layer()[1], SMALL)
    assert r.ok and r.macs == []
