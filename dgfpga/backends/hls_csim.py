"""C-simulation of the HLS engine (numpy only, torch-free): build with g++, run via ctypes.

The engine sources in `hls/src/` are plain C++14 (Vitis HLS pragmas are ignored by g++) and
build against the Xilinx `ap_types` headers that hls4ml ships. For an `EngineConfig` this
module renders the config header (`dgfpga.contract.codegen`), compiles

- `libdg_csim.so`: the engine + `hls/src/dg_bridge.cpp` (`extern "C" dg_run`), loaded with
  ctypes by `CsimEngine` (the C-sim device of the host runtime uses it too), and
- `tb_dg_engine`: the stand-alone testbench `hls/tb/tb_dg_engine.cpp` that checks vector
  set folders (`docs/test_vectors.md`),
- sanitizer builds (AddressSanitizer + UBSan, `-fno-sanitize-recover=all`): the testbench
  (`tb_asan`) and the batch runner of the mutation fuzzer (`fuzz_asan`,
  `hls/tb/fuzz_dg_engine.cpp`, driven by `dgfpga.backends.engine_fuzz`),

into a build folder `<cache>/<config name>-<config hash>/`. A build is reused while the
digest of its sources, the rendered header, the compiler and the flags is unchanged.
The cache is `$DGFPGA_CACHE/hls_csim` (default `~/.cache/dgfpga/hls_csim`).
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from dgfpga.contract import formats
from dgfpga.contract import regmap
from dgfpga.contract.engine_config import CONFIG_DIR, EngineConfig, load_config
from dgfpga import build_cache, paths
from dgfpga.errors import DgfpgaError

__all__ = ["CsimError", "CsimEngine", "CsimRun", "VectorCheck", "CXXFLAGS", "ap_types_dir",
           "compiler", "build", "build_dir", "run_vector_set", "run_testbench", "vector_run_flags",
           "sanitizer_env", "SANITIZE_FLAGS"]

HLS_DIR = paths.hls_dir()                      # the checkout's hls/ or the installed copy
SRC_DIR = HLS_DIR / "src"
TB_DIR = HLS_DIR / "tb"

# DESIGN.md section 6: the flags that build the engine clean against ap_types.
CXXFLAGS = ("-std=c++14", "-O2", "-Wall", "-Wextra", "-Wno-unknown-pragmas",
            "-Wno-unused-label", "-Wno-maybe-uninitialized", "-Wno-uninitialized")
# Sanitizer builds: every out-of-bounds access, misaligned or null access and signed
# overflow aborts the run with a report (-O1 keeps the build and the reports quick).
SANITIZE_FLAGS = ("-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                  "-fno-sanitize-recover=all")
# Runtime options of the sanitizer builds (leak checks off: the engine's buffers are static).
SANITIZE_ENV = {"ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1:abort_on_error=0",
                "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
LIB_NAME = "libdg_csim.so"
TB_NAME = "tb_dg_engine"
TARGETS = {
    # -fno-gnu-unique: the engine's buffers are static locals of inline functions, which g++
    # otherwise exports as process-wide unique symbols, so a second engine config loaded into
    # the same process (small, then ultra96) would share the first one's smaller buffers
    "lib": (LIB_NAME, ("src/dg_engine.cpp", "src/dg_bridge.cpp"),
            ("-shared", "-fPIC", "-fno-gnu-unique")),
    "tb": (TB_NAME, ("src/dg_engine.cpp", "tb/tb_dg_engine.cpp"), ()),
    "tb_asan": (TB_NAME + "_asan", ("src/dg_engine.cpp", "tb/tb_dg_engine.cpp"), SANITIZE_FLAGS),
    "fuzz_asan": ("fuzz_dg_engine_asan", ("src/dg_engine.cpp", "tb/fuzz_dg_engine.cpp"),
                  SANITIZE_FLAGS),
}


class CsimError(DgfpgaError):
    """The C-simulation cannot be built or run (missing tool, compile error, bad input)."""


# ----------------------------------------------------------------------------- tools
def ap_types_dir() -> Path:
    """The `ap_types` include folder of the installed hls4ml (or $DGFPGA_AP_TYPES)."""
    env = os.environ.get("DGFPGA_AP_TYPES")
    if env:
        p = Path(env)
    else:
        spec = importlib.util.find_spec("hls4ml")   # locate without importing it
        if spec is None or not spec.submodule_search_locations:
            raise CsimError("hls4ml is not installed: the C-sim needs its ap_types headers. "
                            "Install the 'sim' extra (pip install hls4ml==1.3.0) or point "
                            "DGFPGA_AP_TYPES at a folder holding ap_int.h")
        p = Path(list(spec.submodule_search_locations)[0]) / "templates" / "vivado" / "ap_types"
    if not (p / "ap_int.h").is_file():
        raise CsimError(f"no ap_int.h in {p}: hls4ml's ap_types headers are missing "
                        "(reinstall hls4ml==1.3.0 or set DGFPGA_AP_TYPES)")
    return p


def compiler() -> str:
    """The C++ compiler: $CXX or g++ on PATH."""
    cxx = os.environ.get("CXX") or shutil.which("g++")
    if not cxx or not shutil.which(cxx):
        raise CsimError("no C++ compiler: install g++ (apt-get install g++) or set CXX")
    return shutil.which(cxx) or cxx


def default_cache_dir() -> Path:
    return paths.cache_dir("hls_csim")


def build_dir(cfg: EngineConfig, cache_dir: Union[str, Path, None] = None) -> Path:
    """Build folder of `cfg`: named by the config name and hash, so builds never mix."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / f"{cfg.name}-{cfg.config_hash:08x}"


