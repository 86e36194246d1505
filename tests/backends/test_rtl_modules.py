"""cocotb testbenches of the engine's building blocks (sim/tb/test_<module>.py), one per module."""
from __future__ import annotations

import pytest

from conftest import require_verilator

# (top, sources, cocotb test module, parameters)
CASES = [
    ("dg_axil_regs", ["dg_axil_regs.sv"], "test_dg_axil_regs", {}),
    ("dg_axi_rd", ["dg_axi_rd.sv"], "test_dg_axi_rd", {"DATA_W": 64, "MAX_BURST": 8}),
    ("dg_axi_rd", ["dg_axi_rd.sv"], "test_dg_axi_rd", {"DATA_W": 128, "MAX_BURST": 16}),
    ("dg_axi_wr", ["dg_fifo.sv", "dg_axi_wr.sv"], "test_dg_axi_wr", {"DATA_W": 64, "MAX_BURST": 8}),
    ("dg_mac_array", ["dg_mac_array.sv"], "test_dg_mac_array", {"TM": 4, "TN": 4, "TAG_W": 8}),
    ("dg_requant", ["dg_requant.sv"], "test_dg_requant", {"LANES": 4}),
    ("dg_desc_check", ["dg_desc_check.sv"], "test_dg_desc_check", {"AXI_BYTES": 8}),
]


@pytest.mark.verilator
@pytest.mark.parametrize("top,sources,module,params", CASES,
                         ids=[f"{c[0]}-{'-'.join(f'{k}{v}' for k, v in c[3].items()) or 'default'}"
                              for c in CASES])
def test_module(top, sources, module, params):
    require_verilator()
    from dgfpga.backends import rtl_sim
    res = rtl_sim.run_unit_test(top, sources, module, params)
    assert res["tests"] > 0, f"{module}: no cocotb test ran ({res['xml']})"
    assert not res["failures"], f"{module}: failed {res['failures']} (see {res['xml']})"
