"""Every pyhf interpolation code (normsys code1/code4, histosys code0/code2/code4p) against pyhf.

The oracle is pyhf: its reference ("slow") interpolators element by element,
``pyhf.Model(spec, modifier_settings=...)`` for expected data, logpdf and the
fallback rule of ``modifier_settings``, and its tight-tolerance fits. The written-out
derivatives (:mod:`diffhep.likelihood.hessian`) are checked against autodiff of
the plain functions and of ``-logpdf``, and against finite differences of pyhf's
reference interpolators.
"""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pyhf
import pytest
from pyhf.interpolators import _slow_code0, _slow_code1, _slow_code2, _slow_code4, _slow_code4p
from workspace_factory import small_workspace

from diffhep.errors import ConfigError
from diffhep.infer import fit
from diffhep.likelihood import build_model, from_workspace
from diffhep.likelihood.hessian import nll_derivatives
from diffhep.likelihood.interpolation import HISTOSYS_CODES, NORMSYS_CODES, InterpCodes

pytestmark = pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated:DeprecationWarning")

#: every interpolation branch and the points where pyhf switches branch
ALPHAS = (-2.7, -1.3, -1.0, -0.6, -1e-3, 0.0, 1e-3, 0.4, 0.999, 1.0, 1.0 + 1e-9, 1.6, 3.0)
SETTINGS = [(n, h) for n in ("code1", "code4") for h in ("code0", "code2", "code4p")]


@pytest.fixture(autouse=True, scope="module")
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(autouse=True)
def numpy64():
    """pyhf on its NumPy backend in 64 bits, restored afterwards."""
    previous = pyhf.get_backend()
    pyhf.set_backend("numpy", precision="64b")
    yield
    pyhf.set_backend(*previous)


@pytest.fixture
def reference_code2(monkeypatch):
    """pyhf's reference code 2 in its models: the formula of pyhf's docstring and of its tensorised
    code from PR #2668 on; pyhf 0.7.6's tensorised code has ``(b - 2a) alpha`` for alpha < -1
    (pyhf issue #2610)."""
    monkeypatch.setattr(pyhf.interpolators, "code2", pyhf.interpolators._slow_code2)


def _settings(normsys: str, histosys: str) -> dict:
    return {"normsys": {"interpcode": normsys}, "histosys": {"interpcode": histosys}}


def _spec() -> dict:
    """Two channels; samples with two, one and no normsys (padding), two histosys, one name shared by both types."""
    return {
        "channels": [
            {
                "name": "sr",
                "samples": [
                    {
                        "name": "signal",
                        "data": [3.0, 6.0, 2.5],
                        "modifiers": [
                            {"name": "mu", "type": "normfactor", "data": None},
                            {"name": "jes", "type": "normsys", "data": {"hi": 1.08, "lo": 0.9}},
                        ],
                    },
                    {
                        "name": "top",
                        "data": [20.0, 14.0, 9.0],
                        "modifiers": [
                            {"name": "jes", "type": "normsys", "data": {"hi": 1.12, "lo": 0.95}},
                            {"name": "xsec_top", "type": "normsys", "data": {"hi": 1.2, "lo": 0.7}},
                            {
                                "name": "jes",
                                "type": "histosys",
                                "data": {"hi_data": [22.0, 15.5, 9.1], "lo_data": [18.5, 13.0, 9.6]},
                            },
                            {"name": "stat_sr", "type": "staterror", "data": [1.5, 1.2, 0.9]},
                        ],
                    },
                    {
                        "name": "zjets",
                        "data": [30.0, 11.0, 4.0],
                        "modifiers": [
                            {
                                "name": "shape_z",
                                "type": "histosys",
                                "data": {"hi_data": [33.0, 10.0, 5.5], "lo_data": [26.0, 11.5, 3.1]},
                            },
                            {"name": "stat_sr", "type": "staterror", "data": [2.0, 1.0, 0.7]},
                        ],
                    },
                ],
            },
            {
                "name": "cr",
                "samples": [
                    {
                        "name": "top",
                        "data": [80.0, 60.0],
                        "modifiers": [
                            {"name": "xsec_top", "type": "normsys", "data": {"hi": 1.2, "lo": 0.7}},
                            {
                                "name": "jes",
                                "type": "histosys",
                                "data": {"hi_data": [86.0, 61.0], "lo_data": [75.0, 60.5]},
                            },
                        ],
                    },
                    {"name": "zjets", "data": [12.0, 25.0], "modifiers": []},
                ],
            },
        ]
    }


