"""``diffhep run CONFIG [--set name=value ...]``: the analysis at fixed cut values.

Soft and hard cutflow, hard-cut histograms, the pyhf workspace and its
significance by standard pyhf (:func:`diffhep.workflow.job.evaluate`); writes
``workspace.json``, ``histograms.root``, ``cabinetry_config.yml`` (cabinetry builds
``workspace.json`` from it), ``region_<name>.png``, ``cutflow.png`` and ``results.json``
(last, each atomically) and prints the numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from diffhep.cli.common import (
    add_command,
    add_execution_options,
    check_output,
    default_output,
    executed_analysis,
    execution_settings,
    files_listing,
    fit_lines,
    load,
    number,
    observed_lines,
    parse_sets,
    say,
    table,
)
from diffhep.cli.optimize import mc_statistics_lines
from diffhep.cli.validate import check_files
from diffhep.outputs import remove_outputs, remove_temporaries, write_json

EXAMPLES = """
  diffhep run analyses/dimuon/config.yaml                       # at the parameters' init values
  diffhep run analyses/dimuon/config.yaml --set muon_pt_min=25 --set met_max=80
  diffhep run myana/config.yaml --set jet_pt_min=40 --output work/myana/jet40
  diffhep run myana/config.yaml --execution streaming --chunk-size 100000   # bounded memory
  diffhep run myana/config.yaml --results work/myana/optimize/results.json   # optimised cuts and networks
  diffhep run myana/config.yaml --unblind                        # show the data of the signal regions too
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = add_command(
        sub,
        "run",
        help="evaluate the analysis at given cut values (cutflow, histograms, pyhf)",
        description="Evaluate CONFIG at given cut values (default: every parameter's init): soft and hard "
        "cutflow, hard-cut histograms, the pyhf workspace and its expected discovery significance by "
        "standard pyhf, next to the soft (differentiable) objective.",
        examples=EXAMPLES,
        func=run,
    )
    r.add_argument("config", metavar="CONFIG", help="the analysis config (YAML)")
    r.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        default=[],
        help="a cut value (repeatable); values must lie inside the parameter's bounds",
    )
    r.add_argument(
        "--results",
        default=None,
        metavar="RESULTS_JSON",
        help="start from the optimised cuts of a results.json of diffhep optimize (--set still overrides), "
        "with its trained networks (the weights file beside it)",
    )
    r.add_argument(
        "--output",
        default=None,
        help="output folder (default work/<analysis>/run); the outputs of a previous run there are removed "
        "first (results.json first), so the folder never mixes two runs",
    )
    r.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    r.add_argument(
        "--unblind",
        action="store_true",
        help="show the data (role: data samples) of the signal regions too, and report the observed numbers; "
        "without it the data of regions where the signal has a nonzero yield are hidden",
    )
    add_execution_options(r)


def run(args: argparse.Namespace) -> int:
    from diffhep.optimize.settings import OptimizerSettings  # deferred: JAX loads when the command runs
    from diffhep.workflow.job import (  # deferred: JAX loads when the command runs
        SIGNIFICANCE_ABOUT,
        evaluate,
        read_results,
        versions,
    )
    from diffhep.workflow.job import (  # deferred: JAX loads when the command runs
        _finite as json_ready,  # NumPy numbers to Python, non-finite ones to None
    )

    config = load(args.config)
    output = check_output(Path(args.output) if args.output else default_output(config, "run"))  # before any event
    execution = execution_settings(config, args)
    analysis = executed_analysis(config, execution)
    check_files(config)
    parameters = analysis.parameters
    if args.results:  # the optimised cuts as the starting values, the trained networks on the analysis
        final = read_results(getattr(analysis, "inner", analysis), args.results)
        parameters = [dataclasses.replace(p, init=final[p.name]) for p in parameters]
    cuts = parse_sets(args.set, parameters)
    settings = OptimizerSettings.from_config(config.data.get("optimizer"))
    removed = remove_outputs(output, output_files(analysis))
    if removed:
        say(f"a new run: removed the {len(removed)} output files of the previous run in {output}", quiet=args.quiet)
    try:
        say(f"{analysis.name}: loading samples ({execution.describe()}) ...", quiet=args.quiet)
        data = analysis.load()
        say("evaluating (soft and hard cuts, pyhf) ...", quiet=args.quiet)
        ev = evaluate(analysis, data, cuts, slope_scale=settings.slope_end, unblind=args.unblind, optimising=False)
    finally:
        if hasattr(analysis, "close"):
            analysis.close()
    samples = _nominal(analysis, ev.hard)
    results = json_ready(
        {
            "analysis": analysis.name,
            "config": str(config.path),
            "config_hash": config.config_hash,
            "versions": versions(),
            "objective": config.data["objective"]["name"],
            "cuts": ev.cuts,
            "slope_scale": ev.slope_scale,
            "significance": {
                "soft": _finite(ev.soft_significance),
                "hard_pyhf": _finite(ev.hard_significance),
                "pyhf_hypotest": _finite(ev.pyhf_hypotest),
                "fits": ev.fits,
                "about": SIGNIFICANCE_ABOUT,
            },
            "yields": {r: {s: float(ev.hard[r][s].counts.sum()) for s in samples} for r in ev.hard},
            "mc_statistics": ev.mc_statistics,
            "observed": ev.observed,
            "cutflow": ev.cutflow,
        }
    )  # valid JSON: a NaN yield or cutflow value is written as null (workspace.json refuses one: write_json)
    files = write_outputs(output, analysis, ev, samples, results)
    print(report(analysis, ev, samples, results))
    print(files_listing(output, files))
    return 0


