"""Plots of the observable before and after optimisation (Matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import hist
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from diffhep.outputs import save_figure  # noqa: E402

__all__ = ["plot_before_after"]


def _stack(ax, hists: Mapping[str, hist.Hist], signal: str, title: str) -> None:
    edges = next(iter(hists.values())).axes[0].edges
    bottom = np.zeros(len(edges) - 1)
    for name, h in hists.items():
        if name == signal:
            continue
        values = h.values()
        ax.stairs(bottom + values, edges, baseline=bottom, fill=True, alpha=0.6, label=name)
        bottom = bottom + values
    ax.stairs(bottom + hists[signal].values(), edges, baseline=bottom, color="k", lw=1.5,
              label=f"{signal} (stacked)")
    ax.set_title(title)
    ax.set_xlabel(next(iter(hists.values())).axes[0].label)
    ax.set_ylabel("events / bin")
    ax.legend(fontsize="small")


def plot_before_after(
    path: str | Path,
    before: Mapping[str, hist.Hist],
    after: Mapping[str, hist.Hist],
    *,
    signal: str,
    z_before: float,
    z_after: float,
) -> Path:
    """Stacked observable histograms with the initial and the optimised cuts, side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=False)
    _stack(axes[0], before, signal, f"initial cuts: Z = {z_before:.2f}")
    _stack(axes[1], after, signal, f"optimised cuts: Z = {z_after:.2f}")
    fig.tight_layout()
    out = save_figure(path, fig, dpi=110)
    plt.close(fig)
    return out
