"""Toy-based hypothesis tests: pyhf's ``ToyCalculator`` with the toys fitted in batches under ``jax.vmap``.

``hypotest(..., calctype="toybased")`` lands here. The semantics are pyhf's
(``pyhf.infer.calculators.ToyCalculator`` and ``EmpiricalDistribution``):

* the observed test statistic ``q_obs`` is ``q``/``qtilde``/``q0`` on the data
  itself (not converted to sigma: pyhf's toy ``teststatistic``);
* signal+background toys are generated at the fit to the data with the POI
  fixed at ``poi_test``; background toys at the fit with the POI fixed at 0
  (at 1 for ``q0``, whose "signal" hypothesis is ``mu = 0``: as in diffhep's
  asymptotic ``q0``, ``poi_test`` is 0 there);
* a toy draws every main count from ``Poisson(expected_actualdata(pars))``, each
  Normal-constrained auxiliary datum from ``Normal(pars[i], sigma)`` and each
  Poisson-constrained one (``shapesys``) from ``Poisson(factor * gamma)``;
* the test statistic of a toy comes from a free and a POI-fixed fit with the
  same ``init_pars``/``par_bounds``/``fixed_params`` as on the data;
* ``CLsb``/``CLb`` are the fractions of signal+background/background toys with
  ``q >= q_obs``, ``CLs = CLsb / CLb`` (NaN where both are 0, as pyhf's 0/0);
* the expected band: ``(CLsb, CLb, CLs)`` at the ``q`` of every background toy,
  then for each the percentiles 2.275, 15.87, 50, 84.13 and 97.72 over those
  toys (NumPy's ``"linear"`` method), pyhf's order: ``cls_exp[0]`` is the
  -2 sigma edge, ``cls_exp[2]`` the median.

Differences from pyhf, all on purpose: every fit (on the data and on each toy)
starts where pyhf starts it *and* from a second natural point, and keeps the
lower NLL, as :func:`~diffhep.infer.hypotest` does (the fits to the data are
``hypotest``'s; a toy's free fit starts also from the point the toy was
generated at, its POI-fixed fit from the toy's free fit with the POI set);
the random numbers come from ``jax.random`` (so the toys are not pyhf's: the
two agree within the toys' statistical error).

**Toys whose fits do not converge** (a NaN or the step limit,
:class:`~diffhep.infer.FitResult`'s ``converged``) are never used: their ``q``
is NaN, they are left out of the distributions (the p-values are fractions of
the converged toys) and counted in :attr:`ToyDistribution.n_failed`. When more
than ``max_failed_fraction`` of either set failed (default 0: pyhf's scipy fit
raises on any failed minimisation), or a fit to the data did not converge, every
p-value is NaN and ``valid`` is False; with ``on_failure="raise"`` (default)
:class:`~diffhep.errors.FitError` says which.

**Batches and reproducibility.** ``key`` (a ``jax.random`` key or an int
seed) is split into one key per hypothesis, ``signal_key, background_key =
jax.random.split(key)``, and toy ``i`` of a hypothesis is drawn with
``jax.random.fold_in(hypothesis_key, i)`` (:func:`sample_toys`): the toys do not
depend on ``batch_size``, and the first ``n`` of ``ntoys`` are those of a run with
``ntoys=n``. Toys are generated and fitted ``batch_size`` at a time by one
compiled, ``vmap``-ed program (the last batch is padded), the same program for
both hypotheses: one compilation per model structure, batch size, ``test_stat``
and ``n_steps``, and memory bounded by the batch. The loop over batches runs in
Python (with pyhf's progress bars), so a toy-based hypotest is called eagerly,
not under ``jax.jit``.
"""

from __future__ import annotations

import math
import sys
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from tqdm import tqdm

from diffhep.errors import ConfigError, FitError
from diffhep.infer.fit import FitResult, _minimize_from
from diffhep.infer.teststats import profile_statistic
from diffhep.likelihood.model import Model

__all__ = ["NORMAL_PERCENTILES", "TOY_FIT_NAMES", "ToyDistribution", "ToyHypotestResult", "sample_toys", "toy_hypotest"]

