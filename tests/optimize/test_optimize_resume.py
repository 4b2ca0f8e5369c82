"""``--resume`` continues only what it can continue exactly: kill -9 at several points, resume, compare.

The interrupted ``diffhep optimize`` runs each run in a process of their own, as a
user runs them; the uninterrupted run and the last resume run in the test's process
(a third process would only import and trace again). A killed
run is killed with SIGKILL by a hook in that process at a chosen point (after a
checkpoint is complete; then, resumed, while a checkpoint file is half written);
the run resumed again must end with exactly the uninterrupted run's history and
cuts and leave no temporary file behind, and a resume with other settings is
refused in one line naming each difference. (A kill between a checkpoint file
and its ``latest`` pointer leaves an older pointer:
``tests/optimize/test_optimize_checkpoint.py`` checks that the resume starts
from the checkpoint it names.)
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from toy_analysis import ToyAnalysis

from diffhep.cli import main
from diffhep.config import load_config
from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.errors import ConfigError
from diffhep.optimize import OptimizerSettings, run_optimization
from diffhep.optimize.run import check_resume

CONFIG = """\
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
    binning: {bins: 8, range: [60, 140]}
    bandwidth: 2
measurement:
  poi: mu
objective:
  name: asimov_significance
optimizer:
  name: adam
  learning_rate: 0.1
  steps: 6
  slope_schedule: {start: 1.0, end: 4.0}
  checkpoint_every: 1
  scan: {points: 2, width: 0.1}
