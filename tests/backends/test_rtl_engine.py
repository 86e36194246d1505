"""The engine RTL against the shared vector sets, bit for bit (FMAP, SUMS, STATUS).

Two harnesses: the cocotb testbench (cocotbext-axi AxiRam, optional back-pressure) and
the fast stand-alone Verilator harness (dgfpga.backends.rtl_sim.FastSim, SV memory model).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, require_verilator

sys.path.insert(0, str(ROOT / "sim" / "tb"))

COCOTB_SUBSET = ["dense_3x3_s1_edge_tiles", "stem_7x7_s2_maxpool", "conv1_gated_half",
                 "conv2_identity_in_place", "conv2_downsample_res_only", "fault_bitmap_mismatch",
                 "im2col_stem_7x7_s2_maxpool"]


@pytest.fixture(scope="module")
def vector_dirs(tmp_path_factory):
    from dgfpga.contract.engine_config import load_config
    from dgfpga.backends.vectors import write_sweep
    import dg_extra_vectors
    cfg = load_config("small")
    out = tmp_path_factory.mktemp("rtl_vectors")
    sweep = write_sweep(out / "sweep", cfg)
    extra = dg_extra_vectors.write_extra(out / "extra", cfg)
    return {p.name: p for p in sweep + extra}


@pytest.mark.verilator
def test_cocotb_engine_subset(vector_dirs):
    """cocotb + AxiRam: a cross-section of the sweep (every layer kind, one fault)."""
    require_verilator()
    from dgfpga.backends import rtl_sim
    from dgfpga.contract.engine_config import load_config
    res = rtl_sim.run_cocotb(load_config("small"), [vector_dirs[n] for n in COCOTB_SUBSET])
    bad = [(r["name"], r.get("status"), r["expected_status"]) for r in res if not r["pass"]]
    assert len(res) == len(COCOTB_SUBSET) and not bad, bad
    for r in res:
        assert r["engine_id"] >> 48 == 0xD6E0 and r["irq_after_clear"] == 0
        assert r["ctrl_after_read"] & 0x2 == 0, "ap_done clears on read"


@pytest.mark.verilator
def test_cocotb_engine_backpressure(vector_dirs):
    """Same results with AR/R/AW/W stalls (AxiRam pause generators); stalls cost cycles."""
    require_verilator()
    from dgfpga.backends import rtl_sim
    from dgfpga.contract.engine_config import load_config
    names = ["conv1_gated_s2", "conv2_edge_tiles_odd"]
    cfg = load_config("small")
    free = rtl_sim.run_cocotb(cfg, [vector_dirs[n] for n in names], stall="none")
    stalled = rtl_sim.run_cocotb(cfg, [vector_dirs[n] for n in names], stall="heavy")
    assert all(r["pass"] for r in free + stalled), [(r["name"], r["pass"]) for r in free + stalled]
    assert all(s["cycles"] > f["cycles"] for f, s in zip(free, stalled))


@pytest.fixture(scope="module")
def fast_sim():
    require_verilator()
    from dgfpga.backends import rtl_sim
    return rtl_sim.FastSim("small")


@pytest.mark.verilator
def test_fast_all_vectors(vector_dirs, fast_sim):
    """Every sweep and extra vector set on the fast harness: bit-exact memory and STATUS."""
    from dgfpga.backends import rtl_sim
    bad = []
    for name, folder in sorted(vector_dirs.items()):
        r = rtl_sim.run_fast(folder, sim=fast_sim)
        if not r["pass"]:
            bad.append((name, hex(r["status"]), hex(r["expected_status"]), r["fmap_mismatches"],
                        r["sums_mismatches"], r["timeout"]))
    assert not bad, bad


@pytest.mark.verilator
def test_fast_latency_and_stalls(vector_dirs, fast_sim):
    """Memory latency and random stalls change cycles, never results."""
    from dgfpga.backends import rtl_sim
    base = rtl_sim.run_fast(vector_dirs["conv2_identity_in_place"], sim=fast_sim)
    slow = rtl_sim.run_fast(vector_dirs["conv2_identity_in_place"], sim=fast_sim, latency=40,
                            stall_pct=30)
    assert base["pass"] and slow["pass"]
    assert slow["cycles"] > base["cycles"]


@pytest.mark.verilator
def test_mac_utilisation_3x3(vector_dirs, fast_sim):
    """Dense and gated 3x3 layers keep the MAC array busy (>= 0.85 of the cycles)."""
    from dgfpga.backends import rtl_sim
    from dgfpga.contract.engine_config import load_config
    cfg = load_config("small")
    for name in ("dense_3x3_s1", "conv1_gated_all", "conv2_identity_in_place", "wide_channels"):
        r = rtl_sim.run_fast(vector_dirs[name], sim=fast_sim)
        util = r["macs"] / cfg.macs_per_cycle / r["cycles"]
        assert r["pass"] and util >= 0.85, (name, util)


MID128 = """name = "mid128"
board = "Ultra96-V2"
part = "xczu3eg-sbva484-1-e"
clock_hz = 100_000_000
part_dsp = 360
part_bram36 = 216
[array]
tm = 8
tn = 8
[limits]
max_tile = 4
max_grid = 8
max_width = 32
max_height = 32
max_in_channels = 64
max_out_channels = 64
max_layers = 4
[buffers]
weight_buffer_bytes = 9216
ifm_buffer_bytes = 4608
ofm_buffer_bytes = 2592
[widths]
axi_data_bits = 128
"""


SKEW = Path(__file__).resolve().parent / "configs" / "skew.toml"


@pytest.mark.slow          # a Verilator build of its own; the skew config's lint runs by default
@pytest.mark.verilator
def test_fast_skew_config(tmp_path):
    """The shared sweep, bit-exact, on a config whose limits differ pairwise (tm != tn,
    width != height, in != out channels, three distinct buffer sizes, a 128-bit bus): a
    limit or buffer size swapped anywhere between the TOML and the RTL shows up here or in
    the skew dg_desc_check boundary test (tests/backends/test_rtl_modules.py)."""
    require_verilator()
    from dgfpga.backends import rtl_sim
    from dgfpga.contract.engine_config import load_config
    from dgfpga.backends.vectors import write_sweep
    cfg = load_config(SKEW)
    sizes = (cfg.max_in_channels, cfg.max_out_channels, cfg.max_width, cfg.max_height, cfg.tm,
             cfg.tn, cfg.weight_buffer_bytes, cfg.ifm_buffer_bytes, cfg.ofm_buffer_bytes)
    assert len({cfg.max_in_channels, cfg.max_out_channels}) == 2 and cfg.max_width != cfg.max_height
    assert cfg.tm != cfg.tn and len(set(sizes[-3:])) == 3, sizes
    sim = rtl_sim.FastSim(cfg)
    res = [rtl_sim.run_fast(p, sim=sim) for p in write_sweep(tmp_path / "v", cfg)]
    bad = [(r["name"], hex(r["status"]), hex(r["expected_status"]), r["fmap_mismatches"])
           for r in res if not r["pass"]]
    assert len(res) >= 20 and not bad, bad
    assert sum(r["expected_status"] != 0 for r in res) >= 5     # the fault cases ran too


@pytest.mark.slow
@pytest.mark.verilator
def test_fast_other_config(tmp_path):
    """The RTL is parameterised, not tuned to `small`: Tm = Tn = 8, a 128-bit bus."""
    require_verilator()
    from dgfpga.backends import rtl_sim
    from dgfpga.contract.engine_config import load_config
    from dgfpga.backends.vectors import write_sweep
    path = tmp_path / "mid128.toml"
    path.write_text(MID128)
    cfg = load_config(path)
    sim = rtl_sim.FastSim(cfg)
    bad = [r["name"] for r in (rtl_sim.run_fast(p, sim=sim) for p in write_sweep(tmp_path / "v", cfg))
           if not r["pass"]]
    assert not bad, bad


@pytest.mark.verilator
def test_fast_contract_corners(fast_sim, tmp_path):
    """The validity corners (docs/formats.md: zero_halo extent, NO_FIT over all TM lanes, a
    negative multiplier; network programs with gate / head records, valid and malformed,
    gated and dense) agree with the interpreter on the RTL, as on the C-sim: STATUS and
    every region the set expects (WORK too; the cycle log is an ignore range)."""
    from dgfpga.backends import rtl_sim, vectors
    from dgfpga.contract.engine_config import load_config
    sets = vectors.contract_corners(load_config("small"))
    assert {"corner_zero_halo_off_grid", "corner_no_fit_all_lanes",
            "corner_negative_mult"} <= {v.name for v in sets}
    neg = next(v for v in sets if v.name == "corner_negative_mult")
    assert neg.expected_status == 0 and not np.array_equal(neg.expected["fmap"], neg.before["fmap"])
    bad = []
    for vs in sets:
        r = rtl_sim.run_fast(vectors.write_vector_set(vs, tmp_path / vs.name), sim=fast_sim)
        if not r["pass"]:
            bad.append((vs.name, hex(r["status"]), hex(r["expected_status"]),
                        {k: v for k, v in r.items() if k.endswith("_mismatches")}))
    assert not bad, bad


def _with_reference(vs, name: str, before: dict, run_flags: int):
    """`vs` with other memory / RUN_FLAGS, its expected memory and STATUS from the interpreter."""
    import dataclasses
    from dgfpga.contract.engine_config import load_config
    from dgfpga.runtime.interpreter import run_program
    ref = {r: v.copy() for r, v in before.items()}
    res = run_program(vs.program, vs.layer_count, ref, load_config(vs.config), run_flags=run_flags)
    return dataclasses.replace(vs, name=name, before={r: v.copy() for r, v in before.items()},
                               expected={r: ref[r] for r in ("fmap", "work", "sums")},
                               expected_status=res.status, run_flags=run_flags, ignore=[])


@pytest.mark.verilator
def test_fast_bottleneck_vectors():
    """The shared Bottleneck vectors on the RTL, bit for bit (STATUS and every region the set
    expects; the cycle log is an ignore range): `vectors.bottleneck_program_vectors` (a
    two-block Bottleneck program in ONE start: gate record, conv1 with compact output and
    compact sums, gate-2 record, projection, conv2 3x3/s2 gated on both sides with zero_halo,
    conv3 + residual; 2 images gated and dense) and `vectors.bottleneck_corners` (every
    gate-2 record check, its code and ENTRY). Two orderings the corners leave out, against the
    interpreter: a padding bit in the masks the record reads AND a bad R(H*W) (the parameter
    check wins), and the same padding bit and a bad b2 under RUN_FLAGS.DENSE (the checks are
    the same)."""
    require_verilator()
    from dgfpga.backends import rtl_sim, vectors
    from dgfpga.contract import program as prog
    from dgfpga.contract import regmap
    from dgfpga.contract.engine_config import load_config
    cfg = load_config(vectors.BOTTLENECK_CONFIG)
    sets = vectors.bottleneck_program_vectors(cfg) + vectors.bottleneck_corners(cfg)
    by = {vs.name: vs for vs in sets}
    pad = by["corner_gate2_in_mask_padding"]
    k = next(i for i in range(pad.layer_count)
             if prog.record_op(pad.program[i * 96:(i + 1) * 96]) == prog.OP_GATE2)
    r2 = prog.unpack_gate2_record(pad.program[k * 96:(k + 1) * 96], cfg)
    lay = prog.gate2_param_layout(r2.in_c, r2.out_c, r2.hidden, cfg.axi_bytes)
    both = {r: v.copy() for r, v in pad.before.items()}
    both["weight"][r2.param_offset + lay.offsets["recip"]:][:4] = 0
    b2 = {r: v.copy() for r, v in pad.before.items()}
    o = r2.param_offset + lay.offsets["b2"] + 8 * (r2.out_c - 1)
    b2["weight"][o:o + 8] = np.frombuffer(np.array([prog.GATE_BIAS_LIMIT], "<i8").tobytes(), np.uint8)
    extra = [_with_reference(pad, "gate2_padding_and_recip", both, 0),
             _with_reference(pad, "gate2_padding_dense", pad.before, prog.RUN_DENSE),
             _with_reference(pad, "gate2_padding_and_b2_dense", b2, prog.RUN_DENSE)]
    want = {"gate2_padding_and_recip": (regmap.ERR["BAD_GATE"], k, 0),
            "gate2_padding_dense": (regmap.ERR["BAD_GATE"], k, prog.GATE2_IN_MASK_WORD),
            "gate2_padding_and_b2_dense": (regmap.ERR["BAD_GATE"], k, r2.out_c - 1)}
    for vs in extra:
        assert tuple(regmap.unpack_status(vs.expected_status)) == want[vs.name], vs.name
    assert sum(vs.name.startswith("bottleneck_") for vs in sets) == 4
    assert sum(vs.name.startswith("corner_gate2_") for vs in sets) >= 20
    mem = max(sum(v.size for v in vs.before.values()) + len(vs.program) for vs in sets + extra)
    sim = rtl_sim.FastSim(cfg, mem_bytes=mem + 6 * 4096)
    bad = []
    for vs in sets + extra:
        r = rtl_sim.run_fast(vs, sim=sim)
        if not r["pass"]:
            bad.append((vs.name, regmap.describe_status(r["status"]),
                        regmap.describe_status(r["expected_status"]),
                        {k2: v for k2, v in r.items() if k2.endswith("_mismatches") and v}))
    assert not bad, bad


def _stem_cycles(cfg_name: str, arch: str) -> dict:
    """The stem layer with and without im2col on the fast harness: bit-exact both ways;
    {im2col: (cycles, MACs / (cycles x tm x tn))}."""
    from dgfpga.backends import rtl_sim, vectors
    from dgfpga.contract.engine_config import load_config
    cfg = load_config(cfg_name)
    out, sim = {}, None
    for flag in (False, True):
        vs = vectors.build_layer_case(vectors.stem_case(arch, flag), cfg)
        if sim is None:
            sim = rtl_sim.FastSim(cfg, mem_bytes=sum(v.size for v in vs.before.values())
                                  + len(vs.program) + 8 * 4096)
        r = rtl_sim.run_fast(vs, sim=sim)
        assert r["pass"], (flag, r)
        out[flag] = (r["cycles"], r["macs"] / (r["cycles"] * cfg.tm * cfg.tn))
    return out


@pytest.mark.verilator
def test_im2col_cifar_stem_cycles():
    """small (4x4), the CIFAR stem: ceil(27/4) = 7 instead of 9 array steps per pixel;
    measured: the cycles follow the steps and the array stays busy (>= 0.9 of the cycles)."""
    require_verilator()
    c = _stem_cycles("small", "cifar")
    assert c[True][0] < c[False][0] * 7 / 9 * 1.02, c
    assert c[True][1] >= 0.9, c


@pytest.mark.slow
@pytest.mark.verilator
def test_im2col_imagenet_stem_cycles_ultra96():
    """ultra96 (16x16), the ResNet-18 stem 7x7/s2 + max-pool: 10 instead of 49 steps."""
    require_verilator()
    c = _stem_cycles("ultra96", "imagenet")
    assert c[True][0] * 3.5 < c[False][0], c


@pytest.mark.slow           # ~700k cycles on the ultra96 build, plus resdg18's calibration vectors
@pytest.mark.verilator
def test_the_layer_ends_after_its_last_writes_under_stalls():
    """resdg18's `layer4.1.conv2` (dense) on ultra96 with 80 cycles of read latency and 30 %
    stalls: the write-back's last pixel and sums packets were still on their way into their
    queues (a registered push) in the cycle after the last tile record popped, the write-back
    looked idle, and the layer ended (done) before those writes: the last fmap beat was never
    written. Bit-exact with every region written now, at this and a neighbouring setting."""
    require_verilator()
    from dgfpga.backends import rtl_sim
    from dgfpga.contract.engine_config import load_config
    from dgfpga.perf import calibration
    cfg = load_config("ultra96")
    item = next(it for it in calibration.calibration_layers(cfg, "resdg18", densities=(None,))
                if it["name"] == "layer4.1.conv2.dense")
    vs = item["vector"]
    with rtl_sim.FastSim(cfg) as sim:
        for latency, stall in ((80, 30), (40, 30)):
            run = sim.run(vs.program, 1, vs.before, latency=latency, stall_pct=stall)
            assert not run.timeout and run.status == vs.expected_status
            for r in ("fmap", "sums"):
                bad = np.flatnonzero(run.regions[r] != vs.expected[r])
                assert bad.size == 0, (latency, stall, r, bad[:8])
