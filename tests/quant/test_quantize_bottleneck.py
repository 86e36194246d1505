"""Bottleneck DGNets (resdg50) through the quantizer and the integer golden model.

References, each independent of `dgfpga.numerics.golden`: the fake-quant torch path
(`dgfpga.quant.fakequant`: dense F.conv2d then the float model's masking, its own integer
gates, the second channel gate on conv1's masked output), the float model's official MAC
accounting (`dgfpga_models`), and the float model's own gate modules on the same int8
inputs (`gate_arithmetic_flips`). resdg50 at 64x64 input (stages 16/8/4/2 pixels, 2x2 spatial
grids) keeps it to seconds; the semantics do not depend on the size.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from dgfpga.numerics import golden  # noqa: E402
from dgfpga.numerics.qmodel import load_qmodel, save_qmodel  # noqa: E402
from dgfpga.quant.fakequant import compare_layers, run_fakequant  # noqa: E402


@pytest.fixture(scope="module")
def net():
    import torch
    from dgfpga.quant.float_model import IMAGENET_MEAN, IMAGENET_STD, make_test_model
    from dgfpga.quant.quantizer import quantize_model
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    u = rng.uniform(0, 1, (8, 3, 64, 64))
    x = ((u - np.array(IMAGENET_MEAN)[:, None, None]) / np.array(IMAGENET_STD)[:, None, None])
    x = x.astype(np.float32)
    model = make_test_model("resdg50", x, input_size=(64, 64), num_classes=10)
    return model, quantize_model(model, x), x


def test_structure(net):
    _, qm, _ = net
    assert len(qm.blocks) == 16 and {b.kind for b in qm.blocks} == {"bottleneck"}
    b = qm.blocks[3]                         # layer2.0: stride 2, projection shortcut
    assert b.name == "layer2.0" and b.downsample is not None and not b.identity
    assert (b.conv1.kernel, b.conv2.kernel, b.conv3.kernel) == (1, 3, 1) and b.conv2.stride == 2
    # conv1 runs at the block input resolution (16x16), conv2/conv3 at the output (8x8)
    assert qm.tensors[b.conv1.out_tensor].shape == (128, 16, 16)
    assert qm.tensors[b.conv2.out_tensor].shape == (128, 8, 8)
    assert b.channel_gate2.in_channels == 128 and b.channel_gate2.out_channels == 128
    assert qm.blocks[4].identity and qm.blocks[4].conv3.res_tensor == qm.blocks[4].in_tensor


def test_golden_equals_fakequant_on_every_layer(net):
    """Every tensor, every gate decision (mask_c2 included) and the logits agree with the
    independent torch implementation; a mask_c2 the golden model would compute from the
    wrong tensor (the block input, or conv1's unmasked output) would not."""
    _, qm, x = net
    g = golden.run_golden(qm, x)
    fq = run_fakequant(qm, x)
    diff = compare_layers(g.layers, fq.layers)
    wrong = sum(d for d, _ in diff.values())
    assert wrong == 0 and sum(n for _, n in diff.values()) > 3_000_000
    assert any(k.endswith(".out2") for k in diff)
    np.testing.assert_array_equal(g.logits_int, fq.logits_int)
    for gm, (sp, ch, ch2) in zip(g.masks, fq.masks):
        np.testing.assert_array_equal(gm.spatial, sp)
        np.testing.assert_array_equal(gm.channel, ch)
        np.testing.assert_array_equal(gm.channel2, ch2)
    # mixed decisions, so the masks matter
    c2 = np.concatenate([m.channel2.ravel() for m in g.masks])
    sp = np.concatenate([m.spatial.ravel() for m in g.masks])
    assert 0.1 < c2.mean() < 0.9 and 0.1 < sp.mean() < 0.9


def test_dense_run_matches_fakequant(net):
    _, qm, x = net
    g = golden.run_golden(qm, x[:2], masks="dense")
    fq = run_fakequant(qm, x[:2], masks="dense")
    np.testing.assert_array_equal(g.logits_int, fq.logits_int)
    assert g.density.min() == 1.0


def test_macs_follow_the_official_accounting(net):
    """With the float model's own masks, the golden model's executed conv MACs equal the
    official Bottleneck formula of dgfpga_models (conv1 at the input resolution, conv2
    9*pix*c2*c1, conv3 pix*C_out*c2, dense projection) and its gate MACs."""
    import torch
    model, qm, x = net
    with torch.no_grad():
        out = model.forward_gated(torch.from_numpy(x))
    g = golden.run_golden(qm, x, masks=out.masks)
    np.testing.assert_array_equal(g.total_macs, out.macs.numpy().astype(np.int64))
    for gm, m in zip(g.masks, out.masks):     # the given masks were used, channel2 included
        np.testing.assert_array_equal(gm.channel2, m.channel2[:, :, 0, 0].numpy() > 0)


def test_integer_gate_arithmetic_is_faithful(net):
    """On the same int8 inputs the integer gates (mask_c2 on conv1's output included)
    decide like the float gate modules: flips only where a logit is within rounding of 0."""
    from dgfpga.quant.evaluate import gate_arithmetic_flips
    model, qm, x = net
    r = gate_arithmetic_flips(model, qm, x)
    assert r["spatial_total"] > 0 and r["channel_total"] > 50_000
    assert r["spatial_flips"] <= 0.005 * r["spatial_total"]
    assert r["channel_flips"] <= 0.002 * r["channel_total"]


def test_round_trip(net, tmp_path):
    _, qm, x = net
    back = load_qmodel(save_qmodel(qm, tmp_path / "r50.qnpz"))
    assert [b.kind for b in back.blocks] == [b.kind for b in qm.blocks]
    assert back.blocks[0].channel_gate2.shift == qm.blocks[0].channel_gate2.shift
    np.testing.assert_array_equal(golden.run_golden(back, x[:2]).logits_int,
                                  golden.run_golden(qm, x[:2]).logits_int)


def test_missing_second_gate_is_refused(net, tmp_path):
    import json
    from dgfpga.errors import FormatError
    from dgfpga.numerics.qmodel import HEADER_KEY, to_arrays, _digest
    _, qm, _ = net
    arrays = to_arrays(qm)
    hdr = json.loads(arrays.pop(HEADER_KEY).tobytes())
    for k in [k for k in arrays if k.startswith("layer1.0.mask_c2.")]:
        arrays.pop(k)
    hdr["arrays"] = {k: {"dtype": str(v.dtype), "shape": list(v.shape), "sha256": _digest(v)}
                     for k, v in arrays.items()}
    arrays[HEADER_KEY] = np.frombuffer(json.dumps(hdr).encode(), np.uint8)
    p = tmp_path / "bad.qnpz"
    with open(p, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(FormatError, match=r"layer1\.0\.mask_c2\.w1 missing"):
        load_qmodel(p)


def test_given_masks_need_channel2(net):
    from dgfpga.errors import DgfpgaError
    _, qm, x = net
    g = golden.run_golden(qm, x[:1])
    with pytest.raises(DgfpgaError, match="channel2"):
        golden.run_golden(qm, x[:1], masks=[(m.spatial, m.channel) for m in g.masks])