def _nominal(analysis: Any, hard: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The nominal samples of the histograms (not the ``sample/systematic/up`` variations)."""
    first = next(iter(hard.values()), {})
    known = getattr(analysis, "samples", None)
    return [k for k in first if (k in known if known is not None else "/" not in k)]


def output_files(analysis: Any) -> list[str]:
    """What :func:`write_outputs` writes besides ``results.json``, as glob patterns relative to the folder."""
    regions = [f"region_{glob.escape(str(region))}{end}.png" for region in analysis.edges for end in ("", "_postfit")]
    return ["workspace.json", "histograms.root", "cabinetry_config.yml", *regions, "cutflow.png"]


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def write_outputs(output: Path, analysis: Any, ev: Any, samples: list[str], results: dict) -> dict[str, str]:
    """Every file (atomically; ``results.json`` last) -> label; sets ``results["files"]``."""
    import numpy as np

    from diffhep.report import (  # deferred: JAX loads when the command runs
        cabinetry_config,
        plot_cutflow,
        plot_region,
        workspace_templates,
        write_cabinetry_config,
        write_histograms,
    )
    from diffhep.workflow.observed import plot_postfit  # deferred: JAX loads when the command runs

    files: dict[str, str] = {}
    output.mkdir(parents=True, exist_ok=True)
    remove_temporaries(output)  # what an interrupted earlier write left
    _check_workspace(ev.workspace)
    write_json(output / "workspace.json", ev.workspace)
    files["pyhf workspace at these cuts"] = "workspace.json"
    write_histograms(
        output / "histograms.root",
        {"": ev.hard, "workspace": workspace_templates(ev.workspace, ev.hard)},
        analysis.edges,
        analysis.observables,
    )
    files["hard-cut histograms, TH1D {region}_{sample}{variation} (workspace/: workspace.json's)"] = "histograms.root"
    cabinetry = cabinetry_config(ev.workspace, observables=analysis.observables, edges=analysis.edges)
    write_cabinetry_config(output / "cabinetry_config.yml", cabinetry)
    files["cabinetry config building workspace.json from histograms.root"] = "cabinetry_config.yml"
    for region in ev.hard:
        counts = {s: np.asarray(ev.hard[region][s].counts) for s in samples}
        plot_region(
            output / f"region_{region}.png",
            region,
            analysis.observables[region],
            analysis.edges[region],
            before=None,
            after=counts,
            signal=[s for s in analysis.signal if s in counts],
            z_after=ev.hard_significance,
            data_after=(ev.data or {}).get(region),
            data_label=str((ev.observed or {}).get("observations", "data")),
        )
        files[f"region {region}"] = f"region_{region}.png"
    files.update(plot_postfit(output, analysis, ev.workspace, ev.observed, ev.data))  # with a best fit to data
    plot_cutflow(output / "cutflow.png", before=None, after=ev.cutflow)
    files["cutflow"] = "cutflow.png"
    files["all numbers"] = "results.json"
    results["files"] = files
    write_json(output / "results.json", results)
    return {label: name for label, name in files.items()}


def _check_workspace(ws: dict) -> None:
    """pyhf's own schema validation of the workspace written."""
    import warnings

    import pyhf

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="jsonschema.RefResolver", category=DeprecationWarning)
        pyhf.Workspace(ws)


def report(analysis: Any, ev: Any, samples: list[str], results: dict) -> str:
    """The printed summary: cuts, significances, cutflow and yields."""
    params = [
        (p.name, number(ev.cuts[p.name]), number(p.init), f"[{number(p.low)}, {number(p.high)}]", p.unit or "-")
        for p in analysis.parameters
    ]
    flow_samples = list(ev.cutflow)
    steps = [row["step"] for row in ev.cutflow[flow_samples[0]]] if flow_samples else []
    flow = [
        (step, *(f"{number(ev.cutflow[s][i]['soft'])} / {number(ev.cutflow[s][i]['hard'])}" for s in flow_samples))
        for i, step in enumerate(steps)
    ]
    yields = [(r, *(number(results["yields"][r][s]) for s in samples)) for r in results["yields"]]
    z = results["significance"]
    return "\n".join(
        [
            f"{analysis.name} at these cuts:",
            table(("parameter", "value", "init", "bounds", "unit"), params),
            f"soft objective ({results['objective']}; sigmoid cuts, slopes x{number(ev.slope_scale)}): "
            f"{number(z['soft'])}",
            f"hard expected discovery significance Z0 (step cuts, Asimov mu = 1; pyhf's likelihood at the better "
            f"of pyhf's background-only fit and one started from diffhep's): {number(z['hard_pyhf'])}",
            f"the same by plain pyhf.infer.hypotest (pyhf alone, default optimizer): {'fit failed' if z['pyhf_hypotest'] is None else number(z['pyhf_hypotest'])}",
            *fit_lines({"": z.get("fits")}),
            *observed_lines(results.get("observed")),
            *mc_statistics_lines(None, results["mc_statistics"]),
            "cutflow (events, soft / hard):",
            table(("step", *flow_samples), flow),
            "yields per region (events, hard cuts):",
            table(("region", *samples), yields),
        ]
    )
