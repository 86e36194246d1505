"""The gate figure and mask statistics: cost maps, object overlap, the PNG and the command."""
import numpy as np
import pytest

from dgfpga.workflows.gate_figure import cost_maps, gate_figure, mask_statistics, object_overlap


def test_cost_map_counts_blocks_per_pixel():
    a = np.zeros((1, 2, 2), bool)
    a[0, 0, 0] = True                        # top-left 16x16 quadrant
    b = np.ones((1, 8, 8), bool)
    cm = cost_maps([a, b], (32, 32))
    assert cm.shape == (1, 32, 32)
    assert (cm[0, :16, :16] == 2).all() and (cm[0, 16:, :] == 1).all()


def test_object_overlap_separates_object_and_background():
    obj = np.zeros((2, 32, 32), bool)
    obj[:, 0:4, 0:4] = True                  # exactly grid cell (0, 0) of an 8x8 grid
    s = np.zeros((2, 8, 8), bool)
    s[:, 0, 0] = True                        # only the object tile is on
    s[1, 7, 7] = True                        # plus one background tile in image 1
    r = object_overlap([s], obj)
    assert r["object_tiles_active"] == 1.0
    assert r["background_tiles_active"] == pytest.approx(0.5 / 63)
    assert r["active_tiles_on_object"] == pytest.approx(0.75)


def test_mask_statistics_see_image_dependence():
    rng = np.random.default_rng(0)
    varying = rng.random((50, 4, 4)) < 0.5
    constant = np.ones((50, 4, 4), bool)
    ch = [np.ones((50, 16), bool), np.ones((50, 16), bool)]
    st = mask_statistics([varying, constant], ch)
    assert st["spatial_density_std"][0] > 0.05 and st["spatial_density_std"][1] == 0
    assert st["spatial_unlike_mode"][0] > 0.9 and st["spatial_unlike_mode"][1] == 0


def test_figure_png_written(tmp_path):
    rng = np.random.default_rng(1)
    imgs = rng.normal(size=(3, 3, 32, 32)).astype(np.float32)
    sp = [rng.random((3, 8, 8)) < 0.5, rng.random((3, 4, 4)) < 0.5]
    ch = [rng.random((3, 16)) < 0.5, rng.random((3, 32)) < 0.5]
    obj = np.zeros((3, 32, 32), bool)
    obj[:, 10:20, 10:20] = True
    out = gate_figure(imgs, sp, ch, tmp_path / "f.png", "test", labels=[1, 2, 3], n=3,
                      object_masks=obj)
    data = (tmp_path / "f.png").read_bytes()
    assert out == tmp_path / "f.png" and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_gate_figure_command_on_a_checkpoint(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from dgfpga.cli.main import main
    from dgfpga_models import build_model
    from dgfpga_models.checkpoint import save_checkpoint
    monkeypatch.setenv("DGFPGA_CACHE", str(tmp_path / "cache"))
    model = build_model("resdg20_cifar10", num_classes=10)
    ck = save_checkpoint(tmp_path / "m.pth.tar", model, target_density=0.5)
    assert main(["gate-figure", "--checkpoint", str(ck), "-o", str(tmp_path / "g.png"),
                 "--count", "2"]) == 0
    assert (tmp_path / "g.png").stat().st_size > 5000
    with pytest.raises(SystemExit) as exc:          # a usage error, before any work
        main(["gate-figure", "--checkpoint", str(ck), "-o", str(tmp_path / "h.png"),
              "--count", "0"])
    assert exc.value.code == 2 and not (tmp_path / "h.png").exists()
    assert main(["gate-figure", "--checkpoint", str(ck), "-o", str(tmp_path / "h.png"),
                 "--first", "1999", "--count", "4"]) == 2      # past the end of the test split
    assert not (tmp_path / "h.png").exists()


def test_collect_masks_skips_a_mobilenets_ungated_blocks():
    """A MobileNetV2 DGNet gates its identity blocks only: the masks come per gated block
    (the others have none), in network order, with each block's grid and channels."""
    pytest.importorskip("torch")
    pytest.importorskip("dgfpga_models")
    from dgfpga.quant.float_model import make_test_model
    from dgfpga.workflows.gate_figure import collect_masks
    x = np.random.default_rng(0).normal(0, 1, (3, 3, 32, 32)).astype(np.float32)
    model = make_test_model("mobilenet_v2dg9_cifar10", x)
    gated = [b for b in model.blocks() if b.gated]
    assert 0 < len(gated) < len(model.blocks())
    spatial, channel = collect_masks(model, x)
    assert len(spatial) == len(channel) == len(gated)
    for s, c, b in zip(spatial, channel, gated):
        assert s.dtype == bool and s.shape[0] == 3 and c.shape[0] == 3
        assert c.shape[1] == b.mid_channels
