"""`dgfpga simulate`: a bundle's network on the simulated engine, checked bit for bit,
with cycles, a JUnit report, a Markdown summary, budgets, baselines and traces (issue 18).

Each image runs through the one-start engine at the chosen level through the host runtime
(`dgfpga_host.runner.NetworkRunner` over `dgfpga_host.sim_devices.make_device(level, cfg)`:
the code that drives the board), and its logits and every gate mask are compared with the
golden model (`dgfpga.numerics.golden.run_golden` on the bundle's quantized model). A
failure names the first difference: the block and gate (spatial tile / channel) of a mask,
or the logit index and its byte offset in the int64 logits.

Levels: numpy (interpreter; cycles from the analytical cycle model), csim (the HLS engine
compiled with g++; its cycles are the C-sim's trip-count ESTIMATE: the engine's CYCLES is a
free-running counter's difference, which has no clock in C-sim), rtl (the RTL under Verilator, fast harness; cycle-accurate), cocotb (the
RTL driven by cocotb + cocotbext-axi with the runner inside the simulation: only the bundle's
self-check images, `--images selfcheck[:N]`; it reports total cycles and pass/fail per image,
no per-record cycles).

Jobs: one per image. Serial in this process with `jobs=1`; with `jobs > 1` on a Dask
`LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True)`, or on the Dask
scheduler at `scheduler` (its workers must see the bundle path and the dgfpga install).
Simulator builds (Verilator, g++) happen once in this process before any job is sent, and
are cached on disk where every worker finds them. With `--wave` and a scheduler, the first
image (the traced one) runs in this process, so its waveform is written on this machine.

Outputs (folder OUT, written transactionally through `dgfpga.outdir`): cycles.json (format
`CYCLES_FORMAT`), junit.xml, summary.md, and the trace / waveform when asked (a bare file
name or a path inside OUT goes into OUT, another path is written where it says).
Exit status: 0 pass, 1 a mismatch, an engine error, a regression or the budget exceeded.

Regression rule (`compare`): a layer regresses when its median cycles exceed the baseline's
by more than max(max_regression * baseline, MIN_SLACK_CYCLES); the total when it exceeds
the baseline's total by more than max_regression * baseline (no absolute slack).
max_regression defaults to DEFAULT_REGRESSION (2%) when a baseline is given.
"""
from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from dgfpga.errors import DgfpgaError

__all__ = ["LEVELS", "CYCLES_FORMAT", "CYCLES_VERSION", "MIN_SLACK_CYCLES", "SimulateError",
           "SimOptions", "Regression", "parse_regression", "first_difference",
           "run_image_job", "run_jobs", "cycles_document", "load_cycles", "compare",
           "junit_xml", "summary_markdown", "simulate", "default_timeout_s"]

LEVELS = ("rtl", "cocotb", "csim", "numpy")
CYCLES_FORMAT = "dgfpga-cycles"
CYCLES_VERSION = 1
#: absolute slack of the per-layer regression check, cycles (a 2% rule would flag a
#: 60-cycle record for one cycle; records that small are fetch/dispatch costs)
MIN_SLACK_CYCLES = 100
#: --max-regression when a --baseline is given without it
DEFAULT_REGRESSION = 0.02


def default_timeout_s(level: str) -> float:
    """The engine timeout per start (one image) when --timeout is not given: the level's
    device's own default (`Device.default_timeout_s`; cocotb runs the RTL)."""
    from dgfpga_host import sim_devices
    cls = {"numpy": sim_devices.NumpyDevice, "csim": sim_devices.CsimDevice,
           "rtl": sim_devices.RtlDevice, "cocotb": sim_devices.RtlDevice}[level]
    return float(cls.default_timeout_s)

_KIND = {"stem": "conv", "conv1": "conv", "conv2": "conv", "downsample": "conv",
         "gate": "gate", "head": "head"}


class SimulateError(DgfpgaError):
    """A `dgfpga simulate` input (bundle, images, baseline, options) is wrong."""


@dataclass
class SimOptions:
    bundle: Path
    level: str = "numpy"
    images: Optional[str] = None
    out: Path = Path("sim-report")
    jobs: int = 1
    scheduler: Optional[str] = None
    dense: bool = False
    baseline: Optional[Path] = None
    max_regression: Optional[float] = None
    budget_cycles: Optional[int] = None
    update_baseline: bool = False
    trace: Optional[Path] = None
    wave: Optional[Path] = None
    latency: int = 0
    stall: int = 0
    timeout: Optional[float] = None
    force: bool = False
    progress: bool = True


# ----------------------------------------------------------------------------- parsing
def parse_regression(text: str) -> float:
    """'2%' or '0.02' -> 0.02 (finite, 0 <= r <= 10)."""
    t = str(text).strip()
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise SimulateError(f"--max-regression {text!r}: give a percentage (2%) or a "
                            f"fraction (0.02)") from None
    if not math.isfinite(v) or not 0 <= v <= 10:
        raise SimulateError(f"--max-regression {text!r}: must be between 0% and 1000%")
    return v


