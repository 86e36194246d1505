"""`dgfpga predict`: predicted Ultra96 latency, images/s and speedup from the cycle model."""
from __future__ import annotations

from dgfpga.cli import options

import json

NAME = "predict"
HELP = ("predict dense vs gated cycles, latency and images/s from the analytical cycle "
        "model (ResNet-18/34 at the paper's Table 3 densities)")


def add_arguments(p):
    from dgfpga.cli.options import add_checkpoint, add_config, add_images, add_out
    add_config(p, default="ultra96")
    p.add_argument("--params", help="calibrated cycle-model parameters (JSON from "
                   "`dgfpga calibrate`; default: the shipped calibration of the config, "
                   "else of 'small')")
    p.add_argument("--ddr-latency", type=options.number(float, 0), default=None,
                   metavar="CYCLES", help="DDR read latency in engine cycles the cycle model "
                   "prices (AR accepted -> first beat; default: the board's estimate, "
                   "dgfpga.perf.prediction.DDR_READ_LATENCY_S: Ultra96-V2 200 ns = 40 cycles "
                   "at 200 MHz; 0 = ideal memory)")
    p.add_argument("--ddr-stall", type=options.number(float, 0, 99), default=0.0,
                   metavar="PCT", help="percentage of cycles the DDR refuses a beat "
                   "(contention; default 0)")
    p.add_argument("--seed", type=options.number(int, 0), default=0, help="seed of the random masks (default 0)")
    p.add_argument("--arch", choices=("resdg18", "resdg34", "resdg50", "mobilenet_v2_dg"),
                   default=None,
                   help="one network's operating points: resdg18/resdg34 the paper's Table 3 "
                        "rows (with its Ultra96 speedups), resdg50 its 60%%/70%% ImageNet "
                        "models (1.65 / 1.31 GMACs, no FPGA speedup published; needs a config "
                        "with 2048-channel limits), mobilenet_v2_dg its 50%% model (0.16 "
                        "GMACs; needs 1280-channel limits; the depthwise layers priced as "
                        "the RTL runs them); default: Table 3")
    p.add_argument("--channel-groups", action="store_true",
                   help="also print channel-group-aligned operating points beside the "
                        "unaligned ones: active channel counts rounded to multiples of the "
                        "engine's Tm (the figures of a model trained with `dgfpga train "
                        "--channel-group TM`; the official checkpoints are not)")
    p.add_argument("--host-us", type=options.number(float, 0), default=None,
                   help="host CPU time per image in microseconds, added to dense and gated "
                        "latency (e.g. `dgfpga-host bench`'s host CPU + cache median on the "
                        "board); default: measured here, per network, by running the board "
                        "runtime's per-image work (dgfpga_host.runner.measure_host_cpu)")
    add_checkpoint(p, required=False, help="also predict this DGNet (.pth.tar) on real "
                   "images: the golden model's masks, priced on the packed model's own plan")
    add_images(p, help="with --checkpoint: the images whose masks are priced (median image "
               "reported)")
    add_images(p, flag="--calib", help="with --checkpoint: calibration images for the "
               "quantization")
    add_out(p, default=None, required=False, help="also write the figures to this JSON file")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="also draw each operating point's layers, dense and gated, stacked by "
                        "what bounds their cycles (compute, read bandwidth, prefetch, weights, "
                        "...; docs/explore.md) to this image")


