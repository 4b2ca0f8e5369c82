"""Differentiable objectives: values against pyhf / closed forms, gradients against central differences."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pyhf
import pytest
from jax.test_util import check_grads
from workspace_factory import modifier_spec

from diffhep.infer import (
    asimov_significance,
    expected_cls,
    expected_cls_band,
    expected_discovery_significance,
    hypotest,
    implicit_fit,
    poi_uncertainty,
)
from diffhep.likelihood import Model, build_model

pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated:DeprecationWarning")


@pytest.fixture(autouse=True, scope="module")
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture
def tight_scipy():
    previous = pyhf.get_backend()
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-12))
    yield
    pyhf.set_backend(*previous)


SPEC = modifier_spec("combined")  # two channels, every modifier type
SIGNAL = np.asarray(SPEC["channels"][0]["samples"][0]["data"])
BKG = np.asarray(SPEC["channels"][0]["samples"][1]["data"])  # zz_bkg1 in "sr": normsys, staterror, histosys


def _model(yields: jax.Array) -> Model:
    """The combined spec with signal and one background's yields (8 numbers) taken from ``yields``."""
    spec = json.loads(json.dumps(SPEC))
    spec["channels"][0]["samples"][0]["data"] = yields[:4]
    spec["channels"][0]["samples"][1]["data"] = yields[4:]
    return build_model(spec)


YIELDS_NP = np.concatenate([SIGNAL, BKG])  # NumPy: made float64 JAX arrays inside the (x64) tests


@pytest.fixture
def yields() -> jax.Array:
    return jnp.asarray(YIELDS_NP)


def _fluctuated(model: Model) -> jax.Array:
    """Main counts scaled bin by bin (0.85 .. 1.2) from the nominal expectation, then the auxdata."""
    main = model.expected_actualdata(model.config.suggested_init())
    return jnp.concatenate([main * jnp.linspace(0.85, 1.2, main.size), model.config.auxdata])


def _central_differences(f, x, eps):
    out = []
    for i in range(x.size):
        e = jnp.zeros_like(x).at[i].set(eps)
        out.append((f(x + e) - f(x - e)) / (2 * eps))
    return jnp.stack(out)


def _check_gradient(f, x, *, eps=1e-3, rtol=1e-5, atol=1e-9):
    """``jax.grad`` against central differences; ``eps`` is large because profiled
    objectives carry ~1e-12 of fit noise (the truncation error at 1e-3 is ~1e-9).
    One compiled ``value_and_grad`` serves both (one compilation per objective)."""
    value_and_grad = jax.jit(jax.value_and_grad(f))
    grad = value_and_grad(x)[1]
    assert bool(jnp.all(jnp.isfinite(grad)))
    np.testing.assert_allclose(grad, _central_differences(lambda y: value_and_grad(y)[0], x, eps), rtol=rtol, atol=atol)
    return grad


def test_expected_cls_matches_pyhf_on_background_asimov(tight_scipy):
    spec = modifier_spec("correlated_background")
    model = build_model(spec)
    asimov_b = model.expected_data(model.config.suggested_init().at[model.config.poi_index].set(0.0))
    band = expected_cls_band(model, 1.5)
    reference = pyhf.infer.hypotest(1.5, np.asarray(asimov_b), pyhf.Model(spec), return_expected_set=True)
    np.testing.assert_allclose(band, [float(x) for x in reference[1]], rtol=1e-5)
    np.testing.assert_allclose(float(expected_cls(model, 1.5)), float(reference[0]), rtol=1e-5)
    np.testing.assert_allclose(hypotest(1.5, asimov_b, model).cls_exp, band, rtol=1e-8)


def test_expected_cls_gradient(yields):
    # one compiled check for the whole band: a positive random combination of its five values
    weights = jnp.asarray(np.random.default_rng(1).uniform(0.5, 1.5, 5))
    grad = _check_gradient(lambda y: expected_cls_band(_model(y), 1.0) @ weights, yields)
    assert float(grad[:4] @ yields[:4]) < 0  # more signal: smaller expected CLs


def test_expected_discovery_significance_gradient_multichannel(yields):
    grad = _check_gradient(lambda y: expected_discovery_significance(_model(y)), yields)
    assert float(grad[:4] @ yields[:4]) > 0  # more signal: larger significance


