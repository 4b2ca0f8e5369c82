"""diffhep.likelihood against pyhf: parameter bookkeeping, expected data, logpdf."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pyhf
import pytest
from pyhf.interpolators.code4 import _slow_code4
from pyhf.interpolators.code4p import _slow_code4p
from workspace_factory import MODIFIER_KINDS as KINDS
from workspace_factory import NB
from workspace_factory import modifier_spec as spec_for

from diffhep.errors import ConfigError
from diffhep.likelihood import build_model, make_spec, to_pyhf
from diffhep.likelihood.interpolation import code4, code4p

pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True, scope="module")
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("kind", KINDS)
def test_config_matches_pyhf(kind):
    spec = spec_for(kind)
    ref, ours = pyhf.Model(spec).config, build_model(spec).config
    assert ours.par_names == ref.par_names
    assert ours.par_order == ref.par_order
    assert ours.npars == ref.npars
    assert ours.poi_index == ref.poi_index
    assert ours.suggested_fixed() == ref.suggested_fixed()
    np.testing.assert_array_equal(ours.suggested_init(), ref.suggested_init())
    np.testing.assert_array_equal(ours.suggested_bounds(), np.asarray(ref.suggested_bounds(), dtype=float))
    np.testing.assert_allclose(ours.auxdata, ref.auxdata, rtol=1e-12)
    assert ours.channels == ref.channels and ours.channel_nbins == ref.channel_nbins
    for name in ref.par_order:
        assert ours.par_slice(name) == ref.par_slice(name)


@pytest.mark.parametrize("kind", KINDS)
def test_expected_data_and_logpdf_match_pyhf(kind):
    spec = spec_for(kind)
    ref, ours = pyhf.Model(spec), build_model(spec)
    rng = np.random.default_rng(7)
    lo, hi = np.asarray(ref.config.suggested_bounds(), dtype=float).T
    lo, hi = np.maximum(lo, -3.0), np.minimum(hi, 3.0)  # |alpha| up to 3 covers all interpolation regions
    nominal = np.asarray(ref.expected_data(ref.config.suggested_init()))
    for _ in range(4):
        pars = rng.uniform(lo, np.maximum(hi, lo + 0.1))
        data = nominal * rng.uniform(0.7, 1.3, nominal.shape)
        np.testing.assert_allclose(ours.expected_data(pars), ref.expected_data(pars), rtol=1e-9)
        np.testing.assert_allclose(
            ours.expected_data(pars, include_auxdata=False), ref.expected_actualdata(pars), rtol=1e-9
        )
        ours_lp, ref_lp = ours.logpdf(pars, data), ref.logpdf(pars, data)
        assert ours_lp.shape == (1,)
        np.testing.assert_allclose(ours_lp, ref_lp, rtol=1e-9)


def test_staterror_zero_bin_is_fixed_like_pyhf():
    spec = spec_for("staterror")
    for s in spec["channels"][0]["samples"][1:]:
        s["data"][2] = 0.0
        s["modifiers"][0]["data"][2] = 0.0
    ref, ours = pyhf.Model(spec).config, build_model(spec).config
    assert ours.suggested_fixed() == ref.suggested_fixed()
    assert sum(ours.suggested_fixed()) == 1


@pytest.mark.parametrize("alpha", [-2.5, -1.0, -0.6, 0.0, 0.3, 0.999, 1.0, 1.7])
def test_interpolation_codes_match_pyhf_reference(alpha):
    slow4, slow4p = _slow_code4([], alpha0=1.0), _slow_code4p([])
    assert float(code4(jnp.asarray(alpha), 1.13, 0.82)) == pytest.approx(
        slow4.product(0.82, 1.0, 1.13, alpha), rel=1e-12
    )
    got = float(code4p(jnp.asarray(alpha), jnp.asarray(7.0), jnp.asarray(10.0), jnp.asarray(14.5)))
    assert got == pytest.approx(slow4p.summand(7.0, 10.0, 14.5, alpha), rel=1e-12, abs=1e-12)


def test_traced_yields_build_inside_jit_and_grad():
    spec = spec_for("combined")
    ref = build_model(spec)
    pars = ref.config.suggested_init() + 0.1
    data = ref.expected_data(ref.config.suggested_init())
    bkg = jnp.asarray(spec["channels"][0]["samples"][1]["data"])

    def logpdf(yields):
        s = json.loads(json.dumps(spec))
        s["channels"][0]["samples"][1]["data"] = yields
        return build_model(s).logpdf(pars, data)[0]

    assert float(jax.jit(logpdf)(bkg)) == pytest.approx(float(ref.logpdf(pars, data)[0]), rel=1e-12)
    grad = jax.grad(logpdf)(bkg)
    eps = 1e-5
    for i in range(NB):
        e = jnp.zeros(NB).at[i].set(eps)
        fd = (logpdf(bkg + e) - logpdf(bkg - e)) / (2 * eps)
        assert float(grad[i]) == pytest.approx(float(fd), rel=1e-5)


def test_model_is_a_pytree():
    model = build_model(spec_for("combined"))
    pars = model.config.suggested_init()
    data = model.expected_data(pars)
    leaves = jax.tree_util.tree_leaves(model)
    assert leaves and all(isinstance(x, jax.Array) for x in leaves)
    value = jax.jit(lambda m, p: m.logpdf(p, data))(model, pars)
    np.testing.assert_allclose(value, model.logpdf(pars, data), rtol=1e-12)


def test_unsupported_modifier_names_channel_sample_modifier():
    spec = spec_for("normfactor")
    spec["channels"][0]["samples"][1]["modifiers"] = [{"name": "weird", "type": "shapesyst", "data": None}]
    with pytest.raises(ConfigError) as err:
        build_model(spec)
    message = str(err.value)
    assert "\n" not in message
    for word in ("'sr'", "'bkg'", "'weird'", "'shapesyst'", "shapesys"):
        assert word in message


def test_config_errors_are_one_line():
    spec = spec_for("normfactor")
    bad_bins = json.loads(json.dumps(spec))
    bad_bins["channels"][0]["samples"][1]["data"] = [1.0]
    lumi_without_config = spec_for("lumi")
    del lumi_without_config["parameters"]
    for bad, kwargs in [(bad_bins, {}), (spec, {"poi_name": "mu_sig"}), (lumi_without_config, {})]:
        with pytest.raises(ConfigError) as err:
            build_model(bad, **kwargs)
        assert "\n" not in str(err.value)


def test_to_pyhf_gives_plain_json():
    spec = spec_for("combined")
    spec["channels"][0]["samples"][0]["data"] = jnp.asarray(spec["channels"][0]["samples"][0]["data"])
    spec["channels"][0]["samples"][1]["modifiers"][1]["data"] = np.asarray(
        spec["channels"][0]["samples"][1]["modifiers"][1]["data"]
    )
    plain = to_pyhf(spec)
    assert json.loads(json.dumps(plain)) == plain
    assert all(type(v) is float for v in plain["channels"][0]["samples"][0]["data"])
    pars = pyhf.Model(plain).config.suggested_init()
    np.testing.assert_allclose(pyhf.Model(plain).expected_data(pars), build_model(spec).expected_data(pars), rtol=1e-12)
    with pytest.raises(ConfigError):
        jax.jit(lambda x: to_pyhf({"data": x})["data"][0])(jnp.ones(2))


def test_make_spec_floors_and_names():
    samples = {
        "signal": (jnp.array([1.0, 0.0, 2.0]), jnp.array([0.1, 0.0, 0.2])),
        "dy": (jnp.array([10.0, 0.0, 5.0]), jnp.array([4.0, 0.0, 1.0])),
        "qcd": (jnp.array([0.0, 0.0, 3.0]), jnp.array([0.0, 0.0, 2.0])),
    }
    # empty MC bins hold one MC event of the sample's mean weight: yield w, uncertainty w
    spec = make_spec(
        "mumu", samples, signal="signal", normsys={"dy": (1.05, 0.95)}, mean_weights={"dy": 2.0, "qcd": 0.5}
    )
    (channel,) = spec["channels"]
    assert channel["name"] == "mumu"
    by_name = {s["name"]: s for s in channel["samples"]}
    assert [m["name"] for m in by_name["signal"]["modifiers"]] == ["mu"]
    assert [(m["name"], m["type"]) for m in by_name["dy"]["modifiers"]] == [
        ("dy_norm", "normsys"),
        ("staterror_mumu", "staterror"),
    ]
    assert by_name["dy"]["modifiers"][0]["data"] == {"hi": 1.05, "lo": 0.95}
    assert [(m["name"], m["type"]) for m in by_name["qcd"]["modifiers"]] == [("staterror_mumu", "staterror")]
    np.testing.assert_allclose(by_name["qcd"]["data"], [0.5, 0.5, 3.0])
    np.testing.assert_allclose(by_name["qcd"]["modifiers"][0]["data"], [0.5, 0.5, np.sqrt(2.0)])
    np.testing.assert_allclose(by_name["dy"]["data"], [10.0, 2.0, 5.0])
    np.testing.assert_allclose(by_name["dy"]["modifiers"][1]["data"], [2.0, 2.0, 2.0])  # sumw2 4, 0 -> 4, 1 -> 4
    np.testing.assert_allclose(by_name["signal"]["data"], [1.0, 0.0, 2.0])
    # without mean weights: unweighted MC (one event weighs 1)
    plain = {s["name"]: s for s in make_spec("mumu", samples, signal="signal", normsys={})["channels"][0]["samples"]}
    np.testing.assert_allclose(plain["qcd"]["data"], [1.0, 1.0, 3.0])
    # the floored spec is a valid model for both pyhf and diffhep: all staterror sigmas > 0
    ref, ours = pyhf.Model(to_pyhf(spec)), build_model(spec)
    assert not any(ours.config.suggested_fixed()) and not any(ref.config.suggested_fixed())
    pars = ref.config.suggested_init()
    np.testing.assert_allclose(ours.expected_data(pars), ref.expected_data(pars), rtol=1e-12)
    assert (
        make_spec("mumu", samples, signal="signal", normsys={}, staterror=False)["channels"][0]["samples"][1][
            "modifiers"
        ]
        == []
    )
    for bad in [{"signal": (1.1, 0.9)}, {"ttbar": (1.1, 0.9)}, {"dy": (1.1, -0.9)}]:
        with pytest.raises(ConfigError):
            make_spec("mumu", samples, signal="signal", normsys=bad)
    for bad in [{"dy": 1.0}, {"dy": 1.0, "qcd": 0.0}, {"dy": 1.0, "qcd": 1.0, "signal": 1.0}]:
        with pytest.raises(ConfigError):
            make_spec("mumu", samples, signal="signal", normsys={}, mean_weights=bad)
    with pytest.raises(ConfigError):
        make_spec("mumu", samples, signal="sig", normsys={})
