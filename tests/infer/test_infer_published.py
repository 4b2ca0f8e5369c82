"""Fits on a published ATLAS likelihood: SUSY-2018-06 (3L RJ mimic), HEPData doi:10.17182/hepdata.91127.v2.

The background-only workspace and the published signal patch ``ERJR_200p0_50p0``
live in ``benchmarks/workspaces/`` (see the README there). Its shapesys
constraints have Poisson auxiliary counts up to 1.9e11, so the absolute
log-likelihood is ~1e12 with a rounding step of 1e-4: NLL differences must be
formed term by term, and pyhf's NumPy backend (finite-difference gradients)
stops at the initial point. The reference is pyhf's JAX backend (autodiff
gradients) with scipy at tolerance 1e-12, which converges.
"""

from __future__ import annotations

import gzip
import json
from decimal import Decimal, getcontext
from pathlib import Path

import jax
import jax.numpy as jnp
import jsonpatch
import numpy as np
import pytest

from diffhep.infer import hypotest
from diffhep.infer.derivatives import dense_nll_derivatives
from diffhep.infer.ratio import log_likelihood_ratio
from diffhep.likelihood import from_workspace, observed_data

WORKSPACES = Path(__file__).resolve().parents[2] / "benchmarks" / "workspaces"

# pyhf 0.7.6, JAX backend, scipy_optimizer(tolerance=1e-12): hypotest(1.0, ..., test_stat="qtilde",
# return_tail_probs=True, return_expected_set=True) on the patched workspace (49 s on 2 shared cores).
PYHF_REFERENCE = {
    "cls_obs": 2.026051498225621e-06,
    "tails": [1.5862982659927916e-06, 0.7829506147213151],
    "cls_exp": [
        2.187623954712698e-12,
        3.7278046267951026e-10,
        5.2829496709164864e-08,
        5.308640317627035e-06,
        0.0002959670395194282,
    ],
}


@pytest.fixture(autouse=True, scope="module")
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def three_lepton():
    with gzip.open(WORKSPACES / "atlas_susy_2018_06_3LRJmimic_BkgOnly.json.gz", "rt") as f:
        background = json.load(f)
    patch = json.loads((WORKSPACES / "atlas_susy_2018_06_3LRJmimic_patch.ERJR_200p0_50p0.json").read_text())
    spec = jsonpatch.apply_patch(background, patch)
    model = from_workspace(spec)
    return model, observed_data(spec, model)


def test_hypotest_matches_converged_pyhf_in_few_steps(three_lepton):
    model, data = three_lepton
    result = hypotest(1.0, data, model)
    assert bool(result.converged)
    # every fit in a few Newton steps (with the NLL differences formed as one sum: 50+ steps, unconverged)
    assert int(jnp.max(result.status.n_iterations)) <= 10, result.status.n_iterations
    np.testing.assert_allclose(float(result.cls_obs), PYHF_REFERENCE["cls_obs"], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(result.cls_exp), PYHF_REFERENCE["cls_exp"], rtol=1e-6)
    tails = [float(result.clsb_obs), float(result.clb_obs)]
    np.testing.assert_allclose(tails, PYHF_REFERENCE["tails"], rtol=1e-6)


def _exact_constraint_difference(aux, width, kind, a, b) -> float:
    """log C(a) - log C(b) in 60-digit decimal arithmetic (Normal: Gaussian; Poisson: n log(lam) - lam)."""
    getcontext().prec = 60
    total = Decimal(0)
    for n, w, k, x, y in zip(aux, width, kind, a, b):
        n, w, x, y = (Decimal(float(v)) for v in (n, w, x, y))
        if k == "normal":
            total += ((y - n) ** 2 - (x - n) ** 2) / (2 * w * w)
        else:
            total += n * (x * w).ln() - x * w - (n * (y * w).ln() - y * w)
    return float(total)


def test_likelihood_ratio_has_no_cancellation(three_lepton):
    model, data = three_lepton
    lay, num = model.layout, model.numbers
    nmain = model.config.nmaindata
    b = model.config.suggested_init()
    a = b.at[lay.aux_param].add(1e-9 * jnp.arange(1, lay.aux_param.size + 1) / lay.aux_param.size)
    kind = np.where(np.isin(np.arange(lay.aux_param.size), lay.poisson_aux), "poisson", "normal")
    aux = np.asarray(data[nmain:])
    assert aux.max() > 1e11  # the stiff shapesys constraint this is about
    exact = _exact_constraint_difference(
        aux, np.asarray(num.aux_width), kind, np.asarray(a[lay.aux_param]), np.asarray(b[lay.aux_param])
    )
    nu_a, nu_b = (np.asarray(model.expected_actualdata(p)) for p in (a, b))
    n = np.asarray(data[:nmain])
    main = float(np.sum(n * np.log(nu_a / nu_b) - (nu_a - nu_b)))
    value = float(log_likelihood_ratio(model, data, a, b))
    assert abs(value - (main + exact)) < 1e-9, (value, main + exact)


def test_dense_derivatives_equal_jax(three_lepton):
    model, data = three_lepton
    config = model.config
    bounds = config.suggested_bounds()
    key = jax.random.PRNGKey(3)
    start = config.suggested_init()
    points = [start, jnp.clip(start + 0.3 * jax.random.normal(key, start.shape), bounds[:, 0] + 1e-3, bounds[:, 1])]
    points.append(points[1].at[config.poi_index].set(0.0))  # a zero normfactor: leave-out products, no division

    def nll(p):
        return -model.logpdf(p, data)[0]

    hessian = jax.jit(jax.hessian(nll))
    dense = jax.jit(lambda p: dense_nll_derivatives(model, p, data))
    for p in points:
        out = dense(p)
        reference = hessian(p)
        scale = jnp.max(jnp.abs(reference))
        np.testing.assert_allclose(out.hessian / scale, reference / scale, rtol=0, atol=1e-13)
        np.testing.assert_allclose(out.gradient, jax.grad(nll)(p), rtol=1e-9, atol=1e-6)
