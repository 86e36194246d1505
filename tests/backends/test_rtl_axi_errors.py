"""AXI error responses (STATUS code AXI_ERROR) on the engine's three AXI channels.

The fast harness's memory model (sim/tb/dg_axi_mem.sv) answers SLVERR on every beat of a read
burst of one port covering a given byte (`FastSim.run(rd_err=(port, region, offset))`), or on
the B response of a write burst covering it (`wr_err=(region, offset)`), during the first
start; `starts=2` runs a second start of the same program and memory image in the same
simulation, as the host does after a fault (no reset: the sequencer clears the masters'
sticky error flags at ap_start, sim/rtl/dg_sequencer.sv).

What the engine does (and these tests hold): the master that saw the error flags it; the
layer running when the response arrived runs to its end, then the sequencer drains both
masters and ends the start with STATUS = AXI_ERROR, layer = that record, entry 0 (so the
errored start is never longer than a clean one, plus one cycle); the next start is bit-exact
and takes the cycles of a start of its own. Port 0 (m_axi_gmem) reads descriptors, patches,
residuals, gate sums and the gate / head parameters; port 1 (m_axi_gmem_w) the conv weights
and requantizer parameters only.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import ROOT, require_verilator

sys.path.insert(0, str(ROOT / "sim" / "tb"))



def _axi_error(layer: int) -> int:
    from dgfpga.contract import regmap
    return regmap.pack_status(regmap.ERR["AXI_ERROR"], layer, 0)


def _mem(vs) -> dict:
    return {k: np.array(v, np.uint8) for k, v in vs.before.items()}


def _check_error_then_clean(sim, vs, clean, want_status: int, stall_pct: int = 0, **err) -> None:
    """First start with the error: STATUS `want_status` (0: the error is never hit), no hang,
    not longer than the clean start (+1: the error state); second start: the clean start's
    STATUS, cycles and memory, and the set's expected image."""
    from dgfpga.backends.vectors import compare_expected
    run = sim.run(vs.program, vs.layer_count, _mem(vs), run_flags=vs.run_flags, starts=2,
                  stall_pct=stall_pct, timeout_cycles=2 * clean.cycles + 1000, **err)
    assert len(run.previous) == 1, "the errored start hung (timeout before the second start)"
    first = run.previous[0]
    assert not first["timeout"]
    assert first["status"] == want_status, (hex(first["status"]), hex(want_status))
    assert first["cycles"] <= clean.cycles + 1, (first["cycles"], clean.cycles)
    assert not run.timeout and run.status == clean.status == vs.expected_status
    assert run.cycles == clean.cycles, (run.cycles, clean.cycles)
    for r in run.regions:
        assert np.array_equal(run.regions[r], clean.regions[r]), f"second start: {r} differs"
    assert not compare_expected(vs, run.regions)


@pytest.fixture(scope="module")
def chain():
    """`small` and the four-layer chain (extra vectors: conv layers ping-ponging between
    FMAP+8 and FMAP+1040, weights at WEIGHT+0, requantizer parameters at WEIGHT+2304)."""
    require_verilator()
    from dgfpga.backends import rtl_sim
    from dgfpga.contract.engine_config import load_config
    import dg_extra_vectors
    cfg = load_config("small")
    vs = next(v for v in dg_extra_vectors.extra_vector_sets(cfg) if v.name == "chain_4_layers")
    with rtl_sim.FastSim(cfg) as sim:
        clean = {s: sim.run(vs.program, vs.layer_count, _mem(vs), stall_pct=s) for s in (0, 30)}
        assert all(c.status == 0 for c in clean.values())
        yield sim, vs, clean


DESC = 96                                        # bytes per record (4 records, 384 bytes)
CHAIN_CASES = {
    # m_axi_gmem_w: the weight span every layer reads: the first layer reports it
    "weight_port_weights": ({"rd_err": (1, "weight", 64)}, 0),
    "weight_port_requant_params": ({"rd_err": (1, "weight", 2304)}, 0),
    # m_axi_gmem: layer 1's input patch (layer 0's output), layer 2's descriptor, the last
    # layer's descriptor (the error reported after its layer: one cycle over the clean start)
    "data_port_patch": ({"rd_err": (0, "fmap", 1040 + 64)}, 1),
    "data_port_descriptor": ({"rd_err": (0, "program", 2 * DESC + 8)}, 2),
    "data_port_last_descriptor": ({"rd_err": (0, "program", 3 * DESC + 8)}, 3),
    # a write: layer 1's output (layer 0 reads that buffer, layer 1 writes it)
    "write": ({"wr_err": ("fmap", 8 + 64)}, 1),
    # the other port's addresses: never an error
    "weights_not_on_data_port": ({"rd_err": (0, "weight", 64)}, None),
    "patch_not_on_weight_port": ({"rd_err": (1, "fmap", 1040 + 64)}, None),
}


@pytest.mark.verilator
@pytest.mark.parametrize("stall", [0, 30], ids=["ideal", "stall30"])
@pytest.mark.parametrize("case", list(CHAIN_CASES))
def test_axi_error_chain(chain, case, stall):
    """An SLVERR on each channel ends the start with AXI_ERROR and the failing layer; the next
    start (no reset) is bit-exact, with the cycles of a clean start (also under 30 % stalls:
    the second start sees the memory model's stall stream from its beginning)."""
    sim, vs, clean = chain
    err, layer = CHAIN_CASES[case]
    _check_error_then_clean(sim, vs, clean[stall], 0 if layer is None else _axi_error(layer),
                            stall_pct=stall, **err)


