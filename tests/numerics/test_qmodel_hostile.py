"""Hostile `.qnpz` files: every one is refused with a FormatError naming the file and the
problem, before anything large is decompressed or parsed (peak memory measured with
tracemalloc, which sees numpy's and Python's allocations). See docs/qmodel.md."""
from __future__ import annotations

import json
import struct
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy

from dgfpga.errors import FormatError
from dgfpga.numerics import qmodel
from dgfpga.numerics.qmodel import HEADER_KEY, _digest, load_qmodel, save_qmodel, to_arrays

from test_qmodel import tiny_qmodel  # noqa: E402 (tests/numerics is on sys.path)

MiB = 2 ** 20
VICTIM = "fc.bias"                     # int32 [10] in the tiny model


def _arrays_and_header():
    arrays = to_arrays(tiny_qmodel())
    return arrays, json.loads(arrays.pop(HEADER_KEY).tobytes())


def _zip(path, arrays, header=None, raw_header=None, special=None,
         compression=zipfile.ZIP_STORED):
    """Write a .qnpz by hand. `special[name](f)` writes member `name` itself."""
    special = special or {}
    raw = raw_header if raw_header is not None else json.dumps(header).encode()
    members = {HEADER_KEY: np.frombuffer(raw, np.uint8), **arrays}
    with zipfile.ZipFile(path, "w", compression) as zf:
        for k, v in members.items():
            with zf.open(k + ".npy", "w", force_zip64=True) as f:
                if k in special:
                    special[k](f)
                else:
                    npy.write_array(f, v, allow_pickle=False)
    return path


def _zeros_member(n, preamble_shape):
    """A member: an honest uint8 [n] (or the given) .npy preamble, then n zero bytes."""
    def write(f):
        npy.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False,
                                       "shape": preamble_shape})
        chunk, left = bytes(MiB), n
        while left:
            f.write(chunk[:min(left, MiB)])
            left -= min(left, MiB)
    return write


def _peak(fn):
    """(exception raised by fn, peak traced bytes while it ran)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
    except Exception as exc:  # noqa: BLE001
        err = exc
    else:
        err = None
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return err, peak


def test_zip_bomb_member_is_refused_from_the_directory(tmp_path):
    """A member whose JSON entry is int32 [10] but holds 64 MiB of zeros (64 KiB deflated):
    refused from the zip directory's size, with nothing decompressed."""
    arrays, header = _arrays_and_header()
    n = 64 * MiB
    p = _zip(tmp_path / "bomb.qnpz", arrays, header, compression=zipfile.ZIP_DEFLATED,
             special={VICTIM: _zeros_member(n, (n,))})
    assert p.stat().st_size < 2 * MiB
    err, peak = _peak(lambda: load_qmodel(p))
    assert isinstance(err, FormatError) and str(p) in str(err)
    assert "array fc.bias: the zip directory says" in str(err) and "int32 [10]" in str(err)
    assert peak < 2 * MiB, f"peak {peak} bytes"


def test_lying_zip_directory_stops_at_the_declared_size(tmp_path):
    """The directory entry is patched to the declared size while the deflate stream holds
    64 MiB: the read stops at the declared size (CRC error), memory stays small."""
    arrays, header = _arrays_and_header()
    n = 64 * MiB
    p = _zip(tmp_path / "lie.qnpz", arrays, header, compression=zipfile.ZIP_DEFLATED,
             special={VICTIM: _zeros_member(n, (10,))})
    raw = bytearray(p.read_bytes())
    name, pos, patched = (VICTIM + ".npy").encode(), 0, 0
    while (j := raw.find(b"PK\x01\x02", pos)) >= 0:
        nlen = struct.unpack_from("<H", raw, j + 28)[0]
        if raw[j + 46:j + 46 + nlen] == name:
            struct.pack_into("<L", raw, j + 24, 128 + 40)
            patched += 1
        pos = j + 4
    assert patched == 1
    p.write_bytes(bytes(raw))
    err, peak = _peak(lambda: load_qmodel(p))
    assert isinstance(err, FormatError) and str(p) in str(err)
    assert "Bad CRC-32 for file 'fc.bias.npy'" in str(err)
    assert peak < 2 * MiB, f"peak {peak} bytes"


