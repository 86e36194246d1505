"""The Chrome/Perfetto trace of `dgfpga simulate --trace` (dgfpga.perf.trace): valid against
the Trace Event Format (a JSON schema of its JSON Object Format, below, written from the
format's specification, plus the nesting rule Perfetto's importer applies to complete
events), record slices = the engine cycle log at the config clock, phase slices inside their
record and split by the cycle model."""
from __future__ import annotations

import json

import numpy as np
import pytest

# The Trace Event Format (JSON Object Format) for the event types the writer uses:
# "X" complete events (name, cat, ph, ts, dur in microseconds, pid, tid, args) and "M"
# metadata events (process_name / thread_name / process_sort_index with args).
TRACE_SCHEMA = {
    "type": "object",
    "required": ["traceEvents"],
    "properties": {
        "traceEvents": {"type": "array", "items": {"oneOf": [
            {"type": "object", "required": ["ph", "name", "pid", "tid", "ts", "dur"],
             "properties": {"ph": {"const": "X"}, "name": {"type": "string"},
                            "cat": {"type": "string"}, "pid": {"type": "integer"},
                            "tid": {"type": "integer"}, "ts": {"type": "number"},
                            "dur": {"type": "number", "minimum": 0},
                            "args": {"type": "object"}}},
            {"type": "object", "required": ["ph", "name", "pid", "args"],
             "properties": {"ph": {"const": "M"},
                            "name": {"enum": ["process_name", "thread_name",
                                              "process_sort_index", "thread_sort_index"]},
                            "pid": {"type": "integer"}, "tid": {"type": "integer"},
                            "args": {"type": "object"}}},
        ]}},
        "displayTimeUnit": {"enum": ["ms", "ns"]},
        "otherData": {"type": "object"},
    },
}


def validate(trace: dict) -> None:
    """Schema (jsonschema when installed) + the writer's own structural/nesting check."""
    from dgfpga.perf.trace import check_trace_events
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema comes with check-jsonschema
        jsonschema = None
    if jsonschema is not None:
        jsonschema.validate(trace, TRACE_SCHEMA)
    assert check_trace_events(trace) == []
    json.loads(json.dumps(trace))          # plain JSON (no NaN, no numpy types)


@pytest.fixture(scope="module")
def plan():
    """A packed plan of resdg20_cifar10 from shapes alone (random weights; numpy only)."""
    from dgfpga.contract.engine_config import load_config
    from dgfpga.perf.netshapes import shape_plan
    return shape_plan("resdg20_cifar10", load_config("small"))


