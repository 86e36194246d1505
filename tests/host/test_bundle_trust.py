"""The bundle trusts nothing in its folder: manifest paths stay inside, `arch` matches the
model, model.qnpz and selfcheck.npz match their SHA-256 in the manifest, selfcheck.npz is
parsed against the shapes the model implies before anything is decompressed, the manifest
is read within limits; and write_bundle is complete or absent."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile

import numpy as np
import pytest

from dgfpga.errors import FormatError
from dgfpga_host import bundle as B
from dgfpga_host.bundle import load_bundle, write_bundle


@pytest.fixture
def bad(bundle_dir, tmp_path):
    d = tmp_path / "b"
    shutil.copytree(bundle_dir, d)
    return d


def manifest(d):
    return json.loads((d / "manifest.json").read_text())


def edit(d, **change):
    m = manifest(d)
    m.update(change)
    (d / "manifest.json").write_text(json.dumps(m))


def sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def rewrite_selfcheck(d, arrays=None, raw=None):
    """Replace selfcheck.npz and re-record its hash (as someone who edits both would)."""
    p = d / "selfcheck.npz"
    if raw is not None:
        p.write_bytes(raw)
    else:
        B._save_npz_deterministic(p, arrays)
    edit(d, selfcheck_sha256=sha(p))


def selfcheck_arrays(d):
    with np.load(d / "selfcheck.npz") as z:
        return {k: z[k] for k in z.files}


def test_the_written_bundle_loads(bundle_dir):
    b = load_bundle(bundle_dir)
    m = manifest(bundle_dir)
    assert m["selfcheck_sha256"] == sha(bundle_dir / "selfcheck.npz")
    assert m["model_sha256"] == sha(bundle_dir / "model.qnpz")
    assert m["arch"] == b.qmodel.arch and len(b.selfcheck.images) == 4


@pytest.mark.parametrize("key", ["model", "selfcheck"])
@pytest.mark.parametrize("value", ["../../other/model.qnpz", "/etc/passwd", "..", "sub/x.npz",
                                   "", 7, ["selfcheck.npz"], {"a": 1}])
def test_manifest_paths_must_stay_inside(bad, key, value):
    edit(bad, **{key: value})
    with pytest.raises(FormatError, match=rf"{key} .* is not a file name inside the bundle"):
        load_bundle(bad)


def test_a_symlink_out_of_the_bundle_is_refused(bad, tmp_path):
    outside = tmp_path / "elsewhere.qnpz"
    shutil.copy(bad / "model.qnpz", outside)
    (bad / "model.qnpz").unlink()
    (bad / "model.qnpz").symlink_to(outside)
    with pytest.raises(FormatError, match="model file model.qnpz is missing or not a regular "
                                          "file inside the bundle"):
        load_bundle(bad)


def test_arch_is_checked_against_the_model(bad):
    edit(bad, arch="resdg18")
    with pytest.raises(FormatError, match=r"arch 'resdg18', but the model is"):
        load_bundle(bad)


@pytest.mark.parametrize("name, key", [("selfcheck.npz", "selfcheck_sha256"),
                                       ("model.qnpz", "model_sha256")])
def test_files_are_hashed_in_the_manifest(bad, name, key):
    raw = bytearray((bad / name).read_bytes())
    raw[len(raw) // 2] ^= 1
    (bad / name).write_bytes(bytes(raw))
    with pytest.raises(FormatError, match=rf"{name}: SHA-256 differs from the manifest's {key}"):
        load_bundle(bad)
    (bad / name).write_bytes(bytes(raw[: len(raw) // 3]))          # truncated copy
    with pytest.raises(FormatError, match="SHA-256 differs"):
        load_bundle(bad)
    edit(bad, **{key: None})
    with pytest.raises(FormatError, match="SHA-256 differs"):
        load_bundle(bad)


def test_selfcheck_edited_to_pass_is_refused(bad):
    """Whoever edits selfcheck.npz (without the manifest) does not decide what PASS means."""
    a = selfcheck_arrays(bad)
    a["logits_int"] = a["logits_int"] + 1
    B._save_npz_deterministic(bad / "selfcheck.npz", a)
    with pytest.raises(FormatError, match="selfcheck_sha256"):
        load_bundle(bad)


@pytest.mark.parametrize("raw, what", [
    (b"", "EOF|end-of-central-directory"),
    (b"PK\x03\x04" + b"\0" * 40, "end-of-central-directory"),
    (b"not a zip at all" * 10, "end-of-central-directory"),
])
def test_corrupt_selfcheck_is_a_clear_error(bad, raw, what):
    rewrite_selfcheck(bad, raw=raw)
    with pytest.raises(FormatError, match=rf"selfcheck.npz: .*({what})"):
        load_bundle(bad)


def test_truncated_selfcheck_members_are_a_clear_error(bad):
    good = (bad / "selfcheck.npz").read_bytes()
    zf = zipfile.ZipFile(io.BytesIO(good))
    first = zf.infolist()[0]
    # cut inside the first member's data, keep the directory: BadZipFile/EOF-type errors
    cut = good[: first.header_offset + 60] + good[first.header_offset + 200:]
    rewrite_selfcheck(bad, raw=cut)
    with pytest.raises(FormatError, match=r"selfcheck.npz: (unreadable|malformed) self-check"):
        load_bundle(bad)


def test_selfcheck_as_a_list_is_refused(bad):
    edit(bad, selfcheck=["selfcheck.npz"])
    with pytest.raises(FormatError, match="selfcheck .* is not a file name"):
        load_bundle(bad)


@pytest.mark.parametrize("change, match", [
    (lambda a: a.update(images=a["images"][:, :, :8]), r"images is int8 .* expected int8"),
    (lambda a: a.update(logits_int=a["logits_int"][:3]), r"logits_int is int64 \[3, "),
    (lambda a: a.update(labels=a["labels"].astype(np.float64)), r"labels is float64"),
    (lambda a: a.update(spatial_0=a["spatial_0"].astype(np.uint8)), r"spatial_0 is uint8"),
    (lambda a: a.pop("channel_1"), r"missing: channel_1"),
    (lambda a: a.update(extra=np.zeros(3)), r"the zip lists 23 members; .* has 22"),
    (lambda a: a.update(extra=a.pop("channel_1")), r"missing: channel_1 not expected: extra"),
    (lambda a: a.update(images=a["images"][0]), r"no images \[N, C, H, W\]"),
])
def test_wrong_selfcheck_content_is_refused_naming_it(bad, change, match):
    a = selfcheck_arrays(bad)
    change(a)
    rewrite_selfcheck(bad, a)
    with pytest.raises(FormatError, match=match):
        load_bundle(bad)


def test_selfcheck_header_claiming_huge_arrays_is_refused_before_reading(bad):
    """Every member claims 2^33 images: refused from the zip directory sizes, no 2^40-byte
    allocation (the test would run out of memory otherwise)."""
    from numpy.lib import format as npy
    a = selfcheck_arrays(bad)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, v in sorted(a.items()):
            h = io.BytesIO()
            npy.write_array_header_1_0(h, {"descr": npy.dtype_to_descr(v.dtype),
                                           "fortran_order": False,
                                           "shape": (2 ** 33, *v.shape[1:])})
            zf.writestr(f"{k}.npy", h.getvalue() + v.tobytes())
    rewrite_selfcheck(bad, raw=buf.getvalue())
    with pytest.raises(FormatError, match="member size"):
        load_bundle(bad)


@pytest.mark.parametrize("text, match", [
    ("[" * 100000 + "]" * 100000, "nested deeper"),
    ('{"format": "dgfpga-bundle", "version": ' + "9" * 5000 + "}", "integer with 5000 digits"),
    ('{"format": "dgfpga-bundle", "version": NaN}', "NaN is not allowed"),
    ('{"format": "dgfpga-bundle", "pad": "' + "x" * (2 ** 20) + '"}', "byte limit"),
    ("\xff\xfe{}", "not valid UTF-8 JSON"),
])
def test_manifest_is_parsed_within_limits(bad, text, match):
    (bad / "manifest.json").write_text(text, encoding="latin-1")
    with pytest.raises(FormatError, match=rf"unreadable manifest .*{match}"):
        load_bundle(bad)


@pytest.mark.parametrize("engine", [None, [], "small", {"name": "small"}])
def test_malformed_engine_table_is_a_clear_error(bad, engine):
    edit(bad, engine=engine)
    with pytest.raises(Exception) as e:
        load_bundle(bad)
    assert isinstance(e.value, (FormatError, B.ConfigError)), repr(e.value)


def test_write_bundle_interrupted_leaves_the_previous_bundle(bundle_dir, tmp_path, monkeypatch):
    """An interrupt between the model and selfcheck.npz (it used to leave a bundle that
    ran and reported bit-exact FAIL) leaves the previous bundle byte for byte."""
    b = load_bundle(bundle_dir)
    out = tmp_path / "bundle"
    write_bundle(out, b.qmodel, b.cfg, b.selfcheck)
    before = {p.name: sha(p) for p in out.iterdir()}
    real = B._save_npz_deterministic

    def interrupted(path, arrays):
        if path.name == "selfcheck.npz":
            raise KeyboardInterrupt
        return real(path, arrays)
    monkeypatch.setattr(B, "_save_npz_deterministic", interrupted)
    sc = B.SelfCheck(b.selfcheck.images[:2], b.selfcheck.labels[:2], b.selfcheck.logits_int[:2],
                     b.selfcheck.logits_int_dense[:2], [s[:2] for s in b.selfcheck.spatial],
                     [c[:2] for c in b.selfcheck.channel])
    with pytest.raises(KeyboardInterrupt):
        write_bundle(out, b.qmodel, b.cfg, sc)
    assert {p.name: sha(p) for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    with pytest.raises(KeyboardInterrupt):                       # a new bundle: absent
        write_bundle(tmp_path / "new", b.qmodel, b.cfg, sc)
    assert not (tmp_path / "new").exists()
    monkeypatch.undo()
    write_bundle(out, b.qmodel, b.cfg, sc)                       # and then a rebuild works
    assert len(load_bundle(out).selfcheck.images) == 2
