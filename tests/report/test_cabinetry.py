"""cabinetry on diffhep's outputs (issue 14 item 11): ``histograms.root`` and ``cabinetry_config.yml``.

cabinetry (a test extra) collects the templates of ``histograms.root`` with the
written config and builds a workspace; its ``logpdf`` is compared with that of
``workspace.json`` at several parameter points (parameters matched by name through
:attr:`CabinetryConfig.parameter_names`), in float64:

* normfactors (the POI), normsys and staterror: equal everywhere;
* a histosys (cabinetry's ``NormPlusShape``: a normsys of the yield ratio times a
  histosys of the normalised templates): equal where every histosys parameter of a
  sample is 0 but at most one, which is -1 or +1 (the model is then the nominal or a
  template); different elsewhere;
* lumi (a ``Normalization`` of +-sigma in cabinetry, parameter ``(lumi - 1) / sigma``):
  cabinetry's logpdf is diffhep's plus ``log(sigma)`` at ``lumi`` = 1 - sigma, 1, 1 + sigma.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pyhf
import pytest
import uproot
import yaml

from diffhep.cli import main
from diffhep.engine.systematics import SystematicDef, Variation, build_spec, workspace
from diffhep.histogram import Histogram
from diffhep.report import cabinetry_config, workspace_templates, write_cabinetry_config, write_histograms

cabinetry = pytest.importorskip("cabinetry")

RTOL = 1e-10


def _model(ws: dict) -> tuple[pyhf.pdf.Model, np.ndarray]:
    w = pyhf.Workspace(ws)
    model = w.model()
    return model, np.asarray(w.data(model), dtype=float)


def _build(folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """cabinetry's workspace from ``cabinetry_config.yml`` in ``folder``, run there as the config says."""
    monkeypatch.chdir(folder)
    config = cabinetry.configuration.load("cabinetry_config.yml")
    cabinetry.templates.collect(config)
    return cabinetry.workspace.build(config)


def _translate(model_d, pars: dict[str, float | list[float]], names: dict[str, str], lumi: dict[str, float]):
    """The diffhep model's parameters (name -> value(s); the rest at pyhf's suggested init) for both models."""
    vector = np.asarray(model_d.config.suggested_init(), dtype=float)
    for name, value in pars.items():
        vector[model_d.config.par_slice(name)] = value
    by_name = {name: vector[model_d.config.par_slice(name)] for name in model_d.config.par_order}
    cabinetry_pars = {names[n]: (v - 1.0) / lumi[n] if n in lumi else v for n, v in by_name.items()}
    return vector, cabinetry_pars


def _logpdfs(ws_d: dict, ws_c: dict, points: list[dict], names: dict[str, str], lumi: dict[str, float]):
    """``(diffhep's, cabinetry's)`` logpdf at each point, each model with its own observations."""
    model_d, data_d = _model(ws_d)
    model_c, data_c = _model(ws_c)
    assert sorted(names[n] for n in model_d.config.par_order) == sorted(model_c.config.par_order)
    out = []
    for point in points:
        vector_d, by_name = _translate(model_d, point, names, lumi)
        vector_c = np.asarray(model_c.config.suggested_init(), dtype=float)
        for name, value in by_name.items():
            vector_c[model_c.config.par_slice(name)] = value
        out.append((float(model_d.logpdf(vector_d, data_d)[0]), float(model_c.logpdf(vector_c, data_c)[0])))
    return out


