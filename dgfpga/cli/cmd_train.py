"""`dgfpga train`: train a dense baseline or a DGNet on the embedded dataset."""
from __future__ import annotations

NAME = "train"
HELP = ("train a CIFAR-family DGNet on the embedded dataset: a dense baseline, or a DGNet "
        "initialised from it (--init) with a target density")


def add_arguments(p):
    from dgfpga.workflows.train_config import TrainConfig
    d = TrainConfig()
    from dgfpga.cli import options
    options.add_arch(p, default=d.arch, help=f"CIFAR-family architecture (default {d.arch})")
    p.add_argument("--dense", action="store_true", help="train the dense baseline (gates on)")
    p.add_argument("--target-density", type=options.number(float, 0, 1, lo_open=True), help="DGNet target MAC density, e.g. 0.5")
    p.add_argument("--init", help="checkpoint to initialise from (the dense baseline)")
    p.add_argument("--epochs", type=options.number(int, 1), default=d.epochs,
                   help=f"training epochs (default {d.epochs})")
    p.add_argument("--batch-size", type=options.number(int, 1), default=d.batch_size,
                   help=f"images per SGD step (default {d.batch_size})")
    p.add_argument("--lr", type=options.number(float, 0, lo_open=True), default=d.lr,
                   help=f"initial SGD learning rate, cosine-annealed (default {d.lr})")
    p.add_argument("--weight-decay", type=options.number(float, 0), default=d.weight_decay,
                   help=f"SGD weight decay (default {d.weight_decay})")
    p.add_argument("--lbda", type=options.number(float, 0), default=d.lbda, help="sparsity loss weight (Eq. 8)")
    p.add_argument("--gamma", type=options.number(float, 0), default=d.gamma, help="bound loss weight (Eq. 9)")
    p.add_argument("--alpha", type=options.number(float, 0), help="bound annealing p=exp(-alpha*epoch) (default 4/epochs)")
    p.add_argument("--channel-group", type=options.number(int, 1), default=d.channel_group,
                   metavar="G",
                   help="tie every channel gate's output rows in groups of G channels, so "
                        "the active channel count is a multiple of G at inference (set G to "
                        "the engine's Tm: no MAC lanes lost to channel-group rounding); G "
                        f"must divide every gated width (default {d.channel_group}: off)")
    p.add_argument("--n-train", type=options.number(int, 1), default=d.n_train,
                   help=f"size of the embedded train split generated (default {d.n_train})")
    p.add_argument("--n-val", type=options.number(int, 1), default=d.n_val,
                   help=f"size of the embedded val split generated (default {d.n_val})")
    p.add_argument("--seed", type=options.number(int, 0), default=d.seed,
                   help=f"seed of the data generation, initialisation and order (default {d.seed})")
    p.add_argument("--threads", type=options.number(int, 1), default=d.threads,
                   help=f"torch CPU threads (default {d.threads})")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar")
    options.add_out(p, help="checkpoint to write (.pth.tar)")


def run(args) -> int:
    from dgfpga.errors import DgfpgaError
    from dgfpga.workflows.train import TrainConfig, train
    if args.dense == (args.target_density is not None):
        raise DgfpgaError("give exactly one of --dense or --target-density D")
    cfg = TrainConfig(arch=args.arch, epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, weight_decay=args.weight_decay,
                      target_density=args.target_density, lbda=args.lbda, gamma=args.gamma,
                      alpha=args.alpha, n_train=args.n_train, n_val=args.n_val,
                      seed=args.seed, threads=args.threads, init=args.init,
                      channel_group=args.channel_group)
    res = train(cfg, args.out, progress=args.progress)
    print(f"best validation top-1 {res['best_val_top1']:.2f}% -> {args.out} "
          f"({res['wall_s']:.0f} s)")
    return 0
