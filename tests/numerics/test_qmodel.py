"""dgfpga.numerics.qmodel: the .qnpz round trip and its validation (corrupt, truncated, tampered
files must raise FormatError with a message naming what is wrong). Torch-free: the
model here is a small hand-built QModel."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

from dgfpga.numerics import golden
from dgfpga.errors import FormatError
from dgfpga.numerics.gates import IntChannelGate, IntSpatialGate
from dgfpga.numerics.qmodel import (HEADER_KEY, QBlock, QConv, QHead, QModel, QStem, TensorInfo,
                           _digest, load_qmodel, save_qmodel, to_arrays, validate)


def _conv(rng, name, cin, cout, k, stride, pad, tin, tout, signed=False, res=None, res_mult=0,
          shift=24):
    lo, hi = (-128, 127) if signed else (0, 255)
    return QConv(name=name, weight=rng.integers(-40, 41, (cout, cin, k, k)).astype(np.int8),
                 bias=rng.integers(-2000, 2000, cout).astype(np.int32),
                 mult=rng.integers(2 ** 14, 2 ** 16, cout).astype(np.int32), shift=shift,
                 res_mult=res_mult, lo=lo, hi=hi, stride=stride, pad=pad, in_tensor=tin,
                 out_tensor=tout, res_tensor=res,
                 weight_scale=rng.uniform(0.001, 0.01, cout))


def _gates(rng, cin, cout):
    """Random integer gates whose decisions are mixed on the tiny model's activations."""
    hid = cin // 4
    return (IntSpatialGate(rng.integers(-32767, 32768, (cin, 3, 3)), int(rng.integers(-2 ** 28, 2 ** 28))),
            IntChannelGate(rng.integers(-32767, 32768, (hid, cin)), rng.integers(-2 ** 12, 2 ** 12, hid),
                           rng.integers(-2 ** 40, 2 ** 40, hid), 30,
                           rng.integers(-32767, 32768, (cout, hid)),
                           rng.integers(-2 ** 27, 2 ** 27, cout)))


def tiny_qmodel(seed: int = 0) -> QModel:
    """Stem (3->8, 8x8) + identity block (tile 2) + downsample block (8->16, 4x4) + fc."""
    rng = np.random.default_rng(seed)
    t = {
        "input": TensorInfo((3, 8, 8), 0.02, True),
        "stem": TensorInfo((8, 8, 8), 0.05, False),
        "b0.out1": TensorInfo((8, 8, 8), 0.04, False),
        "b0.out": TensorInfo((8, 8, 8), 0.05, False),
        "b1.out1": TensorInfo((16, 4, 4), 0.04, False),
        "b1.short": TensorInfo((16, 4, 4), 0.03, True),
        "b1.out": TensorInfo((16, 4, 4), 0.06, False),
    }
    stem = QStem(conv=_conv(rng, "conv1", 3, 8, 3, 1, 1, "input", "stem"), maxpool=False,
                 out_tensor="stem")
    sg0, cg0 = _gates(rng, 8, 8)
    b0 = QBlock(name="b0", conv1=_conv(rng, "b0.conv1", 8, 8, 3, 1, 1, "stem", "b0.out1"),
                conv2=_conv(rng, "b0.conv2", 8, 8, 3, 1, 1, "b0.out1", "b0.out", res="stem",
                            res_mult=2 ** 24),
                downsample=None, identity=True, tile=2, grid=(4, 4), spatial_gate=sg0,
                channel_gate=cg0, in_tensor="stem", out_tensor="b0.out")
    sg1, cg1 = _gates(rng, 8, 16)
    b1 = QBlock(name="b1", conv1=_conv(rng, "b1.conv1", 8, 16, 3, 2, 1, "b0.out", "b1.out1"),
                conv2=_conv(rng, "b1.conv2", 16, 16, 3, 1, 1, "b1.out1", "b1.out",
                            res="b1.short", res_mult=2 ** 23),
                downsample=_conv(rng, "b1.downsample", 8, 16, 1, 2, 0, "b0.out", "b1.short",
                                 signed=True),
                identity=False, tile=2, grid=(2, 2), spatial_gate=sg1, channel_gate=cg1,
                in_tensor="b0.out", out_tensor="b1.out")
    head = QHead(name="fc", weight=rng.integers(-127, 128, (10, 16)).astype(np.int8),
                 bias=rng.integers(-500, 500, 10).astype(np.int32),
                 logit_scale=rng.uniform(1e-4, 1e-3, 10), in_tensor="b1.out", pool_count=16)
    return QModel(arch="tiny_test", input_shape=(3, 8, 8), num_classes=10,
                  mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), tensors=t, stem=stem,
                  blocks=[b0, b1], head=head, meta={"note": "hand-built"})


def _write(path, arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())
    return path


