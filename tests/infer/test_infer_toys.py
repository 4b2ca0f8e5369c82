"""Toy-based hypotests (``hypotest(..., calctype="toybased")``) against pyhf's ``ToyCalculator``.

The toys are not pyhf's (``jax.random`` against NumPy's global generator), so
the CLs values are compared within the toys' statistical error at the same
number of toys; the p-values *from given toys* are compared exactly with pyhf's
own ``EmpiricalDistribution``/``ToyCalculator`` code run on diffhep's toys.

Every model here has the structure of pyhf's ``uncorrelated_background`` (two
bins, ``shapesys``) and every run the same batch size and ``test_stat``, so the
batched toy fits compile once for the module. pyhf 0.7.6's NumPy backend calls
``np.percentile(..., interpolation=...)``, which NumPy 2.4 removed; the
``pyhf_numpy`` fixture patches it to ``method=`` (the same computation).
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pyhf
import pytest
from pyhf.tensor.numpy_backend import numpy_backend

from diffhep.errors import ConfigError, FitError
from diffhep.infer import hypotest, sample_toys
from diffhep.infer import toys as toys_module
from diffhep.infer.fit import _minimize_from
from diffhep.infer.teststats import profile_statistic
from diffhep.likelihood import build_model

pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated:DeprecationWarning")

BATCH = 50  # one batch size everywhere: one compilation of the batched fits
NTOYS = 200
PERCENTILES = np.array([2.27501319, 15.86552539, 50.0, 84.13447461, 97.72498681])


@pytest.fixture(autouse=True, scope="module")
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture
def pyhf_numpy(monkeypatch):
    """pyhf's numpy backend (default optimizer), its percentile on NumPy >= 2.4, a fixed global seed; restored."""

    def percentile(self, tensor_in, q, axis=None, interpolation="linear"):
        return np.percentile(tensor_in, q, axis=axis, method=interpolation)

    monkeypatch.setattr(numpy_backend, "percentile", percentile)
    previous, state = pyhf.get_backend(), np.random.get_state()
    pyhf.set_backend("numpy")
    np.random.seed(13)
    yield
    pyhf.set_backend(*previous)
    np.random.set_state(state)


def _spec(signal, background, uncertainty) -> dict:
    return pyhf.simplemodels.uncorrelated_background(signal, background, uncertainty).spec


SMALL = _spec([12.0, 11.0], [50.0, 52.0], [3.0, 7.0])
SMALL_OBS = [51.0, 48.0]


def _data(model, observed):
    return jnp.asarray([*observed, *model.config.auxdata])


def _toys(poi_test, data, model, **kwargs):
    options = {"ntoys": NTOYS, "key": 7, "batch_size": BATCH, "track_progress": False} | kwargs
    return hypotest(poi_test, data, model, calctype="toybased", **options)


def _band(q_sb, q_b, q_obs):
    """Test oracle, pyhf's ``EmpiricalDistribution`` in NumPy: observed and expected (CLsb, CLb, CLs)."""
    q_sb, q_b = np.sort(q_sb), np.sort(q_b)

    def pvalues(q):
        clsb = 1.0 - np.searchsorted(q_sb, q, side="left") / len(q_sb)
        clb = 1.0 - np.searchsorted(q_b, q, side="left") / len(q_b)
        return np.stack([clsb, clb, clsb / clb])

    return pvalues(np.asarray(q_obs)), np.percentile(pvalues(q_b), PERCENTILES, axis=1).T


def _bootstrap_sigma(result, n=300, seed=0):
    """Standard error of the observed and expected (CLsb, CLb, CLs) of ``result``, by resampling its toys."""
    rng = np.random.default_rng(seed)
    q_sb, q_b = np.asarray(result.signal.q), np.asarray(result.background.q)
    draws = [_band(rng.choice(q_sb, len(q_sb)), rng.choice(q_b, len(q_b)), float(result.q_obs)) for _ in range(n)]
    return np.std([d[0] for d in draws], axis=0), np.std([d[1] for d in draws], axis=0)


