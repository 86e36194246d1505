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
    rep = engine_fuzz.run_fuzz(600, seed=1, cfg=SMALL, engine=engine, bases=bases)
    print(rep.summary())
    assert rep.ok, "\n".join(rep.problems[:20])
    assert rep.cases == rep.sanitized == 600
    # every mutation kind ran, and the cases reach both valid runs and many fault codes
    # (seed 1: 133 OK, 14 statuses; the 25,000-case run is the slow test below)
    assert set(rep.ops) >= {op for op in engine_fuzz.OPS}
    assert rep.statuses["OK"] >= 60 and rep.statuses["NO_FIT"] >= 1
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

    def run(self, program, layer_count, fmap, weight, work, sums, run_flags=0):
        res = self.engine.run(program, layer_count, fmap, weight, work, sums, run_flags)
        fmap.base[engine_fuzz.GUARD + fmap.size] ^= 0x5A
        return res


class _WrongStatus:
    """An engine whose result differs from the interpreter's on one byte of a good run."""

    def __init__(self, engine):
        self.engine = engine

    def run(self, program, layer_count, fmap, weight, work, sums, run_flags=0):
        res = self.engine.run(program, layer_count, fmap, weight, work, sums, run_flags)
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


# ----------------------------------------------------------------------------- network programs
@pytest.fixture(scope="module")
def net_plan(test_qmodel):
    """The test resdg20 (random weights, mixed gates) packed for 'small': a network program
    of stem, gate records, from_gate convs and the head."""
    from dgfpga.runtime.packer import plan_network
    return plan_network(test_qmodel, SMALL)


@pytest.fixture(scope="module")
def net_bases(net_plan, calib_images):
    return engine_fuzz.network_bases(net_plan, calib_images[:2])


@pytest.mark.slow          # the record-level fuzz above stays in the default suite
def test_network_fuzz_agrees_with_the_interpreter(engine, net_bases):
    """Mutated network programs (gate/head record fields, gate parameters, the SUMS the
    gates read, run_flags, from_gate, and every descriptor mutation): STATUS, every FMAP,
    WORK and SUMS byte equal the interpreter's, nothing outside the buffers, no sanitizer
    finding."""
    rep = engine_fuzz.run_fuzz(160, seed=11, cfg=SMALL, engine=engine, bases=net_bases)
    print(rep.summary())
    assert rep.ok, "\n".join(rep.problems[:20])
    assert rep.cases == rep.sanitized == 160
    assert set(rep.ops) >= set(engine_fuzz.NET_OPS) - {"gate2_param"}   # no gate-2 records
    assert rep.statuses["OK"] >= 15 and rep.statuses["BAD_GATE"] >= 5
    assert len(rep.statuses) >= 8


@pytest.mark.slow
def test_long_network_fuzz_agrees_with_the_interpreter(engine, net_bases):
    rep = engine_fuzz.run_fuzz(3000, seed=12, cfg=SMALL, engine=engine, bases=net_bases)
    print(rep.summary())
    assert rep.ok, "\n".join(rep.problems[:20])
    assert rep.cases == rep.sanitized == 3000


@pytest.fixture(scope="module")
def bottleneck_bases():
    """The hand-made two-block Bottleneck program of the shared vectors (gate, conv1,
    gate-2, shortcut, conv2 gated on both sides, conv3; 'small'), two images."""
    from dgfpga.backends import vectors
    from dgfpga.runtime.packer import plan_network
    qm, images = vectors.bottleneck_qmodel()
    plan = plan_network(qm, SMALL)
    return plan, engine_fuzz.network_bases(plan, images[:2])


@pytest.mark.slow       # ~1 min; the Bottleneck vectors and gate-2 corners run by default
def test_bottleneck_network_fuzz_agrees_with_the_interpreter(engine, bottleneck_bases):
    """Mutated Bottleneck programs: the gate-2 record's fields (through gate_field) and its
    parameter entries (gate2_param) besides every other mutation: the C-sim and its
    sanitized build agree with the interpreter on STATUS and every byte."""
    plan, bases = bottleneck_bases
    rep = engine_fuzz.run_fuzz(160, seed=14, cfg=SMALL, engine=engine, bases=bases)
    print(rep.summary())
    assert rep.ok, "\n".join(rep.problems[:20])
    assert rep.cases == rep.sanitized == 160
    assert rep.ops["gate2_param"] >= 10 and set(rep.ops) >= set(engine_fuzz.NET_OPS)
    assert rep.statuses["OK"] >= 10 and rep.statuses["BAD_GATE"] >= 5


class _WrongMask:
    """An engine whose gate masks differ from the interpreter's in one bit (good runs)."""

    def __init__(self, engine, offset):
        self.engine, self.offset = engine, offset

    def run(self, program, layer_count, fmap, weight, work, sums, run_flags=0):
        res = self.engine.run(program, layer_count, fmap, weight, work, sums, run_flags)
        if res.status == 0 and work.size > self.offset:
            work[self.offset] ^= 1
        return res


def test_network_fuzzer_sees_wrong_work_bytes(engine, net_plan, net_bases):
    rep = engine_fuzz.run_fuzz(20, seed=13, cfg=SMALL, engine=_WrongMask(
        engine, net_plan.blocks[0].mask.offset), sanitize=False, bases=net_bases)
    assert rep.memory_mismatches and "work byte" in rep.memory_mismatches[0]
