"""Generate the Vitis HLS project and the Vivado block design of the engine (torch-free).

`generate_project(cfg, out)` writes a self-contained folder; no vendor tool is needed to
generate it, and the files are deterministic (no timestamps, sorted lists), so running it
twice gives identical bytes:

    out/src/                 engine sources (hls/src) + dg_config.h rendered for cfg
    out/tb/                  the C-sim testbench + a few vector sets it checks (csim/cosim)
    out/run_hls.tcl          vitis_hls: csim, csynth, optional cosim, export as IP (ENGINE_VLNV)
    out/build_bd.tcl         vivado: Ultra96-V2 block design, bitstream -> out/overlay/ (only
                             if timing is met after implementation); `-tclargs rtl` builds it
                             around the packaged reference RTL instead of the HLS IP
    out/package_rtl_ip.tcl   vivado: packages the reference RTL (sim/rtl) as an IP with the
                             same VLNV and register map (a Vivado-only path, no Vitis HLS)
    out/rtl/                 the reference RTL sources + dg_params.svh rendered for cfg
    out/Makefile             make hls | cosim | vivado | all
    out/README.md            what it is, how to run it, what was NOT run by dgfpga's CI

The host binds its driver to the IP by `ENGINE_VLNV` (one constant, here).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

from dgfpga.contract import regmap
from dgfpga.contract.engine_config import EngineConfig
from dgfpga import paths
from dgfpga.errors import ConfigError

__all__ = ["IpVlnv", "ENGINE_VLNV", "TOP_FUNCTION", "M_AXI_BUNDLES", "TB_VECTORS", "CYCLE_COUNTER_PORT",
           "clock_period_ns", "generate_project"]

HLS_SRC = paths.hls_dir() / "src"              # the checkout's hls/ or the installed copy
HLS_TB = paths.hls_dir() / "tb"


@dataclass(frozen=True)
class IpVlnv:
    """Vendor:library:name:version of the exported IP (what PYNQ's `bindto` names)."""
    vendor: str
    library: str
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.vendor}:{self.library}:{self.name}:{self.version}"


# The one VLNV lives in dgfpga.contract.regmap (the host's PYNQ driver binds to it too).
ENGINE_VLNV = IpVlnv(regmap.ENGINE_VENDOR, regmap.ENGINE_LIBRARY, regmap.ENGINE_NAME,
                     regmap.ENGINE_VERSION)
TOP_FUNCTION = "dg_engine"
# m_axi bundle of each pointer argument (hls/src/dg_engine.cpp interface pragmas)
M_AXI_BUNDLES = {"program": "gmem_prog", "fmap_base": "gmem_fmap", "weight_base": "gmem_w",
                 "work_base": "gmem_work", "sums_base": "gmem_sums"}
# The PS slave port of each engine master, per IP implementation: feature maps and weights
# on their own HP ports (each HP port is one 128-bit path into the DDR controller), the
# small streams (program, work lists, sums) on a third. The RTL IP has two masters
# (sim/rtl/dg_engine.sv): `m_axi_gmem` (feature maps, program, work lists, sums, the gate
# unit) and the read-only `m_axi_gmem_w` (the loader's params and weights), on HP0 / HP1.
HP_PORTS = {
    "hls": (("HP0", ("gmem_fmap",)), ("HP1", ("gmem_w",)),
            ("HP2", ("gmem_prog", "gmem_work", "gmem_sums"))),
    "rtl": (("HP0", ("gmem",)), ("HP1", ("gmem_w",))),
}
# the RTL IP's AXI4 masters (m_axi_<bundle>), in HP_PORTS order
RTL_MASTERS = tuple(b for _, bundles in HP_PORTS["rtl"] for b in bundles)
# CYCLES of the HLS engine: the top function's ap_none input (not a register) that a free-
# running counter on the engine clock drives (hls/src/dg_engine.cpp: CYCLES = its reading
# at done minus at start); build_bd.tcl instantiates the counter core and wires it.
CYCLE_COUNTER_PORT = "cycle_counter"
CYCLE_COUNTER_VLNV = "xilinx.com:ip:c_counter_binary"
CYCLE_COUNTER_BITS = 64
RTL_IP_DIR = "rtl_ip"                 # package_rtl_ip.tcl packages the reference RTL here
REPORTS_DIR = "reports"               # build_bd.tcl: timing and utilisation after implementation
# vector sets copied into the project for csim_design / cosim_design
TB_VECTORS = ("dense_3x3_s1", "conv1_gated_half", "conv2_identity_in_place",
              "stem_7x7_s2_maxpool")