def test_header_declaring_more_than_the_cap_is_refused_before_reading(tmp_path, monkeypatch):
    arrays, header = _arrays_and_header()
    n = 8 * MiB
    header["arrays"][VICTIM] = {"dtype": "uint8", "shape": [n], "sha256": "0" * 64}
    p = _zip(tmp_path / "big.qnpz", arrays, header, compression=zipfile.ZIP_DEFLATED,
             special={VICTIM: _zeros_member(n, (n,))})
    err, peak = _peak(lambda: load_qmodel(p, max_bytes=4 * MiB))
    assert isinstance(err, FormatError)
    assert "bytes of arrays, more than the 4194304-byte limit" in str(err)
    assert peak < 2 * MiB
    monkeypatch.setenv(qmodel.MAX_BYTES_ENV, str(4 * MiB))          # the override
    with pytest.raises(FormatError, match="4194304-byte limit.*DGFPGA_QMODEL_MAX_BYTES"):
        load_qmodel(p)
    monkeypatch.setenv(qmodel.MAX_BYTES_ENV, "lots")
    with pytest.raises(FormatError, match="not a positive integer"):
        load_qmodel(p)
    monkeypatch.setenv(qmodel.MAX_BYTES_ENV, str(64 * MiB))        # under the cap: read, and
    with pytest.raises(FormatError, match="SHA-256 mismatch"):      # caught by its digest
        load_qmodel(p)


def test_default_cap_is_documented_value():
    assert qmodel.max_array_bytes() == qmodel.MAX_ARRAY_BYTES == 256 * MiB


def test_file_larger_than_the_cap_is_refused_from_its_size(tmp_path):
    p = save_qmodel(tiny_qmodel(), tmp_path / "m.qnpz")
    with pytest.raises(FormatError, match="more than the .*-byte limit"):
        load_qmodel(p, max_bytes=-(qmodel.MAX_HEADER_BYTES + 16 * MiB))
    assert load_qmodel(p, max_bytes=p.stat().st_size).arch == "tiny_test"


def test_npy_preamble_disagreeing_with_the_header_is_refused(tmp_path):
    arrays, header = _arrays_and_header()
    p = _zip(tmp_path / "x.qnpz", arrays, header,
             special={VICTIM: _zeros_member(40, (40,))})       # same size, other dtype/shape
    with pytest.raises(FormatError, match=r"array fc\.bias: the file holds uint8 \[40\], the "
                                          r"header lists int32 \[10\]"):
        load_qmodel(p)


def test_trailing_bytes_in_a_member_are_refused(tmp_path):
    arrays, header = _arrays_and_header()

    def write(f):
        npy.write_array(f, arrays[VICTIM], allow_pickle=False)
        f.write(bytes(64))
    p = _zip(tmp_path / "x.qnpz", arrays, header, special={VICTIM: write})
    with pytest.raises(FormatError, match=r"array fc\.bias: member size"):
        load_qmodel(p)


def _with_meta(tmp_path, meta_json: str):
    arrays, header = _arrays_and_header()
    raw = json.dumps(header).encode()
    raw = raw.replace(b'"meta": {"note": "hand-built"}', b'"meta": ' + meta_json.encode())
    assert b"hand-built" not in raw
    return _zip(tmp_path / "m.qnpz", arrays, raw_header=raw)


@pytest.mark.parametrize("meta,match", [
    ("[" * 100_000 + "]" * 100_000, "nested deeper than 32 levels"),
    ('{"a": ' + "[" * 33 + "]" * 33 + "}", "nested deeper than 32 levels"),
    ('{"n": ' + "9" * 100_000 + "}", "integer with 100000 digits"),
    ('{"n": -' + "1" * 25 + "}", "integer with 25 digits"),
    ('{"x": NaN}', "NaN is not allowed"),
    ('{"x": -Infinity}', "-Infinity is not allowed"),
])
def test_hostile_json_is_refused_before_or_while_parsing(tmp_path, meta, match):
    p = _with_meta(tmp_path, meta)
    t = time.monotonic()
    with pytest.raises(FormatError, match=match) as err:
        load_qmodel(p)
    assert str(p) in str(err.value) and time.monotonic() - t < 2


@pytest.mark.parametrize("meta", [
    '{"a": ' + "[" * 30 + "]" * 30 + "}",        # 31 levels with the root: allowed
    '{"n": ' + "9" * 24 + ', "s": "[[[[{{{{\\"' + "[" * 40 + '"}',   # brackets in strings
])
def test_json_within_the_limits_loads(tmp_path, meta):
    assert load_qmodel(_with_meta(tmp_path, meta)).meta == json.loads(meta)


def test_header_over_its_size_limit(tmp_path, monkeypatch):
    p = save_qmodel(tiny_qmodel(), tmp_path / "m.qnpz")
    monkeypatch.setattr(qmodel, "MAX_HEADER_BYTES", 1000)
    with pytest.raises(FormatError, match="__header__: .* exceeds the 1000-byte limit"):
        load_qmodel(p)
    qm = tiny_qmodel()
    qm.meta = {"pad": "x" * 2000}
    with pytest.raises(FormatError, match="header: .* exceeds the 1000-byte limit"):
        save_qmodel(qm, tmp_path / "big.qnpz")


