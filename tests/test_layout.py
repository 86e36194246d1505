"""The layout is the pipeline: docs/architecture.md's package map equals the folders, module
names are unique across dgfpga, and tests/ mirrors the packages."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "dgfpga"


def _packages() -> set[str]:
    return {p.parent.name for p in PKG.glob("*/__init__.py")} - {"hw"}


def test_architecture_map_lists_exactly_the_packages():
    text = (ROOT / "docs" / "architecture.md").read_text()
    documented = set(re.findall(r"^\| `dgfpga\.(\w+)` \|", text, flags=re.M))
    assert documented == _packages(), (
        f"docs/architecture.md lists {sorted(documented)}, the folders are {sorted(_packages())}")


def test_module_names_are_unique():
    names = Counter(p.stem for p in PKG.rglob("*.py")
                    if p.stem != "__init__" and "hw" not in p.relative_to(PKG).parts)
    dup = sorted(n for n, c in names.items() if c > 1)
    assert not dup, f"modules sharing a name in dgfpga/: {dup}"


def test_tests_mirror_the_packages():
    have = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    missing = sorted(_packages() - {"cli"} - have)   # CLI behaviour is tested with its workflows
    assert not missing, f"no tests/<package>/ for {missing}"


# Pipeline order (docs/architecture.md "Dependencies point down the pipeline"): a module may
# import, at module level, only from packages of its own rank or below. Lazy imports inside
# functions are the documented exceptions and are not checked here.
RANK = {"errors": 0, "paths": 0, "build_cache": 0, "outdir": 0, "contract": 1, "data": 1, "numerics": 2,
        "runtime": 3, "perf": 4, "backends": 4, "quant": 4, "workflows": 5, "cli": 6}


def test_module_level_imports_follow_the_pipeline():
    import ast
    bad = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).parts
        if rel[0] == "hw" or rel[0] == "__init__.py":
            continue
        own = RANK[rel[0].removesuffix(".py")]
        for node in ast.parse(path.read_text()).body:       # module level only
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for n in names:
                parts = n.split(".")
                if parts[0] == "dgfpga" and len(parts) > 1 and parts[1] in RANK:
                    if RANK[parts[1]] > own:
                        bad.append(f"{path.relative_to(ROOT)} imports {n}")
                        break
    assert not bad, "\n".join(sorted(set(bad)))


def test_every_package_has_a_rank():
    assert _packages() <= set(RANK), sorted(_packages() - set(RANK))
