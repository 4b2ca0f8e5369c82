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

Every other fit starts where pyhf starts it (``init_pars`` with the POI at the
fit's value) *and* from the other natural point (the free fit to the data, or
for the fit to the Asimov data the point the Asimov data came from), and keeps
the lower NLL: a non-monotone ``histosys`` can leave one start in a local
minimum. :class:`HypotestStatus` says which start won, the NLLs, the steps and
whether each fit converged. A fit that did not converge (step limit, NaN)
makes every p-value of the result NaN, never a plausible number; called
eagerly, :func:`hypotest` raises :class:`~diffhep.errors.FitError` naming the
fit instead (``on_failure="flag"`` returns the flagged result).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

from diffhep.errors import ConfigError, FitError
from diffhep.infer.asymptotics import check_test_stat, expected_pvalues, pvalues, teststat_sigma
from diffhep.infer.fit import FitResult, _minimize_from, converged_gain
from diffhep.infer.teststats import profile_statistic
from diffhep.infer.toys import ToyHypotestResult, toy_hypotest
from diffhep.likelihood.model import Model

__all__ = ["FIT_NAMES", "HypotestFits", "HypotestResult", "HypotestStatus", "hypotest"]

#: The fits of a :func:`hypotest`, in the order of :class:`HypotestStatus`'s arrays.
FIT_NAMES = ("free_fit_to_data", "fixed_poi_fit_to_data", "asimov_fit_to_data", "fixed_poi_fit_to_asimov")


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


class HypotestStatus(NamedTuple):
    """How each fit of a :func:`hypotest` went; arrays of shape ``(4,)`` in :data:`FIT_NAMES` order.

    Attributes:
        nll: the NLL at each fit's result.
        converged: whether each fit converged (see :class:`~diffhep.infer.FitResult`).
        n_iterations: Newton steps of the winning start.
        start: which start won: 0 = pyhf's (``init_pars``, POI at the fit's
            value), 1 = the other (the free fit to the data, or for the fit to
            the Asimov data, the point the Asimov data were generated from).
    """

    nll: Array
    converged: Array
    n_iterations: Array
    start: Array


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
        status: how each fit went, :class:`HypotestStatus`; where a fit did not
            converge every p-value above is NaN.
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
    status: HypotestStatus

    @property
    def converged(self) -> Array:
        """Whether every fit converged, shape ``()`` (bool; batch shape under ``vmap``)."""
        return jnp.all(self.status.converged, axis=-1)

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
    status: HypotestStatus,
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
    values = (first, band, clsb, clb, clsb_exp, clb_exp, t, q_obs, q_asimov)
    # a fit that did not converge: no plausible number, NaN (hypotest raises when called eagerly)
    ok = jnp.all(status.converged)
    values = tuple(jnp.where(ok, v, jnp.nan) for v in values)
    return HypotestResult(*values, fits, status)


@partial(jax.jit, static_argnames=("test_stat",))
def _starts(
    model: Model, poi_test: Array, init: Array, bounds: Array, free: Array, test_stat: str
) -> tuple[Array, ...]:
    """The tested POI value, the POI of the Asimov data, the POI-fixed mask, the bounds."""
    poi = model.config.poi_index
    if test_stat == "q0":
        poi_test = jnp.zeros_like(poi_test)
    asimov_mu = jnp.asarray(1.0 if test_stat == "q0" else 0.0, dtype=init.dtype)
    return poi_test, asimov_mu, free.at[poi].set(False), bounds[:, 0], bounds[:, 1]


@jax.jit
def _pair(model: Model, first: Array, second: Array, poi_value: Array, lower: Array, upper: Array) -> Array:
    """Two starts ``(2, npars)``: ``first`` and ``second`` with the POI at ``poi_value``, clipped to the bounds."""
    poi = model.config.poi_index
    starts = jnp.stack([first, second]).at[:, poi].set(poi_value)
    return jnp.clip(starts, lower, upper)


