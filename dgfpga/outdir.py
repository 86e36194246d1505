"""Transactional output folders (torch-free): complete or absent, never half; the user's
files are never overwritten or deleted.

    check_writable(out)                    # before any work: parent exists, writable, not a file
    preflight(out, force)                  # + the folder-ownership rules below, before any work
    with output_dir(out, "build-hls", force) as tmp:
        ...write every file under tmp...   # on success tmp becomes `out`

Rules (docs/outputs.md):

- Everything is written into a temporary sibling `.NAME.tmp-*` (same filesystem) and moved
  into place only when the command succeeded; an exception or Ctrl-C (KeyboardInterrupt)
  removes the temporary folder and leaves the previous output untouched. The final moves
  run with SIGINT/SIGTERM deferred, so Ctrl-C cannot split them.
- dgfpga marks a folder it wrote with `.dgfpga-output` (JSON: command, dgfpga version, and
  the SHA-256 of every file it wrote). A non-empty existing folder without the marker is
  refused unless `force`; even with `force`, only files that dgfpga wrote and the user did
  not change (hash as recorded) are replaced or removed. Every other file stays; a new file
  that would overwrite a user's file, or a changed dgfpga file, is refused, naming it.
- If the existing folder holds only dgfpga's unchanged files, the new folder replaces it
  in one rename (Linux renameat2 RENAME_EXCHANGE, else two renames); otherwise the new
  files are moved in one by one (each `os.replace` is atomic), the marker last.
- One writer per folder: a lock file `.NAME.dgfpga-lock` next to it (fcntl.flock); a second
  command writing the same folder is refused with a clear message, not left to race.
- Temporary folders left by a killed process (SIGKILL, power loss) are removed by the next
  command that takes the lock.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Iterator, Optional

from dgfpga.errors import DgfpgaError

__all__ = ["MARKER", "OutputError", "check_writable", "preflight", "output_dir",
           "atomic_write_bytes", "atomic_write_text", "atomic_file", "signals_deferred",
           "read_marker"]

MARKER = ".dgfpga-output"
MARKER_FORMAT = "dgfpga-output"
MARKER_VERSION = 1
MAX_MARKER_BYTES = 16 * 2 ** 20


class OutputError(DgfpgaError):
    """An output location is missing, read-only, not a folder, locked by another command,
    or holds files that are not dgfpga's to replace."""


# ----------------------------------------------------------------------------- checks
def check_writable(path, kind: str = "folder") -> Path:
    """Refuse, before any work, an output `path` (a folder, or a file with kind="file")
    that cannot be written: missing parent folder, parent not a folder, read-only location,
    a folder where a file is wanted or the reverse. Returns the path."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    what = "output folder" if kind == "folder" else "output file"
    if not parent.exists():
        raise OutputError(f"{p}: the folder {parent} does not exist: create it first or "
                          f"choose another {what}")
    if not parent.is_dir():
        raise OutputError(f"{p}: {parent} is not a folder")
    if kind == "folder" and p.exists() and not p.is_dir():
        raise OutputError(f"{p}: exists and is not a folder: choose a folder for the output")
    if kind == "file" and p.is_dir():
        raise OutputError(f"{p}: is a folder: name an output file")
    if p.is_symlink():
        raise OutputError(f"{p}: is a symbolic link: name the real {what}")
    for d in ([parent, p] if kind == "folder" and p.is_dir() else [parent]):
        try:                               # os.access misses read-only mounts and ACLs
            probe = tempfile.mkdtemp(prefix=".dgfpga-probe-", dir=d)
            os.rmdir(probe)
        except OSError as exc:
            raise OutputError(f"{p}: cannot write in {d} ({exc.strerror or exc}): choose a "
                              f"writable location") from None
    return p


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB pieces (the marker's and the bundle manifest's hashes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2 ** 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(root: Path) -> dict[str, Path]:
    """Every entry under root that is not a folder (files, symlinks), by relative POSIX
    path; folders are walked without following symlinks."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        for n in filenames + [x for x in dirnames if (d / x).is_symlink()]:
            out[(d / n).relative_to(root).as_posix()] = d / n
    return out


def read_marker(folder) -> Optional[dict]:
    """The marker of `folder` ({"command", "dgfpga_version", "files": {rel: sha256}}), or
    None when there is none. A malformed marker is an OutputError."""
    m = Path(folder) / MARKER
    if not m.exists() and not m.is_symlink():
        return None
    from dgfpga.numerics.qmodel import parse_header
    try:
        if not m.is_file() or m.is_symlink() or m.stat().st_size > MAX_MARKER_BYTES:
            raise ValueError("not a regular file of at most 16 MiB")
        data = parse_header(m.read_bytes(), what=MARKER)
        files = data.get("files") if isinstance(data, dict) else None
        if (data.get("format") != MARKER_FORMAT or not isinstance(files, dict)
                or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())):
            raise ValueError("not a dgfpga output marker")
    except (OSError, ValueError, DgfpgaError) as exc:
        raise OutputError(f"{m}: unreadable dgfpga output marker ({exc}): delete it and the "
                          "files dgfpga wrote, or choose another output folder") from None
    return data


def _changed(folder: Path, rel: str, recorded: Optional[str]) -> bool:
    """True when folder/rel exists and is not dgfpga's unchanged file (hash `recorded`)."""
    p = folder / rel
    if not p.exists() and not p.is_symlink():
        return False
    if recorded is None or p.is_symlink() or not p.is_file():
        return True
    return sha256_file(p) != recorded