def test_pvalues_of_given_toys_are_pyhf_s(pyhf_numpy):
    """diffhep's p-values and band from its toys = pyhf's ToyCalculator code run on the same toys."""
    model = build_model(SMALL)
    data = _data(model, SMALL_OBS)
    result = _toys(1.0, data, model)
    assert result.signal.q.shape == result.background.q.shape == (NTOYS,)
    assert result.cls_exp.shape == (5,) and result.fits.bestfit.shape == (3, model.config.npars)
    assert bool(result.valid) and bool(result.converged) and result.signal.n_failed == 0
    # the observed statistic is the asymptotic hypotest's (same fits), pyhf's toy teststatistic is q itself
    asymptotic = hypotest(1.0, data, model)
    assert float(result.q_obs) == float(asymptotic.q_obs) == float(result.teststat)
    np.testing.assert_array_equal(result.fits.bestfit[1], asymptotic.fits.fixed_poi_fit_to_data)
    np.testing.assert_array_equal(result.fits.bestfit[2], asymptotic.fits.asimov_pars)

    calc = pyhf.infer.calculators.ToyCalculator(data.tolist(), pyhf.Model(SMALL), ntoys=NTOYS, track_progress=False)
    sb = pyhf.infer.calculators.EmpiricalDistribution(np.asarray(result.signal.q))
    b = pyhf.infer.calculators.EmpiricalDistribution(np.asarray(result.background.q))
    observed = calc.pvalues(float(result.q_obs), sb, b)
    expected = np.asarray(calc.expected_pvalues(sb, b), dtype=float)
    ours = [result.clsb_obs, result.clb_obs, result.cls_obs]
    np.testing.assert_allclose(np.asarray(ours, dtype=float), np.asarray(observed, dtype=float), rtol=1e-14)
    np.testing.assert_allclose(np.stack([result.clsb_exp, result.clb_exp, result.cls_exp]), expected, rtol=1e-12)
    oracle_obs, oracle_exp = _band(result.signal.q, result.background.q, result.q_obs)
    np.testing.assert_allclose(oracle_obs, np.asarray(observed, dtype=float), rtol=1e-14)
    np.testing.assert_allclose(oracle_exp, expected, rtol=1e-12)

    # pyhf's own toys at the same number: equal within the toys' statistical error
    pyhf_obs, (pyhf_sb, pyhf_b), pyhf_band = pyhf.infer.hypotest(
        1.0,
        data.tolist(),
        pyhf.Model(SMALL),
        calctype="toybased",
        ntoys=NTOYS,
        return_tail_probs=True,
        return_expected_set=True,
        track_progress=False,
    )
    sigma_obs, sigma_exp = _bootstrap_sigma(result)
    # two independent estimates: sqrt(2) sigma; a floor of one toy for estimates at 0 or 1
    tolerance_obs = 4.0 * np.maximum(np.sqrt(2.0) * sigma_obs, 1.0 / NTOYS)
    delta_obs = np.abs(np.asarray(ours, dtype=float) - [float(pyhf_sb), float(pyhf_b), float(pyhf_obs)])
    assert np.all(delta_obs < tolerance_obs), (delta_obs, tolerance_obs)
    tolerance_exp = 4.0 * np.maximum(np.sqrt(2.0) * sigma_exp[2], 1.0 / NTOYS)
    delta_exp = np.abs(np.asarray(result.cls_exp) - np.asarray(pyhf_band, dtype=float))
    assert np.all(delta_exp < tolerance_exp), (delta_exp, tolerance_exp)


