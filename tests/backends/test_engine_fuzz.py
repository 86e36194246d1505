"""The mutation fuzzer of the C-sim engine (dgfpga.backends.engine_fuzz).

Mutated descriptors, work lists, params, regions, layer counts and programs from the shared
vector sets run on the interpreter (the reference), the C-sim engine through ctypes with
guard bytes around every region, and the AddressSanitizer + UBSan build; STATUS and every
FMAP/SUMS byte must agree and nothing outside the declared buffers may change. A short run
is in the default suite, a long one is marked slow. The sanitizer builds go to the
dgfpga build cache ($DGFPGA_CACHE), reused while their sources are unchanged.
"""
from __future__ import annotations

import numpy as np
import pytest

from dgfpga.backends import engine_fuzz, hls_csim, vectors
from dgfpga.contract.engine_config import load_config

SMALL = load_config("small")


@pytest.fixture(scope="module")
def engine():
    try:
        hls_csim.compiler()
        hls_csim.ap_types_dir()
    except hls_csim.CsimError as exc:
        pytest.skip(f"C-sim toolchain missing: {exc}")
    return hls_csim.CsimEngine(SMALL)


@pytest.fixture(scope="module")
def bases():
    return list(vectors.layer_sweep(SMALL))


def test_cases_are_deterministic_in_the_seed(bases):
    a = [(c.name, c.program, c.layer_count, {r: v.tobytes() for r, v in c.regions.items()})
         for c, _ in engine_fuzz.cases(40, 5, SMALL, bases)]
    b = [(c.name, c.program, c.layer_count, {r: v.tobytes() for r, v in c.regions.items()})
         for c, _ in engine_fuzz.cases(40, 5, SMALL, bases)]
    assert a == b
    assert a != [(c.name, c.program, c.layer_count,
                  {r: v.tobytes() for r, v in c.regions.items()})
                 for c, _ in engine_fuzz.cases(40, 6, SMALL, bases)]


def test_short_fuzz_agrees_with_the_interpreter(engine, bases):
    rep = engine_fuzz.run_fuzz(1500, seed=1, cfg=SMALL, engine=engine, bases=bases)
    print(rep.summary())
    assert rep.ok, "\n".join(rep.problems[:20])
    assert rep.cases == rep.sanitized == 1500
    # every mutation kind ran, and the cases reach both valid runs and many fault codes
    assert set(rep.ops) >= {op for op in engine_fuzz.OPS}
    assert rep.statuses["OK"] >= 150 and rep.statuses["NO_FIT"] >= 1
    assert len(rep.statuses) >= 12


@pytest.mark.slow
def test_long_fuzz_agrees_with_the_interpreter(engine, bases):
    rep = engine_fuzz.run_fuzz(25000, seed=2, cfg=SMALL, engine=engine, bases=bases)
    print(rep.summary())
    assert rep.ok, "\n".join(rep.problems[:20])
    assert rep.cases == rep.sanitized == 25000


class _Overrunning:
    """An engine that writes one byte past the FMAP region after each run."""

    def __init__(self, engine):
        self.engine = engine

    def run(self, program, layer_count, fmap, weight, work, sums):
        res = self.engine.run(program, layer_count, fmap, weight, work, sums)
        fmap.base[engine_fuzz.GUARD + fmap.size] ^= 0x5A
        return res


class _WrongStatus:
    """An engine whose result differs from the interpreter's on one byte of a good run."""

    def __init__(self, engine):
        self.engine = engine

    def run(self, program, layer_count, fmap, weight, work, sums):
        res = self.engine.run(program, layer_count, fmap, weight, work, sums)
        if res.status == 0 and fmap.size:
            fmap[fmap.size // 2] ^= 1
        return res


def test_fuzzer_sees_writes_outside_and_wrong_bytes(engine, bases):
    rep = engine_fuzz.run_fuzz(30, seed=3, cfg=SMALL, engine=_Overrunning(engine),
                               sanitize=False, bases=bases)
    assert len(rep.guard_violations) == 30 and "wrote outside fmap" in rep.guard_violations[0]
    rep = engine_fuzz.run_fuzz(60, seed=3, cfg=SMALL, engine=_WrongStatus(engine),
                               sanitize=False, bases=bases)
    assert rep.memory_mismatches and rep.memory_mismatches[0].count("fmap byte")


def test_sanitizer_build_is_live(engine, bases):
    """The runner's self-test record reads one byte past its FMAP block: AddressSanitizer
    must stop it, and the records before it still come back."""
    exe = hls_csim.build(SMALL, "fuzz_asan")
    good = [c for c, _ in engine_fuzz.cases(3, 4, SMALL, bases)]
    probe = engine_fuzz.FuzzCase("probe", b"", 0, {r: np.zeros(8, np.uint8)
                                                   for r in engine_fuzz.REGIONS})
    results, finding = engine_fuzz.run_sanitized(exe, good + [probe], probe_last=True)
    assert len(results) == 3
    assert finding is not None and finding[0] == 3 and "heap-buffer-overflow" in finding[1]