#: The fits to the data of a toy-based hypotest, in the order of :attr:`ToyHypotestResult.fits`.
TOY_FIT_NAMES = ("free_fit_to_data", "fixed_poi_fit_to_data", "background_fit_to_data")
#: Percentiles of the background toys giving the expected band at -2, -1, 0, 1, 2 sigma (pyhf's numbers).
NORMAL_PERCENTILES = (2.27501319, 15.86552539, 50.0, 84.13447461, 97.72498681)
_HALVINGS = 12


class ToyDistribution(NamedTuple):
    """The toys of one hypothesis.

    Attributes:
        q: the test statistic of each toy, shape ``(ntoys,)``; NaN where its fits did not converge.
        converged: whether both fits of each toy converged, shape ``(ntoys,)`` (bool).
        pars: the parameters the toys were generated at, shape ``(npars,)``.
    """

    q: Array
    converged: Array
    pars: Array

    @property
    def n_failed(self) -> int:
        """How many toys were left out because a fit did not converge."""
        return int(np.sum(~np.asarray(self.converged)))


class ToyHypotestResult(NamedTuple):
    """Result of ``hypotest(..., calctype="toybased")``; every field is always present.

    The p-value fields are those of :class:`~diffhep.infer.HypotestResult`, from
    the toys' empirical distributions; for ``q0`` the ``cls`` fields hold ``p0``
    (``CLsb``), as pyhf returns.

    Attributes:
        cls_obs: observed CLs (``q0``: ``p0``), shape ``()``.
        cls_exp: expected CLs (``q0``: ``p0``), shape ``(5,)``, pyhf's order (``[0]``: -2 sigma, ``[2]``: median).
        clsb_obs: observed ``CLs+b``, shape ``()``.
        clb_obs: observed ``CLb``, shape ``()``.
        clsb_exp: expected ``CLs+b``, shape ``(5,)``.
        clb_exp: expected ``CLb``, shape ``(5,)``.
        teststat: pyhf's toy ``calc.teststatistic``: the observed ``q`` itself (not in sigma), shape ``()``.
        q_obs: the observed test statistic, shape ``()`` (= ``teststat``).
        signal: the signal+background toys, :class:`ToyDistribution`.
        background: the background-only toys, :class:`ToyDistribution`.
        fits: the fits to the data, :data:`TOY_FIT_NAMES` order: a
            :class:`~diffhep.infer.FitResult` whose fields have a leading axis
            of 3 (``bestfit`` ``(3, npars)``); ``fits.bestfit[1]`` and
            ``fits.bestfit[2]`` are where the two sets of toys were generated.
        valid: shape ``()`` (bool): every fit to the data converged and at most
            ``max_failed_fraction`` of each set of toys failed; else every p-value is NaN.
    """

    cls_obs: Array
    cls_exp: Array
    clsb_obs: Array
    clb_obs: Array
    clsb_exp: Array
    clb_exp: Array
    teststat: Array
    q_obs: Array
    signal: ToyDistribution
    background: ToyDistribution
    fits: FitResult
    valid: Array

    @property
    def converged(self) -> Array:
        """Whether every fit converged, to the data and to every toy, shape ``()`` (bool)."""
        toys = jnp.all(self.signal.converged) & jnp.all(self.background.converged)
        return jnp.all(self.fits.converged) & toys

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
        """The values in the layout ``pyhf.infer.hypotest`` returns for the same flags (as ``HypotestResult``'s)."""
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


def _sample_one(model: Model, pars: Array, key: Array) -> Array:
    """One toy at ``pars``: main counts then auxdata, shape ``(nmaindata + nauxdata,)``."""
    lay, width = model.layout, model.numbers.aux_width
    k_main, k_normal, k_poisson = jax.random.split(key, 3)
    main = jax.random.poisson(k_main, model.expected_actualdata(pars)).astype(pars.dtype)
    values = pars[lay.aux_param]
    aux = jnp.zeros(values.shape, dtype=pars.dtype)
    if lay.normal_aux.size:
        n = lay.normal_aux
        aux = aux.at[n].set(values[n] + width[n] * jax.random.normal(k_normal, n.shape, dtype=pars.dtype))
    if lay.poisson_aux.size:
        p = lay.poisson_aux
        aux = aux.at[p].set(jax.random.poisson(k_poisson, values[p] * width[p]).astype(pars.dtype))
    return jnp.concatenate([main, aux])


