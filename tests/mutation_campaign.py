"""Targeted mutation campaign: do the tests of a package fail when its code is broken?

A dev script, not a test (no ``test_`` prefix, so pytest does not collect it).  It makes
small AST mutants of the modules of a package -- a comparison flipped (``<`` <-> ``<=``,
``>`` <-> ``>=``, ``==`` <-> ``!=``), an operator swapped (``+`` <-> ``-``, ``*`` <-> ``//``,
``<<`` <-> ``>>``, ``&`` <-> ``|``), an integer constant moved (``n -> n+1``, ``1 -> 0``),
``and`` <-> ``or`` -- a fixed-seed sample of them per module, and runs that package's tests
against each one.  A mutant is *killed* when the tests fail, *survived* when they pass
(*timeout*: no result in time; listed, not counted -- on a shared machine a slow run is not
a kill).  A survivor is a behaviour no test pins, or an equivalent mutant; docs/testing.md
lists the current survivors and why each one is harmless.

Sites inside f-strings (error-message text) and in annotations are not mutated.

The script mutates files, so it never touches the tree it is given: it copies the tracked and
untracked-but-not-ignored files (``git ls-files``) into a scratch folder, and imports the
packages from that copy through a PYTHONPATH folder of symlinks (``dgfpga``, and
``dgfpga_host -> host``, ``dgfpga_models -> models``).  ``--jobs N`` makes N copies and runs
N mutants at a time (one package's modules stay on one copy at a time).

Usage (from the repository root)::

    .venv/bin/python tests/mutation_campaign.py --out /tmp/mut/run.json
    .venv/bin/python tests/mutation_campaign.py --modules runtime.packer perf.cycle_model \\
        --per-module 15 --seed 12 --out /tmp/mut/run.json
    # re-run the survivors of an earlier run against the current tests:
    .venv/bin/python tests/mutation_campaign.py --rerun /tmp/mut/run.json --out /tmp/mut/rerun.json
    # per-package sample sizes, two copies in parallel:
    .venv/bin/python tests/mutation_campaign.py --per-module 5 runtime=4 perf=3 --jobs 2 \
        --out /tmp/mut/run.json
    # re-run every mutant of an earlier run (killed ones too):
    .venv/bin/python tests/mutation_campaign.py --rerun /tmp/mut/run.json --rerun-all ...
    # only against some test files (a kill by a subset is a kill by the whole map):
    .venv/bin/python tests/mutation_campaign.py --rerun /tmp/mut/run.json \
        --tests perf=tests/perf/test_cycle_terms.py --out /tmp/mut/rerun.json
    # finish an interrupted run (keeps its results, runs the rest of the sample):
    .venv/bin/python tests/mutation_campaign.py ... --resume /tmp/mut/run.json

A re-run follows a mutated line that moved (same text, unique in the file); a line whose
text changed is reported *stale* and not run.

Options: ``--tree`` (the checkout to copy; default: this repository), ``--packages``,
``--modules pkg.mod ...``, ``--tests pkg=path,path`` (override the package -> tests map),
``--per-module N [PKG=N ...]`` (sample size per module; the sample of a module depends
only on the seed and the module name), ``--seed``, ``--timeout`` (seconds per mutant),
``--jobs``, ``--work`` (scratch folder; default a new temp folder), ``--keep`` (keep it),
``--out`` (JSON, rewritten after every mutant) and ``--md`` (Markdown summary; default
the JSON path with ``.md``).
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

MODULES = {
    "contract": ["engine_config", "regmap", "formats", "codegen"],
    "runtime": ["packer", "scheduler", "interpreter"],
    "perf": ["cycle_model", "prediction", "resources", "netshapes"],
}
# Each package's tests: its own, and the tests of the code that consumes it.  Fast files first
# (the run stops at the first failure).  Tests needing Verilator are left out (-m below and the
# file list): they take minutes per run.
TESTS = {
    "contract": ["tests/contract", "tests/runtime"],
    "runtime": ["tests/runtime", "tests/backends/test_vectors.py",
                "tests/host/test_host_runner.py", "tests/perf/test_one_schedule.py"],
    "perf": ["tests/perf/test_cycle_terms.py", "tests/perf/test_resource_terms.py",
             "tests/perf/test_netshapes_edges.py", "tests/perf/test_cycle_model.py",
             "tests/perf/test_resources.py",
             "tests/perf/test_predict.py", "tests/perf/test_prediction_fields.py",
             "tests/perf/test_one_schedule.py", "tests/perf/test_calibrate_cli.py",
             "tests/perf/test_rtl_calibrate.py"],
}
LINKS = {"dgfpga": "dgfpga", "dgfpga_host": "host", "dgfpga_models": "models"}

CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
       ast.Eq: ast.NotEq, ast.NotEq: ast.Eq}
BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult,
       ast.LShift: ast.RShift, ast.RShift: ast.LShift, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd}


# ---------------------------------------------------------------- mutants
def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes inside f-strings or annotations: mutating them changes no behaviour."""
    skip: set[int] = set()

    def mark(n):
        for sub in ast.walk(n):
            skip.add(id(sub))
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            mark(node)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.returns is not None:
                mark(node.returns)
            for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                if a.annotation is not None:
                    mark(a.annotation)
        elif isinstance(node, ast.AnnAssign):
            mark(node.annotation)
    return skip


