"""Vector sets the shared layer sweep (dgfpga.backends.vectors.layer_sweep) does not cover, for the RTL.

Built from sweep cases by editing the program; the expected memory and STATUS come from
the numpy engine model (dgfpga.runtime.interpreter.run_program), never from the RTL:

- multi-layer programs (a layer reading the previous layer's output: the engine must
  drain its writes between layers), a 4-layer program (max_layers);
- descriptor faults, one per check family (magic, version, reserved bits, op, kernel,
  stride, pad, shift, shapes, tile/grid, flags, counts, offsets, NO_FIT) after a good layer;
- layer_count > max_layers (BAD_COUNT) and the identify run (layer_count = 0).
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from dgfpga.contract import formats
from dgfpga.runtime import interpreter
from dgfpga.contract import regmap
from dgfpga.contract.engine_config import EngineConfig, load_config
from dgfpga.contract.formats import FIELD_BY_NAME
from dgfpga.backends.vectors import VectorSet, build_layer_case, sweep_cases, write_vector_set

# The interpreter reports a bad magic/version as BAD_FLAGS (it maps the field name
# through _FIELD_CODE); regmap.ERROR_CODES defines BAD_MAGIC for it, which the RTL
# reports. Until dgfpga.runtime.interpreter agrees, these faults carry the regmap code here.
MAGIC_FAULTS = {"bad_magic", "bad_version", "reserved_word", "reserved_bits"}


def _words(raw: bytes) -> list[int]:
    return list(struct.unpack("<24I", raw))


def _pack(words) -> bytes:
    return struct.pack("<24I", *[w & 0xFFFFFFFF for w in words])


def _set_field(words: list[int], name: str, value: int) -> list[int]:
    f = FIELD_BY_NAME[name]
    w = list(words)
    w[f.word] = (w[f.word] & ~(f.mask << f.lsb)) | ((value & f.mask) << f.lsb)
    return w


def _expect(name: str, base: VectorSet, program: bytes, layer_count: int,
            cfg: EngineConfig, status_override: int | None = None) -> VectorSet:
    regions = {r: np.array(base.before[r], dtype=np.uint8, copy=True) for r in base.before}
    res = interpreter.run_program(program, layer_count, regions, cfg)
    status = res.status if status_override is None else status_override
    return VectorSet(name, cfg.name, cfg.config_hash, program, layer_count,
                     {r: np.array(base.before[r], dtype=np.uint8) for r in base.before},
                     {"fmap": regions["fmap"], "sums": regions["sums"]}, status,
                     int(sum(res.macs)), {"source": base.name})


def _case(name: str, cfg: EngineConfig) -> VectorSet:
    case = next(c for c in sweep_cases(cfg) if c.name == name)
    return build_layer_case(case, cfg)


def descriptor_faults(cfg: EngineConfig) -> dict:
    """name -> (edit of the descriptor words, expected (code name, entry) or None = interpreter)."""
    def field(name, value):
        return lambda w: _set_field(w, name, value)

    def words_edit(idx, value):
        def f(w):
            w = list(w)
            w[idx] = value
            return w
        return f

    return {
        "bad_magic": (field("magic", 0x55), ("BAD_MAGIC", 0)),
        "bad_version": (field("version", 7), ("BAD_MAGIC", 0)),
        "reserved_word": (words_edit(21, 1), ("BAD_MAGIC", 0)),
        "reserved_bits": (lambda w: [w[0] | (1 << 30)] + list(w[1:]), ("BAD_MAGIC", 0)),
        "bad_op": (field("op", 2), None),
        "bad_kernel": (field("k", 5), None),
        "bad_stride": (field("stride", 3), None),
        "bad_pad": (field("pad", 2), None),
        "bad_shift": (field("shift", 0), None),
        "in_h_over_limit": (field("in_h", cfg.max_height + 1), None),
        "out_w_mismatch": (field("out_w", 7), None),
        "tile_zero": (field("tile", 0), None),
        "grid_mismatch": (field("grid_w", 3), None),
        "relu_mismatch": (field("relu", 0), None),
        "maxpool_gated": (lambda w: _set_field(_set_field(w, "maxpool", 1), "tile_gated", 1), None),
        "res_mult_without_residual": (field("res_mult", 5), None),
        "n_active_out_dense": (field("n_active_out", 3), None),
        "offset_misaligned": (field("weight_offset", 4), None),
        "offset_unused_nonzero": (field("bitmap_offset", 64), None),
        "sums_outside_region": (field("sums_offset", 1 << 20), None),
        # 7x7 over the same 16 channels: one m-group of weights (tm*49*16) > half the buffer
        "no_fit": (lambda w: _set_field(_set_field(w, "k", 7), "pad", 3), None),
    }


def extra_vector_sets(cfg: EngineConfig | None = None) -> list[VectorSet]:
    cfg = cfg or load_config("small")
    out = []
    base = _case("dense_3x3_s1", cfg)
    d = formats.unpack_descriptor(base.program, cfg)
    # layer chain: L0 in->out, L1 out->in (reads what L0 wrote), L2 in->out again
    back = d.replace(in_offset=d.out_offset, out_offset=d.in_offset)
    chain = base.program + formats.pack_descriptor(back, cfg) + base.program
    out.append(_expect("chain_3_layers", base, chain, 3, cfg))
    out.append(_expect("chain_4_layers", base, chain + formats.pack_descriptor(back, cfg), 4, cfg))
    # gated conv2 in place, twice (the second reads the first's output as its residual)
    ip = _case("conv2_identity_in_place", cfg)
    out.append(_expect("in_place_twice", ip, ip.program + ip.program, 2, cfg))
    # layer_count limits
    over = base.program * (cfg.max_layers + 1)
    out.append(_expect("layer_count_over_max", base, over, cfg.max_layers + 1, cfg))
    out.append(_expect("identify_run", base, b"", 0, cfg))
    # descriptor faults: a good layer, then the faulty one (layer 1)
    for name, (edit, want) in descriptor_faults(cfg).items():
        bad = _pack(edit(_words(base.program)))
        override = None
        if want is not None:
            code, entry = want
            override = regmap.pack_status(regmap.ERR[code], 1, entry)
        vs = _expect(f"desc_{name}", base, base.program + bad, 2, cfg, override)
        if vs.expected_status == 0:
            raise ValueError(f"fault {name} was not detected by the interpreter")
        out.append(vs)
    return out


def write_extra(out_dir, cfg: EngineConfig | None = None) -> list[Path]:
    return [write_vector_set(vs, Path(out_dir) / vs.name) for vs in extra_vector_sets(cfg)]


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys
    for p in write_extra(sys.argv[1] if len(sys.argv) > 1 else "extra_vectors"):
        print(p)