def _inspect(out: Path, force: bool) -> Optional[dict]:
    """The ownership rules that can be checked before any work; returns the marker."""
    if not out.exists():
        return None
    marker = read_marker(out)
    if marker is None:
        if any(True for _ in out.iterdir()) and not force:
            raise OutputError(f"{out}: the folder exists and was not written by dgfpga (no "
                              f"{MARKER} file): choose a new output folder, or pass --force to "
                              "add dgfpga's files to it (your files are kept; a file dgfpga "
                              "would overwrite is refused)")
        return None
    changed = sorted(rel for rel, h in marker["files"].items() if _changed(out, rel, h))
    if changed:
        raise OutputError(f"{out}: {', '.join(changed[:5])}"
                          f"{' ...' if len(changed) > 5 else ''} changed since dgfpga wrote "
                          f"{'it' if len(changed) == 1 else 'them'}: dgfpga does not overwrite "
                          "your edits; move the file(s) away or choose another output folder")
    return marker


def preflight(path, force: bool = False) -> Path:
    """check_writable + the ownership rules, for a command to call before its work."""
    p = check_writable(path)
    _inspect(p, force)
    return p


# ----------------------------------------------------------------------------- locking
@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    import fcntl
    lock = out.parent / f".{out.name}.dgfpga-lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            try:
                pid = os.read(fd, 32).decode(errors="replace").strip()
            finally:
                os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(f"{out}: another dgfpga command (pid {pid or '?'}) is "
                                  f"writing this folder: wait for it to finish, or choose "
                                  f"another output folder") from None
            raise
        try:                               # the holder before us may have unlinked it
            if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT/SIGTERM arriving in the block are recorded and re-raised after it (Python
    handlers: a signal may be delivered to any thread, so masking one thread is not enough;
    main thread only, elsewhere the block runs unprotected)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list = []
    old = {}
    for s in (signal.SIGINT, signal.SIGTERM):
        h = signal.getsignal(s)
        if h is not None:                      # None: installed outside Python, leave it
            old[s] = signal.signal(s, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for s in dict.fromkeys(got):           # once each, with the original handlers
            signal.raise_signal(s)


signals_deferred = _signals_deferred     # public: e.g. a training epoch's three saves


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        f = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    r = f(AT_FDCWD, os.fsencode(str(a)), AT_FDCWD, os.fsencode(str(b)), RENAME_EXCHANGE)
    return r == 0


# ----------------------------------------------------------------------------- writing
def _write_marker(folder: Path, command: str, files: dict[str, str]) -> None:
    from dgfpga import __version__
    data = {"format": MARKER_FORMAT, "version": MARKER_VERSION, "command": command,
            "dgfpga_version": __version__, "files": dict(sorted(files.items())),
            "note": "written by dgfpga: the files it wrote and their SHA-256; dgfpga replaces "
                    "only these files, and only while unchanged"}
    (folder / MARKER).write_text(json.dumps(data, indent=1) + "\n")


def _clean_stale(out: Path) -> None:
    for p in out.parent.glob(f".{out.name}.tmp-*"):       # left by a killed process
        shutil.rmtree(p, ignore_errors=True)


def _commit(tmp: Path, out: Path, command: str, force: bool) -> None:
    new = {rel: sha256_file(p) for rel, p in _files(tmp).items() if rel != MARKER}
    if not out.exists():
        _write_marker(tmp, command, new)
        os.rename(tmp, out)
        return
    old = _inspect(out, force)                  # again: the folder may have changed
    owned = dict(old["files"]) if old else {}
    present = {rel for rel in _files(out) if rel != MARKER}
    clash = sorted(rel for rel in new if rel in present and rel not in owned)
    if clash:
        raise OutputError(f"{out}: {', '.join(clash[:5])}{' ...' if len(clash) > 5 else ''} "
                          "exist(s) and dgfpga did not write it: not overwritten; move it away "
                          "or choose another output folder (nothing was changed)")
    user = present - set(owned)
    _write_marker(tmp, command, new)
    if not user:                                # only our files: swap whole folders
        if _exchange(tmp, out):
            shutil.rmtree(tmp, ignore_errors=True)
            return
        old_dir = out.parent / f"{tmp.name}-old"
        os.rename(out, old_dir)
        os.rename(tmp, out)
        shutil.rmtree(old_dir, ignore_errors=True)
        return
    for rel in sorted(new):                     # the user's files stay: file by file
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, dst)
    for rel in sorted(set(owned) - set(new)):   # our stale files (unchanged: checked)
        with contextlib.suppress(FileNotFoundError):
            (out / rel).unlink()
        d = (out / rel).parent
        while d != out and d.is_dir() and not any(d.iterdir()):
            d.rmdir()
            d = d.parent
    os.replace(tmp / MARKER, out / MARKER)
    shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def output_dir(path, command: str, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder to write the output into; on success it replaces `path`
    (module docstring), on any exception or Ctrl-C it is removed and `path` is unchanged."""
    out = check_writable(path)
    with _lock(out):
        _clean_stale(out)
        _inspect(out, force)                    # refuse before the work
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)           # mkdtemp makes 0700; a folder is 0777-umask
        try:
            yield tmp
            with _signals_deferred():
                _commit(tmp, out, command, force)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write a file completely or not at all (temporary sibling + os.replace)."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_file(path) -> Iterator[Path]:
    """For a file written by a library (matplotlib, torch.save, onnx, np.savez): yield a
    temporary sibling path with the same suffix (libraries pick the format from it); on
    success it replaces `path` (os.replace), on any exception or Ctrl-C it is removed and
    `path` is unchanged. `path` is checked first (check_writable kind="file")."""
    p = check_writable(path, kind="file")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.tmp-", suffix=p.suffix, dir=p.parent)
    os.close(fd)
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)            # mkstemp makes 0600; a file is 0666-umask
    try:
        yield Path(tmp)
        os.replace(tmp, p)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