def _config_header(cfg: EngineConfig) -> str:
    from dgfpga.contract import codegen
    shipped = CONFIG_DIR / f"{cfg.name}.toml"
    source = f"dgfpga/contract/configs/{cfg.name}.toml" if shipped.is_file() and \
        load_config(shipped) == cfg else f"engine config '{cfg.name}'"
    return codegen.render("dg_config.h.tmpl", cfg, source, "dgfpga.backends.hls_csim")


def _sources() -> list[Path]:
    return sorted(SRC_DIR.glob("*.h")) + sorted(SRC_DIR.glob("*.cpp")) + sorted(TB_DIR.glob("*.cpp"))


def build(cfg: EngineConfig, target: str = "lib", cache_dir: Union[str, Path, None] = None,
          force: bool = False) -> Path:
    """Compile `target` (a TARGETS name: 'lib', 'tb', 'tb_asan', 'fuzz_asan') for `cfg`;
    return the artifact's path.

    Reuses an existing build whose digest (sources, config header, compiler, flags) matches.
    """
    if target not in TARGETS:
        raise CsimError(f"unknown C-sim target {target!r} (known: {', '.join(TARGETS)})")
    name, srcs, extra = TARGETS[target]
    cxx, ap = compiler(), ap_types_dir()
    out_dir = build_cache.use(build_dir(cfg, cache_dir))
    header = _config_header(cfg)
    flags = list(CXXFLAGS) + list(extra)
    h = hashlib.sha256()
    for part in (cxx, str(ap), " ".join(flags), header, target):
        h.update(part.encode() + b"\0")
    for src in _sources():
        h.update(src.name.encode() + b"\0" + src.read_bytes() + b"\0")
    digest = h.hexdigest()
    artifact, stamp = out_dir / name, out_dir / f"{name}.stamp"
    if not force and artifact.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return artifact
    with paths.build_lock(artifact):        # a parallel process building the same: wait, reuse
        if not force and artifact.is_file() and stamp.is_file() and stamp.read_text() == digest:
            return artifact
        artifact = _build_locked(cfg, name, srcs, flags, cxx, ap, out_dir, header, artifact,
                                 stamp, digest)
    if cache_dir is None:                   # the bound is the default cache's
        build_cache.enforce_limit()
    return artifact