# ----------------------------------------------------------------------------- checking
def _mask_difference(block: int, gate: str, unit: str, got, want) -> Optional[str]:
    """The first differing decision of one gate's mask, or None."""
    got, want = np.asarray(got, bool).reshape(-1), np.asarray(want, bool).reshape(-1)
    if got.shape != want.shape:
        return f"block {block} {gate} gate: mask shape {got.shape}, golden {want.shape}"
    if np.array_equal(got, want):
        return None
    i = int(np.flatnonzero(got != want)[0])
    return (f"block {block} {gate} gate: {unit} {i} is {'on' if got[i] else 'off'}, golden "
            f"{'on' if want[i] else 'off'} ({int((got != want).sum())} {unit}s differ)")


def first_difference(logits, spatial, channel, g_logits, g_spatial, g_channel
                     ) -> Optional[str]:
    """The first difference between an engine run and the golden model, in network order
    (block by block: spatial mask, channel mask; then the logits), or None."""
    for b, (s, c, gs, gc) in enumerate(zip(spatial, channel, g_spatial, g_channel)):
        diff = (_mask_difference(b, "spatial", "tile", s, gs)
                or _mask_difference(b, "channel", "channel", c, gc))
        if diff:
            return diff
    a = np.asarray(logits, "<i8").reshape(-1)
    g = np.asarray(g_logits, "<i8").reshape(-1)
    if a.shape != g.shape:
        return f"logits: {a.size} values, golden {g.size}"
    if not np.array_equal(a, g):
        k = int(np.flatnonzero(a != g)[0])
        ab, gb = a.view(np.uint8), g.view(np.uint8)
        byte = int(np.flatnonzero(ab != gb)[0])
        return (f"logit {k}: {int(a[k])}, golden {int(g[k])} (first differing byte: offset "
                f"{byte} of the int64 logits, 0x{ab[byte]:02x} vs 0x{gb[byte]:02x})")
    return None


# ----------------------------------------------------------------------------- jobs
_RUNNERS: dict = {}     # per process: (bundle, level, latency, stall, timeout) -> runner


def _make_device(level: str, cfg, latency: int = 0, stall: int = 0,
                 wave: Optional[Path] = None):
    from dgfpga_host.sim_devices import make_device
    if level == "rtl":
        kw = {"latency": latency, "stall_pct": stall}
        if wave is not None:
            kw["wave"] = Path(wave)
        return make_device("rtl", cfg, **kw)
    if level == "numpy":                  # its cycles: the model, with the RTL calibration
        from dgfpga.perf.calibration import shipped_params
        return make_device("numpy", cfg, cycle_params=shipped_params(cfg)[0])
    return make_device(level, cfg)


def _close(device) -> None:
    """Close a device (the RTL device closes its simulator: no work folder is left)."""
    try:
        device.close()
    except Exception:  # pragma: no cover - best effort at the end of a run
        pass


def _runner(task: dict):
    """The NetworkRunner of a task: cached per worker process (one bundle load and one
    simulator per process), except for the waveform job (its own device)."""
    from dgfpga_host.bundle import load_bundle
    from dgfpga_host.runner import NetworkRunner
    key = (task["bundle"], task["level"], task["latency"], task["stall"], task["timeout"])
    if task.get("wave") is None and key in _RUNNERS:
        return _RUNNERS[key]
    b = load_bundle(task["bundle"])
    dev = _make_device(task["level"], b.cfg, task["latency"], task["stall"], task.get("wave"))
    runner = NetworkRunner(b, dev, timeout_s=task["timeout"])
    if task.get("wave") is None:
        _RUNNERS[key] = runner
    return runner