def test_poi_uncertainty_against_pyhf_hessian(yields):
    """sqrt([H^-1]_mu,mu) with H from central differences of pyhf's logpdf at the Asimov point."""
    model, reference = build_model(SPEC), pyhf.Model(SPEC)
    pars = np.asarray(model.config.suggested_init())
    data = np.asarray(model.expected_data(pars))
    h = 1e-4
    steps = h * np.eye(pars.size)

    def nll(p):
        return -float(reference.logpdf(p, data)[0])

    hessian = np.array(
        [
            [
                (nll(pars + a + b) - nll(pars + a - b) - nll(pars - a + b) + nll(pars - a - b)) / (4 * h * h)
                for b in steps
            ]
            for a in steps
        ]
    )
    poi = model.config.poi_index
    expected = np.sqrt(np.linalg.inv(hessian)[poi, poi])
    assert float(jax.jit(poi_uncertainty)(model, 1.0)) == pytest.approx(expected, rel=1e-5)
    grad = _check_gradient(lambda y: poi_uncertainty(_model(y)), yields)
    assert float(grad[:4] @ yields[:4]) < 0  # more signal: smaller uncertainty


def test_implicit_derivatives_of_fits(yields):
    """Fitted parameters (in yields and in a fixed POI) and an objective at a fit, against central differences."""
    model = build_model(SPEC)
    data = _fluctuated(model)
    poi = model.config.poi_index
    direction = jnp.asarray(np.random.default_rng(2).normal(size=yields.size))

    def bestfit(y, mu):
        return implicit_fit(_model(y), data, fixed_values={poi: mu}).bestfit

    value_and_jvp = jax.jit(lambda y, mu: jax.jvp(bestfit, (y, mu), (direction, 1.0)))
    value, tangent = value_and_jvp(yields, 1.3)
    assert float(value[poi]) == 1.3 and float(tangent[poi]) == 1.0
    eps = 1e-3  # the values at shifted points are plain fits (the same compiled program)
    fd = (
        value_and_jvp(yields + eps * direction, 1.3 + eps)[0] - value_and_jvp(yields - eps * direction, 1.3 - eps)[0]
    ) / (2 * eps)
    np.testing.assert_allclose(tangent, fd, rtol=1e-5, atol=1e-8)
    # the Fisher information at the best fit to data: second derivatives at a fitted point
    _check_gradient(lambda y: poi_uncertainty(_model(y), data=data), yields)


def test_asimov_significance_formula():
    s, b, sigma = jnp.array([3.0, 10.0, 0.0]), jnp.array([20.0, 100.0, 5.0]), jnp.array([2.0, 10.0, 1.0])
    z2 = 2 * (
        (s + b) * jnp.log((s + b) * (b + sigma**2) / (b**2 + (s + b) * sigma**2))
        - b**2 / sigma**2 * jnp.log(1 + sigma**2 * s / (b * (b + sigma**2)))
    )
    assert float(asimov_significance(s, b, sigma)) == pytest.approx(float(jnp.sqrt(jnp.sum(z2))), rel=1e-10)
    no_unc = 2 * ((s + b) * jnp.log1p(s / b) - s)
    assert float(asimov_significance(s, b)) == pytest.approx(float(jnp.sqrt(jnp.sum(no_unc))), rel=1e-12)
    assert float(asimov_significance(s, b, 1e-9)) == pytest.approx(float(asimov_significance(s, b)), rel=1e-9)
    assert float(asimov_significance(s, b, sigma)) < float(asimov_significance(s, b))
    check_grads(
        jax.jit(lambda x: asimov_significance(x[:3], x[3:6], x[6:])),
        (jnp.concatenate([s + 1, b, sigma]),),
        order=1,
        modes=["fwd", "rev"],
        eps=1e-4,
    )
    grad = jax.jit(jax.grad(lambda x: asimov_significance(x, b, sigma)))(jnp.zeros(3))
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_objectives_vmap_over_signal_hypotheses(yields):
    scales = jnp.linspace(0.2, 2.0, 10)

    def objectives(scale):
        return (expected_cls(_model(yields.at[:4].multiply(scale)), 1.0),)

    batched = jax.jit(jax.vmap(objectives))(scales)
    for i in (0, 9):
        for got, want in zip(batched, objectives(scales[i])):
            assert float(got[i]) == pytest.approx(float(want), rel=1e-9)
