"""A network observable trained end to end, judged on the held-out half, saved and read back.

The tiny analysis of ``network_factory`` (signal and background separated in two inputs,
a MET cut, the even/odd split): a few optimisation steps of the network and the cut raise
the hard-cut Asimov significance of the *evaluation* half (a plain NumPy formula on the
hard histograms) well above its starting network's, and each step records the objective on the
held-out half too; binary cross-entropy pre-training lowers
the loss on both halves; the trained network written as ``diffhep optimize`` writes it
(``networks.eqx`` and ``results.json``) and read back by ``read_results`` (what ``diffhep run
--results`` calls) gives the same weights, standardisation and hard histograms, and a results
file of another network is refused in one line.
"""

from __future__ import annotations

import copy
import json

import equinox as eqx
import jax
import numpy as np
import pytest
from network_factory import CONFIG, analysis

from diffhep.errors import ConfigError
from diffhep.optimize import OptimizerSettings, run_optimization
from diffhep.optimize.networks import binary_cross_entropy, pretrain, starting_networks
from diffhep.workflow.job import NETWORK_FILE, _network_results, read_results, write_networks

SETTINGS = {"learning_rate": 0.05, "steps": 12, "checkpoint_every": 0, "network": {"learning_rate": 0.05}}


def asimov_z(hard) -> float:
    """Asimov discovery significance of the hard histograms, bins with background (plain NumPy)."""
    s, b = hard["sr"]["sig"].counts, hard["sr"]["bkg"].counts
    m = b > 0
    return float(np.sqrt(np.sum(2 * ((s[m] + b[m]) * np.log1p(s[m] / b[m]) - s[m]))))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    with jax.enable_x64(True):
        a = analysis()
        data = a.load()
        settings = OptimizerSettings.from_config(SETTINGS)
        output = tmp_path_factory.mktemp("train")
        result = run_optimization(a, data, settings, output=output, progress=False, heldout=a.evaluation_data())
        yield a, data, result


def test_training_improves_the_held_out_hard_significance(trained) -> None:
    a, _, result = trained
    with jax.enable_x64(True):
        before = asimov_z(a.hard_histograms({"met_max": 60.0}))
        after = asimov_z(a.hard_histograms(result.values, networks=result.networks))
    assert result.history[-1]["objective"] > result.history[0]["objective"]
    with jax.enable_x64(True):  # the training curve of the held-out half: the objective there, step by step
        first = float(a.objective({"met_max": 60.0}, a.evaluation_data(), 1.0))
    assert result.history[0]["objective_heldout"] == pytest.approx(first, rel=1e-12)
    assert result.history[0]["objective_heldout"] != result.history[0]["objective"]
    assert after > 1.5 * before, (before, after)  # measured: 2.09 -> 5.88 (optimizer.seed 0, the default; 12 steps)


def test_pretraining_lowers_the_cross_entropy_on_both_halves(trained) -> None:
    a, data, _ = trained
    with jax.enable_x64(True):
        nets = pretrain(a, data, steps=30, learning_rate=0.05)
        for half in (data, a._data):  # training, then evaluation
            assert binary_cross_entropy(a, half, nets) < 0.8 * binary_cross_entropy(a, half, a.networks)


def test_saved_network_is_read_back_for_diffhep_run(trained, tmp_path) -> None:
    a, _, result = trained
    with jax.enable_x64(True):
        a.networks, start = result.networks, a.networks
        try:
            record = {"final": result.values, **_network_results(a)}
        finally:
            a.networks = start
        write_networks(tmp_path / NETWORK_FILE, result.networks)
        (tmp_path / "results.json").write_text(json.dumps(record))
        again = analysis()
        cuts = read_results(again, tmp_path / "results.json")
        assert cuts == result.values
        for x, y in zip(jax.tree.leaves(again.networks), jax.tree.leaves(result.networks), strict=True):
            np.testing.assert_array_equal(x, y)
        again.load()
        np.testing.assert_array_equal(again.standardisation["sr"][0], a.standardisation["sr"][0])
        hard, expected = again.hard_histograms(cuts), a.hard_histograms(cuts, networks=result.networks)
        for key in ("sig", "bkg"):
            np.testing.assert_array_equal(hard["sr"][key].counts, expected["sr"][key].counts)
        other = copy.deepcopy(CONFIG)
        other["regions"]["sr"]["observable"]["hidden"] = [5]
        with pytest.raises(ConfigError, match=r"region 'sr''s network was .*'hidden': \[4, 3\].*\[5\]"):
            read_results(analysis(other), tmp_path / "results.json")
        assert eqx.tree_equal(again.networks, result.networks)


def test_resume_from_yaml_network_is_bit_identical(trained, tmp_path) -> None:
    """The configured analysis's network and cut, interrupted after 2 of 4 steps and resumed."""
    a, data, _ = trained
    settings = OptimizerSettings.from_config({**SETTINGS, "steps": 4, "checkpoint_every": 1})
    with jax.enable_x64(True):
        held = a.evaluation_data()
        whole = run_optimization(a, data, settings, output=tmp_path / "whole", progress=False, heldout=held)
        run_optimization(a, data, settings, output=tmp_path / "part", progress=False, max_steps=2, heldout=held)
        resumed = run_optimization(
            a, data, settings, output=tmp_path / "part", progress=False, resume=True, heldout=held
        )
    assert resumed.resumed_from == 2 and resumed.history == whole.history and resumed.values == whole.values
    assert eqx.tree_equal(resumed.networks, whole.networks)


def test_networks_run_in_memory_only(tmp_path) -> None:
    from diffhep.cli.common import executed_analysis
    from diffhep.config import load_config_dict
    from diffhep.execute import ExecutionSettings

    config = load_config_dict(copy.deepcopy(CONFIG), base_dir=tmp_path)
    with pytest.raises(ConfigError, match="network observables run in memory only; use execution.mode: memory"):
        executed_analysis(config, ExecutionSettings(mode="streaming"))


def test_seed_override_restarts_the_networks_from_that_seed(trained) -> None:
    """``--seed`` (settings.seed other than the config's optimizer.seed) gives that seed's starting weights."""
    a = trained[0]
    seed = a.network_seed
    assert seed == OptimizerSettings.from_config(a.config.data["optimizer"]).seed
    assert eqx.tree_equal(starting_networks(a, seed), a.networks)
    other = starting_networks(a, seed + 1)
    config = copy.deepcopy(CONFIG)
    config["optimizer"]["seed"] = seed + 1
    assert eqx.tree_equal(other, analysis(config).networks)
    assert not eqx.tree_equal(other, a.networks)
