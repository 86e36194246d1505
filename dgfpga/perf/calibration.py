"""Calibrate the analytical cycle model (dgfpga.perf.cycle_model) against the reference RTL.

numpy only (the RTL runs through dgfpga.backends.rtl_sim's stand-alone Verilator harness).
Steps:

1. `calibration_layers(cfg)`: every engine layer of a network (default the CIFAR
   ResNet-20 shapes, which fit the `small` engine) dense and at several block densities,
   exactly as the scheduler emits them: the network is packed from its shapes
   (`netshapes.shape_plan`), each block scheduled under random masks
   (`dgfpga.runtime.scheduler`) and its descriptors and work lists read back
   (`cycle_model.scheduled_layers`), the same layers `cycle_model.network_cycles` prices.
   `layer_vector` turns each into a vector set (random data, expected memory from
   dgfpga.runtime.interpreter) so every measurement is also a bit-exactness check.
2. `measure(cfg)`: run them on the RTL; one record per layer (cycles, MACs, density,
   bit-exact flag). `save_measurements` writes JSON + CSV.
3. `fit(records, cfg)`: the CycleParams overheads (layer, m-group, tile, pipeline depth,
   prefetch, port efficiency) that minimise the worst relative error; `errors` reports per
   layer. Records carry the memory they were measured with (`latency`, `stall_pct`: the
   RTL memory model's +latency/+stall) and are priced against it, so runs with ideal
   memory and with latency/stalls are fitted together: one engine, several memories.

`dgfpga calibrate [--config small] [--arch resdg20_cifar10] [--latency L --stall S]
[--with earlier.json] [-o out/calibrate]` does all three. It never writes into the checkout by default; the calibrated parameters the demo
and `predict` read are the shipped `sim/results/cycle_params_small.json` (`params_path`),
replaced only by copying a new `cycle_params_<config>.json` there on purpose.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import zlib
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from dgfpga.contract import formats
from dgfpga.runtime import interpreter
from dgfpga.perf.cycle_model import (CycleParams, layer_cycles, network_runs,
                                     random_block_masks, scheduled_layers)
from dgfpga.contract.engine_config import EngineConfig, load_config
from dgfpga.contract.formats import LayerDescriptor
from dgfpga.perf.netshapes import net_shape, shape_plan
from dgfpga.backends.vectors import VectorSet
from dgfpga import paths

# the shipped calibration (read by the demo and `predict`); `calibrate` writes elsewhere
RESULTS = paths.sim_dir() / "results"           # the shipped calibration (checkout or installed copy)
DEFAULT_OUT = Path("out") / "calibrate"
DENSITIES = (None, 1.0, 0.7, 0.5, 0.3)      # None = dense baseline (no gating)


# ----------------------------------------------------------------------------- vectors

def layer_vector(d: LayerDescriptor, wl: formats.WorkList, cfg: EngineConfig,
                 name: str, seed: int = 0) -> VectorSet:
    """A one-layer vector set for scheduled layer `d` with work list `wl` (the memory is
    laid out again here, compactly: the layer's own buffers only; the work list through
    the one writer, `formats.pack_work_list`).

    Random inputs, weights and params (outputs mostly in range); expected memory and
    STATUS from dgfpga.runtime.interpreter.run_program."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    a = cfg.axi_bytes

    def up(n):
        return -(-n // a) * a

    work_blob, d = formats.pack_work_list(d, wl, a, cfg)
    in_bytes = d.in_h * d.in_w * d.in_c_stored
    out_bytes = d.out_h * d.out_w * d.out_c_stored
    res_bytes = d.out_h * d.out_w * d.out_c
    in_off = a
    out_off = up(in_off + in_bytes) + a
    res_off = 0
    if d.residual:
        res_off = out_off if d.in_place else up(out_off + out_bytes) + a
    fmap_size = up(max(out_off + out_bytes, res_off + (res_bytes if d.residual else 0))) + a
    kk = d.k * d.k
    w = rng.integers(-128, 128, (d.out_c, d.in_c, d.k, d.k)).astype(np.int8)
    bias = rng.integers(-2000, 2000, d.out_c).astype(np.int32)
    target = 64 * 2 ** d.shift / (math.sqrt(kk * d.in_c) * 74 * 128)
    mult = rng.integers(max(int(target / 2), 1), max(int(target * 2), 2), d.out_c).astype(np.int32)
    wbytes = formats.pack_layer_weights(w, d, cfg)
    params = formats.pack_params(bias, mult)
    p_off = up(len(wbytes))
    weight = np.zeros(p_off + up(len(params)) + a, np.uint8)
    weight[:len(wbytes)] = np.frombuffer(wbytes, np.uint8)
    weight[p_off:p_off + len(params)] = np.frombuffer(params, np.uint8)
    work = np.zeros(up(a + len(work_blob)) + a, np.uint8)
    work[a:a + len(work_blob)] = np.frombuffer(work_blob, np.uint8)
    sums_size = up(d.n_tiles * d.out_c_stored * 4) + a
    d = d.replace(in_offset=in_off, out_offset=out_off, res_offset=res_off, weight_offset=0,
                  param_offset=p_off, sums_offset=0,
                  res_mult=(d.res_mult if d.residual else 0))
    regions = {"fmap": fmap_size, "weight": weight.size, "work": work.size, "sums": sums_size}
    formats.validate_descriptor(d, cfg, regions)
    fmap = rng.integers(0, 256, fmap_size).astype(np.uint8)
    if d.in_signed:
        pass  # any byte pattern is a valid s8 map
    sums = rng.integers(0, 256, sums_size).astype(np.uint8)
    before = {"fmap": fmap, "weight": weight, "work": work, "sums": sums}
    program = formats.pack_descriptor(d, cfg)
    after = {r: v.copy() for r, v in before.items()}
    res = interpreter.run_program(program, 1, after, cfg)
    return VectorSet(name, cfg.name, cfg.config_hash, program, 1, before,
                     {"fmap": after["fmap"], "sums": after["sums"]}, res.status,
                     int(sum(res.macs)), {"descriptor": d, "tiles": wl.tiles, "res_tiles": wl.res_tiles})


def calibration_layers(cfg: EngineConfig, net: str = "resdg20_cifar10",
                       densities: Sequence[Optional[float]] = DENSITIES, seed: int = 0,
                       max_blocks: Optional[int] = None) -> list[dict]:
    """Every engine layer the scheduler emits for the blocks of `net` per density (None =
    the dense baseline; else random masks of that block density): name, block, layer kind
    (conv1 / downsample / conv2), density, vector. Layers the scheduler omits (no active
    tile or channel) are not measured: they do not run."""
    shape = net_shape(net)
    plan = shape_plan(net, cfg)
    n_blocks = min(max_blocks or len(plan.blocks), len(plan.blocks))
    work = np.zeros(plan.region_bytes["work"], np.uint8)
    out = []
    for dens in densities:
        masks = None
        if dens is not None:
            masks = random_block_masks(shape, [dens] * len(shape.blocks), seed=seed)
        tag = "dense" if dens is None else f"d{int(round(dens * 100)):03d}"
        runs = network_runs(plan, masks)[1:]            # the blocks' starts (no stem)
        for bp, run in zip(plan.blocks[:n_blocks], runs):
            for (d, wl), lw in zip(scheduled_layers(run, cfg, work), run.layers):
                name = f"{lw.name}.{tag}"
                out.append({"name": name, "block": bp.name, "layer": lw.kind,
                            "density": dens, "vector": layer_vector(d, wl, cfg, name, seed)})
    return out


# ----------------------------------------------------------------------------- measure

def measure(cfg: EngineConfig, layers: Optional[list] = None, sim=None,
            latency: int = 0, stall_pct: int = 0) -> list[dict]:
    """Run calibration layers on the RTL (dgfpga.backends.rtl_sim.FastSim); one record per layer."""
    from dgfpga.backends import rtl_sim
    sim = sim or rtl_sim.FastSim(cfg)
    layers = layers if layers is not None else calibration_layers(cfg)
    recs = []
    for item in layers:
        vs = item["vector"]
        run = sim.run(vs.program, 1, vs.before, latency=latency, stall_pct=stall_pct)
        exact = (not run.timeout and run.status == vs.expected_status
                 and all(np.array_equal(run.regions[r], vs.expected[r]) for r in ("fmap", "sums")))
        d: LayerDescriptor = vs.meta["descriptor"]
        recs.append({
            "name": item["name"], "block": item["block"], "layer": item["layer"],
            "density": item["density"], "config": cfg.name, "latency": latency,
            "stall_pct": stall_pct, "cycles": run.cycles, "macs": int(vs.macs),
            "dense_macs": d.conv_h * d.conv_w * d.out_c * d.in_c * d.k * d.k,
            "n_active_tiles": d.n_active_tiles, "n_res_tiles": d.n_res_tiles,
            "n_tiles": d.n_tiles, "n_active_out": d.n_active_out, "n_active_in": d.n_active_in,
            "k": d.k, "stride": d.stride, "in_hw": d.in_h, "out_hw": d.out_h, "in_c": d.in_c,
            "out_c": d.out_c, "tile": d.tile, "mac_utilisation": (vs.macs / cfg.macs_per_cycle / run.cycles
                                                                   if run.cycles else 0.0),
            "bit_exact": bool(exact), "sim_wall_s": run.wall_s,
            "sim_cycles_per_s": run.cycles_per_s,
            "descriptor": dataclasses.asdict(d),
            "tiles": [int(t) for t in vs.meta["tiles"]],
            "res_tiles": [int(t) for t in vs.meta["res_tiles"]],
        })
    return recs


def record_samples(plan, log: np.ndarray, work: np.ndarray, dense: bool) -> list[dict]:
    """The gate and head records of one network-program start as fit samples
    (`cycle_model.fit_record_params`): measured cycles from the engine's cycle log, the
    decided tile/channel counts from the masks the engine wrote (WORK), and the formula's
    fixed part (fetch + `gate_record_terms` / `head_record_terms`) and stream count."""
    from dgfpga.contract import program as P
    from dgfpga.perf.cycle_model import gate_record_terms, head_record_terms
    cfg = plan.cfg
    fetch = formats.DESCRIPTOR_BYTES / cfg.axi_bytes
    out, gate_no = [], 0
    for i, rec in enumerate(plan.records):
        raw = plan.program[i * formats.DESCRIPTOR_BYTES:(i + 1) * formats.DESCRIPTOR_BYTES]
        if rec.kind == "gate":
            g = P.unpack_gate_record(raw, cfg, None)
            m = plan.masks[gate_no]
            gate_no += 1
            sp, ch = P.decode_masks(work[m.offset:m.offset + m.nbytes], g.gh * g.gw, g.out_c)
            nt, nc = int(np.count_nonzero(sp)), int(np.count_nonzero(ch))
            cyc, streams = gate_record_terms(g.in_c, g.out_c, g.hidden, g.st_h, g.st_w, g.gh,
                                             g.gw, g.res_list, nt, nc, dense, cfg)
        elif rec.kind == "head":
            h = P.unpack_head_record(raw, cfg, None, plan.record_count)
            cyc, streams = head_record_terms(h.in_c, h.classes, h.st_h, h.st_w, cfg)
            nt = nc = 0
        else:
            continue
        out.append({"name": rec.name, "kind": rec.kind, "config": cfg.name, "dense": dense,
                    "rtl": int(log[i]), "fixed": fetch + cyc, "streams": streams,
                    "nt": nt, "nc": nc})
    return out


def measure_records(plan, inputs: Sequence[np.ndarray], sim=None) -> list[dict]:
    """Run the network program of `plan` in one start per image on the RTL (fast harness),
    gated and dense, check every region bit for bit against the interpreter (all but the
    cycle log), and return the gate and head records as fit samples (`record_samples`,
    each with `bit_exact`). `inputs`: int8 images [C, H, W] (`numerics.qmodel.quantize_input`)."""
    from dgfpga.backends import rtl_sim
    from dgfpga.contract.program import RUN_DENSE
    rb = plan.region_bytes
    sim = sim or rtl_sim.FastSim(plan.cfg, mem_bytes=sum(rb.values()) + len(plan.program)
                                 + 6 * 4096)
    buf, cl = plan.fmap[plan.input_tensor], plan.cycle_log
    samples = []
    for x in inputs:
        for flags in (0, RUN_DENSE):
            mem = {"fmap": np.zeros(rb["fmap"], np.uint8), "weight": plan.weight_image.copy(),
                   "work": np.zeros(rb["work"], np.uint8), "sums": np.zeros(rb["sums"], np.uint8)}
            mem["fmap"][buf.offset:buf.offset + buf.nbytes] = np.ascontiguousarray(
                np.moveaxis(np.asarray(x, np.int8), 0, -1)).view(np.uint8).reshape(-1)
            ref = {k: v.copy() for k, v in mem.items()}
            res = interpreter.run_program(plan.program, plan.record_count, ref, plan.cfg,
                                          run_flags=flags)
            run = sim.run(plan.program, plan.record_count, mem, run_flags=flags)
            work = run.regions["work"]
            log = work[cl.offset:cl.offset + cl.nbytes].view("<u4").copy()
            got = work.copy()
            got[cl.offset:cl.offset + cl.nbytes] = ref["work"][cl.offset:cl.offset + cl.nbytes]
            exact = (run.status == 0 and res.status == 0 and np.array_equal(got, ref["work"])
                     and all(np.array_equal(run.regions[r], ref[r]) for r in ("fmap", "sums")))
            for smp in record_samples(plan, log, work, bool(flags)):
                smp["bit_exact"] = bool(exact)
                samples.append(smp)
    return samples


def record_errors(samples: Sequence[dict], params: CycleParams) -> np.ndarray:
    """Relative error (model - RTL) / RTL of each gate/head sample under `params` (the
    formula of `cycle_model.gate_record_cycles` / `head_record_cycles`)."""
    from dgfpga.perf.cycle_model import record_cycles
    return np.asarray([(record_cycles(s["kind"], s["fixed"], s["streams"], params) - s["rtl"])
                       / s["rtl"] for s in samples])


def save_measurements(recs: list[dict], folder: Path, stem: str) -> tuple[Path, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jpath, cpath = folder / f"{stem}.json", folder / f"{stem}.csv"
    jpath.write_text(json.dumps(recs, indent=1) + "\n")
    cols = [k for k in recs[0] if k not in ("descriptor", "tiles", "res_tiles")]
    with open(cpath, "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        wr.writeheader()
        wr.writerows(recs)
    return jpath, cpath


def load_measurements(path) -> list[dict]:
    return json.loads(Path(path).read_text())


# ----------------------------------------------------------------------------- fit

FIT_FIELDS = ("layer_overhead_cycles", "mgroup_overhead_cycles", "tile_overhead_cycles",
              "pipeline_depth_cycles", "prefetch_overhead_cycles", "axi_efficiency")


def predict(rec: dict, cfg: EngineConfig, params: CycleParams) -> float:
    """The model's cycles of a measured layer, against the memory it was measured with
    (the record's `latency` and `stall_pct`: `CycleParams.with_memory`) and on the engine
    it was measured on (the record's `config` when it names another than `cfg`: one fit
    may hold several engines' measurements)."""
    if rec.get("config", cfg.name) != cfg.name:
        cfg = load_config(rec["config"])        # (cached by engine_config)
    d = LayerDescriptor(**rec["descriptor"])
    tiles = rec["tiles"] if d.tile_gated else None
    res = rec["res_tiles"] or None
    mem = params.with_memory(rec.get("latency", 0), rec.get("stall_pct", 0))
    return layer_cycles(d, cfg, mem, tiles=tiles, res_tiles=res).total_cycles


def errors(recs: list[dict], cfg: EngineConfig, params: CycleParams) -> np.ndarray:
    """Relative error (model - rtl) / rtl per record."""
    return np.array([(predict(r, cfg, params) - r["cycles"]) / r["cycles"] for r in recs])


def _params(x: np.ndarray, base: CycleParams) -> CycleParams:
    return dataclasses.replace(base, layer_overhead_cycles=int(round(max(x[0], 0))),
                               mgroup_overhead_cycles=int(round(max(x[1], 0))),
                               tile_overhead_cycles=int(round(max(x[2], 0))),
                               pipeline_depth_cycles=int(round(max(x[3], 0))),
                               prefetch_overhead_cycles=int(round(max(x[4], 0))),
                               axi_efficiency=float(min(max(x[5], 0.05), 1.0)))


def fit(recs: list[dict], cfg: EngineConfig, base: Optional[CycleParams] = None,
        iters: int = 200, seed: int = 0) -> tuple[CycleParams, np.ndarray]:
    """Minimise the worst relative error over the records (`FIT_FIELDS`: the engine's
    overheads and the port efficiency; the memory of each record is its own, `predict`):
    a coordinate search with halving steps, then `iters` random local steps;
    deterministic for a seed. Records measured against different memories (ideal and
    latency/stall) are fitted together: one engine, several memories. Returns (params,
    per-record errors)."""
    base = base or CycleParams()
    rng = np.random.default_rng(seed)
    x = np.array([getattr(base, f) for f in FIT_FIELDS], dtype=float)
    scale = np.array([200.0, 20.0, 10.0, 10.0, 10.0, 0.2])

    def cost(v):
        e = errors(recs, cfg, _params(v, base))
        return float(np.max(np.abs(e))) + 0.1 * float(np.mean(np.abs(e)))

    best = cost(x)
    for k in range(6):                      # coordinate search, steps halving
        step = scale * 0.5 ** k
        for _ in range(3):
            moved = False
            for i in range(x.size):
                for sgn in (1.0, -1.0):
                    cand = x.copy()
                    cand[i] += sgn * step[i]
                    c = cost(cand)
                    if c < best:
                        x, best, moved = cand, c, True
            if not moved:
                break
    for i in range(iters):                  # random refinement
        cand = x + rng.normal(0, 1, x.size) * scale * 0.05 * 0.5 ** (4 * i / max(iters, 1))
        c = cost(cand)
        if c < best:
            x, best = cand, c
    p = _params(x, base)
    return p, errors(recs, cfg, p)


def array_steps(rec: dict, cfg: EngineConfig) -> int:
    """MAC-array steps the layer needs at full utilisation: per active tile, conv pixels x
    the steps per pixel (`formats.mac_steps_per_pixel`: k^2 x ceil(n_in/Tn), or the im2col
    stem's) x ceil(n_out/Tm) (one step per pixel and m-group for residual-only
    tiles). The floor of the RTL's cycles; channel counts that are not multiples of Tm/Tn
    cost steps here, not in the MAC count."""
    d = LayerDescriptor(**rec["descriptor"])
    n_groups = -(-d.n_active_out // cfg.tm)
    per_pixel = formats.mac_steps_per_pixel(d, cfg) or 1    # the contract's count (im2col too)

    def conv_pixels(t: int) -> int:
        ty, tx = divmod(t, d.grid_w)
        oh = min(d.tile, d.out_h - ty * d.tile)
        ow = min(d.tile, d.out_w - tx * d.tile)
        if not d.maxpool:
            return oh * ow
        c = []
        for o0, n, size in ((ty * d.tile, oh, d.conv_h), (tx * d.tile, ow, d.conv_w)):
            c.append(min(2 * (o0 + n - 1) + 2, size) - max(2 * o0 - 1, 0))
        return c[0] * c[1]

    tiles = rec["tiles"] if d.tile_gated else range(d.n_tiles)
    steps = sum(conv_pixels(int(t)) for t in tiles) * per_pixel * n_groups
    steps += sum(conv_pixels(int(t)) for t in rec["res_tiles"]) * n_groups
    return int(steps)


def summary(recs: list[dict], cfg: Optional[EngineConfig] = None) -> dict:
    """Realised saving per density: (dense cycles / gated cycles) / (dense MACs / gated MACs);
    with `cfg` also against the MAC-array steps (Tm/Tn-rounded work, see array_steps)."""
    by = {}
    for r in recs:
        by.setdefault(r["density"], []).append(r)
    dense = by.get(None, [])
    out = {"layers": len(recs), "bit_exact": int(sum(r["bit_exact"] for r in recs))}
    if dense:
        dc, dm = sum(r["cycles"] for r in dense), sum(r["macs"] for r in dense)
        out["dense_cycles"], out["dense_macs"] = dc, dm
        ds = sum(array_steps(r, cfg) for r in dense) if cfg else None
        for dens, rs in sorted(((k, v) for k, v in by.items() if k is not None), key=lambda t: -t[0]):
            gc, gm = sum(r["cycles"] for r in rs), sum(r["macs"] for r in rs)
            speed, red = dc / gc, dm / max(gm, 1)
            out[f"density_{dens}"] = {"cycles": gc, "macs": gm, "speedup": speed,
                                      "mac_reduction": red, "realised": speed / red}
            if cfg:
                gs = sum(array_steps(r, cfg) for r in rs)
                out[f"density_{dens}"].update(
                    array_step_reduction=ds / gs, realised_vs_array_steps=speed / (ds / gs),
                    array_utilisation=gs / gc)
    return out


def memory_tag(rec: dict) -> str:
    """The memory a record was measured against: 'ideal' or 'lat<L>_st<S>'."""
    lat, st = int(rec.get("latency", 0)), int(rec.get("stall_pct", 0))
    return f"lat{lat}_st{st}" if lat or st else "ideal"


def calibrate(recs: list[dict], cfg: EngineConfig, net: str,
              base: Optional[CycleParams] = None) -> tuple[CycleParams, dict]:
    """Fit the cycle model to measured layers (all memories together, `fit`); (params,
    report dict with the per-layer errors, overall and per memory in "memories").
    `base`: the parameters the fit starts from and keeps apart from `FIT_FIELDS` (the
    gate/head record costs; default the shipped calibration of `cfg` if any)."""
    if base is None and params_path(cfg).is_file():
        base = CycleParams.load(params_path(cfg))
    base = (base or CycleParams()).with_memory(0, 0)
    params, err = fit(recs, cfg, base)
    worst = int(np.argmax(np.abs(err)))
    memories = {}
    for tag in sorted({memory_tag(r) for r in recs}):
        idx = [i for i, r in enumerate(recs) if memory_tag(r) == tag]
        e = err[idx]
        w = idx[int(np.argmax(np.abs(e)))]
        memories[tag] = {"layers": len(idx), "worst_error": float(err[w]),
                         "worst_layer": recs[w]["name"],
                         "mean_abs_error": float(np.mean(np.abs(e))),
                         "within_5pct": int(np.sum(np.abs(e) <= 0.05))}
    return params, {"config": cfg.name, "net": net, "params": dataclasses.asdict(params),
                    "worst_error": float(err[worst]), "worst_layer": recs[worst]["name"],
                    "mean_abs_error": float(np.mean(np.abs(err))),
                    "within_5pct": int(np.sum(np.abs(err) <= 0.05)), "layers": len(recs),
                    "memories": memories,
                    "errors": {f"{r['name']}@{memory_tag(r)}": float(e)
                               for r, e in zip(recs, err)},
                    "summary": summary([r for r in recs if memory_tag(r) == "ideal"] or recs,
                                       cfg)}


def params_path(cfg: EngineConfig, folder: Path = RESULTS) -> Path:
    """`cycle_params_<config>.json` in `folder`; by default the shipped calibration of
    `cfg` that the demo and `predict` read (sim/results/ of the checkout)."""
    return Path(folder) / f"cycle_params_{cfg.name}.json"


def shipped_params(cfg: EngineConfig) -> tuple[CycleParams, Optional[Path]]:
    """The RTL calibration `predict`, `explore` and the numpy device price `cfg` with: the
    shipped `cycle_params_<cfg>.json`, else `small`'s (the same design, other sizes), else
    the uncalibrated defaults (path None)."""
    from dgfpga.contract.engine_config import load_config
    for c in (cfg, load_config("small")):
        if params_path(c).is_file():
            return CycleParams.load(params_path(c)), params_path(c)
    return CycleParams(), None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m dgfpga.perf.calibration ARGS` = `dgfpga calibrate ARGS`."""
    import sys
    from dgfpga.cli.main import main as cli
    return cli(["calibrate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