def _spec_workspace(norm_plus_shape: bool = False) -> tuple[dict, dict]:
    """A workspace with every modifier cabinetry can write, two regions, and its hard histograms
    (the histosys split as NormPlusShape with ``norm_plus_shape``)."""
    rng = np.random.default_rng(3)
    edges = {"sr": np.linspace(0.0, 4.0, 5), "cr": np.linspace(0.0, 3.0, 4)}
    hard = {}
    for region, e in edges.items():
        n = len(e) - 1
        hists = {}
        for sample, scale in (("signal", 3.0), ("ttbar", 40.0), ("wjets", 25.0)):
            counts = scale * (1.0 + rng.random(n))
            hists[sample] = Histogram(counts, counts * rng.uniform(0.05, 0.3, n))
            for syst, direction, shift in (("jes", "up", 1.1), ("jes", "down", 0.93), ("model", "up", 1.08)):
                varied = counts * rng.uniform(shift - 0.05, shift + 0.05, n)
                hists[f"{sample}/{syst}/{direction}"] = Histogram(varied, varied * 0.1)
        hists["ttbar"] = Histogram(np.array([0.0, *hists["ttbar"].counts[1:]]), hists["ttbar"].sumw2)  # a floor
        hard[region] = hists
    systs = [
        SystematicDef("lumi", "lumi", ("signal", "ttbar", "wjets"), sigma=0.02),
        SystematicDef("wjets_norm", "normsys", ("wjets",), hi=1.1, lo=0.85),
        SystematicDef(
            "jes",
            "histosys",
            ("signal", "ttbar", "wjets"),
            up=Variation(),
            down=Variation(),
            norm_plus_shape=norm_plus_shape,
        ),
        SystematicDef(
            "model", "histosys", ("ttbar",), up=Variation(), norm_plus_shape=norm_plus_shape
        ),  # down: 2 nom - up
        SystematicDef("mc_stat", "staterror", ("ttbar", "wjets")),
        SystematicDef("k_wjets", "normfactor", ("wjets",)),
    ]
    with jax.enable_x64(True):
        spec = build_spec(
            hard,
            roles={"signal": "signal", "ttbar": "background", "wjets": "background"},
            systematics=systs,
            poi="mu",
            mean_weights={"ttbar": 0.7, "wjets": 0.4},
            parameters={"mu": {"bounds": [[-2.0, 8.0]], "inits": [1.0]}},
        )
        ws = workspace(spec, poi="mu", name="toy")
    return ws, {"hard": hard, "edges": edges}


def test_cabinetry_builds_the_workspace_from_the_written_config(tmp_path, monkeypatch):
    ws, made = _spec_workspace()
    edges, labels = made["edges"], {"sr": "x [GeV]", "cr": "y [GeV]"}
    result = cabinetry_config(ws, observables=labels, edges=edges)
    write_histograms(
        tmp_path / "histograms.root",
        {"": made["hard"], "workspace": workspace_templates(ws, made["hard"])},
        edges,
        labels,
    )
    write_cabinetry_config(tmp_path / "cabinetry_config.yml", result)
    assert result.parameter_names["mc_stat_sr"] == "staterror_sr"
    assert sorted(n.split(" ")[0] for n in result.notes) == ["histosys", "histosys", "lumi"]
    text = (tmp_path / "cabinetry_config.yml").read_text()
    assert "mc_stat_sr -> staterror_sr" in text and yaml.safe_load(text) == result.config
    with uproot.open(tmp_path / "histograms.root") as f:  # the AGC's names; workspace/ holds the floored templates
        assert f["sr_ttbar"].values()[0] == 0.0 and f["workspace/sr_ttbar"].values()[0] == 0.7
        assert f["workspace/cr_ttbar_model_down"].values().sum() > 0 and "cr_ttbar_model_down" not in f
        np.testing.assert_array_equal(f["sr_wjets_jes_up"].values(), made["hard"]["sr"]["wjets/jes/up"].counts)

    ws_c = _build(tmp_path, monkeypatch)
    assert sorted(ws_c["observations"], key=str) == sorted(ws["observations"], key=str)
    assert ws_c["measurements"][0]["config"]["poi"] == "mu"
    model_d, model_c = _model(ws)[0], _model(ws_c)[0]
    assert model_c.config.suggested_bounds()[model_c.config.poi_index] == [-2.0, 8.0]
    np.testing.assert_allclose(  # the expected counts at the suggested init: the same
        model_c.expected_actualdata(model_c.config.suggested_init()),
        model_d.expected_actualdata(model_d.config.suggested_init()),
        rtol=1e-12,
    )
    gammas = {"mc_stat_sr": [0.97, 1.04, 1.01, 0.99], "mc_stat_cr": [1.05, 0.95, 1.02]}
    exact = [
        {},
        {"mu": 0.4, "k_wjets": 1.3, "wjets_norm": -0.6, **gammas},
        {"mu": 2.5, "wjets_norm": 1.7, "jes": 1.0, **gammas},
        {"mu": 1.1, "wjets_norm": 0.3, "jes": -1.0, "lumi": 1.02, **gammas},
        {"k_wjets": 0.7, "lumi": 0.98, "model": 1.0},
        {"mu": 0.6, "model": -1.0, **gammas},
    ]
    for d, c in _logpdfs(ws, ws_c, exact, result.parameter_names, {"lumi": 0.02}):
        assert c == pytest.approx(d + math.log(0.02), rel=RTOL, abs=0.0)
    # NormPlusShape differs between and beyond a template, and with two histosys of a sample away from 0
    different = [{"jes": 0.5}, {"model": -1.7}, {"jes": 1.0, "model": 1.0}]
    for d, c in _logpdfs(ws, ws_c, different, result.parameter_names, {"lumi": 0.02}):
        assert abs(c - d - math.log(0.02)) > 1e-6


