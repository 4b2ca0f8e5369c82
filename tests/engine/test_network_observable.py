"""A region's observable as a network (``observable: {network: mlp, ...}``) and honest even/odd training.

Tiny events in memory (two event-level inputs that separate signal from background, a
MET cut): the gradient of the objective with respect to every network weight against
central finite differences (float64); the even/odd split never lets a training event
into the evaluation (the hard histograms are unchanged when every training event is
changed, and the training objective unchanged when every evaluation event is), each half
normalised to the full luminosity; the event number from a branch where configured;
inputs that depend on cut values are computed in the step (gradient in the cut against
finite differences; the hard histograms against a plain NumPy forward pass of the same
weights); bad network configs are one-line errors with the config's line.
"""

from __future__ import annotations

import copy

import awkward as ak
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from network_factory import CONFIG, SAMPLES, analysis

from diffhep.config import load_config, load_config_dict
from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.errors import ConfigError
from diffhep.optimize.networks import split_networks


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def test_gradient_wrt_network_weights_matches_finite_differences() -> None:
    a = analysis()
    data = a.load()
    weights, static = split_networks(a.networks)
    leaves, tree = jax.tree.flatten(weights)
    cuts = {"met_max": jnp.asarray(60.0)}

    def objective(flat):
        parts = np.cumsum([x.size for x in leaves])[:-1]
        rebuilt = [p.reshape(x.shape) for p, x in zip(jnp.split(flat, parts), leaves, strict=True)]
        return a.objective(cuts, data, 1.0, networks=eqx.combine(jax.tree.unflatten(tree, rebuilt), static))

    flat = jnp.concatenate([x.ravel() for x in leaves])
    value_and_grad = jax.jit(jax.value_and_grad(objective))
    grad = np.asarray(value_and_grad(flat)[1])
    assert np.abs(grad).max() > 1e-3  # the weights matter
    rng = np.random.default_rng(0)
    for direction in [np.eye(flat.size)[i] for i in rng.choice(flat.size, 4, replace=False)] + [
        rng.normal(size=flat.size)
    ]:
        h = 1e-5
        up, down = value_and_grad(flat + h * direction)[0], value_and_grad(flat - h * direction)[0]
        numeric = (up - down) / (2 * h)
        np.testing.assert_allclose(grad @ direction, numeric, rtol=1e-5, atol=1e-8)


def _changed(samples: dict, parity: int) -> dict:
    """``samples`` with every input and MET of the events of index parity ``parity`` replaced."""
    out = {}
    for name, ev in samples.items():
        mine = np.arange(len(ev)) % 2 == parity
        fields = {k: np.asarray(ev[k]).copy() for k in ev.fields}
        for k in ("x1", "x2", "MET_pt"):
            fields[k][mine] = fields[k][mine][::-1] * 3 + 1
        out[name] = ak.Array(fields)
    return out


def test_even_odd_split_never_lets_a_training_event_into_the_evaluation() -> None:
    a = analysis()
    train = a.load()
    index = np.concatenate([np.arange(60), np.arange(120)])  # events in sample order: sig, then bkg
    w_train, w_eval = np.asarray(train.weight), np.asarray(a._data.weight)
    assert np.all(w_train[index % 2 == 1] == 0) and np.all(w_eval[index % 2 == 0] == 0)
    # each half normalised to the full luminosity: xsec * lumi per sample
    for k, xsec in (("sig", 5.0), ("bkg", 50.0)):
        mine = np.asarray(train.sample) == train.keys.index(k)
        assert w_train[mine].sum() == pytest.approx(xsec * 10.0) and w_eval[mine].sum() == pytest.approx(xsec * 10.0)
    cuts = {"met_max": 70.0}
    hard = a.hard_histograms(cuts)
    soft = float(a.objective(cuts, train, 1.0))
    # every training (even) event changed: the evaluation is the same, bit for bit; the training is not
    b = analysis(samples=_changed(SAMPLES, 0))
    b.standardisation.update(a.standardisation)  # the same inputs' scale, so only the events differ
    b_train = b.load()
    for region in hard:
        for key in hard[region]:
            np.testing.assert_array_equal(b.hard_histograms(cuts)[region][key].counts, hard[region][key].counts)
    assert float(b.objective(cuts, b_train, 1.0)) != soft
    # every evaluation (odd) event changed: the training objective is the same; the evaluation is not
    c = analysis(samples=_changed(SAMPLES, 1))
    c.standardisation.update(a.standardisation)
    assert float(c.objective(cuts, c.load(), 1.0)) == soft
    assert any(
        not np.array_equal(c.hard_histograms(cuts)["sr"][k].counts, hard["sr"][k].counts) for k in ("sig", "bkg")
    )


