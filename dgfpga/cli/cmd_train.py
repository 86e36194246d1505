"""`dgfpga train`: train a dense baseline or a DGNet on the embedded dataset."""
from __future__ import annotations

NAME = "train"
HELP = ("train a CIFAR-family DGNet on the embedded dataset: a dense baseline, or a DGNet "
        "initialised from it (--init) with a target density")


def add_arguments(p):
    from dgfpga.workflows.train import TrainConfig
    d = TrainConfig()
    p.add_argument("--arch", default=d.arch, help=f"architecture (default {d.arch})")
    p.add_argument("--dense", action="store_true", help="train the dense baseline (gates on)")
    p.add_argument("--target-density", type=float, help="DGNet target MAC density, e.g. 0.5")
    p.add_argument("--init", help="checkpoint to initialise from (the dense baseline)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--lbda", type=float, default=d.lbda, help="sparsity loss weight (Eq. 8)")
    p.add_argument("--gamma", type=float, default=d.gamma, help="bound loss weight (Eq. 9)")
    p.add_argument("--alpha", type=float, help="bound annealing p=exp(-alpha*epoch) (default 4/epochs)")
    p.add_argument("--n-train", type=int, default=d.n_train)
    p.add_argument("--n-val", type=int, default=d.n_val)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("-o", "--out", required=True, help="checkpoint to write (.pth.tar)")


def run(args) -> int:
    from dgfpga.errors import DgfpgaError
    from dgfpga.workflows.train import TrainConfig, train
    if args.dense == (args.target_density is not None):
        raise DgfpgaError("give exactly one of --dense or --target-density D")
    if args.target_density is not None and not 0 < args.target_density <= 1:
        raise DgfpgaError(f"--target-density {args.target_density}: must be in (0, 1]")
    cfg = TrainConfig(arch=args.arch, epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, weight_decay=args.weight_decay,
                      target_density=args.target_density, lbda=args.lbda, gamma=args.gamma,
                      alpha=args.alpha, n_train=args.n_train, n_val=args.n_val,
                      seed=args.seed, threads=args.threads, init=args.init)
    res = train(cfg, args.out, progress=args.progress)
    print(f"best validation top-1 {res['best_val_top1']:.2f}% -> {args.out} "
          f"({res['wall_s']:.0f} s)")
    return 0
