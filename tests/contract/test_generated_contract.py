"""The generated C header and SV include say what the Python contract says.

An independent check: the committed files are parsed as text (no re-rendering through
codegen) and their field numbers, per-field error codes, kernel constants and STATUS /
ENGINE_ID bit positions are compared with `formats` and `regmap`.
"""
from __future__ import annotations

import re

import pytest

from dgfpga.contract import codegen
from dgfpga.contract import formats as F
from dgfpga.contract import regmap as R

HEADER = codegen.REPO_ROOT / "hls" / "generated" / "dg_config.h"
SVH = codegen.REPO_ROOT / "sim" / "generated" / "dg_params.svh"


def _block(text: str, opener: str) -> str:
    """The text between `opener` (a line start) and the next line that closes it."""
    start = text.index(opener) + len(opener)
    end = re.compile(r"^(}|};)", re.M).search(text, start).start()
    return text[start:end]


def _int(v: str) -> int:
    v = v.rstrip("u")
    return int(v, 16) if v.lower().startswith("0x") else int(v)


@pytest.fixture(scope="module")
def header() -> str:
    return HEADER.read_text()


@pytest.fixture(scope="module")
def svh() -> str:
    return SVH.read_text()


def _cpp_consts(block: str) -> dict:
    pattern = r"constexpr (?:uint32_t|unsigned) (\w+) = (0x[0-9A-Fa-f]+u?|\d+u?);"
    return {m[1]: _int(m[2]) for m in re.finditer(pattern, block)}


def _sv_consts(text: str) -> dict:
    out = {}
    for m in re.finditer(r"localparam [^=]*?\b(DG_\w+)\s*(?:\[[^\]]*\])?\s*=\s*([^;]+);", text):
        v = m[2].strip()
        lit = re.fullmatch(r"(?:\d+)?'([hd])([0-9A-Fa-f_]+)", v)
        if lit:
            out[m[1]] = int(lit[2].replace("_", ""), 16 if lit[1] == "h" else 10)
        elif re.fullmatch(r"\d+", v):
            out[m[1]] = int(v)
        elif v in out:                      # a name defined earlier in the include
            out[m[1]] = out[v]
        elif v.startswith("'{"):
            out[m[1]] = tuple(int(x) for x in v[2:-1].split(","))
    return out


# ---- C header ----------------------------------------------------------------------------
def test_header_field_numbers(header):
    body = _block(header, "enum FieldNo : uint32_t {")
    numbers = {m[1]: int(m[2]) for m in re.finditer(r"(F_\w+) = (\d+)", body)}
    want = {f"F_{f.name.upper()}": i for i, f in enumerate(F.engine_fields("hls"))}
    want["F_COUNT"] = len(F.engine_fields("hls"))
    assert numbers == want


def test_header_field_error_codes(header):
    err = _cpp_consts(_block(header, "namespace err {"))
    assert err == {name: code for code, name, _ in R.ERROR_CODES}
    body = _block(header, "constexpr uint32_t FIELD_ERROR[F_COUNT] = {")
    rows = re.findall(r"err::(\w+),\s*// (\w+)", body)
    assert [field for _, field in rows] == [f.name for f in F.engine_fields("hls")]
    for code_name, field in rows:
        assert err[code_name] == R.ERR[F.FIELD_ERROR[field]], field
    # the groups the engine's checks rely on
    assert {e for n, e in F.FIELD_ERROR.items() if n.endswith("_offset")} == {"BAD_OFFSET"}
    assert F.FIELD_ERROR["k"] == F.FIELD_ERROR["stride"] == "BAD_OP"


def test_header_kernel_constants(header):
    fmt = _cpp_consts(_block(header, "namespace fmt {"))
    assert fmt["MAX_KERNEL"] == max(F.KERNELS) == 7
    assert fmt["MAX_KERNEL_TAPS"] == max(F.KERNELS) ** 2 == 49
    kernels = re.search(r"constexpr unsigned KERNELS\[N_KERNELS\] = \{([^}]*)\};", header)[1]
    assert tuple(int(k) for k in kernels.split(",")) == F.KERNELS
    assert fmt["N_KERNELS"] == len(F.KERNELS)
    strides = re.search(r"constexpr unsigned STRIDES\[N_STRIDES\] = \{([^}]*)\};", header)[1]
    assert tuple(int(s) for s in strides.split(",")) == F.STRIDES
    assert fmt["LIST_ENTRY_BITS"] == 8 * F.LIST_ENTRY_BYTES == 16
    assert fmt["BITMAP_WORD_BITS"] == 8 * F.BITMAP_WORD_BYTES == 32


