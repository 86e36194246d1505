"""Chrome trace-event JSON of simulated engine starts (opens in the Perfetto UI, ui.perfetto.dev,
and in chrome://tracing): what `dgfpga simulate --trace` writes.

One process per image ("image NAME", one thread "engine start"); per record of the network
program one complete ("X") slice whose length is the record's cycles from the engine's cycle
log (args.source = "engine cycle log (LEVEL)"; on the numpy level that log holds the
analytical cycle model's counts, the args say so). Inside each conv and gate record, nested
slices for its phases, split by the cycle model (args.source = "cycle model"):

    conv  weights load (weight + parameter bytes / B) | compute (the model's MAC-array
          cycles: k*k * pixels * n-groups per m-group + overheads) | write-back (output
          bytes / B), from `dgfpga.perf.cycle_model.layer_cycles` of the record's effective
          descriptor (the gate's tile/channel counts of that image)
    gate  sums read | params | masks + lists write: shares of the bytes each section of
          the gate unit streams (`gate_record_terms`' streams)

The phase slices are each term's SHARE of the record's measured cycles laid end to end: in
the engine the phases overlap (double buffering), so their order shows what the cycles are
spent on, not when. Timestamps and durations are microseconds at the configuration's clock
(`displayTimeUnit` ns). A conv record the gate left empty has one phase "fetch (skipped)".
"""
from __future__ import annotations

import json
from typing import Optional, Sequence

import numpy as np

__all__ = ["record_phases", "build_trace", "trace_json", "check_trace_events"]

#: the phase names per record kind (one source for the writer, the docs and the tests)
PHASES = {"conv": ("weights load", "compute", "write-back"),
          "gate": ("sums read", "params", "masks+lists write")}


def _conv_shares(raw: bytes, cfg, counts, params) -> list[tuple[str, float]]:
    from dgfpga.contract import program as P
    from dgfpga.contract.formats import unpack_descriptor
    from dgfpga.perf.cycle_model import layer_cycles
    d = unpack_descriptor(raw, cfg)
    if getattr(d, "from_gate", False):
        nt, nc = counts if counts is not None else (d.n_active_tiles, d.n_active_out)
        d = P.effective_descriptor(d, nt, nc)
        if d is None:
            return [("fetch (skipped)", 1.0)]
    lc = layer_cycles(d, cfg, params)
    B = params.bytes_per_cycle(cfg)
    weights = lc.weight_bytes / B        # the model's own count (im2col rows included)
    active = d.n_active_tiles / max(d.grid_h * d.grid_w, 1)
    out_bytes = active * d.out_h * d.out_w * d.n_active_out * (2 if d.residual else 1)
    terms = [weights, float(lc.compute_cycles), out_bytes / B]
    return _normalise(list(zip(PHASES["conv"], terms)))


def _gate_shares(raw: bytes, cfg, counts, dense: bool) -> list[tuple[str, float]]:
    from dgfpga.contract import program as P
    from dgfpga.contract.formats import bitmap_bytes
    g = P.unpack_gate_record(raw, cfg, None)
    n = g.gh * g.gw
    nt, nc = counts if counts is not None else (n, g.out_c)
    c, h = g.in_c, g.hidden
    if dense:     # DENSE: only the checked sections (bin table, reciprocals, biases)
        sums, prm = 0.0, 2 * (g.gh + g.gw) + 4 * (n + 1) + 8 + 8 * h + 8 * g.out_c
    else:         # pooled per bin + the channel totals; fc1/m1/o1/fc2/b2, spatial weights
        sums = 2 * 4 * g.st_h * g.st_w * c
        prm = (2 * (g.gh + g.gw) + 4 * (n + 1) + 18 * c + 2 * h * c + 12 * h
               + 2 * g.out_c * h + 8 * g.out_c)
    writes = (P.mask_bytes(n, g.out_c) + 4 * nt + 4 * nc + bitmap_bytes(n)
              + (2 * (n - nt) if g.res_list else 0))
    return _normalise(list(zip(PHASES["gate"], (float(sums), float(prm), float(writes)))))


def _normalise(parts):
    total = sum(v for _, v in parts)
    if total <= 0:
        return [(parts[0][0], 1.0)]
    return [(k, v / total) for k, v in parts if v > 0]


def record_phases(raw: bytes, kind: str, cfg, counts: Optional[Sequence[int]] = None,
                  dense: bool = False, params=None) -> list[tuple[str, float]]:
    """[(phase, share of the record's cycles)] of one program record by the cycle model;
    `counts` = (active tiles, active channels) its block's gate decided for this image.
    Head records have no phases ([])."""
    from dgfpga.perf.cycle_model import CycleParams
    params = params or CycleParams()
    if kind == "conv":
        return _conv_shares(raw, cfg, counts, params)
    if kind == "gate":
        return _gate_shares(raw, cfg, counts, dense)
    return []


