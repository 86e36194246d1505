"""cocotb testbenches of the engine's building blocks (sim/tb/test_<module>.py), one per module.

The four engine modules (dg_sequencer, dg_loader, dg_compute, dg_writeback) are tested in the
engine (top dg_engine, sim/tb/dg_module_env.py): each test observes only its module's ports
and checks them against an independent reference."""
from __future__ import annotations

import re

import pytest

from pathlib import Path

from conftest import require_verilator

from dgfpga.backends.rtl_sim import RTL_FILES

ENGINE = list(RTL_FILES)
SKEW = str(Path(__file__).resolve().parent / "configs" / "skew.toml")
NODW = str(Path(__file__).resolve().parent / "configs" / "small_nodw.toml")

# (top, sources, cocotb test module, parameters[, config (default small)])
CASES = [
    ("dg_axil_regs", ["dg_axil_regs.sv"], "test_dg_axil_regs", {}),
    ("dg_axi_rd", ["dg_burst_plan.sv", "dg_axi_rd.sv"], "test_dg_axi_rd", {"DATA_W": 64, "MAX_BURST": 8}),
    ("dg_axi_rd", ["dg_burst_plan.sv", "dg_axi_rd.sv"], "test_dg_axi_rd", {"DATA_W": 128, "MAX_BURST": 16}),
    ("dg_axi_wr", ["dg_fifo.sv", "dg_burst_plan.sv", "dg_axi_wr.sv"], "test_dg_axi_wr", {"DATA_W": 64, "MAX_BURST": 8}),
    # the head from the memory and from the head register (the loader's span / pending FIFOs)
    ("dg_fifo", ["dg_fifo.sv"], "test_dg_fifo", {"WIDTH": 8, "DEPTH": 4, "HEAD_REG": 0}),
    ("dg_fifo", ["dg_fifo.sv"], "test_dg_fifo", {"WIDTH": 8, "DEPTH": 4, "HEAD_REG": 1}),
    ("dg_mac_array", ["dg_mac_array.sv"], "test_dg_mac_array", {"TM": 4, "TN": 4, "TAG_W": 8}),
    # odd lane count (TM = 1: one packed multiply with a zero low weight) and a wide array
    ("dg_mac_array", ["dg_mac_array.sv"], "test_dg_mac_array", {"TM": 1, "TN": 2, "TAG_W": 8}),
    ("dg_mac_array", ["dg_mac_array.sv"], "test_dg_mac_array", {"TM": 16, "TN": 8, "TAG_W": 8}),
    # depthwise by lane parity (LP, ultra96's layout): a pair's DSP n computes tap n of its low
    # lane through A or of its high lane through D, the B operand whole from the caller
    ("dg_mac_array", ["dg_mac_array.sv"], "test_dg_mac_array",
     {"TM": 2, "TN": 8, "TAG_W": 8, "TPS": 4, "LP": 1}),
    ("dg_requant", ["dg_requant.sv"], "test_dg_requant", {"LANES": 4}),
    # time-shared (the engine's RQ_SHARE): 2 lanes of multipliers per phase, 4 phases
    ("dg_requant", ["dg_requant.sv"], "test_dg_requant", {"LANES": 8, "SHARE": 4}),
    ("dg_desc_check", ["dg_desc_check.sv"], "test_dg_desc_check", {}),
    ("dg_desc_check", ["dg_desc_check.sv"], "test_dg_desc_check", {}, SKEW),
    # without the depthwise hardware: op 5 is BAD_OP at the op word (test_depthwise_feature)
    ("dg_desc_check", ["dg_desc_check.sv"], "test_dg_desc_check", {}, NODW),
] + [("dg_engine", ENGINE, f"test_dg_{m}", {}) for m in ("sequencer", "loader", "compute", "writeback")]




def _case_id(c) -> str:
    return ((c[2][5:] if c[0] == "dg_engine" else
             f"{c[0]}-{'-'.join(f'{k}{v}' for k, v in c[3].items()) or 'default'}")
            + ("-" + Path(c[4]).stem.replace("small_", "") if len(c) > 4 else ""))


# variants whose building block the default suite also runs in another variant and inside the
# engine on `small` (each is a Verilator build of its own: -m slow runs them)
SLOW_CASES = {"dg_axi_rd-DATA_W64-MAX_BURST8", "dg_requant-LANES4", "dg_desc_check-default-skew"}