ULTRA96_BOARD_PART = "avnet.com:ultra96v2:part0:*"
HLS_PROJECT = "dg_engine_prj"
HLS_SOLUTION = "solution1"
VIVADO_PROJECT = "dgfpga_bd"
BD_NAME = "dgfpga"


def clock_period_ns(cfg: EngineConfig) -> str:
    """The HLS clock period for cfg.clock_hz, as create_clock takes it ('5.000')."""
    return f"{1e9 / cfg.clock_hz:.3f}"


def _check_target(cfg: EngineConfig) -> None:
    if not cfg.part.startswith("xczu3eg-sbva484-1"):
        raise ConfigError(f"engine config '{cfg.name}': the generated block design targets the "
                          f"Ultra96-V2 (xczu3eg-sbva484-1-*), not part {cfg.part!r}")
    if cfg.axi_data_bits not in (32, 64, 128):
        raise ConfigError(f"engine config '{cfg.name}': the Zynq MPSoC HP ports are at most 128 "
                          f"bits wide, axi_data_bits={cfg.axi_data_bits}")


def _header_lines(cfg: EngineConfig) -> tuple:
    return ("GENERATED FILE - DO NOT EDIT.",
            f"Generated by dgfpga.backends.hls_project for engine config '{cfg.name}' "
            f"(hash 0x{cfg.config_hash:08X}, part {cfg.part}, {cfg.clock_hz / 1e6:g} MHz).",
            "Regenerate it with dgfpga.backends.hls_project.generate_project.")


def _header(cfg: EngineConfig, comment: str) -> str:
    if comment == "<!--":
        return "<!--\n" + "\n".join(_header_lines(cfg)) + "\n-->\n"
    return "\n".join(f"{comment} {line}" for line in _header_lines(cfg)) + "\n"


def _run_hls_tcl(cfg: EngineConfig, sources: Sequence[str], headers: Sequence[str],
                 vectors: Sequence[str]) -> str:
    v = ENGINE_VLNV
    add_src = "\n".join(f"add_files [file join $here src {s}] -cflags $cflags" for s in sources)
    add_hdr = "\n".join(f"add_files [file join $here src {h}] -cflags $cflags" for h in headers)
    tb_args = " ".join(f"[file join $here tb vectors {n}]" for n in vectors)
    return _header(cfg, "#") + f"""#
# Vitis HLS flow of the dgfpga engine:  vitis_hls -f run_hls.tcl [-tclargs cosim]
# C-simulation checks the vector sets in tb/vectors bit for bit; C/RTL co-simulation runs
# when DGFPGA_COSIM=1 or with the 'cosim' argument; the IP is exported for Vivado as
# {v} (the host binds its driver to this VLNV).
set here [file dirname [file normalize [info script]]]
set cosim 0
if {{[info exists ::env(DGFPGA_COSIM)] && $::env(DGFPGA_COSIM) eq "1"}} {{ set cosim 1 }}
if {{[info exists argv] && [lsearch -exact $argv cosim] >= 0}} {{ set cosim 1 }}
set cflags "-std=c++14 -I[file join $here src]"
set tb_args "{tb_args}"

open_project -reset {HLS_PROJECT}
set_top {TOP_FUNCTION}
{add_src}
{add_hdr}
add_files -tb [file join $here tb tb_dg_engine.cpp] -cflags $cflags

open_solution -reset {HLS_SOLUTION} -flow_target vivado
set_part {{{cfg.part}}}
create_clock -period {clock_period_ns(cfg)} -name default
config_interface -m_axi_addr64 -m_axi_max_widen_bitwidth {cfg.axi_data_bits} -m_axi_alignment_byte_size {cfg.axi_bytes}
config_export -format ip_catalog -rtl verilog -vendor {v.vendor} -library {v.library} -ipname {v.name} -version {v.version}

csim_design -argv $tb_args
csynth_design
if {{$cosim}} {{
    cosim_design -rtl verilog -argv $tb_args
}}
export_design -format ip_catalog -rtl verilog -vendor {v.vendor} -library {v.library} -ipname {v.name} -version {v.version} -description "dgfpga sparse-conv engine, config {cfg.name} (0x{cfg.config_hash:08X})" -display_name "dgfpga engine ({cfg.name})"
exit
"""


