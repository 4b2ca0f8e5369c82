"""diffhep.likelihood.from_workspace against pyhf.Workspace: config, expected data, logpdf, errors, derivatives."""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pyhf
import pytest
from workspace_factory import MODIFIER_KINDS, hepdata_like, modifier_spec, small_workspace

from diffhep.errors import ConfigError
from diffhep.likelihood import build_model, from_workspace, observed_data
from diffhep.likelihood.hessian import nll_grad_hessian

pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True, scope="module")
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def big():
    """The HEPData-style workspace (5 channels, 14 samples, 105 parameters) and its pyhf twin."""
    spec = hepdata_like()
    return spec, pyhf.Workspace(spec)


def _workspaces():
    cases = {f"{kind}": small_workspace(modifier_spec(kind)) for kind in MODIFIER_KINDS}
    return cases


WORKSPACES = _workspaces()


def _compare(ours, ref, ws_dict, ws_ref, n_points=5, seed=0):
    rc, oc = ref.config, ours.config
    assert oc.par_names == rc.par_names
    assert oc.par_order == rc.par_order
    assert oc.npars == rc.npars and oc.poi_index == rc.poi_index
    assert oc.suggested_fixed() == rc.suggested_fixed()
    np.testing.assert_array_equal(oc.suggested_init(), rc.suggested_init())
    np.testing.assert_array_equal(oc.suggested_bounds(), np.asarray(rc.suggested_bounds(), dtype=float))
    np.testing.assert_allclose(oc.auxdata, rc.auxdata, rtol=1e-12)
    data = np.asarray(ws_ref.data(ref))
    np.testing.assert_allclose(observed_data(ws_dict, ours), data, rtol=1e-12)
    rng = np.random.default_rng(seed)
    bounds = np.asarray(rc.suggested_bounds(), dtype=float)
    lo, hi = np.maximum(bounds[:, 0], -3.0), np.minimum(bounds[:, 1], 3.0)  # |alpha| <= 3: every interpolation branch
    evaluate = jax.jit(lambda m, p, d: (m.expected_data(p), m.logpdf(p, d)))
    for _ in range(n_points):
        pars = rng.uniform(lo, hi)
        fluctuated = data * rng.uniform(0.8, 1.2, data.shape)
        expected, logpdf = evaluate(ours, pars, fluctuated)
        np.testing.assert_allclose(expected, ref.expected_data(pars), rtol=1e-9)
        np.testing.assert_allclose(logpdf, ref.logpdf(pars, fluctuated), rtol=1e-9)


@pytest.mark.parametrize("kind", MODIFIER_KINDS)
def test_small_workspaces_match_pyhf(kind):
    spec = WORKSPACES[kind]
    ws = pyhf.Workspace(spec)
    _compare(from_workspace(spec), ws.model(), spec, ws)


@pytest.mark.parametrize("measurement", [None, "NormalMeasurement", "WZMeasurement"])
def test_hepdata_like_workspace_matches_pyhf(big, measurement):
    spec, ws = big
    ours = from_workspace(spec, measurement)
    ref = ws.model(measurement_name=measurement) if measurement else ws.model()
    assert ours.config.npars >= 100 and len(ours.config.channels) == 5 and len(ours.config.samples) == 14
    assert (
        ours.config.poi_name
        == ref.config.poi_name
        == (measurement or "NormalMeasurement").replace("NormalMeasurement", "mu_SIG").replace("WZMeasurement", "mu_WZ")
    )
    _compare(ours, ref, spec, ws, n_points=3)


def test_measurement_settings_apply():
    spec = modifier_spec("combined")
    settings = [
        {"name": "mu", "bounds": [[-2.0, 8.0]], "inits": [0.5]},
        {"name": "b_norm", "fixed": True, "inits": [0.3]},
        {"name": "staterror_cr", "fixed": True},
        {"name": "sf", "bounds": [[0.5, 2.0]] * 4, "inits": [1.1] * 4},
        {"name": "ss", "inits": [1.2] * 4},
        {"name": "not_a_parameter", "fixed": True},  # ignored, as pyhf does
    ]
    ws_spec = small_workspace(spec, parameters=settings)
    ws = pyhf.Workspace(ws_spec)
    ours, ref = from_workspace(ws_spec), ws.model()
    _compare(ours, ref, ws_spec, ws, n_points=2)
    config = ours.config
    assert float(config.suggested_init()[config.poi_index]) == 0.5
    assert config.suggested_fixed()[config.par_order.index("b_norm")]
    # the POI can be overridden or dropped, as with pyhf's Workspace.model(poi_name=...)
    assert from_workspace(ws_spec, poi_name="b_norm").config.poi_index == ws.model(poi_name="b_norm").config.poi_index
    assert from_workspace(ws_spec, poi_name=None).config.poi_index is None


