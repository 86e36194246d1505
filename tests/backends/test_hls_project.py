"""dgfpga.backends.hls_project: generated Vitis HLS / Vivado project, checked without vendor tools.

The Tcl scripts run under `tclsh` with every vendor command stubbed by an `unknown`
handler that records the command and its (evaluated) arguments; the tests then assert the
recorded sequence: part, clock, top function, interfaces, exported VLNV, block design.
"""
from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dgfpga.backends import hls_csim
from dgfpga.backends import hls_project
from dgfpga.contract import regmap
from dgfpga.contract.engine_config import load_config
from dgfpga.errors import ConfigError

SEP = "\x1f"

STUBS = r"""
# Vendor-command stubs: record "name<US>arg<US>arg..." per call, return plausible values.
set ::stub_log [open $::env(STUB_LOG) w]
proc stub_record {name arglist} {
    puts $::stub_log [join [concat [list $name] $arglist] "\x1f"]
    flush $::stub_log
}
proc unknown {name args} {
    stub_record $name $args
    switch -glob -- $name {
        get_board_parts {
            if {[info exists ::env(STUB_NO_BOARD)]} { return "" }
            return "avnet.com:ultra96v2:part0:1.2"
        }
        make_wrapper { return [file join $::env(STUB_PROJ) wrapper.v] }
        get_* { return [lindex $args end] }
        default { return "" }
    }
}
proc get_property {name obj} {
    stub_record get_property [list $name $obj]
    switch -- $name {
        DIRECTORY { return $::env(STUB_RUN_DIR) }
        PROGRESS { return "100%" }
        STATUS { return "write_bitstream Complete!" }
        SLACK {
            if {$obj eq "-hold"} { return $::env(STUB_WHS) }
            return $::env(STUB_WNS)
        }
        default { return "" }
    }
}
proc wait_on_run {args} {
    stub_record wait_on_run $args
    file mkdir $::env(STUB_RUN_DIR)
    set f [open [file join $::env(STUB_RUN_DIR) dgfpga_wrapper.bit] w]; puts $f bit; close $f
    set hw [file join $::env(STUB_PROJ) dgfpga_bd.gen sources_1 bd dgfpga hw_handoff]
    file mkdir $hw
    set f [open [file join $hw dgfpga.hwh] w]; puts $f hwh; close $f
}
rename exit tcl_exit
proc exit {args} {
    stub_record exit $args; close $::stub_log
    tcl_exit [expr {[llength $args] ? [lindex $args 0] : 0}]
}
set argv $::env(STUB_ARGV)
source $::env(STUB_SCRIPT)
"""


def _tclsh() -> str:
    exe = shutil.which("tclsh")
    if exe is None:
        pytest.skip("tclsh not found: install tcl (apt-get install tcl) to check the generated scripts")
    return exe


def _run_stubbed(script: Path, tmp: Path, argv: str = "", env_extra=None, expect_error=False):
    log = tmp / f"{script.stem}.log"
    stubs = tmp / "stubs.tcl"
    stubs.write_text(STUBS)
    env = dict(os.environ, STUB_LOG=str(log), STUB_SCRIPT=str(script), STUB_ARGV=argv,
               STUB_PROJ=str(script.parent / "vivado"), STUB_RUN_DIR=str(tmp / "impl_1"),
               STUB_WNS="0.183", STUB_WHS="0.010")
    for k in ("DGFPGA_COSIM", "DGFPGA_BOARD_REPO", "STUB_NO_BOARD"):
        env.pop(k, None)
    env.update(env_extra or {})
    proc = subprocess.run([_tclsh(), str(stubs)], capture_output=True, text=True, env=env,
                          cwd=tmp, timeout=60)
    if expect_error:
        assert proc.returncode != 0, "the script was expected to stop with an error"
        return proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [ln.split(SEP) for ln in log.read_text().splitlines()]


def _names(calls):
    return [c[0] for c in calls]


def _one(calls, name):
    found = [c for c in calls if c[0] == name]
    assert len(found) == 1, f"{name}: {len(found)} calls"
    return found[0][1:]


