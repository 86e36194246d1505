"""dgfpga.outdir: outputs are complete or absent, the user's files are never overwritten or
deleted, one writer per folder, unwritable locations refused before any work (torch-free).

The reference for "what is in a folder" is an independent walk + hashlib here, not the
module's own helpers."""
from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

import pytest

from dgfpga import outdir
from dgfpga.errors import DgfpgaError
from dgfpga.outdir import MARKER, OutputError, check_writable, output_dir, preflight


def snapshot(root: Path) -> dict:
    """{relative path: sha256} of every file under root (independent of dgfpga.outdir)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def write(out: Path, files: dict, force: bool = False, command: str = "test") -> None:
    with output_dir(out, command, force=force) as tmp:
        for rel, text in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text)


def leftovers(parent: Path, name: str) -> list:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


V1 = {"README.md": "ours 1\n", "src/a.cpp": "a1\n", "tb/vectors/old/x.bin": "old\n"}
V2 = {"README.md": "ours 2\n", "src/a.cpp": "a2\n", "tb/vectors/new/y.bin": "new\n"}


def test_new_folder_is_complete_and_marked(tmp_path):
    out = tmp_path / "out"
    write(out, V1, command="build-hls")
    snap = snapshot(out)
    assert set(snap) == set(V1) | {MARKER}
    marker = json.loads((out / MARKER).read_text())
    assert marker["command"] == "build-hls"
    assert marker["files"] == {k: hashlib.sha256(v.encode()).hexdigest() for k, v in V1.items()}
    assert leftovers(tmp_path, "out") == []
    assert oct(out.stat().st_mode & 0o777) != oct(0o700)      # not mkdtemp's private mode


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_or_ctrl_c_leaves_the_previous_output(tmp_path, exc):
    out = tmp_path / "out"
    write(out, V1)
    before = snapshot(out)
    with pytest.raises(type(exc)):
        with output_dir(out, "test") as tmp:
            (tmp / "README.md").write_text("half")
            raise exc
    assert snapshot(out) == before
    assert leftovers(tmp_path, "out") == []
    with pytest.raises(type(exc)):                 # and a new folder is not created at all
        with output_dir(tmp_path / "new", "test") as tmp:
            (tmp / "x").write_text("half")
            raise exc
    assert not (tmp_path / "new").exists()


def test_rebuild_replaces_only_our_files(tmp_path):
    out = tmp_path / "out"
    write(out, V1)
    (out / "vivado").mkdir()
    (out / "vivado" / "project.xpr").write_text("tool output")
    (out / "tb" / "vectors" / "old" / "mine.txt").write_text("user file in our folder")
    write(out, V2)
    snap = snapshot(out)
    for rel, text in V2.items():
        assert (out / rel).read_text() == text
    assert not (out / "tb" / "vectors" / "old" / "x.bin").exists()      # our stale file
    assert (out / "vivado" / "project.xpr").read_text() == "tool output"   # the user's
    assert (out / "tb" / "vectors" / "old" / "mine.txt").read_text() == "user file in our folder"
    assert set(json.loads((out / MARKER).read_text())["files"]) == set(V2)
    assert set(snap) == set(V2) | {MARKER, "vivado/project.xpr", "tb/vectors/old/mine.txt"}


def test_rebuild_of_our_own_folder_swaps_it_whole(tmp_path):
    out = tmp_path / "out"
    write(out, V1)
    write(out, V2)
    assert set(snapshot(out)) == set(V2) | {MARKER}
    assert not (out / "tb" / "vectors" / "old").exists()
    assert leftovers(tmp_path, "out") == []


@pytest.mark.parametrize("force", [False, True])
def test_an_edited_file_of_ours_is_refused_naming_it(tmp_path, force):
    out = tmp_path / "out"
    write(out, V1)
    (out / "src" / "a.cpp").write_text("my edit\n")
    before = snapshot(out)
    with pytest.raises(OutputError, match=r"src/a\.cpp changed since dgfpga wrote it"):
        write(out, V2, force=force)
    assert snapshot(out) == before
    with pytest.raises(OutputError, match=r"src/a\.cpp changed"):
        preflight(out, force)


def test_a_foreign_folder_is_refused_unless_force(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"not written by dgfpga .*--force"):
        write(out, V1)
    with pytest.raises(OutputError, match="not written by dgfpga"):
        preflight(out)
    assert snapshot(out) == {"notes.txt": hashlib.sha256(b"mine").hexdigest()}
    write(out, V1, force=True)                      # adds ours, keeps theirs
    assert (out / "notes.txt").read_text() == "mine"
    assert all((out / k).read_text() == v for k, v in V1.items())
    assert "notes.txt" not in json.loads((out / MARKER).read_text())["files"]


def test_force_never_overwrites_a_users_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").write_text("the user's readme")
    (out / "src").mkdir()
    (out / "src" / "a.cpp").write_text("the user's code")
    before = snapshot(out)
    with pytest.raises(OutputError, match=r"README\.md, src/a\.cpp exist\(s\) and dgfpga did "
                                          "not write it"):
        write(out, V1, force=True)
    assert snapshot(out) == before
    assert leftovers(tmp_path, "out") == []


def test_empty_existing_folder_is_fine(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    write(out, V1)
    assert set(snapshot(out)) == set(V1) | {MARKER}


def test_concurrent_writer_is_refused_clearly(tmp_path):
    out = tmp_path / "out"
    write(out, V1)
    before = snapshot(out)
    with output_dir(out, "test") as tmp:
        (tmp / "README.md").write_text("first writer")
        with pytest.raises(OutputError, match=rf"another dgfpga command \(pid {os.getpid()}\) "
                                              "is writing this folder"):
            write(out, V2)
        assert snapshot(out) == before              # the refused one changed nothing
    assert (out / "README.md").read_text() == "first writer"
    assert leftovers(tmp_path, "out") == []         # lock file removed
    write(out, V2)                                  # and the lock is free again


def test_sigint_during_the_final_moves_is_deferred(tmp_path, monkeypatch):
    """Ctrl-C arriving while the new files are moved into place waits until they all are:
    the folder is the new output, complete, and then KeyboardInterrupt is raised."""
    out = tmp_path / "out"
    write(out, V1)
    (out / "user.txt").write_text("keep")           # forces the file-by-file path
    real = os.replace
    calls = []

    def replace_and_interrupt(a, b):
        if not calls:
            os.kill(os.getpid(), signal.SIGINT)
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr(outdir.os, "replace", replace_and_interrupt)
    with pytest.raises(KeyboardInterrupt):
        write(out, V2)
    monkeypatch.undo()
    assert len(calls) == len(V2) + 1                # every file, then the marker
    assert all((out / k).read_text() == v for k, v in V2.items())
    assert (out / "user.txt").read_text() == "keep"
    assert set(json.loads((out / MARKER).read_text())["files"]) == set(V2)


def test_stale_temporary_folders_are_removed(tmp_path):
    out = tmp_path / "out"
    stale = tmp_path / ".out.tmp-killed"
    stale.mkdir()
    (stale / "half").write_text("x")
    write(out, V1)
    assert leftovers(tmp_path, "out") == []


def test_unwritable_locations_are_refused_before_work(tmp_path, monkeypatch):
    with pytest.raises(OutputError, match=r"the folder .*missing does not exist"):
        check_writable(tmp_path / "missing" / "out")
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        check_writable(tmp_path / "f")
    with pytest.raises(OutputError, match="is not a folder"):
        check_writable(tmp_path / "f" / "out")
    with pytest.raises(OutputError, match="is a folder: name an output file"):
        check_writable(tmp_path, kind="file")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutputError, match="symbolic link"):
        check_writable(tmp_path / "link")

    def read_only(*a, **k):
        raise PermissionError(13, "Read-only file system")
    monkeypatch.setattr(outdir.tempfile, "mkdtemp", read_only)
    with pytest.raises(OutputError, match="cannot write in .*Read-only file system"):
        check_writable(tmp_path / "out")
    ran = []
    with pytest.raises(OutputError):
        with output_dir(tmp_path / "out", "test"):
            ran.append(1)
    assert ran == [] and not (tmp_path / "out").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders anyway")
def test_read_only_parent_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="cannot write in"):
            check_writable(ro / "out")
    finally:
        ro.chmod(0o755)


def test_malformed_marker_is_a_clear_error(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / MARKER).write_text("[" * 100000)
    with pytest.raises(OutputError, match="unreadable dgfpga output marker .*nested deeper"):
        write(out, V1)
    (out / MARKER).write_text('{"format": "dgfpga-output", "files": []}')
    with pytest.raises(OutputError, match="not a dgfpga output marker"):
        write(out, V1, force=True)


def test_a_symlink_where_our_file_was_is_not_followed(tmp_path):
    out = tmp_path / "out"
    write(out, V1)
    target = tmp_path / "precious.txt"
    target.write_text(V1["README.md"])              # same bytes: still the user's change
    (out / "README.md").unlink()
    (out / "README.md").symlink_to(target)
    with pytest.raises(OutputError, match=r"README\.md changed"):
        write(out, V2)
    assert target.read_text() == V1["README.md"] and (out / "README.md").is_symlink()


def test_atomic_file_write(tmp_path, monkeypatch):
    p = tmp_path / "r.json"
    outdir.atomic_write_text(p, "one")
    assert p.read_text() == "one"

    def fail(*a):
        raise KeyboardInterrupt
    monkeypatch.setattr(outdir.os, "replace", fail)
    with pytest.raises(KeyboardInterrupt):
        outdir.atomic_write_text(p, "two")
    assert p.read_text() == "one" and [q.name for q in tmp_path.iterdir()] == ["r.json"]
    with pytest.raises(OutputError, match="does not exist"):
        outdir.atomic_write_text(tmp_path / "no" / "r.json", "x")


def test_output_error_is_a_dgfpga_error():
    assert issubclass(OutputError, DgfpgaError)
