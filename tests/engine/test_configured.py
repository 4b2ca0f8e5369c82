"""The config engine on synthetic NanoAOD-like files: hard vs plain Awkward, soft -> hard, gradients, pyhf.

One value-and-gradient function of the objective is compiled once (module
fixture) and serves both the steep-slope check and the finite differences.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import uproot
import vector

from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.engine.protocol import Analysis

vector.register_awkward()

LUMI = 1000.0
XSEC = {"sig": 2.0, "bkg": 30.0}
POINTS = [
    {"lep_pt": 20.0, "iso_max": 0.125, "jet_pt": 30.0, "btag_min": 0.5, "met_min": 20.0},
    {"lep_pt": 25.5, "iso_max": 0.25, "jet_pt": 35.25, "btag_min": 0.375, "met_min": 30.5},
]


def write_events(path: Path, n: int, seed: int, *, signal: bool) -> Path:
    """A small NanoAOD-like file: Jet (pt, eta, phi, mass, btag), Muon, Electron, genWeight, MET_pt."""
    rng = np.random.default_rng(seed)

    def collection(mean: float, fields: dict) -> ak.Array:
        counts = rng.poisson(mean, n)
        total = int(counts.sum())
        return ak.zip({k: ak.unflatten(make(total), counts) for k, make in fields.items()})

    def leptons(mass: float) -> dict:
        return {
            "pt": lambda t: (5 + rng.exponential(30, t)).astype(np.float32),
            "eta": lambda t: rng.uniform(-2.6, 2.6, t).astype(np.float32),
            "phi": lambda t: rng.uniform(-np.pi, np.pi, t).astype(np.float32),
            "mass": lambda t: np.full(t, mass, np.float32),
            "charge": lambda t: rng.choice([-1, 1], t).astype(np.int32),
            "iso": lambda t: rng.exponential(0.15, t).astype(np.float32),
            "tightId": lambda t: rng.uniform(size=t) < 0.8,
        }

    chunk = {
        "Jet": collection(
            4.5 if signal else 3.0,
            {
                "pt": lambda t: (20 + rng.exponential(45 if signal else 25, t)).astype(np.float32),
                "eta": lambda t: rng.uniform(-3, 3, t).astype(np.float32),
                "phi": lambda t: rng.uniform(-np.pi, np.pi, t).astype(np.float32),
                "mass": lambda t: rng.uniform(2, 15, t).astype(np.float32),
                "btag": lambda t: rng.uniform(0, 1, t).astype(np.float32),
            },
        ),
        "Muon": collection(1.2, leptons(0.106)),
        "Electron": collection(0.8, leptons(0.000511)),
        "genWeight": rng.uniform(0.5, 1.5, n).astype(np.float32),
        "MET_pt": rng.exponential(40, n).astype(np.float32),
    }
    with uproot.recreate(path) as file:
        file.mktree("Events", {k: (v.dtype if isinstance(v, np.ndarray) else v.type) for k, v in chunk.items()})
        file["Events"].extend(chunk)
    return path


def toy_config(folder: Path) -> dict:
    """Signal and background, a lepton union, jets with a b-tag flag, three regions, systematics."""
    return {
        "name": "toy",
        "lumi_pb": LUMI,
        "samples": {
            "sig": {"role": "signal", "files": ["sig.root"], "xsec_pb": XSEC["sig"], "weight": "genWeight"},
            "bkg": {"role": "background", "files": ["bkg*.root"], "xsec_pb": XSEC["bkg"], "weight": "genWeight"},
        },
        "parameters": {
            "lep_pt": {"init": 20, "bounds": [5, 60], "slope": 0.5, "unit": "GeV"},
            "iso_max": {"init": 0.15, "bounds": [0.02, 0.5], "slope": 40, "unit": ""},
            "jet_pt": {"init": 30, "bounds": [20, 80], "slope": 0.5, "unit": "GeV"},
            "btag_min": {"init": 0.5, "bounds": [0.1, 0.95], "slope": 20, "unit": ""},
            "met_min": {"init": 20, "bounds": [0, 100], "slope": 0.2, "unit": "GeV"},
        },
        "objects": {
            "muons": {"collection": "Muon", "require": "abs(eta) < 2.4 and tightId", "cuts": "pt > lep_pt"},
            "electrons": {
                "collection": "Electron",
                "require": "abs(eta) < 2.4",
                "cuts": "pt > lep_pt and iso < iso_max",
            },
            "leptons": {"union": ["muons", "electrons"]},  # muons, then electrons (the schema has no order here)
            "jets": {
                "collection": "Jet",
                "require": "abs(eta) < 2.4",
                "cuts": "pt > jet_pt",
                "order": "pt",
                "flags": {"btag": "btag > btag_min"},
            },
        },
        "regions": {
            "sr": {
                "select": "count(leptons) == 1 and count(jets) >= 3 and count(jets.btag) >= 1 and MET_pt > met_min",
                "observable": "sum(jets.pt)",
                "binning": {"bins": 8, "range": [50, 450]},
                "bandwidth": 0,
            },
            "tri": {
                "select": "count(jets) >= 3 and count(jets.btag) == 1",
                "observable": "trijet_mass(jets, jets.btag)",
                "binning": {"bins": 8, "range": [50, 450]},
                "bandwidth": 0,
            },
            "pair": {
                "select": "count(leptons) >= 2",
                "observable": "pair_mass(leptons)",
                "binning": {"edges": [0, 30, 60, 90, 120, 200]},
                "bandwidth": 0,
            },
        },
        "systematics": {
            "lumi": {"type": "lumi", "sigma": 0.03},
            "bkg_norm": {"type": "normsys", "samples": ["bkg"], "hi": 1.1, "lo": 0.9},
            "jes": {"type": "histosys", "up": {"scale": {"Jet_pt": 1.05}}},
            "mc_stat": {"type": "staterror"},
        },
        "measurement": {"poi": "mu"},
        "objective": {"name": "discovery_significance"},
    }


def reference(events: ak.Array, cuts: dict, normalisation: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The toy selection with hard cuts in plain Awkward: region -> (observable, weight)."""
    mu, el, jet = events.Muon, events.Electron, events.Jet
    mu = mu[(abs(mu.eta) < 2.4) & mu.tightId & (mu.pt > cuts["lep_pt"])]
    el = el[(abs(el.eta) < 2.4) & (el.pt > cuts["lep_pt"]) & (el.iso < cuts["iso_max"])]
    keep = ["pt", "eta", "phi", "mass"]
    lep = ak.concatenate([mu[keep], el[keep]], axis=1)
    jet = jet[(abs(jet.eta) < 2.4) & (jet.pt > cuts["jet_pt"])]
    jet = jet[ak.argsort(jet.pt, axis=1, ascending=False, stable=True)]
    n_jet, n_tag = ak.num(jet, axis=1), ak.sum(jet.btag > cuts["btag_min"], axis=1)
    weight = np.asarray(events.genWeight, dtype=np.float64) * normalisation

    def p4(a: ak.Array) -> ak.Array:
        return ak.zip({k: ak.values_astype(a[k], np.float64) for k in keep}, with_name="Momentum4D")

    tri = ak.combinations(ak.zip({"p4": p4(jet), "tag": jet.btag > cuts["btag_min"]}), 3, fields=["a", "b", "c"])
    tri = tri[tri.a.tag | tri.b.tag | tri.c.tag]
    tri_p4 = tri.a.p4 + tri.b.p4 + tri.c.p4
    best = ak.firsts(tri_p4[ak.argmax(tri_p4.pt, axis=1, keepdims=True)].mass)
    pair = ak.pad_none(p4(lep), 2, axis=1, clip=True)
    regions = {
        "sr": (
            ak.to_numpy((ak.num(lep, axis=1) == 1) & (n_jet >= 3) & (n_tag >= 1) & (events.MET_pt > cuts["met_min"])),
            ak.to_numpy(ak.sum(ak.values_astype(jet.pt, np.float64), axis=1)),
        ),
        "tri": (ak.to_numpy((n_jet >= 3) & (n_tag == 1)), ak.to_numpy(ak.fill_none(best, -1.0))),
        "pair": (
            ak.to_numpy(ak.num(lep, axis=1) >= 2),
            ak.to_numpy(ak.fill_none((pair[:, 0] + pair[:, 1]).mass, -1.0)),
        ),
    }
    return {name: (x[mask], weight[mask]) for name, (mask, x) in regions.items()}


