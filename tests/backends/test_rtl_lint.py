"""The engine RTL is `verilator --lint-only -Wall` clean (sim/rtl), for every shipped config."""
from __future__ import annotations

import pytest

from conftest import require_verilator
from dgfpga.contract.engine_config import available_configs


@pytest.mark.verilator
@pytest.mark.parametrize("config", available_configs())
def test_engine_lint_clean(config):
    require_verilator()
    from dgfpga.backends import rtl_sim
    from dgfpga.contract.engine_config import load_config
    params = rtl_sim.rtl_parameters(load_config(config))
    clean, out = rtl_sim.lint([f"-G{k}={v}" for k, v in params.items()])
    assert clean, f"verilator -Wall reports for '{config}':\n{out}"


@pytest.mark.verilator
def test_illegal_parameters_stop_elaboration():
    """An illegal parameter combination is an elaboration $error, not a silent build."""
    require_verilator()
    from dgfpga.backends import rtl_sim
    clean, out = rtl_sim.lint(["-GTM=3"])
    assert not clean and "TM and TN must be powers of two" in out
