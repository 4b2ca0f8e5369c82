"""The end-to-end optimisation job of any :class:`~diffhep.engine.protocol.Analysis`.

load -> optimise (checkpointed) -> evaluate with hard cuts and pyhf -> scan
around the optimum -> write ``results.json``, ``workspace.json``,
``histograms.root``, ``cabinetry_config.yml``, the figures and ``report.md``, each atomically.
"""

from __future__ import annotations

import glob
import json
import math
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from diffhep.config.sections import FEW_MC_EVENTS
from diffhep.engine.mc_stats import effective_mc_events
from diffhep.engine.network import architecture
from diffhep.engine.protocol import Analysis, Histograms
from diffhep.errors import ConfigError, DiffhepError
from diffhep.optimize.networks import has_networks, network_records, pretrain, split_networks, starting_networks
from diffhep.optimize.run import (
    OptimizationResult,
    is_chunked,
    objective_and_grad,
    objective_value,
    run_optimization,
)
from diffhep.optimize.scan import ScanResult, compare_with_scan, significances, workspace_poi_uncertainty
from diffhep.optimize.settings import OptimizerSettings
from diffhep.outputs import atomic_write, remove_outputs, write_json, write_text
from diffhep.report import (
    cabinetry_config,
    plot_cutflow,
    plot_history,
    plot_landscape,
    plot_region,
    plot_shapes,
    render_report,
    workspace_templates,
    write_cabinetry_config,
    write_histograms,
)
from diffhep.workflow.observed import observations, plot_postfit, postfit_patterns
from diffhep.workflow.observed import summary as observed_summary

__all__ = [
    "SIGNIFICANCE_ABOUT",
    "Evaluation",
    "evaluate",
    "mc_statistics",
    "build_results",
    "write_outputs",
    "output_files",
    "run_job",
    "versions",
    "read_results",
    "write_networks",
]

#: What each number of ``results["significance"]`` is, in words (written into ``results.json``).
SIGNIFICANCE_ABOUT = {
    "soft": "the objective the optimiser maximises: soft (sigmoid) cuts, KDE histograms, diffhep's likelihood "
    "(empty background MC bins as one event of the sample's mean weight)",
    "hard_pyhf": "expected discovery Z0 with hard cuts: pyhf's likelihood of workspace.json (Asimov data at "
    "mu = 1, q0), the background-only point being the better of pyhf's own fit and a fit started from diffhep's",
    "pyhf_hypotest": "expected discovery Z0 with hard cuts by plain pyhf: norm.isf(p0) of "
    "pyhf.infer.hypotest(0, asimov, model, test_stat='q0') on workspace.json with pyhf's default optimizer; "
    "equal to hard_pyhf wherever pyhf's fit converges",
}

#: What ``results["significance"]["hard_poi_uncertainty"]`` is (written where the objective is ``poi_uncertainty``).
POI_UNCERTAINTY_ABOUT = (
    "expected uncertainty on the POI with hard cuts, by pyhf alone: sqrt([H^-1]_mu,mu), H the Hessian of pyhf's "
    "-logpdf of workspace.json's model (jax.hessian, pyhf's JAX backend) at pyhf's best fit (scipy, tolerance "
    "1e-12) to the Asimov data at mu = 1, every nuisance parameter profiled; the soft objective is minus the same "
    "quantity of the soft histograms"
)


