"""Issue 17's catalogue of hostile and careless inputs, run through the real CLIs.

One case per item of the issue's list. Every case runs `dgfpga ...` or `dgfpga-host ...`
(in-process `main()` under a SIGALRM deadline, or a subprocess where a separate process is
the point: concurrency, a memory limit) and checks:

- the exit code (2 for an expected failure unless the case says otherwise);
- stderr is one `dgfpga CMD: error: ...` / `dgfpga-host CMD: error: ...` line (argparse's
  usage lines aside) that contains the case's expected words, and no `Traceback`;
- it finished within its deadline (nothing hangs);
- every file that existed before (the case's inputs, a user's files in an output folder,
  the shared bundle) is byte-identical afterwards, and no temporary folder is left over.

The same cases write docs/hardening.md (the issue's "What it must show" table) from actual
runs:

    .venv/bin/python tests/test_hostile_inputs.py --table docs/hardening.md [--slow]
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CKPT = ROOT / "models" / "checkpoints" / "resdg20_cifar10_d50.pth.tar"
SMALL_TOML = ROOT / "dgfpga" / "contract" / "configs" / "small.toml"
BIN = Path(sys.executable).parent
MiB = 2 ** 20


# ---------------------------------------------------------------------------------------
# the shared workspace: one tiny build (config small, 4 calibration images), built once

class Workspace:
    def __init__(self, root: Path):
        self.root = root
        self._state = None
        self.build = root / "build"          # a folder dgfpga wrote (has its marker)
        self.bundle = self.build / "bundle"
        if not (self.bundle / "manifest.json").exists():
            r = subprocess.run([str(BIN / "dgfpga"), "build-hls", "--checkpoint", str(CKPT),
                                "--config", "small", "--calib", "embedded:4",
                                "--images", "embedded:2", "-o", str(self.build)],
                               capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise RuntimeError(f"fixture build failed:\n{r.stderr}")

    def checkpoint(self):
        import torch
        if self._state is None:
            self._state = torch.load(CKPT, map_location="cpu", weights_only=False)
        import copy
        return copy.deepcopy(self._state)

    def save_ckpt(self, ckpt, path: Path, **kw) -> Path:
        import torch
        torch.save(ckpt, path, **kw)
        return path


# ---------------------------------------------------------------------------------------
# cases

@dataclass
class Case:
    id: str
    what: str                                   # the wording of the input
    setup: Callable                             # (ws, d) -> argv
    rc: int = 2
    expect: tuple = ()                          # words the error line must contain
    timeout: float = 60.0
    slow: bool = False
    subprocess: bool = False
    limit_as: int | None = None                 # RLIMIT_AS for the subprocess, bytes
    runner: Callable | None = None              # custom (ws, d, case) -> Result
    absent: tuple = ()                          # paths (relative to d) that must not appear


CASES: list[Case] = []


def case(id, what, **kw):
    def deco(fn):
        CASES.append(Case(id=id, what=what, setup=fn, **kw))
        return fn
    return deco


def _bench(ws_bundle, *more, images="selfcheck:1"):
    return ["dgfpga-host", "bench", "--bundle", str(ws_bundle), "--device", "numpy",
            "--images", images, "--no-progress", *more]


def _copy_bundle(ws, d) -> Path:
    b = d / "bundle"
    shutil.copytree(ws.bundle, b)
    return b


def _edit_manifest(b: Path, raw: str | None = None, **change):
    p = b / "manifest.json"
    if raw is None:
        m = json.loads(p.read_text())
        m.update(change)
        raw = json.dumps(m, indent=2)
    p.write_text(raw)


def _rehash(b: Path, key: str, fname: str):
    m = json.loads((b / "manifest.json").read_text())
    m[key] = hashlib.sha256((b / fname).read_bytes()).hexdigest()
    (b / "manifest.json").write_text(json.dumps(m, indent=2))


def _build(ws, d, *more, out="out", config="small", calib="embedded:2"):
    return ["dgfpga", "build-hls", "--checkpoint", str(CKPT), "--config", config,
            "--calib", calib, "-o", str(d / out) if isinstance(out, str) else str(out), *more]


def _quantize(ckpt, d, calib="embedded:2"):
    return ["dgfpga", "quantize", "--checkpoint", str(ckpt), "--calib", calib,
            "-o", str(d / "m.qnpz")]


# --- outputs --------------------------------------------------------------------------

def _user_folder(d):
    out = d / "out"
    (out / "src").mkdir(parents=True)
    (out / "tb" / "vectors").mkdir(parents=True)
    (out / "README.md").write_text("my notes\n")
    (out / "Makefile").write_text("all:\n\techo mine\n")
    (out / "src" / "dg_engine.cpp").write_text("// my edited engine\n")
    (out / "tb" / "vectors" / "mine.bin").write_bytes(b"\x01\x02")
    return out


@case("build-hls-user-folder", "build-hls -o into a folder with a user's README.md, Makefile, "
      "edited src/dg_engine.cpp and extra files in tb/vectors (no dgfpga marker)",
      expect=("not written by dgfpga", "--force"))
def _(ws, d):
    _user_folder(d)
    return _build(ws, d)


@case("build-hls-user-folder-force", "the same with --force (dgfpga would overwrite README.md, "
      "Makefile, src/dg_engine.cpp)", expect=("README.md",))
def _(ws, d):
    _user_folder(d)
    return _build(ws, d, "--force")


@case("build-hls-edited-output", "rebuild into a dgfpga output whose src/dg_engine.cpp the user "
      "edited, with extra files in tb/vectors", expect=("dg_engine.cpp",))
def _(ws, d):
    out = d / "out"
    shutil.copytree(ws.build, out, symlinks=True)
    shutil.rmtree(out / "bundle")
    shutil.copytree(ws.bundle, out / "bundle")
    with open(out / "src" / "dg_engine.cpp", "a") as f:
        f.write("\n// my change\n")
    (out / "tb" / "vectors" / "mine.bin").write_bytes(b"mine")
    return _build(ws, d, "--force")


def _concurrent(ws, d, c):
    argv = _build(ws, d)
    t0 = time.monotonic()
    procs = [subprocess.Popen([str(BIN / a) if i == 0 else a for i, a in enumerate(argv)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    errs, rcs = [], []
    for p in procs:
        try:
            _, e = p.communicate(timeout=c.timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            _, e = p.communicate()
            e += "\n<timeout>"
        errs.append(e)
        rcs.append(p.returncode)
    res = Result(rc=tuple(sorted(rcs)), stderr="".join(errs), elapsed=time.monotonic() - t0,
                 timed_out=any("<timeout>" in e for e in errs))
    # serialised (both 0) or the second refused clearly (0 and 2); either way one complete
    # output: every file the marker lists is there with its recorded SHA-256
    if res.rc not in ((0, 0), (0, 2)):
        res.extra.append(f"exit codes {res.rc}, expected 0 and 0 (serialised) or 0 and 2")
    if res.rc == (0, 2) and "another dgfpga command" not in res.stderr:
        res.extra.append("the refused build does not say another dgfpga command is writing")
    out = d / "out"
    try:
        files = json.loads((out / ".dgfpga-output").read_text())["files"]
        wrong = [k for k, v in files.items()
                 if not (out / k).is_file()
                 or hashlib.sha256((out / k).read_bytes()).hexdigest() != v]
        if wrong or not (out / "bundle" / "manifest.json").is_file():
            res.extra.append(f"output incomplete or mixed: {wrong[:5]}")
    except (OSError, ValueError, KeyError) as exc:
        res.extra.append(f"no complete output ({exc})")
    return res


@case("build-hls-concurrent", "two concurrent builds into one folder (serialised, or the "
      "second refused; one complete output)", rc="0 and 0, or 0 and 2",
      runner=_concurrent, timeout=120, slow=False)
def _(ws, d):
    return _build(ws, d)


@case("build-hls-o-file", "build-hls -o naming a file", expect=("file",))
def _(ws, d):
    (d / "out").write_text("a file of mine\n")
    return _build(ws, d)


@case("build-hls-o-missing-parent", "build-hls -o into a missing folder", expect=("does not exist",),
      absent=("missing",))
def _(ws, d):
    return _build(ws, d, out=d / "missing" / "out")


_LOCKED: list = []            # folders made immutable by _readonly(); unlocked by run_case


def _readonly(d: Path) -> Path:
    """A read-only folder holding a user's file: chmod 555, and as root (whom mode bits do
    not stop) also `chattr +i`; /sys when neither is possible."""
    f = d / "ro"
    f.mkdir()
    (f / "mine.txt").write_text("mine\n")
    f.chmod(0o555)
    if os.geteuid() == 0:
        if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(f)],
                                                     capture_output=True).returncode == 0:
            _LOCKED.append(f)
        else:
            return Path("/sys")
    return f


def _unlock():
    while _LOCKED:
        f = _LOCKED.pop()
        subprocess.run(["chattr", "-i", str(f)], capture_output=True)
        f.chmod(0o755)


@case("build-hls-o-readonly", "build-hls -o into a read-only folder", expect=("cannot write",))
def _(ws, d):
    return _build(ws, d, out=_readonly(d) / "out")


@case("bench-o-missing-folder", "dgfpga-host bench -o JSON into a missing folder",
      expect=("does not exist",), absent=("missing",))
def _(ws, d):
    return _bench(ws.bundle, "-o", str(d / "missing" / "bench.json"))


@case("bench-o-folder", "dgfpga-host bench -o naming a folder", expect=("folder",))
def _(ws, d):
    (d / "res").mkdir()
    (d / "res" / "keep.txt").write_text("keep\n")
    return _bench(ws.bundle, "-o", str(d / "res"))


@case("bench-o-readonly", "dgfpga-host bench -o into a read-only folder",
      expect=("cannot write",))
def _(ws, d):
    return _bench(ws.bundle, "-o", str(_readonly(d) / "bench.json"))


@case("predict-o-missing-folder", "dgfpga predict -o JSON into a missing folder",
      expect=("does not exist",), absent=("missing",))
def _(ws, d):
    return ["dgfpga", "predict", "--config", "small", "-o", str(d / "missing" / "p.json")]


# --- checkpoints ----------------------------------------------------------------------

def _ckpt_case(edit, **kw):
    def setup(ws, d):
        ck = ws.checkpoint()
        edit(ck["state_dict"])
        return _quantize(ws.save_ckpt(ck, d / "bad.pth.tar"), d)
    return setup


def _nan(sd):
    sd["layer2.1.conv1.weight"][0, 0, 0, 0] = float("nan")


def _inf_var(sd):
    sd["layer1.0.bn1.running_var"][3] = float("inf")


def _huge(sd):
    sd["layer3.0.conv2.weight"].mul_(1e30)


for _id, _what, _fn, _words in [
        ("ckpt-nan-weight", "a checkpoint with one NaN weight", _nan, ("layer2.1.conv1.weight", "NaN")),
        ("ckpt-inf-bn-var", "a checkpoint with an infinite BN variance", _inf_var,
         ("layer1.0.bn1.running_var",)),
        ("ckpt-weights-1e30", "a checkpoint with weights x1e30", _huge, ("layer3.0.conv2.weight",))]:
    CASES.append(Case(_id, _what, _ckpt_case(_fn), expect=_words, absent=("m.qnpz",)))


@case("ckpt-truncated-legacy", "a truncated legacy-format (non-zip) checkpoint",
      expect=("truncated",), absent=("m.qnpz",))
def _(ws, d):
    p = ws.save_ckpt(ws.checkpoint(), d / "legacy.pth.tar", _use_new_zipfile_serialization=False)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return _quantize(p, d)


@case("ckpt-partial-module-prefix", "a checkpoint whose keys are only partly module.-prefixed",
      expect=("module.",), absent=("m.qnpz",))
def _(ws, d):
    ck = ws.checkpoint()
    sd = ck["state_dict"]
    ck["state_dict"] = {(f"module.{k}" if i % 2 else k): v for i, (k, v) in enumerate(sd.items())}
    return _quantize(ws.save_ckpt(ck, d / "mixed.pth.tar"), d)


# --- images ---------------------------------------------------------------------------

def _floats(n=2, bad=None):
    x = np.zeros((n, 3, 32, 32), np.float32)
    if bad is not None:
        x[1, 2, 5, 7] = bad
    return x


@case("calib-nan", "NaN calibration images (quantize --calib x.npy)", expect=("calib", "NaN"),
      absent=("m.qnpz",))
def _(ws, d):
    np.save(d / "nan.npy", _floats(bad=np.nan))
    return _quantize(CKPT, d, calib=str(d / "nan.npy"))


@case("selfcheck-images-inf", "infinite self-check images (build-hls --images x.npy)",
      expect=("--images",), absent=("out",))
def _(ws, d):
    np.save(d / "inf.npy", _floats(bad=np.inf))
    return _build(ws, d, "--images", str(d / "inf.npy"))


@case("bench-images-nan", "NaN images to run (dgfpga-host bench --images x.npy)",
      expect=("--images",))
def _(ws, d):
    np.save(d / "nan.npy", _floats(bad=np.nan))
    return _bench(ws.bundle, images=str(d / "nan.npy"))


@case("npy-0-bytes", "a 0-byte .npy", expect=("--images", "empty.npy"))
def _(ws, d):
    (d / "empty.npy").write_bytes(b"")
    return _bench(ws.bundle, images=str(d / "empty.npy"))


@case("npy-2-40-images", "an .npy header claiming 2^40 images", expect=("--images", "huge.npy"))
def _(ws, d):
    with open(d / "huge.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (2 ** 40, 3, 32, 32)})
        f.write(bytes(4096))
    return _bench(ws.bundle, images=str(d / "huge.npy"))


@case("uint8-chw", "a uint8 CHW image array (uint8 [N,3,32,32])", expect=("--images", "chw.npy"))
def _(ws, d):
    np.save(d / "chw.npy", np.full((2, 3, 32, 32), 200, np.uint8))
    return _bench(ws.bundle, images=str(d / "chw.npy"))


@case("images-0", "--images 0", expect=("--images",))
def _(ws, d):
    return _bench(ws.bundle, images="0")


@case("images-minus-1", "--images -1", expect=("--images",))
def _(ws, d):
    return _bench(ws.bundle, images="-1")


@case("images-selfcheck-0", "--images selfcheck:0", expect=("--images", "positive"))
def _(ws, d):
    return _bench(ws.bundle, images="selfcheck:0")


@case("images-selfcheck-minus-1", "--images selfcheck:-1", expect=("--images",))
def _(ws, d):
    return _bench(ws.bundle, images="selfcheck:-1")


@case("images-missing-folder", "a missing image folder", expect=("--images", "no such"))
def _(ws, d):
    return _bench(ws.bundle, images=str(d / "missing") + "/")


@case("images-unreadable-folder", "an unreadable image folder (chmod 000; as root, which "
      "reads it anyway, its one image is a dangling link)", expect=("--images",))
def _(ws, d):
    f = d / "imgs"
    f.mkdir()
    (f / "a.png").symlink_to(d / "gone.png")
    f.chmod(0)
    return _bench(ws.bundle, images=str(f))


@case("images-corrupt-png", "a corrupt PNG in an image folder", expect=("--images", "a.png"))
def _(ws, d):
    f = d / "imgs"
    f.mkdir()
    (f / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return _bench(ws.bundle, images=str(f))


# --- timeouts -------------------------------------------------------------------------

for _t in ("nan", "inf", "0", "-1"):
    CASES.append(Case(f"timeout-{_t}", f"dgfpga-host bench --timeout {_t}",
                      (lambda t: lambda ws, d: _bench(ws.bundle, "--timeout", t))(_t),
                      expect=("--timeout",), timeout=30))


@case("timeout-exceeded-simulated", "a simulated engine that outlives --timeout (numpy device, "
      "--timeout 0.001)", expect=("engine not done after 0.001 s", "stopped"), timeout=30)
def _(ws, d):
    return _bench(ws.bundle, "--timeout", "0.001")


# --- the bundle -----------------------------------------------------------------------

@case("selfcheck-badzip", "a corrupt selfcheck.npz (BadZipFile), its hash re-recorded",
      expect=("selfcheck.npz",))
def _(ws, d):
    b = _copy_bundle(ws, d)
    (b / "selfcheck.npz").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    _rehash(b, "selfcheck_sha256", "selfcheck.npz")
    return _bench(b)


@case("selfcheck-eof", "a selfcheck.npz whose images member is cut short (EOFError), its "
      "hash re-recorded", expect=("selfcheck.npz",))
def _(ws, d):
    b = _copy_bundle(ws, d)
    src = zipfile.ZipFile(ws.bundle / "selfcheck.npz")
    with zipfile.ZipFile(b / "selfcheck.npz", "w") as zf:
        for name in src.namelist():
            data = src.read(name)
            zf.writestr(name, data[: len(data) // 3] if name == "images.npy" else data)
    _rehash(b, "selfcheck_sha256", "selfcheck.npz")
    return _bench(b)


@case("selfcheck-edited", "an edited selfcheck.npz (hash not re-recorded)",
      expect=("selfcheck.npz", "SHA-256"))
def _(ws, d):
    b = _copy_bundle(ws, d)
    with np.load(b / "selfcheck.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["logits_int"] = arrays["logits_int"] + 1
    np.savez(b / "selfcheck.npz", **arrays)
    return _bench(b)


@case("selfcheck-wrong-shape", "wrong-shaped self-check content, its hash re-recorded",
      expect=("selfcheck.npz",))
def _(ws, d):
    b = _copy_bundle(ws, d)
    with np.load(b / "selfcheck.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["images"] = arrays["images"][:, :, :16, :16].copy()
    arrays["spatial_0"] = arrays["spatial_0"][:1]
    np.savez(b / "selfcheck.npz", **arrays)
    _rehash(b, "selfcheck_sha256", "selfcheck.npz")
    return _bench(b)


@case("manifest-long-int", "an over-long integer (100,000 digits) in the manifest",
      expect=("manifest.json",))
def _(ws, d):
    b = _copy_bundle(ws, d)
    raw = (b / "manifest.json").read_text()
    raw = re.sub(r'"fmap": \d+', '"fmap": ' + "9" * 100_000, raw)
    _edit_manifest(b, raw=raw)
    return _bench(b)


@case("manifest-deep", "100,000-deep nesting in the manifest", expect=("manifest.json",))
def _(ws, d):
    b = _copy_bundle(ws, d)
    raw = (b / "manifest.json").read_text()
    raw = raw.replace('"format": "dgfpga-bundle"',
                      '"deep": ' + "[" * 100_000 + "]" * 100_000 + ', "format": "dgfpga-bundle"')
    _edit_manifest(b, raw=raw)
    return ["dgfpga-host", "info", "--bundle", str(b)]


@case("manifest-selfcheck-list", '"selfcheck" as a list in the manifest', expect=("selfcheck",))
def _(ws, d):
    b = _copy_bundle(ws, d)
    _edit_manifest(b, selfcheck=["selfcheck.npz"])
    return _bench(b)


@case("manifest-model-dotdot", '"model": "../../other/model.qnpz" in the manifest',
      expect=("model",))
def _(ws, d):
    b = _copy_bundle(ws, d)
    other = d.parent / "other"
    other.mkdir(exist_ok=True)
    shutil.copy(ws.bundle / "model.qnpz", other / "model.qnpz")
    _edit_manifest(b, model="../../other/model.qnpz")
    return _bench(b)


@case("manifest-model-etc-passwd", '"model": "/etc/passwd" in the manifest', expect=("model",))
def _(ws, d):
    b = _copy_bundle(ws, d)
    _edit_manifest(b, model="/etc/passwd")
    return ["dgfpga-host", "info", "--bundle", str(b)]


@case("manifest-wrong-arch", "a wrong arch in the manifest (resdg18)", expect=("arch",))
def _(ws, d):
    b = _copy_bundle(ws, d)
    _edit_manifest(b, arch="resdg18")
    return _bench(b)


def _hostile_qnpz(ws, d, n):
    """The bundle's model with its last array member replaced by n zero bytes (deflated: a
    zip bomb), model_sha256 re-recorded so only the parser stands in the way."""
    b = _copy_bundle(ws, d)
    src = zipfile.ZipFile(ws.bundle / "model.qnpz")
    names = [i.filename for i in src.infolist()]
    victim = names[-1]
    with zipfile.ZipFile(b / "model.qnpz", "w", zipfile.ZIP_DEFLATED) as zf:
        for name in names:
            with zf.open(name, "w", force_zip64=True) as f:
                if name != victim:
                    f.write(src.read(name))
                    continue
                np.lib.format.write_array_header_1_0(
                    f, {"descr": "|u1", "fortran_order": False, "shape": (n,)})
                chunk, left = bytes(MiB), n
                while left:
                    f.write(chunk[:min(left, MiB)])
                    left -= min(left, MiB)
    _rehash(b, "model_sha256", "model.qnpz")
    return _bench(b)


CASES.append(Case("qnpz-bomb-256MiB", "a hostile model.qnpz: 256 MiB of zeros behind one small "
                  "array (0.3 MB file), 1 GiB address-space limit",
                  lambda ws, d: _hostile_qnpz(ws, d, 256 * MiB), expect=("model.qnpz",),
                  subprocess=True, limit_as=2 ** 30))
CASES.append(Case("qnpz-bomb-4GiB", "a hostile 4.2 MB model.qnpz (4 GiB of zeros behind one "
                  "small array), 1 GiB address-space limit",
                  lambda ws, d: _hostile_qnpz(ws, d, 4 * 2 ** 30), expect=("model.qnpz",),
                  subprocess=True, limit_as=2 ** 30, slow=True, timeout=120))


# --- engine configuration -------------------------------------------------------------

@case("config-max-layers-2", "an engine config with max_layers < 3 (build-hls --config x.toml)",
      expect=("max_layers",), absent=("out",))
def _(ws, d):
    text = SMALL_TOML.read_text()
    assert "max_layers = 255" in text
    (d / "bad.toml").write_text(text.replace("max_layers = 255", "max_layers = 2"))
    return _build(ws, d, config=str(d / "bad.toml"))


# ---------------------------------------------------------------------------------------
# running a case

@dataclass
class Result:
    rc: object
    stderr: str
    elapsed: float
    timed_out: bool = False
    lost: list = field(default_factory=list)        # files changed or removed
    appeared: list = field(default_factory=list)    # paths that must not exist but do
    extra: list = field(default_factory=list)       # a custom runner's findings


class _Deadline(BaseException):
    pass


def _run_inprocess(argv, timeout):
    if argv[0] == "dgfpga":
        from dgfpga.cli.main import main
    else:
        from dgfpga_host.cli import main
    out, err = io.StringIO(), io.StringIO()

    def alarm(*_):
        raise _Deadline()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    t0 = time.monotonic()
    timed_out = False
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv[1:])
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else 2
            except _Deadline:
                rc, timed_out = None, True
            except BaseException:       # noqa: BLE001 - a traceback is what we look for
                rc = "traceback"
                err.write(traceback.format_exc())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return Result(rc=rc, stderr=err.getvalue(), elapsed=time.monotonic() - t0, timed_out=timed_out)


def _run_subprocess(argv, timeout, limit_as=None):
    def pre():
        if limit_as:
            import resource
            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    t0 = time.monotonic()
    try:
        r = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True,
                           timeout=timeout, preexec_fn=pre, env=env)
        return Result(rc=r.returncode, stderr=r.stderr, elapsed=time.monotonic() - t0)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return Result(rc=None, stderr=err, elapsed=time.monotonic() - t0, timed_out=True)


def _snapshot(*roots) -> dict:
    snap = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*")) if Path(root).is_dir() else []:
            if p.is_file() and not p.is_symlink():
                snap[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return snap


def run_case(ws: Workspace, c: Case, d: Path) -> tuple[list, Result]:
    d.mkdir(parents=True, exist_ok=True)
    try:
        return _run_case(ws, c, d)
    finally:
        _unlock()


def _run_case(ws: Workspace, c: Case, d: Path) -> tuple[list, Result]:
    argv = c.setup(ws, d)
    unreadable = [p for p in d.rglob("*") if p.is_dir() and not os.stat(p).st_mode & 0o777]
    for p in unreadable:            # snapshot needs to read; restore the mode for the run
        p.chmod(0o755)
    before = _snapshot(d, ws.bundle)
    for p in unreadable:
        p.chmod(0)
    if c.runner:
        res = c.runner(ws, d, c)
    elif c.subprocess:
        res = _run_subprocess(argv, c.timeout, c.limit_as)
    else:
        res = _run_inprocess(argv, c.timeout)
    for p in unreadable:
        p.chmod(0o755)
    after = _snapshot(d, ws.bundle)
    res.lost = sorted(k.replace(str(d), "T").replace(str(ws.bundle), "BUNDLE")
                      for k, v in before.items() if after.get(k) != v)
    res.appeared = [a for a in c.absent if (d / a).exists()]
    res.appeared += [p.name for p in d.iterdir() if ".tmp-" in p.name or "dgfpga-lock" in p.name]
    return argv, res


def error_lines(stderr: str) -> list[str]:
    """stderr's lines without argparse's usage block ("usage: ..." and its indented
    continuation lines directly after it)."""
    out, in_usage = [], False
    for ln in stderr.strip().splitlines():
        if ln.startswith("usage: "):
            in_usage = True
            continue
        if in_usage and ln.startswith(" "):
            continue
        in_usage = False
        if ln.strip():
            out.append(ln)
    return out


def problems(c: Case, res: Result) -> list[str]:
    out = []
    if res.timed_out:
        out.append(f"did not finish within {c.timeout} s")
    if "Traceback" in res.stderr:
        out.append("traceback")
    if c.runner is None and res.rc != c.rc:        # a custom runner checks its own codes
        out.append(f"exit code {res.rc}, expected {c.rc}")
    lines = error_lines(res.stderr)
    if c.rc != 0 and c.runner is None:
        # one error line; a message may add indented detail lines (e.g. the keys a
        # checkpoint lacks), nothing else
        if (not lines or not re.match(r"^dgfpga(-host)? [\w-]+: error: ", lines[0])
                or any(not ln.startswith("  ") for ln in lines[1:])):
            out.append(f"stderr is not one 'dgfpga CMD: error:' message: {lines[:3]}")
    joined = " ".join(lines)
    missing = [w for w in c.expect if w not in joined]
    if missing:
        out.append(f"message lacks {missing}")
    if res.lost:
        out.append(f"files changed or lost: {res.lost}")
    if res.appeared:
        out.append(f"left behind: {res.appeared}")
    out += res.extra
    return out


# ---------------------------------------------------------------------------------------
# pytest

try:
    import pytest
except ImportError:          # pragma: no cover - the table generator runs without pytest
    pytest = None

if pytest is not None:
    @pytest.fixture(scope="module")
    def ws(tmp_path_factory):
        return Workspace(tmp_path_factory.mktemp("hostile"))

    @pytest.mark.parametrize("c", [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else [])
                                   for c in CASES])
    def test_hostile_input(ws, c, tmp_path):
        _, res = run_case(ws, c, tmp_path / c.id)
        bad = problems(c, res)
        assert not bad, f"{c.id}: {bad}\nstderr:\n{res.stderr[-3000:]}"


# ---------------------------------------------------------------------------------------
# the table (docs/hardening.md)

def _md(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _shown(argv, d: Path, ws: Workspace) -> str:
    s = " ".join(argv)
    s = s.replace(str(d), "T").replace(str(ws.bundle), "BUNDLE").replace(str(ROOT) + "/", "")
    return s


def write_table(path: Path, slow: bool) -> int:
    rows, failing = [], 0
    with tempfile.TemporaryDirectory(prefix="dgfpga-hostile-") as tmp:
        ws = Workspace(Path(tmp))
        for c in CASES:
            if c.slow and not slow:
                continue
            d = Path(tmp) / "cases" / c.id
            argv, res = run_case(ws, c, d)
            bad = problems(c, res)
            failing += bool(bad)
            lines = error_lines(res.stderr)
            if c.runner:
                msg = (" / ".join(lines)
                       or "(both exited 0: their writes did not overlap; one complete build)")
            else:       # the error line (and the last detail line of a multi-line one)
                msg = lines[0] if lines else ""
                if len(lines) > 1:
                    msg += " ... " + lines[-1].strip()
            msg = msg.replace(str(d), "T").replace(str(ws.bundle), "BUNDLE")
            msg = msg.replace(tmp, "TMP")
            if len(msg) > 400:
                msg = msg[:400] + " ..."
            rc = " and ".join(map(str, res.rc)) if isinstance(res.rc, tuple) else str(res.rc)
            verdict = "ok" if not bad else "FAIL: " + "; ".join(bad)
            rows.append(f"| {_md(c.what)} | `{_md(_shown(argv, d, ws))}` | {rc} | {_md(msg)} | "
                        f"{res.elapsed:.1f} | {_md(verdict)} |")
            print(f"{c.id}: rc {rc}, {res.elapsed:.1f} s, {verdict}", file=sys.stderr)
    text = (
        "# Hostile and careless inputs: what each command does\n\n"
        "<!-- generated by `python tests/test_hostile_inputs.py --table docs/hardening.md"
        + (" --slow" if slow else "") + "`; do not edit -->\n\n"
        "Issue 17's catalogue, run through the real CLIs by `tests/test_hostile_inputs.py` "
        "(which asserts every row). In every row: no traceback, finished within its deadline, "
        "every file that existed before (inputs, a user's files in the output folder, the "
        "bundle) byte-identical afterwards, nothing left behind. `T` is the case's folder, "
        "`BUNDLE` a bundle built by `dgfpga build-hls --config small`.\n\n"
        "| input | command | exit | message (stderr) | s | check |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"{len(rows)} cases, {failing} failing"
        + ("" if slow else " (slow cases not run: add --slow)") + ".\n")
    path.write_text(text)
    return failing


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", type=Path, required=True, help="markdown file to write")
    ap.add_argument("--slow", action="store_true", help="include the slow cases")
    a = ap.parse_args()
    sys.exit(1 if write_table(a.table, a.slow) else 0)
