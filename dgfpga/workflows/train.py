"""Training DGNets on this machine: the paper's recipe adapted to 2 CPU cores (torch).

Recipe (DGNet paper section 4 and the official `main.py`/`regularization.py`):

1. a dense baseline (`target_density=None`: every gate forced on, cross-entropy only);
2. the DGNet initialised from it, trained with L = L_task + lambda*L_sparsity + L_bound
   (Eq. 8-10; lambda = 5, gamma = 1) and the bound annealing p = exp(-alpha*epoch).
   The official alpha = 0.05 is set for 100+ epochs; here alpha = 4/E by default, so p
   falls from 1 to e^-4 over the E epochs we can afford (same start and end, shorter).

Common: SGD with momentum 0.9 and Nesterov, cosine learning-rate schedule per iteration,
weight decay on every parameter except the gates' (mask_s / mask_c) and the BN affine
parameters, small random translations (+-2 px) as augmentation, Gumbel noise from the
gates' own straight-through estimator (tau = 2/3). Checkpoints are written every epoch in
the official layout with metadata; a sidecar `<path>.resume` holds the optimizer and
epoch so an interrupted run continues where it stopped.

Channel groups (`channel_group=G`, `dgfpga train --channel-group G`): every channel gate's
fc2 is trained as C/G rows expanded G-fold (`dgfpga_models.channel_group`), so at
inference each gate keeps a multiple of G channels active (G = the engine's Tm wastes no
MAC lanes on channel-group rounding). The checkpoint keeps the official keys and shapes
(the rows written out identical) and records `channel_group` in its metadata.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from dgfpga.data import embedded as data
from dgfpga.workflows.train_config import TrainConfig
from dgfpga.errors import DgfpgaError

__all__ = ["TrainConfig", "train", "evaluate", "load_trained"]


def _augment(x: torch.Tensor, shift: int, gen: torch.Generator) -> torch.Tensor:
    """Random translation by up to `shift` px per image (zero = mean-colour padding)."""
    if shift <= 0:
        return x
    n, _, h, w = x.shape
    xp = F.pad(x, (shift, shift, shift, shift))
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):
        out[i] = xp[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    return out


def _param_groups(model, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if ".mask_s." in name or ".mask_c" in name or p.ndim == 1:
            no_decay.append(p)          # gates, BN affine, biases
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def evaluate(model, split: data.Split, batch: int = 500, dense: Optional[bool] = None) -> dict:
    """Top-1 (%), mean MAC density (official definition) and per-block density on a split."""
    was = model.training
    model.eval()
    if dense is not None:
        old_dense, model.dense = model.dense, dense
    correct, dens, blocks = 0, [], []
    for s in range(0, len(split.labels), batch):
        x = torch.from_numpy(split.images[s:s + batch])
        out = model.forward_gated(x)
        correct += int((out.logits.argmax(1).numpy() == split.labels[s:s + batch]).sum())
        dens.append(out.density.numpy())
        blocks.append((out.flops_real / out.flops_full[None]).numpy())
    if dense is not None:
        model.dense = old_dense
    model.train(was)
    b = np.concatenate(blocks)
    return {"top1": 100.0 * correct / len(split.labels),
            "density": float(np.concatenate(dens).mean()),
            "block_density": [float(v) for v in b.mean(0)],
            "block_density_std": [float(v) for v in b.std(0)]}


def load_trained(path, arch: Optional[str] = None):
    """Load a checkpoint written by `train` (or any zoo checkpoint) as `(model, meta)`.

    A dense baseline is returned in dense mode (every gate on), which is how it was
    trained and how its accuracy is meant: its untrained gates would otherwise decide.
    Dense = metadata `dense: True`, or a `train` checkpoint with no target density.
    """
    from dgfpga_models.checkpoint import load_checkpoint
    model, meta = load_checkpoint(path, arch)
    dense = meta.get("dense")
    if dense is None:
        dense = "train_config" in meta and meta.get("target_density") is None
    model.dense = bool(dense)
    return model, meta


def _check_channel_group(cfg: TrainConfig) -> None:
    """DgfpgaError for a channel group that cannot apply: dense training (its gates are
    forced on), or a group that does not divide every channel gate of the architecture."""
    from dgfpga.errors import DgfpgaError
    from dgfpga_models import build_model, tie_channel_gates
    if cfg.channel_group == 1:
        return
    if cfg.dense:
        raise DgfpgaError(f"--channel-group {cfg.channel_group} applies to DGNet training "
                          "(--target-density); a dense baseline has no active gates")
    try:
        tie_channel_gates(build_model(cfg.arch), cfg.channel_group)
    except ValueError as exc:
        raise DgfpgaError(f"--channel-group for {cfg.arch}: {exc}") from None


#: TrainConfig fields a run may change when it resumes (more epochs: the cosine schedule
#: stretches from the resumed step on; CPU threads)
RESUME_MAY_CHANGE = ("epochs", "threads")


def _resume_key(cfg: TrainConfig) -> dict:
    return {k: v for k, v in asdict(cfg).items() if k not in RESUME_MAY_CHANGE}


def _check_resume(st: dict, cfg: TrainConfig, path) -> None:
    """DgfpgaError unless the `.resume` sidecar was written by a run of this configuration:
    a stale sidecar of another run (other architecture, learning rate, init, ...) must not
    silently become the starting point of this one."""
    fix = f"delete {path} to start afresh, or rerun with the settings it was written with"
    if "train_config" not in st:
        raise DgfpgaError(f"{path}: a resume file without its training configuration "
                          f"(written by an older dgfpga): {fix}")
    old = json.loads(st["train_config"])
    new = _resume_key(cfg)
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in diff)
        raise DgfpgaError(f"{path} belongs to another training run ({shown}): {fix}")


def _log(msg: str) -> None:
    print(msg, flush=True)


def train(cfg: TrainConfig, out_path, progress: bool = True, log=_log) -> dict:
    """Train per `cfg`, writing `out_path` (best validation checkpoint) every epoch.

    Resumes from `<out_path>.resume` when it exists. Returns the final metrics dict.
    """
    from dgfpga_models import build_model, tie_channel_gates
    from dgfpga_models.checkpoint import load_checkpoint, save_checkpoint
    from dgfpga_models.losses import DGLoss
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    from dgfpga.outdir import atomic_file, check_writable, signals_deferred
    out_path = check_writable(out_path, "file")    # before any work (.last/.resume: siblings)
    _check_channel_group(cfg)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    resume_path = out_path.with_name(out_path.name + ".resume")
    last_path = out_path.with_name(out_path.name + ".last")
    train_s = data.load_split("train", cfg.n_train, seed=cfg.seed)
    val_s = data.load_split("val", cfg.n_val, seed=cfg.seed)
    model = build_model(cfg.arch, dense=cfg.dense)
    if cfg.init:
        init, _ = load_checkpoint(cfg.init, cfg.arch)
        model.load_state_dict(init.state_dict())
    model.dense = cfg.dense
    # channel groups: tied fc2 rows (their group means to start), written out expanded
    tie_channel_gates(model, cfg.channel_group)
    opt = torch.optim.SGD(_param_groups(model, cfg.weight_decay), lr=cfg.lr,
                          momentum=cfg.momentum, nesterov=True)
    steps_per_epoch = math.ceil(cfg.n_train / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    alpha = cfg.alpha if cfg.alpha is not None else 4.0 / max(cfg.epochs, 1)
    crit = DGLoss()
    start_epoch, best, history, wall = 0, -1.0, [], 0.0
    if resume_path.exists():
        st = torch.load(resume_path, weights_only=True)
        _check_resume(st, cfg, resume_path)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        start_epoch, best, wall = int(st["epoch"]), float(st["best"]), float(st["wall_s"])
        history = json.loads(st["history"])
        log(f"resuming {out_path.name} at epoch {start_epoch}")
    gen = torch.Generator().manual_seed(cfg.seed)
    xs_all = torch.from_numpy(train_s.images)
    ys_all = torch.from_numpy(train_s.labels)
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        gen.manual_seed(cfg.seed * 1000 + epoch)
        perm = torch.randperm(cfg.n_train, generator=gen)
        p = math.exp(-alpha * epoch)
        sums = {"closs": 0.0, "rloss": 0.0, "bloss": 0.0, "acc": 0.0, "density": 0.0}
        it = range(steps_per_epoch)
        bar = tqdm(it, desc=f"{out_path.stem} epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not progress, file=sys.stderr) if tqdm else it
        for step in bar:
            g = epoch * steps_per_epoch + step
            lr = 0.5 * cfg.lr * (1 + math.cos(math.pi * g / total_steps))
            for grp in opt.param_groups:
                grp["lr"] = lr
            idx = perm[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            x = _augment(xs_all[idx], cfg.shift_px, gen)
            y = ys_all[idx]
            out = model.forward_gated(x)
            if cfg.dense:
                closs = F.cross_entropy(out.logits, y)
                rloss = bloss = torch.zeros(())
            else:
                closs, rloss, bloss = crit(out, y, cfg.target_density, cfg.lbda, cfg.gamma, p)
            loss = closs + rloss + bloss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums["closs"] += closs.item()
            sums["rloss"] += rloss.item()
            sums["bloss"] += bloss.item()
            sums["acc"] += (out.logits.argmax(1) == y).float().mean().item()
            sums["density"] += out.density.mean().item()
            if tqdm and progress:
                bar.set_postfix(loss=f"{loss.item():.3f}", dens=f"{out.density.mean().item():.2f}")
        ev = evaluate(model, val_s)
        wall += time.perf_counter() - t0
        rec = {k: v / steps_per_epoch for k, v in sums.items()}
        rec.update(epoch=epoch + 1, p=p, lr=lr, val_top1=ev["top1"], val_density=ev["density"],
                   wall_s=wall)
        history.append(rec)
        log(f"{out_path.stem} epoch {epoch + 1}/{cfg.epochs}: loss {rec['closs']:.3f} "
            f"(sparsity {rec['rloss']:.4f}, bound {rec['bloss']:.4f}), train acc "
            f"{100 * rec['acc']:.1f}%, val top-1 {ev['top1']:.2f}%, val density "
            f"{ev['density']:.3f}, {wall:.0f}s")
        # best = highest validation accuracy; for DGNets only once the density is near the
        # target (within 0.03), so an early dense-ish epoch cannot win
        ok = cfg.dense or abs(ev["density"] - cfg.target_density) <= 0.03 or epoch + 1 == cfg.epochs
        meta = {"epoch": epoch + 1, "dataset": f"dgfpga.data.embedded cluttered digits v{data.VERSION}",
                "seed": cfg.seed, "target_density": cfg.target_density, "dense": cfg.dense,
                "channel_group": cfg.channel_group,
                "val_top1": ev["top1"], "val_density": ev["density"],
                "train_config": {k: v for k, v in asdict(cfg).items()},
                "command": " ".join(sys.argv), "wall_s": wall}
        # each file is complete or absent (temporary sibling + rename), and Ctrl-C waits for
        # the epoch's saves, so the checkpoint, .last and .resume always agree
        with signals_deferred():
            save_checkpoint(last_path, model, best_acc=max(best, ev["top1"]), **meta)
            if ok and ev["top1"] > best:
                best = ev["top1"]
                save_checkpoint(out_path, model, best_acc=best, **meta)
            with atomic_file(resume_path) as tmp:
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                            "epoch": epoch + 1, "best": best, "wall_s": wall,
                            "history": json.dumps(history),
                            "train_config": json.dumps(_resume_key(cfg))}, tmp)
    return {"best_val_top1": best, "history": history, "wall_s": wall}