def run(args) -> int:
    from dgfpga.perf.cycle_model import CycleParams
    from dgfpga.contract.engine_config import load_config
    from dgfpga.perf.prediction import paper_configurations
    from dgfpga.outdir import atomic_write_text, check_writable
    cfg = load_config(args.config)
    for path in (args.out, args.plot):
        if path:
            check_writable(path, "file")                            # before any work
    own_inputs = _own_inputs(args) if args.checkpoint else None   # checked before any work
    if args.params:
        params = CycleParams.load(args.params)
    else:                 # the RTL calibration of this config, else of 'small' (same design)
        from dgfpga.perf.calibration import shipped_params
        params, path = shipped_params(cfg)
        args.params = str(path) if path else None
    from dgfpga.perf.prediction import ddr_params
    params = ddr_params(params, cfg, args.ddr_latency, args.ddr_stall)
    if args.arch == "mobilenet_v2_dg":
        return _predict_mobilenet(args, cfg, params)
    from dgfpga.perf.prediction import operating_points
    points = operating_points(args.arch, cfg)          # checks the network fits cfg first
    host, host_source = _host_seconds(args, cfg, sorted({p[0] for p in points}))
    preds = paper_configurations(cfg, params, args.seed, host, network=args.arch)
    print(f"engine '{cfg.name}': {cfg.tm}x{cfg.tn} MACs @ {cfg.clock_hz / 1e6:.0f} MHz; "
          f"cycle params {'calibrated: ' + args.params if args.params else 'defaults (uncalibrated)'}")
    print(f"DDR model: read latency {params.read_latency_cycles:g} cycles "
          f"({1e9 * params.read_latency_cycles / cfg.clock_hz:.0f} ns), stall "
          f"{params.stall_pct:g}%, {params.outstanding_reads} read bursts in flight per port; "
          "weights on their own read port, patches and residuals on the feature-map port, "
          f"both within the DRAM's {params.dram_bytes_per_s / 1e9:g} GB/s")
    print("one engine start per image: stem, per block gate record + convs, head; gate and "
          "head records priced by the cycle model (their costs fitted to the RTL's per-record "
          "cycle log, docs/rtl.md)")
    print("masks: random, one density per gated block, solved so the network's MAC reduction "
          "equals the paper's")
    print(f"host CPU per image: {host_source}")
    hdr = (f"{'network':9s} {'blk dens':>8s} {'MAC red.':>8s} {'speedup':>8s} {'effic.':>7s} "
           f"{'dense ms':>9s} {'gated ms':>9s} {'gates ms':>8s} {'host ms':>8s} {'img/s':>7s} "
           f"{'paper speedup':>13s} {'paper effic.':>12s}")
    print(hdr)
    for p in preds:
        print(f"{p.network:9s} {p.block_density:8.3f} {p.mac_reduction:7.2f}x {p.speedup:7.2f}x "
              f"{p.efficiency:7.2f} {p.dense_ms:9.2f} {p.gated_ms:9.2f} {p.gate_ms:8.3f} "
              f"{p.host_ms:8.3f} {p.gated_images_per_s:7.1f} " +
              (f"{p.paper_speedup:12.2f}x {p.paper_speedup / p.paper_mac_reduction:12.2f}"
               if p.paper_speedup is not None else f"{'-':>13s} {'-':>12s}"))
    for p in preds:
        _print_by_type(f"{p.network} at {p.mac_reduction:.2f}x fewer MACs",
                       p.efficiency_by_type, p.cycles_share_by_type, p.bounds_by_type)
    rows = [dict(p.as_dict(), host_source=host_source) for p in preds]
    if args.channel_groups:
        aligned = paper_configurations(cfg, params, args.seed, host, channel_group=cfg.tm,
                                       network=args.arch)
        _print_aligned(cfg, preds, aligned)
        rows += [dict(p.as_dict(), host_source=host_source) for p in aligned]
    if args.checkpoint:
        own, source = _own_model(own_inputs, cfg, params, args.host_us)
        rows.append(dict(own.as_dict(), host_source=host_source))
        print(f"{own.network:9s} {own.block_density:8.3f} {own.mac_reduction:7.2f}x "
              f"{own.speedup:7.2f}x {own.efficiency:7.2f} {own.dense_ms:9.3f} {own.gated_ms:9.3f} "
              f"{own.gate_ms:8.3f} {own.host_ms:8.3f} "
              f"{own.gated_images_per_s:7.1f}   (real masks: {args.checkpoint}, {source}; "
              "median image)")
    if args.out:
        atomic_write_text(args.out, json.dumps(rows, indent=2))
    if args.plot:
        _plot_bounds(args.plot, [(f"{p.network} at {p.mac_reduction:.2f}x fewer MACs",
                                  p.layer_bounds) for p in preds], cfg, params)
    return 0


def _plot_bounds(path, panels, cfg, params) -> None:
    from dgfpga.outdir import atomic_file
    from dgfpga.workflows.report import _plt, bounds_figure
    fig = bounds_figure(panels, f"cycle model, engine '{cfg.name}', DDR latency "
                                f"{params.read_latency_cycles:g} cycles")
    with atomic_file(path) as tmp:             # same suffix: matplotlib picks the format
        fig.savefig(tmp, bbox_inches="tight")
    _plt().close(fig)
    print(f"wrote {path}")


#: DGNet MobileNetV2 at 50% (the paper / official README): 71.62% top-1 at 0.16 GMACs,
#: against the official dense count (no FPGA speedup was published)
MOBILENET_V2_PAPER_MACS = 0.16e9