def sites(tree: ast.AST) -> list[tuple[str, int, int]]:
    """Mutation sites (kind, line, col) inside functions, each once, in source order."""
    skip = _skipped_nodes(tree)
    out: set[tuple[str, int, int]] = set()
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for sub in ast.walk(fn):
            if id(sub) in skip:
                continue
            if isinstance(sub, ast.Compare) and type(sub.ops[0]) in CMP:
                out.add(("cmp", sub.lineno, sub.col_offset))
            elif isinstance(sub, ast.BinOp) and type(sub.op) in BIN:
                out.add(("bin", sub.lineno, sub.col_offset))
            elif (isinstance(sub, ast.Constant) and type(sub.value) is int):
                out.add(("const", sub.lineno, sub.col_offset))
            elif isinstance(sub, ast.BoolOp):
                out.add(("bool", sub.lineno, sub.col_offset))
    return sorted(out, key=lambda s: (s[1], s[2], s[0]))


class Mutator(ast.NodeTransformer):
    def __init__(self, site):
        self.site = tuple(site)
        self.done = False
        self.desc = ""

    def _hit(self, node, kind):
        # nested nodes can share a position (`a / b * c`): take the innermost of the kind
        # that has a mutation (children are visited first)
        ok = {"cmp": lambda n: type(n.ops[0]) in CMP, "bin": lambda n: type(n.op) in BIN}
        return (not self.done and (kind, getattr(node, "lineno", -1),
                                   getattr(node, "col_offset", -1)) == self.site
                and ok.get(kind, lambda n: True)(node))

    def visit_Compare(self, node):
        self.generic_visit(node)
        if self._hit(node, "cmp"):
            old = type(node.ops[0])
            node.ops[0] = CMP[old]()
            self.done, self.desc = True, f"{old.__name__}->{CMP[old].__name__}"
        return node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        if self._hit(node, "bin"):
            old = type(node.op)
            node.op = BIN[old]()
            self.done, self.desc = True, f"{old.__name__}->{BIN[old].__name__}"
        return node

    def visit_Constant(self, node):
        if self._hit(node, "const"):
            new = node.value + 1 if node.value != 1 else 0
            self.done, self.desc = True, f"{node.value}->{new}"
            return ast.copy_location(ast.Constant(new), node)
        return node

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        if self._hit(node, "bool"):
            old = type(node.op)
            node.op = ast.Or() if old is ast.And else ast.And()
            self.done, self.desc = True, f"{old.__name__}->{type(node.op).__name__}"
        return node


# ---------------------------------------------------------------- the copy
def copy_tree(src: Path, dst: Path) -> Path:
    """Copy the git-visible files of src into dst; return the PYTHONPATH folder."""
    if (src / ".git").exists():
        names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                                "--exclude-standard"],
                               cwd=src, capture_output=True, check=True).stdout.split(b"\0")
    else:                   # a plain folder (e.g. an earlier copy): every file but caches
        names = [str(p.relative_to(src)).encode() for p in src.rglob("*")
                 if p.is_file() and "__pycache__" not in p.parts]
    for raw in names:
        if not raw:
            continue
        rel = raw.decode()
        s = src / rel
        if not s.is_file():          # deleted in the work tree
            continue
        d = dst / "tree" / rel
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(s, d)
    pp = dst / "pp"
    pp.mkdir(parents=True, exist_ok=True)
    for name, target in LINKS.items():
        if (dst / "tree" / target).exists():
            (pp / name).symlink_to(dst / "tree" / target)
    return pp


def run_env(work: Path, pp: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(pp), DGFPGA_CACHE=str(work / "cache"),
                PYTHONDONTWRITEBYTECODE="1")


def check_copy(py: str, work: Path, pp: Path):
    r = subprocess.run([py, "-c", "import dgfpga; print(dgfpga.__file__)"], env=run_env(work, pp),
                       cwd=work / "tree", capture_output=True, text=True, check=True)
    if not Path(r.stdout.strip()).resolve().is_relative_to((work / "tree").resolve()):
        sys.exit(f"the copy does not shadow the install: dgfpga imports from {r.stdout.strip()}")


