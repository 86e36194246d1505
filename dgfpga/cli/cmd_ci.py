"""`dgfpga ci init`: write a ready CI job (GitHub Actions or GitLab CI) that builds the
bundle, simulates it bit-exact against the golden model and fails on a cycle regression
(dgfpga.workflows.ci_init; docs/ci.md). Torch-free and quick: nothing is built here."""
from __future__ import annotations

import argparse

from dgfpga.cli import options

NAME = "ci"
HELP = ("write a CI job (GitHub Actions, GitLab CI) that simulates your bundle and checks "
        "its cycles against a committed baseline")


def add_arguments(p):
    sub = p.add_subparsers(dest="ci_command", metavar="ACTION", required=True)
    from dgfpga.workflows import ci_init as ci
    i = sub.add_parser(
        "init", help="write .github/workflows/dgfpga-sim.yml (--github) or .gitlab-ci.yml "
                     "(--gitlab)",
        description="Write a CI job that installs dgfpga, builds the bundle of a checkpoint, "
                    "runs `dgfpga simulate` against a committed cycles baseline and publishes "
                    "the report, JUnit and trace (docs/ci.md).")
    g = i.add_mutually_exclusive_group(required=True)
    g.add_argument("--github", dest="platform", action="store_const", const="github",
                   help=f"GitHub Actions: writes {ci.PLATFORMS['github']}")
    g.add_argument("--gitlab", dest="platform", action="store_const", const="gitlab",
                   help=f"GitLab CI: writes {ci.PLATFORMS['gitlab']}")
    options.add_out(i, default=".", help="the root folder of your repository (default .)")
    options.add_checkpoint(i, required=False,
                           help="your DGNet checkpoint, a path in the repository (default: "
                                f"dgfpga's example model {ci.EXAMPLE_CHECKPOINT})")
    options.add_config(i, default=ci.DEFAULT_CONFIG,
                       help="engine configuration: a shipped name (ultra96, small) or a .toml "
                            f"in the repository (default {ci.DEFAULT_CONFIG})")
    options.add_images(i, default=ci.DEFAULT_IMAGES,
                       help="images the job simulates: selfcheck[:N] (the bundle's "
                            "self-check images, chosen by build-hls for the network's input "
                            "size; the only choice at level cocotb) or")
    i.add_argument("--level", choices=ci.LEVELS, default=ci.DEFAULT_LEVEL,
                   help=f"simulation level of `dgfpga simulate` (default {ci.DEFAULT_LEVEL})")
    i.add_argument("--baseline", default=ci.DEFAULT_BASELINE,
                   help="the committed cycles.json the job compares with, a path in the "
                        f"repository (default {ci.DEFAULT_BASELINE}; may not exist yet)")
    i.add_argument("--install", default=None, metavar="PIP-ARGS",
                   help="what `pip install` gets to install dgfpga, as shell words: a git URL "
                        "('dgfpga[torch,sim]@git+https://github.com/OWNER/dgfpga@TAG'), a path "
                        "in the repository ('./third_party/dgfpga[torch,sim]'), options such "
                        "as '-c constraints.txt' (default: the git commit this dgfpga was "
                        f"installed from, else '{ci.default_install({})}' from PyPI)")
    options.add_force(i, help="overwrite an existing workflow file")
    i.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the full traceback of an error (also: dgfpga --debug ci init)")


def run(args) -> int:
    from dgfpga.workflows import ci_init as ci
    opts = ci.CiOptions(platform=args.platform, root=args.out, checkpoint=args.checkpoint,
                        config=args.config, images=args.images, level=args.level,
                        baseline=args.baseline, install=args.install, force=args.force)
    plan = ci.check_options(opts)
    path = ci.write_workflow(plan)
    what = "GitHub Actions workflow" if opts.platform == "github" else "GitLab CI job"
    print(f"wrote {path} ({what}: `dgfpga simulate --level {opts.level} --images "
          f"{opts.images}` on the {opts.config} engine, baseline {opts.baseline})")
    for note in plan.notes:
        print(f"note: {note}")
    if opts.install is None and "@git+" not in plan.install_args[0]:
        print(f"note: the job installs {ci.default_install()} from PyPI; until dgfpga is "
              "published there, pass --install with a git URL or a path (docs/ci.md)")
    print(f"next: commit {path.relative_to(plan.root)}; docs/ci.md says how to update the "
          "baseline")
    return 0