"""

# Runs the command line; argv[1:3] say where it kills itself with SIGKILL:
#   after N:  once the checkpoint of step N is complete (its file and `latest`);
#   inside N: while the checkpoint file of step N is half written (a temporary file stays).
# Plots are left out (they do not depend on the resume and take time).
DRIVER = textwrap.dedent(
    """
    import os, signal, sys
    import diffhep.report as report
    for name in ("plot_history", "plot_region", "plot_cutflow", "plot_landscape"):
        setattr(report, name, lambda *args, **kwargs: None)
    import diffhep.optimize.checkpoint as ck
    where, at = sys.argv[1], int(sys.argv[2])
    atomic, write_text = ck.atomic_write, ck.write_text

    def kill():
        os.kill(os.getpid(), signal.SIGKILL)

    def atomic_write(path, writer):
        if where == "inside" and path.name == f"step_{at:06d}.npz":
            def half(tmp):
                writer(tmp)
                tmp.write_bytes(tmp.read_bytes()[:200])
                kill()
            return atomic(path, half)
        return atomic(path, writer)

    def pointer(path, text):
        out = write_text(path, text)
        if where == "after" and text.strip() == f"step_{at:06d}.npz":
            kill()
        return out

    ck.atomic_write, ck.write_text = atomic_write, pointer
    from diffhep.cli import main
    sys.exit(main(sys.argv[3:]))
    """
)


def _optimize(config: Path, out: Path, *args: str, kill: tuple[str, int] = ("never", 0)):
    argv = ["optimize", str(config), "--output", str(out), "--quiet", *args]
    cmd = [sys.executable, "-c", DRIVER, kill[0], str(kill[1]), *argv]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)


def load_config_text(path: Path, text: str):
    path.write_text(text)
    return load_config(path)


def _results(out: Path) -> dict:
    results = json.loads((out / "results.json").read_text())
    return {k: results[k] for k in ("final", "history", "steps", "resumed_from")}


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("resume") / "tiny.yaml"
    path.write_text(CONFIG)
    assert main(["generate", "--config", str(path)]) == 0
    return path


@pytest.fixture
def no_plots(monkeypatch):
    """The figures left out of the runs in this process, as the driver leaves them out of its own."""
    import diffhep.workflow.job as job

    for name in ("plot_history", "plot_region", "plot_cutflow", "plot_landscape"):
        monkeypatch.setattr(job, name, lambda *args, **kwargs: None)


@pytest.mark.slow
def test_killed_runs_resume_to_the_uninterrupted_result_and_other_settings_are_refused(
    config, tmp_path, capsys, no_plots
):
    # The uninterrupted run in this process, the interrupted and resumed ones each in a process of its own.
    assert main(["optimize", str(config), "--output", str(tmp_path / "uninterrupted"), "--quiet"]) == 0
    capsys.readouterr()
    expected = _results(tmp_path / "uninterrupted")
    assert expected.pop("resumed_from") is None and expected["steps"] == 6 and len(expected["history"]) == 6

    out = tmp_path / "interrupted"
    killed = _optimize(config, out, kill=("after", 2))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (out / "results.json").exists()

    # The case: other steps and learning rate, with a slope schedule that spans the steps.
    other = config.parent / "other_lr.yaml"
    other.write_text(CONFIG.replace("learning_rate: 0.1", "learning_rate: 0.5"))
    argv = ["optimize", str(other), "--output", str(out), "--resume", "--steps", "8", "--quiet"]
    assert main(argv) == 1  # in this process: the run stops at the refusal
    assert capsys.readouterr().err.strip() == (
        f"error: --resume: the checkpoint in {out / 'checkpoints'} was written with steps=6, "
        "learning_rate=0.1; this run asks steps=8, learning_rate=0.5 "
        "(run without --resume, or with the same settings)"
    )

    # Another analysis (an edited binning) with the same optimiser settings, checked before anything runs.
    edited = load_config_text(config.parent / "other_bins.yaml", CONFIG.replace("bins: 8", "bins: 6"))
    settings = OptimizerSettings.from_config(edited.data["optimizer"])
    with pytest.raises(ConfigError, match=r"was written with config=\w{16}; this run asks config=\w{16} \(run"):
        check_resume(out, ConfiguredAnalysis.from_config(edited), settings)

    # Resumed, and killed again while writing the checkpoint of step 4: its temporary file stays.
    killed = _optimize(config, out, "--resume", kill=("inside", 4))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert [p.name.startswith(".step_000004.npz.") for p in (out / "checkpoints").glob(".*")] == [True]

    # Resumed to the end, in this process (what is checked is the checkpoint the killed process left)
    assert main(["optimize", str(config), "--output", str(out), "--quiet", "--resume"]) == 0
    assert _results(out) == {**expected, "resumed_from": 3}  # every float identical
    leftovers = [p.name for p in [*out.iterdir(), *(out / "checkpoints").iterdir()] if p.name.startswith(".")]
    assert leftovers == []  # the killed write's temporary file was removed


# -- in this process, on the toy analysis ---------------------------------------------------------

SETTINGS = OptimizerSettings.from_config(
    {
        "name": "adam",
        "learning_rate": 0.1,
        "steps": 10,
        "checkpoint_every": 2,
        "slope_schedule": {"start": 1.0, "end": 4.0},
    }
)


@pytest.fixture(scope="module")
def toy():
    analysis = ToyAnalysis(n_signal=2_000, n_background=4_000)
    return analysis, analysis.load()


def test_each_difference_is_named_and_harmless_ones_pass(toy, tmp_path):
    analysis, data = toy
    run_optimization(analysis, data, SETTINGS, output=tmp_path, progress=False, max_steps=6)
    changed = replace(
        SETTINGS,
        seed=5,
        slope_end=8.0,
        options={"b1": 0.8},
        early_stopping=None,
        checkpoint_every=3,
        scan=SETTINGS.scan,
    )
    with pytest.raises(ConfigError) as err:
        run_optimization(analysis, data, changed, output=tmp_path, resume=True, progress=False)
    text = str(err.value)
    assert "\n" not in text
    assert 'was written with options={}, slope_schedule={"end": 4.0, "start": 1.0}, seed=1; ' in text
    assert 'this run asks options={"b1": 0.8}, slope_schedule={"end": 8.0, "start": 1.0}, seed=5 ' in text
    with pytest.raises(ConfigError, match="steps=10; this run asks steps=12"):
        check_resume(tmp_path, analysis, replace(SETTINGS, steps=12))  # before anything is computed
    # Where checkpoints are written and the brute-force scan change no number of the optimisation.
    harmless = replace(SETTINGS, checkpoint_every=5, scan=replace(SETTINGS.scan, points=3))
    assert check_resume(tmp_path, analysis, harmless).step == 6


def test_more_steps_at_constant_slopes_continue_as_an_uninterrupted_run(toy, tmp_path):
    analysis, data = toy
    constant = replace(SETTINGS, slope_end=1.0, steps=4)
    longer = replace(constant, steps=7)
    reference = run_optimization(analysis, data, longer, output=tmp_path / "ref", progress=False)
    run_optimization(analysis, data, constant, output=tmp_path / "run", progress=False)
    resumed = run_optimization(analysis, data, longer, output=tmp_path / "run", resume=True, progress=False)
    assert resumed.resumed_from == 4 and resumed.history == reference.history and resumed.values == reference.values
    with pytest.raises(ConfigError, match="steps=7; this run asks steps=5"):  # past the new last step
        run_optimization(analysis, data, replace(constant, steps=5), output=tmp_path / "run", resume=True)