def test_member_count_is_checked_from_the_end_record(tmp_path, monkeypatch):
    p = save_qmodel(tiny_qmodel(), tmp_path / "m.qnpz")
    monkeypatch.setattr(qmodel, "MAX_MEMBERS", 5)
    n = len(to_arrays(tiny_qmodel()))
    with pytest.raises(FormatError, match=rf"the zip lists {n} members \(limit 5\)"):
        load_qmodel(p)


def test_disallowed_compression_encryption_and_duplicates(tmp_path):
    arrays, header = _arrays_and_header()
    p = _zip(tmp_path / "bz.qnpz", arrays, header, compression=zipfile.ZIP_BZIP2)
    with pytest.raises(FormatError, match="compression method 12 is not allowed"):
        load_qmodel(p)
    p = _zip(tmp_path / "dup.qnpz", arrays, header)
    with zipfile.ZipFile(p, "a") as zf, pytest.warns(UserWarning, match="Duplicate"):
        zf.writestr(VICTIM + ".npy", b"x")
    with pytest.raises(FormatError, match="two members with the same name"):
        load_qmodel(p)


@pytest.mark.parametrize("spec,match", [
    ({"dtype": "object", "shape": [10]}, "dtype 'object' is not one of"),
    ({"dtype": "S40", "shape": [1]}, "dtype 'S40' is not one of"),
    ({"dtype": "int32", "shape": [-10]}, "shape .* non-negative integers"),
    ({"dtype": "int32", "shape": [True]}, "shape .* non-negative integers"),
    ({"dtype": "int32", "shape": [1] * 9}, "shape .* at most 8"),
    ({"dtype": "int32", "shape": "10"}, "shape '10'"),
    ("int32", "dtype 'int32'"),
])
def test_array_table_entries_are_checked(tmp_path, spec, match):
    arrays, header = _arrays_and_header()
    header["arrays"][VICTIM] = spec
    with pytest.raises(FormatError, match=match):
        load_qmodel(_zip(tmp_path / "t.qnpz", arrays, header))


def test_fortran_order_and_deflated_files_still_load(tmp_path):
    arrays, header = _arrays_and_header()
    w = np.asfortranarray(arrays["b0.conv1.weight"])
    assert not w.flags.c_contiguous
    arrays["b0.conv1.weight"] = w
    p = _zip(tmp_path / "f.qnpz", arrays, header, compression=zipfile.ZIP_DEFLATED)
    back = load_qmodel(p)
    np.testing.assert_array_equal(back.blocks[0].conv1.weight, w)
    assert _digest(back.blocks[0].conv1.weight) == header["arrays"]["b0.conv1.weight"]["sha256"]
    assert back.blocks[0].conv1.weight.flags.writeable


def test_writer_refuses_non_finite_header_values(tmp_path):
    qm = tiny_qmodel()
    qm.meta = {"stat": float("nan")}
    with pytest.raises(FormatError, match="NaN or infinite"):
        save_qmodel(qm, tmp_path / "nan.qnpz")
    assert not (tmp_path / "nan.qnpz").exists()


# The integer gates' arrays and the shift (docs/qmodel.md "Integer gates"): each hostile
# value is refused with a FormatError naming the entry; none reaches the gate arithmetic.
def _set(name, value):
    return lambda a, h: a.update({name: value})


def _gate_field(arrays, name, fn):
    v = arrays[name].copy()
    fn(v)
    arrays[name] = v