def tampered(tmp_path, mutate, redigest=True, qm=None):
    """Write a .qnpz whose arrays/header `mutate(arrays, header)` changed, with the header's
    array table (dtype, shape, digest) recomputed unless redigest=False."""
    arrays = to_arrays(qm or tiny_qmodel())
    header = json.loads(arrays.pop(HEADER_KEY).tobytes())
    mutate(arrays, header)
    if redigest:
        header["arrays"] = {k: {"dtype": str(v.dtype), "shape": list(v.shape), "sha256": _digest(v)}
                            for k, v in arrays.items()}
    arrays[HEADER_KEY] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    return _write(tmp_path / "t.qnpz", arrays)


def test_round_trip_is_exact_and_runs_identically(tmp_path):
    qm = tiny_qmodel()
    path = save_qmodel(qm, tmp_path / "m.qnpz")
    back = load_qmodel(path)
    assert back.arch == qm.arch and back.tensors == qm.tensors and back.meta == qm.meta
    a, b = to_arrays(qm), to_arrays(back)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        assert a[k].dtype == b[k].dtype
    x = np.random.default_rng(1).normal(0, 1, (4, 3, 8, 8)).astype(np.float32)
    ga, gb = golden.run_golden(qm, x), golden.run_golden(back, x)
    np.testing.assert_array_equal(ga.logits_int, gb.logits_int)


def test_file_is_plain_npz_with_a_json_header(tmp_path):
    path = save_qmodel(tiny_qmodel(), tmp_path / "m.qnpz")
    with np.load(path, allow_pickle=False) as z:
        hdr = json.loads(z[HEADER_KEY].tobytes())
        assert all(z[k].dtype.kind in "iuf" for k in z.files)
    assert hdr["format"] == "dgfpga-qmodel" and hdr["schema_version"] == 3
    assert [b["kind"] for b in hdr["blocks"]] == ["basic", "basic"]
    assert hdr["blocks"][0]["identity"] is True and hdr["tensors"]["input"]["signed"] is True


