"""Maximum-likelihood fits by projected Newton steps, stopping at convergence.

The minimiser is pure JAX (a ``lax.while_loop`` with at most ``n_steps``
steps), so it runs under ``jax.jit`` and ``jax.vmap`` and inside
``jax.grad``-traced code when its inputs are ``stop_gradient``-ed. Derivatives
of the fitted parameters come from :mod:`diffhep.infer.implicit` (implicit
function theorem); derivatives of profiled likelihoods from the envelope
theorem (:mod:`diffhep.infer.significance`). Every step builds the full
Hessian from dense matrix products (:mod:`diffhep.infer.derivatives`: 1.3 ms
for the 126 parameters of the ATLAS 1Lbb workspace, where the per-slot
scatter of :mod:`diffhep.likelihood.hessian` took 0.47 s).

Each step: gradient ``g`` and Hessian ``H`` of the NLL; parameters that are
fixed, or sit on a bound with ``g`` pushing outwards, are frozen for the step;
the direction solves ``H d = -g`` by Cholesky where ``H`` is positive
definite (Newton), else uses the Fisher information instead of ``H`` (Fisher
scoring, as in non-convex regions far from the minimum), else ``H + lambda I``
(Levenberg-Marquardt), so it always descends; a search over step lengths
``4, 2, 1, 1/2, ..., 2**-(n_halvings-1)`` (clipped to the bounds) keeps the
best point, never increasing the NLL (the lengths above 1 help where the NLL
flattens faster than its quadratic model, far from the minimum); where none lowers it, the next
step tries the lengths below the shortest tried (down to ``2**-34``). The loop stops when no step
lowers the NLL down to that length or the Newton decrement ``g.H^-1.g / 2`` (the predicted gain of a full
step) is below ``eps**0.75`` of the dtype (1.8e-12 in float64; that step is still taken).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.errors import ConfigError
from diffhep.infer.derivatives import dense_nll_derivatives
from diffhep.infer.ratio import log_likelihood_ratio
from diffhep.likelihood.model import Model

__all__ = ["FitResult", "converged_gain", "fit", "fixed_poi_fit", "stop_gain"]


class FitResult(NamedTuple):
    """Result of :func:`fit`.

    Attributes:
        bestfit: fitted parameters, shape ``(npars,)``, in ``model.config`` order.
        nll: negative log-likelihood at ``bestfit``, shape ``()``
            (pyhf's ``twice_nll`` is ``2 * nll``).
        n_iterations: Newton steps taken, shape ``()`` (int32).
        converged: shape ``()`` (bool): the NLL and its derivatives are finite at
            ``bestfit`` and the predicted gain of a further full Newton step,
            ``g.H^-1.g / 2``, is below :func:`converged_gain` (NLL units).
            ``False`` when the step limit was reached first or the fit met a NaN.
        start: which start gave ``bestfit`` when several were tried (0 = the
            first: pyhf's), shape ``()`` (int32).
    """

    bestfit: Array
    nll: Array
    n_iterations: Array
    converged: Array
    start: Array


def _nll(model: Model, data: Array, pars: Array) -> Array:
    return -model.logpdf(pars, data)[0]


_SHIFTS = tuple(10.0**k for k in range(-12, 3))


def _cholesky(h: Array) -> tuple[Array, Array]:
    """Lower Cholesky factor of ``h`` and whether it succeeded (``h`` positive definite)."""
    chol = jnp.linalg.cholesky(h)
    return chol, jnp.all(jnp.isfinite(chol)) & jnp.all(jnp.diagonal(chol) > 0)


def _newton_direction(h: Array, fisher: Array, g: Array) -> Array:
    """A descent direction ``-M^-1 g`` with ``M`` positive definite.

    ``M`` is the Hessian ``h`` where it is positive definite (Newton), else the
    Fisher information ``fisher`` (Fisher scoring; positive definite when every
    free parameter is constrained or affects a bin), else ``h + lambda I`` with
    the smallest ``lambda = 10**k * max|h_ii|``, ``k = -12 .. 2``, that is
    (Levenberg-Marquardt), trying one Cholesky factorisation after the other.
    """
    scale = jnp.max(jnp.abs(jnp.diag(h))) + jnp.finfo(h.dtype).tiny
    eye = jnp.eye(h.shape[0], dtype=h.dtype)
    newton, newton_ok = _cholesky(h)
    # The second factorisation waits for the first (a data dependency that adds 0): with
    # jaxlib 0.10.2 a *batched* Cholesky (vmapped fits: hypotest's two starts, toys) splits
    # its batch over XLA's CPU thread pool and waits for the pieces; two independent ones
    # running at once can take every thread and wait for ever (seen on 2 cores, 1 call in ~25).
    after = jnp.where(jnp.isfinite(newton[0, 0]), newton[0, 0], 0.0)
    scoring, scoring_ok = _cholesky(fisher + 1e-12 * scale * eye + 0.0 * after)
    chol = jnp.where(newton_ok, newton, scoring)
    shifts = jnp.asarray(_SHIFTS, dtype=h.dtype) * scale

    def not_done(state: tuple[Array, Array, Array]) -> Array:
        i, _, ok = state
        return ~ok & (i < len(_SHIFTS))

    def next_shift(state: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
        i = state[0]
        return (i + 1, *_cholesky(h + shifts[i] * eye))

    start = (jnp.zeros((), dtype=jnp.int32), chol, newton_ok | scoring_ok)
    _, chol, _ = jax.lax.while_loop(not_done, next_shift, start)
    return -jax.scipy.linalg.cho_solve((chol, True), g)


def stop_gain(dtype: jnp.dtype) -> float:
    """The predicted gain below which a fit takes its last Newton step: ``eps**0.75`` (1.8e-12 in float64).

    Newton converges quadratically, so the step from such a point leaves a gain of
    order its square, below rounding. Asking for less (it was ``10 * eps``) made
    ill-conditioned fits creep: on the ATLAS 3L RJ workspace (Hessian eigenvalues
    from 0.06 to 2e11) the free fit met ``converged_gain`` after 10 steps and went on
    for 118 more, lowering the NLL by 1e-10 in rounding noise.
    """
    return float(np.finfo(dtype).eps ** 0.75)


def converged_gain(dtype: jnp.dtype) -> float:
    """The largest predicted NLL gain of a further Newton step at a converged fit.

    ``sqrt(eps)`` of the dtype: 1.5e-8 in float64, 3.5e-4 in float32 (the NLL
    differences are computed without cancellation, so they are good to a few
    ``eps`` of the differences themselves); ``q`` is then good to twice that.
    """
    return float(np.sqrt(np.finfo(dtype).eps))


class _State(NamedTuple):
    pars: Array
    step: Array
    done: Array
    gain: Array
    scale: Array  # of the step lengths: 1, or below the last ones tried after a step found nothing lower


#: A step that lowers nothing is retried at step lengths below the smallest tried, down to this one.
SMALLEST_STEP = 2.0**-34


@partial(jax.jit, static_argnames=("n_halvings",))
def _minimize(
    model: Model,
    data: Array,
    init: Array,
    lower: Array,
    upper: Array,
    free: Array,
    n_steps: int,
    n_halvings: int,
) -> FitResult:
    """Projected damped-Newton minimisation of the model NLL (see module docstring)."""

    def nll(p: Array) -> Array:
        return _nll(model, data, p)

    # step lengths: two expansions (where the quadratic model is too cautious), 1, then halvings
    ts = 2.0 ** jnp.arange(2, -n_halvings, -1, dtype=init.dtype)
    tolerance = stop_gain(init.dtype)

    def step(state: _State) -> _State:
        p = state.pars
        g, h, fisher = dense_nll_derivatives(model, p, data)
        at_lower = (p <= lower) & (g > 0)
        at_upper = (p >= upper) & (g < 0)
        active = free & ~at_lower & ~at_upper
        both = active[:, None] & active[None, :]
        inactive = jnp.diag(jnp.where(active, 0.0, 1.0))
        h = jnp.where(both, h, 0.0) + inactive
        h = 0.5 * (h + h.T)
        fisher = jnp.where(both, fisher, 0.0) + inactive
        g_active = jnp.where(active, g, 0.0)
        direction = jnp.where(active, _newton_direction(h, fisher, g_active), 0.0)
        decrement = -jnp.dot(g_active, direction)  # twice the predicted NLL decrease of a full step
        lengths = state.scale * ts
        candidates = jnp.clip(p[None, :] + lengths[:, None] * direction[None, :], lower, upper)
        candidates = jnp.where(free[None, :], candidates, p[None, :])
        # Compare candidates by their NLL *difference* to ``p``: absolute NLLs
        # are large, and in float32 their rounding noise would decide.
        values = -jax.vmap(lambda c: log_likelihood_ratio(model, data, c, p))(candidates)
        values = jnp.where(jnp.isfinite(values), values, jnp.inf)
        best = jnp.argmin(values)
        better = values[best] < 0.0
        new = jnp.where(better, candidates[best], p)
        # stop: no step lowers the NLL, or the full Newton step would gain < ~eps
        # gain: predicted NLL decrease of a full Newton step from ``p`` (convergence is judged on it)
        gain = jnp.where(jnp.isfinite(decrement), 0.5 * decrement, jnp.inf)
        # Nothing lower: the direction still descends (it is built to), so shorter steps than the
        # last tried lower the NLL unless the minimum is within the precision; retry them before
        # stopping (the background-only fit of the AGC template at Z0 ~ 220 needed 2**-20, its first
        # step found nothing down to 2**-11 and the fit stopped, unconverged: a NaN objective).
        smallest = lengths[-1]
        exhausted = smallest * 0.5 < SMALLEST_STEP
        done = (~better & exhausted) | (gain < tolerance)
        scale = jnp.where(better, jnp.ones_like(state.scale), 0.5 * smallest / ts[0])
        return _State(new, state.step + 1, done, gain, scale)

    def keep_going(state: _State) -> Array:
        return (state.step < n_steps) & ~state.done

    zero = jnp.zeros((), dtype=jnp.int32)
    state = _State(
        init, zero, jnp.zeros((), dtype=bool), jnp.asarray(jnp.inf, dtype=init.dtype), jnp.ones((), init.dtype)
    )
    final = jax.lax.while_loop(keep_going, step, state)
    p = final.pars
    value = nll(p)
    converged = jnp.isfinite(value) & jnp.all(jnp.isfinite(p)) & (final.gain < converged_gain(init.dtype))
    return FitResult(bestfit=p, nll=value, n_iterations=final.step, converged=converged, start=zero)


@partial(jax.jit, static_argnames=("n_halvings",))
def _minimize_from(
    model: Model,
    data: Array,
    starts: Array,
    lower: Array,
    upper: Array,
    free: Array,
    n_steps: int,
    n_halvings: int,
) -> FitResult:
    """:func:`_minimize` from each row of ``starts`` ``(n_starts, npars)``; the lowest finite NLL wins.

    A NLL that is not finite loses to any finite one; among converged fits the
    lowest NLL wins, a non-converged fit wins only if none converged.
    ``start`` says which row gave the result.
    """
    runs = jax.vmap(lambda p: _minimize(model, data, p, lower, upper, free, n_steps, n_halvings))(starts)
    # compare the candidates by NLL differences to the first (no cancellation of large NLLs)
    first = runs.bestfit[0]
    diffs = -jax.vmap(lambda c: log_likelihood_ratio(model, data, c, first))(runs.bestfit)
    diffs = jnp.where(jnp.isfinite(diffs) & jnp.isfinite(runs.nll), diffs, jnp.inf)
    best = jnp.where(jnp.any(runs.converged), jnp.argmin(jnp.where(runs.converged, diffs, jnp.inf)), jnp.argmin(diffs))
    picked = jax.tree_util.tree_map(lambda x: x[best], runs)
    return picked._replace(start=best.astype(jnp.int32))


def fit(
    model: Model,
    data: Array,
    *,
    init: Array | None = None,
    fixed: Sequence[bool] | Array | None = None,
    bounds: Array | None = None,
    fixed_values: Mapping[int, float | Array] | None = None,
    n_steps: int = 50,
    n_halvings: int = 12,
) -> FitResult:
    """Minimise ``-model.logpdf(pars, data)`` over the free parameters.

    Args:
        model: the likelihood.
        data: main counts followed by auxdata, shape ``(nmaindata + nauxdata,)``.
        init: starting parameters, shape ``(npars,)``, or several starts, shape
            ``(n_starts, npars)``: each is fitted and the lowest NLL of a
            converged fit is kept (``FitResult.start`` says which);
            default ``suggested_init()`` (where pyhf starts).
        fixed: boolean mask, shape ``(npars,)``, of parameters held at their
            initial value; default ``suggested_fixed()``.
        bounds: ``(npars, 2)`` lower/upper bounds; default ``suggested_bounds()``.
        fixed_values: parameter index -> value; these parameters are set to the
            value and held fixed (values may be traced).
        n_steps: the most Newton steps; the loop stops earlier at convergence. Not static: fits
            with different ``n_steps`` share one compiled program.
        n_halvings: number of step lengths up to 1 tried per step (static); lengths 2 and 4 are tried too.

    Returns:
        :class:`FitResult` with the best-fit parameters, the NLL there, the
        number of steps and whether the fit converged (check ``converged``:
        a fit that hit ``n_steps`` or a NaN returns its last point).
        Works under ``jax.jit``. Gradients of the result with respect to the
        data or model numbers are not meaningful; use the envelope theorem
        (``stop_gradient`` on ``bestfit`` and re-evaluate the likelihood).
    """
    config = model.config
    npars = config.npars
    init = config.suggested_init() if init is None else jnp.asarray(init, dtype=float)
    bounds = config.suggested_bounds() if bounds is None else jnp.asarray(bounds, dtype=float)
    fixed_mask = jnp.asarray(config.suggested_fixed() if fixed is None else fixed, dtype=bool)
    starts = init if init.ndim == 2 else jnp.atleast_1d(init)[None, :]
    if starts.shape[1:] != (npars,) or bounds.shape != (npars, 2) or fixed_mask.shape != (npars,):
        raise ConfigError(
            f"fit got init {tuple(init.shape)}, bounds {tuple(bounds.shape)}, fixed {tuple(fixed_mask.shape)}; "
            f"expected ({npars},) or (n_starts, {npars}), ({npars}, 2), ({npars},) for this model"
        )
    indices = list((fixed_values or {}).keys())
    for index in indices:
        if not 0 <= index < npars:
            raise ConfigError(f"fixed_values index {index} is out of range for a model with {npars} parameters")
    values = [(fixed_values or {})[i] for i in indices]
    values = jnp.asarray(values, dtype=init.dtype) if values else jnp.zeros((0,), dtype=init.dtype)
    return _fit(
        model,
        jnp.asarray(data),
        starts,
        bounds,
        fixed_mask,
        np.asarray(indices, dtype=np.int32),
        values,
        n_steps,
        n_halvings,
    )


@partial(jax.jit, static_argnames=("n_halvings",))
def _fit(
    model: Model,
    data: Array,
    init: Array,
    bounds: Array,
    fixed: Array,
    indices: Array,
    values: Array,
    n_steps: int,
    n_halvings: int,
) -> FitResult:
    """The compiled part of :func:`fit`: set the fixed values, clip the starts ``(n_starts, npars)``, minimise."""
    init = init.at[:, indices].set(values)
    free = ~fixed.at[indices].set(True)
    lower, upper = bounds[:, 0], bounds[:, 1]
    init = jnp.where(free, jnp.clip(init, lower, upper), init)
    if init.shape[0] == 1:
        return _minimize(model, data, init[0], lower, upper, free, n_steps, n_halvings)
    return _minimize_from(model, data, init, lower, upper, free, n_steps, n_halvings)


def fixed_poi_fit(
    model: Model,
    data: Array,
    poi_value: float | Array,
    *,
    init: Array | None = None,
    fixed: Sequence[bool] | Array | None = None,
    bounds: Array | None = None,
    n_steps: int = 50,
    n_halvings: int = 12,
) -> FitResult:
    """:func:`fit` with the parameter of interest held at ``poi_value``."""
    poi = model.config.poi_index
    if poi is None:
        raise ConfigError("fixed_poi_fit needs a model with a parameter of interest; build it with poi_name=...")
    return fit(
        model,
        data,
        init=init,
        fixed=fixed,
        bounds=bounds,
        fixed_values={poi: poi_value},
        n_steps=n_steps,
        n_halvings=n_halvings,
    )