@pytest.mark.parametrize("mutate,match", [
    # dtypes (a wider dtype would be converted silently by the constructors)
    (_set("b0.mask_s.weight", np.zeros((8, 3, 3), np.int32)), r"b0\.mask_s\.weight: expected int16"),
    (_set("b0.mask_s.bias", np.zeros(1, np.float64)), r"b0\.mask_s\.bias: expected int64"),
    (_set("b0.mask_c.w1", np.zeros((2, 8), np.int64)), r"b0\.mask_c\.w1: expected int16"),
    (_set("b0.mask_c.m1", np.zeros(2, np.int64)), r"b0\.mask_c\.m1: expected int32"),
    (_set("b0.mask_c.o1", np.zeros(2, np.int32)), r"b0\.mask_c\.o1: expected int64"),
    (_set("b0.mask_c.w2", np.zeros((8, 2), np.float32)), r"b0\.mask_c\.w2: expected int16"),
    (_set("b0.mask_c.b2", np.zeros(8, np.uint64)), r"b0\.mask_c\.b2: expected int64"),
    # shapes
    (_set("b0.mask_s.weight", np.zeros((8, 3, 4), np.int16)), r"b0\.mask_s"),
    (_set("b0.mask_s.weight", np.zeros((7, 3, 3), np.int16)), r"b0\.mask_s\.weight: shape"),
    (_set("b0.mask_s.bias", np.zeros(2, np.int64)), r"b0\.mask_s\.bias: expected int64 \[1\]"),
    (_set("b0.mask_c.m1", np.zeros(3, np.int32)), r"b0\.mask_c: channel gate m1: shape"),
    (lambda a, h: a.update({"b0.mask_c.w1": np.zeros((9, 8), np.int16),
                            "b0.mask_c.m1": np.zeros(9, np.int32),
                            "b0.mask_c.o1": np.zeros(9, np.int64),
                            "b0.mask_c.w2": np.zeros((8, 9), np.int16)}), r"hidden <= 8"),
    (lambda a, h: a.update({"b0.mask_c.w2": np.zeros((7, 2), np.int16),
                            "b0.mask_c.b2": np.zeros(7, np.int64)}), r"b0\.mask_c\.w2: shape"),
    (_set("b0.mask_c.b2", np.zeros(9, np.int64)), r"b0\.mask_c: channel gate b2: shape"),
    # ranges
    (lambda a, h: _gate_field(a, "b0.mask_s.weight", lambda v: v.__setitem__((0, 0, 0), -32768)),
     r"b0\.mask_s: .*weight: values must lie in \[-32767, 32767\]"),
    (lambda a, h: _gate_field(a, "b0.mask_c.w2", lambda v: v.__setitem__((1, 1), -32768)),
     r"b0\.mask_c: .*w2: values must lie"),
    (_set("b0.mask_s.bias", np.array([2 ** 46], np.int64)), r"b0\.mask_s: .*bias"),
    (_set("b0.mask_s.bias", np.array([-2 ** 46], np.int64)), r"b0\.mask_s: .*bias"),
    (_set("b0.mask_c.o1", np.array([0, 2 ** 46], np.int64)), r"b0\.mask_c: .*o1"),
    (_set("b0.mask_c.b2", np.full(8, -2 ** 63, np.int64)), r"b0\.mask_c: .*b2"),
    (_set("b0.mask_c.m1", np.array([-2 ** 31, 0], np.int32)), r"b0\.mask_c: .*m1"),
    (lambda a, h: h["blocks"][0].update(mask_c_shift=0), r"shift: 0 is not an integer in \[1, 62\]"),
    (lambda a, h: h["blocks"][0].update(mask_c_shift=63), r"shift: 63 is not an integer in \[1, 62\]"),
    (lambda a, h: h["blocks"][0].update(mask_c_shift=True), r"mask_c_shift: expected int"),
    (lambda a, h: h["blocks"][0].pop("mask_c_shift"), r"missing field 'mask_c_shift'"),
    # the overflow bound |A*m1| + |o1| < 2^62 (each value in range on its own)
    (lambda a, h: (a.update({"b0.mask_c.w1": np.full((2, 8), 32767, np.int16),
                             "b0.mask_c.m1": np.full(2, 2 ** 31 - 1, np.int32)})),
     r"b0\.mask_c: worst-case \|A\*m1\| \+ \|o1\| = \d+ >= 2\^62"),
])
def test_hostile_gate_arrays_are_refused(tmp_path, mutate, match):
    arrays, header = _arrays_and_header()
    mutate(arrays, header)
    header["arrays"] = {k: {"dtype": str(v.dtype), "shape": list(v.shape), "sha256": _digest(v)}
                        for k, v in arrays.items()}
    with pytest.raises(FormatError, match=match):
        load_qmodel(_zip(tmp_path / "g.qnpz", arrays, header))


def test_gate_bound_holds_just_below_the_limit(tmp_path):
    """The largest m1 the bound allows loads; one more is refused (exact integer bound)."""
    arrays, header = _arrays_and_header()
    shift = header["blocks"][0]["mask_c_shift"]
    arrays["b0.mask_c.w1"] = np.full((2, 8), 32767, np.int16)
    arrays["b0.mask_c.o1"] = np.zeros(2, np.int64)
    a_max = 8 * 32767 * (2 ** 17 - 1)
    m_ok = (2 ** 62 - 2 ** (shift - 1) - 1) // a_max
    assert m_ok < 2 ** 31
    for m, ok in ((m_ok, True), (m_ok + 1, False)):
        arrays["b0.mask_c.m1"] = np.array([m, -m], np.int32)
        header["arrays"] = {k: {"dtype": str(v.dtype), "shape": list(v.shape),
                                "sha256": _digest(v)} for k, v in arrays.items()}
        p = _zip(tmp_path / f"b{m}.qnpz", arrays, header)
        if ok:
            assert load_qmodel(p).blocks[0].channel_gate.m1[0] == m
        else:
            with pytest.raises(FormatError, match="2\\^62"):
                load_qmodel(p)