def _opt(args, flag):
    return args[args.index(flag) + 1]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    out = tmp_path_factory.mktemp("prj") / "ultra96"
    files = hls_project.generate_project(load_config("ultra96"), out)
    # what run_hls.tcl / package_rtl_ip.tcl would leave behind: the IP catalogue entries
    for ip in (out / hls_project.HLS_PROJECT / hls_project.HLS_SOLUTION / "impl" / "ip",
               out / hls_project.RTL_IP_DIR / "ip"):
        ip.mkdir(parents=True)
        (ip / "component.xml").write_text("<component/>")
    return out, files


def test_generation_is_deterministic(project, tmp_path):
    out, files = project
    again = tmp_path / "again"
    files2 = hls_project.generate_project(load_config("ultra96"), again)
    rel = sorted(p.relative_to(out) for p in files)
    assert rel == sorted(p.relative_to(again) for p in files2)
    for r in rel:
        assert filecmp.cmp(out / r, again / r, shallow=False), r
    text = "".join((out / r).read_text() for r in rel if r.suffix in (".tcl", ".md", ".h", ""))
    assert not re.search(r"20\d\d-\d\d-\d\d|\d\d:\d\d:\d\d", text), "timestamp in generated files"


def test_project_contents(project):
    out, _ = project
    for rel in ("run_hls.tcl", "build_bd.tcl", "Makefile", "README.md", "src/dg_engine.cpp",
                "src/dg_config.h", "tb/tb_dg_engine.cpp"):
        assert (out / rel).is_file(), rel
    assert not (out / "src" / "dg_bridge.cpp").exists()      # ctypes glue is not synthesised
    cfg = load_config("ultra96")
    assert f"0x{cfg.config_hash:08X}" in (out / "src" / "dg_config.h").read_text()
    readme = (out / "README.md").read_text()
    assert "NOT run by dgfpga's CI" in readme and str(hls_project.ENGINE_VLNV) in readme
    mk = (out / "Makefile").read_text()
    for target in ("all:", "hls:", "vivado:", "cosim:"):
        assert re.search(rf"^{target}", mk, re.M), target
    assert "\t$(VITIS_HLS) -f run_hls.tcl" in mk and "-source build_bd.tcl" in mk


def test_top_function_interfaces_match_the_register_map(project):
    src = (project[0] / "src" / "dg_engine.cpp").read_text()
    m = re.search(r"void dg_engine\((.*?)\)\s*\{", src, re.S)
    params = [re.split(r"[\s*]+", p.strip())[-1] for p in m.group(1).split(",")]
    # the registers in the register map's order, then the cycle counter input (no register)
    assert params == [a.name for a in regmap.ARGUMENTS] + [hls_project.CYCLE_COUNTER_PORT]
    pragmas = re.findall(r"#pragma HLS INTERFACE (.*)", src)
    norm = [dict(re.findall(r"(\w+) = (\S+)", p)) for p in pragmas]
    assert {"mode": "s_axilite", "port": "return", "bundle": "control"} in norm
    counter = [p for p in norm if p.get("port") == hls_project.CYCLE_COUNTER_PORT]
    assert counter == [{"mode": "ap_none", "port": hls_project.CYCLE_COUNTER_PORT}]
    decl = [p for p in m.group(1).split(",") if hls_project.CYCLE_COUNTER_PORT in p][0]
    assert "volatile" in decl and "u64" in decl    # each read is a read of the port
    for a in regmap.ARGUMENTS:
        assert {"mode": "s_axilite", "port": a.name, "bundle": "control"} in norm, a.name
    for port, bundle in hls_project.M_AXI_BUNDLES.items():
        hit = [p for p in norm if p.get("mode") == "m_axi" and p.get("port") == port]
        assert len(hit) == 1 and hit[0]["bundle"] == bundle and hit[0]["offset"] == "slave"
        assert "depth" in hit[0] and any(k.startswith("max_") for k in hit[0]), port
    assert len({hls_project.M_AXI_BUNDLES[p] for p in hls_project.M_AXI_BUNDLES}) == 5