def _points(model) -> list[np.ndarray]:
    """Every nuisance parameter at each of ALPHAS (the rest at their inits), then mixed points."""
    init = np.asarray(model.config.suggested_init(), dtype=float)
    alphas = [model.config.par_slice(n).start for n in ("jes", "xsec_top", "shape_z") if n in model.config.par_order]
    points = []
    for alpha in ALPHAS:
        p = init.copy()
        p[alphas] = alpha
        p[model.config.poi_index] = 1.3
        points.append(p)
    rng = np.random.default_rng(5)
    for _ in range(4):
        p = init.copy()
        p[alphas] = rng.choice(ALPHAS, size=len(alphas))
        p[model.config.poi_index] = rng.uniform(0.0, 3.0)
        p[model.config.par_slice("stat_sr")] = rng.uniform(0.8, 1.2, 3)
        points.append(p)
    return points


def _max_relative(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


SLOW_NORMSYS = {"code1": _slow_code1([]).product, "code4": _slow_code4([], alpha0=1.0).product}
SLOW_HISTOSYS = {"code0": _slow_code0([]).summand, "code2": _slow_code2([]).summand, "code4p": _slow_code4p([]).summand}


@pytest.mark.parametrize("code", sorted(NORMSYS_CODES))
@pytest.mark.parametrize("alpha", ALPHAS)
def test_normsys_codes_match_pyhf_reference(code, alpha):
    for hi, lo in [(1.13, 0.82), (0.9, 1.05), (1.0, 1.0), (2.5, 0.2)]:
        got = float(NORMSYS_CODES[code].function(jnp.asarray(alpha), hi, lo))
        assert got == pytest.approx(SLOW_NORMSYS[code](lo, 1.0, hi, alpha), rel=1e-13)


@pytest.mark.parametrize("code", sorted(HISTOSYS_CODES))
@pytest.mark.parametrize("alpha", ALPHAS)
def test_histosys_codes_match_pyhf_reference(code, alpha):
    for lo, nom, hi in [(7.0, 10.0, 14.5), (12.0, 10.0, 9.0), (10.0, 10.0, 10.0), (0.0, 3.0, 8.0)]:
        got = float(HISTOSYS_CODES[code].function(jnp.asarray(alpha), lo, nom, hi))
        assert got == pytest.approx(SLOW_HISTOSYS[code](lo, nom, hi, alpha), rel=1e-13, abs=1e-13)


@pytest.mark.parametrize("code", sorted(NORMSYS_CODES) + sorted(HISTOSYS_CODES))
def test_derivatives_match_autodiff_and_pyhf_finite_differences(code):
    if code in NORMSYS_CODES:
        args = (jnp.asarray(1.13), jnp.asarray(0.82))
        interpolation = NORMSYS_CODES[code]

        def pyhf_value(a):
            return SLOW_NORMSYS[code](0.82, 1.0, 1.13, a)
    else:
        args = (jnp.asarray(7.0), jnp.asarray(10.0), jnp.asarray(14.5))
        interpolation = HISTOSYS_CODES[code]

        def pyhf_value(a):
            return SLOW_HISTOSYS[code](7.0, 10.0, 14.5, a)

    def plain(a):
        return interpolation.function(a, *args)

    alphas = jnp.asarray(ALPHAS)
    value, first, second = interpolation.derivatives(alphas, *args)
    np.testing.assert_allclose(value, jax.vmap(plain)(alphas), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(first, jax.vmap(jax.grad(plain))(alphas), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(second, jax.vmap(jax.hessian(plain))(alphas), rtol=1e-13, atol=1e-13)
    # away from the kinks, against pyhf's reference values
    eps = 1e-4
    for a in (-2.7, -1.3, -0.6, 0.4, 1.6, 3.0):
        i = ALPHAS.index(a)
        up, mid, down = pyhf_value(a + eps), pyhf_value(a), pyhf_value(a - eps)
        assert float(first[i]) == pytest.approx((up - down) / (2 * eps), rel=1e-7, abs=1e-9)
        assert float(second[i]) == pytest.approx((up - 2 * mid + down) / eps**2, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("code", sorted(NORMSYS_CODES) + sorted(HISTOSYS_CODES))
def test_gradients_in_every_argument_are_finite(code):
    """Also at the kinks and for hi = lo = 1 / lo = nom = hi (the padding of the layout)."""
    if code in NORMSYS_CODES:
        interpolation, cases = NORMSYS_CODES[code], [(1.13, 0.82), (1.0, 1.0), (2.5, 0.2)]
    else:
        interpolation, cases = HISTOSYS_CODES[code], [(7.0, 10.0, 14.5), (0.0, 3.0, 8.0), (10.0, 10.0, 10.0)]
    for args in cases:
        argnums = tuple(range(len(args) + 1))
        for alpha in ALPHAS:
            gradient = jax.grad(interpolation.function, argnums=argnums)(alpha, *args)
            jacobian = jax.jacfwd(lambda *x: jnp.stack(interpolation.derivatives(*x)), argnums=argnums)(alpha, *args)
            assert np.all(np.isfinite(gradient)) and np.all(np.isfinite(jacobian)), (alpha, args)


@pytest.mark.parametrize(("normsys", "histosys"), SETTINGS)
def test_expected_data_and_logpdf_match_pyhf(normsys, histosys, reference_code2):
    spec, settings = _spec(), _settings(normsys, histosys)
    ours, ref = build_model(spec, modifier_settings=settings), pyhf.Model(spec, modifier_settings=settings)
    assert ours.interpcodes == InterpCodes(normsys, histosys)
    data = np.asarray(ref.expected_data(ref.config.suggested_init())) * 1.07
    worst = 0.0
    for pars in _points(ours):
        expected, ref_expected = ours.expected_data(pars), ref.expected_data(pars)
        np.testing.assert_allclose(expected, ref_expected, rtol=1e-12)
        np.testing.assert_allclose(ours.logpdf(pars, data), ref.logpdf(pars, data), rtol=1e-12)
        worst = max(worst, _max_relative(expected, ref_expected))
    print(f"{normsys}/{histosys}: largest relative deviation of expected_data from pyhf {worst:.1e}")


def test_code2_matches_pyhf_0_7_tensorised_code_above_minus_one():
    """Without the reference code 2: pyhf's own tensorised code 2 agrees wherever alpha >= -1."""
    spec, settings = _spec(), _settings("code4", "code2")
    ours, ref = build_model(spec, modifier_settings=settings), pyhf.Model(spec, modifier_settings=settings)
    for pars in _points(ours):
        if pars[ours.config.par_slice("jes")][0] >= -1.0 and pars[ours.config.par_slice("shape_z")][0] >= -1.0:
            np.testing.assert_allclose(ours.expected_data(pars), ref.expected_data(pars), rtol=1e-12)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (None, ("code4", "code4p")),
        ({}, ("code1", "code0")),
        ({"normsys": {"interpcode": "code4"}}, ("code4", "code0")),
        ({"histosys": {"interpcode": "code4p"}}, ("code1", "code4p")),
        ({"normsys": {}, "histosys": {"interpcode": "code2"}}, ("code1", "code2")),
    ],
)
def test_settings_replace_the_defaults_as_in_pyhf(settings, expected, reference_code2):
    spec = _spec()
    ours = build_model(spec, modifier_settings=settings)
    ref = pyhf.Model(spec) if settings is None else pyhf.Model(spec, modifier_settings=settings)
    assert ours.interpcodes == InterpCodes(*expected)
    default = build_model(spec)
    moved = False
    for pars in _points(ours):
        np.testing.assert_allclose(ours.expected_data(pars), ref.expected_data(pars), rtol=1e-12)
        moved = moved or not np.allclose(ours.expected_data(pars), default.expected_data(pars), rtol=1e-6)
    assert moved == (settings is not None)  # the fallback is not pyhf's default: it changes the expected data


def test_codes_for_types_the_model_lacks_are_accepted():
    spec = _spec()
    for channel in spec["channels"]:
        for sample in channel["samples"]:
            sample["modifiers"] = [m for m in sample["modifiers"] if m["type"] != "normsys"]
    settings = {"normsys": {"interpcode": "code1"}}
    ours, ref = build_model(spec, modifier_settings=settings), pyhf.Model(spec, modifier_settings=settings)
    assert ours.interpcodes == InterpCodes("code1", "code0")
    for pars in _points(ours)[::3]:
        np.testing.assert_allclose(ours.expected_data(pars), ref.expected_data(pars), rtol=1e-12)


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"normsys": {"interpcode": "code3"}}, ["'normsys'", "'code3'", "'code1'", "'code4'"]),
        ({"normsys": {"interpcode": "code0"}}, ["'normsys'", "'code0'", "'code1'", "'code4'"]),
        ({"histosys": {"interpcode": "code4"}}, ["'histosys'", "'code4'", "'code0'", "'code2'", "'code4p'"]),
        ({"histosys": {"interpcode": 2}}, ["'histosys'", "2", "'code2'"]),
        ({"normsyss": {"interpcode": "code4"}}, ["'normsyss'", "did you mean 'normsys'"]),
        ({"lumi": {"interpcode": "code4"}}, ["'lumi'", "histosys, normsys"]),
        ({"normsys": {"interpcode": "code4", "alpha0": 2}}, ["'normsys'", "'alpha0'", "'interpcode'"]),
        ({"normsys": "code4"}, ["'normsys'", "'code4'"]),
        ([("normsys", {"interpcode": "code4"})], ["modifier_settings", "list"]),
    ],
)
def test_invalid_settings_are_one_line_errors(settings, words):
    with pytest.raises(ConfigError) as err:
        build_model(_spec(), modifier_settings=settings)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(("normsys", "histosys"), SETTINGS)