@jax.jit
def _asimov(model: Model, asimov_pars: Array) -> Array:
    return model.expected_data(asimov_pars)


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

    Four fits, each from two starts through one compiled minimiser, plus small
    compiled glue steps; the free fit to the Asimov data is its generating point.
    """
    poi_test, asimov_mu, fixed_poi, lower, upper = _starts(model, poi_test, init, bounds, free, test_stat)
    run = partial(_minimize_from, n_steps=n_steps, n_halvings=12)
    poi = model.config.poi_index
    free_data = run(
        model,
        data,
        _pair(model, init, init, init[poi], lower, upper).at[1, poi].set(jnp.clip(poi_test, lower[poi], upper[poi])),
        lower,
        upper,
        free,
    )
    fixed_data = run(
        model, data, _pair(model, init, free_data.bestfit, poi_test, lower, upper), lower, upper, fixed_poi
    )
    asimov_fit = run(
        model, data, _pair(model, init, free_data.bestfit, asimov_mu, lower, upper), lower, upper, fixed_poi
    )
    asimov = _asimov(model, asimov_fit.bestfit)
    fixed_asimov = run(
        model, asimov, _pair(model, init, asimov_fit.bestfit, poi_test, lower, upper), lower, upper, fixed_poi
    )
    results: tuple[FitResult, ...] = (free_data, fixed_data, asimov_fit, fixed_asimov)
    status = HypotestStatus(
        *(jnp.stack([getattr(r, f) for r in results]) for f in ("nll", "converged", "n_iterations", "start"))
    )
    fits = HypotestFits(
        asimov_fit.bestfit, free_data.bestfit, asimov_fit.bestfit, fixed_data.bestfit, fixed_asimov.bestfit
    )
    return _statistics(model, data, asimov, poi_test, fits, status, test_stat)


def _check_poi_values(config: Any, bounds: Array, poi_test: Any, test_stat: str) -> None:
    """Raise :class:`ConfigError` if a POI value the fits hold fixed lies outside the POI's bounds.

    The fits would clip it silently (pyhf refuses too): with bounds ``[0.2, 1.5]``
    the background-only Asimov data of ``qtilde`` would be made at POI 0.2.
    Checked only on concrete values (not under ``jit``).
    """
    if isinstance(bounds, jax.core.Tracer) or isinstance(poi_test, jax.core.Tracer):
        return
    lower, upper = (float(x) for x in bounds[config.poi_index])
    name = config.par_names[config.poi_index]
    values = {"the Asimov data": 1.0 if test_stat == "q0" else 0.0}
    if test_stat != "q0":
        values["the tested value"] = float(poi_test)
    for what, value in values.items():
        if not lower <= value <= upper:
            raise ConfigError(
                f"hypotest ({test_stat}) fixes the POI {name!r} at {value:g} for {what}, outside its bounds "
                f"[{lower:g}, {upper:g}]; widen par_bounds to include it"
            )


def _raise_unconverged(result: HypotestResult, poi_test: Any) -> None:
    """Raise :class:`FitError` naming the first fit of ``result`` that did not converge (concrete results only)."""
    status = result.status
    if isinstance(status.converged, jax.core.Tracer) or jnp.ndim(status.converged) != 1:
        return
    for i, name in enumerate(FIT_NAMES):
        if not bool(status.converged[i]):
            nll = float(status.nll[i])
            why = "a NaN" if not jnp.isfinite(nll) else f"the step limit ({int(status.n_iterations[i])} steps)"
            raise FitError(
                f"hypotest at POI {float(poi_test):g}: the {name.replace('_', ' ')} did not converge: it stopped at "
                f"{why} with NLL {nll:.6g} (the predicted gain of another step exceeds "
                f"{converged_gain(status.nll.dtype):.2g}); pass n_steps=... or on_failure='flag'",
                key=name,
            )


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
    on_failure: str = "raise",
    ntoys: int | None = None,
    key: Any = None,
    batch_size: int | None = None,
    track_progress: bool | None = None,
    max_failed_fraction: float | None = None,
) -> HypotestResult | ToyHypotestResult:
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
        calctype: ``"asymptotics"`` (default) or ``"toybased"`` (pyhf's
            ``ToyCalculator``, :mod:`diffhep.infer.toys`; eager only, returns a
            :class:`~diffhep.infer.toys.ToyHypotestResult`).
        test_stat: ``"qtilde"`` (default, as pyhf), ``"q"`` or ``"q0"``.
        n_steps: the most Newton steps per fit (not static: no new compilation per value).
        on_failure: ``"raise"`` (default): called eagerly, a fit that did not
            converge raises :class:`~diffhep.errors.FitError` naming it;
            ``"flag"``: return the result with NaN p-values and
            ``result.converged`` False. Under ``jax.jit``/``vmap`` results are
            always flagged, never raised.
        ntoys, key, batch_size, track_progress, max_failed_fraction: options of
            ``calctype="toybased"`` only (defaults 2000 toys, key 0, batches of
            20, progress bars shown, no failed toy allowed; see
            :func:`~diffhep.infer.toys.toy_hypotest`).

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
    if calctype not in ("asymptotics", "toybased"):
        raise ConfigError(f"calctype {calctype!r} is not supported; use 'asymptotics' or 'toybased'")
    toy_options = {
        "ntoys": ntoys,
        "key": key,
        "batch_size": batch_size,
        "track_progress": track_progress,
        "max_failed_fraction": max_failed_fraction,
    }
    toy_options = {name: value for name, value in toy_options.items() if value is not None}
    if calctype == "asymptotics" and toy_options:
        raise ConfigError(f"hypotest options {', '.join(toy_options)} need calctype='toybased'")
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
    if on_failure not in ("raise", "flag"):
        raise ConfigError(f"on_failure must be 'raise' or 'flag', not {on_failure!r}")
    _check_poi_values(config, bounds, poi_test, test_stat)
    poi_test = jnp.asarray(poi_test, dtype=init.dtype)
    if calctype == "toybased":
        return toy_hypotest(model, data, poi_test, init, bounds, ~fixed, test_stat, n_steps, on_failure, **toy_options)
    result = _hypotest(model, data, poi_test, init, bounds, ~fixed, test_stat, n_steps)
    if on_failure == "raise":
        _raise_unconverged(result, poi_test)
    return result