def test_norm_plus_shape_histosys_is_built_by_cabinetry_exactly(tmp_path, monkeypatch):
    """diffhep's ``norm_plus_shape`` split (a normsys and a histosys of one name, as the AGC's
    NormPlusShape systematics) is what cabinetry builds from the product templates: equal logpdf
    also between and beyond the templates and with two of them away from 0."""
    ws, made = _spec_workspace(norm_plus_shape=True)
    for channel in ws["channels"]:
        for sample in channel["samples"]:
            kinds = {m["type"] for m in sample["modifiers"] if m["name"] == "jes"}
            assert kinds == {"normsys", "histosys"}
            shape = next(m for m in sample["modifiers"] if m["name"] == "jes" and m["type"] == "histosys")
            nominal = np.sum(sample["data"])  # the shapes keep the nominal total; the normsys carries the ratio
            assert np.sum(shape["data"]["hi_data"]) == pytest.approx(nominal, rel=1e-12)
            assert np.sum(shape["data"]["lo_data"]) == pytest.approx(nominal, rel=1e-12)
    edges = made["edges"]
    result = cabinetry_config(ws, edges=edges)
    assert sorted(n.split(" ")[0] for n in result.notes) == ["lumi"]  # nothing said about the histosys
    assert [s["Name"] for s in result.config["Systematics"]].count("jes") == 1
    write_histograms(tmp_path / "histograms.root", {"workspace": workspace_templates(ws, made["hard"])}, edges, {})
    write_cabinetry_config(tmp_path / "cabinetry_config.yml", result)
    ws_c = _build(tmp_path, monkeypatch)
    points = [{}, {"jes": 0.5}, {"model": -1.7}, {"jes": 1.0, "model": 1.0}, {"mu": 2.1, "jes": -2.3, "model": 0.4}]
    for d, c in _logpdfs(ws, ws_c, points, result.parameter_names, {"lumi": 0.02}):
        assert c == pytest.approx(d + math.log(0.02), rel=RTOL, abs=0.0)


