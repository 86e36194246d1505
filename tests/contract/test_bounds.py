"""Exact range boundaries of the contract: the last value in, the first value out.

The limits come from the hardware field widths (8-bit grid/layer, 16-bit ENTRY) and the
documented ranges (1 MHz..1 GHz, the five AXI widths); the numbers below are written out by
hand so that an off-by-one in a bound (``<=`` vs ``<``, 255 vs 256) fails a test.
"""
from __future__ import annotations

import dataclasses

import pytest

from dgfpga.contract import regmap as R
from dgfpga.contract.engine_config import config_from_dict, load_config
from dgfpga.errors import ConfigError


def _small(**change):
    """`small` with fields changed, checked field by field (`fit=False`: whether such an
    engine fits its part is the resource estimate's question, tested below and in
    tests/perf/test_resources*)."""
    return config_from_dict(dataclasses.asdict(load_config("small")) | change, fit=False)


def test_a_valid_field_can_still_not_fit_the_part():
    """max_in_channels 65535 is a valid field, but the gate unit's spatial-tap banks for
    that many channels (4 lanes x 3 x 16384 entries) do not fit the ZU3EG: refused by the
    estimate, naming them."""
    data = dataclasses.asdict(load_config("small")) | {
        "max_in_channels": 65535, "weight_buffer_bytes": 2 * 4 * 65535 + 8}
    with pytest.raises(ConfigError, match="BRAM36 .* > 216 .*spatial taps"):
        config_from_dict(data)
    assert config_from_dict(data, fit=False).max_in_channels == 65535


@pytest.mark.parametrize("field, inside, outside", [
    ("max_grid", [1, 255], [0, 256]),
    ("clock_hz", [1_000_000, 1_000_000_000], [999_999, 1_000_000_001]),
    ("max_layers", [3, 255], [0, 2, 256]),
    ("max_width", [1, 65535], [0, 65536]),
    ("max_height", [1, 65535], [0, 65536]),
    ("axi_data_bits", [32, 64, 128, 256, 512], [16, 48, 1024]),
])
def test_engine_config_range_edges(field, inside, outside):
    for v in inside:
        assert getattr(_small(**{field: v}), field) == v
    for v in outside:
        with pytest.raises(ConfigError, match=rf"{field} must be .*got {v}$"):
            _small(**{field: v})


def test_axi_bytes_follows_the_data_width():
    assert [_small(axi_data_bits=b).axi_bytes for b in (32, 64, 128, 256, 512)] == [4, 8, 16, 32, 64]


@pytest.mark.parametrize("field", ["name", "part"])
def test_string_fields_must_be_non_empty_strings(field):
    with pytest.raises(ConfigError, match=f"{field} must be a non-empty string"):
        _small(**{field: ""})
    with pytest.raises(ConfigError, match=f"{field} must be a non-empty string"):
        _small(**{field: 7})


@pytest.mark.parametrize("code, layer, entry, word", [
    (255, 0, 0, 0x000000FF),
    (0, 255, 0, 0x0000FF00),
    (0, 0, 65535, 0xFFFF0000),
    (255, 255, 65535, 0xFFFFFFFF),
    (0, 0, 0, 0),
])
def test_status_word_edges(code, layer, entry, word):
    assert R.pack_status(code, layer, entry) == word
    assert R.unpack_status(word) == (code, layer, entry)


@pytest.mark.parametrize("args", [(256, 0, 0), (0, 256, 0), (0, 0, 65536), (-1, 0, 0),
                                  (0, -1, 0), (0, 0, -1)])
def test_status_fields_out_of_range_are_refused(args):
    with pytest.raises(ValueError, match="status fields out of range"):
        R.pack_status(*args)


def test_status_defaults_are_zero():
    assert R.pack_status(7) == 7 and R.pack_status(7, 3) == 7 | 3 << 8
    assert R.STATUS_ENTRY_MAX == 65535


@pytest.mark.parametrize("max_grid, tiles, words", [
    (1, 1, 1), (4, 16, 1), (8, 64, 2), (9, 81, 3), (255, 65025, 2033),
])
def test_bitmap_words_hold_one_bit_per_tile_and_no_more(max_grid, tiles, words):
    """ceil(tiles / 32) 32-bit words: a full last word gets no spare one (64 tiles: 2)."""
    cfg = _small(max_grid=max_grid)
    assert cfg.max_tiles == tiles and cfg.bitmap_words == words


def test_one_wide_mac_array_is_a_power_of_two():
    """tm = tn = 1 (2^0) is a valid, if slow, engine; 0 and 3 are not."""
    assert (_small(tm=1, tn=1).tm, _small(tm=1, tn=1).tn) == (1, 1)
    for bad in (0, 3):
        with pytest.raises(ConfigError, match="tm must be a power of two"):
            _small(tm=bad)


@pytest.mark.parametrize("n_tiles, stray, entry", [(5, 5, 5), (5, 7, 7), (9, 15, 9 + 6)])
def test_bitmap_bit_past_the_tiles_reports_that_bit(n_tiles, stray, entry):
    """The first set bit at or past n_tiles is the fault's ENTRY (its bit number)."""
    from dgfpga.contract import formats as F
    from dgfpga.errors import FormatError
    nb = F.bitmap_bytes(n_tiles)
    data = bytearray(nb)
    data[stray // 8] |= 1 << (stray % 8)
    with pytest.raises(FormatError, match=f"bit {entry} set past the {n_tiles} tiles") as exc:
        F.unpack_bitmap(bytes(data), n_tiles)
    assert exc.value.entry == entry and exc.value.code == "BITMAP_MISMATCH"
    data[stray // 8] = 0
    data[0] = 1                                     # bit 0, a real tile: fine
    assert F.unpack_bitmap(bytes(data), n_tiles).tolist() == [True] + [False] * (n_tiles - 1)