def run_image_job(task: dict) -> dict:
    """One image at one level (a picklable job for Dask workers and the serial loop):
    run it in one engine start, compare with the golden model, return its outcome (a
    JSON-able dict: name, pass, cycles, macs, records, failure, gate_counts, wall_s,
    sim_cycles, sim_wall_s, bytes_exchanged)."""
    from dgfpga.numerics.golden import run_golden
    from dgfpga_host.device import DeviceError
    t0 = time.perf_counter()
    out = {"name": task["name"], "pass": False, "cycles": 0, "macs": 0, "records": [],
           "failure": None, "error": False, "gate_counts": [], "dense": task["dense"],
           "sim_cycles": 0, "sim_wall_s": 0.0, "bytes_exchanged": None}
    runner = _runner(task)
    dev = runner.device
    before = (getattr(dev, "sim_cycles", 0), getattr(dev, "sim_wall_s", 0.0),
              getattr(dev, "bytes_exchanged", None))
    x = np.asarray(task["image"], np.int8)
    try:
        try:
            r = runner.run_image(x, dense=task["dense"])
        except (DeviceError, OSError, RuntimeError) as exc:
            out.update(failure=f"engine error: {type(exc).__name__}: {exc}", error=True)
            return out
        g = run_golden(runner.qm, x[None], masks="dense" if task["dense"] else None,
                       keep_layers=False)
        if task["dense"]:
            gs = [np.ones_like(s) for s in r.spatial]
            gc = [np.ones_like(c) for c in r.channel]
        else:
            gs = [m.spatial[0] for m in g.masks]
            gc = [m.channel[0] for m in g.masks]
        diff = first_difference(r.logits_int, r.spatial, r.channel, g.logits_int[0], gs, gc)
        recs = runner.plan.records
        out.update({
            "pass": diff is None, "failure": diff, "cycles": int(r.cycles),
            "macs": int(r.macs),
            "records": [{"index": i, "name": rec.name, "kind": _KIND.get(rec.kind, rec.kind),
                         "cycles": int(c)} for i, (rec, c) in enumerate(zip(recs, r.cycle_log))],
            "gate_counts": [[int(np.count_nonzero(s)), int(np.count_nonzero(c))]
                            for s, c in zip(r.spatial, r.channel)],
        })
        after = (getattr(dev, "sim_cycles", 0), getattr(dev, "sim_wall_s", 0.0),
                 getattr(dev, "bytes_exchanged", None))
        out["sim_cycles"] = int(after[0] - before[0])
        out["sim_wall_s"] = float(after[1] - before[1])
        if after[2] is not None:
            out["bytes_exchanged"] = int(after[2] - (before[2] or 0))
        return out
    finally:
        out["wall_s"] = time.perf_counter() - t0
        if task.get("wave") is not None:
            _close(dev)


def close_runners(bundle: Optional[str] = None) -> None:
    """Close the cached runners' devices of this process (of `bundle`, or all)."""
    for key in [k for k in _RUNNERS if bundle is None or k[0] == bundle]:
        _close(_RUNNERS.pop(key).device)


def _prebuild(level: str, bundle) -> None:
    """Build the level's simulator once here (cached on disk) so that parallel jobs find it
    and do not all compile it."""
    if level == "csim":
        from dgfpga_host.sim_devices import CsimDevice
        CsimDevice(bundle.cfg)
    elif level == "rtl":
        from dgfpga.contract.formats import DESCRIPTOR_BYTES
        dev = _make_device("rtl", bundle.cfg)
        prepare = getattr(dev, "_prepare", None)
        if prepare is not None:
            regions = {k: np.zeros(int(v), np.uint8) for k, v in bundle.plan.region_bytes.items()}
            prepare(bundle.plan.record_count * DESCRIPTOR_BYTES, regions)
        _close(dev)


def _bar(total: int, desc: str, progress: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="image", disable=not progress, leave=False)


def run_jobs(tasks: Sequence[dict], jobs: int = 1, scheduler: Optional[str] = None,
             progress: bool = True, desc: str = "simulate") -> list[dict]:
    """Outcomes of `tasks` in task order: serial in this process (jobs=1, no scheduler),
    else on Dask distributed (a LocalCluster of `jobs` single-threaded worker processes,
    or the scheduler at `scheduler`)."""
    results: list = [None] * len(tasks)
    with _bar(len(tasks), desc, progress) as bar:
        if jobs <= 1 and not scheduler:
            for i, t in enumerate(tasks):
                results[i] = run_image_job(t)
                bar.update(1)
            return results
        from dgfpga.backends.cluster import dask_client
        with dask_client(jobs, scheduler, SimulateError) as client:
            from dask.distributed import as_completed
            try:
                futures = client.map(run_image_job, list(tasks), pure=False)
                index = {f.key: i for i, f in enumerate(futures)}
                for fut in as_completed(futures):
                    results[index[fut.key]] = fut.result()
                    bar.update(1)
            finally:
                try:     # each worker closes its simulators (their work folders go too)
                    client.run(close_runners)
                except Exception:  # pragma: no cover - a worker already gone
                    pass
    return results


