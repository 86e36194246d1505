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
    want = {f"F_{f.name.upper()}": i for i, f in enumerate(F.DESCRIPTOR_FIELDS)}
    want["F_COUNT"] = len(F.DESCRIPTOR_FIELDS)
    assert numbers == want


def test_header_field_error_codes(header):
    err = _cpp_consts(_block(header, "namespace err {"))
    assert err == {name: code for code, name, _ in R.ERROR_CODES}
    body = _block(header, "constexpr uint32_t FIELD_ERROR[F_COUNT] = {")
    rows = re.findall(r"err::(\w+),\s*// (\w+)", body)
    assert [field for _, field in rows] == [f.name for f in F.DESCRIPTOR_FIELDS]
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
    assert c["DG_DESC_N_FIELDS"] == len(F.DESCRIPTOR_FIELDS)
    for i, f in enumerate(F.DESCRIPTOR_FIELDS):
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


def test_no_network_program_left():
    """The unused network-program format is gone from the contract and what it generates."""
    for name in ("PROGRAM_MAGIC", "NetworkProgram", "pack_program", "HostOp", "STEP_ENGINE"):
        assert not hasattr(F, name), name
    for path in (HEADER, SVH, codegen.REPO_ROOT / "docs" / "formats.md"):
        text = path.read_text()
        assert "PROGRAM_MAGIC" not in text and "network program" not in text.lower(), path
