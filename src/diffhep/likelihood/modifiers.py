"""HistFactory modifiers: their parameter sets and how they change a sample's yields.

Supported types (pyhf semantics and defaults): ``histosys`` (interpolation
code 4p by default, or code0/code2), ``lumi``, ``normfactor``, ``normsys``
(code 4 by default, or code1), ``shapefactor``, ``shapesys`` and ``staterror``;
the codes are in :mod:`~diffhep.likelihood.interpolation`. ``MODIFIER_ORDER`` is
pyhf's order of modifier types, which fixes the order of parameter sets in the
parameter vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.likelihood.interpolation import DEFAULT_CODES, HISTOSYS_CODES, NORMSYS_CODES, InterpCodes
from diffhep.likelihood.layout import Layout
from diffhep.likelihood.parameters import ConstraintData, ParamSet

__all__ = [
    "MODIFIER_ORDER",
    "ModRef",
    "Entry",
    "default_paramset",
    "staterror_constraint",
    "shapesys_constraint",
    "expected_rates",
]

#: pyhf's ``histfactory_set`` order; parameter sets are grouped in this order.
MODIFIER_ORDER = ("histosys", "lumi", "normfactor", "normsys", "shapefactor", "shapesys", "staterror")


class ModRef(NamedTuple):
    """One modifier on one sample in one channel (static).

    Attributes:
        type: modifier type, one of ``MODIFIER_ORDER``.
        name: modifier (parameter set) name.
        start: first index of the parameters it reads in the parameter vector.
        stop: one past the last index (``start + 1`` for scalar modifiers,
            ``start + bins`` for per-bin ones).
    """

    type: str
    name: str
    start: int
    stop: int


class Entry(NamedTuple):
    """One sample in one channel (static).

    Attributes:
        channel: index of the channel in the model's (sorted) channel list.
        sample: sample name.
        mods: its modifiers, sorted by ``(name, type)`` as pyhf does.
    """

    channel: int
    sample: str
    mods: tuple[ModRef, ...]


def default_paramset(mtype: str, name: str, nbins: int) -> ParamSet:
    """Return pyhf's default parameter set for a modifier of type ``mtype``.

    Args:
        mtype: modifier type.
        name: modifier name.
        nbins: number of parameters for per-bin modifiers (``shapefactor``,
            ``shapesys``, ``staterror``); ignored for scalar ones.

    ``lumi`` has no defaults: its inits, bounds, auxdata and sigmas come from the
    spec's ``parameters`` list. ``shapesys``/``staterror`` ``fixed`` flags are
    refined from the yields by the caller.
    """
    if mtype in ("histosys", "normsys"):
        return ParamSet(name, 1, True, (0.0,), ((-5.0, 5.0),), (False,), "normal")
    if mtype == "lumi":
        return ParamSet(name, 1, True, (), (), (False,), "normal")
    if mtype == "normfactor":
        return ParamSet(name, 1, True, (1.0,), ((0.0, 10.0),), (False,), None)
    if mtype == "shapefactor":
        return ParamSet(name, nbins, False, (1.0,) * nbins, ((0.0, 10.0),) * nbins, (False,) * nbins, None)
    if mtype == "shapesys":
        return ParamSet(name, nbins, False, (1.0,) * nbins, ((1e-10, 10.0),) * nbins, (False,) * nbins, "poisson")
    if mtype == "staterror":
        return ParamSet(name, nbins, False, (1.0,) * nbins, ((1e-10, 10.0),) * nbins, (False,) * nbins, "normal")
    raise ValueError(mtype)  # unreachable: types are checked while parsing


def _xp(*arrays: Any) -> Any:
    """NumPy when every argument is a NumPy array (no JAX dispatch while building), else ``jax.numpy``."""
    return np if all(isinstance(a, np.ndarray) for a in arrays) else jnp


def _safe_divide(num: Array, den: Array) -> Array:
    """``num / den`` where ``den > 0``, else 0, with finite gradients."""
    xp = _xp(num, den)
    ok = den > 0
    return xp.where(ok, num / xp.where(ok, den, 1.0), 0.0)


def staterror_constraint(nominals: Sequence[Array], uncertainties: Sequence[Array]) -> tuple[ConstraintData, Array]:
    """Normal constraint of one channel's ``staterror`` gammas (pyhf semantics).

    Args:
        nominals: nominal yields of every sample carrying the modifier in this
            channel, each shape ``(bins,)`` (events).
        uncertainties: their absolute statistical uncertainties (the modifier
            ``data``), each shape ``(bins,)`` (events).

    Returns:
        ``(ConstraintData(auxdata=1, width=sigma), zero)`` with
        ``sigma_b = sqrt(sum_s unc_sb**2) / sum_s nom_sb`` and ``zero`` a boolean
        ``(bins,)`` mask of bins where ``sigma_b == 0`` (pyhf fixes those gammas
        and sets their sigma to 1).
    """
    xp = _xp(*nominals, *uncertainties)
    total = sum(nominals[1:], nominals[0])
    relvar = sum(_safe_divide(u, total) ** 2 for u in uncertainties)
    zero = relvar <= 0
    sigma = xp.where(zero, 1.0, xp.sqrt(xp.where(zero, 1.0, relvar)))
    return ConstraintData(auxdata=xp.ones_like(sigma), width=sigma), zero


def shapesys_constraint(nominal: Array, uncertainty: Array) -> tuple[ConstraintData, Array]:
    """Poisson constraint of a ``shapesys`` modifier (pyhf semantics).

    Args:
        nominal: nominal yields of the sample, shape ``(bins,)`` (events).
        uncertainty: absolute uncertainties (modifier ``data``), shape ``(bins,)`` (events).

    Returns:
        ``(ConstraintData(auxdata=tau, width=tau), invalid)`` with
        ``tau_b = (nom_b / unc_b)**2`` where both are positive, else 1, and
        ``invalid`` the boolean ``(bins,)`` mask of the other bins (fixed in pyhf).
    """
    xp = _xp(nominal, uncertainty)
    valid = (nominal > 0) & (uncertainty > 0)
    with np.errstate(over="ignore", under="ignore"):  # a tau of 0 or inf is refused by parse_spec, by name
        tau = xp.where(valid, _safe_divide(nominal, uncertainty) ** 2, 1.0)
    return ConstraintData(auxdata=tau, width=tau), ~valid


def expected_rates(
    pars: Array,
    layout: Layout,
    nominal: Array,
    norm_hi: Array,
    norm_lo: Array,
    hist_lo: Array,
    hist_hi: Array,
    codes: InterpCodes = DEFAULT_CODES,
) -> Array:
    """Expected yields of every sample in every channel, in one vectorised pass.

    Args:
        pars: the full parameter vector, shape ``(npars,)``.
        layout: the model's static index tables (:mod:`~diffhep.likelihood.layout`).
        nominal: nominal yields, shape ``(entries, B)`` (events).
        norm_hi: ``normsys`` ratios at +1 sigma, shape ``(entries, Kn)``.
        norm_lo: ``normsys`` ratios at -1 sigma, shape ``(entries, Kn)``.
        hist_lo: ``histosys`` yields at -1 sigma, shape ``(entries, Kh, B)`` (events).
        hist_hi: ``histosys`` yields at +1 sigma, shape ``(entries, Kh, B)`` (events).
        codes: the ``normsys`` and ``histosys`` interpolation codes (static).

    Returns:
        ``(nominal + sum histosys shifts) * prod multiplicative factors``, shape
        ``(entries, B)`` (events), as pyhf combines modifiers.
    """
    extended = jnp.concatenate([pars, jnp.ones((1,), dtype=pars.dtype)])
    rate = nominal
    if layout.hist_param.shape[1]:
        alpha = pars[layout.hist_param][:, :, None]  # (E, Kh, 1)
        shift = HISTOSYS_CODES[codes.histosys].function
        rate = rate + jnp.sum(shift(alpha, hist_lo, nominal[:, None, :], hist_hi), axis=1)
    factor = jnp.ones(nominal.shape[:1], dtype=rate.dtype)
    if layout.norm_param.shape[1]:
        norm = NORMSYS_CODES[codes.normsys].function
        factor = factor * jnp.prod(norm(pars[layout.norm_param], norm_hi, norm_lo), axis=1)
    if layout.factor_param.shape[1]:
        factor = factor * jnp.prod(extended[layout.factor_param], axis=1)
    rate = rate * factor[:, None]
    if layout.bin_param.shape[1]:
        rate = rate * jnp.prod(extended[layout.bin_param], axis=1)
    return rate
