"""The modules the board imports must work without torch: import each of them in a fresh
interpreter where `import torch` raises ImportError, and run the golden model there."""
from __future__ import annotations

import importlib.util
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# docs/architecture.md "Packages": the packages the board and the simulators import must not
# need torch. Every module of each package is imported (walked, so a module added later is
# covered without editing this list).
TORCH_FREE_PACKAGES = [
    "dgfpga.contract", "dgfpga.numerics", "dgfpga.runtime", "dgfpga.perf", "dgfpga.backends",
    "dgfpga.data", "dgfpga_host",
]
TORCH_FREE_MODULES = ["dgfpga", "dgfpga.errors", "dgfpga.paths", "dgfpga.outdir"]
# The packages that do need torch (quantizer, training, CLI commands, the zoo) - listed so a
# package that is in neither list fails test_every_package_is_classified.
TORCH_PACKAGES = ["dgfpga.quant", "dgfpga.workflows", "dgfpga.cli", "dgfpga_models"]
REQUIRED = ["dgfpga.numerics.qmodel", "dgfpga.numerics.gates", "dgfpga.numerics.golden"]

BLOCKER = textwrap.dedent("""
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"torch is blocked in this test (import of {name!r})")
            return None
    sys.meta_path.insert(0, _NoTorch())
""")


def _find(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def test_blocker_really_blocks_torch():
    r = _run("import torch\n")
    assert r.returncode != 0 and "torch is blocked" in r.stderr


def test_required_modules_exist():
    missing = [n for n in REQUIRED if not _find(n)]
    assert not missing, missing


def test_every_package_is_classified():
    import dgfpga
    found = {f"dgfpga.{m.name}" for m in pkgutil.iter_modules(dgfpga.__path__) if m.ispkg}
    found -= {"dgfpga.hw"}          # package data only (the installed engine sources)
    classified = set(TORCH_FREE_PACKAGES) | set(TORCH_PACKAGES)
    assert found <= classified, f"unclassified packages: {sorted(found - classified)}"


@pytest.mark.parametrize("package", TORCH_FREE_PACKAGES)
def test_package_imports_without_torch(package):
    r = _run(f"""
        import importlib, pkgutil
        pkg = importlib.import_module({package!r})
        names = [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
        for n in names:
            importlib.import_module(n)
        assert 'torch' not in sys.modules, 'torch imported'
        print(len(names))
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    assert int(r.stdout.split()[-1]) >= 1


@pytest.mark.parametrize("module", TORCH_FREE_MODULES)
def test_imports_without_torch(module):
    r = _run(f"import {module}\nassert 'torch' not in sys.modules\n")
    assert r.returncode == 0, r.stderr[-2000:]


def test_golden_runs_without_torch(tmp_path):
    """Write a hand-built model (tests/test_qmodel.py), then load and run it torch-free."""
    sys.path.insert(0, str(Path(__file__).parent / "numerics"))
    from test_qmodel import tiny_qmodel

    from dgfpga.numerics.qmodel import save_qmodel
    path = save_qmodel(tiny_qmodel(), tmp_path / "m.qnpz")
    r = _run(f"""
        import numpy as np
        from dgfpga.numerics.qmodel import load_qmodel
        from dgfpga.numerics.golden import run_golden
        qm = load_qmodel({str(path)!r})
        g = run_golden(qm, np.random.default_rng(0).normal(0, 1, (3, 3, 8, 8)).astype(np.float32))
        assert g.logits.shape == (3, 10)
        assert 'torch' not in sys.modules
        print("ok")
    """)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]


def test_cli_help_does_not_import_torch():
    """`dgfpga --help` (every subcommand's parser, defaults included) builds without torch:
    torch is imported by the commands that run it, not by listing them."""
    r = _run("""
        from dgfpga.cli import main
        p = main.build_parser()
        p.format_help()
        for action in p._subparsers._group_actions:
            for sub in action.choices.values():
                sub.format_help()
        assert 'torch' not in sys.modules, 'torch imported'
        print('ok')
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-1] == "ok"