@jax.jit
def sample_toys(model: Model, pars: Array, key: Array, indices: Array) -> Array:
    """The toys number ``indices`` of a hypothesis, generated at ``pars``.

    Args:
        model: the likelihood.
        pars: parameters the toys are drawn at, shape ``(npars,)``.
        key: the hypothesis' key (``jax.random.split(key)[0]`` for the signal+background toys,
            ``[1]`` for the background toys of a hypotest run with ``key``).
        indices: toy numbers, shape ``(n,)`` (int); toy ``i`` uses ``jax.random.fold_in(key, i)``.

    Returns:
        Shape ``(n, nmaindata + nauxdata)``: main counts then auxdata per toy.
    """
    return jax.vmap(lambda i: _sample_one(model, pars, jax.random.fold_in(key, i)))(indices)


def _starts(model: Model, first: Array, second: Array, poi_value: Array, lower: Array, upper: Array) -> Array:
    """Two starts ``(2, npars)`` with the POI at ``poi_value``, clipped to the bounds."""
    poi = model.config.poi_index
    return jnp.clip(jnp.stack([first, second]).at[:, poi].set(poi_value), lower, upper)


@partial(jax.jit, static_argnames=("test_stat", "n_steps"))
def _toy_batch(
    model: Model,
    pars: Array,
    key: Array,
    indices: Array,
    poi_test: Array,
    init: Array,
    lower: Array,
    upper: Array,
    free: Array,
    test_stat: str,
    n_steps: int,
) -> tuple[Array, Array]:
    """Test statistics ``(batch,)`` and convergence ``(batch,)`` of the toys ``indices`` drawn at ``pars``.

    Per toy, the free fit from pyhf's start and from the generating point, then
    the POI-fixed fit from pyhf's start and from the free fit (POI set), as in
    ``hypotest``; all toys ``vmap``-ed.
    """
    fixed_poi = free.at[model.config.poi_index].set(False)
    run = partial(_minimize_from, n_steps=n_steps, n_halvings=_HALVINGS)

    def one(toy: Array) -> tuple[Array, Array]:
        free_fit = run(model, toy, jnp.clip(jnp.stack([init, pars]), lower, upper), lower, upper, free)
        fixed_starts = _starts(model, init, free_fit.bestfit, poi_test, lower, upper)
        fixed_fit = run(model, toy, fixed_starts, lower, upper, fixed_poi)
        q = profile_statistic(model, toy, fixed_fit.bestfit, free_fit.bestfit, poi_test, test_stat)
        ok = free_fit.converged & fixed_fit.converged
        return jnp.where(ok, q, jnp.nan), ok

    return jax.vmap(one)(sample_toys(model, pars, key, indices))


@partial(jax.jit, static_argnames=("test_stat",))
def _statistic(
    model: Model, data: Array, conditional: Array, unconditional: Array, poi_test: Array, test_stat: str
) -> Array:
    """:func:`profile_statistic`, compiled."""
    return profile_statistic(model, data, conditional, unconditional, poi_test, test_stat)


def _data_fits(
    model: Model,
    data: Array,
    poi_test: Array,
    background_mu: Array,
    init: Array,
    lower: Array,
    upper: Array,
    free: Array,
    test_stat: str,
    n_steps: int,
) -> tuple[FitResult, Array]:
    """The three fits of :data:`TOY_FIT_NAMES`, stacked, and ``q_obs``.

    Each fit from the starts ``hypotest`` uses, through the same compiled
    minimiser (so ``q_obs`` is the asymptotic ``hypotest``'s).
    """
    poi = model.config.poi_index
    fixed_poi = free.at[poi].set(False)
    run = partial(_minimize_from, n_steps=n_steps, n_halvings=_HALVINGS)
    free_starts = (
        _starts(model, init, init, init[poi], lower, upper).at[1, poi].set(jnp.clip(poi_test, lower[poi], upper[poi]))
    )
    free_fit = run(model, data, free_starts, lower, upper, free)
    fixed_starts = _starts(model, init, free_fit.bestfit, poi_test, lower, upper)
    fixed_fit = run(model, data, fixed_starts, lower, upper, fixed_poi)
    background_starts = _starts(model, init, free_fit.bestfit, background_mu, lower, upper)
    background_fit = run(model, data, background_starts, lower, upper, fixed_poi)
    q_obs = _statistic(model, data, fixed_fit.bestfit, free_fit.bestfit, poi_test, test_stat)
    fits = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), free_fit, fixed_fit, background_fit)
    return fits, q_obs


