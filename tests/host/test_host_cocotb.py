"""The board runtime inside the cocotb simulation of the RTL (bridged blocking calls)."""
import pytest

from conftest import require_verilator


@pytest.mark.slow          # ~2 min: the default suite runs the runner on the RTL's fast harness
@pytest.mark.verilator
def test_runner_inside_cocotb_bit_exact(bundle_dir):
    """One self-check image, gated and dense: NetworkRunner -> cocotb bridge ->
    AxiLiteMaster/AxiRam -> the RTL, compared with the golden model's outputs."""
    require_verilator()
    from dgfpga.contract.engine_config import load_config
    from dgfpga.backends.rtl_sim import run_host_cocotb
    res = run_host_cocotb(bundle_dir, load_config("small"), images=1)
    assert len(res) == 1
    r = res[0]
    assert r["gated_ok"] and r["dense_ok"], r
    assert 0 < r["gated_cycles"] < r["dense_cycles"]
    assert r["gated_macs"] < r["dense_macs"]
