"""`dgfpga-host`: the board-side command line (numpy only; pynq only for --device board).

    dgfpga-host bench --bundle BUNDLE [--device board|csim|rtl|numpy] [--images SPEC]
                      [-o OUT.json]
    dgfpga-host info  --bundle BUNDLE

`--images` takes `selfcheck[:N]` (the bundle's self-check images, default selfcheck:20)
or any image spec of `dgfpga.data.images` (embedded[:N][:SPLIT], photos[:N][:SPLIT], an
.npy file, a folder of PNG/JPEG/.npy images), normalised with the bundle model's mean/std.

`bench` runs N images gated and dense, each in ONE engine start, and reports per image
(medians): the host's CPU time (thread CPU time of the runner's work around the start: input
write, registers, reading logits/masks/cycle log; not the wait), cache maintenance
separately (time and bytes flushed/invalidated), starts per image, engine cycles and their
time at the clock, the host CPU as a share of that engine time, and the gated vs dense
speedup end to end (host + cache + engine at the clock) and in engine cycles, with the
efficiency (speedup / MAC reduction). Every self-check image is checked bit for bit against
the golden model's outputs recorded in the bundle (logits and every mask, gated and dense).
Exit status 1 if anything differs; 2 (with a one-line message) for a bad bundle or image
spec, before anything runs.
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
                mismatches += _check_image(r, sc, n, mode)
        if args.progress:
            print(f"\r{n + 1}/{len(images)} images", end="", file=sys.stderr, flush=True)
    if args.progress:
        print(file=sys.stderr)
    out = figures(res, b.cfg, args.clock_mhz)
    if device.name != "board":
        # a simulator runs the engine on this CPU, in this process, between the host's
        # steps (cold caches): the host's work is also timed with an engine that finishes
        # at once, as the PL does not touch the CPU's caches
        from dgfpga_host.runner import measure_host_cpu
        null = 1e3 * measure_host_cpu(b.plan, n=max(21, len(images)))
        eng = out["gated"]["engine_ms_at_clock"]
        out["host_cpu_null_engine_ms"] = null
        out["host_share_null_engine"] = null / eng
    out.update({"device": device.name, "bundle": str(args.bundle), "arch": b.qmodel.arch,
                "wall_s": time.perf_counter() - t0,
                "setup_cache_bytes_flushed": runner.setup_cache.flushed})
    out["bit_exact"] = None if not check else not mismatches
    out["mismatches"] = mismatches[:20]
    _print(out)
    if args.out:
        atomic_write_text(args.out, json.dumps(out, indent=2) + "\n")
    return 1 if mismatches else 0


def _check_image(r, sc, n: int, mode: str) -> list:
    """What differs between one run and the golden outputs recorded in the self-check."""
    bad = []
    want = sc.logits_int[n] if mode == "gated" else sc.logits_int_dense[n]
    if not np.array_equal(r.logits_int, want):
        bad.append(f"image {n} {mode}: logits differ")
    for i in range(len(sc.spatial)):
        ws = sc.spatial[i][n] if mode == "gated" else np.ones_like(sc.spatial[i][n])
        wc = sc.channel[i][n] if mode == "gated" else np.ones_like(sc.channel[i][n])
        if not (np.array_equal(r.spatial[i], ws) and np.array_equal(r.channel[i], wc)):
            bad.append(f"image {n} {mode}: block {i} masks differ")
    return bad


def figures(res: dict, cfg, clock_mhz=None) -> dict:
    """The bench figures of runs {"gated": [ImageResult], "dense": [...]} (medians per
    image). Engine time = cycles at `clock_mhz` (default: the configuration's clock);
    end-to-end = host CPU + cache maintenance + engine time (what one image costs on a
    board whose host is this CPU)."""
    f = (clock_mhz * 1e6) if clock_mhz else cfg.clock_hz
    out = {"config": cfg.name, "clock_hz": f, "images": len(res["gated"])}
    for mode, rs in res.items():
        cyc = np.array([r.cycles for r in rs], dtype=np.float64)
        host = np.array([r.host_s for r in rs])
        cache = np.array([r.cache_s for r in rs])
        e2e = host + cache + cyc / f
        out[mode] = {
            "host_cpu_ms": _stats(1e3 * host),
            "cache_ms": _stats(1e3 * cache),
            "cache_bytes_flushed": _stats([r.cache.flushed for r in rs]),
            "cache_bytes_invalidated": _stats([r.cache.invalidated for r in rs]),
            "starts_per_image": int(max(r.starts for r in rs)),
            "engine_cycles": _stats(cyc),
            "engine_ms_at_clock": 1e3 * float(np.median(cyc)) / f,
            "host_share_of_engine": float(np.median(host) / (np.median(cyc) / f)),
            "end_to_end_ms": _stats(1e3 * e2e),
            "latency_ms_this_device": _stats([1e3 * r.total_s for r in rs]),
            "macs": _stats([r.macs for r in rs]),
        }
    g, d = out["gated"], out["dense"]
    out["speedup_end_to_end"] = d["end_to_end_ms"]["median"] / g["end_to_end_ms"]["median"]
    out["speedup_cycles"] = d["engine_cycles"]["median"] / g["engine_cycles"]["median"]
    out["speedup_wall_this_device"] = (d["latency_ms_this_device"]["median"]
                                       / g["latency_ms_this_device"]["median"])
    out["mac_reduction"] = d["macs"]["median"] / g["macs"]["median"]
    out["efficiency_end_to_end"] = out["speedup_end_to_end"] / out["mac_reduction"]
    out["efficiency_cycles"] = out["speedup_cycles"] / out["mac_reduction"]
    return out


def _print(o: dict) -> None:
    mhz = o["clock_hz"] / 1e6
    print(f"dgfpga-host bench: {o['arch']} on device '{o['device']}' (engine '{o['config']}', "
          f"engine time at {mhz:.0f} MHz), {o['images']} images, medians per image")
    print(f"{'':6s} {'starts':>6s} {'host CPU':>10s} {'cache':>9s} {'flushed':>8s} "
          f"{'invalid.':>8s} {'cycles':>11s} {'engine':>10s} {'host:eng':>8s} "
          f"{'end-to-end':>11s} {'MACs':>9s}")
    for mode in ("gated", "dense"):
        m = o[mode]
        print(f"{mode:6s} {m['starts_per_image']:6d} {1e3 * m['host_cpu_ms']['median']:8.1f}us "
              f"{1e3 * m['cache_ms']['median']:7.1f}us "
              f"{m['cache_bytes_flushed']['median']:7.0f}B "
              f"{m['cache_bytes_invalidated']['median']:7.0f}B "
              f"{m['engine_cycles']['median']:11.0f} {m['engine_ms_at_clock']:8.3f}ms "
              f"{100 * m['host_share_of_engine']:7.2f}% "
              f"{m['end_to_end_ms']['median']:9.3f}ms {m['macs']['median'] / 1e6:8.2f}M")
    print(f"speedup gated vs dense: {o['speedup_end_to_end']:.2f}x end to end (host + cache + "
          f"engine at {mhz:.0f} MHz), {o['speedup_cycles']:.2f}x in engine cycles; MAC "
          f"reduction {o['mac_reduction']:.2f}x; efficiency {o['efficiency_end_to_end']:.2f} "
          f"end to end, {o['efficiency_cycles']:.2f} in cycles")
    print("host CPU = thread CPU time of the runner's work per image on this machine (not "
          "the wait); cache maintenance counted separately; "
          f"wall clock on this device: {o['speedup_wall_this_device']:.2f}x")
    if "host_cpu_null_engine_ms" in o:
        print(f"host CPU + cache with a null engine (no simulator on this CPU between the "
              f"host's steps, as on the board): {1e3 * o['host_cpu_null_engine_ms']:.1f}us per "
              f"image, {100 * o['host_share_null_engine']:.2f}% of the gated engine time")
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
    print(f"blocks: {len(b.plan.blocks)}; program: {b.plan.record_count} records, one engine "
          f"start per image; self-check images: {n}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from dgfpga.cli.options import number
    p = argparse.ArgumentParser(prog="dgfpga-host", description="dgfpga board runtime")
    p.add_argument("--debug", action="store_true",
                   help="show the full traceback of an error instead of a one-line message")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    b = sub.add_parser("bench", help="gated vs dense: host CPU, cache maintenance, starts, "
                       "cycles, speedup and bit-exact self-check")
    b.add_argument("--bundle", required=True, help="bundle folder written by dgfpga build-hls")
    b.add_argument("--device", default="board", choices=("board", "csim", "rtl", "numpy"),
                   help="engine target (default: the Ultra96 via PYNQ)")
    b.add_argument("--bitfile", help="overlay .bit (default BUNDLE/overlay/dgfpga.bit)")
    b.add_argument("--images", default="selfcheck:20", metavar="SPEC",
                   help="images to run: selfcheck[:N] (the bundle's self-check images, "
                        "checked bit for bit), embedded[:N][:SPLIT], photos[:N][:SPLIT], an "
                        ".npy file (uint8 [N,H,W,3] or normalised float32 [N,3,H,W]) or a "
                        "folder of PNG/JPEG/.npy images (default selfcheck:20)")
    b.add_argument("--timeout", type=float, default=None,
                   help="engine timeout per start, s (default: the device's, 10 s on the "
                        "board, minutes on the simulators)")
    b.add_argument("--validate", action="store_true",
                   help="check every record of the program on the host once before the "
                        "first start (the engine checks them on every start anyway)")
    b.add_argument("--clock-mhz", type=number(float, 0, 10_000, lo_open=True), default=None,
                   metavar="MHZ",
                   help="engine clock for the engine time and end-to-end figures (default: "
                        "the bundle's engine configuration)")
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
