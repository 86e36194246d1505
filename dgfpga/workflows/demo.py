"""`dgfpga demo`: the whole flow on the shipped DGNet and the embedded test images.

quantize -> golden model (accuracy, masks) -> build-hls (project + bundle) -> run the
bundle through the board runtime on the HLS C-sim (and the RTL with --rtl), one engine start
per image, bit-exact against the golden model -> cycles gated vs dense, starts and host CPU
per image -> predicted Ultra96 latency from the (calibrated) cycle model with the host's
measured CPU time -> resource estimate -> an HTML report with figures.

Every figure names the level that produced it. Exit status 1 if anything is not bit-exact.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from dgfpga.contract.engine_config import load_config
from dgfpga.errors import DgfpgaError
from dgfpga.outdir import check_writable, output_dir, preflight
from dgfpga.paths import shipped_checkpoint
from dgfpga.perf.calibration import params_path

__all__ = ["DemoOptions", "run_demo", "DEFAULT_CHECKPOINT", "PARAMS_FILE"]

# the shipped model (package data of dgfpga_models) and the shipped RTL calibration
DEFAULT_CHECKPOINT = shipped_checkpoint("resdg20_cifar10_d50")
PARAMS_FILE = params_path(load_config("small"))   # dgfpga calibrate, shipped in sim/results


@dataclass
class DemoOptions:
    out: Path
    checkpoint: Path = DEFAULT_CHECKPOINT
    arch: Optional[str] = None
    images: Optional[str] = None        # image spec (default by input size: the whole
                                        # embedded test split for 32x32 networks)
    calib: Optional[str] = None         # calibration image spec (default by input size:
                                        # embedded:256:train for 32x32 networks)
    n_sim: int = 20                     # images through the C-sim (gated and dense)
    rtl: int = 0                        # images through the RTL (0 = skip)
    config: str = "small"               # engine simulated here (the shipped model's size)
    board_config: str = "ultra96"       # engine the project and predictions are for
    force: bool = False                 # write into folders dgfpga did not create
                                        # (dgfpga.outdir: the user's files are kept)


class _Steps:
    def __init__(self, total: int):
        self.total, self.i, self.t0 = total, 0, time.perf_counter()

    def __call__(self, msg: str) -> None:
        self.i += 1
        print(f"[{self.i}/{self.total}] {msg} ({time.perf_counter() - self.t0:.0f} s)", flush=True)


def _progress(it, desc: str):
    try:
        from tqdm import tqdm
        return tqdm(it, desc=desc, leave=False)
    except ImportError:  # pragma: no cover
        return it


def run_demo(opts: DemoOptions) -> dict:
    """Run the demo; returns the summary dict (also written to OUT/report/summary.json)."""
    from dgfpga.workflows.build import build_hls
    from dgfpga.perf.cycle_model import CycleParams
    from dgfpga.perf.prediction import PAPER_TABLE3, paper_configurations, predict_masks
    from dgfpga.data.images import load_images
    from dgfpga.quant.evaluate import evaluate_quantized
    from dgfpga.quant.float_model import default_normalization, load_float_model
    from dgfpga.quant.quantizer import quantize_model
    from dgfpga.perf.resources import estimate
    from dgfpga_host.bundle import load_bundle
    from dgfpga_host.runner import NetworkRunner
    from dgfpga_host.sim_devices import make_device

    out = Path(opts.out)
    rep_dir = out / "report"
    step = _Steps(8 if opts.rtl else 7)
    if not Path(opts.checkpoint).is_file():
        raise DgfpgaError(f"checkpoint {opts.checkpoint} not found (the shipped ones are in "
                          f"{DEFAULT_CHECKPOINT.parent})")
    sim_cfg, board_cfg = load_config(opts.config), load_config(opts.board_config)
    # OUT holds project_<sim>, project_<board> and report/, each written transactionally
    # (dgfpga.outdir: complete or the previous one untouched); all are checked before work
    projects = {n: out / f"project_{n}" for n in (sim_cfg.name, board_cfg.name)}
    check_writable(out)
    if out.is_dir():
        for sub in [*projects.values(), rep_dir]:
            preflight(sub, opts.force)
    model, meta = load_float_model(opts.checkpoint, opts.arch)
    mean, std = default_normalization(model)
    shape = (3, model.in_h, model.in_w)
    # every input is checked before any work: calibration and evaluation images
    calib = load_images(opts.calib, shape, mean, std, purpose="calib", what="--calib").images
    # (the whole test split by default, as `dgfpga qreport` and `evaluate` use it: the
    # first k images of a split depend on its size, so a smaller draw would differ)
    ev_set = load_images(opts.images, shape, mean, std, purpose="eval", what="--images")
    images, labels, objects = ev_set.images, ev_set.labels, ev_set.object_masks
    try:                                # the inputs passed: OUT's parent was checked above
        out.mkdir(exist_ok=True)
    except OSError as exc:
        raise DgfpgaError(f"{out}: cannot create the output folder ({exc.strerror or exc})"
                          ) from None
    qm = quantize_model(model, calib, mean=mean, std=std)
    step(f"quantized {model.arch} ({Path(opts.checkpoint).name}) with {len(calib)} calibration images")

    summary: dict = {"checkpoint": str(opts.checkpoint), "arch": qm.arch,
                     "sim_config": sim_cfg.name, "board_config": board_cfg.name}
    n_eval = len(images)
    if labels is not None:
        ev = evaluate_quantized(model, qm, images[:n_eval], labels[:n_eval])
        summary["accuracy"] = {k: ev[k] for k in ("n", "top1_float", "top1_int8",
                                                 "gate_agreement", "spatial_agreement",
                                                 "channel_agreement", "density_float",
                                                 "density_int8")}
        summary["blocks"] = ev["blocks"]
        step(f"golden model on {n_eval} test images: float {ev['top1_float']:.2f}% vs int8 "
             f"{ev['top1_int8']:.2f}% top-1, gate agreement {100 * ev['gate_agreement']:.2f}%")
    else:
        step("no labels (--images): accuracy skipped")

    # ---- build the project + bundle (for the simulated engine and for the board)
    n_sim = min(opts.n_sim, len(images))
    sim_build = build_hls(qm, sim_cfg, projects[sim_cfg.name], images[:n_sim],
                          None if labels is None else labels[:n_sim], force=opts.force)
    build_hls(qm, board_cfg, projects[board_cfg.name], images[:n_sim],
              None if labels is None else labels[:n_sim], force=opts.force)
    step(f"build-hls: projects for '{sim_cfg.name}' and '{board_cfg.name}' in {out}")

    # ---- the bundle through the runtime on the C-sim (and the RTL), gated and dense
    bundle = load_bundle(sim_build.bundle_dir)
    sc = bundle.selfcheck
    mismatches: list = []
    csim = _run_level("C-sim", NetworkRunner(bundle, make_device("csim", sim_cfg)), sc,
                      n_sim, mismatches)
    summary["csim"] = csim
    step(f"C-sim: {n_sim} images gated + dense, bit-exact {'PASS' if csim['bit_exact'] else 'FAIL'}; "
         f"{csim['starts_per_image']} engine start per image, host CPU "
         f"{1e6 * csim['host_cpu_s']:.0f} us per image; speedup {csim['speedup']:.2f}x in "
         f"cycles vs {csim['mac_reduction']:.2f}x fewer MACs")
    if opts.rtl:
        dev = make_device("rtl", sim_cfg)
        rtl = _run_level("RTL", NetworkRunner(bundle, dev), sc, min(opts.rtl, n_sim), mismatches)
        rtl["cycles_per_s"] = dev.sim_cycles / dev.sim_wall_s if dev.sim_wall_s else 0.0
        summary["rtl"] = rtl
        step(f"RTL: {rtl['images']} images, bit-exact {'PASS' if rtl['bit_exact'] else 'FAIL'}, "
             f"{rtl['cycles_per_s']:,.0f} simulated cycles/s")

    # ---- predictions for the board
    params = CycleParams.load(PARAMS_FILE) if PARAMS_FILE.is_file() else CycleParams()
    summary["cycle_params"] = str(PARAMS_FILE) if PARAMS_FILE.is_file() else "defaults (uncalibrated)"
    # the host term: the board runtime's own work per image, measured here (not a constant)
    from dgfpga.perf.netshapes import shape_plan
    from dgfpga.runtime.packer import plan_network
    from dgfpga_host.runner import measure_host_cpu
    board_plan = plan_network(qm, board_cfg)
    host_s = measure_host_cpu(board_plan)
    paper_host = {n: measure_host_cpu(shape_plan(n, board_cfg))
                  for n in sorted({p[0] for p in PAPER_TABLE3})}
    preds = [predict_masks(board_plan, [s[n] for s in sc.spatial], [c[n] for c in sc.channel],
                           board_cfg, params, host_s) for n in range(n_sim)]
    own = {k: float(np.median([getattr(p, k) for p in preds]))
           for k in ("speedup", "mac_reduction", "efficiency", "dense_ms", "gated_ms",
                     "gate_ms", "host_ms")}
    paper = paper_configurations(board_cfg, params, host_s=paper_host)
    summary["ultra96"] = {"shipped_model": own, "paper": [p.as_dict() for p in paper],
                          "host_cpu_s": {qm.arch: host_s, **paper_host},
                          "host_source": "measured on this machine: thread CPU time of the "
                                         "board runtime's work per image around its one "
                                         "start (dgfpga_host.runner.measure_host_cpu)"}
    step(f"predicted Ultra96 ({board_cfg.name}): {qm.arch} {own['gated_ms']:.3f} ms gated vs "
         f"{own['dense_ms']:.3f} ms dense ({own['speedup']:.2f}x)")

    res = estimate(board_cfg)
    summary["resources"] = {"used": res.totals(), "budget": res.budget}
    step("resource estimate for the board engine")

    # ---- report
    summary["bit_exact"] = not mismatches
    summary["mismatches"] = mismatches[:20]
    with output_dir(rep_dir, "demo", opts.force) as tmp:
        _write_report(tmp, summary, qm, sc, objects, board_cfg, paper, res)
    step(f"report: {rep_dir / 'index.html'}")
    return summary


def _run_level(level: str, runner, sc, n: int, mismatches: list) -> dict:
    """Run n self-check images gated and dense on one level; compare with the golden model."""
    gated, dense = [], []
    before = len(mismatches)
    t = time.perf_counter()
    for i in _progress(range(n), level):
        r = runner.run_image(sc.images[i])
        d = runner.run_image(sc.images[i], dense=True)
        gated.append(r)
        dense.append(d)
        if not np.array_equal(r.logits_int, sc.logits_int[i]):
            mismatches.append(f"{level} image {i} gated logits")
        if not np.array_equal(d.logits_int, sc.logits_int_dense[i]):
            mismatches.append(f"{level} image {i} dense logits")
        for b in range(len(sc.spatial)):
            if not (np.array_equal(r.spatial[b], sc.spatial[b][i])
                    and np.array_equal(r.channel[b], sc.channel[b][i])):
                mismatches.append(f"{level} image {i} block {b} masks")
    out = _cycles_summary(gated, dense)
    out.update(images=n, bit_exact=len(mismatches) == before, wall_s=time.perf_counter() - t)
    return out


def _groups(plan) -> list:
    """Names of the record groups a cycle log is summed into: stem, every block (its gate
    record and convs), head."""
    return ["stem"] + [b.name for b in plan.blocks] + ["head"]


def _grouped(r, plan) -> list:
    """One image's cycle log summed per group of `_groups`."""
    out = [0.0] * (len(plan.blocks) + 2)
    for rec, c in zip(plan.records, r.cycle_log):
        k = 0 if rec.kind == "stem" else (len(out) - 1 if rec.kind == "head" else rec.block + 1)
        out[k] += float(c)
    return out


