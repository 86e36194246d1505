"""Engine configuration: shipped configs load, validation names the problem, hash is stable."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import zlib

import pytest

from dgfpga.contract.engine_config import (EngineConfig, available_configs, canonical_text,
                                  config_from_dict, default_config, load_config, validate)
from dgfpga.errors import ConfigError


def _as_dict(cfg: EngineConfig) -> dict:
    return dataclasses.asdict(cfg)


def test_shipped_configs_load():
    assert {"ultra96", "small"} <= set(available_configs())
    u = default_config()
    assert u.name == "ultra96" and u.part == "xczu3eg-sbva484-1-e" and u.clock_hz == 200_000_000
    assert (u.tm, u.tn) == (16, 16) and u.macs_per_cycle == 256
    assert (u.act_bits, u.weight_bits, u.acc_bits) == (8, 8, 32)
    s = load_config("small")
    assert (s.tm, s.tn) == (4, 4) and s.axi_bytes == 8
    assert load_config("ultra96") is u                      # cached, frozen
    with pytest.raises(dataclasses.FrozenInstanceError):
        u.tm = 8  # type: ignore[misc]


def test_load_by_path(tmp_path):
    src = load_config("small")
    lines = [f"{k} = {str(v).lower() if isinstance(v, bool) else repr(v)}".replace("'", '"')
             for k, v in _as_dict(src).items()]
    p = tmp_path / "mine.toml"
    p.write_text("\n".join(lines).replace("name = \"small\"", "name = \"mine\"") + "\n")
    cfg = load_config(p)
    assert cfg.name == "mine" and cfg.tm == 4


def test_config_hash_stable_and_distinct():
    u, s = default_config(), load_config("small")
    assert u.config_hash == zlib.crc32(canonical_text(u).encode()) & 0xFFFFFFFF
    assert 0 <= u.config_hash < 2 ** 32
    assert u.config_hash != s.config_hash
    again = config_from_dict(_as_dict(u))
    assert again.config_hash == u.config_hash
    changed = dataclasses.replace(u, clock_hz=150_000_000)
    assert changed.config_hash != u.config_hash


def test_depthwise_feature_section_and_hash(tmp_path):
    """[features] depthwise: default true and then absent from the hash (the configs that do
    not name it keep the hash they had: ultra96's 0xB7F31E73 is in the shipped bundles and
    the generated headers); false is a distinct config; a non-boolean is refused by name."""
    u = default_config()
    assert u.depthwise is True and "depthwise" not in canonical_text(u)
    assert u.config_hash == 0xB7F31E73
    rn = load_config("ultra96_resnet")
    assert rn.depthwise is False and "depthwise=False" in canonical_text(rn)
    assert rn.config_hash != u.config_hash
    assert dataclasses.replace(rn, name="ultra96", depthwise=True).config_hash == u.config_hash
    text = load_config("small").to_dict()
    for value, ok in (("false", True), ("true", True), ("0", False), ('"no"', False)):
        p = tmp_path / f"f{value.strip(chr(34))}.toml"
        body = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in text.items()
                         if k != "depthwise")
        p.write_text(body + f"\n[features]\ndepthwise = {value}\n")
        if ok:
            assert load_config(p).depthwise is (value == "true")
        else:
            with pytest.raises(ConfigError, match="depthwise must be true or false"):
                load_config(p)


@pytest.mark.parametrize("name", ["ultra96", "small"])
@pytest.mark.parametrize("resource, key", [("dsp", "part_dsp"), ("bram36", "part_bram36")])
def test_part_budget_uses_the_resource_estimate(name, resource, key):
    """validate() refuses a config exactly when perf.resources' estimate exceeds the part:
    one DSP/BRAM model (a second, different model would disagree at the boundary)."""
    from dgfpga.perf import resources
    need = getattr(resources.estimate(load_config(name)), resource)
    data = _as_dict(load_config(name))
    assert config_from_dict(data | {key: need}).name == name             # exactly enough
    with pytest.raises(ConfigError, match=rf"{resource.upper()} {need} > {need - 1}"):
        config_from_dict(data | {key: need - 1})


@pytest.mark.parametrize("change, words", [
    (dict(tm=12), "tm must be a power of two"),
    (dict(tn=128), "tn must be a power of two"),
    (dict(act_bits=16), "act_bits"),
    (dict(axi_data_bits=100), "axi_data_bits"),
    (dict(max_grid=300), "max_grid"),
    (dict(max_tile=0), "max_tile"),
    (dict(weight_buffer_bytes=1024), "weight_buffer_bytes=1024 too small"),
    (dict(ifm_buffer_bytes=100), "ifm_buffer_bytes=100 too small"),
    (dict(ofm_buffer_bytes=100), "ofm_buffer_bytes=100 too small"),
    (dict(tm=32, tn=32, weight_buffer_bytes=2 * 32 * 9 * 512, ofm_buffer_bytes=40000),
     r"DSP \d+ > 360 .largest: MAC array"),
    (dict(weight_buffer_bytes=1_600_000), r"BRAM36 \d+ > 216 .largest: weight buffers"),
    (dict(max_layers=0), "max_layers"),
    (dict(clock_hz=5), "clock_hz"),
    (dict(name="a b"), "name must be alphanumeric"),
    (dict(tm=True), "tm must be an integer"),
    (dict(max_in_channels=70000), "max_in_channels"),
])
def test_validation_errors_name_the_field(change, words):
    data = _as_dict(default_config()) | change
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        config_from_dict(data)


def test_structure_errors():
    good = _as_dict(default_config())
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict(good | {"tmm": 4})
    with pytest.raises(ConfigError, match="missing key"):
        config_from_dict({k: v for k, v in good.items() if k != "tm"})
    with pytest.raises(ConfigError, match="unknown section"):
        config_from_dict(good | {"foo": {"a": 1}})
    with pytest.raises(ConfigError, match="given twice"):
        config_from_dict({k: v for k, v in good.items()} | {"array": {"tm": 16}})
    with pytest.raises(ConfigError, match="unknown engine config"):
        load_config("nonexistent")


def test_bad_toml(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("tm = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_validate_returns_config():
    u = default_config()
    assert validate(u) is u


def test_contract_modules_are_torch_free():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import dgfpga.contract.engine_config, dgfpga.contract.regmap, dgfpga.contract.formats, dgfpga.perf.netshapes, "
            "dgfpga.perf.cycle_model, dgfpga.contract.codegen\n"
            "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_buffer_minimums_are_the_documented_sizing():
    """ultra96.toml explains its buffers: the minimums are two m-groups of a 1x1 layer with
    max_in_channels (or of a 3x3 layer with tn inputs), tm int32 accumulators of the stem's
    17x17 conv patch (18496 B), a (8+2)^2 x 16 patch twice; its weight buffer holds the
    largest ResNet 3x3 layer, 2 x 16 x 9 x 512; validate() refuses one byte less."""
    u = default_config()
    assert (u.min_weight_buffer_bytes, u.min_ofm_buffer_bytes, u.min_ifm_buffer_bytes) == \
        (2 * 16 * max(u.max_in_channels, 9 * 16), 18496, 2 * 10 * 10 * 16)
    assert u.weight_buffer_bytes == 2 * 16 * 9 * 512
    small = dataclasses.replace(u, tn=64)          # a 3x3 n-group outweighs a narrow 1x1
    assert small.min_weight_buffer_bytes == 2 * 16 * max(u.max_in_channels, 9 * 64)
    data = _as_dict(u)
    for key in ("weight_buffer_bytes", "ifm_buffer_bytes", "ofm_buffer_bytes"):
        need = getattr(u, f"min_{key}")
        with pytest.raises(ConfigError, match=f"{key}={need - 1} too small"):
            config_from_dict(data | {key: need - 1})
