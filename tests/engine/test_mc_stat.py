"""Empty Monte Carlo bins cannot be gamed: removing the last MC event of a background never raises Z0
(nor lowers the expected uncertainty on the POI, the objective of a measurement).

A one-bin analysis on tiny flat files: a signal of 5 events at ``x = 8`` and a
multijet background of three MC events of equal weight at ``x = 1.5, 2.5,
3.5``; the cut ``x > cut`` removes them one by one (3 -> 2 -> 1 -> 0 events)
and keeps the signal. With a fixed floor of 1e-3 events the empty bin gave
Z0 = 8.25 where one event of weight 333 gives 0.015 (issue 13, item 7); an
empty bin now holds one MC event of the sample's mean weight, in the soft
objective and in the workspace alike. The oracle of "never raises" is the
ordering of the Z0 values themselves, soft (the objective the optimiser sees)
and hard (pyhf on the emitted workspace).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import uproot

from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.optimize.scan import (
    compare_with_scan,
    hard_poi_uncertainty,
    pyhf_hypotest_significance,
    workspace_poi_uncertainty,
    workspace_significance,
)
from diffhep.optimize.settings import OptimizerSettings
from diffhep.workflow.job import mc_statistics

LUMI = 1.0
BACKGROUND_X = [1.5, 2.5, 3.5]
#: Cut values leaving 3, 2, 1 and 0 background MC events in the bin (the signal at x = 8 always passes).
CUTS = {3: 1.0, 2: 2.0, 1: 3.0, 0: 4.0}
#: Slope of the cut: the soft weights are steps to 1e-26 half a unit from an event.
STEEP = 120.0


@pytest.fixture(scope="module", autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def write(path: Path, x: list[float]) -> None:
    with uproot.recreate(path) as file:
        file["Events"] = {"x": np.asarray(x, dtype=np.float64)}


def config(weight: float, *, objective: dict | None = None) -> dict:
    """One bin [0, 10]; the multijet's three MC events each weigh ``weight`` (xsec * lumi / 3)."""
    return {
        "name": "mcstat",
        "lumi_pb": LUMI,
        "samples": {
            "signal": {"role": "signal", "files": ["signal.root"], "xsec_pb": 5.0},
            "multijet": {"role": "background", "files": ["multijet.root"], "xsec_pb": 3 * weight},
        },
        "parameters": {"cut": {"init": 1.0, "bounds": [0.0, 6.0], "slope": STEEP}},
        "regions": {"sr": {"select": "x > cut", "observable": "x", "binning": {"edges": [0, 10]}, "bandwidth": 0}},
        "systematics": {"mc_stat": {"type": "staterror", "samples": ["multijet"]}},
        "measurement": {"poi": "mu"},
        "objective": objective or {"name": "discovery_significance"},
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mcstat")
    write(folder / "signal.root", [8.0] * 4)
    write(folder / "multijet.root", BACKGROUND_X)
    return folder


def analysis_of(folder: Path, weight: float, **kwargs) -> tuple[ConfiguredAnalysis, object]:
    analysis = ConfiguredAnalysis.from_config(config(weight, **kwargs), base=folder)
    return analysis, analysis.load()


@pytest.fixture(scope="module", params=[333.0, 1.0], ids=["weight333", "weight1"])
def setup(request, folder):
    analysis, data = analysis_of(folder, request.param)
    objective = jax.jit(jax.value_and_grad(lambda c, d: analysis.objective({"cut": c}, d)))
    return request.param, analysis, data, objective


def hard(analysis: ConfiguredAnalysis, cut: float) -> dict:
    hists = analysis.hard_histograms({"cut": cut})
    return {"hists": hists, "workspace": analysis.workspace(hists)}


def test_mean_weight_is_the_loaded_events_sum_of_weights_over_their_number(setup):
    weight, analysis, data, _ = setup
    for key, sample in enumerate(data.keys):
        w = np.asarray(data.weight)[np.asarray(data.sample) == key]
        assert analysis.mean_weights[sample] == pytest.approx(w.sum() / len(w), rel=1e-12)
    assert analysis.mean_weights["multijet"] == pytest.approx(weight)


def test_removing_background_events_one_by_one(setup):
    weight, analysis, data, objective = setup
    soft, grads, pyhf_z, hypotest = {}, {}, {}, {}
    for k, cut in CUTS.items():
        value, grad = objective(jnp.asarray(cut), data)
        soft[k], grads[k] = float(value), float(grad)
        h = hard(analysis, cut)
        assert float(h["hists"]["sr"]["multijet"].counts[0]) == pytest.approx(k * weight)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # scipy's SLSQP on a near-flat likelihood
            pyhf_z[k] = workspace_significance(h["workspace"])
            hypotest[k] = pyhf_hypotest_significance(h["workspace"])
    # fewer background events while any remain: a higher Z0 (soft and hard agree at steep slopes)
    for z in (soft, pyhf_z, hypotest):
        assert z[3] < z[2] < z[1], z
    # removing the last one does not raise it: an empty bin is worth one MC event of the mean weight
    for z in (soft, pyhf_z, hypotest):
        assert z[0] <= z[1] * (1 + 1e-6), z
        assert z[0] == pytest.approx(z[1], rel=1e-6), z
    for k in CUTS:
        assert soft[k] == pytest.approx(pyhf_z[k], rel=1e-4), (soft, pyhf_z)
        assert hypotest[k] == pytest.approx(pyhf_z[k], rel=1e-3), (hypotest, pyhf_z)  # pyhf's fit converges
        assert np.isfinite(grads[k]), grads
    assert grads[0] == 0.0  # nothing left to cut away: the floor does not move
    if weight == 333.0:  # the case: 5 signal events over one multijet event of weight 333, or none
        assert pyhf_z[1] == pytest.approx(5.0 / np.sqrt(333.0 + 333.0**2), rel=1e-2)  # s / sqrt(b + sigma^2)
        assert pyhf_z[0] < 0.02 and soft[0] < 0.02  # 8.25 with the 1e-3 floor


def test_soft_and_hard_specs_carry_the_same_floors(setup):
    weight, analysis, data, _ = setup
    for cut in (CUTS[0], 3.45, 3.5):  # empty, nearly empty (soft: part of the last event), half an event
        soft = analysis.spec(analysis.soft_histograms({"cut": jnp.asarray(cut)}, data))
        ws = hard(analysis, cut)["workspace"]
        for spec in (soft, ws):
            (bkg,) = [s for s in spec["channels"][0]["samples"] if s["name"] == "multijet"]
            assert float(np.asarray(bkg["data"])[0]) == pytest.approx(weight)
            (stat,) = [m for m in bkg["modifiers"] if m["type"] == "staterror"]
            assert float(np.asarray(stat["data"])[0]) == pytest.approx(weight)


def test_soft_objective_is_flat_while_the_last_event_is_cut_away(setup):
    _, _, data, objective = setup
    values, grads = zip(
        *[(float(v), float(g)) for v, g in (objective(jnp.asarray(c), data) for c in np.linspace(3, 5, 5))]
    )
    assert max(values) <= values[0] * (1 + 1e-9), values
    assert all(np.isfinite(grads)), grads


def test_asimov_objective_has_the_same_floors(folder):
    analysis, data = analysis_of(folder, 333.0, objective={"name": "asimov_significance"})
    f = jax.jit(jax.value_and_grad(lambda c: analysis.objective({"cut": c}, data)))
    (z1, _), (z0, g0) = f(jnp.asarray(CUTS[1])), f(jnp.asarray(CUTS[0]))
    assert float(z0) == pytest.approx(float(z1), rel=1e-9) and float(z0) < 0.02
    assert np.isfinite(float(g0))


def test_poi_uncertainty_cannot_be_lowered_by_emptying_a_background(folder):
    """The AGC template's objective (expected uncertainty on the POI, minimised): removing the last MC event of
    the background does not lower it, soft or hard (pyhf alone: Hessian of pyhf's likelihood at its fit).

    Without the floor an empty bin would be background-free: sigma(mu) = sqrt(5) / 5 = 0.45 instead of ~67."""
    analysis, data = analysis_of(folder, 333.0, objective={"name": "poi_uncertainty"})
    f = jax.jit(jax.value_and_grad(lambda c: analysis.objective({"cut": c}, data)))  # minus sigma(mu)
    soft, grads = {}, {}
    for k, cut in CUTS.items():
        value, grad = f(jnp.asarray(cut))
        soft[k], grads[k] = -float(value), float(grad)
    assert soft[3] > soft[2] > soft[1], soft  # fewer background events while any remain: a smaller sigma(mu)
    assert soft[0] == pytest.approx(soft[1], rel=1e-9), soft  # the last one: no gain
    # sigma(mu) of one event of weight 333 with its MC uncertainty: sqrt(s + b + b^2) / s at s = 5
    assert soft[1] == pytest.approx(np.sqrt(5.0 + 333.0 + 333.0**2) / 5.0, rel=1e-2)
    assert all(np.isfinite(list(grads.values()))) and grads[0] == 0.0, grads
    for k in (1, 0):  # the hard number of the job's report, from pyhf's likelihood alone, as the soft one
        hard_sigma = workspace_poi_uncertainty(hard(analysis, CUTS[k])["workspace"])
        assert hard_sigma.record["converged"] and hard_sigma.mu_hat == pytest.approx(1.0, abs=1e-6)
        assert hard_sigma.value == pytest.approx(soft[k], rel=1e-6), (k, hard_sigma, soft)


def test_scan_of_a_poi_uncertainty_objective_judges_sigma_mu(folder):
    """With objective poi_uncertainty the brute-force scan compares sigma(mu), smaller is better (it compared Z0,
    a figure the optimiser did not optimise): the best point is the smallest sigma(mu), the gain is how much
    smaller, and each point's number is pyhf's (Hessian of pyhf's likelihood) to 1e-6."""
    analysis, _ = analysis_of(folder, 333.0, objective={"name": "poi_uncertainty"})
    settings = OptimizerSettings.from_config({"scan": {"points": 5, "width": 0.5}})
    scan = compare_with_scan(analysis, {"cut": CUTS[2]}, settings, figure="sigma(mu)")
    assert scan.figure == "sigma(mu)" and not scan.larger_is_better
    values = np.asarray(scan.values)
    assert np.all(np.isfinite(values)) and scan.best_value == values.min()
    # cuts 0.5, 1.25, 2.0, 2.75, 3.5 leave 3, 2, 2, 1, 0 background MC events: the last two sigma(mu) are equal
    assert scan.best["cut"] in (2.75, 3.5) and scan.best_value == pytest.approx(values[3], rel=1e-9)
    assert values[0] > values[2] > values[3] and scan.optimum_value == pytest.approx(values[2], rel=1e-12)
    assert scan.gain == pytest.approx(scan.optimum_value - scan.best_value) and scan.gain > 0
    for cut in (2.0, 3.5):  # the scan's number is pyhf's
        pyhf_sigma = workspace_poi_uncertainty(hard(analysis, cut)["workspace"]).value
        assert hard_poi_uncertainty(analysis, {"cut": cut}) == pytest.approx(pyhf_sigma, rel=1e-6)
    summary = scan.to_dict()
    assert summary["figure"] == "sigma(mu)" and "best_significance" not in summary
    z_scan = compare_with_scan(analysis, {"cut": CUTS[2]}, settings)  # the default: Z0, larger is better
    assert z_scan.larger_is_better and z_scan.best_value == np.nanmax(z_scan.values)
    assert z_scan.to_dict()["best_significance"] == z_scan.best_value


def test_pyhf_poi_uncertainty_leaves_the_global_float_setting_alone(folder):
    """pyhf's Hessian runs on pyhf's JAX backend in float64 inside this module's `with jax.enable_x64(True)`: the
    process-wide setting must be what it was (it became float64 for good: a doctest run later in the same worker
    printed 7e-218 for a float32 0.0)."""
    from jax._src import config as jax_config

    analysis, _ = analysis_of(folder, 333.0, objective={"name": "poi_uncertainty"})
    before = jax_config.enable_x64.get_global()
    assert jax.config.read("jax_enable_x64")  # inside the module's float64 context (the global: False unless set)
    workspace_poi_uncertainty(hard(analysis, CUTS[2])["workspace"])
    assert jax_config.enable_x64.get_global() == before


def test_min_background_penalises_thin_bins_smoothly(folder):
    plain, data = analysis_of(folder, 1.0, objective={"name": "asimov_significance"})  # no fit: quick
    floors = {"events": 2.0, "mc_events": 2.0, "strength": 0.5}
    strict, _ = analysis_of(folder, 1.0, objective={"name": "asimov_significance", "min_background": floors})
    for k, cut in CUTS.items():
        hists = plain.soft_histograms({"cut": jnp.asarray(cut)}, data)
        # 1 - k / 2 below 2 events, once for the events and once for the effective MC events (equal weights)
        penalty = 0.5 * 2 * max(1.0 - k / 2.0, 0.0) ** 2
        assert float(strict.figure_of_merit(hists)) == pytest.approx(float(plain.figure_of_merit(hists)) - penalty)
    # half of the last event: 0.5 events, 0.25 effective MC events (a fraction p of an event counts p^2)
    hists = plain.soft_histograms({"cut": jnp.asarray(BACKGROUND_X[-1])}, data)
    penalty = 0.5 * ((1.0 - 0.5 / 2.0) ** 2 + (1.0 - 0.25 / 2.0) ** 2)
    assert float(strict.figure_of_merit(hists)) == pytest.approx(float(plain.figure_of_merit(hists)) - penalty)
    f = jax.jit(jax.grad(lambda c: strict.objective({"cut": c}, data)))
    for cut in np.linspace(1.0, 5.0, 9):
        assert np.isfinite(float(f(jnp.asarray(cut))))


def test_report_lists_bins_with_few_background_mc_events(folder):
    analysis, _ = analysis_of(folder, 333.0, objective={"name": "discovery_significance", "few_mc_events": 2.5})
    for k, cut in CUTS.items():
        stats = mc_statistics(analysis, analysis.hard_histograms({"cut": cut}))
        assert stats["threshold"] == 2.5
        assert stats["emptiest"]["mc_events"] == pytest.approx(k)
        assert stats["emptiest"]["background"] == pytest.approx(333.0 * k)
        assert stats["emptiest"]["signal"] == pytest.approx(5.0)
        assert [b["bin"] for b in stats["few"]] == ([0] if k < 2.5 else [])
