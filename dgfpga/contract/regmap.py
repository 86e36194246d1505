"""AXI4-Lite register map of the engine: the one table (torch-free).

The layout is what Vitis HLS generates for the top function

    void dg_engine(const u64 *program, u32 layer_count,
                   u8 *fmap, u32 fmap_bytes, const u8 *weights, u32 weight_bytes,
                   const u8 *work, u32 work_bytes, i32 *sums, u32 sums_bytes,
                   u32 *status, u64 *cycles, u64 *engine_id, u32 run_flags)

with `#pragma HLS INTERFACE s_axilite port=return` (ap_ctrl_hs) and every argument on
the same s_axilite bundle: control registers at 0x00..0x0C, then the arguments in order.
A 32-bit input takes a data word and a reserved word; a 64-bit input (pointers: m_axi
with offset=slave) takes lo, hi and a reserved word; an output scalar takes its data
word(s) and a control word whose bit 0 is `<name>_ap_vld` (clear on read). `ARGUMENTS`
is the source; `REGISTERS` is derived from it by the same allocation rule, so the HLS
pragmas, the RTL decoder (via the generated include) and the host driver all agree.

Outputs are valid after a run. The host identifies the engine with a run of
`layer_count = 0` (nothing is read or written; STATUS, CYCLES and ENGINE_ID are set).
"""
from __future__ import annotations

from dataclasses import dataclass

from dgfpga.contract.engine_config import EngineConfig

ENGINE_MAGIC = 0xD6E0  # ENGINE_ID[63:48]
# The engine IP's VLNV: `export_design` (run_hls.tcl) names it so, the Vivado block design
# instantiates it by it, and the PYNQ driver binds to it (DefaultIP.bindto).
ENGINE_VENDOR, ENGINE_LIBRARY, ENGINE_NAME, ENGINE_VERSION = "dgfpga.org", "hls", "dg_engine", "1.0"
ENGINE_VLNV = f"{ENGINE_VENDOR}:{ENGINE_LIBRARY}:{ENGINE_NAME}:{ENGINE_VERSION}"


@dataclass(frozen=True)
class BitField:
    name: str
    lsb: int
    width: int
    access: str
    meaning: str

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    offset: int
    name: str
    width: int      # bits of the register word (always 32 on AXI4-Lite)
    access: str     # RW, RO, R/COR (clear on read), R/TOW (toggle on write)...
    reset: int
    meaning: str
    fields: tuple = ()


@dataclass(frozen=True)
class Argument:
    """One argument of the HLS top function, as it appears on s_axilite."""
    name: str
    bits: int        # 32 or 64
    direction: str   # "in" (host writes) or "out" (engine writes, ap_vld)
    meaning: str
    fields: tuple = ()


# ---- control registers (ap_ctrl_hs) ----
CTRL_FIELDS = (
    BitField("AP_START", 0, 1, "R/W/COH", "write 1 to start; cleared by the engine when it accepts"),
    BitField("AP_DONE", 1, 1, "R/COR", "the run finished (cleared on read)"),
    BitField("AP_IDLE", 2, 1, "R", "the engine is idle"),
    BitField("AP_READY", 3, 1, "R/COR", "the engine can accept new arguments"),
    BitField("AUTO_RESTART", 7, 1, "R/W", "restart automatically when done (not used by dgfpga)"),
)
INTR_FIELDS = (
    BitField("AP_DONE", 0, 1, "R/W", "interrupt on ap_done"),
    BitField("AP_READY", 1, 1, "R/W", "interrupt on ap_ready"),
)
ISR_FIELDS = (
    BitField("AP_DONE", 0, 1, "R/TOW", "ap_done interrupt pending (write 1 to toggle/clear)"),
    BitField("AP_READY", 1, 1, "R/TOW", "ap_ready interrupt pending (write 1 to toggle/clear)"),
)

STATUS_FIELDS = (
    BitField("CODE", 0, 8, "R", "error code (0 = OK); see ERROR_CODES"),
    BitField("LAYER", 8, 8, "R", "index in the program of the failing record"),
    BitField("ENTRY", 16, 16, "R", "failing work-list entry, record word of the faulty field, "
             "or index of the bad entry in a gate parameter section"),
)
ENGINE_ID_FIELDS = (
    BitField("CONFIG_HASH", 0, 32, "R", "EngineConfig.config_hash of the built engine"),
    BitField("FORMAT_VERSION", 32, 16, "R", "formats.FORMAT_VERSION the engine reads"),
    BitField("MAGIC", 48, 16, "R", f"0x{ENGINE_MAGIC:04X}: this is a dgfpga engine"),
)