@pytest.mark.parametrize("cosim", [False, True])
def test_run_hls_tcl_sequence(project, tmp_path, cosim):
    out, _ = project
    cfg = load_config("ultra96")
    calls = _run_stubbed(out / "run_hls.tcl", tmp_path,
                         env_extra={"DGFPGA_COSIM": "1"} if cosim else None)
    names = [n for n in _names(calls) if n != "add_files"]
    want = ["open_project", "set_top", "open_solution", "set_part", "create_clock",
            "config_interface", "config_export", "csim_design", "csynth_design"] + \
        (["cosim_design"] if cosim else []) + ["export_design", "exit"]
    assert names == want
    order = _names(calls)
    assert order.index("add_files") > order.index("set_top")
    assert max(i for i, n in enumerate(order) if n == "add_files") < order.index("open_solution")
    assert _one(calls, "set_top") == ["dg_engine"]
    part = _one(calls, "set_part")
    assert len(part) == 1 and re.fullmatch(r"xczu3eg-sbva484-1-[a-z]", part[0])
    clk = _one(calls, "create_clock")
    assert float(_opt(clk, "-period")) == pytest.approx(1e9 / cfg.clock_hz) == 5.0
    ci = _one(calls, "config_interface")
    assert _opt(ci, "-m_axi_max_widen_bitwidth") == str(cfg.axi_data_bits)
    added = [c[1:] for c in calls if c[0] == "add_files"]
    srcs = {Path(a[0]).name for a in added if a[0] != "-tb"}
    assert srcs == {p.name for p in (out / "src").iterdir()}
    assert all("-cflags" in a and "-std=c++14" in _opt(a, "-cflags") for a in added)
    assert any(a[0] == "-tb" and a[1].endswith("tb_dg_engine.cpp") for a in added)
    argv = _opt(_one(calls, "csim_design"), "-argv").split()
    assert argv and all((Path(p) / "vector.txt").is_file() for p in argv)
    ex = _one(calls, "export_design")
    v = hls_project.ENGINE_VLNV
    assert _opt(ex, "-format") == "ip_catalog"
    assert (_opt(ex, "-vendor"), _opt(ex, "-library"), _opt(ex, "-ipname"), _opt(ex, "-version")) == \
        (v.vendor, v.library, v.name, v.version)
    if cosim:
        assert _opt(_one(calls, "cosim_design"), "-argv").split() == argv


def test_run_hls_tcl_cosim_by_argument(project, tmp_path):
    calls = _run_stubbed(project[0] / "run_hls.tcl", tmp_path, argv="cosim")
    assert "cosim_design" in _names(calls)


def test_small_config_clock(tmp_path):
    _tclsh()
    out = tmp_path / "small"
    hls_project.generate_project(load_config("small"), out)
    calls = _run_stubbed(out / "run_hls.tcl", tmp_path)
    assert float(_opt(_one(calls, "create_clock"), "-period")) == pytest.approx(10.0)


