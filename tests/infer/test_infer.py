"""diffhep.infer against pyhf: fits, q0, and the differentiable expected significance."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pyhf
import pytest

from diffhep.errors import ConfigError
from diffhep.infer import (
    asimov_data,
    discovery_q0,
    expected_discovery_significance,
    fit,
    fixed_poi_fit,
    pyhf_discovery_significance,
)
from diffhep.likelihood import build_model, make_spec, to_pyhf

pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated:DeprecationWarning")

NB = 16
NORMSYS = {"dy": (1.05, 0.95), "ttbar": (1.1, 0.9), "qcd": (1.3, 0.7)}


@pytest.fixture(autouse=True, scope="module")
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def samples():
    """Skeleton-analysis-like yields: a peaked signal over three backgrounds, one empty qcd bin."""
    rng = np.random.default_rng(11)
    x = np.linspace(0.0, 1.0, NB)
    qcd = rng.uniform(0.0, 5.0, NB)
    qcd_w2 = rng.uniform(0.5, 3.0, NB)
    qcd[3] = qcd_w2[3] = 0.0
    return {
        "signal": (8.0 * np.exp(-(((x - 0.7) / 0.1) ** 2)), 0.05 * np.ones(NB)),
        "dy": (rng.uniform(20.0, 80.0, NB), rng.uniform(2.0, 10.0, NB)),
        "ttbar": (rng.uniform(5.0, 20.0, NB), rng.uniform(1.0, 4.0, NB)),
        "qcd": (qcd, qcd_w2),
    }


def _spec(samples):
    return make_spec("mumu", samples, signal="signal", normsys=NORMSYS)


@pytest.fixture(scope="module")
def skeleton(samples):
    spec = _spec(samples)
    return spec, build_model(spec), pyhf.Model(to_pyhf(spec))


def _multichannel_spec():
    rng = np.random.default_rng(5)

    def unc():
        return list(rng.uniform(0.5, 2.0, 4))

    sig = {
        "name": "sig",
        "data": [1.0, 3.0, 6.0, 2.0],
        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
    }
    nominal = rng.uniform(10, 30, 4)
    shift = nominal * rng.uniform(-0.2, 0.2, 4)  # up and down on opposite sides: one minimum, as pyhf comparisons need
    bkg = {
        "name": "bkg",
        "data": list(nominal),
        "modifiers": [
            {"name": "norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.85}},
            {
                "name": "shape",
                "type": "histosys",
                "data": {"hi_data": list(nominal + shift), "lo_data": list(nominal - 0.8 * shift)},
            },
            {"name": "staterror_sr", "type": "staterror", "data": unc()},
        ],
    }
    other = {
        "name": "other",
        "data": list(rng.uniform(5, 10, 4)),
        "modifiers": [{"name": "ss", "type": "shapesys", "data": unc()}],
    }
    cr = {
        "name": "bkg",
        "data": list(rng.uniform(50, 100, 4)),
        "modifiers": [
            {"name": "norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.85}},
            {"name": "staterror_cr", "type": "staterror", "data": unc()},
        ],
    }
    return {"channels": [{"name": "sr", "samples": [sig, bkg, other]}, {"name": "cr", "samples": [cr]}]}


def _fluctuated(model, seed, mu=0.6, spread=0.15):
    """Non-Asimov data: expected at ``mu`` scaled bin by bin (so fits are not trivial)."""
    rng = np.random.default_rng(seed)
    data = np.array(asimov_data(model, mu))
    n = model.config.nmaindata
    data[:n] *= rng.uniform(1.0 - spread, 1.0 + spread, n)
    return data


@pytest.fixture
def tight_scipy():
    """pyhf's scipy (SLSQP) optimizer with a tight tolerance; the default (ftol 1e-6) leaves ~1e-4 in the pars."""
    previous = pyhf.get_backend()
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-12))
    yield
    pyhf.set_backend(*previous)


@pytest.mark.parametrize("which", ["skeleton", "multichannel"])
def test_fits_match_pyhf(which, skeleton, tight_scipy):
    if which == "skeleton":
        _, ours, ref = skeleton
    else:
        spec = _multichannel_spec()
        ours, ref = build_model(spec), pyhf.Model(spec)
    data = _fluctuated(ours, seed=3)
    r = fit(ours, data)
    ref_pars, ref_twice_nll = pyhf.infer.mle.fit(data, ref, return_fitted_val=True)
    np.testing.assert_allclose(r.bestfit, ref_pars, atol=1e-4)
    assert 2 * float(r.nll) == pytest.approx(float(ref_twice_nll), rel=1e-9)
    assert 2 * float(r.nll) <= float(ref_twice_nll) + 1e-9  # never worse than scipy
    for mu in (0.0, 1.5):
        r = fixed_poi_fit(ours, data, mu)
        ref_pars, ref_twice_nll = pyhf.infer.mle.fixed_poi_fit(mu, data, ref, return_fitted_val=True)
        assert float(r.bestfit[ours.config.poi_index]) == mu
        np.testing.assert_allclose(r.bestfit, ref_pars, atol=1e-4)
        assert 2 * float(r.nll) == pytest.approx(float(ref_twice_nll), rel=1e-9)


