"""The DGNet training loss: Eq. 8-10 as in the official regularization.py."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dgfpga_models import build_model
from dgfpga_models.losses import DGLoss, anneal_p, bound_loss, sparsity_loss
from dgfpga_models.outputs import GatedOutput

torch.set_num_threads(2)


def synthetic(flops_real, flops_mask, flops_full, stem, fc, norm_s, norm_s_t, norm_c, norm_c_t,
              logits=None):
    """A GatedOutput built from given numbers (only the loss-relevant fields matter)."""
    fr = torch.tensor(flops_real, dtype=torch.float64, requires_grad=True)
    fm = torch.tensor(flops_mask, dtype=torch.float64)
    ff = torch.tensor(flops_full, dtype=torch.float64)
    macs = fr.sum(1) + fm.sum() + stem + fc
    dense = int(ff.sum()) + stem + fc
    n = fr.shape[0]
    return GatedOutput(
        logits=torch.zeros(n, 3) if logits is None else logits, masks=[],
        norm_s=torch.tensor(norm_s, requires_grad=True), norm_s_t=torch.tensor(norm_s_t),
        norm_c=torch.tensor(norm_c, requires_grad=True), norm_c_t=torch.tensor(norm_c_t),
        flops_real=fr, flops_mask=fm, flops_full=ff, flops_stem=stem, flops_fc=fc,
        macs=macs, dense_macs=dense, density=macs / dense)


def official_loss(out, labels, den_target, lbda, gamma, p):
    """regularization.Loss of the official code, fed the official tensor layout."""
    batch = out.logits.shape[0]
    flops_real = [out.flops_real, torch.tensor([float(out.flops_stem)]),
                  torch.tensor([float(out.flops_fc)])]
    flops_mask, flops_ori = out.flops_mask.unsqueeze(0), out.flops_full.unsqueeze(0)
    norm_s_t, norm_c_t = out.norm_s_t.unsqueeze(0), out.norm_c_t.unsqueeze(0)
    closs = F.cross_entropy(out.logits, labels)
    # spar_loss
    t, c1, fc = flops_real
    conv = t[0:batch, :].mean(0).sum()
    mask = flops_mask.mean(0).sum()
    ori = flops_ori.mean(0).sum() + c1.mean() + fc.mean()
    real = conv + mask + c1.mean() + fc.mean()
    rloss = lbda * (real / ori - den_target) ** 2

    # blance_loss
    def basic(spar, tar):
        lo = (F.relu(p * tar - spar) ** 2).mean()
        up = (F.relu(spar - 1 + p - p * tar) ** 2).mean()
        return gamma * (lo + up)
    den_s = out.norm_s[0:batch, :].mean(0) / norm_s_t.mean(0)
    den_c = out.norm_c[0:batch, :].mean(0) / norm_c_t.mean(0)
    tar = math.sqrt(den_target)
    return closs, rloss, basic(den_s, tar) + basic(den_c, tar)


def example(**over):
    kw = dict(flops_real=[[50.0, 30.0], [70.0, 10.0]], flops_mask=[2.0, 1.0],
              flops_full=[100.0, 60.0], stem=20, fc=5,
              norm_s=[[4.0, 1.0], [2.0, 3.0]], norm_s_t=[8.0, 4.0],
              norm_c=[[8.0, 2.0, 5.0], [4.0, 6.0, 1.0]], norm_c_t=[16.0, 8.0, 8.0])
    kw.update(over)
    return synthetic(**kw)


@pytest.mark.parametrize("den_target,lbda,gamma,p", [(0.5, 5, 1, 1.0), (0.3, 5, 1, 0.4),
                                                     (0.7, 2, 0.5, 0.05), (1.0, 5, 1, 0.0)])
def test_matches_official_regularization(den_target, lbda, gamma, p):
    out = example(logits=torch.randn(2, 3, generator=torch.Generator().manual_seed(1)))
    labels = torch.tensor([0, 2])
    got = DGLoss()(out, labels, den_target, lbda, gamma, p)
    want = official_loss(out, labels, den_target, lbda, gamma, p)
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w.double())


def test_sparsity_loss_zero_at_target_and_quadratic():
    out = example()
    density = out.density.mean().item()       # (mean blocks + gates + stem + fc) / dense
    assert density == pytest.approx((80 + 3 + 25) / 185)
    assert sparsity_loss(out, density).item() == pytest.approx(0.0, abs=1e-12)
    assert sparsity_loss(out, density - 0.1, lbda=5).item() == pytest.approx(5 * 0.01, rel=1e-5)
    assert sparsity_loss(out, density + 0.2, lbda=2).item() == pytest.approx(2 * 0.04, rel=1e-5)
    # too dense -> the gradient asks for fewer executed MACs; too sparse -> more
    sparsity_loss(out, density - 0.1).backward()
    assert bool((out.flops_real.grad > 0).all())
    out = example()
    sparsity_loss(out, min(1.0, density + 0.1)).backward()
    assert bool((out.flops_real.grad < 0).all())


def test_bound_loss_behaviour():
    t = math.sqrt(0.25)                        # per-gate target density 0.5
    at_target = example(norm_s=[[4.0, 2.0]], norm_s_t=[8.0, 4.0],
                        norm_c=[[8.0, 4.0, 4.0]], norm_c_t=[16.0, 8.0, 8.0],
                        flops_real=[[50.0, 30.0]])
    for p in (0.0, 0.5, 1.0):                  # density = t sits inside every bound
        assert bound_loss(at_target, 0.25, 1.0, p).item() == 0.0
    off = example(norm_s=[[0.0, 4.0]], norm_s_t=[8.0, 4.0], norm_c=[[16.0, 4.0, 4.0]],
                  norm_c_t=[16.0, 8.0, 8.0], flops_real=[[50.0, 30.0]])
    # p = 0: bounds [0, 1], nothing is penalised
    assert bound_loss(off, 0.25, 1.0, 0.0).item() == 0.0
    # p = 1: bounds [t, t]: spatial densities (0, 1), channel (1, .5, .5)
    want = ((t - 0) ** 2 + (1 - t) ** 2) / 2 + ((1 - t) ** 2) / 3
    assert bound_loss(off, 0.25, 1.0, 1.0).item() == pytest.approx(want)
    assert bound_loss(off, 0.25, 3.0, 1.0).item() == pytest.approx(3 * want)
    # p = 0.5: bounds [0.25, 0.75]: 0 is 0.25 below, 1 is 0.25 above
    half = (0.25 ** 2 + 0.25 ** 2) / 2 + 0.25 ** 2 / 3
    assert bound_loss(off, 0.25, 1.0, 0.5).item() == pytest.approx(half)
    # the gradient pushes a closed gate open and an always-open gate shut
    off = example(norm_s=[[0.0, 4.0]], norm_s_t=[8.0, 4.0], flops_real=[[50.0, 30.0]],
                  norm_c=[[8.0, 4.0, 4.0]], norm_c_t=[16.0, 8.0, 8.0])
    bound_loss(off, 0.25, 1.0, 1.0).backward()
    assert off.norm_s.grad[0, 0] < 0 < off.norm_s.grad[0, 1]


def test_anneal_p_and_argument_checks():
    assert anneal_p(0) == 1.0
    assert anneal_p(20, alpha=0.05) == pytest.approx(math.exp(-1))
    with pytest.raises(ValueError):
        anneal_p(-1)
    loss = DGLoss()
    out, labels = example(), torch.tensor([0, 1])
    for bad in (dict(den_target=0.0), dict(den_target=1.5), dict(lbda=-1), dict(p=2.0)):
        kw = dict(den_target=0.5, lbda=5, gamma=1, p=0.5) | bad
        with pytest.raises(ValueError):
            loss(out, labels, **kw)


def test_on_a_model_gradients_reach_the_gates():
    torch.manual_seed(0)
    model = build_model("resdg20_cifar10").train()      # gate bias 2: dense-ish at start
    out = model.forward_gated(torch.randn(8, 3, 32, 32))
    labels = torch.randint(0, 10, (8,))
    closs, rloss, bloss = DGLoss()(out, labels, den_target=0.3, p=anneal_p(0))
    assert closs.dtype == rloss.dtype == torch.float32
    assert rloss.item() > 0 and bloss.item() > 0
    rloss.backward()
    # too dense: the sparsity loss lowers every gate bias (never raises one)
    grads = torch.stack([b.mask_s.atten_s.bias.grad.sum() for b in model.blocks()]
                        + [b.mask_c.atten_c[3].bias.grad.sum() for b in model.blocks()])
    assert bool((grads >= 0).all()) and bool((grads > 0).any())
    # and a few SGD steps on the sparsity loss alone reduce the density
    opt = torch.optim.SGD([p for n, p in model.named_parameters() if "mask" in n], lr=5.0)
    model.eval()
    with torch.no_grad():
        x = torch.randn(16, 3, 32, 32)
        before = model.forward_gated(x).density.mean().item()
    model.train()
    for _ in range(5):
        opt.zero_grad()
        out = model.forward_gated(x)
        DGLoss()(out, torch.zeros(16, dtype=torch.long), 0.3, lbda=5, gamma=0, p=0)[1].backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        assert model.forward_gated(x).density.mean().item() < before