RUN_FLAGS_FIELDS = (
    BitField("DENSE", 0, 1, "R/W", "every gate record turns every tile and channel on "
             "(no gate evaluation): the dense baseline of the same program"),
)

ARGUMENTS = (
    Argument("program", 64, "in", "DDR byte address of the program records to run "
             "(layer_count x record bytes, aligned to the AXI width)"),
    Argument("layer_count", 32, "in", "records to run, 0..max_layers (0 = identify run)"),
    Argument("fmap_base", 64, "in", "FMAP region: feature maps (input, compact, residual, output)"),
    Argument("fmap_bytes", 32, "in", "FMAP region size; no access outside [base, base+size)"),
    Argument("weight_base", 64, "in", "WEIGHT region: weight streams and per-channel params"),
    Argument("weight_bytes", 32, "in", "WEIGHT region size"),
    Argument("work_base", 64, "in", "WORK region: tile lists, channel lists, tile bitmaps"),
    Argument("work_bytes", 32, "in", "WORK region size"),
    Argument("sums_base", 64, "in", "SUMS region: per-tile channel sums (int32) written by the engine"),
    Argument("sums_bytes", 32, "in", "SUMS region size"),
    Argument("status", 32, "out", "result of the last run", STATUS_FIELDS),
    Argument("cycles", 64, "out", "engine clock cycles from ap_start to ap_done of the last run"),
    Argument("engine_id", 64, "out", "identifies the engine build", ENGINE_ID_FIELDS),
    Argument("run_flags", 32, "in", "flags of the run (bits 31:1 reserved, write 0)",
             RUN_FLAGS_FIELDS),
)

FIRST_ARG_OFFSET = 0x10


def _split_fields(fields: tuple, word: int) -> tuple:
    """The part of a 64-bit argument's bit fields that falls into 32-bit word `word`."""
    out = []
    for f in fields:
        lo, hi = max(f.lsb, 32 * word), min(f.lsb + f.width, 32 * word + 32)
        if lo < hi:
            out.append(BitField(f.name, lo - 32 * word, hi - lo, f.access, f.meaning))
    return tuple(out)


def _derive_registers() -> tuple:
    regs = [
        Register(0x00, "CTRL", 32, "RW", 0x4, "control: ap_ctrl_hs handshake", CTRL_FIELDS),
        Register(0x04, "GIE", 32, "RW", 0x0, "global interrupt enable (bit 0)",
                 (BitField("ENABLE", 0, 1, "R/W", "global interrupt enable"),)),
        Register(0x08, "IER", 32, "RW", 0x0, "interrupt enable", INTR_FIELDS),
        Register(0x0C, "ISR", 32, "RW", 0x0, "interrupt status", ISR_FIELDS),
    ]
    off = FIRST_ARG_OFFSET
    for a in ARGUMENTS:
        acc = "RW" if a.direction == "in" else "RO"
        up = a.name.upper()
        if a.bits == 64:
            regs.append(Register(off, f"{up}_LO", 32, acc, 0, f"{a.meaning} [31:0]",
                                 _split_fields(a.fields, 0)))
            regs.append(Register(off + 4, f"{up}_HI", 32, acc, 0, f"{a.meaning} [63:32]",
                                 _split_fields(a.fields, 1)))
            tail = off + 8
            off += 12
        elif a.bits == 32:
            regs.append(Register(off, up, 32, acc, 0, a.meaning, a.fields))
            tail = off + 4
            off += 8
        else:  # pragma: no cover - table error
            raise ValueError(f"argument {a.name}: bits must be 32 or 64")
        if a.direction == "out":
            regs.append(Register(tail, f"{up}_CTRL", 32, "RO", 0,
                                 f"{a.name} valid flag",
                                 (BitField("AP_VLD", 0, 1, "R/COR",
                                           f"{a.name} written by the last run (clear on read)"),)))
    return tuple(regs)


REGISTERS = _derive_registers()
BY_NAME = {r.name: r for r in REGISTERS}
ADDR_BITS = max(8, (REGISTERS[-1].offset + 4 - 1).bit_length())  # s_axilite address width

