"""Channel-group training (`dgfpga_models.channel_group`): tied channel-gate rows give
active channel counts that are multiples of G in the float model (eval and training), keep
the official state dict, survive quantization (identical integer rows) and hold in the
integer golden model on real images."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dgfpga_models import build_model, channel_group_of, tie_channel_gates  # noqa: E402
from dgfpga_models.channel_group import channel_gates, group_counts  # noqa: E402

from official_keys import official_keys  # noqa: E402


def _randomise_gates(model, seed=0):
    """Spread the fc2 weights and biases so that decisions differ between groups."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, gate in channel_gates(model):
            fc2 = gate.atten_c[3]
            fc2.weight.copy_(torch.randn(fc2.weight.shape, generator=g))
            fc2.bias.copy_(torch.randn(fc2.bias.shape, generator=g) * 0.5)
    return model


def _channel_counts(out):
    """Active channels per image of every channel mask (mask_c, and mask_c2 if any)."""
    counts = []
    for m in out.masks:
        for c in (m.channel, getattr(m, "channel2", None)):
            if c is not None:
                counts.append(c.sum((1, 2, 3)).round().long())
    return counts


@pytest.mark.parametrize("arch,group", [("resdg20_cifar10", 4), ("resdg20_cifar10", 16),
                                       ("resdg29b_cifar10", 4)])
def test_tied_model_keeps_the_official_state_dict(arch, group):
    model = tie_channel_gates(_randomise_gates(build_model(arch)), group)
    sd = model.state_dict()
    want = official_keys(arch) if arch == "resdg20_cifar10" else {
        k: tuple(v.shape) for k, v in build_model(arch).state_dict().items()}
    assert {k: tuple(v.shape) for k, v in sd.items()} == want
    assert list(sd) == list(want)
    assert channel_group_of(sd) == group
    assert channel_group_of(build_model(arch).state_dict()) == 1     # random rows: untied
    # the expanded rows are what the plain zoo model computes with: same logits, same masks
    plain = build_model(arch)
    plain.load_state_dict(sd, strict=True)
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    a, b = model.eval().forward_gated(x), plain.eval().forward_gated(x)
    assert torch.equal(a.logits, b.logits)
    for ca, cb in zip(_channel_counts(a), _channel_counts(b)):
        assert torch.equal(ca, cb)


@pytest.mark.parametrize("arch,group", [("resdg20_cifar10", 4), ("resdg20_cifar10", 8),
                                       ("resdg29b_cifar10", 4)])
def test_active_channels_are_multiples_of_the_group(arch, group):
    """eval (logit >= 0) and training (one Gumbel sample per group): every channel mask's
    count is a multiple of G, and not trivially so (counts vary, some gates partly on)."""
    model = tie_channel_gates(_randomise_gates(build_model(arch), seed=3), group)
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    for train in (False, True):
        model.train(train)
        torch.manual_seed(0)
        counts = torch.cat(_channel_counts(model.forward_gated(x)))
        assert bool((counts % group == 0).all()), (train, counts)
        assert len(set(counts.tolist())) > 2


def test_tied_rows_train_as_one_row():
    """Gradients reach the C/G tied rows; after an SGD step the rows are still tied."""
    model = tie_channel_gates(_randomise_gates(build_model("resdg20_cifar10")), 4).train()
    gate = model.layer2[0].mask_c
    fc2 = gate.atten_c[3]
    assert tuple(fc2.weight_tied.shape) == (8, 4, 1, 1) and tuple(fc2.bias_tied.shape) == (8,)
    out = model.forward_gated(torch.randn(4, 3, 32, 32))
    (out.logits.sum() + out.density.sum()).backward()
    assert fc2.weight_tied.grad is not None and float(fc2.weight_tied.grad.abs().sum()) > 0
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.step()
    assert channel_group_of(model.state_dict()) == 4


def test_tying_starts_from_the_group_means():
    model = _randomise_gates(build_model("resdg20_cifar10"))
    w = model.layer1[0].mask_c.atten_c[3].weight.detach().clone()
    tie_channel_gates(model, 4)
    tied = model.layer1[0].mask_c.atten_c[3].weight.detach()
    for k in range(4):
        torch.testing.assert_close(tied[4 * k], w[4 * k:4 * k + 4].mean(0))


def test_bad_groups_are_clear_errors():
    model = build_model("resdg20_cifar10")
    with pytest.raises(ValueError, match=r"does not divide the 16 channels of layer1\.0\.mask_c"):
        tie_channel_gates(model, 32)
    assert channel_group_of(model.state_dict()) == 1                # nothing was changed
    with pytest.raises(ValueError, match="does not divide"):
        tie_channel_gates(build_model("resdg20_cifar10"), 3)
    with pytest.raises(ValueError, match="integer >= 1"):
        tie_channel_gates(build_model("resdg20_cifar10"), 0)
    tie_channel_gates(model, 4)
    with pytest.raises(ValueError, match="already tied in groups of 4"):
        tie_channel_gates(model, 8)
    tie_channel_gates(model, 4)                                  # same group: no-op