def _build_locked(cfg: EngineConfig, name: str, srcs, flags: list, cxx: str, ap: Path,
                  out_dir: Path, header: str, artifact: Path, stamp: Path, digest: str) -> Path:
    inc = out_dir / "include"
    inc.mkdir(parents=True, exist_ok=True)
    if not (inc / "dg_config.h").is_file() or (inc / "dg_config.h").read_text() != header:
        part = inc / f".dg_config.h.{os.getpid()}"
        part.write_text(header)
        os.replace(part, inc / "dg_config.h")   # atomic: another target's compile reads it
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out_dir)
    os.close(fd)
    cmd = [cxx, *flags, "-isystem", str(ap), "-I", str(inc), "-I", str(SRC_DIR),
           *(str(HLS_DIR / s) for s in srcs), "-o", tmp]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        os.unlink(tmp)
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-30:])
        raise CsimError(f"C-sim build of {name} for engine config '{cfg.name}' failed "
                        f"({' '.join(cmd[:2])} ...):\n{tail}")
    os.chmod(tmp, 0o755)
    os.replace(tmp, artifact)       # atomic: a concurrent reader never sees half a file
    stamp.write_text(digest)
    return artifact


# ----------------------------------------------------------------------------- ctypes engine
@dataclass(frozen=True)
class CsimRun:
    """Result of one engine start: the output registers, and the C-sim's cycle estimate.

    `cycles` is the CYCLES register: on the board a free-running counter's reading at done
    minus at start; the C-sim has no clock, so it is 0 here. `cycles_estimate` is the
    C-sim's model of the cycles (the stages' pipelined iterations plus fixed overheads,
    docs/hls.md "Cycle counts"): an ESTIMATE, not a measurement."""
    status: int
    cycles: int
    engine_id: int
    cycles_estimate: int = 0

    @property
    def ok(self) -> bool:
        return self.status == 0

    def describe(self) -> str:
        return regmap.describe_status(self.status)


_U8P = ctypes.POINTER(ctypes.c_uint8)
_I32P = ctypes.POINTER(ctypes.c_int32)


def _region(arr, name: str, writable: bool) -> np.ndarray:
    if not isinstance(arr, np.ndarray):
        raise CsimError(f"{name} region: need a numpy uint8 array, got {type(arr).__name__}")
    if arr.dtype != np.uint8 or arr.ndim != 1 or not arr.flags.c_contiguous:
        raise CsimError(f"{name} region: need a 1-D C-contiguous uint8 array, got "
                        f"{arr.dtype} shape {arr.shape}")
    if writable and not arr.flags.writeable:
        raise CsimError(f"{name} region: the engine writes it, pass a writable array")
    if arr.size >= 1 << 32:
        raise CsimError(f"{name} region: {arr.size} bytes, the *_bytes registers are 32-bit")
    return arr


