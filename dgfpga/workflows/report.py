"""The demo report: PNG figures (matplotlib, Agg) and one self-contained HTML page.

Every figure is made from plain data (numbers and arrays the demo measured) and carries
in its title the level that produced it: golden model, C-sim, RTL or the cycle model.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

__all__ = ["Report"]


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "axes.titlesize": 10,
                         "axes.grid": True, "grid.alpha": 0.3})
    return plt


class Report:
    """Collects sections (text, tables, figures) and writes `index.html` + PNGs."""

    def __init__(self, out_dir, title: str):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.sections: list[str] = []
        self.figures: list[str] = []

    # ---- building blocks ----
    def heading(self, text: str) -> None:
        self.sections.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str) -> None:
        self.sections.append(f"<p>{html.escape(text)}</p>")

    def table(self, header: Sequence[str], rows: Sequence[Sequence], caption: str = "") -> None:
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>"
                       for r in rows)
        self.sections.append(f"<table>{cap}<tr>{head}</tr>{body}</table>")

    def figure(self, fig, name: str, caption: str) -> Path:
        path = self.out / f"{name}.png"
        fig.savefig(path, bbox_inches="tight")
        _plt().close(fig)
        self.figures.append(path.name)
        self.sections.append(f'<figure><img src="{path.name}" alt="{html.escape(caption)}">'
                             f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        return path

    def image(self, path: Path, caption: str) -> None:
        """Include an existing PNG (copied into the report folder)."""
        dst = self.out / Path(path).name
        if Path(path).resolve() != dst.resolve():
            dst.write_bytes(Path(path).read_bytes())
        self.figures.append(dst.name)
        self.sections.append(f'<figure><img src="{dst.name}" alt="{html.escape(caption)}">'
                             f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    def write(self, summary: Optional[dict] = None) -> Path:
        css = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
               "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;"
               "padding:3px 8px;text-align:right}th{background:#eee}caption{text-align:left;"
               "font-weight:bold;padding:4px 0}img{max-width:100%}figure{margin:1em 0}"
               "figcaption{color:#555;font-size:90%}")
        page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}"
                f"</title><style>{css}</style></head><body><h1>{html.escape(self.title)}</h1>"
                + "\n".join(self.sections) + "</body></html>\n")
        path = self.out / "index.html"
        path.write_text(page)
        if summary is not None:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2, default=_json) + "\n")
        return path


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    return str(v)


def _json(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(type(o))


# ----------------------------------------------------------------------------- figures

def density_figure(block_names, float_density, int8_density, level: str):
    """Per-block executed-MAC density, float model vs int8 golden model."""
    plt = _plt()
    x = np.arange(len(block_names))
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(x - 0.2, float_density, 0.4, label="float model (PyTorch)")
    ax.bar(x + 0.2, int8_density, 0.4, label="int8 golden model")
    ax.set_xticks(x, block_names, rotation=45, ha="right")
    ax.set_ylabel("executed / dense MACs")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"Per-block density, mean over test images ({level})")
    ax.legend()
    return fig


def layer_cycles_figure(layer_names, dense_cycles, gated_cycles, level: str):
    """Per-layer engine cycles, dense vs gated."""
    plt = _plt()
    x = np.arange(len(layer_names))
    fig, ax = plt.subplots(figsize=(10, 3.4))
    ax.bar(x - 0.2, dense_cycles, 0.4, label="dense (all gates on)", color="#999")
    ax.bar(x + 0.2, gated_cycles, 0.4, label="gated (DGNet masks)", color="#2a7")
    ax.set_xticks(x, layer_names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("engine cycles (median over images)")
    ax.set_title(f"Cycles per engine start (stem, then each block), dense vs gated ({level})")
    ax.legend()
    return fig


def speedup_figure(rows):
    """rows: (network, theoretical MAC reduction, realised speedup, level)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(8, 1.15 * len(rows)), 3.6))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r[1] for r in rows], 0.4, label="theoretical MAC reduction", color="#bbb")
    ax.bar(x + 0.2, [r[2] for r in rows], 0.4, label="realised speedup (cycles)", color="#27a")
    for i, r in enumerate(rows):
        ax.text(i + 0.2, r[2], f"{r[2]:.2f}x\n({r[2] / r[1]:.0%})", ha="center", va="bottom",
                fontsize=7)
    ax.set_xticks(x, [f"{r[0]}\n{r[3]}" for r in rows], fontsize=7)
    ax.set_ylabel("x faster / x fewer MACs")
    ax.set_ylim(0, 1.25 * max(max(r[1], r[2]) for r in rows))
    ax.set_title("Realised speedup vs theoretical MAC reduction (efficiency in brackets)")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def latency_figure(rows, level: str):
    """rows: (label, dense_ms, gated_ms); one panel per row (the scales differ by 100x)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(rows), figsize=(2.3 * len(rows), 3), squeeze=False)
    for ax, (label, d_ms, g_ms) in zip(axes[0], rows):
        ax.bar([0, 1], [d_ms, g_ms], color=["#999", "#2a7"])
        for i, v in enumerate((d_ms, g_ms)):
            ax.text(i, v, f"{v:.3g} ms\n{1e3 / v:.0f} img/s", ha="center", va="bottom", fontsize=7)
        ax.set_xticks([0, 1], ["dense", "gated"], fontsize=8)
        ax.set_ylim(0, 1.3 * max(d_ms, g_ms))
        ax.set_title(label, fontsize=8)
    axes[0][0].set_ylabel("latency per image, ms")
    fig.suptitle(f"Predicted Ultra96 latency ({level})", fontsize=10)
    fig.tight_layout()
    return fig


#: one colour per `cycle_model.BOUNDS` entry (the bounds figure)
BOUND_COLOURS = {"compute": "#2a7", "tile overhead": "#8c8", "requant": "#a6d", "read bandwidth": "#27a",
                 "prefetch": "#7bd", "write": "#e93", "weights": "#c33", "overhead": "#999"}


def bounds_figure(panels, level: str):
    """panels: (title, {"dense"|"gated": [(layer name, {bound: cycles})]}), one row each:
    per layer a dense and a gated bar stacked by what bounded its cycles
    (`cycle_model.BOUNDS`)."""
    from dgfpga.perf.cycle_model import BOUNDS
    plt = _plt()
    n = max(len(p[1]["dense"]) for p in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(9, 0.42 * n), 3.2 * len(panels)),
                             squeeze=False)
    for ax, (title, runs) in zip(axes[:, 0], panels):
        names = [name for name, _ in runs["dense"]]
        for off, mode, hatch in ((-0.2, "dense", "//"), (0.2, "gated", None)):
            by = dict(runs[mode])            # a layer every gated block skipped: absent
            x = np.arange(len(names)) + off
            bottom = np.zeros(len(names))
            for b in BOUNDS:
                v = np.array([by.get(nm, {}).get(b, 0.0) for nm in names])
                ax.bar(x, v, 0.38, bottom=bottom, color=BOUND_COLOURS[b], hatch=hatch,
                       edgecolor="white", linewidth=0.3,
                       label=b if mode == "gated" else None)
                bottom += v
        ax.set_xticks(np.arange(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("engine cycles")
        ax.set_title(f"{title}: per layer, dense (hatched) and gated, by what bounds the cycles",
                     fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    fig.suptitle(f"What bounds each layer ({level})", fontsize=10)
    fig.tight_layout()
    return fig


def resources_figure(used: dict, budget: dict, config: str):
    """Resource estimate as a share of the part's budget."""
    plt = _plt()
    names = list(used)
    share = [100.0 * used[n] / budget[n] for n in names]
    fig, ax = plt.subplots(figsize=(6, 2.6))
    bars = ax.barh(names, share, color=["#c33" if s > 100 else "#27a" for s in share])
    for b, n, s in zip(bars, names, share):
        ax.text(min(s, 100) + 1, b.get_y() + b.get_height() / 2,
                f"{used[n]:,} / {budget[n]:,} ({s:.0f}%)", va="center", fontsize=8)
    ax.set_xlim(0, 130)
    ax.axvline(100, color="k", lw=0.8)
    ax.set_xlabel("% of ZU3EG")
    ax.set_title(f"Resource estimate, engine '{config}' (estimate, not synthesis)")
    return fig