def _tail(sorted_q: Array, n: Array, value: Array) -> Array:
    """Fraction of the ``n`` finite entries of ``sorted_q`` (ascending, +inf after them) that are ``>= value``."""
    return (n - jnp.searchsorted(sorted_q, value, side="left")) / n


def _percentiles(values: Array, ok: Array) -> Array:
    """NumPy's ``percentile(values[ok], NORMAL_PERCENTILES, method="linear")``, shape ``(5,)``."""
    n = jnp.sum(ok)
    x = jnp.sort(jnp.where(ok, values, jnp.inf))
    q = jnp.asarray(NORMAL_PERCENTILES, dtype=values.dtype) / 100.0
    virtual = n * q + (1.0 - q) - 1.0  # as numpy computes (n - 1) * q for "linear"
    below = jnp.clip(jnp.floor(virtual), 0, n - 1).astype(jnp.int32)
    above = jnp.clip(below + 1, 0, n - 1)
    t = virtual - below
    a, b = x[below], x[above]
    diff = b - a
    return jnp.where(t >= 0.5, b - diff * (1.0 - t), a + diff * t)  # numpy's _lerp


@jax.jit
def _pvalues(q_obs: Array, signal: Array, signal_ok: Array, background: Array, background_ok: Array) -> tuple:
    """Observed ``(CLsb, CLb, CLs)`` and the expected ``(CLsb, CLb, CLs)`` bands ``(5,)`` from the toys."""
    n_sb, n_b = jnp.sum(signal_ok), jnp.sum(background_ok)
    sorted_sb = jnp.sort(jnp.where(signal_ok, signal, jnp.inf))
    sorted_b = jnp.sort(jnp.where(background_ok, background, jnp.inf))

    def pvalues(value: Array) -> tuple[Array, Array, Array]:
        clsb, clb = _tail(sorted_sb, n_sb, value), _tail(sorted_b, n_b, value)
        return clsb, clb, clsb / clb

    observed = pvalues(q_obs)
    at_background = jax.vmap(pvalues)(jnp.where(background_ok, background, 0.0))
    expected = tuple(_percentiles(p, background_ok) for p in at_background)
    return observed, expected


def _key(key: Any) -> Array:
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key))
    if isinstance(key, (jax.Array, np.ndarray)):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
            return key
        if key.dtype == jnp.uint32 and key.shape == (2,):
            return jax.random.wrap_key_data(key)
    raise ConfigError(
        f"key must be an int seed or one jax.random key (jax.random.key(0)), not {type(key).__name__} {key!r:.60}"
    )