def test_standardisation_from_the_training_half_of_the_nominal_samples() -> None:
    a = analysis()
    a.load()
    mean, std = a.standardisation["sr"]
    x1 = np.concatenate([np.asarray(SAMPLES[k]["x1"])[::2] for k in ("sig", "bkg")])
    x2 = np.concatenate([2 * np.asarray(SAMPLES[k]["x2"])[::2] for k in ("sig", "bkg")])
    np.testing.assert_allclose(mean, [x1.mean(), x2.mean()], rtol=1e-12)
    np.testing.assert_allclose(std, [x1.std(), x2.std()], rtol=1e-12)


def test_event_number_branch_decides_the_halves() -> None:
    config = copy.deepcopy(CONFIG)
    config["training"] = {"event_number": "event"}
    a = analysis(config)
    train = a.load()
    numbers = np.concatenate([np.asarray(SAMPLES[k]["event"]) for k in ("sig", "bkg")])
    assert np.all(np.asarray(train.weight)[numbers % 2 == 1] == 0)
    assert np.all(np.asarray(a._data.weight)[numbers % 2 == 0] == 0)
    assert np.all(np.asarray(train.weight)[numbers % 2 == 0] > 0)


def test_no_split_without_networks_keeps_every_event() -> None:
    config = copy.deepcopy(CONFIG)
    config["regions"]["sr"]["observable"] = "x1"
    config["regions"]["sr"]["binning"] = {"bins": 4, "range": [-3, 3]}
    a = analysis(config)
    data = a.load()
    assert a._data is data and not a.networks
    config["training"] = {"split": "even_odd"}
    b = analysis(config)
    assert np.all(np.asarray(b.load().weight)[1::2] == 0)


def _write(tmp_path, regions_yaml: str):
    text = f"""\
name: net
lumi_pb: 10
samples:
  sig: {{role: signal, files: [s.root], xsec_pb: 5}}
  bkg: {{role: background, files: [b.root], xsec_pb: 50}}
parameters:
  met_max: {{init: 60, bounds: [10, 150], slope: 0.2}}
objects:
  jets: {{collection: Jet, cuts: pt > met_max}}
regions:
{regions_yaml}"""
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("region", "message"),
    [
        (
            "  sr:\n    observable: {network: mlp, inputs: [x1], options: {width: 3}}\n"
            "    binning: {bins: 2, range: [0, 1]}\n    bandwidth: 0.1\n",
            r"config.yaml:\d+: regions.sr.observable.options: options are for plugin networks",
        ),
        (
            "  sr:\n    observable: {network: mlp, inputs: [x1, nosuch(x2)]}\n"
            "    binning: {bins: 2, range: [0, 1]}\n    bandwidth: 0.1\n",
            r"config.yaml:\d+: regions.sr.observable.inputs\[1\].*nosuch",
        ),
        (
            "  sr:\n    observable: {network: mlp, inputs: [x1], hidden: [0]}\n"
            "    binning: {bins: 2, range: [0, 1]}\n    bandwidth: 0.1\n",
            r"config.yaml:\d+: regions.sr.observable",
        ),
    ],
)
def test_bad_network_configs_are_one_line_errors(tmp_path, region, message) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        config = load_config(_write(tmp_path, region))
        ConfiguredAnalysis.from_config(config)
    assert "\n" not in str(err.value)


def test_weight_only_variations_are_split_like_their_sample() -> None:
    """A weight-only variation (rows of weights over its sample's events) gets its sample's halves."""
    config = copy.deepcopy(CONFIG)
    config["systematics"] = {"w": {"type": "histosys", "samples": ["bkg"], "up": {"weight": "1.1"}}}
    a = analysis(config)
    train = a.load()
    cuts = {"met_max": 70.0}
    hard = a.hard_histograms(cuts)["sr"]
    np.testing.assert_allclose(hard["bkg/w/up"].counts, 1.1 * hard["bkg"].counts, rtol=1e-12)
    soft = a.soft_histograms({k: jnp.asarray(v) for k, v in cuts.items()}, train, 1.0)["sr"]
    np.testing.assert_allclose(soft["bkg/w/up"].counts, 1.1 * np.asarray(soft["bkg"].counts), rtol=1e-12)
    assert not np.allclose(hard["bkg"].counts, np.asarray(soft["bkg"].counts))  # two different halves