@pytest.fixture(scope="module", autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    write_events(folder / "sig.root", 300, 1, signal=True)
    write_events(folder / "bkg_a.root", 200, 2, signal=False)
    write_events(folder / "bkg_b.root", 200, 3, signal=False)
    analysis = ConfiguredAnalysis.from_config(toy_config(folder), base=folder)
    return folder, analysis, analysis.load()


@pytest.fixture(scope="module")
def value_and_grad(toy):
    """Objective, its gradient and the soft histograms, compiled once."""
    _, analysis, _ = toy

    def objective(cuts, data, scale):
        hists = analysis.soft_histograms(cuts, data, scale)
        return analysis.figure_of_merit(hists), hists

    return jax.jit(jax.value_and_grad(objective, has_aux=True))


def _read(folder: Path, pattern: str) -> ak.Array:
    from diffhep.io import read_events

    return read_events(sorted(str(p) for p in folder.glob(pattern)))


def _normalisation(events: ak.Array, xsec: float) -> float:
    return xsec * LUMI / float(np.sum(np.asarray(events.genWeight, dtype=np.float64)))


def test_implements_the_protocol(toy):
    _, analysis, data = toy
    assert isinstance(analysis, Analysis)
    assert [p.name for p in analysis.parameters] == ["lep_pt", "iso_max", "jet_pt", "btag_min", "met_min"]
    assert analysis.signal == ["sig"] and analysis.observables["tri"] == "trijet_mass(jets, jets.btag) [GeV]"
    assert data.keys == ("sig", "bkg", "sig/jes/up", "bkg/jes/up")
    np.testing.assert_allclose(analysis.edges["sr"], np.linspace(50, 450, 9))


@pytest.mark.parametrize("cuts", POINTS)
def test_hard_histograms_equal_plain_awkward(toy, cuts):
    folder, analysis, _ = toy
    hard = analysis.hard_histograms(cuts)
    for key, pattern, scale in [("sig", "sig.root", 1.0), ("bkg", "bkg*.root", 1.0), ("bkg/jes/up", "bkg*.root", 1.05)]:
        events = _read(folder, pattern)
        if scale != 1.0:
            events = ak.with_field(events, events.Jet.pt * scale, ["Jet", "pt"])
        ref = reference(events, cuts, _normalisation(events, XSEC[key.split("/")[0]]))
        for region, (x, w) in ref.items():
            counts, _ = np.histogram(x, bins=analysis.edges[region], weights=w)
            sumw2, _ = np.histogram(x, bins=analysis.edges[region], weights=w**2)
            assert counts.sum() > 0, (key, region)
            np.testing.assert_allclose(hard[region][key].counts, counts, rtol=1e-10, err_msg=f"{key} {region}")
            np.testing.assert_allclose(hard[region][key].sumw2, sumw2, rtol=1e-10, err_msg=f"{key} {region}")


@pytest.mark.parametrize("cuts", POINTS)
def test_steep_soft_histograms_equal_hard(toy, value_and_grad, cuts):
    _, analysis, data = toy
    hard = analysis.hard_histograms(cuts)
    (_, soft), _ = value_and_grad({k: jnp.asarray(v) for k, v in cuts.items()}, data, 1e6)
    for region in hard:
        for key in data.keys:
            np.testing.assert_allclose(soft[region][key].counts, hard[region][key].counts, rtol=1e-8, atol=1e-8)
            np.testing.assert_allclose(soft[region][key].sumw2, hard[region][key].sumw2, rtol=1e-8, atol=1e-8)


def test_objective_gradient_matches_finite_differences(toy, value_and_grad):
    _, analysis, data = toy
    cuts = {"lep_pt": 22.0, "iso_max": 0.2, "jet_pt": 33.0, "btag_min": 0.45, "met_min": 25.0}
    point = {k: jnp.asarray(v) for k, v in cuts.items()}
    (z, _), grad = value_and_grad(point, data, 1.0)
    assert np.isfinite(float(z)) and float(z) > 0
    for p in analysis.parameters:
        eps = 1e-4 * (p.high - p.low)
        up = value_and_grad({**point, p.name: point[p.name] + eps}, data, 1.0)[0][0]
        down = value_and_grad({**point, p.name: point[p.name] - eps}, data, 1.0)[0][0]
        fd = (float(up) - float(down)) / (2 * eps)
        assert float(grad[p.name]) == pytest.approx(fd, rel=2e-3, abs=1e-6 * (1 + abs(fd))), p.name
    assert sum(abs(float(g)) > 0 for g in grad.values()) == len(cuts)


def test_workspace_validates_and_pyhf_significance_is_finite(toy):
    import pyhf

    from diffhep.infer import pyhf_discovery_significance

    _, analysis, _ = toy
    cuts = POINTS[0]
    ws = analysis.workspace(analysis.hard_histograms(cuts))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="jsonschema.RefResolver", category=DeprecationWarning)
        workspace = pyhf.Workspace(copy.deepcopy(ws))
        model = workspace.model()
    assert sorted(model.config.channels) == ["pair", "sr", "tri"]
    assert {"mu", "lumi", "bkg_norm", "jes", "mc_stat_sr"} <= set(model.config.parameters)
    modifiers = {(m["name"], m["type"]) for c in ws["channels"] for s in c["samples"] for m in s["modifiers"]}
    assert ("jes", "histosys") in modifiers and ("mu", "normfactor") in modifiers
    z = pyhf_discovery_significance(
        {"channels": ws["channels"], "parameters": ws["measurements"][0]["config"]["parameters"]}
    )
    assert np.isfinite(z) and z > 0


