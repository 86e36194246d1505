"""Register map: Vitis HLS ap_ctrl_hs layout, bit fields, STATUS and ENGINE_ID helpers."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from dgfpga.contract import regmap as R
from dgfpga.contract.engine_config import default_config, load_config
from dgfpga.errors import ConfigError
from dgfpga.contract.formats import FORMAT_VERSION


def test_control_block_is_vitis_ap_ctrl_hs():
    assert [(r.offset, r.name) for r in R.REGISTERS[:4]] == [
        (0x00, "CTRL"), (0x04, "GIE"), (0x08, "IER"), (0x0C, "ISR")]
    ctrl = {f.name: f.lsb for f in R.BY_NAME["CTRL"].fields}
    assert ctrl == {"AP_START": 0, "AP_DONE": 1, "AP_IDLE": 2, "AP_READY": 3, "AUTO_RESTART": 7}
    assert R.BY_NAME["CTRL"].reset == 0x4          # idle after reset
    assert R.REGISTERS[4].offset == 0x10


def test_vitis_argument_allocation():
    # 64-bit inputs: lo, hi, reserved; 32-bit inputs: data, reserved; outputs: data + ap_vld
    off = 0x10
    for a in R.ARGUMENTS:
        up = a.name.upper()
        if a.bits == 64:
            assert R.BY_NAME[f"{up}_LO"].offset == off
            assert R.BY_NAME[f"{up}_HI"].offset == off + 4
            tail, off = off + 8, off + 12
        else:
            assert R.BY_NAME[up].offset == off
            tail, off = off + 4, off + 8
        if a.direction == "out":
            ctl = R.BY_NAME[f"{up}_CTRL"]
            assert ctl.offset == tail and ctl.fields[0].name == "AP_VLD"
        else:
            assert all(r.offset != tail for r in R.REGISTERS)   # reserved word
    assert R.BY_NAME["PROGRAM_LO"].offset == 0x10 and R.BY_NAME["PROGRAM_HI"].offset == 0x14
    assert R.BY_NAME["LAYER_COUNT"].offset == 0x1C


def test_table_is_consistent():
    offs = [r.offset for r in R.REGISTERS]
    assert offs == sorted(offs) and len(set(offs)) == len(offs)
    assert all(o % 4 == 0 for o in offs)
    assert len({r.name for r in R.REGISTERS}) == len(R.REGISTERS)
    assert max(offs) < 2 ** R.ADDR_BITS
    for r in R.REGISTERS:
        assert r.width == 32 and r.access in ("RW", "RO") and r.meaning
        used = 0
        for f in r.fields:
            assert 0 <= f.lsb and f.lsb + f.width <= 32, (r.name, f.name)
            assert used & f.mask == 0, (r.name, f.name)
            used |= f.mask
    # every required register exists
    for name in ("PROGRAM_LO", "LAYER_COUNT", "FMAP_BASE_LO", "WEIGHT_BASE_LO", "WORK_BASE_LO",
                 "SUMS_BASE_LO", "STATUS", "CYCLES_LO", "CYCLES_HI", "ENGINE_ID_LO", "ENGINE_ID_HI"):
        assert name in R.BY_NAME


def test_error_codes_unique():
    codes = [c for c, _, _ in R.ERROR_CODES]
    names = [n for _, n, _ in R.ERROR_CODES]
    assert codes == sorted(set(codes)) and codes[0] == 0 and max(codes) < 256
    assert len(set(names)) == len(names)


@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 65535))
def test_status_round_trip(code, layer, entry):
    w = R.pack_status(code, layer, entry)
    assert 0 <= w < 2 ** 32
    assert R.unpack_status(w) == (code, layer, entry)
    fields = {f.name: (w & f.mask) >> f.lsb for f in R.STATUS_FIELDS}
    assert fields == {"CODE": code, "LAYER": layer, "ENTRY": entry}


def test_status_text():
    assert R.describe_status(0) == "OK"
    s = R.describe_status(R.pack_status(R.ERR["TILE_RANGE"], 2, 17))
    assert "TILE_RANGE" in s and "layer 2" in s and "entry 17" in s
    with pytest.raises(ValueError):
        R.pack_status(256)


def test_engine_id():
    u, s = default_config(), load_config("small")
    eid = R.engine_id(u)
    assert eid & 0xFFFFFFFF == u.config_hash
    assert (eid >> 32) & 0xFFFF == FORMAT_VERSION and eid >> 48 == R.ENGINE_MAGIC
    R.check_engine_id(eid, u)
    with pytest.raises(ConfigError, match="config hash"):
        R.check_engine_id(eid, s)
    with pytest.raises(ConfigError, match="magic"):
        R.check_engine_id(eid & ((1 << 48) - 1), u)
    with pytest.raises(ConfigError, match="format version"):
        R.check_engine_id(eid + (1 << 32), u)


def test_status_layout_is_the_documented_abi():
    """STATUS = code | layer << 8 | entry << 16 (docs/hls.md, the host and the RTL rely on
    it); the packers follow regmap.STATUS_FIELDS, so a moved field shows here."""
    assert R.pack_status(0xAB, 0xCD, 0x1234) == 0xAB | 0xCD << 8 | 0x1234 << 16
    assert R.unpack_status(0x1234CDAB) == (0xAB, 0xCD, 0x1234)
    with pytest.raises(ValueError, match="out of range"):
        R.pack_status(1, 256, 0)
    with pytest.raises(ValueError, match="out of range"):
        R.pack_status(1, 0, 1 << 16)


def test_field_lookup():
    # ap_ctrl_hs: start, done, idle are CTRL bits 0, 1, 2 (what the host driver polls)
    assert [R.field("CTRL", n).mask for n in ("AP_START", "AP_DONE", "AP_IDLE")] == [1, 2, 4]
    assert R.field("ENGINE_ID", "MAGIC").lsb == 48 and R.field("STATUS", "ENTRY").width == 16
    with pytest.raises(KeyError, match="no field"):
        R.field("CTRL", "NOPE")