def test_loading_untied_rows_into_a_tied_model_names_the_rows():
    untied = _randomise_gates(build_model("resdg20_cifar10")).state_dict()
    model = tie_channel_gates(build_model("resdg20_cifar10"), 4)
    with pytest.raises(RuntimeError, match=r"layer1\.0\.mask_c\.atten_c\.3\.weight: rows 0\.\.3 "
                                           r"are not identical"):
        model.load_state_dict(untied)


def test_group_counts_by_hand():
    assert group_counts([16, 15, 17, 1, 0], 16) == (16 + 16 + 32 + 16 + 0, 0 + 1 + 15 + 15 + 0)
    assert group_counts([8, 12], 4) == (20, 0)
    with pytest.raises(ValueError):
        group_counts([1], 0)


def test_gatequant_keeps_tied_rows_identical():
    """The quantizer scales fc2 per row: identical float rows must give identical int16
    rows and int64 biases, hence identical integer logits for every input."""
    from dgfpga.numerics import gates
    from dgfpga.quant.gatequant import FloatGates, quantize_channel_gate
    rng = np.random.default_rng(0)
    c_in, hid, c_out, group = 32, 8, 32, 4
    fc2 = np.repeat(rng.normal(size=(c_out // group, hid)) * rng.uniform(0.01, 3, (c_out // group, 1)),
                    group, axis=0)
    b2 = np.repeat(rng.normal(size=c_out // group) * 0.3, group)
    fg = FloatGates(rng.normal(size=(c_in, 3, 3)), 0.5, rng.normal(size=(hid, c_in)),
                    rng.uniform(0.5, 2, hid), rng.normal(size=hid) * 0.1, fc2, b2)
    g = quantize_channel_gate(fg, s_in=0.02, h_range=3.0)
    w2 = g.w2.reshape(c_out // group, group, hid)
    assert (w2 == w2[:, :1]).all() and (g.b2.reshape(-1, group) == g.b2.reshape(-1, group)[:, :1]).all()
    assert len(np.unique(g.w2, axis=0)) == c_out // group      # groups differ from each other
    pooled = rng.integers(0, 255 << 8, size=(64, c_in))
    logits = gates.channel_gate_logits_int(pooled, g).reshape(64, c_out // group, group)
    assert (logits == logits[:, :, :1]).all()
    on = (logits[:, :, 0] >= 0).sum(1) * group
    assert 0 < on.min() and on.max() < c_out or len(np.unique(on)) > 1


@pytest.fixture(scope="module")
def quantized_tied():
    """The shipped d50 model with its channel gates tied in groups of 4 (group means of
    its trained rows), quantized on 64 embedded images; golden masks of 64 test images."""
    from conftest import ROOT
    from dgfpga.data import embedded as data
    from dgfpga.numerics.golden import run_golden
    from dgfpga.quant.float_model import load_float_model
    from dgfpga.quant.quantizer import quantize_model
    model, _ = load_float_model(ROOT / "models" / "checkpoints" / "resdg20_cifar10_d50.pth.tar")
    _randomise_gates(model, seed=5)          # decisions that vary between images and groups
    with torch.no_grad():
        for _, gate in channel_gates(model):
            gate.atten_c[3].bias.add_(1.0)
    tie_channel_gates(model, 4)
    qm = quantize_model(model, data.load_split("train", 64).images)
    test = data.load_split("test", 64)
    return model, qm, test, run_golden(qm, test.images, keep_layers=False)


def test_golden_active_channels_are_multiples_of_the_group(quantized_tied):
    """Integer gates on real images: every block's count is a multiple of 4 and the
    quantized fc2 rows are tied; the float model's counts are multiples of 4 too."""
    model, qm, test, g = quantized_tied
    counts = np.concatenate([m.channel.sum(1) for m in g.masks])
    assert (counts % 4 == 0).all()
    assert len(np.unique(counts)) > 3 and counts.min() > 0        # not all-on / all-off
    for b in qm.blocks:
        w2 = b.channel_gate.w2.reshape(-1, 4, b.channel_gate.hidden)
        assert (w2 == w2[:, :1]).all()
    out = model.eval().forward_gated(torch.from_numpy(test.images))
    float_counts = np.concatenate([m.channel.sum((1, 2, 3)).numpy() for m in out.masks])
    assert (float_counts % 4 == 0).all()