class CsimEngine:
    """The C-simulated engine of one configuration, loaded through ctypes.

    `run` executes a program over caller-owned regions in place, exactly as the board does
    over DDR buffers. The library keeps its on-chip buffers in static memory, so calls are
    serialized by a lock.
    """

    def __init__(self, cfg: Optional[EngineConfig] = None,
                 cache_dir: Union[str, Path, None] = None):
        self.cfg = cfg or load_config("small")
        self.lib_path = build(self.cfg, "lib", cache_dir)
        lib = ctypes.CDLL(str(self.lib_path))
        lib.dg_run.restype = ctypes.c_int
        lib.dg_run.argtypes = [_U8P, ctypes.c_uint32, ctypes.c_uint32,
                               _U8P, ctypes.c_uint32, _U8P, ctypes.c_uint32,
                               _U8P, ctypes.c_uint32, _I32P, ctypes.c_uint32,
                               ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint64),
                               ctypes.POINTER(ctypes.c_uint64), ctypes.c_uint32,
                               ctypes.POINTER(ctypes.c_uint64)]
        lib.dg_engine_id.restype = ctypes.c_uint64
        lib.dg_engine_id.argtypes = []
        self._lib = lib
        self._lock = threading.Lock()
        got, want = int(lib.dg_engine_id()), regmap.engine_id(self.cfg)
        if got != want:
            raise CsimError(f"{self.lib_path}: ENGINE_ID 0x{got:016X}, expected 0x{want:016X} "
                            f"for '{self.cfg.name}': stale build, rebuild with force=True")

    @property
    def engine_id(self) -> int:
        return int(self._lib.dg_engine_id())

    def run(self, program: bytes, layer_count: int, fmap: np.ndarray, weight: np.ndarray,
            work: np.ndarray, sums: np.ndarray, run_flags: int = 0) -> CsimRun:
        """Run `layer_count` records of `program`; fmap, work and sums are updated in place.

        Regions are 1-D uint8 arrays (sums too: its bytes are little-endian int32, so its
        size is a multiple of 4). WORK is written by gate records (masks, work lists) and
        the head (logits, cycle log). `run_flags` is the register of that name (bit 0
        `DENSE`: every gate on, no gate evaluated). Raises CsimError for malformed
        arguments; faults in the records, parameters or work lists are the engine's
        business and come back in STATUS.
        """
        if isinstance(program, np.ndarray):
            program = program.tobytes()
        if not isinstance(program, (bytes, bytearray, memoryview)):
            raise CsimError(f"program: expected bytes, got {type(program).__name__}")
        program = bytes(program)
        if not isinstance(layer_count, (int, np.integer)) or not 0 <= layer_count < 1 << 32:
            raise CsimError(f"layer_count must be an integer in 0..2^32-1, got {layer_count!r}")
        if not isinstance(run_flags, (int, np.integer)) or not 0 <= run_flags < 1 << 32:
            raise CsimError(f"run_flags must be an integer in 0..2^32-1, got {run_flags!r}")
        n = min(int(layer_count), self.cfg.max_layers)
        if len(program) < n * formats.DESCRIPTOR_BYTES:
            raise CsimError(f"program: {len(program)} bytes hold fewer than the {n} "
                            f"records of {formats.DESCRIPTOR_BYTES} bytes to run")
        fmap = _region(fmap, "fmap", True)
        weight = _region(weight, "weight", False)
        work = _region(work, "work", True)
        sums = _region(sums, "sums", True)
        if sums.size % 4 or sums.ctypes.data % 4:
            raise CsimError(f"sums region: {sums.size} bytes at an address that must hold "
                            "aligned int32 values (size and address multiples of 4)")
        prog = np.frombuffer(program, dtype=np.uint8) if program else np.zeros(1, np.uint8)
        status, cycles, eid = ctypes.c_uint32(), ctypes.c_uint64(), ctypes.c_uint64()
        estimate = ctypes.c_uint64()
        with self._lock:
            rc = self._lib.dg_run(prog.ctypes.data_as(_U8P), len(program), int(layer_count),
                                  fmap.ctypes.data_as(_U8P), fmap.size,
                                  weight.ctypes.data_as(_U8P), weight.size,
                                  work.ctypes.data_as(_U8P), work.size,
                                  sums.ctypes.data_as(_I32P), sums.size,
                                  ctypes.byref(status), ctypes.byref(cycles), ctypes.byref(eid),
                                  int(run_flags), ctypes.byref(estimate))
        if rc != 0:
            raise CsimError(f"dg_run rejected its arguments (rc={rc})")
        return CsimRun(int(status.value), int(cycles.value), int(eid.value), int(estimate.value))


# ----------------------------------------------------------------------------- vector sets
@dataclass(frozen=True)
class VectorCheck:
    """Outcome of one vector set on the C-sim engine (`cycles_estimate`: the C-sim's
    estimate, CsimRun.cycles_estimate)."""
    name: str
    passed: bool
    status: int
    expected_status: int
    cycles_estimate: int
    macs: int
    message: str