def mobilenet_prediction(cfg, params, seed: int = 0, host_s: float = 0.0) -> dict:
    """MobileNetV2 (shapes, `netshapes.mobilenet_v2`) dense and at the paper's 50% point:
    random gated-block decisions (`cycle_model.random_gated_masks`) at the block density
    whose MACs, counted officially (the stem at a third), equal the paper's 0.16 GMACs;
    both priced as one start of the network program (`program_network_cycles`)."""
    from dgfpga.perf.cycle_model import program_network_cycles, random_gated_masks
    from dgfpga.perf.netshapes import net_shape, shape_plan
    from dgfpga.perf.prediction import bounds_by_type, efficiency_by_type
    net = net_shape("mobilenet_v2_dg")
    plan = shape_plan("mobilenet_v2_dg", cfg)
    quirk = net.dense_macs - net.official_dense_macs      # the official stem undercount
    dense = program_network_cycles(plan, None, params, host_s)

    def run(d):
        return program_network_cycles(plan, random_gated_masks(plan, d, seed), params, host_s)
    lo, hi = 0.0, 1.0
    for _ in range(16):                                    # MACs grow with the density
        mid = (lo + hi) / 2
        if run(mid).macs - quirk > MOBILENET_V2_PAPER_MACS:
            hi = mid
        else:
            lo = mid
    gated = run((lo + hi) / 2)
    runs = {"dense": dense, "gated": gated}
    eff, share = efficiency_by_type(plan, runs, cfg)
    return dict(network="mobilenet_v2_dg", block_density=(lo + hi) / 2,
                official_dense_macs=net.official_dense_macs,
                gated_official_macs=gated.macs - quirk,
                mac_reduction=net.official_dense_macs / (gated.macs - quirk),
                paper_mac_reduction=net.official_dense_macs / MOBILENET_V2_PAPER_MACS,
                speedup=dense.total_cycles / gated.total_cycles,
                dense_ms=1e3 * dense.total_cycles / cfg.clock_hz,
                gated_ms=1e3 * gated.total_cycles / cfg.clock_hz,
                gate_ms=1e3 * gated.gate_cycles / cfg.clock_hz,
                gated_images_per_s=cfg.clock_hz / gated.total_cycles,
                host_ms=1e3 * host_s, efficiency_by_type=eff, cycles_share_by_type=share,
                bounds_by_type=bounds_by_type(plan, runs),
                layer_bounds={m: [(lc.name, dict(lc.bounds)) for lc in nc.layers]
                              for m, nc in runs.items()})


def _predict_mobilenet(args, cfg, params) -> int:
    from dgfpga.outdir import atomic_write_text
    host, host_source = _host_seconds(args, cfg, ["mobilenet_v2_dg"])
    host_s = host if isinstance(host, float) else host["mobilenet_v2_dg"]
    r = mobilenet_prediction(cfg, params, args.seed, host_s)
    print(f"engine '{cfg.name}': {cfg.tm}x{cfg.tn} MACs @ {cfg.clock_hz / 1e6:.0f} MHz; DDR "
          f"read latency {params.read_latency_cycles:g} cycles; cycle params "
          f"{args.params or 'defaults (uncalibrated)'}")
    print("MobileNetV2 DGNet (shapes; one start per image: stem, ungated blocks dense, gated "
          "blocks gate + expand + depthwise + projection, tail, head). Depthwise layers are "
          "priced as the RTL runs them (ceil(k^2/(tn/2)) steps per pixel and m-group; "
          "checked against RTL records of mobilenet_v2dg9_cifar10, sim/results/records_dw_*.json); "
          "the 224x224 network itself runs bit-exact on the C-sim, not on the RTL (too slow here).")
    print(f"masks: random, one block density for every gated block, solved so the MACs "
          f"(official counting) equal the paper's 50% model: "
          f"{MOBILENET_V2_PAPER_MACS / 1e9:.2f} GMACs of {r['official_dense_macs'] / 1e9:.3f}")
    print(f"host CPU per image: {host_source}")
    print(f"{'network':16s} {'blk dens':>8s} {'MAC red.':>8s} {'speedup':>8s} {'effic.':>7s} "
          f"{'dense ms':>9s} {'gated ms':>9s} {'gates ms':>8s} {'host ms':>8s} {'img/s':>7s} "
          f"{'paper MAC red.':>14s}")
    print(f"{r['network']:16s} {r['block_density']:8.3f} {r['mac_reduction']:7.2f}x "
          f"{r['speedup']:7.2f}x {r['speedup'] / r['mac_reduction']:7.2f} {r['dense_ms']:9.2f} "
          f"{r['gated_ms']:9.2f} {r['gate_ms']:8.3f} {r['host_ms']:8.3f} "
          f"{r['gated_images_per_s']:7.1f} {r['paper_mac_reduction']:13.2f}x")
    _print_by_type(r["network"], r["efficiency_by_type"], r["cycles_share_by_type"],
                   r["bounds_by_type"])
    if args.out:
        atomic_write_text(args.out, json.dumps([dict(r, host_source=host_source)], indent=2))
    if args.plot:
        _plot_bounds(args.plot, [(f"{r['network']} at {r['mac_reduction']:.2f}x fewer MACs",
                                  r["layer_bounds"])], cfg, params)
    return 0