def build_trace(plan, cfg, level: str, images: Sequence[dict], params=None) -> dict:
    """The trace-event document of `images` (dicts as in cycles.json's "images", plus
    "gate_counts": per block [active tiles, active channels] and "dense"), each one start of
    `plan`'s program (`dgfpga.runtime.packer.NetworkPlan`) on `cfg`."""
    from dgfpga.contract.formats import DESCRIPTOR_BYTES
    us = 1e6 / float(cfg.clock_hz)
    log_src = f"engine cycle log ({level})"
    if level == "numpy":
        log_src += ": the numpy level's log holds the analytical cycle model's counts"
    blocks = [r.block for r in plan.records]
    events: list[dict] = []
    for pid, img in enumerate(images, start=1):
        events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 1,
                       "args": {"name": f"image {img['name']}"}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 1,
                       "args": {"sort_index": pid}})
        events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": 1,
                       "args": {"name": f"engine start ({level}, "
                                        f"{'dense' if img.get('dense') else 'gated'})"}})
        counts = img.get("gate_counts") or []
        t = 0
        for rec in img.get("records", []):
            cyc = int(rec["cycles"])
            i = int(rec["index"])
            events.append({"ph": "X", "name": rec["name"], "cat": rec["kind"], "pid": pid,
                           "tid": 1, "ts": t * us, "dur": cyc * us,
                           "args": {"cycles": cyc, "record": i, "source": log_src}})
            b = blocks[i] if i < len(blocks) else -1
            raw = bytes(plan.program[i * DESCRIPTOR_BYTES:(i + 1) * DESCRIPTOR_BYTES])
            cnt = counts[b] if 0 <= b < len(counts) else None
            phases = record_phases(raw, rec["kind"], cfg, cnt, bool(img.get("dense")),
                                   params) if cyc > 0 else []
            start = t
            for k, (phase, share) in enumerate(phases):
                end = t + cyc if k == len(phases) - 1 else start + share * cyc
                events.append({"ph": "X", "name": phase, "cat": f"{rec['kind']} phase",
                               "pid": pid, "tid": 1, "ts": start * us,
                               "dur": (end - start) * us,
                               "args": {"cycles": round(end - start, 1),
                                        "share": round(share, 4), "source": "cycle model",
                                        "note": "share of the record's cycles; in the "
                                                "engine the phases overlap"}})
                start = end
            t += cyc
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"tool": "dgfpga simulate", "level": level, "config": cfg.name,
                          "clock_hz": float(cfg.clock_hz),
                          "time": "microseconds at the configuration's clock"}}


def trace_json(trace: dict) -> str:
    return json.dumps(trace, separators=(",", ":")) + "\n"


def check_trace_events(trace) -> list[str]:
    """Problems of a trace-event JSON object (the Trace Event Format's JSON Object
    Format: traceEvents; "X" events with name, ph, pid, tid, ts, dur >= 0; "M" metadata
    with args) and of its nesting (a slice lies inside its enclosing slice on the thread,
    as the Perfetto importer requires of complete events). [] = valid."""
    bad = []
    if not isinstance(trace, dict) or not isinstance(trace.get("traceEvents"), list):
        return ["not an object with a traceEvents list"]
    stacks: dict = {}
    for n, e in enumerate(trace["traceEvents"]):
        if not isinstance(e, dict) or e.get("ph") not in ("X", "M"):
            bad.append(f"event {n}: ph {e.get('ph') if isinstance(e, dict) else e!r}")
            continue
        missing = [k for k, typ in (("name", str), ("pid", int), ("tid", int))
                   if not isinstance(e.get(k), typ)]
        if missing:
            bad.append(f"event {n}: {', '.join(missing)} missing or of the wrong type")
            continue
        if e["ph"] == "M":
            if not isinstance(e.get("args"), dict):
                bad.append(f"event {n}: metadata without args")
            continue
        ts, dur = e.get("ts"), e.get("dur")
        if not all(isinstance(v, (int, float)) and np.isfinite(v) for v in (ts, dur)) or dur < 0:
            bad.append(f"event {n}: ts/dur {ts!r}/{dur!r}")
            continue
        st = stacks.setdefault((e["pid"], e["tid"]), [])
        eps = 1e-6 * max(1.0, abs(ts + dur))
        while st and ts >= st[-1] - eps:
            st.pop()
        if st and ts + dur > st[-1] + eps:
            bad.append(f"event {n} ({e['name']}): overlaps its enclosing slice")
        st.append(ts + dur)
    return bad