def test_build_bd_tcl_sequence(project, tmp_path):
    out, _ = project
    cfg = load_config("ultra96")
    overlay = out / "overlay"
    shutil.rmtree(overlay, ignore_errors=True)
    calls = _run_stubbed(out / "build_bd.tcl", tmp_path)
    names = _names(calls)
    cp = _one(calls, "create_project")
    assert re.fullmatch(r"xczu3eg-sbva484-1-[a-z]", _opt(cp, "-part"))
    assert ["set_property", "board_part", "avnet.com:ultra96v2:part0:1.2"] in \
        [c[:3] for c in calls if c[0] == "set_property"]
    for a, b in (("create_project", "create_bd_design"), ("create_bd_design", "apply_bd_automation"),
                 ("assign_bd_address", "validate_bd_design"), ("validate_bd_design", "make_wrapper"),
                 ("make_wrapper", "launch_runs"), ("launch_runs", "wait_on_run")):
        assert names.index(a) < names.index(b), (a, b)
    cells = {c[-1]: _opt(c[1:], "-vlnv") for c in calls if c[0] == "create_bd_cell"}
    assert cells["dg_engine"] == str(hls_project.ENGINE_VLNV)
    assert cells["zynq_ps"].startswith("xilinx.com:ip:zynq_ultra_ps_e")
    auto = _one(calls, "apply_bd_automation")
    assert _opt(auto, "-rule") == "xilinx.com:bd_rule:zynq_ultra_ps_e"
    assert 'apply_board_preset "1"' in _opt(auto, "-config")
    ps_props = " ".join(c[2] for c in calls if c[0] == "set_property" and c[1] == "-dict"
                        and c[-1] == "zynq_ps")
    assert f"CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ {cfg.clock_hz // 1_000_000}" in ps_props
    for prop in ("PSU__USE__S_AXI_GP2 1", "PSU__USE__S_AXI_GP3 1", "PSU__USE__S_AXI_GP4 1",
                 "PSU__USE__M_AXI_GP0 1", "PSU__USE__IRQ0 1",
                 f"PSU__SAXIGP2__DATA_WIDTH {cfg.axi_data_bits}",
                 f"PSU__SAXIGP3__DATA_WIDTH {cfg.axi_data_bits}"):
        assert prop in ps_props, prop
    nets = [c[1:] for c in calls if c[0] == "connect_bd_intf_net"]
    assert ["zynq_ps/M_AXI_HPM0_FPD", "sc_ctrl/S00_AXI"] in nets
    assert ["sc_ctrl/M00_AXI", "dg_engine/s_axi_control"] in nets
    # every master reaches the PS; feature maps and weights each on their own HP port
    hp_of = {}
    for bundle in hls_project.M_AXI_BUNDLES.values():
        sc = [n[1].split("/")[0] for n in nets if n[0] == f"dg_engine/m_axi_{bundle}"]
        assert len(sc) == 1 and sc[0].startswith("sc_hp"), bundle
        port = [n[1] for n in nets if n[0] == f"{sc[0]}/M00_AXI"]
        assert len(port) == 1, sc
        hp_of[bundle] = port[0]
    assert hp_of["gmem_fmap"] == "zynq_ps/S_AXI_HP0_FPD"
    assert hp_of["gmem_w"] == "zynq_ps/S_AXI_HP1_FPD"
    assert {hp_of[b] for b in ("gmem_prog", "gmem_work", "gmem_sums")} == {"zynq_ps/S_AXI_HP2_FPD"}
    wires = [c[1:] for c in calls if c[0] == "connect_bd_net"]
    assert ["dg_engine/interrupt", "zynq_ps/pl_ps_irq0"] in wires
    # CYCLES: the free-running counter on the engine clock drives the engine's counter input
    assert cells["cycle_counter"] == hls_project.CYCLE_COUNTER_VLNV
    cprops = [c[2] for c in calls if c[0] == "set_property" and c[1] == "-dict"
              and c[-1] == "cycle_counter"]
    assert len(cprops) == 1 and f"CONFIG.Output_Width {hls_project.CYCLE_COUNTER_BITS}" in cprops[0]
    assert "CONFIG.CE false" in cprops[0] and "CONFIG.SCLR false" in cprops[0]
    assert ["cycle_counter/Q", f"dg_engine/{hls_project.CYCLE_COUNTER_PORT}"] in wires
    clocked = [p for w in wires if w[0] == "zynq_ps/pl_clk0" for p in w]
    for pin in ("dg_engine/ap_clk", "cycle_counter/CLK", "zynq_ps/saxihp0_fpd_aclk",
                "zynq_ps/saxihp1_fpd_aclk",
                "zynq_ps/saxihp2_fpd_aclk", "sc_hp0/aclk", "sc_hp1/aclk", "sc_hp2/aclk"):
        assert pin in clocked, pin
    lr = _one(calls, "launch_runs")
    assert lr[0] == "impl_1" and _opt(lr, "-to_step") == "write_bitstream"
    # timing signoff before the bitstream is copied
    for a, b in (("wait_on_run", "open_run"), ("open_run", "report_timing_summary"),
                 ("report_timing_summary", "get_timing_paths")):
        assert names.index(a) < names.index(b), (a, b)
    assert {c[-1] for c in calls if c[0] == "get_timing_paths"} == {"-setup", "-hold"}
    assert (overlay / "dgfpga.bit").is_file() and (overlay / "dgfpga.hwh").is_file()


@pytest.mark.parametrize("wns,whs", [("-0.042", "0.010"), ("0.183", "-0.003")])
def test_build_bd_refuses_a_bitstream_that_misses_timing(project, tmp_path, wns, whs):
    out, _ = project
    overlay = out / "overlay"
    shutil.rmtree(overlay, ignore_errors=True)
    msg = _run_stubbed(out / "build_bd.tcl", tmp_path, env_extra={"STUB_WNS": wns, "STUB_WHS": whs},
                       expect_error=True)
    assert "timing not met" in msg and "NOT copied" in msg
    assert not (overlay / "dgfpga.bit").exists()


