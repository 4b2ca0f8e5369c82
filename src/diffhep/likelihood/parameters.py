"""Parameter sets of a HistFactory model: static bookkeeping plus numeric constraint data.

A :class:`ParamSet` is the static part (name, size, inits, bounds, fixed flags,
constraint type) — plain Python, hashable, safe to use as ``jit`` static data.
The numeric part of a constrained set (auxiliary data and Normal widths or
Poisson scale factors) can depend on sample yields and lives in
:class:`ConstraintData`, which may hold JAX tracers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.errors import ConfigError

__all__ = ["ParamSet", "ConstraintData", "apply_user_config", "as_float_array"]

Bounds = tuple[tuple[float, float], ...]


class ParamSet(NamedTuple):
    """Static description of one named parameter set (pyhf's ``paramset``).

    Attributes:
        name: modifier/parameter name, e.g. ``"mu"`` or ``"staterror_mumu"``.
        n: number of parameters in the set.
        is_scalar: ``True`` for one-parameter sets named without ``[i]``.
        inits: suggested initial values, length ``n``.
        bounds: ``(low, high)`` per parameter, length ``n``.
        fixed: whether each parameter is held fixed by default, length ``n``.
        constraint: ``"normal"``, ``"poisson"`` or ``None`` (unconstrained).
    """

    name: str
    n: int
    is_scalar: bool
    inits: tuple[float, ...]
    bounds: Bounds
    fixed: tuple[bool, ...]
    constraint: str | None


class ConstraintData(NamedTuple):
    """Numeric data of one constrained parameter set.

    Attributes:
        auxdata: auxiliary measurements, shape ``(n,)``.
        width: Normal sigmas (``"normal"``) or Poisson scale factors
            (``"poisson"``; the constraint rate is ``factor * gamma``), shape ``(n,)``.
    """

    auxdata: Array
    width: Array


_USER_KEYS = ("inits", "bounds", "fixed", "auxdata", "sigmas", "factors")


def apply_user_config(
    pset: ParamSet,
    data: ConstraintData | None,
    user: Mapping[str, Any],
) -> tuple[ParamSet, ConstraintData | None]:
    """Override a parameter set with a measurement's ``parameters`` entry (pyhf semantics).

    Args:
        pset: the modifier-derived parameter set.
        data: its numeric constraint data (``None`` if unconstrained or still unknown).
        user: one entry of ``spec["parameters"]``, e.g.
            ``{"name": "lumi", "auxdata": [1.0], "sigmas": [0.02], "bounds": [[0.5, 1.5]]}``.

    Returns:
        The updated ``(pset, data)``.
    """
    unknown = sorted(set(user) - set(_USER_KEYS) - {"name"})
    if unknown:
        raise ConfigError(
            f"parameter configuration for {pset.name!r} has unknown keys {unknown}; valid keys are {list(_USER_KEYS)}"
        )
    for key in user:
        if key == "name":
            continue
        if key == "sigmas" and pset.constraint != "normal":
            raise ConfigError(f"parameter {pset.name!r} is not Normal-constrained and has no 'sigmas'")
        if key in ("auxdata", "factors") and pset.constraint is None:
            raise ConfigError(f"parameter {pset.name!r} is unconstrained and has no {key!r}")
        if key == "factors" and pset.constraint != "poisson":
            raise ConfigError(f"parameter {pset.name!r} is not Poisson-constrained and has no 'factors'")
        value = user[key]
        if key != "fixed" or not isinstance(value, bool):
            _check_length(pset, key, value)
        _check_values(pset, key, value)
    fixed = user.get("fixed", pset.fixed)
    if isinstance(fixed, bool):
        fixed = (fixed,) * pset.n
    pset = pset._replace(
        inits=tuple(float(v) for v in user.get("inits", pset.inits)),
        bounds=tuple((float(lo), float(hi)) for lo, hi in user.get("bounds", pset.bounds)),
        fixed=tuple(bool(f) for f in fixed),
    )
    if pset.constraint is not None:
        aux = user.get("auxdata")
        width = user.get("sigmas", user.get("factors"))
        if data is None and (aux is None or width is None):
            raise ConfigError(
                f"parameter {pset.name!r} needs 'auxdata' and 'sigmas' in the spec's "
                f"'parameters' list, e.g. {{'name': {pset.name!r}, 'auxdata': [1.0], "
                f"'sigmas': [0.02], 'inits': [1.0], 'bounds': [[0.5, 1.5]]}}"
            )
        data = ConstraintData(
            auxdata=as_float_array(aux) if aux is not None else data.auxdata,
            width=as_float_array(width) if width is not None else data.width,
        )
    if len(pset.inits) != pset.n or len(pset.bounds) != pset.n:
        raise ConfigError(f"parameter {pset.name!r} needs 'inits' and 'bounds' in the spec's 'parameters' list")
    return pset, data


def as_float_array(value: Any) -> Array:
    """Return ``value`` as a floating JAX array, keeping JAX arrays (and tracers) as they are.

    Lists and NumPy arrays go through ``np.float64`` so that the result is float64 when
    ``jax_enable_x64`` is on and float32 otherwise, without dtype warnings.
    """
    if isinstance(value, jax.Array):
        return value if jnp.issubdtype(value.dtype, jnp.floating) else value.astype(jnp.result_type(float))
    return jnp.asarray(np.asarray(value, dtype=np.float64))


def _check_values(pset: ParamSet, key: str, value: Any) -> None:
    """``bounds`` are ``[low, high]`` pairs; ``sigmas`` and ``factors`` are > 0 (pyhf's logpdf is NaN otherwise).

    Traced widths are not checked.
    """
    if key == "bounds" and any(not isinstance(pair, Sequence) or len(pair) != 2 for pair in value):
        raise ConfigError(
            f"parameter configuration 'bounds' for {pset.name!r} is {value!r}; expected one [low, high] pair "
            "per parameter, e.g. [[0.5, 1.5]]"
        )
    if key in ("sigmas", "factors") and not isinstance(value, jax.core.Tracer):
        try:
            widths = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):  # not numbers: the schema says so
            return
        if not (widths > 0).all():
            raise ConfigError(
                f"parameter configuration {key!r} for {pset.name!r} is {np.asarray(value).tolist()}; "
                "every value must be > 0 (a constraint's width)"
            )


def _check_length(pset: ParamSet, key: str, value: Sequence[Any]) -> None:
    if len(value) != pset.n:
        raise ConfigError(
            f"parameter configuration {key!r} for {pset.name!r} has {len(value)} values, expected {pset.n}"
        )