def _first_diff(a: np.ndarray, b: np.ndarray) -> Optional[int]:
    d = np.flatnonzero(a != b)
    return int(d[0]) if d.size else None


def run_vector_set(vs, engine: Optional[CsimEngine] = None) -> VectorCheck:
    """Run a vector set (a `dgfpga.backends.vectors.VectorSet` or its folder) with its
    run_flags and compare the whole FMAP and SUMS regions (and WORK when the set expects
    it: gate and head records write it), but for the set's `ignore` ranges (the cycle
    log), and the STATUS word with what it expects."""
    from dgfpga.backends import vectors
    if not isinstance(vs, vectors.VectorSet):
        vs = vectors.read_vector_set(vs)
    engine = engine or CsimEngine(load_config(vs.config))
    if vs.config_hash != engine.cfg.config_hash:
        raise CsimError(f"vector set {vs.name} is for config '{vs.config}' "
                        f"(0x{vs.config_hash:08X}), the engine is '{engine.cfg.name}' "
                        f"(0x{engine.cfg.config_hash:08X})")
    mem = {r: np.array(vs.before[r], dtype=np.uint8, copy=True) for r in vectors.REGIONS}
    res = engine.run(vs.program, vs.layer_count, mem["fmap"], mem["weight"], mem["work"],
                     mem["sums"], run_flags=vector_run_flags(vs))
    problems = []
    if res.status != vs.expected_status:
        problems.append(f"status 0x{res.status:08X} ({res.describe()}), expected "
                        f"0x{vs.expected_status:08X} ({regmap.describe_status(vs.expected_status)})")
    for r in ("fmap", "work", "sums"):
        if r in vs.expected:
            got, want = mem[r].copy(), np.array(vs.expected[r], np.uint8, copy=True)
            for reg, off, n in getattr(vs, "ignore", None) or ():
                if reg == r:                # e.g. the cycle log (the reference has no clock)
                    got[off:off + n] = 0
                    want[off:off + n] = 0
            i = _first_diff(got, want)
            if i is not None:
                problems.append(f"{r} differs at byte {i} (got {got[i]}, expected {want[i]})")
    return VectorCheck(vs.name, not problems, res.status, vs.expected_status,
                       res.cycles_estimate, vs.macs, "; ".join(problems) or "bit-exact")


def vector_run_flags(vs) -> int:
    """The run_flags register of a vector set (0 unless the set says otherwise)."""
    flags = getattr(vs, "run_flags", None)
    if flags is None:
        flags = (getattr(vs, "meta", None) or {}).get("run_flags", 0)
    return int(flags)


def sanitizer_env() -> dict:
    """The environment to run a sanitizer build in."""
    return {**os.environ, **SANITIZE_ENV}


def run_testbench(folders: Sequence[Union[str, Path]], cfg: EngineConfig,
                  cache_dir: Union[str, Path, None] = None,
                  timeout_s: float = 600, sanitize: bool = False) -> tuple[int, list[str]]:
    """Run the compiled C++ testbench on vector set folders: (exit code, result lines).

    `sanitize`: the AddressSanitizer + UBSan build; a finding ends the run with a non-zero
    exit code and its report among the lines.
    """
    exe = build(cfg, "tb_asan" if sanitize else "tb", cache_dir)
    try:
        proc = subprocess.run([str(exe), *map(str, folders)], capture_output=True, text=True,
                              timeout=timeout_s, env=sanitizer_env() if sanitize else None)
    except subprocess.TimeoutExpired:
        raise CsimError(f"{exe} did not finish within {timeout_s} s") from None
    lines = proc.stdout.splitlines()
    if sanitize and proc.stderr.strip():
        lines += proc.stderr.splitlines()
    return proc.returncode, lines