@pytest.mark.verilator
@pytest.mark.parametrize("case", [pytest.param(c, id=_case_id(c), marks=[pytest.mark.slow]
                                               if _case_id(c) in SLOW_CASES else [])
                                  for c in CASES])
def test_module(case):
    require_verilator()
    from dgfpga.backends import rtl_sim
    top, sources, module, params = case[:4]
    cfg = case[4] if len(case) > 4 else "small"
    res = rtl_sim.run_unit_test(top, sources, module, params, cfg=cfg)
    assert res["tests"] > 0, f"{module}: no cocotb test ran ({res['xml']})"
    assert not res["failures"], f"{module}: failed {res['failures']} (see {res['xml']})"


# dg_mac_array's `ifdef SYNTHESIS branch: the DSP48E2 cells (pre-adder packing, PCIN cascade)
# that the open-synthesis netlist is built from. The simulation builds above run its
# behavioural model; this build runs the synthesis branch itself against a DSP48E2 model of
# the subset it uses (sim/tb/dsp48e2_model.sv, from UG579) in place of the black-box stub the
# synthesis front end reads.


@pytest.mark.verilator
@pytest.mark.parametrize("tm,tn,extra", [
    (4, 4, {}), (4, 4, {"TPS": 3, "LP": 1}),
    pytest.param(16, 8, {}, marks=pytest.mark.slow),
    pytest.param(16, 16, {}, marks=pytest.mark.slow),
    pytest.param(16, 16, {"TPS": 9, "LP": 1}, marks=pytest.mark.slow)])
def test_mac_array_synthesis_branch(tm, tn, extra):
    """The array as a vendor flow compiles it (SYNTHESIS and DG_VENDOR_PRIMITIVES defined,
    as package_rtl_ip.tcl sets them: the DSP48E2 instances, the RTL's own black box off) with
    the DSP48E2 model as the primitive, against the cocotb test of the behavioural array."""
    require_verilator()
    from dgfpga.backends import rtl_sim
    text = (rtl_sim.RTL / "dg_mac_array.sv").read_text()
    assert re.search(r"`ifdef SYNTHESIS\n`ifndef DG_VENDOR_PRIMITIVES\n(//.*\n)*\(\* blackbox \*\)\n"
                     r"module DSP48E2\n", text), \
        "dg_mac_array.sv: the DSP48E2 black box is not under SYNTHESIS and not DG_VENDOR_PRIMITIVES"
    assert "DSP48E2 #(" in text, "dg_mac_array.sv: no DSP48E2 instance in the synthesis branch"
    res = rtl_sim.run_unit_test("dg_mac_array", [str(rtl_sim.TB / "dsp48e2_model.sv"), "dg_mac_array.sv"],
                                "test_dg_mac_array", {"TM": tm, "TN": tn, "TAG_W": 8, **extra},
                                build_args=["-DSYNTHESIS", "-DDG_VENDOR_PRIMITIVES"])
    assert res["tests"] > 0, f"no cocotb test ran ({res['xml']})"
    assert not res["failures"], f"synthesis branch failed {res['failures']} (see {res['xml']})"


@pytest.mark.verilator
@pytest.mark.parametrize("params", [{"LANES": 4}, pytest.param({"LANES": 8, "SHARE": 4},
                                                                marks=pytest.mark.slow)])
def test_requant_synthesis_branch(params):
    """The requantizer as a vendor flow compiles it: its sum z = acc*mult + res*res_mult + rnd
    as a chain of six DSP48E2 cells per lane (the partial sums in the cells' post-adders and
    cascade; Yosys packs no adder into a DSP48E2 itself), simulated with the DSP48E2 model
    against the cocotb test of the behavioural requantizer."""
    require_verilator()
    from dgfpga.backends import rtl_sim
    text = (rtl_sim.RTL / "dg_requant.sv").read_text()
    assert "DSP48E2 #(" in text, "dg_requant.sv: no DSP48E2 instance in the synthesis branch"
    res = rtl_sim.run_unit_test("dg_requant", [str(rtl_sim.TB / "dsp48e2_model.sv"), "dg_requant.sv"],
                                "test_dg_requant", params,
                                build_args=["-DSYNTHESIS", "-DDG_VENDOR_PRIMITIVES"])
    assert res["tests"] > 0, f"no cocotb test ran ({res['xml']})"
    assert not res["failures"], f"synthesis branch failed {res['failures']} (see {res['xml']})"