def _check(ntoys: Any, batch_size: Any, max_failed_fraction: Any) -> None:
    for name, value in (("ntoys", ntoys), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, not {value!r}")
    if not isinstance(max_failed_fraction, (int, float)) or not 0.0 <= max_failed_fraction < 1.0:
        raise ConfigError(f"max_failed_fraction must be a number in [0, 1), not {max_failed_fraction!r}")


def _run_toys(
    run: Any, pars: Array, key: Array, ntoys: int, batch_size: int, desc: str, progress: bool
) -> ToyDistribution:
    q, ok = [], []
    batch = min(batch_size, ntoys)
    with tqdm(total=ntoys, desc=desc, unit="toy", leave=False, disable=not progress, file=sys.stderr) as bar:
        for begin in range(0, ntoys, batch):
            indices = jnp.arange(begin, begin + batch, dtype=jnp.int32)
            q_batch, ok_batch = run(pars, key, indices)
            count = min(batch, ntoys - begin)
            q.append(np.asarray(q_batch)[:count])
            ok.append(np.asarray(ok_batch)[:count])
            bar.update(count)
    return ToyDistribution(jnp.asarray(np.concatenate(q)), jnp.asarray(np.concatenate(ok)), pars)


def _raise(result: ToyHypotestResult, poi_test: float, ntoys: int, max_failed_fraction: float) -> None:
    """Raise :class:`FitError` naming why ``result`` is not valid."""
    where = f"toy-based hypotest at POI {poi_test:g}"
    for i, name in enumerate(TOY_FIT_NAMES):
        if not bool(result.fits.converged[i]):
            raise FitError(
                f"{where}: the {name.replace('_', ' ')} did not converge (NLL {float(result.fits.nll[i]):.6g} after "
                f"{int(result.fits.n_iterations[i])} steps); pass n_steps=... or on_failure='flag'",
                key=name,
            )
    for name, toys in (("signal+background", result.signal), ("background", result.background)):
        if toys.n_failed > max_failed_fraction * ntoys or toys.n_failed == ntoys:
            raise FitError(
                f"{where}: the fits of {toys.n_failed} of {ntoys} {name} toys did not converge, more than "
                f"max_failed_fraction={max_failed_fraction:g} allows; pass n_steps=..., max_failed_fraction=... "
                "or on_failure='flag'",
                key=f"{name} toys",
            )


def toy_hypotest(
    model: Model,
    data: Array,
    poi_test: Array,
    init: Array,
    bounds: Array,
    free: Array,
    test_stat: str,
    n_steps: int,
    on_failure: str,
    *,
    ntoys: int = 2000,
    key: Any = 0,
    batch_size: int = 20,
    track_progress: bool = True,
    max_failed_fraction: float = 0.0,
) -> ToyHypotestResult:
    """Toy-based CLs (``qtilde``, ``q``) or ``p0`` (``q0``); called by ``hypotest(..., calctype="toybased")``.

    The positional arguments are ``hypotest``'s, already checked: ``data``
    ``(nmaindata + nauxdata,)``, ``poi_test`` ``()``, ``init`` ``(npars,)``,
    ``bounds`` ``(npars, 2)``, ``free`` ``(npars,)`` (``~fixed_params``).

    Args:
        ntoys: toys per hypothesis (pyhf's default 2000).
        key: a ``jax.random`` key or an int seed; the same key gives the same result.
        batch_size: toys generated and fitted per compiled call (bounds the memory). On a CPU,
            ``vmap``-ed fits run until the slowest converges: 20 is near the fastest for
            small models and for ~100 parameters 5 is faster still; on a GPU use thousands.
        track_progress: show pyhf's two progress bars (stderr) while the toys run.
        max_failed_fraction: the largest fraction of either set of toys whose fits may fail to
            converge (they are left out); above it the result is not valid.

    Returns:
        :class:`ToyHypotestResult`. Eager only (a Python loop over batches).
    """
    _check(ntoys, batch_size, max_failed_fraction)
    key = _key(key)
    if any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves((model, data, poi_test, init, bounds))):
        raise ConfigError(
            "calctype='toybased' runs eagerly (a loop over batches of toys); call it outside jax.jit/vmap"
        )
    poi_test = jnp.zeros_like(poi_test) if test_stat == "q0" else poi_test
    background_mu = jnp.asarray(1.0 if test_stat == "q0" else 0.0, dtype=init.dtype)
    lower, upper = bounds[:, 0], bounds[:, 1]
    fits, q_obs = _data_fits(model, data, poi_test, background_mu, init, lower, upper, free, test_stat, n_steps)

    run = partial(_toy_batch, model, poi_test=poi_test, init=init, lower=lower, upper=upper, free=free)
    run = partial(run, test_stat=test_stat, n_steps=n_steps)
    signal_key, background_key = jax.random.split(key)
    signal = _run_toys(run, fits.bestfit[1], signal_key, ntoys, batch_size, "Signal-like", track_progress)
    background = _run_toys(run, fits.bestfit[2], background_key, ntoys, batch_size, "Background-like", track_progress)

    (clsb, clb, cls), (clsb_exp, clb_exp, cls_exp) = _pvalues(
        q_obs, signal.q, signal.converged, background.q, background.converged
    )
    allowed = math.floor(max_failed_fraction * ntoys)
    valid = bool(jnp.all(fits.converged)) and all(
        t.n_failed <= allowed and t.n_failed < ntoys for t in (signal, background)
    )
    first, band = (clsb, clsb_exp) if test_stat == "q0" else (cls, cls_exp)
    values = tuple(v if valid else jnp.full_like(v, jnp.nan) for v in (first, band, clsb, clb, clsb_exp, clb_exp))
    result = ToyHypotestResult(*values, q_obs, q_obs, signal, background, fits, jnp.asarray(valid))
    if not valid and on_failure == "raise":
        _raise(result, float(poi_test), ntoys, max_failed_fraction)
    return result