# ---------------------------------------------------------------- running
def run_one(py, work, pp, tests, timeout, mut) -> dict:
    pkg, mod = mut["module"].split(".")
    path = work / "tree" / "dgfpga" / pkg / f"{mod}.py"
    src = path.read_text()
    tree = ast.parse(src)
    lines = [ln.strip() for ln in src.splitlines()]
    line = lines[mut["line"] - 1] if mut["line"] <= len(lines) else ""
    if mut.get("code") not in (None, line):
        # the file changed since the earlier run: follow the line if it is still unique
        where = [i + 1 for i, ln in enumerate(lines) if ln == mut["code"]]
        if len(where) != 1:
            return dict(mut, status="stale", tail=["the source line changed since the earlier run"])
        mut = dict(mut, line=where[0])
        line = mut["code"]
    m = Mutator((mut["kind"], mut["line"], mut["col"]))
    mutated = m.visit(copy.deepcopy(tree))
    if not m.done:
        return dict(mut, status="stale", tail=["site not found"])
    t0 = time.time()
    path.write_text(ast.unparse(mutated))
    try:
        r = subprocess.run([py, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                            "-m", "not slow and not verilator and not vitis and not board",
                            *[t for t in tests if (work / "tree" / t).exists()]],
                           cwd=work / "tree", env=run_env(work, pp), capture_output=True,
                           text=True, timeout=timeout)
        status = "killed" if r.returncode != 0 else "survived"
        tail = r.stdout.strip().splitlines()[-1:]
        if r.returncode not in (0, 1):   # 2..5: collection/usage errors still count as killed
            tail = r.stdout.strip().splitlines()[-3:]
    except subprocess.TimeoutExpired:   # on a loaded machine a slow run is not a kill
        status, tail = "timeout", [f"no result after {timeout}s"]
    finally:
        path.write_text(src)
    return dict(module=mut["module"], kind=mut["kind"], line=mut["line"], col=mut["col"],
                op=m.desc, code=line, status=status, secs=round(time.time() - t0, 1), tail=tail)


def plan(tree_root: Path, modules: list[str], per: dict, seed: int) -> list[dict]:
    """The first per[pkg] (or per[""]) sites of each module's shuffle, seeded by (seed,
    module): a module's sample does not depend on which other modules are selected, and a
    smaller sample is a subset of a larger one."""
    out = []
    for qual in modules:
        pkg, mod = qual.split(".")
        src = (tree_root / "dgfpga" / pkg / f"{mod}.py").read_text()
        ss = sites(ast.parse(src))
        random.Random(f"{seed}:{qual}").shuffle(ss)
        for kind, line, col in ss[:per.get(pkg, per[""])]:
            out.append(dict(module=qual, kind=kind, line=line, col=col))
    return out


