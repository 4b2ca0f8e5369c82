"""Asymptotic hypothesis tests: CLs with ``qtilde``/``q`` and the discovery p-value with ``q0``.

:func:`hypotest` returns the same numbers as ``pyhf.infer.hypotest`` with the
asymptotic calculator: the same fits (a fit with the POI fixed at the tested
value and a free fit, on the data and on Asimov data built from the nuisance
parameters fitted to the data with the POI at 0, or at 1 for ``q0``), the same
test statistics (:mod:`diffhep.infer.teststats`) and the same asymptotic
formulae (:mod:`diffhep.infer.asymptotics`). It runs under ``jax.jit`` and
``jax.vmap``: a scan over POI values or over signal hypotheses (models built
from stacked yields) is one call::

    jax.vmap(lambda mu: hypotest(mu, data, model).cls_obs)(mus)

The free fit to the Asimov data is not run: its maximum is the point the
Asimov data were generated from (every Poisson and constraint term is
maximised there), which is exact where pyhf's optimiser is approximate.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from diffhep.errors import ConfigError
from diffhep.infer.asymptotics import check_test_stat, expected_pvalues, pvalues, teststat_sigma
from diffhep.infer.fit import _minimize
from diffhep.infer.teststats import profile_statistic
from diffhep.likelihood.model import Model

__all__ = ["HypotestFits", "HypotestResult", "hypotest"]


class HypotestFits(NamedTuple):
    """Fitted parameters of a :func:`hypotest`, as pyhf's ``HypoTestFitResults``; each shape ``(npars,)``.

    Attributes:
        asimov_pars: nuisances fitted to the data with the POI at 0 (1 for ``q0``);
            the Asimov data are ``model.expected_data(asimov_pars)``.
        free_fit_to_data: unconditional best fit to the data.
        free_fit_to_asimov: unconditional best fit to the Asimov data (= ``asimov_pars``).
        fixed_poi_fit_to_data: best fit to the data with the POI at the tested value.
        fixed_poi_fit_to_asimov: the same on the Asimov data.
    """

    asimov_pars: Array
    free_fit_to_data: Array
    free_fit_to_asimov: Array
    fixed_poi_fit_to_data: Array
    fixed_poi_fit_to_asimov: Array


class HypotestResult(NamedTuple):
    """Result of :func:`hypotest`; every field is always present.

    For ``qtilde``/``q`` the ``cls`` fields are CLs values; for ``q0`` they hold
    the discovery p-value ``p0`` (``CLsb``), which is what pyhf returns first.

    Attributes:
        cls_obs: observed CLs (``q0``: observed ``p0``), shape ``()``.
        cls_exp: expected CLs (``q0``: expected ``p0``) at the test statistic
            values ``EXPECTED_NSIGMA = (2, 1, 0, -1, -2)``, shape ``(5,)``, pyhf's
            order: ``cls_exp[2]`` is the median, ``cls_exp[0]`` the -2 sigma edge.
        clsb_obs: observed ``CLs+b``, shape ``()``.
        clb_obs: observed ``CLb``, shape ``()``.
        clsb_exp: expected ``CLs+b``, shape ``(5,)``.
        clb_exp: expected ``CLb``, shape ``(5,)``.
        teststat: the observed test statistic in sigma (pyhf's ``calc.teststatistic``), shape ``()``.
        q_obs: the profile-likelihood test statistic on the data, shape ``()``.
        q_asimov: the same on the Asimov data, shape ``()``.
        fits: the fitted parameters, :class:`HypotestFits`.
    """

    cls_obs: Array
    cls_exp: Array
    clsb_obs: Array
    clb_obs: Array
    clsb_exp: Array
    clb_exp: Array
    teststat: Array
    q_obs: Array
    q_asimov: Array
    fits: HypotestFits

    @property
    def cls_exp_median(self) -> Array:
        """The median expected CLs (``q0``: median expected ``p0``), ``cls_exp[2]``."""
        return self.cls_exp[..., 2]

    def as_pyhf(
        self,
        *,
        test_stat: str = "qtilde",
        return_tail_probs: bool = False,
        return_expected: bool = False,
        return_expected_set: bool = False,
    ) -> Any:
        """The values in the layout ``pyhf.infer.hypotest`` returns for the same flags.

        Example: ``cls_obs, cls_exp_set = result.as_pyhf(return_expected_set=True)``.
        """
        q0 = test_stat == "q0"
        out: list[Any] = [self.cls_obs]
        if return_tail_probs:
            out.append([self.clb_obs] if q0 else [self.clsb_obs, self.clb_obs])
        band = [self.cls_exp[..., i] for i in range(5)]
        if return_expected:
            out.append(band[2])
        if return_expected_set:
            out.append(band)
        return tuple(out) if len(out) > 1 else out[0]


@partial(jax.jit, static_argnames=("test_stat",))
def _statistics(
    model: Model,
    data: Array,
    asimov: Array,
    poi_test: Array,
    fits: HypotestFits,
    test_stat: str,
) -> HypotestResult:
    q_obs = profile_statistic(model, data, fits.fixed_poi_fit_to_data, fits.free_fit_to_data, poi_test, test_stat)
    q_asimov = profile_statistic(
        model, asimov, fits.fixed_poi_fit_to_asimov, fits.free_fit_to_asimov, poi_test, test_stat
    )
    t = teststat_sigma(q_obs, q_asimov, test_stat)
    clsb, clb, cls = pvalues(t, q_asimov)
    clsb_exp, clb_exp, cls_exp = expected_pvalues(q_asimov)
    first, band = (clsb, clsb_exp) if test_stat == "q0" else (cls, cls_exp)
    return HypotestResult(first, band, clsb, clb, clsb_exp, clb_exp, t, q_obs, q_asimov, fits)


@partial(jax.jit, static_argnames=("test_stat",))
def _stage_one(
    model: Model, poi_test: Array, init: Array, bounds: Array, free: Array, test_stat: str
) -> tuple[Array, ...]:
    """Starts of the fits to the data (POI at the tested value, free, POI at the Asimov value), masks, bounds."""
    poi = model.config.poi_index
    if test_stat == "q0":
        poi_test = jnp.zeros_like(poi_test)
    asimov_mu = jnp.asarray(1.0 if test_stat == "q0" else 0.0, dtype=init.dtype)
    lower, upper = bounds[:, 0], bounds[:, 1]
    fixed_poi = free.at[poi].set(False)

    def start(pars: Array, mask: Array) -> Array:
        return jnp.where(mask, jnp.clip(pars, lower, upper), pars)

    at_test = start(init.at[poi].set(poi_test), fixed_poi)
    at_asimov = start(init.at[poi].set(asimov_mu), fixed_poi)
    return poi_test, at_test, start(init, free), at_asimov, fixed_poi, lower, upper


@jax.jit
def _stage_two(model: Model, asimov_pars: Array, poi_test: Array) -> tuple[Array, Array]:
    """The Asimov data and the start of the POI-fixed fit to them."""
    return model.expected_data(asimov_pars), asimov_pars.at[model.config.poi_index].set(poi_test)


def _hypotest(
    model: Model,
    data: Array,
    poi_test: Array,
    init: Array,
    bounds: Array,
    free: Array,
    test_stat: str,
    n_steps: int,
) -> HypotestResult:
    """The fits and statistics of :func:`hypotest` (validated inputs).

    Four fits through one compiled minimiser (fits run one after the other:
    batching them gains nothing on a CPU), plus small compiled glue steps.
    """
    poi_test, at_test, free_init, at_asimov, fixed_poi, lower, upper = _stage_one(
        model, poi_test, init, bounds, free, test_stat
    )
    run = partial(_minimize, n_steps=n_steps, n_halvings=12)
    fixed_data = run(model, data, at_test, lower, upper, fixed_poi).bestfit
    free_data = run(model, data, free_init, lower, upper, free).bestfit
    asimov_pars = run(model, data, at_asimov, lower, upper, fixed_poi).bestfit
    asimov, start = _stage_two(model, asimov_pars, poi_test)
    fixed_asimov = run(model, asimov, start, lower, upper, fixed_poi).bestfit
    fits = HypotestFits(asimov_pars, free_data, asimov_pars, fixed_data, fixed_asimov)
    return _statistics(model, data, asimov, poi_test, fits, test_stat)


def hypotest(
    poi_test: float | Array,
    data: Array,
    model: Model,
    *,
    init_pars: Array | None = None,
    par_bounds: Array | None = None,
    fixed_params: Sequence[bool] | Array | None = None,
    calctype: str = "asymptotics",
    test_stat: str = "qtilde",
    n_steps: int = 50,
) -> HypotestResult:
    """Asymptotic CLs (``qtilde``, ``q``) or discovery p-value (``q0``) at one POI value.

    Arguments mirror ``pyhf.infer.hypotest``; the result is a named tuple with
    every value pyhf can return (see :meth:`HypotestResult.as_pyhf` for pyhf's
    tuple layout).

    Args:
        poi_test: the tested POI value (ignored for ``q0``, which tests 0), shape ``()``.
        data: main counts followed by auxdata, shape ``(nmaindata + nauxdata,)``.
        model: the likelihood; it must have a POI.
        init_pars: starting parameters, shape ``(npars,)``; default ``suggested_init()``.
        par_bounds: ``(npars, 2)`` bounds; default ``suggested_bounds()``. For
            ``test_stat="q"`` the POI's lower bound is normally below 0.
        fixed_params: ``(npars,)`` booleans; default ``suggested_fixed()``.
        calctype: only ``"asymptotics"``.
        test_stat: ``"qtilde"`` (default, as pyhf), ``"q"`` or ``"q0"``.
        n_steps: the most Newton steps per fit (static).

    Returns:
        :class:`HypotestResult`. Works under ``jax.jit`` and ``jax.vmap`` (over
        ``poi_test``, ``data`` or the model's numbers).

    Example:
        >>> from diffhep.likelihood import build_model
        >>> spec = {"channels": [{"name": "sr", "samples": [
        ...     {"name": "sig", "data": [5.0, 10.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
        ...     {"name": "bkg", "data": [50.0, 60.0], "modifiers": [
        ...         {"name": "unc", "type": "shapesys", "data": [5.0, 12.0]}]}]}]}
        >>> model = build_model(spec)
        >>> result = hypotest(1.0, jnp.array([51.0, 62.0, *model.config.auxdata]), model)
        >>> round(float(result.cls_obs), 3), [round(float(x), 3) for x in result.cls_exp]
        (0.409, [0.08, 0.178, 0.364, 0.638, 0.883])
    """
    check_test_stat(test_stat)
    if calctype != "asymptotics":
        raise ConfigError(f"calctype {calctype!r} is not supported; diffhep's hypotest is 'asymptotics' only")
    config = model.config
    if config.poi_index is None:
        raise ConfigError("hypotest needs a model with a parameter of interest; build it with poi_name=...")
    npars = config.npars
    init = config.suggested_init() if init_pars is None else jnp.asarray(init_pars, dtype=float)
    bounds = config.suggested_bounds() if par_bounds is None else jnp.asarray(par_bounds, dtype=float)
    fixed = jnp.asarray(config.suggested_fixed() if fixed_params is None else fixed_params, dtype=bool)
    data = jnp.asarray(data)
    expected_length = config.nmaindata + config.nauxdata
    if data.shape != (expected_length,):
        raise ConfigError(
            f"hypotest data has shape {tuple(data.shape)}; expected ({expected_length},): "
            f"{config.nmaindata} main counts then {config.nauxdata} auxdata (see observed_data)"
        )
    if init.shape != (npars,) or bounds.shape != (npars, 2) or fixed.shape != (npars,):
        raise ConfigError(
            f"hypotest got init_pars {tuple(init.shape)}, par_bounds {tuple(bounds.shape)}, fixed_params "
            f"{tuple(fixed.shape)}; expected ({npars},), ({npars}, 2), ({npars},) for this model"
        )
    poi_test = jnp.asarray(poi_test, dtype=init.dtype)
    return _hypotest(model, data, poi_test, init, bounds, ~fixed, test_stat, n_steps)
