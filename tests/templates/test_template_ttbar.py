"""The AGC ttbar template (``analyses/ttbar/config.yaml``) at a small size, end to end.

The template's own config is loaded, its samples are moved to ``tmp_path`` and
made small, generated with ``diffhep generate --config`` (with the four dedicated
ttbar samples of the modelling systematics, whose variations have their own ``generate:``), then:

* the config's starting cuts, cross-sections, event weight, binning and systematics are the AGC's;
* the objective is the AGC's question, the expected uncertainty on the ttbar signal strength ``ttbar_norm``;
* ``diffhep optimize`` from the AGC cuts (the template's starting values), with
  a few steps, lowers that uncertainty with hard cuts, by pyhf alone, clearly below its
  starting value, and writes a pyhf workspace that carries every systematic of
  the config as a modifier.

Its hard-cut histograms, every sample and variation, are compared with the
independent AGC oracle ``tests/reference/agc.py`` in ``test_template_ttbar_reference.py``.

Offline, generator seeds 1, 2 and 3 at these sizes and settings, objective ``poi_uncertainty``, give the
hard-cut pyhf uncertainty on ttbar_norm (Asimov at mu = 1, every systematic profiled) 0.3634 -> 0.2837,
0.3652 -> 0.2986 and 0.3425 -> 0.2726 (x0.781, x0.818, x0.796), with both pT thresholds at 22.8-23.4 GeV and
``btag_min`` 0.5 -> 0.242, 0.508 and 0.488; the hard Z0 there is 12.15 -> 25.34, 13.35 -> 17.37 and 12.26 -> 21.00
(measured 2026-12-07 on a 2-core Intel Xeon shared with other jobs, load 6-9: the optimisation with the code of 93885cd
and this objective, the AGC's three ttbar modelling systematics and the pseudodata fix of af29f3c included; the hard
sigma by workspace_poi_uncertainty of 4ad4636 at its initial and final cuts; 9-11 min of wall time per seed at that
load; this test took 126 s against 195 s with the discovery objective, back to back on the same machine). The test (seed 1)
asks for x0.9, which every seed clears by 8 points or more, and for both pT thresholds to go down by more than 5 GeV.
At the AGC cuts (seed 1) sigma is 0.049 without the mc_stat factors: the W+jets floors decide at this size.
With the discovery significance as the objective (the template's until issue 14 item 5) the same seeds gave
hard Z0 12.15 -> 23.94, 13.35 -> 18.54 and 12.26 -> 21.01 (x1.97, x1.39, x1.71), with
``btag_min`` 0.5 -> 0.266, 0.284 and 0.273 and both pT thresholds at 22.6-24.0 GeV
(code of 916e9be plus the AGC's model, and the same with the three modelling systematics of 64d0c3f, which act on
the signal alone and so cannot enter the discovery Z0). W+jets is generated as it occurs, so its 4,000 events put
none in the four-jet regions at the AGC cuts (0 in 4j1b and 4j2b with every seed; 0-2 events
per region at the optimised cuts); one W+jets MC event weighs about 13,000 events,
and every bin without W+jets MC carries that much background uncertainty (an empty
bin holds one MC event of the sample's mean weight), so the optimiser loosens the
thresholds to fill the bins with ttbar. Earlier Z0 measurements:
13.05 -> 30.91, 12.92 -> 27.17 and 12.68 -> 26.48 with W+jets drawn with a biased
jet multiplicity and weighed by genWeight (code of 61c7d84); when empty bins
counted as background-free, 437.9 -> 1069.7, 357.6 -> 511.1 and 544.8 -> 1326.6,
and the working point moved up.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import jax
import numpy as np
import pyhf
import pytest
import uproot
import yaml

from diffhep.cli import main
from diffhep.config import load_config

TEMPLATE = Path(__file__).resolve().parents[2] / "analyses" / "ttbar" / "config.yaml"
SEED = 1
#: Events per sample: small (W+jets reaches the four-jet regions only at looser cuts: see the module docstring).
EVENTS = {"ttbar": 2000, "wjets": 4000}
OTHER_EVENTS = 2000
#: Events of each dedicated ttbar sample of the modelling systematics.
VARIATION_EVENTS = 2000
#: The AGC reference cuts (the template's starting values).
AGC = {"lepton_pt_min": 30.0, "jet_pt_min": 30.0, "btag_min": 0.5}
#: Optimiser settings of the test: few steps, so a larger learning rate than the template's (on the
#: logit-of-bounds variables: 0.2 moves jet_pt_min by about 1.7 GeV and btag_min by 0.04 at the start).
OPTIMIZER = {"learning_rate": 0.2, "steps": 8, "scan": {"points": 2, "width": 0.2}}
#: The optimisation lowers the hard-cut pyhf uncertainty on ttbar_norm to this fraction of its value at the AGC cuts
#: or less (x0.78-x0.82 measured with seeds 1-3; module docstring).
SIGMA_GAIN = 0.9


class Template:
    """The rewritten template config (``path``) and the files it reads."""

    def __init__(self, path: Path, files: dict[str, Path]):
        self.path, self.files = path, files


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Template:
    """The template config with small samples in a temporary folder, generated."""
    folder = tmp_path_factory.mktemp("ttbar")
    config = copy.deepcopy(load_config(TEMPLATE).raw)
    config["corrections"]["agc"]["file"] = str(TEMPLATE.parent / "corrections.json")  # the copy lives in folder
    files = {}
    for name, sample in config["samples"].items():
        files[name] = folder / f"{name}.root"
        sample["files"] = [str(files[name])]
        sample["generate"].update(events=EVENTS.get(name, OTHER_EVENTS), seed=SEED)
    for systematic in config["systematics"].values():  # the ttbar modelling variations' dedicated samples
        for variation in (systematic.get(side, {}) for side in ("up", "down")):
            if "files" in variation:
                process = variation["generate"]["process"]
                files[process] = folder / f"{process}.root"
                variation["files"] = [str(files[process])]
                variation["generate"].update(events=VARIATION_EVENTS, seed=SEED)
    assert len(files) == len(config["samples"]) + 4  # ME and PS up, scale up and down
    config["optimizer"].update(copy.deepcopy(OPTIMIZER))
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["generate", "--config", str(path)]) == 0  # the samples and the variations' files
    # every file the config reads is there right after, so `diffhep validate` finds none missing (its full run costs
    # 9 s of CPU here; test_cli_generate_variations runs it on a small config)
    resolved = load_config(path).resolved
    named = [f for s in resolved["samples"].values() for f in s["files"]]
    named += [
        f for s in resolved["systematics"].values() for side in ("up", "down") for f in s.get(side, {}).get("files", [])
    ]
    assert sorted(named) == sorted(map(str, files.values())) and all(f.is_file() for f in files.values())
    return Template(path, files)


def test_template_starts_from_the_agc_reference():
    config = load_config(TEMPLATE).data
    assert {k: p["init"] for k, p in config["parameters"].items()} == AGC
    assert config["lumi_pb"] == 3378.0
    xsec = {k: s["xsec_pb"] for k, s in config["samples"].items()}
    assert xsec == pytest.approx(
        {
            "ttbar": 729.84,
            # the AGC's, from its utils/file_input.py (../shared/data/README.md quotes them)
            "single_top_s_chan": 2.0268 + 1.2676,
            "single_top_t_chan": (36.993 + 22.175) / 0.252,
            "single_top_tW": 37.936 + 37.906,
            "wjets": 61457 * 0.252,
        }
    )
    assert [s for s, v in config["samples"].items() if v["role"] == "signal"] == ["ttbar"]
    for sample in load_config(TEMPLATE).raw["samples"].values():  # the AGC's xsec * lumi / N, no genWeight
        assert "weight" not in sample and sample["normalisation"] == "events"
    assert config["corrections"] == {"agc": {"file": "corrections.json"}}  # the AGC's file (its copy)
    for region in ("4j1b", "4j2b"):
        assert config["regions"][region]["binning"] == {"bins": 11, "range": [110, 550]}
    systematics = config["systematics"]
    # the AGC's cabinetry config: the luminosity a +-3% normalisation, every histosys a NormPlusShape, POI
    # ttbar_norm in [0, 10]
    assert systematics["lumi"] == {"type": "normsys", "hi": 1.03, "lo": 0.97}
    assert all(s.get("norm_plus_shape") for s in systematics.values() if s["type"] == "histosys")
    assert config["measurement"]["poi"] == "ttbar_norm"
    assert config["measurement"]["parameters"]["ttbar_norm"]["bounds"] == [[0, 10]]
    assert systematics["jet_scale"]["up"] == {"scale": {"Jet_pt": 1.03}}
    # the AGC's corrections.json, evaluated as its processor does: W+jets scale_var, b-tag weights of the
    # four leading jets' pT (the key btag_var for every jet)
    assert systematics["wjets_norm"]["samples"] == ["wjets"]
    for side in ("up", "down"):
        weight = f'correction(agc.event_systematics, "scale_var", "{side}", leading(jets.pt, 0))'
        assert systematics["wjets_norm"][side] == {"weight": weight}
        for i in range(4):
            weight = f'correction(agc.event_systematics, "btag_var", "{side}", leading(jets.pt, {i}))'
            assert systematics[f"btag_var_{i}"][side] == {"weight": weight}


def test_the_objective_is_the_agcs_question():
    """The AGC measures the ttbar cross-section: the template minimises the expected uncertainty on ttbar_norm."""
    config = load_config(TEMPLATE).data
    assert config["objective"]["name"] == "poi_uncertainty"
    assert config["measurement"]["poi"] == "ttbar_norm"


def test_optimisation_lowers_the_hard_cut_pyhf_poi_uncertainty(template, tmp_path):
    output = tmp_path / "optimize"
    with jax.enable_x64(True):  # as the README says: the profile fits of ~1e5 events per bin need float64
        assert main(["optimize", str(template.path), "--output", str(output), "--quiet"]) == 0
    results = json.loads((output / "results.json").read_text())
    assert results["initial"] == AGC
    assert results["stop_reason"] == f"completed all {OPTIMIZER['steps']} steps"
    # the expected uncertainty on ttbar_norm with hard cuts, by pyhf alone (Hessian of pyhf's likelihood at its fit
    # to the mu = 1 Asimov data), down by SIGMA_GAIN or more: x0.78, x0.82, x0.80 with seeds 1-3 (module docstring)
    sigma = results["significance"]["hard_poi_uncertainty"]
    assert sigma["fits"]["before"]["converged"] and sigma["fits"]["after"]["converged"], sigma["fits"]
    assert 0 < sigma["after"] < SIGMA_GAIN * sigma["before"], sigma
    report = (output / "report.md").read_text()
    assert (
        f"| hard cuts, pyhf expected uncertainty on the POI | {sigma['before']:.4g} | {sigma['after']:.4g} |" in report
    )
    # the soft objective is minus the same quantity of the soft histograms, at the last step's slopes
    soft = results["significance"]["soft"]
    assert soft["before"] < soft["after"] < 0, soft
    # no W+jets MC in the four-jet regions at this size (module docstring): both pT thresholds go down, for more
    # ttbar (to 22.8-23.4 GeV with seeds 1-3; btag_min to 0.242, 0.508 and 0.488)
    for name in ("lepton_pt_min", "jet_pt_min"):
        assert results["final"][name] < AGC[name] - 5.0, results["final"]
    bounds = {k: (p["low"], p["high"]) for k, p in results["parameters"].items()}
    for name, value in results["final"].items():
        assert bounds[name][0] < value < bounds[name][1]
    assert results["final"] != results["initial"]

    workspace = json.loads((output / "workspace.json").read_text())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="jsonschema.RefResolver", category=DeprecationWarning)
        model = pyhf.Workspace(workspace).model()
    assert sorted(model.config.channels) == ["4j1b", "4j2b"]
    assert model.config.poi_name == "ttbar_norm"
    assert model.config.suggested_bounds()[model.config.poi_index] == [0.0, 10.0]
    modifiers = {
        (s["name"], m["name"], m["type"]) for c in workspace["channels"] for s in c["samples"] for m in s["modifiers"]
    }
    kinds = {(name, kind) for _, name, kind in modifiers}
    assert {
        ("ttbar_norm", "normfactor"),
        ("lumi", "normsys"),
        ("wjets_norm", "normsys"),  # norm_plus_shape: a normsys and a histosys of one parameter
        ("wjets_norm", "histosys"),
        ("jet_scale", "normsys"),
        ("jet_scale", "histosys"),
        ("jet_res", "histosys"),
        ("btag_var_0", "histosys"),
        ("btag_var_1", "histosys"),
        ("btag_var_2", "histosys"),
        ("btag_var_3", "histosys"),
        ("ME_var", "normsys"),
        ("ME_var", "histosys"),
        ("PS_var", "histosys"),
        ("scale_var", "histosys"),
        ("mc_stat_4j1b", "staterror"),
        ("mc_stat_4j2b", "staterror"),
    } <= kinds
    assert {s for s, name, _ in modifiers if name == "ttbar_norm"} == {"ttbar"}
    for name in ("ME_var", "PS_var", "scale_var"):
        assert {s for s, n, _ in modifiers if n == name} == {"ttbar"}, name
    assert {s for s, name, _ in modifiers if name == "wjets_norm"} == {"wjets"}
    assert len({s for s, name, _ in modifiers if name == "jet_scale"}) == 5

    with uproot.open(output / "histograms.root") as f:
        assert f["4j2b_ttbar"].values().sum() > 0
        assert f["4j2b_ttbar_btag_var_0_up"].values().sum() > f["4j2b_ttbar"].values().sum()
        # the dedicated sample's histogram, and in the workspace's templates the symmetrised down of the one-sided
        # ME variation (the signal's templates floored at 0)
        assert not np.allclose(f["4j2b_ttbar_ME_var_up"].values(), f["4j2b_ttbar"].values())
        nominal, up, down = (f[f"workspace/4j2b_ttbar{v}"].values() for v in ("", "_ME_var_up", "_ME_var_down"))
        assert up.sum() > 0 and not np.allclose(up, nominal)
        np.testing.assert_allclose(down, np.maximum(2 * nominal - up, 0), rtol=1e-6)
    # the written cabinetry config lists the ttbar modelling as the AGC's does: three NormPlusShape on ttbar
    cabinetry = yaml.safe_load((output / "cabinetry_config.yml").read_text())
    ttbar_only = {e["Name"]: e for e in cabinetry["Systematics"] if e["Samples"] == ["ttbar"]}
    assert set(ttbar_only) == {"ME_var", "PS_var", "scale_var"}
    assert {e["Type"] for e in ttbar_only.values()} == {"NormPlusShape"}
