"""`dgfpga-host`: the board-side command line (numpy only; pynq only for --device board).

    dgfpga-host bench --bundle BUNDLE [--device board|csim|rtl|numpy] [--images SPEC]
                      [-o OUT.json]
    dgfpga-host info  --bundle BUNDLE

`--images` takes `selfcheck[:N]` (the bundle's self-check images, default selfcheck:20)
or any image spec of `dgfpga.data.images` (embedded[:N][:SPLIT], photos[:N][:SPLIT], an
.npy file, a folder of PNG/JPEG/.npy images), normalised with the bundle model's mean/std.

`bench` runs N images gated and dense, reports per-image latency (median, p90), images/s,
speedup, the host-side overhead (gate evaluation + scheduling) as a share of the total,
engine cycles, and checks every self-check image bit for bit against the golden model's
outputs recorded in the bundle (logits and every mask). Exit status 1 if anything differs;
2 (with a one-line message) for a bad bundle or image spec, before anything runs.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from dgfpga.errors import DgfpgaError, cli_boundary, console_entry


def _stats(xs) -> dict:
    a = np.asarray(xs, dtype=np.float64)
    return {"median": float(np.median(a)), "p90": float(np.percentile(a, 90)),
            "mean": float(a.mean())}


def bench(args) -> int:
    from dgfpga_host.bundle import load_bundle
    from dgfpga_host.runner import NetworkRunner
    from dgfpga_host.sim_devices import make_device
    from dgfpga.data.images import load_images, parse_spec
    from dgfpga.outdir import atomic_write_text, check_writable
    if args.out:                  # before the benchmark: its figures must not be lost
        check_writable(args.out, "file")
    b = load_bundle(args.bundle)
    # the images are checked before the device is opened or anything runs
    spec = parse_spec(args.images, "--images", extra_kinds=("selfcheck",))
    sc = b.selfcheck
    if spec.kind == "selfcheck":
        if sc is None:
            raise DgfpgaError(f"--images {args.images}: the bundle has no self-check images; "
                              f"give an image spec (embedded:N, an .npy file or a folder)")
        if spec.split is not None:
            raise DgfpgaError(f"--images {args.images}: expected selfcheck[:N]")
        images = sc.images[:spec.n or len(sc.images)]
        check = True
    else:
        qm = b.qmodel
        images = load_images(args.images, qm.input_shape, qm.mean, qm.std).images
        check = False
    dev_kw = {}
    if args.device == "board":
        dev_kw = {"bitfile": args.bitfile or str(Path(args.bundle) / "overlay" / "dgfpga.bit")}
    device = make_device(args.device, b.cfg, **dev_kw)
    runner = NetworkRunner(b, device, timeout_s=args.timeout, validate=args.validate)
    res = {"gated": [], "dense": []}
    mismatches = []
    t0 = time.perf_counter()
    for n, img in enumerate(images):
        for mode in ("gated", "dense"):
            r = runner.run_image(img, dense=(mode == "dense"))
            res[mode].append(r)
            if check:
                want = sc.logits_int[n] if mode == "gated" else sc.logits_int_dense[n]
                if not np.array_equal(r.logits_int, want):
                    mismatches.append(f"image {n} {mode}: logits differ")
                if mode == "gated":
                    for i in range(len(sc.spatial)):
                        if not (np.array_equal(r.spatial[i], sc.spatial[i][n])
                                and np.array_equal(r.channel[i], sc.channel[i][n])):
                            mismatches.append(f"image {n}: block {i} masks differ")
        if args.progress:
            print(f"\r{n + 1}/{len(images)} images", end="", file=sys.stderr, flush=True)
    if args.progress:
        print(file=sys.stderr)
    cfg = b.cfg
    out = {"device": device.name, "bundle": str(args.bundle), "arch": b.qmodel.arch,
           "config": cfg.name, "clock_hz": cfg.clock_hz, "images": len(images),
           "wall_s": time.perf_counter() - t0}
    for mode, rs in res.items():
        cyc = [r.cycles for r in rs]
        out[mode] = {
            "latency_ms": _stats([1e3 * r.total_s for r in rs]),
            "host_overhead_ms": _stats([1e3 * r.host_s for r in rs]),
            "host_overhead_share": float(np.median([r.host_s / r.total_s for r in rs])),
            "engine_cycles": _stats(cyc),
            "engine_ms_at_clock": 1e3 * float(np.median(cyc)) / cfg.clock_hz,
            "macs": _stats([r.macs for r in rs]),
            "images_per_s": len(rs) / sum(r.total_s for r in rs),
        }
    g, d = out["gated"], out["dense"]
    out["speedup_wall"] = d["latency_ms"]["median"] / g["latency_ms"]["median"]
    out["speedup_cycles"] = d["engine_cycles"]["median"] / g["engine_cycles"]["median"]
    out["mac_reduction"] = d["macs"]["median"] / g["macs"]["median"]
    out["efficiency_cycles"] = out["speedup_cycles"] / out["mac_reduction"]
    out["bit_exact"] = None if not check else not mismatches
    out["mismatches"] = mismatches[:20]
    _print(out)
    if args.out:
        atomic_write_text(args.out, json.dumps(out, indent=2) + "\n")
    return 1 if mismatches else 0


def _print(o: dict) -> None:
    print(f"dgfpga-host bench: {o['arch']} on device '{o['device']}' (engine '{o['config']}', "
          f"{o['clock_hz'] / 1e6:.0f} MHz), {o['images']} images")
    print(f"{'':8s} {'latency med':>12s} {'p90':>9s} {'img/s':>8s} {'host share':>10s} "
          f"{'cycles med':>11s} {'ms @clock':>9s} {'MACs med':>10s}")
    for mode in ("gated", "dense"):
        m = o[mode]
        print(f"{mode:8s} {m['latency_ms']['median']:10.2f}ms {m['latency_ms']['p90']:7.2f}ms "
              f"{m['images_per_s']:8.1f} {100 * m['host_overhead_share']:9.1f}% "
              f"{m['engine_cycles']['median']:11.0f} {m['engine_ms_at_clock']:9.3f} "
              f"{m['macs']['median'] / 1e6:9.2f}M")
    print(f"speedup: {o['speedup_cycles']:.2f}x in engine cycles, {o['speedup_wall']:.2f}x wall "
          f"clock on this device; MAC reduction {o['mac_reduction']:.2f}x; efficiency "
          f"{o['efficiency_cycles']:.2f}")
    if o["bit_exact"] is None:
        print("bit-exact check: not run (only the bundle's self-check images have recorded "
              "outputs)")
    else:
        print(f"bit-exact vs golden (logits + masks, gated and dense): "
              f"{'PASS' if o['bit_exact'] else 'FAIL: ' + '; '.join(o['mismatches'][:5])}")


def info(args) -> int:
    from dgfpga_host.bundle import load_bundle
    b = load_bundle(args.bundle)
    m = b.manifest
    print(f"bundle {b.path}: {m['arch']}, engine '{b.cfg.name}' ({m['config_hash']}), "
          f"formats v{m['format_version']}, dgfpga {m['dgfpga_version']}")
    print("regions: " + ", ".join(f"{k} {v} B" for k, v in b.plan.region_bytes.items()))
    n = 0 if b.selfcheck is None else len(b.selfcheck.images)
    print(f"blocks: {len(b.plan.blocks)}; self-check images: {n}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dgfpga-host", description="dgfpga board runtime")
    p.add_argument("--debug", action="store_true",
                   help="show the full traceback of an error instead of a one-line message")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    b = sub.add_parser("bench", help="gated vs dense latency, speedup and bit-exact self-check")
    b.add_argument("--bundle", required=True, help="bundle folder written by dgfpga build-hls")
    b.add_argument("--device", default="board", choices=("board", "csim", "rtl", "numpy"),
                   help="engine target (default: the Ultra96 via PYNQ)")
    b.add_argument("--bitfile", help="overlay .bit (default BUNDLE/overlay/dgfpga.bit)")
    b.add_argument("--images", default="selfcheck:20", metavar="SPEC",
                   help="images to run: selfcheck[:N] (the bundle's self-check images, "
                        "checked bit for bit), embedded[:N][:SPLIT], photos[:N][:SPLIT], an "
                        ".npy file (uint8 [N,H,W,3] or normalised float32 [N,3,H,W]) or a "
                        "folder of PNG/JPEG/.npy images (default selfcheck:20)")
    b.add_argument("--timeout", type=float, default=5.0, help="engine timeout per start, s")
    b.add_argument("--validate", action="store_true",
                   help="re-check every descriptor and work list on the host before starting")
    b.add_argument("-o", "--out", help="also write the figures to this JSON file")
    b.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress line on stderr")
    b.set_defaults(func=bench)
    i = sub.add_parser("info", help="describe a bundle")
    i.add_argument("--bundle", required=True, help="bundle folder written by dgfpga build-hls")
    i.set_defaults(func=info)
    return p


def main(argv=None) -> int:
    return cli_boundary("dgfpga-host", build_parser, argv, "func")


def entry() -> None:
    """The console script (Ctrl-C ignored at interpreter shutdown, as `dgfpga`'s)."""
    console_entry(main)


if __name__ == "__main__":
    entry()