def test_header_status_and_engine_id_bits(header):
    reg = _cpp_consts(_block(header, "namespace reg {"))
    for f in R.STATUS_FIELDS:
        assert (reg[f"STATUS_{f.name}_LSB"], reg[f"STATUS_{f.name}_WIDTH"]) == (f.lsb, f.width)
        assert reg[f"STATUS_{f.name}_MASK"] == ((1 << f.width) - 1) << f.lsb
    for f in R.ENGINE_ID_FIELDS:
        n = f"ENGINE_ID_{f.name}"
        assert (reg[f"{n}_LSB"], reg[f"{n}_WIDTH"]) == (f.lsb, f.width)
    # the Python packers put the fields where the header says
    code, layer, entry = 9, 200, 0xBEEF
    word = (code << reg["STATUS_CODE_LSB"]) | (layer << reg["STATUS_LAYER_LSB"]) \
        | (entry << reg["STATUS_ENTRY_LSB"])
    assert R.pack_status(code, layer, entry) == word
    assert R.unpack_status(word) == (code, layer, entry)


# ---- SV include --------------------------------------------------------------------------
def test_svh_fields_errors_and_kernels(svh):
    c = _sv_consts(svh)
    assert c["DG_DESC_N_FIELDS"] == len(F.engine_fields("rtl"))
    for i, f in enumerate(F.engine_fields("rtl")):
        n = f.name.upper()
        assert (c[f"DG_DESC_{n}_WORD"], c[f"DG_DESC_{n}_LSB"], c[f"DG_DESC_{n}_WIDTH"]) == \
            (f.word, f.lsb, f.width), f.name
        assert c[f"DG_DESC_{n}_NO"] == i, f.name
        assert c[f"DG_DESC_{n}_ERR"] == R.ERR[F.FIELD_ERROR[f.name]], f.name
    for code, name, _ in R.ERROR_CODES:
        assert c[f"DG_ERR_{name}"] == code
    assert c["DG_MAX_KERNEL"] == max(F.KERNELS)
    assert c["DG_MAX_KERNEL_TAPS"] == max(F.KERNELS) ** 2
    assert c["DG_KERNELS"] == F.KERNELS and c["DG_STRIDES"] == F.STRIDES
    assert c["DG_LIST_ENTRY_BITS"] == 16 and c["DG_BITMAP_WORD_BITS"] == 32
    for f in R.STATUS_FIELDS:
        assert (c[f"DG_REG_STATUS_{f.name}_LSB"], c[f"DG_REG_STATUS_{f.name}_WIDTH"]) == \
            (f.lsb, f.width)
    for f in R.ENGINE_ID_FIELDS:
        assert (c[f"DG_REG_ENGINE_ID_{f.name}_LSB"], c[f"DG_REG_ENGINE_ID_{f.name}_WIDTH"]) == \
            (f.lsb, f.width)
    assert c["DG_ENGINE_MAGIC"] == R.ENGINE_MAGIC


def test_no_old_program_format_left():
    """The old host-step program format (PROGRAM_MAGIC, host ops) is gone; the network
    program of records (dgfpga.contract.program) replaced it."""
    for name in ("PROGRAM_MAGIC", "NetworkProgram", "pack_program", "HostOp", "STEP_ENGINE"):
        assert not hasattr(F, name), name
    for path in (HEADER, SVH, codegen.REPO_ROOT / "docs" / "formats.md"):
        text = path.read_text()
        assert "PROGRAM_MAGIC" not in text and "STEP_ENGINE" not in text, path


# ---- network program records (gate, head) and their constants ----------------------------
from dgfpga.contract import program as P   # noqa: E402


def _namespace(text: str, ns: str) -> str:
    start = text.index(f"namespace {ns} {{")
    return text[start:text.index(f"}}  // namespace {ns}", start)]


@pytest.mark.parametrize("ns, fields, errors", [("gate", P.GATE_FIELDS, P.GATE_FIELD_ERROR),
                                                ("head", P.HEAD_FIELDS, P.HEAD_FIELD_ERROR)])
def test_header_record_fields(header, ns, fields, errors):
    body = _namespace(header, ns)
    decl = {m[1]: (int(m[2]), int(m[3]), int(m[4])) for m in
            re.finditer(r"constexpr Field (\w+) = \{(\d+), (\d+), (\d+)\};", body)}
    assert decl == {f.name: (f.word, f.lsb, f.width) for f in fields}
    numbers = {m[1]: int(m[2]) for m in re.finditer(r"(F_\w+) = (\d+)", body)}
    want = {f"F_{f.name.upper()}": i for i, f in enumerate(fields)}
    assert numbers == dict(want, F_COUNT=len(fields))
    err = _cpp_consts(_block(header, "namespace err {"))
    rows = re.findall(r"err::(\w+),\s*// (\w+)", body)
    assert [f for _, f in rows] == [f.name for f in fields]
    for code_name, f in rows:
        assert err[code_name] == R.ERR[errors[f]], f