PLUGIN = """
import equinox as eqx
import jax
import jax.numpy as jnp

from diffhep.engine.network import register_network


class Logistic(eqx.Module):
    linear: eqx.nn.Linear
    output: str = eqx.field(static=True, default="sigmoid")

    def __call__(self, x):
        return jax.nn.sigmoid(self.linear(x))


@register_network("logistic_test")
def logistic(inputs, *, key, scale=1.0):
    linear = eqx.nn.Linear(inputs, "scalar", key=key, dtype=jnp.result_type(float))
    return Logistic(eqx.tree_at(lambda l: l.weight, linear, linear.weight * scale))
"""


def test_a_plugin_network_is_any_equinox_module(tmp_path) -> None:
    (tmp_path / "nets.py").write_text(PLUGIN)
    config = copy.deepcopy(CONFIG)
    config["plugins"] = ["nets.py"]
    config["regions"]["sr"]["observable"] = {
        "network": "logistic_test",
        "inputs": ["x1", "x2"],
        "options": {"scale": 2},
    }
    a = ConfiguredAnalysis.from_config(load_config_dict(config, base_dir=tmp_path), events=SAMPLES)
    data = a.load()
    weights, static = split_networks(a.networks)
    grad = jax.grad(lambda w: a.objective({"met_max": 60.0}, data, 1.0, networks=eqx.combine(w, static)))(weights)
    assert np.abs(np.asarray(grad["sr"].linear.weight)).max() > 0
    config["regions"]["sr"]["observable"]["network"] = "logistic_tset"
    with pytest.raises(ConfigError, match=r"regions.sr.observable.network: unknown network 'logistic_tset' \(did you"):
        ConfiguredAnalysis.from_config(load_config_dict(config, base_dir=tmp_path), events=SAMPLES)
    config["regions"]["sr"]["observable"] = {"network": "logistic_test", "inputs": ["x1"], "options": {"sale": 2}}
    with pytest.raises(ConfigError, match=r"regions.sr.observable.options: network 'logistic_test': .*'sale'"):
        ConfiguredAnalysis.from_config(load_config_dict(config, base_dir=tmp_path), events=SAMPLES)


def test_observed_data_go_through_the_network(tmp_path) -> None:
    """A ``role: data`` sample: every data event counted once, through the network, MC-standardised inputs."""
    import uproot

    data_events = SAMPLES["sig"]
    with uproot.recreate(tmp_path / "data.root") as f:
        f["Events"] = {k: np.asarray(data_events[k]) for k in ("x1", "x2", "MET_pt")}
    config = copy.deepcopy(CONFIG)
    config["samples"]["data"] = {"role": "data", "files": [str(tmp_path / "data.root")]}
    config["observations"] = "data"
    a = ConfiguredAnalysis.from_config(load_config_dict(config, base_dir=tmp_path), events=SAMPLES)
    a.load()
    mean = a.standardisation["sr"][0].copy()
    cuts = {"met_max": 70.0}
    observed = a.observed(cuts, a.hard_histograms(cuts))["sr"]
    assert observed.sum() == np.count_nonzero(np.asarray(data_events["MET_pt"]) < 70.0)  # every event, once
    np.testing.assert_array_equal(a.standardisation["sr"][0], mean)  # the data standardise nothing


def _numpy_network(net, x: np.ndarray) -> np.ndarray:
    """The MLP's forward pass in plain NumPy (relu hidden layers, sigmoid output)."""
    for layer in net.layers[:-1]:
        x = np.maximum(x @ np.asarray(layer.weight).T + np.asarray(layer.bias), 0.0)
    last = net.layers[-1]
    return 1 / (1 + np.exp(-(x @ np.asarray(last.weight).T + np.asarray(last.bias))[:, 0]))