def test_version_2_files_read_as_basic_blocks(tmp_path):
    """Schema 2 (before block kinds) files load unchanged: every block a BasicBlock, and a
    `kind` field in them is not read (it did not exist in version 2)."""
    qm = tiny_qmodel()

    def v2(a, h):
        h["schema_version"] = 2
        for b in h["blocks"]:
            b.pop("kind")
        h["blocks"][0]["kind"] = "bottleneck"

    back = load_qmodel(tampered(tmp_path, v2))
    assert [b.kind for b in back.blocks] == ["basic", "basic"]
    x = np.random.default_rng(3).normal(0, 1, (2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(golden.run_golden(qm, x).logits_int,
                                  golden.run_golden(back, x).logits_int)


@pytest.mark.parametrize("keep", [0.0, 0.3, 0.6, 0.95, 0.999])
def test_truncated_file_raises_format_error(tmp_path, keep):
    raw = save_qmodel(tiny_qmodel(), tmp_path / "m.qnpz").read_bytes()
    p = tmp_path / "cut.qnpz"
    p.write_bytes(raw[:int(len(raw) * keep)])
    with pytest.raises(FormatError):
        load_qmodel(p)


def test_flipped_bytes_never_load_a_different_model(tmp_path):
    qm = tiny_qmodel()
    raw = bytearray(save_qmodel(qm, tmp_path / "m.qnpz").read_bytes())
    ref = to_arrays(qm)
    rng = np.random.default_rng(0)
    positions = sorted(set(rng.integers(0, len(raw), 60).tolist()))
    loaded_ok = 0
    for pos in positions:
        bad = bytearray(raw)
        bad[pos] ^= 0x5A
        p = tmp_path / "flip.qnpz"
        p.write_bytes(bytes(bad))
        try:
            back = load_qmodel(p)
        except FormatError:
            continue
        loaded_ok += 1                      # a flip in an unused zip field: must be harmless
        got = to_arrays(back)
        for k in ref:
            np.testing.assert_array_equal(ref[k], got[k])
    assert loaded_ok < len(positions) // 2


@pytest.mark.parametrize("mutate,match", [
    (lambda a, h: h.update(schema_version=1), r"schema version 1 .*float32 gates.*re-run `dgfpga quantize`"),
    (lambda a, h: h.update(schema_version=5), "schema version 5"),
    (lambda a, h: h["blocks"][0].update(kind="inverted"), "kind 'inverted'"),
    (lambda a, h: h["blocks"][0].update(kind="bottleneck"), "conv3"),
    (lambda a, h: h.update(format="something"), "format"),
    (lambda a, h: h["tensors"]["stem"].update(shape=[8, 9, 8]), "conv1"),
    (lambda a, h: h["tensors"]["stem"].update(scale=-1.0), "scale"),
    (lambda a, h: h["tensors"]["b0.out"].update(scale=0.07), "identity"),
    (lambda a, h: h["blocks"][0]["conv2"].update(shift=0), "shift"),
    (lambda a, h: h["blocks"][0]["conv2"].update(shift=40), "shift"),
    (lambda a, h: h["blocks"][1]["conv1"].update(hi=127), "clamp"),
    (lambda a, h: h["blocks"][1].update(identity=True), "identity"),
    (lambda a, h: h["blocks"][1].update(grid=[3, 3]), "grid"),
    (lambda a, h: h["blocks"][1]["conv2"].update(res_tensor="b0.out"), "residual"),
    (lambda a, h: h["blocks"][0]["conv1"].update(in_tensor="nowhere"), "unknown tensor"),
    (lambda a, h: h["head"].update(pool_count=15), "pool_count"),
    (lambda a, h: h["blocks"].reverse(), "reads"),
    (lambda a, h: h["blocks"][0].pop("tile"), "tile"),
    (lambda a, h: a.update({"b0.conv1.mult": -a["b0.conv1.mult"]}), "negative"),
    (lambda a, h: a.update({"b0.conv1.weight": a["b0.conv1.weight"].astype(np.int16)}), "dtype"),
    (lambda a, h: a.update({"b0.conv1.bias": np.full(8, 2 ** 31 - 1, np.int32)}), "int32"),
    (lambda a, h: a.pop("b1.mask_c.w2"), "missing"),
    (lambda a, h: a.update(extra=np.zeros(3)), "not used"),
    (lambda a, h: a.update({"b1.mask_s.weight": np.zeros((8, 3, 3), np.float32)}), "mask_s.weight"),
    (lambda a, h: a.update({"b1.mask_c.w1": np.zeros((2, 7), np.int16)}), r"b1\.mask_c\.w1: shape"),
    (lambda a, h: a.update({"fc.logit_scale": np.zeros(10)}), "logit_scale"),
])
def test_inconsistent_files_raise_format_error(tmp_path, mutate, match):
    with pytest.raises(FormatError, match=match):
        load_qmodel(tampered(tmp_path, mutate))


def test_modified_array_is_caught_by_its_digest(tmp_path):
    def flip(a, h):
        w = a["b0.conv2.weight"].copy()
        w[0, 0, 0, 0] ^= 1
        a["b0.conv2.weight"] = w
    with pytest.raises(FormatError, match="SHA-256"):
        load_qmodel(tampered(tmp_path, flip, redigest=False))


def test_not_a_qmodel(tmp_path):
    with pytest.raises(FormatError, match="no such"):
        load_qmodel(tmp_path / "missing.qnpz")
    junk = tmp_path / "junk.qnpz"
    junk.write_bytes(b"this is not a zip file at all" * 10)
    with pytest.raises(FormatError, match="not a readable"):
        load_qmodel(junk)
    plain = _write(tmp_path / "plain.npz", {"a": np.zeros(3)})
    with pytest.raises(FormatError, match="__header__"):
        load_qmodel(plain)
    objs = tmp_path / "pickled.qnpz"
    np.savez(objs, **{HEADER_KEY: np.array([{"a": 1}], dtype=object)})
    with pytest.raises(FormatError):
        load_qmodel(objs)
    badjson = _write(tmp_path / "badjson.qnpz", {HEADER_KEY: np.frombuffer(b"{nope", np.uint8)})
    with pytest.raises(FormatError, match="JSON"):
        load_qmodel(badjson)


def test_validate_catches_bad_models_before_writing(tmp_path):
    qm = tiny_qmodel()
    qm.blocks[0].conv1.weight = qm.blocks[0].conv1.weight.astype(np.int32)
    with pytest.raises(FormatError, match="dtype"):
        save_qmodel(qm, tmp_path / "x.qnpz")
    assert not (tmp_path / "x.qnpz").exists()
    # integer gates changed after construction (the constructors check their arguments,
    # validate checks the objects as they are when written)
    for mutate, match in ((lambda g: setattr(g, "shift", 0), r"b0\.mask_c\.shift: 0"),
                          (lambda g: setattr(g, "shift", 63), r"b0\.mask_c\.shift: 63"),
                          (lambda g: g.b2.__setitem__(0, -2 ** 63), r"b0\.mask_c\.b2: values"),
                          (lambda g: g.o1.__setitem__(1, 2 ** 46), r"b0\.mask_c\.o1: values"),
                          (lambda g: setattr(g, "m1", g.m1.astype(np.int64)), r"b0\.mask_c\.m1: dtype")):
        qm = tiny_qmodel()
        mutate(qm.blocks[0].channel_gate)
        with pytest.raises(FormatError, match=match):
            save_qmodel(qm, tmp_path / "x.qnpz")
    qm = tiny_qmodel()
    qm.blocks[0].spatial_gate.bias = 2 ** 46
    with pytest.raises(FormatError, match=r"b0\.mask_s\.bias"):
        validate(qm)
    qm = tiny_qmodel()
    qm.blocks[1].conv2.res_mult = 0
    qm.blocks[1].conv2.res_tensor = None
    with pytest.raises(FormatError, match="residual"):
        validate(qm)