class Evaluation(NamedTuple):
    """An analysis evaluated at fixed cut values.

    Attributes:
        cuts: cut name -> value.
        hard: region -> sample -> hard-cut ``Histogram`` (NumPy).
        workspace: the pyhf workspace of ``hard`` (validated by pyhf).
        hard_significance: pyhf Z0 of ``workspace`` (Asimov, ``q0``, NumPy backend) at the
            better of pyhf's background-only fit and one started from diffhep's
            (:func:`~diffhep.optimize.scan.workspace_significance`).
        soft_significance: ``analysis.objective`` at ``slope_scale``.
        slope_scale: the slope multiplier of the soft objective.
        cutflow: ``analysis.cutflow`` at ``cuts``.
        pyhf_hypotest: ``norm.isf(p0)`` of plain ``pyhf.infer.hypotest`` on ``workspace``
            (:func:`~diffhep.optimize.scan.pyhf_hypotest_significance`; NaN if its fit fails).
        fits: how the fits of ``hard_significance`` and ``pyhf_hypotest`` ended: converged or not, the
            background-only fit used, pyhf's message of a failed fit
            (:class:`~diffhep.optimize.scan.Significances`).
        mc_statistics: background MC events per bin of ``hard`` (:func:`mc_statistics`).
        observed: the ``observed`` entry of the results (:func:`diffhep.workflow.observed.summary`):
            observed Z0, CLs, best-fit POI and its uncertainty, or ``"blinded"``, or ``None`` (Asimov).
        data: region -> observed counts that may be shown (blinded signal regions left out).
        hard_poi_uncertainty: where the analysis's objective is ``poi_uncertainty``, pyhf's expected
            uncertainty on the POI of ``workspace`` (:func:`~diffhep.optimize.scan.workspace_poi_uncertainty`);
            else ``None``.
        poi_fit: how that number's fit ended (``PoiUncertainty.record``), or ``None``.
    """

    cuts: dict[str, float]
    hard: Histograms
    workspace: dict
    hard_significance: float
    soft_significance: float
    slope_scale: float
    cutflow: dict[str, list[dict[str, float]]]
    pyhf_hypotest: float
    fits: dict[str, Any]
    mc_statistics: dict[str, Any]
    observed: dict[str, Any] | None = None
    data: Mapping[str, np.ndarray] | None = None
    hard_poi_uncertainty: float | None = None
    poi_fit: dict[str, Any] | None = None


def measures_poi_uncertainty(analysis: Analysis) -> bool:
    """Whether the analysis's objective is the expected uncertainty on the POI (``objective: poi_uncertainty``)."""
    return getattr(analysis, "objective_name", None) == "poi_uncertainty"


def evaluate(
    analysis: Analysis,
    data: Any,
    cuts: Mapping[str, float],
    *,
    slope_scale: float = 1.0,
    unblind: bool = False,
    optimising: bool = True,
) -> Evaluation:
    """Hard histograms, workspace, pyhf significance, soft objective and cutflow at ``cuts``; with observed
    data (or pseudodata), the observed numbers, signal regions blinded unless ``unblind``
    (:mod:`diffhep.workflow.observed`). The soft objective never sees the observations.

    ``optimising``: the soft objective comes from the optimisation steps' compiled value and gradient
    (:func:`~diffhep.optimize.run.objective_and_grad`, compiled once for both); ``False`` (``diffhep run``)
    compiles the value alone (:func:`~diffhep.optimize.run.objective_value`), the same number."""
    cuts = {k: float(v) for k, v in cuts.items()}
    hard = analysis.hard_histograms(cuts)
    obs = observations(analysis, cuts, hard, unblind=unblind)
    ws = analysis.workspace(hard, observations=obs.counts) if obs.counts else analysis.workspace(hard)  # type: ignore[call-arg]
    dtype = jnp.result_type(float)
    pyhf_numbers = significances(ws)  # one set of pyhf fits for both numbers
    sigma = workspace_poi_uncertainty(ws) if measures_poi_uncertainty(analysis) else None
    if is_chunked(analysis):  # chunk by chunk: a number, not a traceable function
        soft = analysis.objective(cuts, data, slope_scale)
    else:
        args = ({k: jnp.asarray(v, dtype=dtype) for k, v in cuts.items()}, data, jnp.asarray(slope_scale, dtype=dtype))
        if has_networks(analysis):  # at the analysis's current networks, as the hard histograms
            args += (split_networks(analysis.networks)[0],)
        if optimising:  # the optimisation steps' compiled program (the gradient is dropped): no second compilation
            soft, _ = objective_and_grad(analysis)(*args)
        else:
            soft = objective_value(analysis)(*args)
    return Evaluation(
        cuts=cuts,
        hard=hard,
        workspace=ws,
        hard_significance=pyhf_numbers.hard,
        soft_significance=float(soft),
        slope_scale=float(slope_scale),
        cutflow=analysis.cutflow(cuts, data),
        pyhf_hypotest=pyhf_numbers.plain,
        fits=pyhf_numbers.fits,
        mc_statistics=mc_statistics(analysis, hard),
        observed=observed_summary(obs, ws),
        data=obs.counts,
        hard_poi_uncertainty=None if sigma is None else sigma.value,
        poi_fit=None if sigma is None else sigma.record,
    )