def summary_md(results: list[dict], title: str) -> str:
    per = defaultdict(lambda: defaultdict(int))
    for r in results:
        per[r["module"]][r["status"]] += 1
    lines = [f"# {title}", "", "| module | mutants | killed | survived | kill rate |",
             "|---|---:|---:|---:|---:|"]
    tot = defaultdict(int)
    for mod in sorted(per):
        c = per[mod]
        n = c["killed"] + c["survived"]
        tot["n"] += n
        tot["k"] += c["killed"]
        lines.append(f"| {mod} | {n} | {c['killed']} | {c['survived']} | "
                     f"{100 * c['killed'] / n:.0f}% |" if n else f"| {mod} | 0 | | | |")
    if tot["n"]:
        lines.append(f"| **total** | {tot['n']} | {tot['k']} | {tot['n'] - tot['k']} | "
                     f"{100 * tot['k'] / tot['n']:.0f}% |")
    surv = [r for r in results if r["status"] == "survived"]
    if surv:
        lines += ["", "## Survivors", "", "| module | line | mutation | code |", "|---|---:|---|---|"]
        for r in sorted(surv, key=lambda r: (r["module"], r["line"])):
            code = r["code"].replace("|", "\\|")
            lines.append(f"| {r['module']} | {r['line']} | {r['op']} | `{code}` |")
    slow = [r for r in results if r["status"] == "timeout"]
    if slow:
        lines += ["", f"{len(slow)} mutant(s) timed out (not counted): " + ", ".join(
            f"{r['module']}:{r['line']} {r['op']}" for r in slow)]
    stale = [r for r in results if r["status"] == "stale"]
    if stale:
        lines += ["", f"{len(stale)} mutant(s) not run: their source line changed."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", type=Path, default=REPO, help="checkout to copy (default: this repo)")
    ap.add_argument("--packages", nargs="*", default=list(MODULES))
    ap.add_argument("--modules", nargs="*", help="pkg.mod names (default: all of --packages)")
    ap.add_argument("--tests", action="append", default=[], metavar="PKG=PATH,PATH",
                    help="override the tests run for a package")
    ap.add_argument("--per-module", nargs="*", default=["13"], metavar="N|PKG=N",
                    help="mutants sampled per module: a default N and per-package overrides")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--timeout", type=int, default=900,
                    help="seconds per mutant; over it the mutant is 'timeout', not counted")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--rerun", type=Path, help="JSON of an earlier run: re-run its survivors")
    ap.add_argument("--rerun-all", action="store_true", help="with --rerun: re-run every mutant")
    ap.add_argument("--resume", type=Path,
                    help="JSON of an interrupted run: keep its results, run only the rest")
    ap.add_argument("--work", type=Path, help="scratch folder for the copies (default: temp)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--md", type=Path)
    a = ap.parse_args(argv)

    tests = {k: list(v) for k, v in TESTS.items()}
    for spec in a.tests:
        pkg, _, paths = spec.partition("=")
        tests[pkg] = [p for p in paths.split(",") if p]
    work = a.work or Path(tempfile.mkdtemp(prefix="dgfpga-mut-"))
    work.mkdir(parents=True, exist_ok=True)
    jobs = max(1, a.jobs)
    slots = []
    for j in range(jobs):
        w = work / f"copy{j}"
        if w.exists():
            shutil.rmtree(w)
        pp = copy_tree(a.tree, w)
        check_copy(a.python, w, pp)
        slots.append((w, pp))
    print(f"copied {a.tree} into {work} ({jobs} cop{'y' if jobs == 1 else 'ies'})", flush=True)

    if a.rerun:
        prev = json.loads(a.rerun.read_text())
        prev = prev["results"] if isinstance(prev, dict) else prev
        todo = [dict(module=r["module"], kind=r["kind"], line=r["line"], col=r["col"], code=r["code"])
                for r in prev if a.rerun_all or r["status"] == "survived"]
    else:
        mods = a.modules or [f"{p}.{m}" for p in a.packages for m in MODULES[p]]
        per = {"": 13}
        for spec in a.per_module:
            k, _, v = spec.rpartition("=")
            per[k] = int(v)
        todo = plan(slots[0][0] / "tree", mods, per, a.seed)
    results: list[dict] = []
    if a.resume:
        prev = json.loads(a.resume.read_text())
        results = list(prev["results"] if isinstance(prev, dict) else prev)
        done = {(r["module"], r["kind"], r["line"], r["col"]) for r in results}
        todo = [m for m in todo if (m["module"], m["kind"], m["line"], m["col"]) not in done]
    print(f"{len(todo)} mutants to run", flush=True)

    lock = threading.Lock()
    # one queue per package: a package's mutants run one at a time on one copy, so a copy only
    # ever carries one mutant, and jobs > 1 spreads packages over copies.
    queues = defaultdict(list)
    for m in todo:
        queues[m["module"].split(".")[0]].append(m)
    cost = {"runtime": 4}          # rough seconds-per-mutant weight: the runtime tests are slow
    order = sorted(queues, key=lambda p: -len(queues[p]) * cost.get(p, 1))
    md_path = a.md or a.out.with_suffix(".md")
    title = f"Mutation campaign ({'re-run of ' + a.rerun.name if a.rerun else f'seed {a.seed}'})"

    def worker(slot, pkgs):
        w, pp = slot
        for pkg in pkgs:
            for m in queues[pkg]:
                r = run_one(a.python, w, pp, tests[pkg], a.timeout, m)
                with lock:
                    results.append(r)
                    print(json.dumps(r), flush=True)
                    a.out.write_text(json.dumps(
                        dict(seed=a.seed, per_module=a.per_module, tests=tests, results=results),
                        indent=1))
                    md_path.write_text(summary_md(results, title))

    assign = [[] for _ in slots]
    load = [0] * len(slots)
    for pkg in order:               # greedy: the next package goes to the least loaded copy
        j = load.index(min(load))
        assign[j].append(pkg)
        load[j] += len(queues[pkg]) * cost.get(pkg, 1)
    threads = [threading.Thread(target=worker, args=(s, p)) for s, p in zip(slots, assign)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a.out.write_text(json.dumps(dict(seed=a.seed, per_module=a.per_module, tests=tests,
                                     results=results), indent=1))
    md_path.write_text(summary_md(results, title))
    print(summary_md(results, title))
    if not a.keep and a.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