def _hp_index(port: str) -> int:
    """HPn_FPD is the PS's S_AXI_GP(n+2) (Zynq UltraScale+ naming)."""
    return int(port[2:]) + 2


def _bd_masters(kind: str, width: int) -> tuple[str, str, str]:
    """(PS properties, clock pins, interface connections) of IP `kind`'s masters, HP ports
    `width` bits wide."""
    props, clocks, nets = [], [], []
    for port, bundles in HP_PORTS[kind]:
        n, gp, sc = int(port[2:]), _hp_index(port), f"sc_{port.lower()}"
        props.append(f"CONFIG.PSU__USE__S_AXI_GP{gp} {{1}} CONFIG.PSU__SAXIGP{gp}__DATA_WIDTH {{{width}}}")
        clocks.append(f"[get_bd_pins zynq_ps/saxihp{n}_fpd_aclk] [get_bd_pins {sc}/aclk]")
        nets.append(f"create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect {sc}\n"
                    f"    set_property -dict [list CONFIG.NUM_SI {{{len(bundles)}}} CONFIG.NUM_MI {{1}}] "
                    f"[get_bd_cells {sc}]")
        nets += [f"connect_bd_intf_net [get_bd_intf_pins dg_engine/m_axi_{b}] "
                 f"[get_bd_intf_pins {sc}/S{i:02d}_AXI]" for i, b in enumerate(bundles)]
        nets.append(f"connect_bd_intf_net [get_bd_intf_pins {sc}/M00_AXI] "
                    f"[get_bd_intf_pins zynq_ps/S_AXI_{port}_FPD]")
        nets.append(f"connect_bd_net [get_bd_pins rst_pl/peripheral_aresetn] [get_bd_pins {sc}/aresetn]")
    return " ".join(props), " ".join(clocks), "\n    ".join(nets)


