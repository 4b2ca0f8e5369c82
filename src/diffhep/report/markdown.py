"""``report.md``: what the job did, in one page that links the figures and files."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["render_report"]


def _num(x: Any, fmt: str = ".4g") -> str:
    return "n/a" if x is None else format(x, fmt)


def render_report(results: Mapping[str, Any], files: Mapping[str, str]) -> str:
    """Markdown report from the job's ``results`` dict and its ``files`` (label -> relative path).

    Args:
        results: as written to ``results.json``.
        files: every file the job wrote, label -> path relative to the output folder.
    """
    params, sig = results["parameters"], results["significance"]
    lines = [
        f"# {results['analysis']}: cut optimisation",
        "",
        f"- stop reason: {results['stop_reason']}",
        f"- steps: {results['steps']} (optimiser `{results['settings']['name']}`, seed {results['seed']}"
        + (f", resumed from step {results['resumed_from']}" if results.get("resumed_from") is not None else "")
        + ")",
        f"- config hash: `{results['config_hash']}`",
        "",
        "## Cuts",
        "",
        "| cut | unit | bounds | initial | optimised |",
        "|---|---|---|---:|---:|",
    ]
    for name, p in params.items():
        lines.append(
            f"| `{name}` | {p['unit'] or '-'} | [{p['low']:g}, {p['high']:g}] "
            f"| {results['initial'][name]:.4g} | {results['final'][name]:.4g} |"
        )
    lines += [
        "",
        "## Significance",
        "",
        "| | initial cuts | optimised cuts |",
        "|---|---:|---:|",
        f"| soft objective (slope scale {sig['soft']['slope_scale']:g}) "
        f"| {_num(sig['soft']['before'])} | {_num(sig['soft']['after'])} |",
        f"| hard cuts, pyhf Z0 | {_num(sig['hard_pyhf']['before'])} | {_num(sig['hard_pyhf']['after'])} |",
        "",
    ]
    scan = results.get("scan")
    if scan:
        best = ", ".join(f"`{k}` = {v:.4g}" for k, v in scan["best"].items())
        lines += [
            "## Brute-force check",
            "",
            f"A {scan['kind']} scan of {len(scan['points'])} points around the optimum "
            f"(hard cuts, pyhf) finds its best point at {best} with Z0 = {_num(scan['best_significance'])}, "
            f"against Z0 = {_num(scan['optimum_significance'])} at the optimiser's cuts "
            f"(gain {_num(scan['gain'], '+.3g')}).",
            "",
        ]
    lines += ["## Figures", ""]
    for label, path in files.items():
        if path.endswith(".png"):
            lines += [f"### {label}", "", f"![{label}]({path})", ""]
    lines += ["## Files", ""]
    for label, path in files.items():
        if not path.endswith(".png"):
            lines.append(f"- [{path}]({path}): {label}")
    lines += ["", "## Versions", ""]
    lines += [f"- {k} {v}" for k, v in results["versions"].items()]
    return "\n".join(lines) + "\n"