def _cycles_summary(gated, dense) -> dict:
    g = np.median([r.cycles for r in gated])
    d = np.median([r.cycles for r in dense])
    mg = np.median([r.macs for r in gated])
    md = np.median([r.macs for r in dense])
    plan = gated[0].runner.plan
    return {"gated_cycles": float(g), "dense_cycles": float(d), "speedup": float(d / g),
            "gated_macs": float(mg), "dense_macs": float(md), "mac_reduction": float(md / mg),
            "efficiency": float((d / g) / (md / mg)),
            "groups": _groups(plan),
            "per_group_gated": np.median([_grouped(r, plan) for r in gated], axis=0).tolist(),
            "per_group_dense": np.median([_grouped(r, plan) for r in dense], axis=0).tolist(),
            "starts_per_image": int(max(r.starts for r in gated + dense)),
            "host_cpu_s": float(np.median([r.host_s for r in gated])),
            "cache_s": float(np.median([r.cache_s for r in gated])),
            "cache_bytes": float(np.median([r.cache.flushed + r.cache.invalidated
                                            for r in gated]))}


def _write_report(rep_dir, s, qm, sc, objects, board_cfg, paper, res):
    from dgfpga.workflows import report as R
    from dgfpga.workflows.gate_figure import gate_figure, object_overlap
    rep = R.Report(rep_dir, f"dgfpga demo: {qm.arch} on the embedded test images")
    rep.paragraph(f"Checkpoint {Path(s['checkpoint']).name}; simulated engine '{s['sim_config']}', "
                  f"board engine '{s['board_config']}'. Bit-exact at every level run: "
                  f"{'YES' if s['bit_exact'] else 'NO: ' + '; '.join(s['mismatches'][:5])}.")
    if "accuracy" in s:
        a = s["accuracy"]
        rep.heading("Accuracy: float model vs int8 golden model")
        rep.table(["images", "float top-1 %", "int8 top-1 %", "gate agreement %",
                   "spatial agr. %", "channel agr. %", "density float", "density int8"],
                  [[a["n"], a["top1_float"], a["top1_int8"], 100 * a["gate_agreement"],
                    100 * a["spatial_agreement"], 100 * a["channel_agreement"],
                    a["density_float"], a["density_int8"]]],
                  caption="golden model (int8) vs PyTorch float model, embedded test split")
        names = [b["name"] for b in s["blocks"]]
        rep.figure(R.density_figure(names, [b["density_float"] for b in s["blocks"]],
                                    [b["density_int8"] for b in s["blocks"]], "golden model"),
                   "density", "Per-block density (executed / dense conv MACs), float vs int8")
    rep.heading("What the gates chose")
    fig_path = rep_dir / "gates.png"
    gate_figure(sc.images.astype(np.float32) * qm.input_scale, sc.spatial, sc.channel, fig_path,
                "golden model (int8) decisions", qm.mean, qm.std,
                labels=None if sc.labels[0] < 0 else sc.labels, n=4)
    rep.image(fig_path, "Input, spatial cost map (number of blocks that executed each tile; "
                        "paper Fig. 6 style) and per-block channel density")
    if objects is not None:
        ov = object_overlap(sc.spatial, objects[:len(sc.images)])
        s["object_overlap"] = ov
        rep.table(["object tiles active", "background tiles active", "active tiles on object"],
                  [[ov["object_tiles_active"], ov["background_tiles_active"],
                    ov["active_tiles_on_object"]]],
                  caption="Do spatial gates concentrate on the object? (golden model, mean over "
                          "images and blocks)")
    c = s["csim"]
    rep.heading("Cycles: dense vs gated")
    rep.figure(R.layer_cycles_figure(c["groups"], c["per_group_dense"], c["per_group_gated"],
                                     "HLS C-sim, trip-count cycles"),
               "cycles", "Engine cycles of the one start per image, from its cycle log: stem, "
                         "each block (gate record + convs), head; median over images")
    rep.paragraph(f"One engine start per image ({c['starts_per_image']} measured). Host CPU per "
                  f"gated image on this machine: {1e6 * c['host_cpu_s']:.0f} us (thread CPU "
                  f"time of the runtime's work around the start, not the wait), cache "
                  f"maintenance {1e6 * c['cache_s']:.1f} us for {c['cache_bytes']:.0f} bytes.")
    rows = [["C-sim", c["images"], c["dense_cycles"], c["gated_cycles"], c["speedup"],
             c["mac_reduction"], c["efficiency"], "PASS" if c["bit_exact"] else "FAIL"]]
    if "rtl" in s:
        r = s["rtl"]
        rows.append(["RTL", r["images"], r["dense_cycles"], r["gated_cycles"], r["speedup"],
                     r["mac_reduction"], r["efficiency"], "PASS" if r["bit_exact"] else "FAIL"])
    rep.table(["level", "images", "dense cycles", "gated cycles", "speedup", "MAC reduction",
               "efficiency", "bit-exact"], rows,
              caption=f"engine '{s['sim_config']}' (medians per image)")
    u = s["ultra96"]
    short = qm.arch.replace("_cifar10", "")
    sp_rows = [(short, c["mac_reduction"], c["speedup"], f"C-sim {s['sim_config']}")]
    if "rtl" in s:
        sp_rows.append((short, s["rtl"]["mac_reduction"], s["rtl"]["speedup"],
                        f"RTL {s['sim_config']}"))
    sp_rows.append((short, u["shipped_model"]["mac_reduction"], u["shipped_model"]["speedup"],
                    f"model {board_cfg.name}"))
    for p in paper:
        sp_rows.append((p.network, p.mac_reduction, p.speedup, f"model {board_cfg.name}"))
        sp_rows.append((p.network, p.paper_mac_reduction, p.paper_speedup, "paper (board)"))
    rep.heading("Realised speedup vs theoretical MAC reduction")
    rep.figure(R.speedup_figure(sp_rows), "speedup",
               "Speedup in cycles vs MAC reduction: ours (C-sim, cycle model) beside the "
               "DGNet paper's Ultra96 Table 3")
    rep.heading("Predicted Ultra96 latency")
    rep.paragraph(f"Cycle model of engine '{board_cfg.name}', parameters: {Path(s['cycle_params']).name} "
                  "(convolutions fitted to the RTL's per-layer cycles, gate and head records to "
                  "the RTL's per-record cycle log: docs/rtl.md). One engine "
                  "start per image: the engine evaluates the gates and writes its own work. "
                  "The host term is the board runtime's CPU time per image measured on this "
                  "machine (" + ", ".join(f"{k} {1e6 * v:.0f} us" for k, v in
                                          u["host_cpu_s"].items()) +
                  "); the board's Cortex-A53 is slower, `dgfpga-host bench` measures it there.")
    lat = [(f"{qm.arch}", u["shipped_model"]["dense_ms"], u["shipped_model"]["gated_ms"])]
    lat += [(f"{p.network} @{p.paper_mac_reduction:.2f}x", p.dense_ms, p.gated_ms) for p in paper]
    rep.figure(R.latency_figure(lat, f"cycle model, engine '{board_cfg.name}' @ "
                                     f"{board_cfg.clock_hz / 1e6:.0f} MHz"),
               "latency", "Predicted latency and images/s, gated vs the dense engine")
    rep.heading("Resources")
    rep.figure(R.resources_figure({k.upper(): v for k, v in res.totals().items()},
                                  {k.upper(): v for k, v in res.budget.items()}, board_cfg.name),
               "resources", "Resource estimate of the board engine against the ZU3EG")
    rep.heading("Simulation speed")
    sim_rows = [["HLS C-sim (ctypes; cycles are trip-count estimates)", c["images"] * 2,
                 f"{c['wall_s']:.1f} s",
                 f"{(c['dense_cycles'] + c['gated_cycles']) * c['images'] / max(c['wall_s'], 1e-9):,.0f}"]]
    if "rtl" in s:
        sim_rows.append(["RTL (Verilator, cycle-accurate)", s["rtl"]["images"] * 2,
                         f"{s['rtl']['wall_s']:.1f} s", f"{s['rtl']['cycles_per_s']:,.0f}"])
    rep.table(["level", "image runs", "wall time (incl. host)", "engine cycles / s"], sim_rows)
    rep.write(s)