def test_toy_statistics_equal_fits_one_by_one(pyhf_numpy):
    """Each toy's q is profile_statistic at fits done one toy at a time, from the same two starts.

    The fits are ``fit``'s minimiser called eagerly (the program the fits to the
    data compiled), not the batched, ``vmap``-ed one of the toys; pyhf's own
    ``qmu_tilde`` on the same toys gives the same numbers (to its fit tolerance).
    """
    model = build_model(SMALL)
    result = _toys(1.0, _data(model, SMALL_OBS), model, ntoys=BATCH)  # only 4 are checked
    config = model.config
    init, poi, free = config.suggested_init(), config.poi_index, ~jnp.asarray(config.suggested_fixed())
    lower, upper = config.suggested_bounds()[:, 0], config.suggested_bounds()[:, 1]
    pyhf_model = pyhf.Model(SMALL)
    pyhf_options = [getattr(pyhf_model.config, f"suggested_{x}")() for x in ("init", "bounds", "fixed")]
    for toys, key in zip((result.signal, result.background), jax.random.split(jax.random.key(7))):
        data = sample_toys(model, toys.pars, key, jnp.arange(4))
        starts = jnp.stack([init, toys.pars])
        for i in range(4):
            free_fit = _minimize_from(model, data[i], starts, lower, upper, free, n_steps=50, n_halvings=12)
            fixed_starts = jnp.stack([init, free_fit.bestfit]).at[:, poi].set(1.0)
            fixed_free = free.at[poi].set(False)
            fixed = _minimize_from(model, data[i], fixed_starts, lower, upper, fixed_free, n_steps=50, n_halvings=12)
            assert bool(free_fit.converged) and bool(fixed.converged)
            q = profile_statistic(model, data[i], fixed.bestfit, free_fit.bestfit, 1.0, "qtilde")
            assert float(toys.q[i]) == pytest.approx(float(q), rel=1e-9, abs=1e-12)
            reference = pyhf.infer.test_statistics.qmu_tilde(1.0, np.asarray(data[i]), pyhf_model, *pyhf_options)
            assert float(toys.q[i]) == pytest.approx(float(reference), abs=1e-5)
    assert float(result.signal.pars[poi]) == 1.0 and float(result.background.pars[poi]) == 0.0


def test_reproducible_and_independent_of_batching():
    """Same key, same toys; the first n toys of a run are those of a run with ntoys=n (a padded last batch)."""
    model = build_model(SMALL)
    data = _data(model, SMALL_OBS)
    a = _toys(1.0, data, model)
    b = _toys(1.0, data, model)
    np.testing.assert_array_equal(a.signal.q, b.signal.q)
    assert float(a.cls_obs) == float(b.cls_obs)
    short = _toys(1.0, data, model, ntoys=70)
    np.testing.assert_array_equal(short.signal.q, a.signal.q[:70])
    np.testing.assert_array_equal(short.background.q, a.background.q[:70])
    other = _toys(1.0, data, model, key=jax.random.key(8))
    assert not np.array_equal(other.signal.q, a.signal.q)