def test_config_methods_like_pyhf(big):
    spec, _ = big
    config = from_workspace(spec).config
    assert callable(config.suggested_init) and callable(config.suggested_bounds) and callable(config.suggested_fixed)
    assert config.suggested_init().shape == (config.npars,)
    assert config.suggested_bounds().shape == (config.npars, 2)
    assert len(config.suggested_fixed()) == config.npars
    assert config.auxdata.shape == (config.nauxdata,)
    assert config.parameters == sorted(config.par_order)
    assert config.auxdata_order[0] == config.par_order[0] or config.param_set(config.par_order[0]).constraint is None


def _error(spec, **kwargs) -> str:
    with pytest.raises(ConfigError) as err:
        from_workspace(spec, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_invalid_workspaces_give_schema_message_and_path():
    base = WORKSPACES["combined"]
    bad = copy.deepcopy(base)
    bad["channels"][0]["samples"][1]["modifiers"][0]["type"] = "shapesyst"
    message = _error(bad)
    assert "channels[0].samples[1].modifiers[0].type" in message
    assert "'shapesyst'" in message and "shapesys" in message
    bad = copy.deepcopy(base)
    bad["channels"][1]["samples"][0]["data"] = "many"
    message = _error(bad)
    assert "channels[1].samples[0].data" in message and "'many' is not of type 'array'" in message
    bad = copy.deepcopy(base)
    bad["channels"][0]["samples"][1]["modifiers"][0] = {"name": "b_norm", "type": "normsys", "data": {"hi": 1.1}}
    message = _error(bad)
    assert "channels[0].samples[1].modifiers[0].data" in message and "'lo' is a required property" in message
    bad = copy.deepcopy(base)
    del bad["measurements"][0]["config"]["poi"]
    assert "measurements[0].config" in _error(bad) and "'poi'" in _error(bad)
    bad = copy.deepcopy(base)
    del bad["observations"]
    assert "<top level>" in _error(bad)
    bad = copy.deepcopy(base)
    bad["version"] = "9.9.9"
    assert "version" in _error(bad)


def test_measurement_and_observation_errors():
    base = WORKSPACES["combined"]
    message = _error(base, measurement="mes")
    assert "'mes'" in message and "'meas'" in message
    model = from_workspace(base)
    partial = copy.deepcopy(base)
    partial["observations"] = partial["observations"][:1]
    with pytest.raises(ConfigError, match="no observation for channel"):
        observed_data(partial, model)


def test_unsupported_interpolation_code_and_modifier():
    base = WORKSPACES["combined"]
    message = _error(base, modifier_settings={"normsys": {"interpcode": "code0"}})
    assert "'code0'" in message and "'code1'" in message and "'code4'" in message
    assert from_workspace(base, modifier_settings={"histosys": {"interpcode": "code4p"}}).config.npars > 0
    spec = modifier_spec("normsys")
    spec["channels"][0]["samples"][1]["modifiers"][0]["type"] = "normsyss"
    with pytest.raises(ConfigError, match="unsupported type 'normsyss'"):
        build_model(spec)


@pytest.mark.parametrize(
    ("where", "value", "words"),
    [
        ("data", -1.0, ["'sr'", "'bkg'", "bin 2", "-1.0", ">= 0"]),
        ("data", np.nan, ["'sr'", "'bkg'", "bin 2", "nan", "finite"]),
        ("data", np.inf, ["bin 2", "inf"]),
        ("hi_data", -3.0, ["'hs'", "hi_data", "bin 2"]),
    ],
)
def test_bad_yields_name_channel_sample_bin(where, value, words):
    spec = modifier_spec("histosys")
    bkg = spec["channels"][0]["samples"][1]
    target = bkg if where == "data" else bkg["modifiers"][0]["data"]
    target[where if where != "data" else "data"][2] = value
    with pytest.raises(ConfigError) as err:
        build_model(spec)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_negative_yields_opt_out_and_traced_values_are_not_checked():
    spec = modifier_spec("normsys")
    spec["channels"][0]["samples"][1]["data"][0] = -0.5
    model = build_model(spec, check_yields=False)
    assert float(model.expected_actualdata(model.config.suggested_init())[0]) < 50
    spec["channels"][0]["samples"][1]["modifiers"][0]["data"]["lo"] = -0.9
    with pytest.raises(ConfigError, match="must be > 0"):
        build_model(spec, check_yields=False)
    # traced numbers cannot be checked: a NaN yield gives a NaN logpdf, no error
    good = modifier_spec("normsys")
    data = build_model(good).expected_data(build_model(good).config.suggested_init())

    def logpdf(yields):
        s = copy.deepcopy(good)
        s["channels"][0]["samples"][1]["data"] = yields
        m = build_model(s)
        return m.logpdf(m.config.suggested_init(), data)[0]

    assert np.isnan(float(jax.jit(logpdf)(jnp.array([np.nan, 1.0, 1.0, 1.0]))))


def test_grad_and_hessian_assembly_match_autodiff(big):
    spec, _ = big
    rng = np.random.default_rng(3)
    for model in [from_workspace(spec)]:  # every modifier type, names shared across types
        data = model.expected_data(model.config.suggested_init()) * 1.05
        bounds = np.asarray(model.config.suggested_bounds())
        pars = jnp.asarray(rng.uniform(np.maximum(bounds[:, 0], -2.5), np.minimum(bounds[:, 1], 2.5)))
        pars = pars.at[model.config.poi_index].set(0.0)  # a factor of 0: no division anywhere
        directions = jnp.asarray(rng.normal(size=(2, pars.size)))

        def autodiff(m, p, d, v):
            """Gradient and Hessian-vector products of the NLL by autodiff (cheaper to compile than jax.hessian)."""
            grad = jax.grad(lambda q: -m.logpdf(q, d)[0])
            return grad(p), jax.vmap(lambda u: jax.jvp(grad, (p,), (u,))[1])(v)

        gradient, hessian = jax.jit(nll_grad_hessian)(model, pars, data)
        reference_grad, reference_hv = jax.jit(autodiff)(model, pars, data, directions)
        np.testing.assert_allclose(gradient, reference_grad, rtol=1e-9, atol=1e-9)
        scale = float(jnp.max(jnp.abs(reference_hv)))
        np.testing.assert_allclose(directions @ hessian, reference_hv, rtol=1e-9, atol=1e-9 * scale)
        np.testing.assert_allclose(hessian, hessian.T, rtol=1e-12, atol=1e-12 * float(jnp.max(jnp.abs(hessian))))


def test_gradients_flow_through_systematic_variations():
    """histosys hi/lo data and normsys hi/lo may be traced; gradients match central differences."""
    spec = modifier_spec("combined")
    base = build_model(spec)
    pars = base.config.suggested_init() + 0.3  # alphas at 0.3: inside the polynomial region
    data = base.expected_data(base.config.suggested_init()) * 1.1
    b1 = next(s for s in spec["channels"][0]["samples"] if s["name"] == "zz_bkg1")
    histo = next(m for m in b1["modifiers"] if m["type"] == "histosys")
    norm = next(m for m in b1["modifiers"] if m["name"] == "b_norm")
    x0 = jnp.concatenate(
        [jnp.asarray(histo["data"]["hi_data"]), jnp.asarray(histo["data"]["lo_data"]), jnp.array([1.1, 0.85])]
    )

    def logpdf(x):
        s = copy.deepcopy(spec)
        sample = next(t for t in s["channels"][0]["samples"] if t["name"] == "zz_bkg1")
        h = next(m for m in sample["modifiers"] if m["type"] == "histosys")
        n = next(m for m in sample["modifiers"] if m["name"] == "b_norm")
        h["data"] = {"hi_data": x[:4], "lo_data": x[4:8]}
        n["data"] = {"hi": x[8], "lo": x[9]}
        return build_model(s).logpdf(pars, data)[0]

    assert float(logpdf(x0)) == pytest.approx(float(base.logpdf(pars, data)[0]), rel=1e-12)
    grad = jax.jit(jax.grad(logpdf))(x0)
    assert float(jnp.min(jnp.abs(grad))) > 0  # every variation matters
    eps = 1e-6
    for i in range(x0.size):
        e = jnp.zeros_like(x0).at[i].set(eps)
        fd = (logpdf(x0 + e) - logpdf(x0 - e)) / (2 * eps)
        assert float(grad[i]) == pytest.approx(float(fd), rel=1e-6, abs=1e-9), i
    assert norm["data"]["hi"] == 1.1  # the spec itself was not modified


def test_models_of_many_signal_hypotheses_in_one_vmap(big):
    """Build models from stacked signal yields inside vmap: the same as a loop."""
    spec, _ = big
    model = from_workspace(spec)
    pars = model.config.suggested_init()
    signal_paths = [
        (c, s)
        for c, ch in enumerate(spec["channels"])
        for s, smp in enumerate(ch["samples"])
        if smp["name"] == "signal"
    ]
    nominal = [jnp.asarray(spec["channels"][c]["samples"][s]["data"]) for c, s in signal_paths]
    scales = jnp.linspace(0.2, 3.0, 12)

    def expected(scale):
        s = copy.deepcopy(spec)
        for (c, i), nom in zip(signal_paths, nominal):
            s["channels"][c]["samples"][i]["data"] = scale * nom
        return from_workspace(s, validate=False).expected_data(pars)

    batched = jax.jit(jax.vmap(expected))(scales)
    looped = jnp.stack([expected(x) for x in scales[:3]])
    np.testing.assert_allclose(batched[:3], looped, rtol=1e-12)
    assert batched.shape == (12, model.config.nmaindata + model.config.nauxdata)


@pytest.mark.parametrize(("where", "value"), [("uncertainty", 1e308), ("yield", 1e308), ("uncertainty", 1e-200)])
def test_shapesys_tau_beyond_the_float_range_is_refused(where, value):
    """pyhf: OverflowError; diffhep gave a NaN logpdf (with an overflow warning) or ignored the constraint
    (found by tests/fuzz)."""
    spec = modifier_spec("shapesys")
    bkg = spec["channels"][0]["samples"][1]
    (bkg["modifiers"][0]["data"] if where == "uncertainty" else bkg["data"])[0] = value
    message = _error(small_workspace(spec))
    assert "shapesys 'ss'" in message and "'bkg'" in message and "bin 0" in message and "float range" in message


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ({"sigmas": [-1.0]}, "must be > 0"),
        ({"sigmas": [0.0]}, "must be > 0"),
        ({"bounds": [[1.5]]}, "[low, high] pair"),
    ],
)
def test_lumi_sigma_and_bounds_are_checked(setting, words):
    """A negative lumi sigma gave a logpdf where pyhf gives NaN; bounds [[1.5]] a ValueError (found by tests/fuzz)."""
    ws = copy.deepcopy(WORKSPACES["lumi"])
    ws["measurements"][0]["config"]["parameters"][0].update(setting)
    message = _error(ws)
    assert "'lumi'" in message and words in message, message


def test_integer_version_and_huge_integer_yield_are_config_errors():
    """version: 1 was a TypeError from pyhf's schema loader, a 400-digit yield an OverflowError (found by tests/fuzz)."""
    ws = copy.deepcopy(WORKSPACES["normfactor"])
    ws["version"] = 1
    assert "'version' 1" in _error(ws) and "'1.0.0'" in _error(ws)
    ws = copy.deepcopy(WORKSPACES["normfactor"])
    ws["channels"][0]["samples"][0]["data"][0] = 10**400
    assert "beyond the float range" in _error(ws)
    ws["channels"][0]["samples"][0]["data"][0] = 1.0
    ws["observations"][0]["data"][0] = 10**400
    assert "observations[0].data[0]" in _error(ws)