def _print_by_type(title: str, eff: dict, share: dict, bounds: dict) -> None:
    """One network's per-layer-type efficiency table (`prediction.efficiency_by_type`) and
    what bounds each type's gated cycles (`prediction.bounds_by_type`: the bounds above 2%)."""
    print(f"by layer type, {title}: efficiency MACs/(cycles x tm x tn), share of the "
          "engine cycles, and what bounds the gated cycles (docs/explore.md):")
    for t, e in sorted(eff.items()):
        sh = share[t]
        b = bounds.get(t, {}).get("gated", {})
        top = " | ".join(f"{k} {100 * v:.0f}%" for k, v in sorted(b.items(), key=lambda kv: -kv[1])
                         if v >= 0.02)
        print(f"  {t:14s} dense {e['dense']:.3f} ({100 * sh['dense']:4.1f}%)  gated "
              f"{e['gated']:.3f} ({100 * sh['gated']:4.1f}%)  bound: {top or '-'}")


def _print_aligned(cfg, preds, aligned) -> None:
    """The channel-group-aligned table, each row beside its unaligned figures."""
    g = cfg.tm
    print()
    print(f"channel-group-aligned operating points (--channel-groups): every block's active "
          f"channel count rounded to a multiple of Tm = {g}, the density solved again for the "
          "paper's MAC reduction.")
    print(f"ASSUMES a model trained with `dgfpga train --channel-group {g}` (each channel gate "
          f"keeps a multiple of {g} channels active); the official and shipped checkpoints are "
          "not such models: for them the unaligned figures above apply.")
    print(f"{'network':9s} {'blk dens':>8s} {'MAC red.':>8s} {'speedup':>8s} {'effic.':>7s} "
          f"{'gated ms':>9s} {'img/s':>7s} | {'unaligned speedup':>17s} {'img/s':>7s} "
          f"{'gated cycles saved':>18s}")
    for a, u in zip(aligned, preds):
        print(f"{a.network:9s} {a.block_density:8.3f} {a.mac_reduction:7.2f}x {a.speedup:7.2f}x "
              f"{a.efficiency:7.2f} {a.gated_ms:9.2f} {a.gated_images_per_s:7.1f} | "
              f"{u.speedup:16.2f}x {u.gated_images_per_s:7.1f} "
              f"{100 * (1 - a.gated_ms / u.gated_ms):17.1f}%")


def _host_seconds(args, cfg, nets):
    """({network: host CPU s per image}, where the figure comes from)."""
    if args.host_us is not None:
        return 1e-6 * args.host_us, f"{args.host_us:g} us (--host-us)"
    from dgfpga.perf.netshapes import shape_plan
    from dgfpga_host.runner import measure_host_cpu
    host = {n: measure_host_cpu(shape_plan(n, cfg)) for n in nets}
    return host, ("measured on this machine: thread CPU time of the board runtime's work per "
                  "image around its one start (dgfpga_host.runner.measure_host_cpu, median of "
                  "21 images, cache maintenance included): " +
                  ", ".join(f"{n} {1e6 * v:.0f} us" for n, v in host.items()) +
                  " (a Cortex-A53 is slower; pass the board's figure with --host-us)")


def _own_inputs(args):
    """The checkpoint's float model and its images, loaded and checked before any work."""
    from dgfpga.data.images import load_images
    from dgfpga.quant.float_model import load_float_model
    model, _ = load_float_model(args.checkpoint)
    shape = (3, model.in_h, model.in_w)
    calib = load_images(args.calib, shape, arch=model.arch, purpose="calib", what="--calib")
    images = load_images(args.images, shape, arch=model.arch, purpose="check")
    return model, calib.images, images


def _own_model(inputs, cfg, params, host_us=None):
    """Median prediction over images for a checkpoint's golden-model masks, priced on the
    plan of the quantized model itself (the plan its bundle carries)."""
    import numpy as np
    from dgfpga.numerics.golden import run_golden
    from dgfpga.perf.prediction import predict_masks
    from dgfpga.quant.quantizer import quantize_model
    from dgfpga.runtime.packer import plan_network
    model, calib, images = inputs
    qm = quantize_model(model, calib)
    plan = plan_network(qm, cfg)
    g = run_golden(qm, images.images, keep_layers=False)
    from dgfpga_host.runner import measure_host_cpu
    host = 1e-6 * host_us if host_us is not None else measure_host_cpu(plan)
    preds = [predict_masks(plan, [m.spatial[i] for m in g.masks],
                           [m.channel[i] for m in g.masks], cfg, params, host)
             for i in range(len(images))]
    order = np.argsort([p.speedup for p in preds])
    return preds[int(order[len(order) // 2])], images.source
