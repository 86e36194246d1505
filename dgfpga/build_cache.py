"""The build cache (`paths.cache_dir()`): what is in it, what is in use, and a size bound.

Every RTL change makes new Verilator builds (`rtl/<config>/<kind>-<hash>`, `rtl/unit/...`,
hundreds of MB each at `ultra96`) and new C-sim builds (`hls_csim/<config>-<hash>`); open
synthesis keeps a result per source hash (`synth/<key>`). Nothing ever needs an old one
again, so the cache is bounded:

- **In use.** A process that uses a build folder (builds it, or finds it built and runs it)
  calls `use(folder)` first: it holds a *shared* OS lock (`fcntl.flock`) on the folder's
  `.NAME.use` file beside it until the process exits, and stamps the file's time (the
  folder's last use). Any number of processes share a build.
- **Pruning** takes that lock *exclusively and without waiting*, and the folder's build lock
  (`paths.build_lock`) the same way; it deletes a folder only while it holds both, so it
  never deletes a build a live process uses or is building. A process that asks for the
  folder meanwhile waits for the deletion to finish and then builds it again.
- **The bound.** After each new build the builders call `enforce_limit()`: the least recently
  used build folders (`rtl`, `hls_csim`) not in use are deleted until they are within
  `$DGFPGA_CACHE_MAX_GB` (default `DEFAULT_MAX_GB`; `0` turns the bound off). Synthesis
  results are small and slow to make: only `dgfpga cache prune` removes them.
- `dgfpga cache` shows the cache by area; `dgfpga cache prune` prunes it by hand (to a size,
  by age, or everything not in use; `--dry-run` lists what it would delete).

Only build folders are entries: the generated data sets (`*.npz`), the simulators' own run
folders (`rtl/runs`, removed by `rtl_sim.remove_stale_runs`) and lock files are not touched.
Where `fcntl` does not exist (Windows) a folder used in the last `RECENT_S` seconds counts as
in use instead.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

from dgfpga import paths
from dgfpga.errors import DgfpgaError

try:                                    # POSIX; on Windows `use` only stamps the time
    import fcntl
except ImportError:                     # pragma: no cover - not on the supported hosts
    fcntl = None

#: the default bound of the cache, in GB (10^9 bytes): ~25 ultra96 Verilator builds
DEFAULT_MAX_GB = 20.0
#: the environment variable that sets the bound (GB; 0 = unbounded)
MAX_ENV = "DGFPGA_CACHE_MAX_GB"
#: without fcntl: a folder used this recently counts as in use
RECENT_S = 3600.0
#: the areas of the cache and how deep their build folders are
AREAS = {"rtl": 2, "hls_csim": 1, "synth": 1}
#: the areas the automatic bound prunes: the builds. Synthesis results are small and each
#: took minutes to hours (`dgfpga explore` reads them): only `dgfpga cache prune` removes them
BOUNDED = ("rtl", "hls_csim")
#: folders in an area that are not build entries (managed elsewhere)
SKIP = {("rtl", "runs")}

_held: dict[str, int] = {}              # use-lock file -> fd, held until the process exits


#: a build in progress in a folder of its own, renamed to its final name when complete
#: (rtl_sim.build_fast): it belongs to the final name's locks
BUILDING = ".building-"


def _owner(folder: Path) -> Path:
    """The build folder whose locks cover `folder` (itself, or the final name of a build
    in progress)."""
    name, sep, _ = folder.name.partition(BUILDING)
    return folder.parent / name if sep else folder


def _use_file(folder: Path) -> Path:
    folder = _owner(folder)
    return folder.parent / f".{folder.name}.use"


def _touch(fd: int, path: Path, times: Optional[tuple] = None) -> None:
    """Set the time of the open use-lock file `fd` (at `path`); best effort."""
    try:
        os.utime(fd if os.utime in os.supports_fd else path, times)
    except OSError:
        pass


def use(folder: Path) -> Path:
    """Mark `folder` (a build folder in the cache, existing or about to be built) as used
    by this process until it exits, and as used now (its LRU time). Returns `folder`."""
    folder = Path(folder)
    f = _use_file(folder)
    key = str(f)
    fd = _held.get(key)
    if fd is None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_SH)      # waits only while a prune deletes the folder
        _held[key] = fd
    _touch(fd, f)
    return folder


@dataclass(eq=False)
class Entry:
    """One build folder of the cache."""
    area: str
    name: str                           # relative to the cache root, e.g. rtl/small/fast-1a2b
    path: Path
    bytes: int
    last_used: float                    # seconds since the epoch


def _size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _folders(base: Path, depth: int) -> Iterator[Path]:
    level = [base]
    for _ in range(depth):
        level = [c for d in level for c in _children(d)]
    yield from level


def _children(d: Path) -> list[Path]:
    try:
        return sorted(c for c in d.iterdir() if c.is_dir() and not c.is_symlink()
                      and not c.name.startswith("."))
    except OSError:
        return []


def entries(root: Optional[Path] = None) -> list[Entry]:
    """The build folders of the cache at `root` (default `paths.cache_dir()`)."""
    root = Path(root) if root is not None else paths.cache_dir()
    out = []
    for area, depth in AREAS.items():
        base = root / area
        for d in _folders(base, depth):
            rel = d.relative_to(base).parts
            if (area, rel[0]) in SKIP:
                continue
            try:
                last = d.stat().st_mtime
            except OSError:                     # deleted meanwhile
                continue
            try:
                last = max(last, _use_file(d).stat().st_mtime)
            except OSError:                     # never marked in use
                pass
            out.append(Entry(area, d.relative_to(root).as_posix(), d, _size(d), last))
    return out


class _Claim:
    """Both locks of a folder taken without waiting: held, nobody uses or builds it."""

    def __init__(self, folder: Path):
        self.folder, self.fd, self.build, self.created = folder, None, None, False

    def __enter__(self) -> bool:
        if str(_use_file(self.folder)) in _held:       # this process uses it
            return False
        if fcntl is None:
            try:
                recent = time.time() - _use_file(self.folder).stat().st_mtime < RECENT_S
            except OSError:
                recent = False
            if recent:
                return False
        else:
            f = _use_file(self.folder)
            self.created = not f.exists()
            try:
                self.fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:                             # a live process holds it shared
                return False
        try:
            from filelock import Timeout
        except ImportError:         # no build locks without it (extra 'sim'): none is held
            return True
        lock = paths.build_lock(_owner(self.folder))
        try:
            lock.acquire(timeout=0)
        except Timeout:                                 # being built right now
            return False
        self.build = lock
        return True

    def __exit__(self, *exc) -> None:
        if self.build is not None:
            self.build.release()
        if self.fd is not None:
            if self.created:    # the lock file we made is no use: it must not read as one
                _touch(self.fd, _use_file(self.folder), (0, 0))
            os.close(self.fd)


def remove(entry: Entry) -> bool:
    """Delete `entry`'s folder if no process uses or builds it; True if deleted."""
    with _Claim(entry.path) as free:
        if not free:
            return False
        shutil.rmtree(entry.path, ignore_errors=True)
        return not entry.path.exists()