def mc_statistics(analysis: Analysis, hard: Histograms, *, threshold: float | None = None) -> dict[str, Any]:
    """The background's Monte Carlo statistics per bin of hard-cut histograms: where is the MC thin?

    Per bin of every region: the total background (the nominal samples that are
    not ``analysis.signal``; events), its effective number of MC events
    ``n_eff = counts**2 / sumw2`` (Kish; the raw count for equal weights) and
    the signal (events).

    Args:
        analysis: the analysis (``edges``, ``signal``; ``few_mc_events`` if it has one).
        hard: its hard-cut histograms.
        threshold: bins with ``n_eff`` below it are listed; default
            ``analysis.few_mc_events``, else :data:`~diffhep.config.sections.FEW_MC_EVENTS`.

    Returns:
        ``{"threshold", "emptiest", "few"}``: ``emptiest`` is the bin with the fewest
        background MC events among the bins that hold signal (all bins if none
        does; ``None`` without bins), ``few`` every bin with ``n_eff < threshold``;
        each bin is ``{"region", "bin", "low", "high", "background", "mc_events", "signal"}``.
    """
    if threshold is None:
        threshold = float(getattr(analysis, "few_mc_events", FEW_MC_EVENTS))
    bins = []
    for region, samples in hard.items():
        nominal = _nominal(samples)
        background = [k for k in nominal if k not in analysis.signal]
        edges = np.asarray(analysis.edges[region], dtype=float)
        size = len(edges) - 1
        counts = sum((np.asarray(nominal[k].counts, dtype=float) for k in background), np.zeros(size))
        sumw2 = sum((np.asarray(nominal[k].sumw2, dtype=float) for k in background), np.zeros(size))
        signal = sum((np.asarray(nominal[k].counts, dtype=float) for k in nominal if k in analysis.signal),
                     np.zeros(size))  # fmt: skip
        n_eff = effective_mc_events(counts, sumw2)
        for i in range(size):
            bins.append(
                {
                    "region": region,
                    "bin": i,
                    "low": float(edges[i]),
                    "high": float(edges[i + 1]),
                    "background": float(counts[i]),
                    "mc_events": float(n_eff[i]),
                    "signal": float(signal[i]),
                }
            )
    candidates = [b for b in bins if b["signal"] > 0] or bins
    emptiest = min(candidates, key=lambda b: b["mc_events"]) if candidates else None
    return {"threshold": float(threshold), "emptiest": emptiest, "few": [b for b in bins if b["mc_events"] < threshold]}