def _build_bd_tcl(cfg: EngineConfig) -> str:
    v = ENGINE_VLNV
    mhz = f"{cfg.clock_hz / 1e6:g}"
    ports = {k: _bd_masters(k, cfg.axi_data_bits) for k in HP_PORTS}
    hls_map = ", ".join(f"{'+'.join(b)} -> {p}" for p, b in HP_PORTS["hls"])
    rtl_map = ", ".join(f"{'+'.join('m_axi_' + x for x in b)} -> {p}" for p, b in HP_PORTS["rtl"])
    return _header(cfg, "#") + f"""#
# Vivado flow: Ultra96-V2 block design with the dgfpga engine, bitstream and hardware
# handoff for PYNQ:
#   vivado -mode batch -source build_bd.tcl                 (the HLS IP, after run_hls.tcl)
#   vivado -mode batch -source build_bd.tcl -tclargs rtl    (the reference RTL, after
#                                                            package_rtl_ip.tcl; no Vitis HLS)
# Output: overlay/{BD_NAME}.bit and overlay/{BD_NAME}.hwh (load with pynq.Overlay), written only
# when the implemented design meets timing (worst setup and hold slack >= 0); the timing
# and utilisation reports go to {REPORTS_DIR}/ either way.
# Engine masters: {hls_map} (HLS IP); {rtl_map} (RTL IP).
set here [file dirname [file normalize [info script]]]
set part {{{cfg.part}}}
set proj_dir [file join $here vivado]
set ip_kind hls
if {{[info exists argv] && [llength $argv] > 0}} {{ set ip_kind [lindex $argv 0] }}
switch -- $ip_kind {{
    hls {{ set ip_repo [file join $here {HLS_PROJECT} {HLS_SOLUTION} impl ip] }}
    rtl {{ set ip_repo [file join $here {RTL_IP_DIR} ip] }}
    default {{ error "build_bd.tcl: unknown IP '$ip_kind' (use hls or rtl)" }}
}}
if {{![file exists [file join $ip_repo component.xml]]}} {{
    error "build_bd.tcl: no engine IP in $ip_repo: run run_hls.tcl (hls) or package_rtl_ip.tcl (rtl) first"
}}

create_project -force {VIVADO_PROJECT} $proj_dir -part $part
# Ultra96-V2 board files: the PS preset (LPDDR4 timing, MIO, clocks) comes from them. When
# they are not installed, install them from the Xilinx board store (or point
# DGFPGA_BOARD_REPO at a copy of https://github.com/Avnet/bdf), else stop: a PS without
# the board's DDR settings would build a bitstream that cannot boot.
if {{[info exists ::env(DGFPGA_BOARD_REPO)]}} {{
    set_param board.repoPaths [list $::env(DGFPGA_BOARD_REPO)]
}}
set board [lindex [lsort [get_board_parts -quiet {ULTRA96_BOARD_PART}]] end]
if {{$board eq ""}} {{
    puts "INFO: Ultra96-V2 board files ({ULTRA96_BOARD_PART}) not installed: installing them from the Xilinx board store"
    catch {{
        xhub::refresh_catalog [xhub::get_xstores xilinx_board_store]
        xhub::install [xhub::get_xitems -quiet *ultra96v2*]
    }} install_msg
    set board [lindex [lsort [get_board_parts -quiet {ULTRA96_BOARD_PART}]] end]
}}
if {{$board eq ""}} {{
    error "Ultra96-V2 board files ({ULTRA96_BOARD_PART}) are not installed and could not be installed from the board store: install them (Vivado: Tools > Vivado Store > Boards) or set DGFPGA_BOARD_REPO to a copy of https://github.com/Avnet/bdf"
}}
set_property board_part $board [current_project]
set_property ip_repo_paths [list $ip_repo] [current_project]
update_ip_catalog

create_bd_design {BD_NAME}
# Zynq UltraScale+ MPSoC with the board preset, PL clock {mhz} MHz, HP slaves
# ({cfg.axi_data_bits}-bit), HPM0_FPD master for AXI-Lite, PL-to-PS interrupt 0
create_bd_cell -type ip -vlnv xilinx.com:ip:zynq_ultra_ps_e zynq_ps
apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e -config {{apply_board_preset "1"}} [get_bd_cells zynq_ps]
set_property -dict [list \\
    CONFIG.PSU__FPGA_PL0_ENABLE {{1}} \\
    CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ {{{mhz}}} \\
    CONFIG.PSU__USE__M_AXI_GP0 {{1}} \\
    CONFIG.PSU__MAXIGP0__DATA_WIDTH {{32}} \\
    CONFIG.PSU__USE__M_AXI_GP1 {{0}} \\
    CONFIG.PSU__USE__M_AXI_GP2 {{0}} \\
    CONFIG.PSU__USE__IRQ0 {{1}} \\
] [get_bd_cells zynq_ps]

create_bd_cell -type ip -vlnv {v} dg_engine
create_bd_cell -type ip -vlnv xilinx.com:ip:proc_sys_reset rst_pl
create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect sc_ctrl
set_property -dict [list CONFIG.NUM_SI {{1}} CONFIG.NUM_MI {{1}}] [get_bd_cells sc_ctrl]

# clock and reset: everything on pl_clk0
set clk [get_bd_pins zynq_ps/pl_clk0]
connect_bd_net $clk [get_bd_pins zynq_ps/maxihpm0_fpd_aclk] [get_bd_pins dg_engine/ap_clk] \\
    [get_bd_pins rst_pl/slowest_sync_clk] [get_bd_pins sc_ctrl/aclk]
connect_bd_net [get_bd_pins zynq_ps/pl_resetn0] [get_bd_pins rst_pl/ext_reset_in]
connect_bd_net [get_bd_pins rst_pl/peripheral_aresetn] [get_bd_pins dg_engine/ap_rst_n] \\
    [get_bd_pins sc_ctrl/aresetn]

# AXI-Lite control on HPM0_FPD
connect_bd_intf_net [get_bd_intf_pins zynq_ps/M_AXI_HPM0_FPD] [get_bd_intf_pins sc_ctrl/S00_AXI]
connect_bd_intf_net [get_bd_intf_pins sc_ctrl/M00_AXI] [get_bd_intf_pins dg_engine/s_axi_control]
# the engine's AXI4 masters through SmartConnect to their HP ports
if {{$ip_kind eq "hls"}} {{
    set_property -dict [list {ports["hls"][0]}] [get_bd_cells zynq_ps]
    {ports["hls"][2]}
    connect_bd_net $clk {ports["hls"][1]}
    # CYCLES: a free-running {CYCLE_COUNTER_BITS}-bit counter on the engine clock drives the
    # engine's ap_none input {CYCLE_COUNTER_PORT} (read at start and at done)
    create_bd_cell -type ip -vlnv {CYCLE_COUNTER_VLNV} cycle_counter
    set_property -dict [list CONFIG.Output_Width {{{CYCLE_COUNTER_BITS}}} CONFIG.Increment_Value {{1}} \
        CONFIG.CE {{false}} CONFIG.SCLR {{false}}] [get_bd_cells cycle_counter]
    connect_bd_net $clk [get_bd_pins cycle_counter/CLK]
    connect_bd_net [get_bd_pins cycle_counter/Q] [get_bd_pins dg_engine/{CYCLE_COUNTER_PORT}]
}} else {{
    set_property -dict [list {ports["rtl"][0]}] [get_bd_cells zynq_ps]
    {ports["rtl"][2]}
    connect_bd_net $clk {ports["rtl"][1]}
}}
# ap_done interrupt
connect_bd_net [get_bd_pins dg_engine/interrupt] [get_bd_pins zynq_ps/pl_ps_irq0]

assign_bd_address
validate_bd_design
save_bd_design

add_files -norecurse [make_wrapper -files [get_files {BD_NAME}.bd] -top]
set_property top {BD_NAME}_wrapper [current_fileset]
update_compile_order -fileset sources_1

launch_runs impl_1 -to_step write_bitstream -jobs 2
wait_on_run impl_1
if {{[get_property PROGRESS [get_runs impl_1]] ne "100%"}} {{
    error "implementation did not finish: [get_property STATUS [get_runs impl_1]]"
}}

# timing signoff: the bitstream is only copied to overlay/ when setup and hold are met
set reports [file join $here {REPORTS_DIR}]
file mkdir $reports
open_run impl_1
report_timing_summary -max_paths 20 -file [file join $reports timing_summary.rpt]
report_utilization -file [file join $reports utilization.rpt]
set wns [get_property SLACK [lindex [get_timing_paths -max_paths 1 -nworst 1 -setup] 0]]
set whs [get_property SLACK [lindex [get_timing_paths -max_paths 1 -nworst 1 -hold] 0]]
puts "timing: worst setup slack $wns ns, worst hold slack $whs ns at {mhz} MHz"
if {{$wns eq "" || $whs eq "" || $wns < 0 || $whs < 0}} {{
    error "timing not met at {mhz} MHz (worst setup slack '$wns' ns, hold '$whs' ns): see [file join $reports timing_summary.rpt]; the bitstream was NOT copied to overlay/"
}}

set overlay [file join $here overlay]
file mkdir $overlay
file copy -force [file join [get_property DIRECTORY [get_runs impl_1]] {BD_NAME}_wrapper.bit] [file join $overlay {BD_NAME}.bit]
set hwh [lindex [glob -nocomplain [file join $proj_dir *.gen sources_1 bd {BD_NAME} hw_handoff {BD_NAME}.hwh] \\
                                  [file join $proj_dir *.srcs sources_1 bd {BD_NAME} hw_handoff {BD_NAME}.hwh]] 0]
if {{$hwh eq ""}} {{ error "no hardware handoff (.hwh) found under $proj_dir" }}
file copy -force $hwh [file join $overlay {BD_NAME}.hwh]
puts "overlay written: [file join $overlay {BD_NAME}.bit] and .hwh"
exit
"""


