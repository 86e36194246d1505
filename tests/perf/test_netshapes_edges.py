"""Shapes of a fused conv + 3x3/2 (pad 1) max-pool stem on odd and non-square inputs, by
hand: conv 7x7/2 pad 3 gives floor((n + 6 - 7) / 2) + 1 rows, the pool floor((c - 1) / 2) + 1.
Even sizes (every shipped network) cannot tell `c - 1` from `c - 2`; odd ones can."""
from __future__ import annotations

import pytest

from dgfpga.contract import formats
from dgfpga.perf.netshapes import ConvShape


@pytest.mark.parametrize("in_h, in_w, conv, out", [
    (224, 224, (112, 112), (56, 56)),
    (225, 224, (113, 112), (57, 56)),
    (224, 227, (112, 114), (56, 57)),
    (227, 225, (114, 113), (57, 57)),
])
def test_maxpool_stem_shapes(in_h, in_w, conv, out):
    s = ConvShape("conv1", 7, 2, in_h, in_w, 3, 64, maxpool=True)
    assert (s.conv_h, s.conv_w) == conv and (s.out_h, s.out_w) == out
    assert s.macs == conv[0] * conv[1] * 64 * 3 * 49
    # the descriptor's own size rule agrees
    assert formats.layer_out_size(in_h, 7, 2, 3, True) == out[0]
    assert formats.layer_out_size(in_w, 7, 2, 3, True) == out[1]
