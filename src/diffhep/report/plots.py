"""The job's figures, in mplhep's CMS style (Matplotlib Agg backend), saved atomically as PNG.

Every function takes plain numbers (lists, arrays, dicts), so reports can be
redrawn from ``results.json``; the style is applied in a context and never
changes Matplotlib's global settings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
import numpy as np  # noqa: E402

from diffhep.outputs import save_figure  # noqa: E402

__all__ = ["plot_history", "plot_region", "plot_cutflow", "plot_landscape"]

DPI = 80


@contextmanager
def _figure(
    path: str | Path, ncols: int = 1, nrows: int = 1, *, label: str = "Simulation"
) -> Iterator[tuple[Any, Any]]:
    """A figure in the CMS style, saved atomically to ``path`` and closed on exit."""
    with plt.style.context(mplhep.style.CMS):
        fig, axes = plt.subplots(nrows, ncols, figsize=(8 * ncols, 6.5 * nrows), squeeze=False,
                                 layout="constrained")
        try:
            yield fig, axes
            for ax in axes.flat:
                # A plain text label: mplhep.cms.text redraws the figure to place itself (1 s a panel).
                ax.text(0.0, 1.01, f"diffhep {label}", transform=ax.transAxes, fontsize=16,
                        fontstyle="italic", ha="left", va="bottom")
            save_figure(path, fig, dpi=DPI)
        finally:
            plt.close(fig)


def plot_history(path: str | Path, history: Sequence[Mapping[str, float]], units: Mapping[str, str]) -> Path:
    """Objective and every cut value against the optimiser step (``history.png``).

    Args:
        path: PNG to write.
        history: per step ``{"step", "objective", <cut>: value, "slope_scale", ...}``.
        units: cut name -> unit (the panels, in order).
    """
    steps = np.array([h["step"] for h in history], dtype=float)
    with _figure(path, ncols=1 + len(units)) as (_, axes):
        ax = axes[0, 0]
        ax.plot(steps, [h["objective"] for h in history], color="k", label="objective")
        ax.set_xlabel("step")
        ax.set_ylabel("objective (soft)")
        if history and "slope_scale" in history[0]:
            twin = ax.twinx()
            twin.plot(steps, [h["slope_scale"] for h in history], color="tab:gray", ls=":", label="slope scale")
            twin.set_ylabel("slope scale", color="tab:gray")
        for ax, (name, unit) in zip(axes[0, 1:], units.items()):
            ax.plot(steps, [h[name] for h in history], color="tab:blue")
            ax.set_xlabel("step")
            ax.set_ylabel(f"{name} [{unit}]" if unit else name)
    return Path(path)


def _stack(ax: Any, edges: np.ndarray, counts: Mapping[str, np.ndarray], signal: Sequence[str], title: str) -> None:
    backgrounds = [k for k in counts if k not in signal]
    total = np.zeros(len(edges) - 1)
    if backgrounds:
        mplhep.histplot([np.asarray(counts[k]) for k in backgrounds], edges, stack=True, histtype="fill",
                        label=backgrounds, ax=ax, alpha=0.8)
        total = np.sum([np.asarray(counts[k]) for k in backgrounds], axis=0)
    for k in signal:
        mplhep.histplot(total + np.asarray(counts[k]), edges, histtype="step", ax=ax, lw=2, label=f"{k} (stacked)")
        mplhep.histplot(np.asarray(counts[k]), edges, histtype="step", ax=ax, lw=2, ls="--", label=k)
    ax.set_title(title, fontsize=16, loc="right")
    ax.set_ylabel("events / bin")
    ax.legend(fontsize=14)


def plot_region(
    path: str | Path,
    region: str,
    observable: str,
    edges: np.ndarray,
    before: Mapping[str, np.ndarray],
    after: Mapping[str, np.ndarray],
    *,
    signal: Sequence[str],
    z_before: float,
    z_after: float,
) -> Path:
    """Stacked hard-cut histograms of a region at the initial and the optimised cuts (``region_<name>.png``).

    Args:
        before, after: sample -> ``Float[ndarray, "bins"]`` counts (events).
        signal: the signal samples (drawn as lines on top of the background stack).
        z_before, z_after: the hard-cut pyhf significances of all regions together, for the titles.
    """
    edges = np.asarray(edges, dtype=float)
    with _figure(path, ncols=2) as (_, axes):
        _stack(axes[0, 0], edges, before, signal, f"{region}: initial cuts (total Z0 = {z_before:.2f})")
        _stack(axes[0, 1], edges, after, signal, f"{region}: optimised cuts (total Z0 = {z_after:.2f})")
        top = max(ax.get_ylim()[1] for ax in axes[0])
        for ax in axes[0]:
            ax.set_xlabel(observable)
            ax.set_ylim(0, top * 1.15)
    return Path(path)


def plot_cutflow(
    path: str | Path,
    before: Mapping[str, Sequence[Mapping[str, Any]]],
    after: Mapping[str, Sequence[Mapping[str, Any]]],
) -> Path:
    """Yield of every sample after each selection step, initial and optimised cuts (``cutflow.png``).

    Args:
        before, after: ``analysis.cutflow`` output: sample -> ``[{"step", "soft", "hard"}, ...]``.
    """
    with _figure(path) as (_, axes):
        ax = axes[0, 0]
        labels: list[str] = []
        for i, (sample, steps) in enumerate(after.items()):
            color = f"C{i}"
            x = np.arange(len(steps))
            labels = labels if len(labels) >= len(steps) else [s["step"] for s in steps]
            ax.plot(x, [max(s["hard"], 1e-3) for s in steps], "o-", color=color, label=f"{sample} (optimised)")
            ax.plot(x, [max(s["soft"], 1e-3) for s in steps], "x", color=color, ms=10)
            if sample in before:
                ax.plot(x, [max(s["hard"], 1e-3) for s in before[sample]][: len(x)], "s--", color=color,
                        alpha=0.5, label=f"{sample} (initial)")
        ax.set_xticks(np.arange(len(labels)), labels, rotation=30, ha="right", fontsize=14)
        ax.set_yscale("log")
        ax.set_ylabel("yield (events); x: soft")
        ax.legend(fontsize=12)
    return Path(path)


def plot_landscape(path: str | Path, scan: Mapping[str, Any], units: Mapping[str, str]) -> Path | None:
    """Hard-cut pyhf significance near the optimum, for one or two cuts (``landscape.png``).

    Args:
        scan: ``ScanResult.to_dict()`` of a grid scan.
        units: cut name -> unit.

    Returns:
        The path, or ``None`` (nothing drawn) for a random search (more than two cuts).
    """
    if scan["kind"] != "grid" or len(scan["parameters"]) > 2:
        return None
    names = scan["parameters"]
    z = np.array([np.nan if v is None else v for v in scan["significance"]], dtype=float)
    label = {k: f"{k} [{units[k]}]" if units.get(k) else k for k in names}
    with _figure(path) as (fig, axes):
        ax = axes[0, 0]
        if len(names) == 1:
            (k,) = names
            ax.plot(scan["axes"][k], z, "o-", color="k", label="hard cuts, pyhf")
            ax.axvline(scan["optimum"][k], color="tab:red", ls="--", label="optimiser")
            ax.set_xlabel(label[k])
            ax.set_ylabel("Z0 (pyhf)")
            ax.legend(fontsize=14)
        else:
            kx, ky = names
            grid = z.reshape(len(scan["axes"][kx]), len(scan["axes"][ky]))
            mesh = ax.pcolormesh(scan["axes"][kx], scan["axes"][ky], grid.T, shading="nearest", cmap="viridis")
            fig.colorbar(mesh, ax=ax, label="Z0 (pyhf, hard cuts)")
            ax.plot(scan["optimum"][kx], scan["optimum"][ky], "*", color="tab:red", ms=20, label="optimiser")
            ax.plot(scan["best"][kx], scan["best"][ky], "x", color="w", ms=14, mew=3, label="best grid point")
            ax.set_xlabel(label[kx])
            ax.set_ylabel(label[ky])
            ax.legend(fontsize=12)
    return Path(path)
