"""The board runtime on the RTL device: one whole network, every layer through the RTL."""
import numpy as np
import pytest

from conftest import require_verilator
from dgfpga_host.bundle import load_bundle
from dgfpga_host.runner import NetworkRunner


@pytest.mark.slow   # the runner on the RTL device runs by default in test_shipped_model_rtl_one_image
@pytest.mark.verilator
def test_runner_on_rtl_device_bit_exact(bundle_dir):
    require_verilator()
    from dgfpga_host.sim_devices import RtlDevice
    b = load_bundle(bundle_dir)
    dev = RtlDevice(b.cfg)
    runner = NetworkRunner(b, dev)
    r = runner.run_image(b.selfcheck.images[0])
    np.testing.assert_array_equal(r.logits_int, b.selfcheck.logits_int[0])
    for i in range(len(b.selfcheck.spatial)):
        np.testing.assert_array_equal(r.spatial[i], b.selfcheck.spatial[i][0])
    d = runner.run_image(b.selfcheck.images[0], dense=True)
    np.testing.assert_array_equal(d.logits_int, b.selfcheck.logits_int_dense[0])
    assert 0 < r.cycles < d.cycles
    assert dev.sim_cycles > d.cycles and dev.sim_wall_s > 0