def test_cutflow_starts_at_xsec_times_lumi_and_ends_at_the_region_yield(toy):
    folder, analysis, data = toy
    cuts = POINTS[0]
    flow = analysis.cutflow(cuts, data)
    assert set(flow) == {"sig", "bkg"}
    for sample, pattern in [("sig", "sig.root"), ("bkg", "bkg*.root")]:
        rows = flow[sample]
        assert rows[0]["step"] == "all events"
        assert rows[0]["hard"] == pytest.approx(XSEC[sample] * LUMI) == rows[0]["soft"]
        events = _read(folder, pattern)
        ref = reference(events, cuts, _normalisation(events, XSEC[sample]))
        last = [r for r in rows if r["step"].startswith("sr:")][-1]
        assert last["step"] == "sr: MET_pt > met_min"
        assert last["hard"] == pytest.approx(ref["sr"][1].sum(), rel=1e-10)
        hard = [r["hard"] for r in rows if r["step"].startswith("sr:")]
        assert all(a >= b for a, b in zip(hard, hard[1:], strict=False))  # positive weights: non-increasing
        assert all(0 < r["soft"] <= rows[0]["soft"] for r in rows)


def _cowan_z(s: np.ndarray, b: np.ndarray, sigma: np.ndarray) -> float:
    """Median discovery significance of counting bins with background uncertainty ``sigma``, bins in
    quadrature (Cowan, "Discovery sensitivity for a counting experiment with background uncertainty")."""
    var = sigma**2
    z2 = 2 * (
        (s + b) * np.log((s + b) * (b + var) / (b**2 + (s + b) * var))
        - b**2 / var * np.log(1 + var * s / (b * (b + var)))
    )
    return float(np.sqrt(np.sum(z2)))


