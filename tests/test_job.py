"""End to end: generate -> optimise -> evaluate with pyhf -> outputs, and the command line."""

import json

import pyhf
import pytest

from diffhep.analysis.job import JobSettings, run_job, summary
from diffhep.cli import main

SMALL = {"signal": 6_000, "dy": 20_000, "ttbar": 12_000, "qcd": 20_000}


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("job")
    settings = JobSettings(steps=60, learning_rate=0.08, n_events=SMALL, seed=3)
    results = run_job(root / "data", root / "out", settings, quiet=True)
    return root, results


def test_optimisation_improves_the_hard_cut_pyhf_significance(job):
    _, results = job
    z = results["significance"]
    assert z["hard_pyhf"]["after"] > z["hard_pyhf"]["before"] * 1.05
    assert z["soft"]["after"] > z["soft"]["before"]
    assert results["stopped"] is None
    assert len(results["history"]) == 60
    moved = [abs(results["final"][k] - results["initial"][k]) for k in results["initial"]]
    assert max(moved) > 1.0


def test_outputs_are_complete_and_valid(job):
    root, results = job
    out = root / "out"
    stored = json.loads((out / "results.json").read_text())
    assert stored["final"] == results["final"]
    assert stored["significance"] == results["significance"]
    ws = pyhf.Workspace(json.loads((out / "workspace.json").read_text()))
    model = ws.model()
    assert model.config.poi_name == "mu"
    assert {"signal", "dy", "ttbar", "qcd"} == set(model.config.samples)
    assert (out / "mass_before_after.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(out.glob(".*"))  # no temporary files left behind
    text = summary(results)
    assert "pyhf (hard cuts)" in text and "muon_pt_min" in text


def test_generated_data_is_reused(job, capsys):
    root, _ = job
    settings = JobSettings(steps=1, n_events=SMALL, seed=3)
    run_job(root / "data", root / "out2", settings, quiet=False)
    assert "reusing generated data" in capsys.readouterr().err


def test_cli_generate_and_errors(tmp_path, capsys):
    assert main(["generate", "--output", str(tmp_path), "--events", "500", "--process", "signal"]) == 0
    assert (tmp_path / "signal.root").exists()
    capsys.readouterr()

    assert main(["generate", "--output", str(tmp_path), "--process", "zprime"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "zprime" in err and "\n" not in err

    assert main(["demo", "--steps", "0", "--workdir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--steps" in err and "\n" not in err


def test_cli_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    assert "examples:" in capsys.readouterr().out