def _image(plan, name="img", seed=0, dense=False):
    """A fake outcome: cycles per record, gate counts per block."""
    rng = np.random.default_rng(seed)
    kinds = {"stem": "conv", "conv1": "conv", "conv2": "conv", "downsample": "conv"}
    recs = [{"index": i, "name": r.name, "kind": kinds.get(r.kind, r.kind),
             "cycles": int(rng.integers(50, 5000))} for i, r in enumerate(plan.records)]
    counts = [[int(b.grid[0] * b.grid[1]), int(b.conv1.template.out_c) // 2]
              for b in plan.blocks]
    return {"name": name, "records": recs, "gate_counts": counts, "dense": dense,
            "cycles": sum(r["cycles"] for r in recs)}


def test_trace_validates_and_times_are_the_cycle_log(plan):
    from dgfpga.perf.trace import PHASES, build_trace
    imgs = [_image(plan, "a", 0), _image(plan, "b", 1, dense=True)]
    tr = build_trace(plan, plan.cfg, "rtl", imgs)
    validate(tr)
    us = 1e6 / plan.cfg.clock_hz
    for pid, img in enumerate(imgs, start=1):
        ev = [e for e in tr["traceEvents"] if e["pid"] == pid and e["ph"] == "X"]
        recs = [e for e in ev if not e["cat"].endswith("phase")]
        assert [e["name"] for e in recs] == [r["name"] for r in img["records"]]
        pos = [k for k, e in enumerate(ev) if not e["cat"].endswith("phase")] + [len(ev)]
        for j, (e, r) in enumerate(zip(recs, img["records"])):
            assert e["dur"] == pytest.approx(r["cycles"] * us)
            assert e["args"]["source"] == "engine cycle log (rtl)"
            phases = ev[pos[j] + 1:pos[j + 1]]      # the events written after the record
            assert all(p["cat"] == f"{r['kind']} phase" for p in phases)
            assert all(e["ts"] - 1e-9 <= p["ts"] and p["ts"] + p["dur"] <= e["ts"] + e["dur"]
                       + 1e-9 for p in phases)
            if r["kind"] == "head":
                assert phases == []
                continue
            names = tuple(p["name"] for p in phases)
            assert names == PHASES[r["kind"]] or names in (("fetch (skipped)",),
                                                           PHASES[r["kind"]][1:]), names
            assert sum(p["dur"] for p in phases) == pytest.approx(e["dur"])
            assert all(p["args"]["source"] == "cycle model" for p in phases)
        t_end = recs[-1]["ts"] + recs[-1]["dur"]
        assert t_end == pytest.approx(img["cycles"] * us)
    # the numpy level's log is the cycle model's: the record slices say so
    tn = build_trace(plan, plan.cfg, "numpy", imgs[:1])
    x = next(e for e in tn["traceEvents"] if e["ph"] == "X")
    assert "analytical cycle model" in x["args"]["source"]


def test_phase_shares_follow_the_cycle_model(plan):
    """A conv's compute share is the model's compute cycles over the three terms; a
    1-channel gate makes fewer MAC steps (compute share falls); the dense gate reads no sums."""
    from dgfpga.contract.formats import DESCRIPTOR_BYTES
    from dgfpga.perf.trace import record_phases
    raw = lambda i: bytes(plan.program[i * DESCRIPTOR_BYTES:(i + 1) * DESCRIPTOR_BYTES])  # noqa
    kinds = [r.kind for r in plan.records]
    c1 = kinds.index("conv1")
    g = kinds.index("gate")
    b0 = plan.blocks[0]
    n = b0.grid[0] * b0.grid[1]
    c = b0.conv1.template.out_c
    full = dict(record_phases(raw(c1), "conv", plan.cfg, (n, c)))
    one = dict(record_phases(raw(c1), "conv", plan.cfg, (n, 1)))
    assert sum(full.values()) == pytest.approx(1.0) and set(full) == {"weights load",
                                                                      "compute", "write-back"}
    assert one["compute"] != full["compute"]
    assert record_phases(raw(c1), "conv", plan.cfg, (0, 0)) == [("fetch (skipped)", 1.0)]
    dense = dict(record_phases(raw(g), "gate", plan.cfg, (n, c), dense=True))
    gated = dict(record_phases(raw(g), "gate", plan.cfg, (n, c), dense=False))
    assert "sums read" not in dense and gated["sums read"] > 0


def test_the_checker_catches_a_broken_trace(plan):
    """Mutations a viewer would reject: a phase sticking out of its record, a negative
    duration, a missing pid."""
    from dgfpga.perf.trace import build_trace, check_trace_events
    tr = build_trace(plan, plan.cfg, "rtl", [_image(plan)])
    assert check_trace_events(tr) == []
    xs = [e for e in tr["traceEvents"] if e["ph"] == "X"]
    bad = json.loads(json.dumps(tr))
    phase = next(e for e in bad["traceEvents"] if e["ph"] == "X" and "phase" in e["cat"])
    phase["dur"] *= 100
    assert any("overlaps" in p for p in check_trace_events(bad))
    bad = json.loads(json.dumps(tr))
    next(e for e in bad["traceEvents"] if e["ph"] == "X")["dur"] = -1
    assert check_trace_events(bad)
    bad = json.loads(json.dumps(tr))
    del next(e for e in bad["traceEvents"] if e["ph"] == "X")["pid"]
    assert check_trace_events(bad)
    assert xs