def test_build_bd_board_files(project, tmp_path):
    """Missing Ultra96-V2 board files: installed from the board store when possible, taken
    from DGFPGA_BOARD_REPO when given, else a clear stop before any block design."""
    out, _ = project
    msg = _run_stubbed(out / "build_bd.tcl", tmp_path, env_extra={"STUB_NO_BOARD": "1"},
                       expect_error=True)
    assert "board files" in msg and "DGFPGA_BOARD_REPO" in msg
    calls = [ln.split(SEP) for ln in (tmp_path / "build_bd.log").read_text().splitlines()]
    names = _names(calls)
    assert "xhub::install" in names and "create_bd_design" not in names
    (tmp_path / "repo").mkdir()
    calls = _run_stubbed(out / "build_bd.tcl", tmp_path / "repo",
                         env_extra={"DGFPGA_BOARD_REPO": "/opt/bdf"})
    assert ["set_param", "board.repoPaths", "/opt/bdf"] in [c[:3] for c in calls]


def test_build_bd_around_the_rtl_ip(project, tmp_path):
    out, _ = project
    calls = _run_stubbed(out / "build_bd.tcl", tmp_path, argv="rtl")
    props = [c[2] for c in calls if c[0] == "set_property" and c[1] == "ip_repo_paths"]
    assert props == [str(out / hls_project.RTL_IP_DIR / "ip")]
    nets = [c[1:] for c in calls if c[0] == "connect_bd_intf_net"]
    masters = [n for n in nets if n[0].startswith("dg_engine/m_axi_")]
    # feature maps (and the small streams) on HP0, the weights on HP1 (issue 14)
    assert masters == [["dg_engine/m_axi_gmem", "sc_hp0/S00_AXI"],
                       ["dg_engine/m_axi_gmem_w", "sc_hp1/S00_AXI"]]
    # the RTL engine counts its own cycles: no counter core
    assert not [c for c in calls if c[0] == "create_bd_cell" and c[-1] == "cycle_counter"]
    assert ["sc_hp0/M00_AXI", "zynq_ps/S_AXI_HP0_FPD"] in nets
    assert ["sc_hp1/M00_AXI", "zynq_ps/S_AXI_HP1_FPD"] in nets
    ps_props = " ".join(c[2] for c in calls if c[0] == "set_property" and c[1] == "-dict"
                        and c[-1] == "zynq_ps")
    assert "PSU__USE__S_AXI_GP2 1" in ps_props and "PSU__USE__S_AXI_GP3 1" in ps_props
    assert "S_AXI_GP4" not in ps_props
    msg = _run_stubbed(out / "build_bd.tcl", tmp_path, argv="vhdl", expect_error=True)
    assert "unknown IP 'vhdl'" in msg


def _rtl_ports(sv: str) -> set:
    head = sv[sv.index("module dg_engine"):sv.index(");")]
    return set(re.findall(r"(?:input|output)\s+wire\s+(?:\[[^\]]*\]\s*)?(\w+)", head))


