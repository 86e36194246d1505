"""The engine RTL is `verilator --lint-only -Wall` clean for every shipped config and the
pairwise-skewed test config, and it takes its configuration only from the generated include."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import require_verilator
from dgfpga.contract.engine_config import available_configs

SKEW = Path(__file__).resolve().parent / "configs" / "skew.toml"
RTL = Path(__file__).resolve().parents[2] / "sim" / "rtl"


@pytest.mark.verilator
@pytest.mark.parametrize("config", available_configs() + [str(SKEW)],
                         ids=available_configs() + ["skew"])
def test_engine_lint_clean(config):
    require_verilator()
    from dgfpga.backends import rtl_sim
    clean, out = rtl_sim.lint(config)
    assert clean, f"verilator -Wall reports for '{config}':\n{out}"


@pytest.mark.verilator
def test_illegal_config_stops_elaboration(tmp_path):
    """An include with an illegal value (TM = 3) is an elaboration $error, not a silent build."""
    require_verilator()
    from dgfpga.backends import rtl_sim
    from dgfpga.contract.engine_config import load_config
    inc = rtl_sim.config_include(load_config("small"))
    text = (inc / rtl_sim.INCLUDE).read_text()
    bad, n = re.subn(r"localparam int unsigned DG_TM = \d+;", "localparam int unsigned DG_TM = 3;", text)
    assert n == 1
    (tmp_path / rtl_sim.INCLUDE).write_text(bad)
    clean, out = rtl_sim.lint("small", include_dir=tmp_path)
    assert not clean and "TM and TN must be powers of two" in out


def test_rtl_has_no_configuration_parameters():
    """No engine module declares a configuration value of its own: limits, buffer sizes and
    the config hash are only the generated DG_ constants (a hand default would silently win
    over the config the RTL is built for)."""
    names = ("TM", "TN", "MAX_TILE", "MAX_GRID", "MAX_WIDTH", "MAX_HEIGHT", "MAX_IN", "MAX_OUT",
             "MAX_IN_CHANNELS", "MAX_OUT_CHANNELS", "MAX_LAYERS", "WBUF_BYTES", "IFM_BYTES",
             "OFM_BYTES", "WEIGHT_BUFFER_BYTES", "IFM_BUFFER_BYTES", "OFM_BUFFER_BYTES",
             "CONFIG_HASH", "AXI_DATA_W", "AXI_DATA_BITS")
    bad = []
    for f in sorted(RTL.glob("*.sv")):
        for m in re.finditer(r"(?:parameter|localparam)\s+(?:int\s+unsigned|int|logic\s*\[[^\]]*\])\s+"
                             r"(\w+)\s*=\s*([^,;\n]+)", f.read_text()):
            name, value = m.group(1), m.group(2)
            if name in names and "DG_" not in value:
                bad.append(f"{f.name}: {name} = {value.strip()}")
            if re.fullmatch(r"(?:32'h)?[0-9A-Fa-f]{8}", value.strip()):
                bad.append(f"{f.name}: {name} = {value.strip()} (a hash?)")
    assert not bad, bad