# ---- STATUS error codes (engine and host share them) ----
ERROR_CODES = (
    (0, "OK", "all layers ran"),
    (1, "BAD_MAGIC", "descriptor magic or format version wrong"),
    (2, "BAD_OP", "unknown op kind, kernel, stride or pad"),
    (3, "BAD_SHAPE", "a size exceeds the config limits or input/output sizes disagree"),
    (4, "BAD_TILE", "tile size or grid does not match the output size / limits"),
    (5, "BAD_FLAGS", "flag combination not supported (e.g. residual with max-pool)"),
    (6, "BAD_COUNT", "a work-list count exceeds its grid or channel count, or layer_count > max_layers"),
    (7, "BAD_OFFSET", "an offset is misaligned or a buffer lies outside its region"),
    (8, "NO_FIT", "the layer does not fit the on-chip buffers"),
    (9, "TILE_RANGE", "a tile index is outside the grid"),
    (10, "TILE_ORDER", "tile indices not strictly increasing (duplicate/unsorted)"),
    (11, "CHANNEL_RANGE", "a channel index is outside the layer's channels"),
    (12, "CHANNEL_ORDER", "channel indices not strictly increasing (duplicate/unsorted)"),
    (13, "BITMAP_MISMATCH", "tile lists disagree with the tile bitmap"),
    (14, "AXI_ERROR", "an AXI master got an error response"),
    (15, "BAD_GATE", "a gate or head record or its parameters are malformed"),
)
ERR = {name: code for code, name, _ in ERROR_CODES}
ERROR_NAMES = {code: name for code, name, _ in ERROR_CODES}


def field(register: str, name: str) -> BitField:
    """Bit field `name` of register `register` (a REGISTERS name, or STATUS/ENGINE_ID for
    the 64-bit argument's whole-value fields)."""
    table = {"STATUS": STATUS_FIELDS, "ENGINE_ID": ENGINE_ID_FIELDS,
             "RUN_FLAGS": RUN_FLAGS_FIELDS}.get(register)
    fields = table if table is not None else BY_NAME[register].fields
    for f in fields:
        if f.name == name:
            return f
    raise KeyError(f"register {register} has no field {name}")


def pack_fields(fields: tuple, **values: int) -> int:
    """A word from named field values (missing fields are 0); ValueError if one overflows."""
    word = 0
    known = {f.name.lower(): f for f in fields}
    for name, v in values.items():
        f = known[name]
        if not 0 <= v < (1 << f.width):
            raise ValueError(f"{f.name}={v} does not fit {f.width} bits")
        word |= v << f.lsb
    return word


def unpack_fields(fields: tuple, word: int) -> tuple[int, ...]:
    """The values of `fields` (in table order) in `word`."""
    return tuple((word >> f.lsb) & ((1 << f.width) - 1) for f in fields)


STATUS_ENTRY_MAX = (1 << field("STATUS", "ENTRY").width) - 1   # largest ENTRY the word holds


def pack_status(code: int, layer: int = 0, entry: int = 0) -> int:
    """STATUS word from its fields (STATUS_FIELDS)."""
    try:
        return pack_fields(STATUS_FIELDS, code=code, layer=layer, entry=entry)
    except ValueError:
        raise ValueError(f"status fields out of range: code={code} layer={layer} "
                         f"entry={entry}") from None


def unpack_status(word: int) -> tuple[int, int, int]:
    """(code, layer, entry) from a STATUS word."""
    return unpack_fields(STATUS_FIELDS, word)


def describe_status(word: int) -> str:
    """Human-readable STATUS, for error messages."""
    code, layer, entry = unpack_status(word)
    if code == 0:
        return "OK"
    name = ERROR_NAMES.get(code, f"UNKNOWN_{code}")
    meaning = next((m for c, _, m in ERROR_CODES if c == code), "unknown error code")
    return f"{name} ({meaning}) at layer {layer}, entry {entry}"


def engine_id(cfg: EngineConfig) -> int:
    """The 64-bit ENGINE_ID value an engine built for `cfg` reports."""
    from dgfpga.contract.formats import FORMAT_VERSION
    return pack_fields(ENGINE_ID_FIELDS, config_hash=cfg.config_hash,
                       format_version=FORMAT_VERSION, magic=ENGINE_MAGIC)


def check_engine_id(value: int, cfg: EngineConfig) -> None:
    """Raise ConfigError if an engine's ENGINE_ID does not match `cfg` and our formats."""
    from dgfpga.errors import ConfigError
    from dgfpga.contract.formats import FORMAT_VERSION
    h, version, magic = unpack_fields(ENGINE_ID_FIELDS, value)
    if magic != ENGINE_MAGIC:
        raise ConfigError(f"ENGINE_ID magic 0x{magic:04X} is not 0x{ENGINE_MAGIC:04X}: "
                          "not a dgfpga engine (wrong bitstream or IP?)")
    if version != FORMAT_VERSION:
        raise ConfigError(f"engine reads format version {version}, this dgfpga writes "
                          f"{FORMAT_VERSION}: rebuild the bitstream or use a matching dgfpga")
    if h != cfg.config_hash:
        raise ConfigError(f"engine built for config hash 0x{h:08X}, bundle is for "
                          f"'{cfg.name}' (0x{cfg.config_hash:08X}): load the matching bitstream")