def test_fit_is_at_least_as_good_as_default_pyhf(skeleton):
    _, ours, ref = skeleton
    data = _fluctuated(ours, seed=9)
    ref_pars, ref_twice_nll = pyhf.infer.mle.fit(data, ref, return_fitted_val=True)
    r = fit(ours, data)
    assert 2 * float(r.nll) <= float(ref_twice_nll) + 1e-9
    np.testing.assert_allclose(r.bestfit, ref_pars, atol=1e-3)


def test_fit_options_and_jit(skeleton):
    _, model, _ = skeleton
    data = _fluctuated(model, seed=4)
    fixed = list(model.config.suggested_fixed())
    fixed[1] = True  # hold the dy normalisation at its init (0)
    r = fit(model, data, fixed=fixed)
    assert float(r.bestfit[1]) == 0.0
    bounds = np.asarray(model.config.suggested_bounds()).copy()
    bounds[model.config.poi_index] = (0.0, 0.5)
    r = fit(model, data, bounds=bounds)
    assert float(r.bestfit[model.config.poi_index]) <= 0.5
    jitted = jax.jit(lambda m, d: fit(m, d))(model, data)
    np.testing.assert_allclose(jitted.bestfit, fit(model, data).bestfit, rtol=1e-12)
    with pytest.raises(ConfigError):
        fit(model, data, init=jnp.zeros(3))
    no_poi = build_model(to_pyhf(skeleton[0]), poi_name=None)
    with pytest.raises(ConfigError):
        fixed_poi_fit(no_poi, data, 0.0)


def test_discovery_q0_matches_pyhf(skeleton):
    _, ours, ref = skeleton
    data = _fluctuated(ours, seed=8, mu=2.0, spread=0.05)
    config = ref.config
    q0_ref = pyhf.infer.test_statistics.q0(
        0.0, data, ref, config.suggested_init(), config.suggested_bounds(), config.suggested_fixed()
    )
    assert float(q0_ref) > 1.0
    assert float(discovery_q0(ours, data)) == pytest.approx(float(q0_ref), rel=1e-5)


def test_asimov_unconditional_fit_is_nominal(skeleton):
    _, model, _ = skeleton
    data = asimov_data(model, 1.0)
    expected = model.config.suggested_init().at[model.config.poi_index].set(1.0)
    np.testing.assert_allclose(fit(model, data).bestfit, expected, atol=1e-7)
    z_known = expected_discovery_significance(model)
    z_fit = expected_discovery_significance(model, fit_unconditional=True)
    assert float(z_fit) == pytest.approx(float(z_known), rel=1e-9)


def test_expected_significance_matches_pyhf(skeleton):
    spec, model, _ = skeleton
    z_ref = pyhf_discovery_significance(spec)
    z = float(expected_discovery_significance(model))
    assert z > 0.5
    assert z == pytest.approx(z_ref, rel=1e-4)
    assert pyhf.tensorlib.name == "numpy" and pyhf.tensorlib.precision == "64b"


def test_pyhf_reference_restores_backend(skeleton):
    spec = skeleton[0]
    pyhf.set_backend("numpy", precision="32b")
    try:
        pyhf_discovery_significance(spec)
        assert pyhf.tensorlib.precision == "32b"
    finally:
        pyhf.set_backend("numpy", precision="64b")


def test_significance_gradient_matches_finite_differences(samples):
    names = ("signal", "dy", "ttbar", "qcd")

    def z(yields):
        new = {name: (yields[i], samples[name][1]) for i, name in enumerate(names)}
        return expected_discovery_significance(build_model(_spec(new)))

    z_jit = jax.jit(z)
    yields = jnp.stack([jnp.asarray(samples[name][0]) for name in names])
    assert float(z_jit(yields)) == pytest.approx(float(z(yields)), rel=1e-10)
    grad = jax.jit(jax.grad(z))(yields)
    assert bool(jnp.all(jnp.isfinite(grad)))
    eps = 1e-4
    checked = 0
    for i in range(len(names)):
        for b in (2, 3, 10, 11):
            if samples[names[i]][0][b] == 0.0 and i > 0:
                continue  # floored background bin: derivative is 0 on one side
            e = jnp.zeros_like(yields).at[i, b].set(eps)
            fd = (z_jit(yields + e) - z_jit(yields - e)) / (2 * eps)
            assert float(grad[i, b]) == pytest.approx(float(fd), rel=1e-4, abs=1e-7), (names[i], b)
            checked += 1
    assert checked >= 14
    # the signal gradient is not just noise: more signal in the peak helps
    assert float(grad[0, 11]) > 0


def test_significance_safe_at_zero_signal(samples):
    zero = dict(samples)
    zero["signal"] = (np.zeros(NB), samples["signal"][1])

    def z(scale):
        new = dict(zero)
        new["signal"] = (scale * jnp.asarray(samples["signal"][0]), samples["signal"][1])
        return expected_discovery_significance(build_model(_spec(new)))

    value, grad = jax.value_and_grad(z)(0.0)
    assert float(value) == pytest.approx(0.0, abs=1e-6)
    assert np.isfinite(float(grad))
