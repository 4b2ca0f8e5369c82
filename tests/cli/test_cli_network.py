"""``diffhep optimize`` trains a network observable from YAML; ``diffhep run --results`` applies it.

The tiny dimuon config of ``tests/cli`` with its region's observable a network of two
static inputs (MET and the pair mass of all muons): the optimisation writes the trained
weights (``networks.eqx``) and their architecture (``results.json``), and ``diffhep run
--results`` on them reproduces the optimised hard-cut histograms and pyhf significance of
the evaluation half exactly; without ``--results`` it evaluates the starting network.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import uproot

from diffhep.cli import main

TINY = """\
name: tiny_nn
lumi_pb: 10000.0
samples:
  signal: {role: signal, files: [data/signal.root], xsec_pb: 0.5, weight: genWeight,
           generate: {process: signal, events: 300}}
  dy: {role: background, files: [data/dy.root], xsec_pb: 60.0, weight: genWeight,
       generate: {process: dy, events: 600, seed: 3}}
parameters:
  met_max: {init: 60, bounds: [10, 150], slope: 0.2, unit: GeV}
objects:
  muons: {collection: Muon, require: abs(eta) < 2.4, order: pt}
regions:
  sr:
    select: count(muons) >= 2 and MET_pt < met_max
    observable: {network: mlp, inputs: [MET_pt, pair_mass(muons)], hidden: [4]}
    binning: {bins: 20, range: [0, 1]}
    bandwidth: 0.05
measurement: {poi: mu}
objective: {name: asimov_significance}
optimizer:
  learning_rate: 0.05
  steps: 5
  checkpoint_every: 0
  scan: {points: 2, width: 0.1}
  network: {learning_rate: 0.1}
"""


pytestmark = pytest.mark.slow  # three commands (generate, optimize, run twice): about 25 s


@pytest.fixture(scope="module")
def optimised(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cli_nn")
    config = root / "tiny.yaml"
    config.write_text(TINY)
    assert main(["generate", "--config", str(config)]) == 0
    out = root / "optimize"
    assert main(["optimize", str(config), "--output", str(out), "--quiet"]) == 0
    return config, out


def _hists(path: Path) -> dict[str, np.ndarray]:
    with uproot.open(path) as f:
        return {k.split(";")[0]: f[k].values() for k in f.keys(recursive=False) if "_" in k}


def test_run_with_results_applies_the_trained_network(optimised, capsys) -> None:
    config, out = optimised
    results = json.loads((out / "results.json").read_text())
    assert (out / results["network_file"]).is_file()
    assert results["networks"]["sr"]["inputs"] == ["MET_pt", "pair_mass(muons)"]
    assert results["training"] == {"split": "even_odd", "event_number": None}
    assert all("objective_heldout" in h for h in results["history"])  # the curve of the held-out half
    report = (out / "report.md").read_text()
    assert "## Network observables" in report and "| sr | mlp | `MET_pt`, `pair_mass(muons)` | [4] |" in report
    assert "training / held-out half" in report
    assert (out / "network_sr.png").is_file() and "network_sr.png" in results["files"].values()
    run = out.parent / "run"
    assert main(["run", str(config), "--results", str(out / "results.json"), "--output", str(run), "--quiet"]) == 0
    again = json.loads((run / "results.json").read_text())
    assert again["cuts"] == results["final"]
    assert again["significance"]["hard_pyhf"] == results["significance"]["hard_pyhf"]["after"]
    assert again["yields"] == results["yields"]["after"]
    optimised_h, run_h = _hists(out / "histograms.root"), _hists(run / "histograms.root")
    assert optimised_h and set(optimised_h) == set(run_h)
    for name in optimised_h:
        np.testing.assert_array_equal(optimised_h[name], run_h[name])
    start = out.parent / "start"
    assert main(["run", str(config), "--set", f"met_max={results['final']['met_max']}", "--output", str(start),
                 "--quiet"]) == 0  # fmt: skip
    starting_h = _hists(start / "histograms.root")
    assert any(not np.array_equal(starting_h[name], run_h[name]) for name in run_h)  # the network was trained