def test_hessian_matches_autodiff(normsys, histosys):
    model = build_model(_spec(), modifier_settings=_settings(normsys, histosys))
    data = model.expected_data(model.config.suggested_init()) * 1.1

    def nll(p):
        return -model.logpdf(p, data)[0]

    derivatives = jax.jit(nll_derivatives)
    reference = jax.jit(lambda p: (jax.grad(nll)(p), jax.hessian(nll)(p)))
    for pars in _points(model):
        ours = derivatives(model, pars, data)
        gradient, hessian = reference(jnp.asarray(pars))
        scale = float(jnp.max(jnp.abs(hessian)))
        np.testing.assert_allclose(ours.gradient, gradient, rtol=1e-10, atol=1e-10 * scale)
        np.testing.assert_allclose(ours.hessian, hessian, rtol=1e-10, atol=1e-12 * scale)


@pytest.fixture
def tight_scipy(numpy64):
    """pyhf's scipy (SLSQP) optimizer with a tight tolerance (the default leaves ~1e-4 in the parameters)."""
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-12), precision="64b")


@pytest.mark.parametrize(
    "settings",
    [{}, _settings("code1", "code4p"), _settings("code4", "code2")],
    ids=["code1-code0", "code1-code4p", "code4-code2"],
)
def test_fit_reaches_pyhf_best_fit(settings, tight_scipy, reference_code2):
    spec = _spec()
    ours, ref = build_model(spec, modifier_settings=settings), pyhf.Model(spec, modifier_settings=settings)
    pars = np.asarray(ref.config.suggested_init(), dtype=float)
    pars[ref.config.poi_index] = 0.8
    pars[ref.config.par_slice("jes")] = 0.4
    pars[ref.config.par_slice("shape_z")] = -0.5
    data = np.asarray(ref.expected_data(pars))
    n = ref.config.nmaindata
    data[:n] *= np.random.default_rng(2).uniform(0.85, 1.15, n)
    result = fit(ours, data)
    ref_pars, ref_twice_nll = pyhf.infer.mle.fit(data, ref, return_fitted_val=True)
    assert bool(result.converged)
    assert 2 * float(result.nll) == pytest.approx(float(ref_twice_nll), rel=1e-9)
    assert 2 * float(result.nll) <= float(ref_twice_nll) + 1e-9
    np.testing.assert_allclose(result.bestfit, ref_pars, atol=1e-4)