def test_norm_plus_shape_at_plus_minus_one_is_the_variation_and_has_finite_gradients():
    """At alpha = +-1 the split model gives the (floored) variations themselves; a region where the
    nominal is empty keeps the nominal and factor 1, with a finite gradient."""
    nominal = {"sr": Histogram(np.array([5.0, 3.0, 2.0]), np.ones(3)), "cr": Histogram(np.zeros(2), np.zeros(2))}
    up = {"sr": Histogram(np.array([6.0, 3.5, 1.0]), np.ones(3)), "cr": Histogram(np.array([0.0, 1.0]), np.ones(2))}
    syst = SystematicDef("shape", "histosys", ("signal",), up=Variation(), norm_plus_shape=True)

    def spec_of(scale):
        hists = {r: {"signal": nominal[r], "signal/shape/up": Histogram(up[r].counts * scale, up[r].sumw2)}
                 for r in nominal}  # fmt: skip
        return build_spec(hists, roles={"signal": "signal"}, systematics=[syst], poi="mu", mean_weights={})

    with jax.enable_x64(True):
        spec = spec_of(1.0)
        ws = workspace(spec, poi="mu", name="split")
        model = pyhf.Workspace(ws).model()
        for alpha, want in ((1.0, up["sr"].counts), (-1.0, 2 * nominal["sr"].counts - up["sr"].counts)):
            pars = np.asarray(model.config.suggested_init(), dtype=float)
            pars[model.config.par_slice("shape")] = alpha
            got = np.asarray(model.expected_actualdata(pars))[model.config.channel_slices["sr"]]
            np.testing.assert_allclose(got, np.maximum(want, 0.0), rtol=1e-12)
        cr = next(c for c in spec["channels"] if c["name"] == "cr")["samples"][0]["modifiers"]
        norm = next(m for m in cr if m["type"] == "normsys")["data"]
        assert float(norm["hi"]) == 1.0 and float(norm["lo"]) == 1.0

        def total(k):
            mods = [m for c in spec_of(k)["channels"] for m in c["samples"][0]["modifiers"] if m["name"] == "shape"]
            return sum(jnp.sum(m["data"]["hi"] if m["type"] == "normsys" else m["data"]["hi_data"]) for m in mods)

        grad = jax.grad(total)(1.3)
        assert np.isfinite(float(grad))


def test_without_lumi_nor_histosys_the_logpdf_is_the_same_everywhere(tmp_path, monkeypatch):
    ws, made = _spec_workspace()
    for channel in ws["channels"]:
        for sample in channel["samples"]:
            sample["modifiers"] = [m for m in sample["modifiers"] if m["type"] not in ("lumi", "histosys")]
    ws["measurements"][0]["config"]["parameters"] = [
        p for p in ws["measurements"][0]["config"]["parameters"] if p["name"] != "lumi"
    ] + [{"name": "wjets_norm", "fixed": True, "inits": [0.3]}]
    result = cabinetry_config(ws)
    assert result.notes == []
    assert result.config["General"]["Fixed"] == [{"Name": "wjets_norm", "Value": 0.3}]
    write_histograms(tmp_path / "histograms.root", {"workspace": workspace_templates(ws)}, made["edges"], {})
    write_cabinetry_config(tmp_path / "cabinetry_config.yml", result)
    assert "the same logpdf at every parameter point" in (tmp_path / "cabinetry_config.yml").read_text()
    ws_c = _build(tmp_path, monkeypatch)
    model_d, model_c = _model(ws)[0], _model(ws_c)[0]
    for model in (model_d, model_c):  # held fixed at 0.3 in both
        index = model.config.par_slice("wjets_norm").start
        assert model.config.suggested_fixed()[index] and model.config.suggested_init()[index] == 0.3
    points = [{}, {"mu": 3.3, "k_wjets": 0.2, "wjets_norm": -2.4, "mc_stat_sr": [0.8, 1.3, 1.0, 0.9]}]
    points.append({"mu": 0.0, "wjets_norm": 0.45, "mc_stat_cr": [1.2, 0.7, 1.1]})
    for d, c in _logpdfs(ws, ws_c, points, result.parameter_names, {}):
        assert c == pytest.approx(d, rel=RTOL, abs=0.0)


def test_what_cabinetry_cannot_build_is_said():
    ws, _ = _spec_workspace()
    sr = ws["channels"][0]
    assert sr["name"] == "sr" and [s["name"] for s in sr["samples"]] == ["signal", "ttbar", "wjets"]
    sr["samples"][1]["modifiers"].append({"name": "shape", "type": "shapesys", "data": [1.0] * 4})
    sr["samples"][0]["data"] = [0.0] * 4  # no signal in sr: NormPlusShape divides by 0
    result = cabinetry_config(ws)
    assert "shapesys 'shape' is left out: cabinetry has no shapesys modifier" in result.notes
    assert any(
        n.startswith("histosys 'jes': cabinetry divides by the nominal yield, 0 for signal in sr") for n in result.notes
    )
    assert "shape" not in result.parameter_names
    cabinetry.configuration.validate(result.config)