def _pyhf_model(analysis, hists):
    import pyhf

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="jsonschema.RefResolver", category=DeprecationWarning)
        return pyhf.Workspace(copy.deepcopy(analysis.workspace(hists))).model()


def _pyhf_expected_cls(model, mu: float) -> float:
    """Median expected CLs at ``mu`` for background-only data (qtilde, asymptotic, Cowan et al. 2011):
    on the background-only Asimov data the unconditional fit is the generating point, q_A is twice the
    NLL difference to the conditional fit at ``mu``, and CLs = Phi(-sqrt(q_A)) / Phi(0)."""
    import pyhf
    from scipy.stats import norm

    background = np.asarray(model.config.suggested_init(), dtype=float)
    background[model.config.poi_index] = 0.0
    data = np.asarray(model.expected_data(background))
    _, twice_nll = pyhf.infer.mle.fixed_poi_fit(mu, data, model, return_fitted_val=True)
    q_a = float(twice_nll) + 2 * float(model.logpdf(background, data)[0])
    return float(norm.cdf(-np.sqrt(q_a)) / norm.cdf(0.0))


def _pyhf_poi_uncertainty(model) -> float:
    """sqrt([H^-1]_mu,mu) with H from central differences of pyhf's -logpdf at the mu = 1 Asimov point."""
    pars = np.asarray(model.config.suggested_init(), dtype=float)
    data = np.asarray(model.expected_data(pars))
    assert not any(model.config.suggested_fixed())
    h, n = 3e-4, pars.size  # truncation and rounding both ~1e-7 of the result here (1e-3: 1e-6, 1e-5: 2e-3)
    steps = h * np.eye(n)

    def nll(p):
        return -float(model.logpdf(p, data)[0])

    hessian = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            a, b = steps[i], steps[j]
            second = nll(pars + a + b) - nll(pars + a - b) - nll(pars - a + b) + nll(pars - a - b)
            hessian[i, j] = hessian[j, i] = second / (4 * h * h)
    return float(np.sqrt(np.linalg.inv(hessian)[model.config.poi_index, model.config.poi_index]))


