"""Engine configuration: the single source of truth for the engine's sizes (torch-free).

A configuration is a TOML file in `dgfpga/contract/configs/` (or any path). `load_config` turns it
into a frozen `EngineConfig`, validated against what the formats and the micro-architecture
need. The HLS header (`hls/generated/dg_config.h`) and the RTL include
(`sim/generated/dg_params.svh`) are generated from it by `dgfpga gen`; Python code reads
its constants from the dataclass. `config_hash` identifies a configuration: the engine
reports it in its ENGINE_ID register and the host refuses a bundle built for another one.
"""
from __future__ import annotations

import dataclasses
import functools
import zlib
from dataclasses import dataclass
from pathlib import Path

from dgfpga.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
#: the m_axi data widths a config may choose (bits); the widest fixes the alignment the host
#: asks of every buffer it gives an engine (docs/register_map.md "Alignment")
AXI_DATA_BITS = (32, 64, 128, 256, 512)
DEFAULT_CONFIG = "ultra96"

U16_MAX = 0xFFFF
SIZING_KERNEL = 3            # the buffers are sized for the largest 3x3 layer (every block conv)


@dataclass(frozen=True)
class EngineConfig:
    """One engine configuration. Field names equal the C++/SV constant names (lower/upper)."""

    name: str                 # configuration name; build folders are named by it
    board: str                # board the bitstream targets
    part: str                 # FPGA part number
    clock_hz: int             # engine clock
    part_dsp: int             # DSP slices of the part (budget check)
    part_bram36: int          # BRAM36 blocks of the part (budget check)
    tm: int                   # output channels computed in parallel (power of two)
    tn: int                   # input channels reduced in parallel (power of two)
    max_tile: int             # output tile side in pixels (after a fused max-pool)
    max_grid: int             # tiles per side of a layer's output grid
    max_width: int            # feature-map width limit (input or output), pixels
    max_height: int           # feature-map height limit, pixels
    max_in_channels: int      # input channels of a layer
    max_out_channels: int     # output channels of a layer
    max_layers: int           # layer descriptors per engine start
    weight_buffer_bytes: int  # on-chip weights (two m-groups, double-buffered)
    ifm_buffer_bytes: int     # on-chip input patches (two, double-buffered)
    ofm_buffer_bytes: int     # on-chip int32 accumulators of one m-group x conv tile
    act_bits: int = 8         # activation width (fixed by the formats)
    weight_bits: int = 8      # weight width (fixed by the formats)
    acc_bits: int = 32        # accumulator width (fixed by the formats)
    axi_data_bits: int = 128  # m_axi data width; offsets in descriptors align to it
    # ---- features ([features] in the TOML): hardware a config may leave out ----
    depthwise: bool = True    # depthwise conv (op 5, MobileNetV2); false: an engine without
    #                           it (the RTL prunes its depthwise buffers and datapath), which
    #                           refuses op 5 with BAD_OP at the op word

    # ---- derived values (not stored in the TOML) ----
    @property
    def macs_per_cycle(self) -> int:
        return self.tm * self.tn

    @property
    def axi_bytes(self) -> int:
        """Bytes per AXI beat; every descriptor offset is a multiple of this."""
        return self.axi_data_bits // 8

    @property
    def gate_lanes(self) -> int:
        """The gate unit's lanes: the int16 elements of one AXI beat, at most tn. Its
        lane-banked memories have this many banks, a stream segment holds at most this many
        elements, and its on-chip loops (pooling, the fc rows, the spatial 3x3) take this
        many channels per cycle, so its multipliers do not grow with tn. Generated into the
        contract as DG_GATE_LANES / `gate_lanes` (RTL `dg_gate.sv` GL, `cycle_model.
        gate_lanes`, the resource estimate); the HLS gate still takes tn lanes (docs/hls.md)."""
        return min(self.tn, self.axi_bytes // 2)

    @property
    def max_tiles(self) -> int:
        """Largest number of tiles in a layer's grid (tile indices are below this)."""
        return self.max_grid * self.max_grid

    @property
    def bitmap_words(self) -> int:
        """32-bit words of a tile bitmap for the largest grid."""
        return (self.max_tiles + 31) // 32

    # ---- smallest buffers for these limits (validate() requires them; the generated
    # header and include check them again) ----
    @property
    def min_weight_buffer_bytes(self) -> int:
        """Two m-groups (double-buffered) of the weights of a 1x1 layer with max_in_channels
        or of a 3x3 layer with one n-group (tn inputs), whichever is larger. Wider 3x3 layers
        are a per-layer rule (`formats.layer_fit_problems`, NO_FIT), so a config can raise
        its channel limits (ResNet-50's 2048) without a buffer for a 3x3 layer that wide."""
        return 2 * self.tm * max(self.max_in_channels, SIZING_KERNEL ** 2 * self.tn)

    @property
    def min_ifm_buffer_bytes(self) -> int:
        """Two input patches of a max tile with its 3x3 halo, one n-group."""
        return 2 * (self.max_tile + SIZING_KERNEL - 1) ** 2 * self.tn

    @property
    def min_ofm_buffer_bytes(self) -> int:
        """tm int32 accumulators of the (2*max_tile+1)^2 conv patch under a fused max-pool."""
        return self.tm * (2 * self.max_tile + 1) ** 2 * (self.acc_bits // 8)

    @property
    def config_hash(self) -> int:
        """Stable 32-bit identifier: CRC-32 of the canonical `key=value` listing."""
        return zlib.crc32(canonical_text(self).encode("utf-8")) & 0xFFFFFFFF

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def canonical_text(cfg: EngineConfig) -> str:
    """`key=value` lines in field order: what `config_hash` digests (stable across runs).
    A feature at its default (FEATURE_DEFAULTS) is not listed, so the hash of a config that
    does not name it did not change when the feature field was added."""
    return "".join(f"{f.name}={getattr(cfg, f.name)!r}\n" for f in dataclasses.fields(cfg)
                   if FEATURE_DEFAULTS.get(f.name, _NO_DEFAULT) != getattr(cfg, f.name))


_NO_DEFAULT = object()
#: the [features] fields and their defaults (canonical_text leaves them out at the default)
FEATURE_DEFAULTS = {"depthwise": True}


def _is_pow2(v: int) -> bool:
    return v > 0 and (v & (v - 1)) == 0


def validate(cfg: EngineConfig, fit: bool = True) -> EngineConfig:
    """Check a configuration; raise ConfigError naming the field, its value and the limit.
    `fit`: also against its part's DSP48E2/BRAM36 by the resource estimate (False only to
    check the fields alone, e.g. to synthesise or estimate a config that does not fit)."""
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(f"engine config '{cfg.name}': {msg}")

    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if f.type in ("int", int):
            need(isinstance(v, int) and not isinstance(v, bool),
                 f"{f.name} must be an integer, got {v!r}")
        elif f.type in ("bool", bool):
            need(isinstance(v, bool), f"{f.name} must be true or false, got {v!r}")
        else:
            need(isinstance(v, str) and v != "", f"{f.name} must be a non-empty string, got {v!r}")
    need(cfg.name.replace("_", "").replace("-", "").isalnum(),
         f"name must be alphanumeric (it names build folders), got {cfg.name!r}")
    need((cfg.act_bits, cfg.weight_bits, cfg.acc_bits) == (8, 8, 32),
         f"act_bits/weight_bits/acc_bits must be 8/8/32 (the formats fix them), got "
         f"{cfg.act_bits}/{cfg.weight_bits}/{cfg.acc_bits}")
    for name in ("tm", "tn"):
        v = getattr(cfg, name)
        need(_is_pow2(v) and v <= 64, f"{name} must be a power of two in 1..64, got {v}")
    need(cfg.axi_data_bits in AXI_DATA_BITS,
         f"axi_data_bits must be one of {', '.join(map(str, AXI_DATA_BITS))}, got "
         f"{cfg.axi_data_bits}")
    need(1_000_000 <= cfg.clock_hz <= 1_000_000_000,
         f"clock_hz must be in 1 MHz..1 GHz, got {cfg.clock_hz}")
    need(1 <= cfg.max_tile <= 255, f"max_tile must be in 1..255 (8-bit field), got {cfg.max_tile}")
    need(1 <= cfg.max_grid <= 255,
         f"max_grid must be in 1..255 (8-bit field; u16 tile indices), got {cfg.max_grid}")
    for name in ("max_width", "max_height", "max_in_channels", "max_out_channels"):
        v = getattr(cfg, name)
        need(1 <= v <= U16_MAX, f"{name} must be in 1..{U16_MAX} (16-bit field), got {v}")
    need(3 <= cfg.max_layers <= 255,
         f"max_layers must be in 3..255 (a gated block runs conv1, downsample and conv2 in "
         f"one engine start; the STATUS layer index is 8 bits), got {cfg.max_layers}")
    # Buffers: the worst cases the micro-architecture must hold on chip.
    w_need = cfg.min_weight_buffer_bytes
    need(cfg.weight_buffer_bytes >= w_need,
         f"weight_buffer_bytes={cfg.weight_buffer_bytes} too small: two m-groups of a 1x1 "
         f"layer with max_in_channels={cfg.max_in_channels} (or of a 3x3 layer with tn inputs) "
         f"need 2*tm*max(C_in, 9*tn) = {w_need}")
    i_need = cfg.min_ifm_buffer_bytes
    need(cfg.ifm_buffer_bytes >= i_need,
         f"ifm_buffer_bytes={cfg.ifm_buffer_bytes} too small: two input patches of a max "
         f"tile plus 3x3 halo for one n-group need 2*(max_tile+2)^2*tn = {i_need}")
    o_need = cfg.min_ofm_buffer_bytes
    need(cfg.ofm_buffer_bytes >= o_need,
         f"ofm_buffer_bytes={cfg.ofm_buffer_bytes} too small: tm int32 accumulators of the "
         f"(2*max_tile+1)^2 conv patch under a fused max-pool need {o_need}")
    # DSP48E2 and BRAM36 against the part: the one resource model (imported here because
    # it imports this module)
    if fit:
        from dgfpga.perf.resources import dsp_bram_problems
        for problem in dsp_bram_problems(cfg):
            need(False, problem)
    return cfg


_SECTIONS = ("array", "limits", "buffers", "widths", "features")


def config_from_dict(data: dict, source: str = "<dict>", fit: bool = True) -> EngineConfig:
    """Build and validate a config from a (possibly sectioned) mapping as read from TOML
    (`fit` as in `validate`)."""
    flat: dict = {}
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in _SECTIONS:
                raise ConfigError(f"{source}: unknown section [{key}] (known: {', '.join(_SECTIONS)})")
            for k2, v2 in value.items():
                if k2 in flat:
                    raise ConfigError(f"{source}: key {k2!r} given twice")
                flat[k2] = v2
        else:
            if key in flat:
                raise ConfigError(f"{source}: key {key!r} given twice")
            flat[key] = value
    names = {f.name for f in dataclasses.fields(EngineConfig)}
    unknown = sorted(set(flat) - names)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}")
    required = {f.name for f in dataclasses.fields(EngineConfig)
                if f.default is dataclasses.MISSING}
    missing = sorted(required - set(flat))
    if missing:
        raise ConfigError(f"{source}: missing key(s) {', '.join(missing)}")
    return validate(EngineConfig(**flat), fit)


def available_configs() -> list[str]:
    """Names of the configurations shipped in dgfpga/contract/configs/."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def config_path(name_or_path: str | Path) -> Path:
    """Resolve a shipped config name (`ultra96`) or a path to a TOML file."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise ConfigError(f"engine config file {p} does not exist")
        return p
    shipped = CONFIG_DIR / f"{name_or_path}.toml"
    if not shipped.is_file():
        raise ConfigError(f"unknown engine config {str(name_or_path)!r}; shipped configs: "
                          f"{', '.join(available_configs())} (or give a path to a .toml)")
    return shipped


def _toml():
    """tomllib (3.11+), else tomli; imported here so the board (PYNQ, Python 3.10) can import
    this module and build configs from a bundle's JSON manifest (`config_from_dict`)."""
    try:
        import tomllib
    except ModuleNotFoundError:
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError("reading a TOML engine config needs Python 3.11+ (tomllib) or "
                              "the 'tomli' package (pip install tomli); a bundle's config "
                              "needs neither") from None
    return tomllib


@functools.lru_cache(maxsize=None)
def _load(path: str) -> EngineConfig:
    tomllib = _toml()
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    cfg = config_from_dict(data, source=path)
    return cfg


def load_config(name_or_path: str | Path = DEFAULT_CONFIG) -> EngineConfig:
    """Load and validate an engine configuration by shipped name or TOML path."""
    return _load(str(config_path(name_or_path).resolve()))


def default_config() -> EngineConfig:
    """The default engine (Ultra96-V2)."""
    return load_config(DEFAULT_CONFIG)