def test_package_rtl_ip(project, tmp_path):
    """package_rtl_ip.tcl: every RTL source of the config (and only those) is added, the IP
    gets the engine's VLNV, the interfaces it names are ports of dg_engine, and the
    register block covers the register map."""
    out, files = project
    from dgfpga.backends import rtl_sim
    calls = _run_stubbed(out / "package_rtl_ip.tcl", tmp_path)
    added = [c[2:] for c in calls if c[0] == "add_files"][0]
    added = [Path(a) for a in added[0].split()] if len(added) == 1 else [Path(a) for a in added]
    assert sorted(a.name for a in added) == sorted(
        list(rtl_sim.RTL_FILES) + [p.name for p in rtl_sim.RTL.glob("*.svh")] + ["dg_params.svh"])
    assert "dg_dsp48e2_ports.svh" in {a.name for a in added}       # an include of the RTL
    # Vivado has DSP48E2: the RTL's black box for open synthesis must be off there
    assert ("verilog_define", "DG_VENDOR_PRIMITIVES") in {
        (c[1], c[2]) for c in calls if c[0] == "set_property" and len(c) >= 4}
    assert all(a.is_file() for a in added)
    for name in rtl_sim.RTL_FILES:     # the shipped copy is the checkout's RTL
        assert (out / "rtl" / name).read_text() == (rtl_sim.RTL / name).read_text()
    v = hls_project.ENGINE_VLNV
    pp = _one(calls, "ipx::package_project")
    assert _opt(pp, "-vendor") == v.vendor and _opt(pp, "-library") == v.library
    sets = {(c[1], c[2]) for c in calls if c[0] == "set_property" and len(c) >= 4}
    assert ("name", v.name) in sets and ("version", v.version) in sets
    assert ("top", hls_project.TOP_FUNCTION) in sets
    ports = _rtl_ports((out / "rtl" / "dg_engine.sv").read_text())
    # every AXI4 master of the RTL top is packaged (and clocked), and only those
    masters = {p[len("m_axi_"):-len("_arvalid")] for p in ports
               if p.startswith("m_axi_") and p.endswith("_arvalid")}
    assert masters == set(hls_project.RTL_MASTERS) == {"gmem", "gmem_w"}
    assert {_opt(c[1:], "-busif") for c in calls if c[0] == "ipx::associate_bus_interfaces"
            and "-busif" in c} == {"s_axi_control"} | {f"m_axi_{b}" for b in masters}
    for c in calls:
        if c[0] in ("ipx::infer_bus_interface",):
            assert c[1] in ports, c
        if c[0] == "ipx::associate_bus_interfaces":
            busif = _opt(c[1:], "-busif") if "-busif" in c else None
            if busif:
                assert any(p.startswith(busif + "_") for p in ports), busif
    rng = [c for c in calls if c[0] == "set_property" and c[1] == "range"]
    assert len(rng) == 1 and int(rng[0][2]) >= regmap.REGISTERS[-1].offset + 4
    assert names_in_order(calls, "ipx::check_integrity", "ipx::save_core")


def names_in_order(calls, a, b) -> bool:
    n = _names(calls)
    return a in n and b in n and n.index(a) < n.index(b)


@pytest.mark.verilator
def test_packaged_rtl_is_complete(project, tmp_path):
    """The project's rtl/ folder alone (no checkout paths) lints as the engine top."""
    from conftest import require_verilator
    exe = require_verilator()
    out, _ = project
    from dgfpga.backends import rtl_sim
    files = [str(out / "rtl" / f) for f in rtl_sim.RTL_FILES]
    proc = subprocess.run([exe, "--lint-only", "-Wno-fatal", f"-I{out / 'rtl'}", "--top-module",
                           "dg_engine", *files], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_refuses_a_part_it_cannot_target():
    cfg = load_config("small")
    import dataclasses
    bad = dataclasses.replace(cfg, part="xc7z020clg400-1")
    with pytest.raises(ConfigError, match="Ultra96"):
        hls_project.generate_project(bad, "/nonexistent")


def test_generated_sources_pass_csim(project, tmp_path):
    """The project's own src/ + tb/ build with g++ and pass its vector sets."""
    try:
        cxx, ap = hls_csim.compiler(), hls_csim.ap_types_dir()
    except hls_csim.CsimError as exc:
        pytest.skip(f"C-sim toolchain missing: {exc}")
    out, _ = project
    exe = tmp_path / "tb"
    subprocess.run([cxx, *hls_csim.CXXFLAGS, "-isystem", str(ap), "-I", str(out / "src"),
                    str(out / "src" / "dg_engine.cpp"), str(out / "tb" / "tb_dg_engine.cpp"),
                    "-o", str(exe)], check=True, capture_output=True)
    folders = sorted((out / "tb" / "vectors").iterdir())
    proc = subprocess.run([str(exe), *map(str, folders)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.count("PASS ") == len(folders) == len(hls_project.TB_VECTORS)


@pytest.mark.vitis
def test_vitis_hls_flow(project):
    from conftest import require_vitis
    require_vitis()
    out, _ = project
    subprocess.run(["vitis_hls", "-f", "run_hls.tcl"], cwd=out, check=True)