def test_svh_record_fields(svh):
    c = _sv_consts(svh)
    for pre, fields, errors in (("GATE", P.GATE_FIELDS, P.GATE_FIELD_ERROR),
                                ("HEAD", P.HEAD_FIELDS, P.HEAD_FIELD_ERROR)):
        assert c[f"DG_{pre}_N_FIELDS"] == len(fields)
        for i, f in enumerate(fields):
            n = f"DG_{pre}_{f.name.upper()}"
            assert (c[f"{n}_WORD"], c[f"{n}_LSB"], c[f"{n}_WIDTH"], c[f"{n}_NO"]) == \
                (f.word, f.lsb, f.width, i), f.name
            assert c[f"{n}_ERR"] == R.ERR[errors[f.name]], f.name
    for i, (name, dt, count, _) in enumerate(P.GATE_PARAM_SECTIONS):
        assert c[f"DG_GATE_P_{name.upper()}"] == i
        assert c[f"DG_GATE_P_{name.upper()}_ELEM_BYTES"] == int(dt[-1])
        assert re.search(rf"DG_GATE_P_{name.upper()}: return {re.escape(count)};", svh)


def test_program_constants_in_both_includes(header, svh):
    fmt = _cpp_consts(_block(header, "namespace fmt {"))
    c = _sv_consts(svh)
    want = {"OP_CONV": P.OP_CONV, "OP_GATE": P.OP_GATE, "OP_HEAD": P.OP_HEAD,
            "RUN_DENSE": P.RUN_DENSE, "MAX_CLASSES": P.MAX_CLASSES,
            "GATE_FRAC_BITS": 8, "GATE_RECIP_BITS": 24, "GATE_WEIGHT_MAX": 32767,
            "GATE_HIDDEN_MAX": 32767, "GATE_SHIFT_MAX": 62, "GATE_RECIP_MAX": 1 << 24,
            "GATE_FIRST_RESERVED_WORD": 14, "HEAD_FIRST_RESERVED_WORD": 7,
            "GATE_FLAGS_WORD": 4, "FORMAT_VERSION": 3}
    for n, v in want.items():
        assert fmt[n] == v and c[f"DG_{n}"] == v, n
    assert re.search(r"constexpr uint64_t GATE_BIAS_LIMIT = 0x400000000000ull;", header)
    assert c["DG_GATE_BIAS_LIMIT"] == 1 << 46
    reg = _cpp_consts(_block(header, "namespace reg {"))
    assert reg["RUN_FLAGS"] == R.BY_NAME["RUN_FLAGS"].offset and reg["RUN_FLAGS_DENSE_LSB"] == 0
    assert c["DG_REG_RUN_FLAGS"] == R.BY_NAME["RUN_FLAGS"].offset
    assert c["DG_ERR_BAD_GATE"] == R.ERR["BAD_GATE"] == 15


def test_header_param_count_compiles_to_the_python_layout(tmp_path):
    """The generated C++ gate::param_count / head::param_bias_offset, compiled, give the
    Python layout (gate_param_layout, head_param_layout)."""
    import shutil
    import subprocess
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    cases = [(16, 16, 4, 8, 8), (5, 7, 3, 3, 2), (512, 512, 128, 7, 7)]
    src = ['#include "dg_config.h"', "#include <cstdio>", "int main() {"]
    for in_c, out_c, hid, gh, gw in cases:
        src.append(f"  for (unsigned s = 0; s < dg::gate::P_COUNT; ++s) std::printf(\"%u %u \", "
                   f"dg::gate::param_count(s, {in_c}, {out_c}, {hid}, {gh}, {gw}), "
                   f"dg::gate::PARAM_ELEM_BYTES[s]);")
        src.append('  std::printf("\\n");')
    src.append('  std::printf("%u\\n", dg::head::param_bias_offset(9, 10, 16));')
    src.append("  return 0;\n}")
    (tmp_path / "t.cpp").write_text("\n".join(src))
    subprocess.run([cxx, "-std=c++14", "-I", str(HEADER.parent), "t.cpp", "-o", "t"],
                   cwd=tmp_path, check=True)
    out = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    sizes = {"u1": 1, "<u4": 4, "<i2": 2, "<i8": 8, "<i4": 4}
    for line, (in_c, out_c, hid, gh, gw) in zip(out, cases):
        vals = list(map(int, line.split()))
        lay = P.gate_param_layout(in_c, out_c, hid, gh, gw, 16)
        assert vals[0::2] == [lay.counts[n] for n in P.GATE_PARAM_NAMES]
        assert vals[1::2] == [sizes[t] for _, t, _, _ in P.GATE_PARAM_SECTIONS]
    assert int(out[len(cases)]) == P.head_param_layout(9, 10, 16).bias
