"""`build-hls` as a pipeline step: checkpoint + calibration images -> HLS project + bundle.

    quantize (dgfpga.quant.quantizer) -> pack (dgfpga.runtime.packer) -> golden self-check (dgfpga.numerics.golden)
    -> HLS project + Vivado scripts (dgfpga.backends.hls_project) -> bundle (dgfpga_host.bundle)

Deterministic: the same checkpoint, images and configuration give byte-identical files.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from dgfpga.contract.engine_config import EngineConfig

__all__ = ["BuildResult", "build_hls", "engine_refusals"]


@dataclass
class BuildResult:
    out_dir: Path
    project_files: list
    bundle_dir: Path
    qmodel: object
    resources: object
    selfcheck_images: int


def selfcheck_for(qm, images: np.ndarray, labels: Optional[np.ndarray] = None):
    """Golden outputs (gated and dense) for the bundle's self-check (the decisions of the
    gated blocks: a MobileNetV2's ungated blocks have none)."""
    from dgfpga.numerics.golden import run_golden
    from dgfpga_host.bundle import SelfCheck
    g = run_golden(qm, images)
    gd = run_golden(qm, images, masks="dense", keep_layers=False)
    labels = np.full(len(images), -1) if labels is None else np.asarray(labels)
    return SelfCheck(g.layers["input"], labels, g.logits_int, gd.logits_int,
                     [m.spatial for m in g.masks if m is not None],
                     [m.channel for m in g.masks if m is not None])


def engine_refusals(plan) -> dict:
    """Per engine ("hls", "rtl": the HLS engine the project builds and the RTL its
    bundle's simulated devices run), the features of `plan`'s program that engine does not
    implement yet (formats.PENDING_BY_ENGINE: "op 5 (dwconv)", field names); engines that
    run all of it are left out, so {} means every engine runs the program."""
    from dgfpga.contract import formats
    out = {}
    for engine in formats.ENGINES:
        used = set()
        for lp in plan.layers:
            t = lp.template
            if t.op in formats.pending_ops(engine):
                used.add(f"op {t.op} ({formats.OP_KINDS[t.op]})")
            used |= {f for f in formats.pending_fields(engine) if getattr(t, f)}
        if used:
            out[engine] = sorted(used)
    return out


def build_hls(qm, cfg: EngineConfig, out_dir, selfcheck_images: np.ndarray,
              selfcheck_labels: Optional[np.ndarray] = None, extra: Optional[dict] = None,
              force: bool = False) -> BuildResult:
    """Write OUT/ (HLS project + Vivado scripts + Makefile) and OUT/bundle for `qm`.

    Raises ConfigError when the configuration does not fit the part or a layer does not
    fit the engine's buffers, and ImageSpecError when the self-check images are not
    normalised float [N, C, H, W] of the network's input shape: all before any file is
    written. OUT is written transactionally (dgfpga.outdir.output_dir: complete or left as
    it was; a folder dgfpga did not write is refused unless `force`, and the user's files
    are never overwritten); OutputError for an unwritable or foreign OUT, before the work.
    """
    from dgfpga.data.images import ImageSpecError
    from dgfpga.backends.hls_project import generate_project
    from dgfpga.runtime.packer import plan_network
    from dgfpga.perf.resources import check_fits
    from dgfpga_host.bundle import write_bundle
    from dgfpga.outdir import output_dir, preflight
    preflight(out_dir, force)                # writable, and ours to replace: before work
    res = check_fits(cfg)                    # refuses an impossible configuration
    plan = plan_network(qm, cfg)             # refuses a network that does not fit
    refused = engine_refusals(plan)         # an engine would refuse its program
    if refused:
        from dgfpga.errors import ConfigError
        from dgfpga.contract.formats import ENGINE_NAMES, ENGINE_SOURCES
        who = "; ".join(f"{ENGINE_NAMES[e]} ({ENGINE_SOURCES[e]}) does not implement {', '.join(f)} yet"
                        for e, f in refused.items())
        raise ConfigError(
            f"{qm.arch}: its program uses features specified in docs/formats.md that an "
            f"engine this build packages refuses ({who}; formats.PENDING_BY_ENGINE): no "
            "project is generated. The Python levels run it "
            "(dgfpga.runtime.interpreter.run_program(..., pending=True), the numpy device "
            "with pending=True).")
    x = np.asarray(selfcheck_images)
    if (x.ndim != 4 or tuple(x.shape[1:]) != tuple(qm.input_shape) or len(x) == 0
            or not np.issubdtype(x.dtype, np.floating)):
        raise ImageSpecError(f"self-check images: {x.dtype} {list(x.shape)}; {qm.arch} takes "
                             f"normalised float [N>=1, {', '.join(map(str, qm.input_shape))}]")
    sc = selfcheck_for(qm, x, selfcheck_labels)    # before any file is written
    out = Path(out_dir)
    with output_dir(out, "build-hls", force=force) as tmp:     # complete or not at all
        files = generate_project(cfg, tmp)
        write_bundle(tmp / "bundle", qm, cfg, sc, extra)
    files = sorted(out / f.relative_to(tmp) for f in files)
    return BuildResult(out, files, out / "bundle", qm, res, len(selfcheck_images))
