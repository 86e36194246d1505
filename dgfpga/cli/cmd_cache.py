"""`dgfpga cache`: what the build cache holds (`dgfpga cache`, `dgfpga cache info`) and
pruning it (`dgfpga cache prune`); never a build a running process uses (dgfpga.build_cache)."""
from __future__ import annotations

import argparse
import time

from dgfpga.cli import options

NAME = "cache"
HELP = ("show the build cache ($DGFPGA_CACHE or ~/.cache/dgfpga: Verilator, C-sim and "
        "synthesis builds) or prune it; builds in use are never deleted")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from dgfpga import build_cache as bc
    sub = p.add_subparsers(dest="cache_command", metavar="ACTION")
    sub.add_parser("info", help="the cache's folder, size and entries by area (the default)",
                   description="Print the cache's folder, its size and entries by area, "
                               "the bound and the largest entries.")
    q = sub.add_parser(
        "prune", help="delete build folders: least recently used first, never one in use",
        description="Delete build folders of the cache, least recently used first. A folder "
                    "that a running process uses or builds is never deleted (it is listed "
                    "as in use). Give at least one of --max-gb, --older-than, --all.")
    q.add_argument("--max-gb", type=options.number(float, lo=0),
                   help="delete until the areas pruned are within this many GB (10^9 bytes)")
    q.add_argument("--older-than", type=options.number(float, lo=0), metavar="DAYS",
                   help="delete folders not used for this many days")
    q.add_argument("--all", action="store_true",
                   help="delete every folder not in use")
    q.add_argument("--area", action="append", choices=sorted(bc.AREAS),
                   help="prune only this area (repeatable; default: all areas: rtl = "
                        "Verilator builds, hls_csim = C-sim builds, synth = open-synthesis "
                        "results)")
    q.add_argument("--dry-run", action="store_true",
                   help="list what would be deleted; delete nothing")


def _gb(n: int) -> str:
    """A size in decimal units (GB = 10^9 bytes, as --max-gb and the bound)."""
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n} B"


def _age(t: float) -> str:
    s = max(time.time() - t, 0.0)
    for unit, div in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= div:
            return f"{s / div:.0f} {unit}"
    return f"{s:.0f} s"


def run(args: argparse.Namespace) -> int:
    from dgfpga import build_cache as bc
    from dgfpga import paths
    from dgfpga.errors import DgfpgaError

    root = paths.cache_dir()
    if getattr(args, "cache_command", None) == "prune":
        if args.max_gb is None and args.older_than is None and not args.all:
            raise DgfpgaError("dgfpga cache prune needs what to delete: --max-gb GB, "
                              "--older-than DAYS or --all (see dgfpga cache prune --help)")
        r = bc.prune(root, max_bytes=None if args.max_gb is None else int(args.max_gb * 1e9),
                     older_than_s=None if args.older_than is None else args.older_than * 86400,
                     everything=args.all, dry_run=args.dry_run, areas=args.area)
        verb = "would delete" if args.dry_run else "deleted"
        for e in r.removed:
            print(f"{verb}: {e.name} ({_gb(e.bytes)}, last used {_age(e.last_used)} ago)")
        for e in r.kept_in_use:
            print(f"in use, kept: {e.name} ({_gb(e.bytes)})")
        print(f"{root}: {verb} {len(r.removed)} folder(s), {_gb(r.bytes_before - r.bytes_after)}; "
              f"{_gb(r.bytes_after)} left in the areas pruned"
              + (f"; {len(r.kept_in_use)} in use kept" if r.kept_in_use else ""))
        return 0
    items = bc.entries(root)
    limit = bc.max_bytes_setting()
    print(f"build cache: {root}")
    print(f"bound of the builds ({', '.join(bc.BOUNDED)}): "
          + (f"{_gb(limit)} (${bc.MAX_ENV})" if limit else f"none (${bc.MAX_ENV}=0)"))
    print(f"{'area':10s} {'entries':>8s} {'size':>10s}")
    for area in bc.AREAS:
        sel = [e for e in items if e.area == area]
        print(f"{area:10s} {len(sel):8d} {_gb(sum(e.bytes for e in sel)):>10s}")
    print(f"{'total':10s} {len(items):8d} {_gb(sum(e.bytes for e in items)):>10s}")
    big = sorted(items, key=lambda e: -e.bytes)[:5]
    if big:
        print("largest:")
        for e in big:
            print(f"  {_gb(e.bytes):>10s}  {e.name}  (last used {_age(e.last_used)} ago)")
    return 0