def test_inputs_that_depend_on_cuts_are_computed_in_the_step() -> None:
    config = copy.deepcopy(CONFIG)
    config["regions"]["sr"]["observable"]["inputs"] = ["x1", "x2 * (MET_pt > met_max - 30)"]
    a = analysis(config)
    train = a.load()
    # standardised as at the starting cut (met_max 60), training half (even index) of both samples
    ev = {k: {f: np.asarray(SAMPLES[k][f]) for f in ("x1", "x2", "MET_pt")} for k in ("sig", "bkg")}
    second = np.concatenate([(ev[k]["x2"] * (ev[k]["MET_pt"] > 30.0))[::2] for k in ("sig", "bkg")])
    np.testing.assert_allclose(a.standardisation["sr"][0][1], second.mean(), rtol=1e-12)
    np.testing.assert_allclose(a.standardisation["sr"][1][1], second.std(), rtol=1e-12)
    # d objective / d met_max through the select and the input, against central differences
    value_and_grad = jax.jit(jax.value_and_grad(lambda m: a.objective({"met_max": m}, train, 1.0)))
    for m in (55.0, 75.0):
        h = 1e-4
        numeric = (value_and_grad(m + h)[0] - value_and_grad(m - h)[0]) / (2 * h)
        np.testing.assert_allclose(value_and_grad(m)[1], numeric, rtol=1e-5, atol=1e-9)
    # hard: the input at the new cut, the network in NumPy, the evaluation half (odd index) weighted x2
    cut = 80.0
    hard = a.hard_histograms({"met_max": cut})["sr"]
    mean, std = a.standardisation["sr"]
    for k, weight in (("sig", 5.0 * 10.0 / 60), ("bkg", 50.0 * 10.0 / 120)):
        e = {f: v[1::2] for f, v in ev[k].items()}
        x = (np.stack([e["x1"], e["x2"] * (e["MET_pt"] > cut - 30)], 1) - mean) / std
        out = _numpy_network(a.networks["sr"], x)
        expected, _ = np.histogram(out[e["MET_pt"] < cut], bins=4, range=(0, 1))
        np.testing.assert_allclose(hard[k].counts, 2 * weight * expected, rtol=1e-12)


def test_leading_object_fields_as_inputs() -> None:
    """``leading(jets.pt, 0)``, ``leading(jets.eta, 1)``: the field of the i-th jet after order (0 without one)."""
    rng = np.random.default_rng(3)

    def with_jets(ev, n):
        counts = rng.integers(0, 4, n)
        pt, eta = rng.exponential(40.0, counts.sum()) + 20, rng.normal(0.0, 1.5, counts.sum())
        fields = {k: np.asarray(ev[k]) for k in ev.fields}
        return ak.Array(
            {**fields, "nJet": counts, "Jet_pt": ak.unflatten(pt, counts), "Jet_eta": ak.unflatten(eta, counts)}
        )

    samples = {k: with_jets(v, len(v)) for k, v in SAMPLES.items()}
    config = copy.deepcopy(CONFIG)
    config["objects"] = {"jets": {"collection": "Jet", "order": "pt"}}
    config["regions"]["sr"]["observable"]["inputs"] = ["leading(jets.pt, 0)", "leading(jets.eta, 1)"]
    a = analysis(config, samples)
    a.load()

    def oracle(ev, field, i):  # plain NumPy: sort each event's jets by pt, largest first
        out = []
        for pts, values in zip(ak.to_list(ev["Jet_pt"]), ak.to_list(ev[field]), strict=True):
            order = np.argsort(pts)[::-1]
            out.append(np.asarray(values)[order][i] if len(pts) > i else 0.0)
        return np.asarray(out)

    first = np.concatenate([oracle(samples[k], "Jet_pt", 0)[::2] for k in ("sig", "bkg")])
    second = np.concatenate([oracle(samples[k], "Jet_eta", 1)[::2] for k in ("sig", "bkg")])
    np.testing.assert_allclose(a.standardisation["sr"][0], [first.mean(), second.mean()], rtol=1e-12)
    np.testing.assert_allclose(a.standardisation["sr"][1], [first.std(), second.std()], rtol=1e-12)


def test_expected_candidate_value_has_a_finite_gradient_where_a_candidate_is_all_but_impossible() -> None:
    """A candidate observable as a network input (its expected value): in float32, where the probability that
    any candidate exists underflows towards 0, the gradient stays finite (it was NaN: total / exists**2
    overflowed; seen as a non-finite gradient at step 3 of the ttbar template with a network input)."""
    from types import SimpleNamespace

    from diffhep.engine.backend import SOFT
    from diffhep.engine.builtins import expected
    from diffhep.jagged import Jagged

    with jax.enable_x64(False):
        combos = Jagged(
            fields={"value": jnp.asarray([100.0, 200.0, 150.0], dtype=jnp.float32)},
            segment_ids=jnp.asarray([0, 0, 1], dtype=jnp.int32),
            local_index=jnp.asarray([0, 1, 0], dtype=jnp.int32),
            n_events=2,
            max_count=2,
        )
        cands = SimpleNamespace(combos=combos)

        def mean_value(theta):
            prob = jax.nn.sigmoid(theta * jnp.asarray([1.0, 1.0, 0.5], dtype=jnp.float32))
            return jnp.sum(expected(cands, prob, SOFT)[1])

        for theta in (-80.0, -50.0, 0.0):
            grad = jax.grad(mean_value)(jnp.float32(theta))
            assert np.isfinite(grad), (theta, grad)
        np.testing.assert_allclose(mean_value(jnp.float32(0.0)), 150.0 + 150.0, rtol=1e-6)