def _package_rtl_ip_tcl(cfg: EngineConfig, rtl_files: Sequence[str]) -> str:
    """Vivado Tcl that packages the reference RTL as an IP: same VLNV and register map as
    the HLS IP (so the host's driver binds to it unchanged), the AXI4 masters RTL_MASTERS,
    the AXI4-Lite slave `s_axi_control`, `interrupt`, active-low `ap_rst_n`."""
    v = ENGINE_VLNV
    assoc = "\n".join(f"ipx::associate_bus_interfaces -busif m_axi_{b} -clock ap_clk $core"
                      for b in RTL_MASTERS)
    files = " \\\n    ".join(f"[file join $here rtl {f}]" for f in rtl_files)
    reg_bytes = 1 << regmap.ADDR_BITS
    return _header(cfg, "#") + f"""#
# Package the dgfpga reference RTL (SystemVerilog, sim/rtl) as a Vivado IP:
#   vivado -mode batch -source package_rtl_ip.tcl       -> {RTL_IP_DIR}/ip/component.xml
# then: vivado -mode batch -source build_bd.tcl -tclargs rtl
# The IP has the HLS engine's VLNV {v} and register map (AXI4-Lite
# `s_axi_control`, {reg_bytes} bytes), so the host runtime drives either one. NOT run by
# dgfpga's CI (no Vivado there): checked under tclsh with the vendor commands stubbed.
set here [file dirname [file normalize [info script]]]
set part {{{cfg.part}}}
set ip_dir [file join $here {RTL_IP_DIR} ip]
set proj_dir [file join $here {RTL_IP_DIR} prj]

create_project -force dg_engine_rtl $proj_dir -part $part
add_files -norecurse [list \\
    {files}]
set_property file_type SystemVerilog [get_files -filter {{FILE_TYPE == Verilog}} *.sv]
set_property file_type {{Verilog Header}} [get_files [file join $here rtl dg_params.svh]]
set_property is_global_include true [get_files [file join $here rtl dg_params.svh]]
set_property include_dirs [list [file join $here rtl]] [current_fileset]
# Vivado has the DSP48E2 primitive: the RTL's black-box declaration of it (for open synthesis,
# sim/rtl/dg_mac_array.sv) must not shadow it
set_property verilog_define {{DG_VENDOR_PRIMITIVES}} [current_fileset]
set_property top {TOP_FUNCTION} [current_fileset]
update_compile_order -fileset sources_1

ipx::package_project -root_dir $ip_dir -vendor {v.vendor} -library {v.library} -taxonomy /UserIP -import_files -set_current true
set core [ipx::current_core]
set_property name {v.name} $core
set_property version {v.version} $core
set_property display_name {{dgfpga engine RTL ({cfg.name})}} $core
set_property description {{dgfpga sparse-conv engine, reference RTL, config {cfg.name} (0x{cfg.config_hash:08X})}} $core
set_property supported_families {{zynquplus Production}} $core
ipx::infer_bus_interfaces xilinx.com:interface:aximm_rtl:1.0 $core
ipx::infer_bus_interface ap_clk xilinx.com:signal:clock_rtl:1.0 $core
ipx::infer_bus_interface ap_rst_n xilinx.com:signal:reset_rtl:1.0 $core
ipx::infer_bus_interface interrupt xilinx.com:signal:interrupt_rtl:1.0 $core
set_property value ACTIVE_LOW [ipx::add_bus_parameter POLARITY [ipx::get_bus_interfaces ap_rst_n -of_objects $core]]
set_property value LEVEL_HIGH [ipx::add_bus_parameter SENSITIVITY [ipx::get_bus_interfaces interrupt -of_objects $core]]
ipx::associate_bus_interfaces -busif s_axi_control -clock ap_clk $core
{assoc}
ipx::associate_bus_interfaces -clock ap_clk -reset ap_rst_n $core
# the register map: one address block of the control interface
set mm [ipx::add_memory_map s_axi_control $core]
set_property slave_memory_map_ref s_axi_control [ipx::get_bus_interfaces s_axi_control -of_objects $core]
set blk [ipx::add_address_block Reg $mm]
set_property range {reg_bytes} $blk
set_property width 32 $blk
ipx::create_xgui_files $core
ipx::update_checksums $core
ipx::check_integrity $core
ipx::save_core $core
puts "RTL IP packaged: [file join $ip_dir component.xml]"
exit
"""