@pytest.fixture
def tight_pyhf():
    import pyhf

    previous = pyhf.get_backend()
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-12))
    yield
    pyhf.set_backend(*previous)


@pytest.mark.parametrize("name", ["asimov_significance", "cls", "poi_uncertainty"])
def test_every_objective_equals_an_independent_value(toy, tight_pyhf, name):
    """Each objective against its definition, computed by pyhf or NumPy on the same histograms.

    One event of weight 1 is added to every bin of every histogram: the toy's hard histograms have
    empty background bins (where the Asimov formula needs a regulator) and a bin empty at nominal
    that the jes variation fills (the likelihood is then at a boundary, its Hessian one-sided)."""
    _, analysis, _ = toy
    hists = {
        region: {
            key: h._replace(counts=np.asarray(h.counts) + 1.0, sumw2=np.asarray(h.sumw2) + 1.0) for key, h in hs.items()
        }
        for region, hs in analysis.hard_histograms(POINTS[0]).items()
    }
    analysis = copy.copy(analysis)
    analysis.objective_name = name
    value = float(analysis.figure_of_merit(hists))
    if name == "asimov_significance":  # signal vs the backgrounds' sum, MC statistics as the uncertainty
        nominal = [hists[r] for r in analysis.edges]
        s = np.concatenate([h["sig"].counts for h in nominal])
        # a bin's background at least one MC event of the mean weight (xsec * lumi / 400 events), with its sumw2
        w = XSEC["bkg"] * LUMI / 400
        b = np.maximum(np.concatenate([h["bkg"].counts for h in nominal]), w)
        expected = _cowan_z(s, b, np.sqrt(np.maximum(np.concatenate([h["bkg"].sumw2 for h in nominal]), w * w)))
        assert value == pytest.approx(expected, rel=1e-10)
    elif name == "cls":  # minus the expected CLs at the config's mu (1)
        assert value == pytest.approx(-_pyhf_expected_cls(_pyhf_model(analysis, hists), 1.0), rel=1e-8)
    else:  # minus the expected (Cramer-Rao) uncertainty on mu
        assert value == pytest.approx(-_pyhf_poi_uncertainty(_pyhf_model(analysis, hists)), rel=1e-5)


def test_a_loaded_config_is_read_through_its_sections(toy):
    """A dict and the same config loaded from YAML give the same analysis; no raw dict is kept."""
    import yaml

    from diffhep.config import load_config

    folder, analysis, _ = toy
    path = folder / "toy.yaml"
    path.write_text(yaml.safe_dump(toy_config(folder), sort_keys=False))
    config = load_config(path)
    loaded = ConfiguredAnalysis.from_config(config)
    assert loaded.config is config and loaded.sections is config.sections and loaded.base == folder.resolve()
    assert [p.name for p in loaded.parameters] == [p.name for p in analysis.parameters]
    assert loaded.samples == analysis.samples == {"sig": "signal", "bkg": "background"}
    assert loaded._samples["bkg"].files == (str(folder.resolve() / "bkg*.root"),)
    assert (loaded.poi, loaded.objective_name, loaded.objective_mu) == ("mu", "discovery_significance", 1.0)
    assert loaded.branch_plan == analysis.branch_plan
    with pytest.raises(Exception, match="differs from the config's folder"):
        ConfiguredAnalysis.from_config(config, base=folder / "elsewhere")


def test_execution_auto_builds_the_analysis_once(toy, monkeypatch):
    """``execution: auto`` estimates the input size with the analysis the command then runs."""
    import argparse

    import yaml

    from diffhep.cli.common import executed_analysis, execution_settings
    from diffhep.config import load_config

    folder, _, _ = toy
    path = folder / "auto.yaml"
    path.write_text(yaml.safe_dump({**toy_config(folder), "execution": {"mode": "auto"}}, sort_keys=False))
    config = load_config(path)
    built = []
    init = ConfiguredAnalysis.__init__

    def counting(self, *args, **kwargs):
        built.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(ConfiguredAnalysis, "__init__", counting)
    settings = execution_settings(
        config, argparse.Namespace(execution=None, chunk_size=None, scheduler=None, workers=None)
    )
    assert settings.mode == "memory" and settings.note.startswith("auto:")
    analysis = executed_analysis(config, settings)
    assert built == [analysis]
    assert executed_analysis(config, settings) is not analysis and len(built) == 2  # taken once, then built anew