@pytest.mark.verilator
def test_two_clean_starts_are_two_single_starts(chain):
    """`starts=2` without an error: both starts are the single start (cycles, STATUS,
    breakdown; the memory after the second)."""
    sim, vs, clean = chain
    run = sim.run(vs.program, vs.layer_count, _mem(vs), starts=2, stall_pct=30)
    first = run.previous[0]
    assert first["status"] == run.status == 0
    assert first["cycles"] == run.cycles == clean[30].cycles
    assert first["breakdown"] == run.breakdown == clean[30].breakdown
    for r in run.regions:
        assert np.array_equal(run.regions[r], clean[30].regions[r])


@pytest.mark.verilator
def test_error_injection_arguments(chain):
    from dgfpga.backends.rtl_sim import RtlSimError
    sim, vs, _ = chain
    for kw in ({"rd_err": (2, "fmap", 0)}, {"rd_err": (0, "nowhere", 0)}, {"wr_err": ("x", 0)},
               {"starts": 0}):
        with pytest.raises(RtlSimError):
            sim.run(vs.program, vs.layer_count, _mem(vs), **kw)


# ---- a whole network program (resdg20 on small, one start, 31 records)

@pytest.fixture(scope="module")
def net(shipped_qmodel):
    require_verilator()
    from dgfpga.backends import rtl_sim, vectors
    from dgfpga.contract import formats, program as prog
    from dgfpga.contract.engine_config import load_config
    from dgfpga.data import embedded as data
    from dgfpga.runtime.packer import plan_network
    cfg = load_config("small")
    qm = shipped_qmodel
    plan = plan_network(qm, cfg)
    vs = next(iter(vectors.network_program_vectors(qm, data.load_split("test", 1).images, cfg,
                                                   dense=False, plan=plan)))
    d = len(plan.program) // plan.record_count

    def record(k: int):
        raw = plan.program[k * d:(k + 1) * d]
        kind = plan.records[k].kind
        if kind == "gate":
            return kind, prog.unpack_gate_record(raw, cfg)
        if kind == "head":
            return kind, prog.unpack_head_record(raw, cfg)
        return kind, formats.unpack_descriptor(raw, cfg)
    with rtl_sim.FastSim(cfg, mem_bytes=sum(plan.region_bytes.values()) + len(plan.program)
                         + 6 * 4096) as sim:
        clean = sim.run(vs.program, vs.layer_count, _mem(vs), run_flags=vs.run_flags)
        assert clean.status == 0
        yield sim, vs, clean, record


def _first(record, kinds, start: int = 1) -> int:
    k = start
    while record(k)[0] not in kinds:
        k += 1
    return k


NET_CASES = {
    # (error from the record, the record's kind(s), the record to search from)
    "weight_span_of_a_conv": (lambda r: {"rd_err": (1, "weight", r.weight_offset + 512)},
                              ("conv1",), 3),
    "weight_span_of_a_downsample": (lambda r: {"rd_err": (1, "weight", r.weight_offset + 64)},
                                    ("downsample",), 1),
    "gate_sums_read": (lambda r: {"rd_err": (0, "sums", r.sums_offset + 64)}, ("gate",), 12),
    "gate_params_read": (lambda r: {"rd_err": (0, "weight", r.param_offset + 64)}, ("gate",), 12),
    "residual_read": (lambda r: {"rd_err": (0, "fmap", r.res_offset + 256)}, ("conv2",), 12),
    "conv_output_write": (lambda r: {"wr_err": ("fmap", r.out_offset + 256)}, ("conv2",), 12),
    "mask_write": (lambda r: {"wr_err": ("work", r.mask_offset)}, ("gate",), 4),
    "head_logits_write": (lambda r: {"wr_err": ("work", r.logits_offset)}, ("head",), 1),
}


@pytest.mark.verilator
@pytest.mark.parametrize("case", [
    "weight_span_of_a_conv",
    *(pytest.param(c, marks=pytest.mark.slow) for c in NET_CASES if c != "weight_span_of_a_conv")])
def test_axi_error_network(net, case):
    """resdg20's network program: an SLVERR in a record's own traffic (a conv's or a
    downsample's weight span, a gate's sums or parameters, a residual read, a conv output,
    a gate's masks, the head's logits) reports AXI_ERROR at that record; the next start is
    the clean start, bit for bit and cycle for cycle."""
    sim, vs, clean, record = net
    make, kinds, start = NET_CASES[case]
    k = _first(record, kinds, start)
    _check_error_then_clean(sim, vs, clean, _axi_error(k), **make(record(k)[1]))


@pytest.mark.verilator
@pytest.mark.slow
def test_cocotb_weight_port_slverr(tmp_path):
    """cocotb + cocotbext-axi: the weight port's AxiRamRead answering SLVERR (its read raising,
    sim/tb/test_dg_engine.py ErrRamRead) ends the start with AXI_ERROR at layer 0; the next
    start, no reset in between, is bit-exact."""
    require_verilator()
    from dgfpga.backends import rtl_sim
    from dgfpga.backends.vectors import write_vector_set
    from dgfpga.contract.engine_config import load_config
    import dg_extra_vectors
    cfg = load_config("small")
    vs = next(v for v in dg_extra_vectors.extra_vector_sets(cfg) if v.name == "chain_4_layers")
    res = rtl_sim.run_cocotb_axi_error(cfg, write_vector_set(vs, tmp_path / vs.name),
                                       "weight", 64)
    assert [r["armed"] for r in res] == [True, False]
    first, second = res
    assert not first["timeout"] and first["status"] == _axi_error(0), first
    assert not second["timeout"] and second["status"] == 0, second
    assert all(second[r]["mismatches"] == 0 for r in ("fmap", "sums") if r in second), second
    assert first["cycles"] <= second["cycles"] + 1