TINY = """\
name: tiny
lumi_pb: 10000.0
samples:
  signal:
    role: signal
    files: [data/signal.root]
    xsec_pb: 0.5
    weight: genWeight
    generate: {process: signal, events: 300}
  dy:
    role: background
    files: [data/dy.root]
    xsec_pb: 60.0
    weight: genWeight
    generate: {process: dy, events: 600, seed: 3}
parameters:
  met_max: {init: 60, bounds: [10, 150], slope: 0.2, unit: GeV}
  muon_pt_min: {init: 20, bounds: [5, 60], slope: 0.5, unit: GeV}
objects:
  muons:
    collection: Muon
    require: abs(eta) < 2.4
    cuts: pt > muon_pt_min
    order: pt
regions:
  sr:
    select: count(muons) >= 2 and MET_pt < met_max
    observable: pair_mass(muons)
    binning: {bins: 8, range: [20, 140]}   # no dy event below 50 GeV: floored bins
    bandwidth: 2
systematics:
  lumi: {type: lumi, sigma: 0.03}
  dy_norm: {type: normsys, samples: [dy], hi: 1.05, lo: 0.95}
  mu_scale: {type: histosys, up: {scale: {Muon_pt: 1.02}}, down: {scale: {Muon_pt: 0.98}}}
  mu_res: {type: histosys, samples: [dy], up: {smear: {Muon_pt: 0.03}, seed: 2}}
  mc_stat: {type: staterror}
measurement:
  poi: mu
objective:
  name: asimov_significance
"""


def test_diffhep_run_writes_what_cabinetry_builds_workspace_json_from(tmp_path, monkeypatch):
    """``diffhep run`` on a small generated config: cabinetry's workspace from its outputs is workspace.json's."""
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    assert main(["generate", "--config", str(config)]) == 0
    out = tmp_path / "run"
    assert main(["run", str(config), "--output", str(out), "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["files"]["cabinetry config building workspace.json from histograms.root"] == "cabinetry_config.yml"
    with uproot.open(out / "histograms.root") as f:  # the AGC's names, at the top and in workspace/
        names = {k.split(";")[0] for k in f.keys(recursive=True)}
        assert f["sr_dy"].values()[0] == 0.0 < f["workspace/sr_dy"].values()[0]  # the MC floor of an empty bin
    assert {"sr_signal", "sr_dy", "sr_dy_mu_scale_up", "sr_dy_mu_res_up", "workspace/sr_observations"} <= names
    assert "sr_dy_mu_res_down" not in names and "workspace/sr_dy_mu_res_down" in names  # symmetrised
    ws = json.loads((out / "workspace.json").read_text())
    result = cabinetry_config(ws)
    assert result.parameter_names == {
        "mu": "mu",
        "lumi": "lumi",
        "dy_norm": "dy_norm",
        "mu_scale": "mu_scale",
        "mu_res": "mu_res",
        "mc_stat_sr": "staterror_sr",
    }
    ws_c = _build(out, monkeypatch)
    points = [
        {},
        {"mu": 0.3, "dy_norm": 1.4, "lumi": 1.03, "mu_scale": -1.0},
        {"mu": 2.0, "dy_norm": -0.8, "lumi": 0.97, "mu_scale": 1.0, "mc_stat_sr": [0.9, 1.1] + [1.05] * 6},
        {"mu": 1.2, "mu_res": 1.0, "mc_stat_sr": [1.01, 0.98, 1.0, 1.02, 0.99, 1.03, 1.0, 0.97]},
        {"mu": 0.7, "mu_res": -1.0, "lumi": 1.03},
    ]
    for d, c in _logpdfs(ws, ws_c, points, result.parameter_names, {"lumi": 0.03}):
        assert c == pytest.approx(d + math.log(0.03), rel=RTOL, abs=0.0)