@pytest.mark.parametrize("settings", [{}, _settings("code1", "code2"), {"normsys": {"interpcode": "code4"}}])
def test_from_workspace_passes_settings_like_pyhf(settings, reference_code2):
    ws = small_workspace(_spec())
    ours = from_workspace(ws, modifier_settings=settings)
    ref = pyhf.Workspace(copy.deepcopy(ws)).model(modifier_settings=settings)
    assert ours.config.par_order == ref.config.par_order
    for pars in _points(ours)[::2]:
        np.testing.assert_allclose(ours.expected_data(pars), ref.expected_data(pars), rtol=1e-12)
    with pytest.raises(ConfigError, match=r"measurement 'meas'.*'code9'"):
        from_workspace(ws, modifier_settings={"histosys": {"interpcode": "code9"}})


def test_codes_are_static_structure():
    spec = _spec()
    default = build_model(spec)
    explicit = build_model(spec, modifier_settings=_settings("code4", "code4p"))
    other = build_model(spec, modifier_settings=_settings("code1", "code0"))
    flat_default, flat_explicit, flat_other = (jax.tree_util.tree_flatten(m)[1] for m in (default, explicit, other))
    assert flat_default == flat_explicit and hash(flat_default) == hash(flat_explicit)
    assert flat_default != flat_other
    pars = _points(default)[ALPHAS.index(0.4)]
    evaluate = jax.jit(lambda m, p: m.expected_data(p))
    np.testing.assert_array_equal(evaluate(default, pars), default.expected_data(pars))
    np.testing.assert_array_equal(evaluate(other, pars), other.expected_data(pars))  # not the default's program
    assert not np.allclose(evaluate(other, pars), evaluate(default, pars))
