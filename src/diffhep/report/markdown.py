"""``report.md``: what the job did, in one page that links the figures and files."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["render_report"]


def _num_or_failed(value: Any) -> str:
    """A significance, or "pyhf's fit failed" where it gave none."""
    return "pyhf's fit failed" if value is None else _num(value)


def _num(x: Any, fmt: str = ".4g") -> str:
    return "n/a" if x is None else format(x, fmt)


def _bin(b: Mapping[str, Any]) -> str:
    return f"`{b['region']}` bin {b['bin']} [{b['low']:.4g}, {b['high']:.4g})"


def _mc_statistics(stats: Mapping[str, Any] | None) -> list[str]:
    """The section on the background's MC statistics (``results["mc_statistics"]``), or nothing."""
    if not stats:
        return []
    before, after = stats.get("before") or {}, stats.get("after") or {}
    threshold = after.get("threshold", before.get("threshold"))
    lines = [
        "## Background Monte Carlo statistics",
        "",
        "Effective number of background MC events per bin, (sum of weights)^2 / sum of squared weights "
        "of the total background (hard cuts; the raw count for equal weights).",
        "",
    ]
    for label, part in (("initial", before), ("optimised", after)):
        emptiest = part.get("emptiest")
        if emptiest is not None:
            lines.append(
                f"- {label} cuts: background MC events in the emptiest bin of the selection: "
                f"{emptiest['mc_events']:.3g} ({_bin(emptiest)}, {emptiest['background']:.4g} background and "
                f"{emptiest['signal']:.4g} signal events); {len(part.get('few') or [])} bins with fewer than "
                f"{threshold:g}"
            )
    few = after.get("few") or []
    if few:
        lines += [
            "",
            f"Bins with fewer than {threshold:g} background MC events at the optimised cuts:",
            "",
            "| bin | background MC events | background (events) | signal (events) |",
            "|---|---:|---:|---:|",
        ]
        lines += [f"| {_bin(b)} | {b['mc_events']:.3g} | {b['background']:.4g} | {b['signal']:.4g} |" for b in few]
    return lines + [""]


#: The observed numbers of ``results["observed"]`` (:mod:`diffhep.workflow.observed`), with their names.
_OBSERVED = (
    ("z0", "observed Z0"),
    ("z0_expected", "expected Z0 (pyhf's, nuisances fitted to the observations)"),
    ("cls", "observed CLs at the POI = 1"),
    ("cls_expected", "expected CLs (median)"),
    ("mu_hat", "best-fit POI"),
    ("mu_uncertainty", "its uncertainty (Hessian)"),
)


def _observed(observed: Mapping[str, Any] | None) -> list[str]:
    """The section on the observations (``results["observed"]``: before and after), or nothing for Asimov."""
    parts = {k: v for k, v in (observed or {}).items() if v and v.get("observations") != "asimov"}
    if not parts:
        return []
    before, after = parts.get("before") or {}, parts.get("after") or {}
    kind = after.get("observations", before.get("observations"))

    def cell(part: Mapping[str, Any], key: str) -> str:
        value = part.get(key)
        return value if isinstance(value, str) else _num(value)

    lines = [
        f"## Observed ({kind})",
        "",
        "Signal regions' data are blinded without `--unblind`; the optimisation never sees data.",
        "",
        "| | initial cuts | optimised cuts |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {cell(before, key)} | {cell(after, key)} |" for key, name in _OBSERVED]
    return [*lines, ""]


def _networks(results: Mapping[str, Any]) -> list[str]:
    """The network observables: architecture, inputs, the training split, both halves' objective."""
    networks = results.get("networks")
    if not networks:
        return []
    training = results.get("training") or {}
    split = training.get("split", "none")
    number = f"branch `{training['event_number']}`" if training.get("event_number") else "index in its sample"
    lines = ["## Network observables", ""]
    if split == "even_odd":
        lines += [
            f"Trained on the events with an even event number ({number}); every histogram, workspace and "
            "significance above is of the other half (each half normalised to the full luminosity).",
            "",
        ]
    lines += ["| region | network | inputs | hidden | output |", "|---|---|---|---|---|"]
    for region, net in networks.items():
        inputs = ", ".join(f"`{x}`" for x in net["inputs"])
        lines.append(f"| {region} | {net['network']} | {inputs} | {net.get('hidden')} | {net.get('output')} |")
    history = results.get("history") or []
    if history and "objective_heldout" in history[0]:
        first, last = history[0], history[-1]
        lines += [
            "",
            f"Soft objective, training / held-out half: {_num(first['objective'])} / "
            f"{_num(first['objective_heldout'])} at step {first['step']}, {_num(last['objective'])} / "
            f"{_num(last['objective_heldout'])} at step {last['step']} (a widening gap is overtraining).",
        ]
    return [*lines, ""]


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
    ]
    if "hard_poi_uncertainty" in sig:
        lines.append(
            f"| hard cuts, pyhf expected uncertainty on the POI | {_num_or_failed(sig['hard_poi_uncertainty']['before'])} "
            f"| {_num_or_failed(sig['hard_poi_uncertainty']['after'])} |"
        )
    if "pyhf_hypotest" in sig:
        lines.append(
            f"| hard cuts, plain `pyhf.infer.hypotest` Z0 | {_num_or_failed(sig['pyhf_hypotest']['before'])} "
            f"| {_num_or_failed(sig['pyhf_hypotest']['after'])} |"
        )
    lines.append("")
    about = sig.get("about") or {}
    names = {
        "soft": "soft objective",
        "hard_pyhf": "hard cuts, pyhf Z0",
        "pyhf_hypotest": "plain `pyhf.infer.hypotest`",
    }
    if "hard_poi_uncertainty" in sig:
        about = {**about, "hard_poi_uncertainty": sig["hard_poi_uncertainty"].get("about", "")}
        names["hard_poi_uncertainty"] = "hard cuts, pyhf expected uncertainty on the POI"
    if about:
        lines += [f"- {names.get(k, k)}: {text}." for k, text in about.items()] + [""]
    lines += _networks(results)
    lines += _mc_statistics(results.get("mc_statistics"))
    lines += _observed(results.get("observed"))
    scan = results.get("scan")
    if scan:
        best = ", ".join(f"`{k}` = {v:.4g}" for k, v in scan["best"].items())
        figure = scan.get("figure", "Z0")
        how = "hard cuts, pyhf" if figure == "Z0" else "hard cuts, diffhep's likelihood of the workspace"
        lines += [
            "## Brute-force check",
            "",
            f"A {scan['kind']} scan of {len(scan['points'])} points around the optimum "
            f"({how}) finds its best point at {best} with {figure} = {_num(scan['best_value'])}, "
            f"against {figure} = {_num(scan['optimum_value'])} at the optimiser's cuts "
            f"(brute force gains {_num(scan['gain'], '+.3g')}"
            f"{'' if figure == 'Z0' else ' in sigma(mu), smaller is better'}).",
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