def _makefile(cfg: EngineConfig) -> str:
    ip = f"{HLS_PROJECT}/{HLS_SOLUTION}/impl/ip/component.xml"
    return _header(cfg, "#") + f"""#
# make hls     C-sim + synthesis + IP export (Vitis HLS)
# make cosim   the same with C/RTL co-simulation
# make vivado  block design + bitstream -> overlay/{BD_NAME}.bit/.hwh (Vivado; only if timing is met)
# make rtl-ip  package the reference RTL as the engine IP (Vivado only, no Vitis HLS)
# make vivado-rtl  the block design around the RTL IP
# make all     hls then vivado
VITIS_HLS ?= vitis_hls
VIVADO ?= vivado
SOURCES := $(sort $(wildcard src/*.h src/*.cpp tb/*.cpp))

RTL_IP := {RTL_IP_DIR}/ip/component.xml

.PHONY: all hls cosim vivado rtl-ip vivado-rtl clean

all: vivado

hls: {ip}

{ip}: run_hls.tcl $(SOURCES)
\t$(VITIS_HLS) -f run_hls.tcl

cosim:
\tDGFPGA_COSIM=1 $(VITIS_HLS) -f run_hls.tcl

vivado: overlay/{BD_NAME}.bit

overlay/{BD_NAME}.bit: {ip} build_bd.tcl
\t$(VIVADO) -mode batch -nojournal -nolog -source build_bd.tcl

rtl-ip: $(RTL_IP)

$(RTL_IP): package_rtl_ip.tcl $(wildcard rtl/*.sv rtl/*.svh)
\t$(VIVADO) -mode batch -nojournal -nolog -source package_rtl_ip.tcl

vivado-rtl: $(RTL_IP) build_bd.tcl
\t$(VIVADO) -mode batch -nojournal -nolog -source build_bd.tcl -tclargs rtl

clean:
\trm -rf {HLS_PROJECT} {RTL_IP_DIR} vivado overlay {REPORTS_DIR} .Xil vitis_hls.log
"""