def versions() -> dict[str, str]:
    """Versions of diffhep and the packages its numbers depend on, for ``results.json``."""
    out = {}
    for package in ("diffhep", "jax", "pyhf", "optax", "awkward"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def _finite(obj: Any) -> Any:
    """JSON-ready copy: NumPy numbers to Python, non-finite floats to ``None``."""
    if isinstance(obj, Mapping):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (np.ndarray, jax.Array)):
        return _finite(np.asarray(obj).tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _nominal(samples: Mapping[str, Any]) -> dict[str, Any]:
    """The samples of a region without systematic variations (keys ``sample/systematic/up``)."""
    return {s: h for s, h in samples.items() if "/" not in s}


def _yields(hists: Histograms) -> dict[str, dict[str, float]]:
    return {r: {s: float(np.sum(h.counts)) for s, h in _nominal(samples).items()} for r, samples in hists.items()}


def build_results(
    analysis: Analysis,
    settings: OptimizerSettings,
    opt: OptimizationResult,
    before: Evaluation,
    after: Evaluation,
    scan: ScanResult,
    *,
    config_hash: str,
) -> dict[str, Any]:
    """The ``results.json`` dictionary (JSON-ready; non-finite numbers are ``null``)."""
    return _finite(
        {
            "analysis": analysis.name,
            "config_hash": config_hash,
            "versions": versions(),
            "seed": settings.seed,
            "settings": settings.to_dict(),
            "parameters": {
                p.name: {
                    "unit": p.unit,
                    "low": p.low,
                    "high": p.high,
                    "slope": p.slope,
                    "init": p.init,
                    "description": p.description,
                }
                for p in analysis.parameters
            },
            # In the config's order (JAX returns dicts sorted by key).
            "initial": {p.name: opt.initial[p.name] for p in analysis.parameters},
            "final": {p.name: opt.values[p.name] for p in analysis.parameters},
            "steps": opt.steps,
            "resumed_from": opt.resumed_from,
            "stopped": opt.stopped,
            "stop_reason": opt.stopped or f"completed all {settings.steps} steps",
            "history": opt.history,
            "significance": {
                "soft": {
                    "before": before.soft_significance,
                    "after": after.soft_significance,
                    "slope_scale": after.slope_scale,
                },
                "hard_pyhf": {"before": before.hard_significance, "after": after.hard_significance},
                "pyhf_hypotest": {"before": before.pyhf_hypotest, "after": after.pyhf_hypotest},
                "fits": {"before": before.fits, "after": after.fits},
                "about": SIGNIFICANCE_ABOUT,
                **_poi_uncertainty_results(before, after),
            },
            "yields": {"before": _yields(before.hard), "after": _yields(after.hard)},
            "mc_statistics": {"before": before.mc_statistics, "after": after.mc_statistics},
            "observed": {"before": before.observed, "after": after.observed},
            "scan": scan.to_dict(),
            **_network_results(analysis),
        }
    )


def _poi_uncertainty_results(before: Evaluation, after: Evaluation) -> dict[str, Any]:
    """``results["significance"]``'s ``hard_poi_uncertainty`` (before, after, their fits, what it is), where the
    objective is ``poi_uncertainty``; nothing otherwise."""
    if before.poi_fit is None and after.poi_fit is None:
        return {}
    return {
        "hard_poi_uncertainty": {
            "before": before.hard_poi_uncertainty,
            "after": after.hard_poi_uncertainty,
            "fits": {"before": before.poi_fit, "after": after.poi_fit},
            "about": POI_UNCERTAINTY_ABOUT,
        }
    }


#: The file of the trained networks' weights (``equinox.tree_serialise_leaves``) beside ``results.json``.
NETWORK_FILE = "networks.eqx"


def _network_results(analysis: Analysis) -> dict[str, Any]:
    """``results.json``'s ``networks`` (region -> architecture, inputs, standardisation), the weights' file
    and the training split; nothing for an analysis without network observables."""
    if not has_networks(analysis):
        return {}
    training = analysis.sections.training  # type: ignore[attr-defined]
    return {
        "networks": network_records(analysis),
        "network_file": NETWORK_FILE,
        "training": {"split": training.split, "event_number": training.event_number},
    }


def read_results(analysis: Any, path: str | Path) -> dict[str, float]:
    """The optimised cuts of a ``results.json`` of ``diffhep optimize``, its trained networks set on ``analysis``.

    Call before ``analysis.load()``: the networks' inputs are standardised as in training (the
    standardisation of ``results.json``). A one-line :class:`~diffhep.errors.ConfigError` when the
    file cannot be read, or its cuts, networks or training split are not those of the analysis's config.
    """
    path = Path(path)
    try:
        results = json.loads(path.read_text())
        final = {k: float(v) for k, v in results["final"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"--results {path}: not a results.json of diffhep optimize ({type(exc).__name__}: {exc})"
        ) from None
    names = [p.name for p in analysis.parameters]
    if sorted(final) != sorted(names):
        raise ConfigError(f"--results {path}: its cuts {sorted(final)} are not this config's {sorted(names)}")
    records = results.get("networks") or {}
    if sorted(records) != sorted(getattr(analysis, "networks", None) or {}):
        theirs, ours = sorted(records), sorted(getattr(analysis, "networks", None) or {})
        raise ConfigError(f"--results {path}: networks of regions {theirs}; this config has network regions {ours}")
    if not records:
        return final
    training = analysis.sections.training
    wanted = {"split": training.split, "event_number": training.event_number}
    if results.get("training") != wanted:
        raise ConfigError(
            f"--results {path}: trained with training {results.get('training')}; this config has {wanted}"
        )
    shape = ("network", "inputs", "hidden", "activation", "output", "options")
    for region, record in records.items():
        config = architecture(analysis.sections.networks[region], [], [])
        if any(record.get(k) != config[k] for k in shape):
            was = {k: record.get(k) for k in shape}
            now = {k: config[k] for k in shape}
            raise ConfigError(f"--results {path}: region {region!r}'s network was {was}; this config has {now}")
        analysis.standardisation[region] = (np.asarray(record["mean"], float), np.asarray(record["std"], float))
    weights = path.parent / str(results.get("network_file", NETWORK_FILE))
    try:
        analysis.networks = eqx.tree_deserialise_leaves(weights, like=dict(analysis.networks))
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"--results {path}: the networks' weights {weights} cannot be read: {exc}") from None
    return final


def write_networks(path: Path, networks: Mapping[str, Any]) -> None:
    """The networks' weights into ``path`` (``equinox.tree_serialise_leaves``), atomically."""
    atomic_write(path, lambda tmp: eqx.tree_serialise_leaves(tmp, dict(networks)))


def write_outputs(
    output: str | Path,
    analysis: Analysis,
    results: dict[str, Any],
    before: Evaluation,
    after: Evaluation,
) -> dict[str, str]:
    """Write every output file into ``output`` (each atomically) and return label -> relative path.

    ``results["files"]`` is set to that mapping; ``results.json`` is written
    last, so its presence means the outputs are complete.
    """

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    units = {p.name: p.unit for p in analysis.parameters}
    files: dict[str, str] = {}
    _check_workspace(after.workspace)
    write_json(output / "workspace.json", after.workspace)
    files["pyhf workspace at the optimised cuts"] = "workspace.json"
    write_histograms(
        output / "histograms.root",
        {"": after.hard, "initial": before.hard, "workspace": workspace_templates(after.workspace, after.hard)},
        analysis.edges,
        analysis.observables,
    )
    files["hard-cut histograms, TH1D {region}_{sample}{variation} (initial/: at the starting cuts)"] = "histograms.root"
    cabinetry = cabinetry_config(after.workspace, observables=analysis.observables, edges=analysis.edges)
    write_cabinetry_config(output / "cabinetry_config.yml", cabinetry)
    files["cabinetry config building workspace.json from histograms.root"] = "cabinetry_config.yml"
    plot_history(output / "history.png", results["history"], units)
    files["objective and cuts per step"] = "history.png"
    for region in after.hard:
        signal = [s for s in analysis.signal if s in after.hard[region]]
        plot_region(
            output / f"region_{region}.png",
            region,
            analysis.observables[region],
            analysis.edges[region],
            {s: h.counts for s, h in _nominal(before.hard[region]).items()},
            {s: h.counts for s, h in _nominal(after.hard[region]).items()},
            signal=signal,
            z_before=before.hard_significance,
            z_after=after.hard_significance,
            data_before=(before.data or {}).get(region),
            data_after=(after.data or {}).get(region),
            data_label=str((after.observed or {}).get("observations", "data")),
        )
        files[f"region {region}"] = f"region_{region}.png"
        if region in (getattr(analysis, "networks", None) or {}):  # each sample's network output, before and after
            plot_shapes(
                output / f"network_{region}.png",
                region,
                analysis.observables[region],
                analysis.edges[region],
                {s: h.counts for s, h in _nominal(before.hard[region]).items()},
                {s: h.counts for s, h in _nominal(after.hard[region]).items()},
            )
            files[f"network output per sample, region {region} (unit area; before dashed, after solid)"] = (
                f"network_{region}.png"
            )
    files.update(plot_postfit(output, analysis, after.workspace, after.observed, after.data))  # optimised cuts
    plot_cutflow(output / "cutflow.png", before.cutflow, after.cutflow)
    files["cutflow"] = "cutflow.png"
    if plot_landscape(output / "landscape.png", results["scan"], units) is not None:
        files["significance landscape near the optimum"] = "landscape.png"
    if has_networks(analysis):
        write_networks(output / NETWORK_FILE, analysis.networks)  # type: ignore[attr-defined]
        files["trained networks' weights (equinox.tree_serialise_leaves; architecture in results.json)"] = NETWORK_FILE
    files["checkpoints of the optimisation"] = "checkpoints/"
    files["this report"] = "report.md"
    files["all numbers"] = "results.json"
    results["files"] = files
    write_text(output / "report.md", render_report(results, files))
    write_json(output / "results.json", results)
    return files


def output_files(analysis: Analysis) -> list[str]:
    """What :func:`run_job` writes into its folder besides ``results.json``, as glob patterns relative to it.

    A new (not resumed) job removes these first (:func:`~diffhep.outputs.remove_outputs`,
    ``results.json`` before them): the checkpoints' ``latest`` before the checkpoints.
    """
    regions = [f"region_{glob.escape(str(region))}.png" for region in analysis.edges] + postfit_patterns(analysis)
    regions += [f"network_{glob.escape(str(region))}.png" for region in getattr(analysis, "networks", None) or {}]
    return ["report.md", "workspace.json", "histograms.root", "cabinetry_config.yml", "history.png", *regions,
            "cutflow.png", "landscape.png", NETWORK_FILE, "checkpoints/latest", "checkpoints/step_*.npz"]  # fmt: skip


def _check_workspace(ws: dict) -> None:
    import warnings

    import pyhf

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="jsonschema.RefResolver", category=DeprecationWarning)
        pyhf.Workspace(ws)