def test_sampling_follows_the_constraints():
    """Main counts ~ Poisson(expected), Normal auxdata ~ N(par, sigma), shapesys auxdata ~ Poisson(tau * gamma)."""
    spec = json.loads(json.dumps(SMALL))
    spec["channels"][0]["samples"][1]["modifiers"].append(
        {"name": "norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}
    )
    model = build_model(spec)
    pars = model.config.suggested_init().at[model.config.par_slice("norm")].set(0.3)
    toys = np.asarray(sample_toys(model, pars, jax.random.key(3), jnp.arange(4000)))
    expected = np.asarray(model.expected_data(pars))
    assert np.all(toys[:, :2] == np.round(toys[:, :2]))  # counts
    sigma = np.sqrt(np.where(expected > 2, expected, 1.0))  # Poisson (and shapesys) variance is the mean; normsys 1
    np.testing.assert_array_less(np.abs(toys.mean(axis=0) - expected), 4 * sigma / np.sqrt(len(toys)))
    np.testing.assert_allclose(toys.std(axis=0), sigma, rtol=0.06)


def test_toys_converge_to_asymptotics_at_high_statistics():
    """Thousands of events per bin: the toy CLs and band are the asymptotic ones within the toys' error.

    At ``mu = 1.5`` the Asimov significance is 2.5 sigma, so every point of the
    asymptotic band is a physical ``q >= 0`` (below 2 sigma the asymptotic -2
    sigma point is not, and the toys' band is 1 there).
    """
    model = build_model(_spec([45.0, 40.0], [1000.0, 900.0], [15.0, 20.0]))
    data = _data(model, [1030.0, 905.0])
    result = _toys(1.5, data, model, ntoys=1000)
    asymptotic = hypotest(1.5, data, model)
    sigma_obs, sigma_exp = _bootstrap_sigma(result, n=200)
    ours = np.asarray([result.clsb_obs, result.clb_obs, result.cls_obs], dtype=float)
    theirs = np.asarray([asymptotic.clsb_obs, asymptotic.clb_obs, asymptotic.cls_obs], dtype=float)
    assert np.all(np.abs(ours - theirs) < 4 * sigma_obs + 0.005), (ours, theirs, sigma_obs)
    delta = np.abs(np.asarray(result.cls_exp) - np.asarray(asymptotic.cls_exp))
    assert np.all(delta < 4 * sigma_exp[2] + 0.005), (result.cls_exp, asymptotic.cls_exp, sigma_exp[2])


def test_failed_toys_are_counted_never_used(monkeypatch):
    """A toy whose fits did not converge is left out and counted; above max_failed_fraction: FitError or NaN."""
    real = toys_module._toy_batch

    def failing(model, pars, key, indices, **kwargs):
        q, ok = real(model, pars, key, indices, **kwargs)
        bad = indices % 20 == 3  # 1 toy in 20 "does not converge"
        return jnp.where(bad, jnp.nan, q), ok & ~bad

    monkeypatch.setattr(toys_module, "_toy_batch", failing)
    model = build_model(SMALL)
    data = _data(model, SMALL_OBS)
    with pytest.raises(FitError, match="10 of 200 signal\\+background toys did not converge"):
        _toys(1.0, data, model)
    flagged = _toys(1.0, data, model, on_failure="flag")
    assert not bool(flagged.valid) and not bool(flagged.converged)
    assert np.isnan(float(flagged.cls_obs)) and np.all(np.isnan(flagged.cls_exp))
    assert flagged.signal.n_failed == flagged.background.n_failed == 10
    assert np.all(np.isnan(flagged.signal.q[3::20]))
    allowed = _toys(1.0, data, model, max_failed_fraction=0.05)
    assert bool(allowed.valid) and not bool(allowed.converged)
    keep = np.asarray(allowed.signal.converged), np.asarray(allowed.background.converged)
    observed, expected = _band(allowed.signal.q[keep[0]], allowed.background.q[keep[1]], allowed.q_obs)
    np.testing.assert_allclose([allowed.clsb_obs, allowed.clb_obs, allowed.cls_obs], observed, rtol=1e-14)
    np.testing.assert_allclose(allowed.cls_exp, expected[2], rtol=1e-12)


def test_bad_toy_options():
    model = build_model(SMALL)
    data = _data(model, SMALL_OBS)
    for kwargs, words in [
        ({"ntoys": 0}, "ntoys must be a positive integer"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer"),
        ({"key": "seven"}, "key must be an int seed"),
        ({"max_failed_fraction": 1.0}, "max_failed_fraction"),
    ]:
        with pytest.raises(ConfigError, match=words):
            hypotest(1.0, data, model, calctype="toybased", **kwargs)
    with pytest.raises(ConfigError, match="ntoys, key need calctype='toybased'"):
        hypotest(1.0, data, model, ntoys=10, key=1)
    with pytest.raises(ConfigError, match="'toys'"):
        hypotest(1.0, data, model, calctype="toys")
    with pytest.raises(ConfigError, match="outside jax.jit"):
        jax.jit(lambda d: hypotest(1.0, d, model, calctype="toybased").cls_obs)(data)


def test_discovery_p0_from_toys_is_the_asymptotic_one():
    """q0: the "signal" toys at mu = 0, the others at mu = 1; p0 (cls_obs) near the asymptotic p0."""
    model = build_model(_spec([45.0, 40.0], [1000.0, 900.0], [15.0, 20.0]))
    data = _data(model, [1030.0, 905.0])
    result = _toys(0.0, data, model, ntoys=1000, test_stat="q0")
    asymptotic = hypotest(0.0, data, model, test_stat="q0")
    poi = model.config.poi_index
    assert float(result.signal.pars[poi]) == 0.0 and float(result.background.pars[poi]) == 1.0
    assert float(result.cls_obs) == float(result.clsb_obs)  # p0 first, as pyhf
    p0 = float(result.cls_obs)
    sigma = np.sqrt(p0 * (1 - p0) / 1000)
    assert abs(p0 - float(asymptotic.cls_obs)) < 4 * sigma + 0.005, (p0, float(asymptotic.cls_obs))
