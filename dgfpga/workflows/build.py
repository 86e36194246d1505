"""`build-hls` as a pipeline step: checkpoint + calibration images -> HLS project + bundle.

    quantize (dgfpga.quant.quantize) -> pack (dgfpga.runtime.packer) -> golden self-check (dgfpga.numerics.golden)
    -> HLS project + Vivado scripts (dgfpga.backends.hls_project) -> bundle (dgfpga_host.bundle)

Deterministic: the same checkpoint, images and configuration give byte-identical files.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from dgfpga.contract.engine_config import EngineConfig

__all__ = ["BuildResult", "build_hls"]


@dataclass
class BuildResult:
    out_dir: Path
    project_files: list
    bundle_dir: Path
    qmodel: object
    resources: object
    selfcheck_images: int


def selfcheck_for(qm, images: np.ndarray, labels: Optional[np.ndarray] = None):
    """Golden outputs (gated and dense) for the bundle's self-check."""
    from dgfpga.numerics.golden import run_golden
    from dgfpga_host.bundle import SelfCheck
    g = run_golden(qm, images)
    gd = run_golden(qm, images, masks="dense", keep_layers=False)
    labels = np.full(len(images), -1) if labels is None else np.asarray(labels)
    return SelfCheck(g.layers["input"], labels, g.logits_int, gd.logits_int,
                     [m.spatial for m in g.masks], [m.channel for m in g.masks])


def build_hls(qm, cfg: EngineConfig, out_dir, selfcheck_images: np.ndarray,
              selfcheck_labels: Optional[np.ndarray] = None, extra: Optional[dict] = None
              ) -> BuildResult:
    """Write OUT/ (HLS project + Vivado scripts + Makefile) and OUT/bundle for `qm`.

    Raises ConfigError when the configuration does not fit the part or a layer does not
    fit the engine's buffers (the reason is in the message).
    """
    from dgfpga.backends.hls_project import generate_project
    from dgfpga.runtime.packer import plan_network
    from dgfpga.perf.resources import check_fits
    from dgfpga_host.bundle import write_bundle
    res = check_fits(cfg)                    # refuses an impossible configuration
    plan_network(qm, cfg)                    # refuses a network that does not fit
    out = Path(out_dir)
    files = generate_project(cfg, out)
    sc = selfcheck_for(qm, selfcheck_images, selfcheck_labels)
    bundle = write_bundle(out / "bundle", qm, cfg, sc, extra)
    return BuildResult(out, files, bundle, qm, res, len(selfcheck_images))