def _readme(cfg: EngineConfig, vectors: Sequence[str]) -> str:
    regs = ", ".join(f"`{a.name}`" for a in regmap.ARGUMENTS)
    return _header(cfg, "<!--") + f"""
# dgfpga engine: Vitis HLS project and Ultra96-V2 block design

Engine configuration **{cfg.name}** (config hash `0x{cfg.config_hash:08X}`): a
{cfg.tm} x {cfg.tn} int8 MAC array at {cfg.clock_hz / 1e6:g} MHz on `{cfg.part}`
({cfg.board}), AXI data width {cfg.axi_data_bits} bits.

**Synthesis, co-simulation, implementation and the bitstream were NOT run by dgfpga's CI**
(no Vitis HLS / Vivado there). dgfpga checks these scripts by running them under `tclsh`
with the vendor commands stubbed, and it checks the engine's C++ bit for bit in C-simulation
(g++), against the same vector sets as the golden model. Timing closure at
{cfg.clock_hz / 1e6:g} MHz and the resource use are not verified; `dgfpga.perf.resources` gives an
estimate only.

## Run

```
make hls      # vitis_hls -f run_hls.tcl: csim_design, csynth_design, export_design
make cosim    # the same plus cosim_design (or DGFPGA_COSIM=1)
make vivado   # vivado -mode batch -source build_bd.tcl -> overlay/{BD_NAME}.bit, overlay/{BD_NAME}.hwh
make rtl-ip vivado-rtl   # Vivado only: the reference RTL packaged as the same IP, then the block design
```

`build_bd.tcl` copies the bitstream to `overlay/` only when the implemented design meets
timing (worst setup and hold slack >= 0; reports in `{REPORTS_DIR}/`). It needs the Ultra96-V2
board files for the PS preset: when they are missing it installs them from the Xilinx board
store, or takes them from `DGFPGA_BOARD_REPO`, and stops with a message otherwise.

## Contents

| path | what |
|---|---|
| `src/` | the engine (top function `{TOP_FUNCTION}`), one building block per header; `dg_config.h` generated for this configuration |
| `tb/tb_dg_engine.cpp` | C-sim testbench: runs vector sets, compares the whole FMAP and SUMS regions and STATUS |
| `tb/vectors/` | vector sets used by `csim_design`/`cosim_design`: {", ".join(vectors)} |
| `run_hls.tcl` | Vitis HLS flow; exports IP `{ENGINE_VLNV}` |
| `build_bd.tcl` | Vivado: Zynq UltraScale+ MPSoC (board preset), engine masters through SmartConnect ({"; ".join(f"{'+'.join(b)} on {p}" for p, b in HP_PORTS["hls"])}), AXI-Lite on HPM0_FPD, interrupt on pl_ps_irq0, timing check |
| `rtl/`, `package_rtl_ip.tcl` | the reference RTL of this config and the Vivado script that packages it as IP `{ENGINE_VLNV}` (masters {", ".join(f"`m_axi_{b}` on {p}" for p, bs in HP_PORTS["rtl"] for b in bs)}) |

## Interface

`{TOP_FUNCTION}` arguments (s_axilite bundle `control`, ap_ctrl_hs): {regs}. The register
offsets are in `src/dg_config.h` (namespace `dg::reg`) and in dgfpga's docs/register_map.md.
Pointers are AXI4 masters: {", ".join(f"`{k}` -> `m_axi_{b}`" for k, b in M_AXI_BUNDLES.items())}.
One more input, not a register: `{CYCLE_COUNTER_PORT}` ({CYCLE_COUNTER_BITS} bits, ap_none), driven by a
free-running counter on the engine clock (`build_bd.tcl` instantiates `{CYCLE_COUNTER_VLNV}`); the
CYCLES register is its reading at done minus its reading at start: measured cycles. In C-simulation
and co-simulation it stands still (CYCLES = 0; the C-sim prints its own estimate apart).
The host runtime binds its driver to the VLNV `{ENGINE_VLNV}` and checks ENGINE_ID
(`0x{regmap.engine_id(cfg):016X}`) before the first run.
"""


