"""The optimisation job on a toy analysis: settings, resume, non-finite stop, early stopping, scan, outputs.

Every run uses the same optimiser settings (only steps, checkpoints and early
stopping differ, which the compiled step does not depend on), so the step is
compiled once for the whole module.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import jax.numpy as jnp
import numpy as np
import pyhf
import pytest
import uproot
from toy_analysis import ToyAnalysis

from diffhep.config.parameters import CutParameter
from diffhep.errors import ConfigError
from diffhep.optimize import (
    EarlyStopping,
    OptimizerSettings,
    ScanSettings,
    compare_with_scan,
    run_optimization,
)
from diffhep.optimize.checkpoint import latest_checkpoint, load_checkpoint
from diffhep.optimize.run import objective_and_grad, objective_value
from diffhep.workflow import run_job

CONFIG = {
    "name": "adam",
    "learning_rate": {"name": "cosine_decay_schedule", "init_value": 0.1, "decay_steps": 60, "alpha": 0.3},
    "options": {"b1": 0.9},
    "steps": 60,
    "slope_schedule": {"start": 1.0, "end": 8.0},
    "checkpoint_every": 20,
    "seed": 3,
    "scan": {"points": 5, "width": 0.25},
}
SETTINGS = OptimizerSettings.from_config(CONFIG)
SHORT = replace(SETTINGS, steps=10, checkpoint_every=3)


@pytest.fixture(scope="module")
def toy() -> ToyAnalysis:
    return ToyAnalysis(n_signal=20_000, n_background=40_000)


@pytest.fixture(scope="module")
def data(toy):
    return toy.load()


@pytest.fixture(scope="module")
def uninterrupted(toy, data, tmp_path_factory):
    return run_optimization(toy, data, SHORT, output=tmp_path_factory.mktemp("a"), progress=False)


@pytest.fixture(scope="module")
def job(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("job")
    return out, run_job(toy, SETTINGS, out, config_hash="cafe01", progress=False)


# -- settings ---------------------------------------------------------------------------


def test_settings_from_config_builds_optax_objects():
    s = SETTINGS
    assert (s.name, s.steps, s.checkpoint_every, s.seed) == ("adam", 60, 20, 3)
    assert s.scan == ScanSettings(points=5, width=0.25) and s.early_stopping is None
    assert float(s.learning_rate_schedule()(0)) == pytest.approx(0.1)
    slope = s.slope_schedule()
    assert float(slope(0)) == pytest.approx(1.0) and float(slope(59)) == pytest.approx(8.0, rel=1e-5)
    assert float(slope(30)) == pytest.approx(8.0 ** (30 / 59), rel=1e-5)  # geometric
    stop = OptimizerSettings.from_config({"early_stopping": {"patience": 4}})
    assert stop.early_stopping == EarlyStopping(patience=4, min_delta=0.0)
    assert OptimizerSettings.from_config({"name": "sgd", "learning_rate": 0.01}).to_dict()["name"] == "sgd"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"name": "adamm"}, "optax has no 'adamm' (did you mean 'adam'?)"),
        ({"options": {"beta1": 0.9}}, "optimizer (adam): "),
        ({"learning_rate": {"name": "cosine_decay_schedul", "init_value": 0.1}}, "mean 'cosine_decay_schedule'"),
        ({"learning_rate": {"name": "cosine_decay_schedule", "init": 0.1}}, "optimizer.learning_rate (cosine"),
        ({"stepz": 3}, "unknown key 'stepz' (did you mean 'steps'?)"),
        ({"steps": 0}, "optimizer.steps: expected an integer >= 1"),
        ({"slope_schedule": {"start": 0.0, "end": 4.0}}, "slope_schedule.start: must be > 0"),
        ({"early_stopping": {"min_delta": 0.1}}, "needs 'patience'"),
        ({"scan": {"points": 5, "width": 2.0}}, "optimizer.scan.width"),
    ],
)
def test_settings_errors_are_one_line(config, message):
    with pytest.raises(ConfigError) as err:
        OptimizerSettings.from_config(config)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


# -- the loop -------------------------------------------------------------------------


def test_resume_gives_the_uninterrupted_result_bit_for_bit(toy, data, uninterrupted, tmp_path):
    assert uninterrupted.stopped is None and uninterrupted.steps == 10
    first = run_optimization(toy, data, SHORT, output=tmp_path, progress=False, max_steps=6)
    assert first.steps == 6 and "resume to continue" in first.stopped
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.glob("step_*")) == ["step_000003.npz", "step_000006.npz"]
    assert (folder / "latest").read_text().strip() == "step_000006.npz"

    resumed = run_optimization(toy, data, SHORT, output=tmp_path, resume=True, progress=False)
    assert resumed.resumed_from == 6 and resumed.stopped is None
    assert resumed.history == uninterrupted.history  # every float identical
    assert resumed.values == uninterrupted.values

    # From an older checkpoint (the pointer gone, as after a crash while writing it).
    for name in ("step_000006.npz", "step_000009.npz", "step_000010.npz", "latest"):
        (folder / name).unlink()
    again = run_optimization(toy, data, SHORT, output=tmp_path, resume=True, progress=False)
    assert again.resumed_from == 3 and again.history == uninterrupted.history


def test_non_finite_objective_stops_and_keeps_the_last_good_checkpoint(toy, data, uninterrupted, tmp_path):
    # Slope scale 8**(i/9) reaches 3 at step 5: the toy's objective is NaN from there on.
    bad = {**data, "nan_slope": jnp.asarray(3.0, dtype=data["nan_slope"].dtype)}
    result = run_optimization(toy, bad, SHORT, output=tmp_path, progress=False)
    assert result.stopped.startswith("stopped at step 5: non-finite objective")
    assert "\n" not in result.stopped
    assert np.isnan(result.history[-1]["objective"]) and len(result.history) == 6
    assert result.steps == 4
    assert result.values == {k: result.history[4][k] for k in result.values}  # last finite step's cuts
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.glob("step_*")) == ["step_000003.npz", "step_000004.npz"]
    assert latest_checkpoint(folder).name == "step_000004.npz" == result.checkpoint.name

    # Once the cause is fixed, resuming from the kept state gives the uninterrupted run.
    fixed = run_optimization(toy, data, SHORT, output=tmp_path, resume=True, progress=False)
    assert fixed.resumed_from == 4 and fixed.history == uninterrupted.history


def test_early_stopping_compares_steps_at_one_slope(toy, data, tmp_path, capsys):
    """Annealed slopes change the objective at every step: no early stop; at constant slopes, the stop."""
    never = EarlyStopping(patience=3, min_delta=100.0)  # no step improves by 100
    annealed = run_optimization(toy, data, replace(SHORT, early_stopping=never), output=tmp_path / "a", progress=False)
    assert annealed.stopped is None and annealed.steps == SHORT.steps
    assert "with slopes annealed over all 10 steps it cannot stop early" in capsys.readouterr().err
    settings = replace(SHORT, early_stopping=never, slope_end=1.0)
    result = run_optimization(toy, data, settings, output=tmp_path, progress=False)
    assert result.stopped.startswith("early stopping: the objective has not improved by 100 for 3 steps")
    assert len(result.history) == 4 and result.steps == 4
    ckpt = load_checkpoint(
        result.checkpoint,
        ["x_min", "y_max"],
        SHORT.build().init(
            {"x_min": jnp.zeros((), jnp.result_type(float)), "y_max": jnp.zeros((), jnp.result_type(float))}
        ),
        "adam",
    )
    assert ckpt.step == 4 and ckpt.history == result.history and ckpt.seed == 3


def test_checkpoint_of_other_cuts_is_refused(toy, data, uninterrupted, tmp_path):
    run_optimization(toy, data, SHORT, output=tmp_path, progress=False, max_steps=3)
    with pytest.raises(ConfigError, match="is for cuts"):
        load_checkpoint(latest_checkpoint(tmp_path / "checkpoints"), ["x_min"], None, "adam")


class _ThreeCuts(ToyAnalysis):
    """The toy with a third cut that changes nothing: enough for the random search."""

    def __init__(self, base: ToyAnalysis) -> None:
        self.__dict__.update(base.__dict__)
        self.parameters = (*base.parameters, CutParameter("z_dummy", init=0.5, low=0.0, high=1.0, slope=1.0))


def test_random_search_for_more_than_two_cuts(toy):
    settings = replace(SETTINGS, scan=ScanSettings(points=2, width=0.2))
    cuts = {"x_min": 1.8, "y_max": 1.5, "z_dummy": 0.5}
    scan = compare_with_scan(_ThreeCuts(toy), cuts, settings)
    assert scan.kind == "random" and scan.points.shape == (4, 3)
    assert np.all(np.abs(scan.points - np.array([1.8, 1.5, 0.5])) <= 0.1 * np.array([4.0, 4.5, 1.0]) + 1e-12)
    again = compare_with_scan(_ThreeCuts(toy), cuts, settings)
    np.testing.assert_array_equal(scan.points, again.points)  # seeded


# -- the job --------------------------------------------------------------------------


def test_job_improves_and_matches_brute_force(job):
    _, results = job
    z = results["significance"]
    assert results["stop_reason"] == "completed all 60 steps"
    assert results["history"][-1]["objective"] > results["history"][0]["objective"] + 1.0
    assert z["soft"]["after"] > z["soft"]["before"]
    assert z["hard_pyhf"]["after"] >= z["hard_pyhf"]["before"]
    scan = results["scan"]
    assert scan["kind"] == "grid" and len(scan["points"]) == 25
    assert scan["optimum_significance"] == pytest.approx(z["hard_pyhf"]["after"])
    # Brute force on the grid finds nothing clearly better than the optimiser.
    assert scan["best_significance"] <= scan["optimum_significance"] * 1.03


def test_evaluation_without_optimising_compiles_the_objective_alone(toy, data, job):
    """``diffhep run`` evaluates the soft objective with a value-only program: the number of value and gradient."""
    _, results = job
    cuts = {k: jnp.asarray(v, dtype=jnp.result_type(float)) for k, v in results["final"].items()}
    slope = jnp.asarray(SETTINGS.slope_end, dtype=jnp.result_type(float))
    value = objective_value(toy)
    assert objective_value(toy) is value  # compiled once per analysis
    with_grad, _ = objective_and_grad(toy)(cuts, data, slope)  # the job's program
    assert float(value(cuts, data, slope)) == pytest.approx(float(with_grad), rel=1e-6)
    assert float(value(cuts, data, slope)) == pytest.approx(results["significance"]["soft"]["after"], rel=1e-6)


def test_job_reports_plain_pyhf_hypotest_beside_the_hard_significance(job):
    out, results = job
    z = results["significance"]
    for stage in ("before", "after"):  # pyhf's own fit converges on the toy: the two numbers agree
        assert z["pyhf_hypotest"][stage] == pytest.approx(z["hard_pyhf"][stage], rel=1e-3)
    assert "pyhf.infer.hypotest" in z["about"]["pyhf_hypotest"] and "better of" in z["about"]["hard_pyhf"]
    report = (out / "report.md").read_text()
    assert "| hard cuts, pyhf Z0 |" in report and "| hard cuts, plain `pyhf.infer.hypotest` Z0 |" in report
    assert z["about"]["hard_pyhf"] in report and z["about"]["pyhf_hypotest"] in report
    # the background's MC statistics: the toy's background fills every bin with many equal-weight events
    stats = results["mc_statistics"]["after"]
    assert stats["threshold"] == 10 and stats["emptiest"]["mc_events"] > 10 and stats["few"] == []
    assert "background MC events in the emptiest bin of the selection" in report


def test_workspace_significance_is_pyhf_hypotest_where_pyhf_converges(toy):
    """Both hard numbers on the toy's workspaces over its cut range (pyhf's fit converges at each)."""
    from diffhep.optimize.scan import pyhf_hypotest_significance, significances, workspace_significance

    for x_min, y_max in [(0.0, 5.0), (1.0, 3.0), (2.5, 1.0), (3.5, 0.8)]:
        ws = toy.workspace(toy.hard_histograms({"x_min": x_min, "y_max": y_max}))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ours, plain = workspace_significance(ws), pyhf_hypotest_significance(ws)
            # the report's pair from one set of fits (the hypotest's background-only fit reused): the same numbers
            assert significances(ws)[:2] == (ours, plain)
            # the scan's points: fitted from diffhep's fit only, the same minimum
            assert workspace_significance(ws, pyhf_start=False) == pytest.approx(ours, rel=1e-9)
        assert plain == pytest.approx(ours, rel=1e-3), (x_min, y_max, ours, plain)


def test_plain_pyhf_significance_beyond_the_float_range_of_p0():
    """Z0 ~ 390: pyhf's p0 is 0 and norm.isf(0) infinite (the AGC template's plain number read "fit failed");
    sqrt(q0) of pyhf's own fits is the number, with a note, and equals diffhep's where both fits converge."""
    from diffhep.optimize.scan import pyhf_hypotest_significance, significances, workspace_significance

    ws = {
        "channels": [{"name": "sr", "samples": [
            {"name": "sig", "data": [9000.0, 20000.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "bkg", "data": [500.0, 300.0], "modifiers": [
                {"name": "b_norm", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}}]},
        ]}],
        "observations": [{"name": "sr", "data": [9500.0, 20300.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }  # fmt: skip
    pyhf.set_backend("numpy", precision="64b")
    model = pyhf.Workspace(ws).model()
    asimov = np.asarray(model.config.suggested_init(), dtype=float)
    asimov[model.config.poi_index] = 1.0
    p0 = pyhf.infer.hypotest(0.0, model.expected_data(asimov), model, test_stat="q0")
    assert float(p0) == 0.0  # the case
    plain = pyhf_hypotest_significance(ws)
    assert plain == pytest.approx(workspace_significance(ws), rel=1e-4) and plain > 100
    result = significances(ws)
    assert result.plain == plain and result.fits["pyhf_hypotest"] == {
        "converged": True,
        "error": None,
        "note": "p0 below the float range: Z0 = sqrt(q0) of pyhf's fits",
    }


def test_workspace_significance_takes_the_better_background_fit(monkeypatch):
    """Where pyhf's own fit stops early, the fit from diffhep's start decides; where diffhep's fit cannot be
    built, pyhf's own start is used even for the scan's points (``pyhf_start=False``)."""
    import pyhf

    from diffhep.optimize import scan

    ws = {
        "channels": [{"name": "sr", "samples": [
            {"name": "sig", "data": [30.0, 60.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "bkg", "data": [50.0, 40.0], "modifiers": [
                {"name": "b_norm", "type": "normsys", "data": {"hi": 1.3, "lo": 0.7}},
                {"name": "b_shape", "type": "histosys", "data": {"hi_data": [60.0, 35.0], "lo_data": [42.0, 46.0]}},
            ]},
        ]}],
        "observations": [{"name": "sr", "data": [80.0, 100.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }  # fmt: skip
    converged = scan.workspace_significance(ws)
    assert scan.workspace_significance(ws, pyhf_start=False) == pytest.approx(converged, rel=1e-9)

    fixed_poi_fit = pyhf.infer.mle.fixed_poi_fit

    def stops_at_the_start(poi, data, model, init_pars=None, **kw):  # SLSQP giving up at once, as on the AGC
        if init_pars is None:
            start = np.asarray(model.config.suggested_init(), dtype=float)
            start[model.config.poi_index] = poi
            return start
        return fixed_poi_fit(poi, data, model, init_pars=init_pars, **kw)

    monkeypatch.setattr(pyhf.infer.mle, "fixed_poi_fit", stops_at_the_start)
    assert scan.workspace_significance(ws) == pytest.approx(converged, rel=1e-9)  # diffhep's start decides
    monkeypatch.setattr(scan, "_diffhep_background_fit", lambda *a: None)
    wrong = scan.workspace_significance(ws, pyhf_start=False)  # pyhf's start alone: the early stop shows
    assert wrong > converged * 1.01
    monkeypatch.setattr(pyhf.infer.mle, "fixed_poi_fit", fixed_poi_fit)
    assert scan.workspace_significance(ws, pyhf_start=False) == pytest.approx(converged, rel=1e-6)


def test_job_writes_every_output(job, toy):
    out, results = job
    names = [
        "results.json",
        "workspace.json",
        "histograms.root",
        "cabinetry_config.yml",
        "history.png",
        "region_sr.png",
        "region_cr.png",
        "cutflow.png",
        "landscape.png",
        "report.md",
        "checkpoints/latest",
    ]
    for name in names:
        assert (out / name).is_file(), name
    assert not [p for p in out.rglob(".*")]  # no temporary files left behind

    stored = json.loads((out / "results.json").read_text())
    assert stored == json.loads(json.dumps(results))
    assert stored["config_hash"] == "cafe01" and stored["seed"] == 3
    assert set(stored["versions"]) == {"diffhep", "jax", "pyhf", "optax", "awkward"}
    assert {"step", "objective", "x_min", "y_max", "slope_scale", "grad_norm"} <= set(stored["history"][0])

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="jsonschema.RefResolver", category=DeprecationWarning)
        ws = pyhf.Workspace(json.loads((out / "workspace.json").read_text()))
    assert ws.model().config.poi_name == "mu" and set(ws.channels) == {"sr", "cr"}

    hard = toy.hard_histograms(results["final"])
    with uproot.open(out / "histograms.root") as f:
        for region, samples in hard.items():
            for sample, h in samples.items():
                th1 = f[f"{region}_{sample.replace('/', '_')}"]  # the AGC's names
                assert th1.classname == "TH1D"
                np.testing.assert_allclose(th1.values(), h.counts)
                np.testing.assert_allclose(th1.variances(), h.sumw2)
                np.testing.assert_allclose(th1.axis().edges(), toy.edges[region])
        assert "initial/sr_signal" in f and "workspace/sr_observations" in f

    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    report = (out / "report.md").read_text()
    for name in [
        "results.json",
        "workspace.json",
        "histograms.root",
        "cabinetry_config.yml",
        "history.png",
        "region_sr.png",
        "region_cr.png",
        "cutflow.png",
        "landscape.png",
        "x_min",
        "y_max",
        "pyhf",
    ]:
        assert name in report, name


def test_cabinetry_builds_the_jobs_workspace_from_its_outputs(job, monkeypatch):
    """``cabinetry_config.yml`` and ``histograms.root`` of ``diffhep optimize`` (issue 14 item 11): cabinetry's
    workspace has workspace.json's logpdf (a normfactor and staterrors, named alike: no note)."""
    cabinetry = pytest.importorskip("cabinetry")
    out, _ = job
    assert "the same logpdf at every parameter point" in (out / "cabinetry_config.yml").read_text()
    monkeypatch.chdir(out)
    config = cabinetry.configuration.load("cabinetry_config.yml")
    cabinetry.templates.collect(config)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="jsonschema.RefResolver", category=DeprecationWarning)
        ours, theirs = (
            pyhf.Workspace(json.loads((out / "workspace.json").read_text())),
            pyhf.Workspace(cabinetry.workspace.build(config)),
        )
        model, other = ours.model(), theirs.model()
    assert model.config.par_order == other.config.par_order
    pars = np.asarray(model.config.suggested_init(), dtype=float)
    for shift in (0.0, 0.05):
        point = pars * (1.0 + shift * np.sin(np.arange(len(pars))))
        assert other.logpdf(point, theirs.data(other))[0] == pytest.approx(
            model.logpdf(point, ours.data(model))[0], rel=1e-10, abs=0.0
        )