def run_job(
    analysis: Analysis,
    settings: OptimizerSettings,
    output: str | Path,
    *,
    config_hash: str,
    resume: bool = False,
    progress: bool = True,
    unblind: bool = False,
) -> dict[str, Any]:
    """Load, optimise, evaluate, scan and write; return the ``results.json`` dictionary.

    An analysis evaluated chunk by chunk (a :class:`~diffhep.engine.chunked.ChunkedAnalysis`,
    ``execution.mode`` streaming or dask) runs every stage chunk by chunk: the
    optimisation steps, the hard-cut histograms and cutflows before and after,
    and the scan around the optimum (one pass over the chunks per point).

    Args:
        analysis: the analysis to optimise.
        settings: the optimiser settings (``OptimizerSettings.from_config(config["optimizer"])``).
        output: the output folder (created); checkpoints go to ``output/checkpoints``.
            A new job (not ``resume``) first removes a previous job's outputs there,
            ``results.json`` first (:func:`output_files`), so that a job stopped before
            it writes its own ``results.json`` never leaves a folder mixing two jobs.
        config_hash: a hash of the config, stored in the results.
        resume: continue from the latest checkpoint in ``output/checkpoints`` (its
            outputs are kept until replaced).
        progress: progress bar and a line per stage on stderr.
        unblind: show the data of the signal regions and report the observed numbers (the
            optimisation never sees data; :mod:`diffhep.workflow.observed`).
    """
    output = Path(output)

    def log(msg: str) -> None:
        if progress:
            print(msg, file=sys.stderr, flush=True)

    if not resume:
        # an interrupted job's checkpoints are finished work: never thrown away by a rerun
        checkpoints = sorted((output / "checkpoints").glob("step_*.npz"))
        if checkpoints and not (output / "results.json").exists():
            raise DiffhepError(
                f"--output {output} holds the checkpoints of an interrupted run (up to {checkpoints[-1].name}): "
                f"continue it with --resume, or remove {output / 'checkpoints'} to start again"
            )
        removed = remove_outputs(output, output_files(analysis))
        if removed:
            log(f"a new run: removed the {len(removed)} output files of the previous run in {output}")
    output.mkdir(parents=True, exist_ok=True)
    if is_chunked(analysis):
        log(f"{analysis.name}: planning chunks and normalisations ({analysis.settings.describe()}) ...")
    else:
        log(f"{analysis.name}: loading samples ...")
    data = analysis.load()
    initial = {p.name: float(p.init) for p in analysis.parameters}
    started = getattr(analysis, "networks", None)
    rule = getattr(getattr(analysis, "sections", None), "training", None)
    if has_networks(analysis):  # --seed: the weights of that seed, as a config with that optimizer.seed would
        analysis.networks = starting_networks(analysis, settings.seed)  # type: ignore[attr-defined]
    if has_networks(analysis) and rule is not None and rule.pretrain is not None:
        log(f"pre-training the networks (binary cross-entropy, {rule.pretrain.steps} steps) ...")
        analysis.networks = pretrain(  # type: ignore[attr-defined]
            analysis, data, steps=rule.pretrain.steps, learning_rate=rule.pretrain.learning_rate
        )
    try:
        return _optimise(analysis, data, initial, settings, output, config_hash, resume, progress, unblind, log)
    finally:
        if has_networks(analysis):
            analysis.networks = started  # type: ignore[attr-defined]  # a rerun starts where this one did