def generate_project(cfg: EngineConfig, out_dir: Union[str, Path],
                     tb_vectors: Sequence[str] = TB_VECTORS) -> list[Path]:
    """Write the HLS project + Vivado scripts for `cfg` into `out_dir`; return the files.

    Existing generated files in `out_dir` are overwritten (tool outputs are left alone).
    Deterministic: the same inputs give byte-identical files.
    """
    from dgfpga.contract import codegen
    from dgfpga.backends import vectors

    _check_target(cfg)
    out = Path(out_dir)
    (out / "src").mkdir(parents=True, exist_ok=True)
    (out / "tb").mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def put(rel: str, text: str) -> None:
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        written.append(p)

    sources = sorted(p.name for p in HLS_SRC.glob("*.cpp") if p.name != "dg_bridge.cpp")
    headers = sorted(p.name for p in HLS_SRC.glob("*.h")) + ["dg_config.h"]
    for name in sources + headers[:-1]:
        put(f"src/{name}", (HLS_SRC / name).read_text())
    put("src/dg_config.h", codegen.render("dg_config.h.tmpl", cfg,
                                          f"engine config '{cfg.name}'", "dgfpga.backends.hls_project"))
    put("tb/tb_dg_engine.cpp", (HLS_TB / "tb_dg_engine.cpp").read_text())
    vec_dir = out / "tb" / "vectors"
    if vec_dir.exists():
        shutil.rmtree(vec_dir)
    wanted = set(tb_vectors)
    names = []
    for vs in vectors.layer_sweep(cfg):
        if vs.name in wanted:
            folder = vectors.write_vector_set(vs, vec_dir / vs.name)
            written += sorted(p for p in folder.iterdir())
            names.append(vs.name)
    missing = sorted(wanted - set(names))
    if missing:
        raise ConfigError(f"no vector set named {', '.join(missing)} in the layer sweep of "
                          f"'{cfg.name}' (known: {', '.join(c.name for c in vectors.sweep_cases(cfg))})")
    names.sort()
    put("run_hls.tcl", _run_hls_tcl(cfg, sources, headers, names))
    put("build_bd.tcl", _build_bd_tcl(cfg))
    # the reference RTL as a Vivado-only deliverable: its sources, the config's parameter
    # include, and the packaging script (same VLNV and register map as the HLS IP)
    from dgfpga.backends import rtl_sim
    rtl_files = list(rtl_sim.RTL_FILES) + sorted(p.name for p in rtl_sim.RTL.glob("*.svh"))
    for name in rtl_files:
        put(f"rtl/{name}", (rtl_sim.RTL / name).read_text())
    put(f"rtl/{rtl_sim.INCLUDE}", codegen.render(rtl_sim.INCLUDE_TEMPLATE, cfg,
                                                 f"engine config '{cfg.name}'",
                                                 "dgfpga.backends.hls_project"))
    put("package_rtl_ip.tcl", _package_rtl_ip_tcl(cfg, rtl_files + [rtl_sim.INCLUDE]))
    put("Makefile", _makefile(cfg))
    put("README.md", _readme(cfg, names))
    return sorted(written)