def _cocotb_outcomes(opts: SimOptions, bundle, n: int, names: list) -> list[dict]:
    """Level cocotb: the runner inside the cocotb simulation on the bundle's first n
    self-check images (`dgfpga.backends.rtl_sim.run_host_cocotb`, which checks them
    against the golden outputs recorded in the bundle)."""
    from dgfpga.backends.rtl_sim import run_host_cocotb
    t0 = time.perf_counter()
    res = run_host_cocotb(bundle.path, bundle.cfg, images=n)
    wall = (time.perf_counter() - t0) / max(n, 1)
    mode = "dense" if opts.dense else "gated"
    out = []
    for i, r in enumerate(res[:n]):
        ok = bool(r[f"{mode}_ok"])
        out.append({"name": names[i], "pass": ok, "cycles": int(r[f"{mode}_cycles"]),
                    "macs": int(r[f"{mode}_macs"]), "records": [], "gate_counts": [],
                    "failure": None if ok else ("logits or masks differ from the golden "
                                                "outputs in the bundle (the cocotb testbench "
                                                "reports pass/fail only: rerun at level rtl "
                                                "for the first difference)"),
                    "error": False, "dense": opts.dense, "wall_s": wall, "sim_cycles": 0,
                    "sim_wall_s": 0.0, "bytes_exchanged": None})
    return out


# ----------------------------------------------------------------------------- documents
def _median(xs) -> float:
    return float(np.median(np.asarray(xs, np.float64))) if len(xs) else 0.0


#: where each level's cycles come from (cycles.json `cycles_source`, summary, log)
CYCLES_SOURCE = {
    "numpy": "analytical cycle model",
    "csim": "C-sim estimate (trip counts; on the board CYCLES is a counter)",
    "rtl": "engine cycle counter (RTL, cycle-accurate)",
    "cocotb": "engine cycle counter (RTL, cycle-accurate)",
}


def cycles_document(bundle, level: str, dense: bool, outcomes: Sequence[dict],
                    wall_s: float) -> dict:
    """The cycles.json document (format CYCLES_FORMAT, version CYCLES_VERSION)."""
    from dgfpga.contract.regmap import engine_id
    layers: dict = {}
    for o in outcomes:
        for r in o["records"]:
            layers.setdefault(r["name"], []).append(r["cycles"])
    sim_c = sum(o.get("sim_cycles", 0) for o in outcomes)
    sim_w = sum(o.get("sim_wall_s", 0.0) for o in outcomes)
    bx = [o.get("bytes_exchanged") for o in outcomes if o.get("bytes_exchanged") is not None]
    doc = {
        "format": CYCLES_FORMAT, "version": CYCLES_VERSION, "config": bundle.cfg.name,
        "engine_id": f"0x{engine_id(bundle.cfg):016X}",
        "bundle_sha256": bundle.manifest.get("model_sha256"),
        "level": level, "dense": bool(dense), "cycles_source": CYCLES_SOURCE[level],
        "images": [{"name": o["name"], "pass": bool(o["pass"]), "cycles": int(o["cycles"]),
                    "macs": int(o["macs"]), "records": o["records"]} for o in outcomes],
        "layers": {k: _median(v) for k, v in layers.items()},
        "total": _median([o["cycles"] for o in outcomes]),
        "wall_s": round(float(wall_s), 3),
        "sim_cycles_per_s": (sim_c / sim_w) if sim_w > 0 else None,
    }
    if bx:
        doc["bytes_exchanged"] = int(sum(bx))
    return doc