def _optimise(
    analysis: Analysis,
    data: Any,
    initial: dict[str, float],
    settings: OptimizerSettings,
    output: Path,
    config_hash: str,
    resume: bool,
    progress: bool,
    unblind: bool,
    log: Any,
) -> dict[str, Any]:
    """:func:`run_job` after loading: evaluate, optimise, evaluate, scan, write (the trained networks set
    on the analysis from the optimisation on)."""
    log("evaluating the initial cuts (hard cuts, pyhf) ...")
    before = evaluate(analysis, data, initial, slope_scale=settings.slope_end, unblind=unblind)
    log(f"optimising {len(initial)} cuts for up to {settings.steps} steps ({settings.name}) ...")
    rule = getattr(getattr(analysis, "sections", None), "training", None)
    heldout = analysis.evaluation_data() if rule is not None and rule.split != "none" else None  # type: ignore[attr-defined]
    opt = run_optimization(
        analysis,
        data,
        settings,
        output=output,
        resume=resume,
        progress=progress,
        config_hash=config_hash,
        heldout=heldout,
    )
    if opt.stopped:
        log(f"note: {opt.stopped}")
    if opt.networks is not None:
        analysis.networks = opt.networks  # type: ignore[attr-defined]
    log("evaluating the optimised cuts (hard cuts, pyhf) ...")
    after = evaluate(analysis, data, opt.values, slope_scale=settings.slope_end, unblind=unblind)
    log(f"scanning around the optimum ({settings.scan.points} points per cut) ...")
    figure = "sigma(mu)" if measures_poi_uncertainty(analysis) else "Z0"
    scan = compare_with_scan(
        analysis, opt.values, settings, optimum_significance=after.hard_significance, figure=figure
    )
    results = build_results(analysis, settings, opt, before, after, scan, config_hash=config_hash)
    write_outputs(output, analysis, results, before, after)
    log(f"wrote {output}")
    return results