def in_use(entry: Entry) -> bool:
    """Whether a live process (this one included) uses or builds `entry` now."""
    with _Claim(entry.path) as free:
        return not free


def select(items: Iterable[Entry], max_bytes: Optional[int] = None,
           older_than_s: Optional[float] = None, everything: bool = False,
           now: Optional[float] = None) -> list[Entry]:
    """The entries to delete, least recently used first: all (`everything`), those unused
    for `older_than_s`, and then more in LRU order until the rest is within `max_bytes`."""
    now = time.time() if now is None else now
    lru = sorted(items, key=lambda e: e.last_used)
    if everything:
        return lru
    chosen = [e for e in lru if older_than_s is not None and now - e.last_used >= older_than_s]
    if max_bytes is not None:
        left = sum(e.bytes for e in lru) - sum(e.bytes for e in chosen)
        for e in lru:
            if left <= max_bytes:
                break
            if e not in chosen:
                chosen.append(e)
                left -= e.bytes
    return chosen


@dataclass
class PruneResult:
    removed: list[Entry]
    kept_in_use: list[Entry]
    bytes_before: int
    bytes_after: int


def prune(root: Optional[Path] = None, max_bytes: Optional[int] = None,
          older_than_s: Optional[float] = None, everything: bool = False,
          dry_run: bool = False, areas: Optional[Iterable[str]] = None) -> PruneResult:
    """Delete build folders (see `select`), never one in use; `dry_run` deletes nothing.
    A folder in use is skipped and, under a size bound, the next one in LRU order taken."""
    items = [e for e in entries(root) if areas is None or e.area in set(areas)]
    before = sum(e.bytes for e in items)
    removed, busy, pool = [], [], list(items)
    while True:
        chosen = select(pool, max_bytes, older_than_s, everything)
        if not chosen:
            break
        e = chosen[0]
        pool = [x for x in pool if x is not e]
        gone = (not in_use(e)) if dry_run else remove(e)
        if gone:
            removed.append(e)
        else:
            busy.append(e)
            if max_bytes is not None:    # it stays: the bound must come from the others
                max_bytes -= e.bytes
    return PruneResult(removed, busy, before, before - sum(e.bytes for e in removed))


def max_bytes_setting() -> Optional[int]:
    """The cache bound from `$DGFPGA_CACHE_MAX_GB` (default DEFAULT_MAX_GB); None if 0."""
    raw = os.environ.get(MAX_ENV, "").strip()
    try:
        gb = float(raw) if raw else DEFAULT_MAX_GB
    except ValueError:
        raise DgfpgaError(f"{MAX_ENV}={raw!r} is not a number of GB: set it to e.g. 20, "
                          "or 0 for an unbounded build cache") from None
    if gb < 0 or gb != gb:
        raise DgfpgaError(f"{MAX_ENV}={raw!r} must be >= 0 (GB; 0 = unbounded)")
    return None if gb == 0 else int(gb * 1e9)


def enforce_limit(root: Optional[Path] = None) -> Optional[PruneResult]:
    """Bring the builds of the cache (areas BOUNDED) within the bound (`max_bytes_setting`),
    least recently used first; called by the builders after each new build. None when
    unbounded."""
    limit = max_bytes_setting()
    if limit is None:
        return None
    return prune(root, max_bytes=limit, areas=BOUNDED)