def load_cycles(path) -> dict:
    """A cycles.json written by `dgfpga simulate` (checked: format, version, fields)."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise SimulateError(f"--baseline {p}: no such file (write one with --update-baseline)"
                            ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SimulateError(f"--baseline {p}: unreadable ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != CYCLES_FORMAT:
        raise SimulateError(f"--baseline {p}: not a {CYCLES_FORMAT} file (a cycles.json of "
                            f"dgfpga simulate)")
    if doc.get("version") != CYCLES_VERSION:
        raise SimulateError(f"--baseline {p}: version {doc.get('version')!r}, this dgfpga "
                            f"reads {CYCLES_VERSION}: rewrite it with --update-baseline")
    ok = (isinstance(doc.get("layers"), dict) and isinstance(doc.get("total"), (int, float))
          and all(isinstance(v, (int, float)) for v in doc["layers"].values()))
    if not ok:
        raise SimulateError(f"--baseline {p}: 'layers' (name -> cycles) or 'total' missing "
                            f"or not numbers")
    return doc


@dataclass
class Regression:
    """One compared figure: a layer's (or the total's) median cycles against the baseline."""
    name: str
    base: float
    now: float
    allowed: float           # the largest accepted value
    regressed: bool

    @property
    def change(self) -> float:
        return (self.now - self.base) / self.base if self.base else math.inf * (self.now > 0)


def compare(current: dict, baseline: dict, max_regression: float
            ) -> tuple[list[Regression], list[str]]:
    """(rows: the total first, then every layer in both documents; notes: layers only in
    one of them, config or image differences). See the module doc for the rule."""
    r = float(max_regression)
    rows = [Regression("total", float(baseline["total"]), float(current["total"]),
                       float(baseline["total"]) * (1 + r), False)]
    rows[0].regressed = rows[0].now > rows[0].allowed
    notes = []
    bl, cl = baseline["layers"], current["layers"]
    for name, now in cl.items():
        if name not in bl:
            continue
        base = float(bl[name])
        allowed = base + max(r * base, MIN_SLACK_CYCLES)
        rows.append(Regression(name, base, float(now), allowed, float(now) > allowed))
    new = [n for n in cl if n not in bl]
    gone = [n for n in bl if n not in cl]
    if new:
        notes.append(f"layers not in the baseline: {', '.join(new[:8])}"
                     + (" ..." if len(new) > 8 else ""))
    if gone:
        notes.append(f"baseline layers not in this run: {', '.join(gone[:8])}"
                     + (" ..." if len(gone) > 8 else ""))
    for k in ("config", "engine_id", "bundle_sha256"):
        if baseline.get(k) != current.get(k):
            notes.append(f"{k} differs from the baseline: {baseline.get(k)} -> {current.get(k)}")
    bn = [i.get("name") for i in baseline.get("images", [])]
    cn = [i["name"] for i in current.get("images", [])]
    if bn and bn != cn:
        notes.append(f"the baseline has other images ({len(bn)}) than this run ({len(cn)}): "
                     f"medians compared")
    return rows, notes


def regression_table(rows: Sequence[Regression], only_regressed: bool = False,
                     top: Optional[int] = None) -> str:
    """A Markdown table of compared figures (worst relative change first after the total)."""
    sel = [x for x in rows if x.regressed or not only_regressed]
    head = [x for x in sel if x.name == "total"]
    rest = sorted((x for x in sel if x.name != "total"), key=lambda x: -x.change)
    sel = head + (rest[:top] if top else rest)
    lines = ["| layer | baseline | now | change | allowed | |", "|---|---:|---:|---:|---:|---|"]
    for x in sel:
        ch = "new" if not x.base else f"{100 * x.change:+.2f}%"
        lines.append(f"| {x.name} | {x.base:.0f} | {x.now:.0f} | {ch} | {x.allowed:.0f} | "
                     f"{'REGRESSED' if x.regressed else 'ok'} |")
    return "\n".join(lines)


def junit_xml(doc: dict, outcomes: Sequence[dict], extra_failures: Sequence[str] = ()) -> str:
    """The JUnit XML report: one test case per image and level (classname
    dgfpga.simulate.LEVEL, properties cycles and macs; a failure names the first difference),
    plus one test case "cycles" for the baseline/budget check when one was asked for."""
    try:
        from junitparser import (Error, Failure, JUnitXml, Properties, Property, TestCase,
                                 TestSuite)
    except ImportError as exc:  # pragma: no cover - a dependency of dgfpga
        raise SimulateError(f"junit.xml needs junitparser ({exc}): pip install junitparser"
                            ) from None
    level = doc["level"]
    suite = TestSuite(f"dgfpga.simulate.{level}")
    suite.add_property("config", doc["config"])
    suite.add_property("engine_id", doc["engine_id"])
    suite.add_property("dense", str(doc["dense"]).lower())
    for o in outcomes:
        case = TestCase(f"{o['name']} [{level}]", classname=f"dgfpga.simulate.{level}",
                        time=round(float(o.get("wall_s", 0.0)), 3))
        props = Properties()
        props.add_property(Property("cycles", str(int(o["cycles"]))))
        props.add_property(Property("macs", str(int(o["macs"]))))
        case.append(props)
        if not o["pass"]:
            res = (Error if o.get("error") else Failure)(o["failure"] or "differs", "mismatch")
            res.text = o["failure"] or ""
            case.result = [res]
        suite.add_testcase(case)
    if extra_failures is not None and doc.get("_checked"):
        case = TestCase("cycles vs baseline/budget", classname=f"dgfpga.simulate.{level}")
        if extra_failures:
            f = Failure("; ".join(extra_failures)[:500], "regression")
            f.text = "\n".join(extra_failures)
            case.result = [f]
        suite.add_testcase(case)
    suite.update_statistics()
    xml = JUnitXml("dgfpga simulate")
    xml.add_testsuite(suite)
    xml.update_statistics()
    text = xml.tostring()
    return text.decode("utf-8") if isinstance(text, bytes) else text


def summary_markdown(doc: dict, outcomes: Sequence[dict], rows: Optional[list],
                     notes: Sequence[str], failures: Sequence[str], bundle_path,
                     baseline: Optional[dict] = None) -> str:
    """summary.md: for a CI job summary ($GITHUB_STEP_SUMMARY)."""
    level = doc["level"]
    n_pass = sum(1 for o in outcomes if o["pass"])
    ok = n_pass == len(outcomes) and not failures
    src = CYCLES_SOURCE[level]
    lines = [f"## dgfpga simulate: {'PASS' if ok else 'FAIL'}",
             "",
             f"Bundle `{bundle_path}`, engine `{doc['config']}` ({doc['engine_id']}), level "
             f"**{level}** ({'dense' if doc['dense'] else 'gated'}; cycles: {src}). "
             f"{n_pass}/{len(outcomes)} images bit-exact with the golden model (logits and "
             f"every gate mask).", ""]
    bimg = {}
    if baseline:
        bimg = {i.get("name"): i.get("cycles") for i in baseline.get("images", [])}
    lines += ["| image | pass | cycles | MACs | cycles vs baseline |",
              "|---|---|---:|---:|---:|"]
    for o in outcomes:
        b = bimg.get(o["name"])
        vs = f"{100 * (o['cycles'] - b) / b:+.2f}%" if b else "-"
        lines.append(f"| {o['name']} | {'pass' if o['pass'] else 'FAIL'} | {o['cycles']} | "
                     f"{o['macs']} | {vs} |")
    lines += ["", f"Median total: {doc['total']:.0f} cycles"
              f" ({1e3 * doc['total'] / _clock(doc):.3f} ms at the engine clock)"
              if _clock(doc) else f"Median total: {doc['total']:.0f} cycles"]
    top = sorted(doc["layers"].items(), key=lambda kv: -kv[1])[:5]
    if top and doc["total"]:
        lines += ["", "Largest records (median cycles, share of the total): " + ", ".join(
            f"{k} {v:.0f} ({100 * v / doc['total']:.1f}%)" for k, v in top)]
    bad = [o for o in outcomes if not o["pass"]]
    if bad:
        lines += ["", "### Mismatches", ""]
        lines += [f"- {o['name']}: {o['failure']}" for o in bad[:20]]
    if rows is not None:
        lines += ["", "### Cycles vs baseline (total, then the largest per-layer changes)", "",
                  regression_table(rows, top=10)]
    if failures:
        lines += ["", "### Failed checks", ""] + [f"- {f}" for f in failures]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    lines += ["", f"Wall time: {doc['wall_s']:.1f} s"
              + (f" (simulator build {doc['build_s']:.1f} s)" if doc.get("build_s") else "")]
    if doc.get("sim_cycles_per_s"):
        lines[-1] += f"; simulated {doc['sim_cycles_per_s']:,.0f} cycles/s (Verilator harness)"
    if doc.get("bytes_exchanged") is not None:
        lines[-1] += f"; {doc['bytes_exchanged']:,} bytes exchanged with the harness"
    return "\n".join(lines) + "\n"


def _clock(doc: dict) -> float:
    return float(doc.get("_clock_hz") or 0.0)


# ----------------------------------------------------------------------------- command
def _side_path(arg: Optional[Path], out: Path) -> tuple[Optional[Path], Optional[str]]:
    """(external path, name inside OUT) of --trace/--wave: a bare file name or a path inside
    OUT goes into OUT; any other path is written where it says."""
    if arg is None:
        return None, None
    p = Path(arg)
    if len(p.parts) == 1:
        return None, p.name
    if p.resolve().parent == out.resolve():
        return None, p.name
    return p, None


def _image_names(spec: str, n: int) -> list[str]:
    from dgfpga.data.images import IMAGE_SUFFIXES, parse_spec
    s = parse_spec(spec, "--images", extra_kinds=("selfcheck",))
    if s.kind == "folder":
        files = sorted(p.name for p in s.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) == n:
            return files
    stem = {"npy": Path(str(s.path or "")).stem}.get(s.kind, s.kind)
    return [f"{stem}-{i:04d}" for i in range(n)]


def _load_inputs(opts: SimOptions, bundle) -> tuple[np.ndarray, list[str], str]:
    """int8 images [N, C, H, W], their names and the spec used; checked before any work."""
    from dgfpga.data.images import default_spec, load_images, parse_spec
    from dgfpga.numerics.qmodel import quantize_input
    qm = bundle.qmodel
    spec = opts.images or ("selfcheck:1" if opts.level == "cocotb"
                           else default_spec(qm.input_shape[1:], "check"))
    s = parse_spec(spec, "--images", extra_kinds=("selfcheck",))
    if s.kind == "selfcheck":
        sc = bundle.selfcheck
        if sc is None:
            raise SimulateError(f"--images {spec}: the bundle has no self-check images")
        if s.split is not None:
            raise SimulateError(f"--images {spec}: expected selfcheck[:N]")
        x = np.asarray(sc.images[:s.n or len(sc.images)], np.int8)
        return x, [f"selfcheck-{i:04d}" for i in range(len(x))], spec
    if opts.level == "cocotb":
        raise SimulateError(f"--level cocotb runs the bundle's self-check images inside the "
                            f"cocotb testbench: use --images selfcheck[:N] (or --level rtl "
                            f"for {spec})")
    imgs = load_images(spec, qm.input_shape, qm.mean, qm.std).images
    x = quantize_input(imgs, qm.input_scale)
    return x, _image_names(spec, len(x)), spec


def check_options(opts: SimOptions) -> None:
    """Option combinations, before anything is loaded."""
    if opts.level not in LEVELS:
        raise SimulateError(f"--level {opts.level!r}: choose one of {', '.join(LEVELS)}")
    if opts.update_baseline and opts.baseline is None:
        raise SimulateError("--update-baseline writes the run's cycles.json to the --baseline "
                            "path: give --baseline PATH")
    if opts.max_regression is not None and opts.baseline is None:
        raise SimulateError("--max-regression compares against a baseline: give --baseline "
                            "cycles.json")
    if opts.wave is not None and opts.level != "rtl":
        raise SimulateError(f"--wave dumps the RTL waveform: only with --level rtl, not "
                            f"{opts.level}")
    if (opts.latency or opts.stall) and opts.level != "rtl":
        raise SimulateError("--latency/--stall set the RTL memory model: only with --level rtl")
    if opts.level == "cocotb" and (opts.jobs > 1 or opts.scheduler):
        raise SimulateError("--level cocotb runs every image in one cocotb simulation: no "
                            "--jobs/--scheduler")
    needs = ["junitparser", "tqdm"] + (["dask.distributed"] if opts.jobs > 1 or opts.scheduler
                                       else [])
    for mod in needs:            # before a long run, not after it
        try:
            __import__(mod)
        except ImportError as exc:
            raise SimulateError(f"dgfpga simulate needs {mod.split('.')[0]} ({exc}): pip "
                                f"install {'dask[distributed]' if 'dask' in mod else mod}"
                                ) from None
    if opts.wave is not None:
        import inspect
        from dgfpga_host.sim_devices import RtlDevice
        if "wave" not in inspect.signature(RtlDevice.__init__).parameters:
            raise SimulateError("--wave: this dgfpga's RTL device cannot dump waveforms "
                                "(RtlDevice has no wave option): update dgfpga")


def simulate(opts: SimOptions, log=print) -> int:
    """Run `dgfpga simulate` (see the module doc); returns the exit status (0 or 1)."""
    from dgfpga.outdir import atomic_write_text, check_writable, output_dir, preflight
    from dgfpga_host.bundle import load_bundle
    check_options(opts)
    out = Path(opts.out)
    preflight(out, opts.force)                           # before any work
    trace_ext, trace_in = _side_path(opts.trace, out)
    wave_ext, wave_in = _side_path(opts.wave, out)
    for p in (trace_ext, wave_ext):
        if p is not None:
            check_writable(p, "file")
    baseline = None
    if opts.baseline is not None:
        if opts.update_baseline:
            check_writable(opts.baseline, "file")
            if Path(opts.baseline).exists():
                baseline = load_cycles(opts.baseline)
        else:
            baseline = load_cycles(opts.baseline)
    bundle = load_bundle(opts.bundle)
    x, names, spec = _load_inputs(opts, bundle)
    if baseline is not None:
        for k in ("level", "dense"):
            if k in baseline and baseline[k] != (opts.level if k == "level" else opts.dense):
                raise SimulateError(
                    f"--baseline {opts.baseline}: recorded with {k} {baseline[k]!r}, this run "
                    f"is {opts.level if k == 'level' else opts.dense!r}: compare like with "
                    f"like (or rewrite it with --update-baseline)")
    timeout = opts.timeout or default_timeout_s(opts.level)
    where = ("serial" if opts.jobs <= 1 and not opts.scheduler
             else "Dask: " + (opts.scheduler or f"{opts.jobs} local workers"))
    log(f"dgfpga simulate: {bundle.qmodel.arch} on engine '{bundle.cfg.name}', level "
        f"{opts.level}, {len(x)} images ({spec}), {where}")
    t0 = time.perf_counter()
    build_s = 0.0
    scratch = Path(tempfile.mkdtemp(prefix="dgfpga-simulate-"))
    try:
        if opts.level == "cocotb":
            outcomes = _cocotb_outcomes(opts, bundle, len(x), names)
        else:
            tb = time.perf_counter()
            _prebuild(opts.level, bundle)        # once, here: compile time reported apart
            build_s = time.perf_counter() - tb
            wave_tmp = scratch / "wave.fst" if opts.wave is not None else None
            base = {"bundle": str(Path(opts.bundle).resolve()), "level": opts.level,
                    "dense": bool(opts.dense), "latency": int(opts.latency),
                    "stall": int(opts.stall), "timeout": float(timeout)}
            tasks = [dict(base, name=n, image=img, wave=str(wave_tmp) if (i == 0 and wave_tmp)
                          else None) for i, (n, img) in enumerate(zip(names, x))]
            try:
                first = []
                if wave_tmp is not None and opts.scheduler:
                    first = [run_image_job(tasks.pop(0))]   # the wave file is written here
                outcomes = first + run_jobs(tasks, opts.jobs, opts.scheduler, opts.progress,
                                            f"simulate ({opts.level})")
            finally:
                close_runners(base["bundle"])
        wall = time.perf_counter() - t0
        doc = cycles_document(bundle, opts.level, opts.dense, outcomes, wall)
        doc["build_s"] = round(build_s, 3)
        doc["_clock_hz"] = float(bundle.cfg.clock_hz)
        failures, rows, notes = [], None, []
        if baseline is not None:
            rows, notes = compare(doc, baseline, opts.max_regression
                                  if opts.max_regression is not None else DEFAULT_REGRESSION)
            if not opts.update_baseline:          # updating accepts the new cycles
                failures += [f"{r.name}: {r.now:.0f} cycles, baseline {r.base:.0f} "
                             f"(allowed {r.allowed:.0f}) regressed" for r in rows
                             if r.regressed]
        if opts.budget_cycles is not None and doc["total"] > opts.budget_cycles:
            failures.append(f"median total {doc['total']:.0f} cycles exceeds the budget of "
                            f"{opts.budget_cycles}")
        doc["_checked"] = baseline is not None or opts.budget_cycles is not None
        junit = junit_xml(doc, outcomes, failures)
        summary = summary_markdown(doc, outcomes, rows, notes, failures, opts.bundle, baseline)
        clean = {k: v for k, v in doc.items() if not k.startswith("_")}
        text = json.dumps(clean, indent=1) + "\n"
        trace_text = None
        if opts.trace is not None:
            from dgfpga.perf.trace import build_trace, trace_json
            if opts.level == "cocotb":
                log("--trace: the cocotb level records no per-record cycles: the trace holds "
                    "no slices")
            trace_text = trace_json(build_trace(bundle.plan, bundle.cfg, opts.level, [
                dict(o, dense=opts.dense) for o in outcomes]))
        with output_dir(out, "simulate", force=opts.force) as tmp:
            (tmp / "cycles.json").write_text(text)
            (tmp / "junit.xml").write_text(junit)
            (tmp / "summary.md").write_text(summary)
            if trace_text is not None and trace_in:
                (tmp / trace_in).write_text(trace_text)
            if opts.wave is not None and wave_in and (scratch / "wave.fst").exists():
                shutil.move(str(scratch / "wave.fst"), str(tmp / wave_in))
        if trace_text is not None and trace_ext is not None:
            atomic_write_text(trace_ext, trace_text)
        if opts.wave is not None and wave_ext is not None and (scratch / "wave.fst").exists():
            shutil.move(str(scratch / "wave.fst"), str(wave_ext))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    bad = [o for o in outcomes if not o["pass"]]
    updated = False
    if opts.update_baseline:
        if bad:
            log(f"--update-baseline: not written: {len(bad)} image(s) are not bit-exact")
        elif failures:
            log("--update-baseline: not written: the budget is exceeded")
        else:
            atomic_write_text(opts.baseline, text)
            updated = True
    _print_result(doc, outcomes, rows, notes, failures, out, log, opts, updated)
    return 1 if bad or failures else 0


def _print_result(doc, outcomes, rows, notes, failures, out, log, opts, updated) -> None:
    n_pass = sum(1 for o in outcomes if o["pass"])
    log(f"{n_pass}/{len(outcomes)} images bit-exact (logits + every gate mask) at level "
        f"{doc['level']}; median {doc['total']:.0f} cycles per image"
        + f" ({CYCLES_SOURCE[doc['level']]})")
    for o in outcomes:
        if not o["pass"]:
            log(f"  FAIL {o['name']}: {o['failure']}")
    if rows is not None:
        reg = [r for r in rows if r.regressed]
        if reg and not opts.update_baseline:
            log("regressions against the baseline:")
            log(regression_table(rows, only_regressed=True))
        else:
            log(f"cycles vs baseline: total {rows[0].now:.0f} vs {rows[0].base:.0f} "
                f"({100 * rows[0].change:+.2f}%)" + ("" if reg else ", no layer regressed"))
        for n in notes:
            log(f"  note: {n}")
    reg = [f for f in failures if f.endswith(" regressed")]
    if reg:
        log(f"FAILED: {len(reg)} figure(s) regressed beyond the allowance (table above)")
    for f in failures:
        if f not in reg:
            log(f"FAILED: {f}")
    rate = doc.get("sim_cycles_per_s")
    log(f"wall {doc['wall_s']:.1f} s" + (f" (build {doc['build_s']:.1f} s)" if doc.get("build_s")
                                         else "")
        + (f", simulated {rate:,.0f} cycles/s per simulator" if rate else "")
        + f"; report in {out} (cycles.json, junit.xml, summary.md"
        + (", trace" if opts.trace else "") + (", wave" if opts.wave else "") + ")")
    if updated:
        log(f"baseline {opts.baseline} updated")
