"""Parse a pyhf model spec into static structure and numeric leaves.

The parameter order reproduces pyhf 0.7: parameter sets are grouped by modifier
type in ``MODIFIER_ORDER``; within a type, names appear in the order they are
first met walking channels (sorted) x samples (sorted) x modifiers (sorted by
``(name, type)``), except ``staterror`` whose sets are sorted by name. A name
used by two types (e.g. ``normsys`` and ``histosys``) is one shared set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.errors import ConfigError, closest
from diffhep.likelihood.modifiers import (
    MODIFIER_ORDER,
    Entry,
    ModRef,
    default_paramset,
    shapesys_constraint,
    staterror_constraint,
)
from diffhep.likelihood.parameters import ConstraintData, ParamSet, apply_user_config, as_float_array

__all__ = ["Structure", "parse_spec"]

_PER_BIN = ("shapefactor", "shapesys", "staterror")


class Structure(NamedTuple):
    """Static (hashable) structure of a model.

    Attributes:
        channels: channel names, sorted (pyhf order).
        nbins: bins per channel, aligned with ``channels``.
        samples: all sample names, sorted.
        entries: one :class:`Entry` per sample present in a channel.
        params: parameter sets in parameter-vector order.
        starts: first index of each parameter set.
        poi_name: name of the parameter of interest, or ``None``.
        poi_index: its index in the parameter vector, or ``None``.
    """

    channels: tuple[str, ...]
    nbins: tuple[int, ...]
    samples: tuple[str, ...]
    entries: tuple[Entry, ...]
    params: tuple[ParamSet, ...]
    starts: tuple[int, ...]
    poi_name: str | None
    poi_index: int | None


class _Raw(NamedTuple):
    channel: str
    sample: str
    nominal: Array
    mods: dict[tuple[str, str], Any]  # (name, type) -> modifier data


def _concrete_bools(mask: Array) -> tuple[bool, ...] | None:
    """The values of a boolean array, or ``None`` if it is traced."""
    try:
        return tuple(bool(b) for b in np.asarray(mask))
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _check_tau(tau: Array, invalid: Array, name: str, user: _Raw) -> None:
    """Refuse a ``shapesys`` whose ``tau = (nominal / uncertainty)**2`` is 0 or infinite in a float.

    pyhf fails with an OverflowError there; the constraint would be NaN or ignored.
    """
    if isinstance(tau, jax.core.Tracer) or isinstance(invalid, jax.core.Tracer):
        return
    bad = np.flatnonzero(~np.asarray(invalid) & ~((np.asarray(tau) > 0) & np.isfinite(np.asarray(tau))))
    if bad.size:
        i = int(bad[0])
        raise ConfigError(
            f"shapesys {name!r} of sample {user.sample!r} in channel {user.channel!r} bin {i}: "
            f"yield / uncertainty = {float(np.asarray(user.nominal)[i])} / {float(np.asarray(user.mods[(name, 'shapesys')])[i])} "
            "is beyond the float range when squared; expected a ratio between 1e-154 and 1e154"
        )


def _check_values(arr: Array, where: str, *, nonnegative: bool, positive: bool = False) -> None:
    """Raise :class:`ConfigError` naming the first bin of ``arr`` that is not finite (or negative).

    Traced values are not checked (see :func:`~diffhep.likelihood.model.build_model`).
    """
    if isinstance(arr, jax.core.Tracer):
        return
    scalar = np.ndim(arr) == 0
    values = np.atleast_1d(np.asarray(arr, dtype=np.float64))
    finite = np.isfinite(values)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        at = "" if scalar else f" bin {i}"
        raise ConfigError(f"{where}{at} is {values[i]}; every value must be finite (fix the input)")
    if positive and not (values > 0).all():
        i = int(np.flatnonzero(values <= 0)[0])
        raise ConfigError(f"{where} is {values[i]}; normsys hi/lo are ratios to the nominal yield and must be > 0")
    if nonnegative and not (values >= 0).all():
        i = int(np.flatnonzero(values < 0)[0])
        raise ConfigError(
            f"{where} bin {i} is {values[i]}; yields must be >= 0 (fix the input histogram, "
            "or pass check_yields=False to accept negative yields)"
        )


def _concat(parts: list[Any]) -> Any:
    """Concatenate 1-d arrays with NumPy when all are NumPy arrays, else with ``jax.numpy``."""
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)
    return jnp.concatenate([jnp.asarray(p) for p in parts])


def _as_array(value: Any) -> Any:
    """JAX arrays (and tracers) as floating JAX arrays; anything else as a float64 NumPy array (fast)."""
    if isinstance(value, jax.Array):
        return as_float_array(value)
    return np.asarray(value, dtype=np.float64)


def _vector(value: Any, nbins: int, where: str, *, nonnegative: bool = False) -> Array:
    try:
        arr = _as_array(value)
    except (TypeError, ValueError, OverflowError) as err:  # OverflowError: an integer beyond the float range
        raise ConfigError(f"{where} must be a list of {nbins} numbers ({err})") from None
    if arr.shape != (nbins,):
        raise ConfigError(f"{where} has shape {tuple(arr.shape)}, expected ({nbins},) to match the channel's bins")
    _check_values(arr, where, nonnegative=nonnegative)
    return arr


def _read_channels(spec: Mapping[str, Any], check_yields: bool) -> tuple[list[str], dict[str, int], list[_Raw]]:
    channels = spec.get("channels") if isinstance(spec, Mapping) else None
    if not channels:
        raise ConfigError("spec has no 'channels'; expected {'channels': [{'name': ..., 'samples': [...]}]}")
    by_name: dict[str, Any] = {}
    for ch in channels:
        name = ch.get("name")
        if name in by_name:
            raise ConfigError(f"channel {name!r} appears twice in the spec; channel names must be unique")
        if not ch.get("samples"):
            raise ConfigError(f"channel {name!r} has no samples")
        by_name[name] = ch
    names = sorted(by_name)
    nbins = {c: len(by_name[c]["samples"][0]["data"]) for c in names}
    raws: list[_Raw] = []
    for c in names:
        seen: set[str] = set()
        for smp in by_name[c]["samples"]:
            s = smp.get("name")
            if s in seen:
                raise ConfigError(f"sample {s!r} appears twice in channel {c!r}")
            seen.add(s)
            nominal = _vector(smp.get("data"), nbins[c], f"channel {c!r} sample {s!r} data", nonnegative=check_yields)
            mods: dict[tuple[str, str], Any] = {}
            for mod in smp.get("modifiers", []):
                mname, mtype = mod.get("name"), mod.get("type")
                where = f"channel {c!r} sample {s!r} modifier {mname!r}"
                if mtype not in MODIFIER_ORDER:
                    raise ConfigError(f"{where} has unsupported type {mtype!r}{closest(str(mtype), MODIFIER_ORDER)}")
                if (mname, mtype) in mods:
                    raise ConfigError(f"{where} of type {mtype!r} appears twice on the sample")
                mods[(mname, mtype)] = _mod_data(mtype, mod.get("data"), nbins[c], where, check_yields)
            raws.append(_Raw(c, s, nominal, mods))
    raws.sort(key=lambda r: (names.index(r.channel), r.sample))
    return names, nbins, raws


def _mod_data(mtype: str, data: Any, nbins: int, where: str, check_yields: bool) -> Any:
    if mtype == "normsys":
        if not isinstance(data, Mapping) or "hi" not in data or "lo" not in data:
            raise ConfigError(f"{where} (normsys) needs data {{'hi': float, 'lo': float}}, got {data!r}")
        try:
            hi, lo = _as_array(data["hi"]), _as_array(data["lo"])
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where} (normsys) hi and lo must be numbers ({err})") from None
        _check_values(hi, f"{where} (normsys) hi", nonnegative=False, positive=True)
        _check_values(lo, f"{where} (normsys) lo", nonnegative=False, positive=True)
        return (hi, lo)
    if mtype == "histosys":
        if not isinstance(data, Mapping) or "hi_data" not in data or "lo_data" not in data:
            raise ConfigError(f"{where} (histosys) needs data {{'hi_data': [...], 'lo_data': [...]}}")
        return (
            _vector(data["lo_data"], nbins, f"{where} lo_data", nonnegative=check_yields),
            _vector(data["hi_data"], nbins, f"{where} hi_data", nonnegative=check_yields),
        )
    if mtype in ("staterror", "shapesys"):
        return _vector(data, nbins, f"{where} data", nonnegative=True)
    return None


def _param_order(names: list[str], raws: list[_Raw]) -> list[tuple[str, str]]:
    """``(name, type)`` of each parameter set's first definition, in pyhf order."""
    all_keys = sorted({k for r in raws for k in r.mods})
    first: dict[str, list[str]] = {t: [] for t in MODIFIER_ORDER}
    for r in raws:  # already in (channel, sample) order
        for name, mtype in all_keys:
            if (name, mtype) in r.mods and name not in first[mtype]:
                first[mtype].append(name)
    first["staterror"] = sorted(first["staterror"])
    return [(name, t) for t in MODIFIER_ORDER for name in first[t]]


def parse_spec(
    spec: Mapping[str, Any], *, poi_name: str | None, check_yields: bool = True
) -> tuple[Structure, tuple[tuple[Array, ...], tuple[Any, ...], tuple[ConstraintData | None, ...]]]:
    """Split ``spec`` into a :class:`Structure` and the numeric leaves of a model.

    Args:
        spec: the model spec.
        poi_name: name of the parameter of interest, or ``None``.
        check_yields: reject negative sample and ``histosys`` yields (concrete
            numbers only; non-finite numbers are always rejected).

    Returns:
        ``(structure, (nominal, moddata, constraints))`` as used by :class:`~diffhep.likelihood.model.Model`.
    """
    names, nbins, raws = _read_channels(spec, check_yields)
    order = _param_order(names, raws)

    # parameter sets and their constraint data, in order; shared names merged
    psets: dict[str, ParamSet] = {}
    cdata: dict[str, ConstraintData | None] = {}
    spans: dict[str, dict[str, int]] = {}  # per-bin set -> channel -> offset in the set
    for name, mtype in order:
        users = [r for r in raws if (name, mtype) in r.mods]
        span_channels = [c for c in names if any(r.channel == c for r in users)]
        if mtype == "staterror":
            offsets, n = {}, 0
            for c in span_channels:
                offsets[c], n = n, n + nbins[c]
        else:
            n = nbins[users[0].channel]
            offsets = {c: 0 for c in span_channels}
            if mtype in _PER_BIN and any(nbins[c] != n for c in span_channels):
                raise ConfigError(f"{mtype} modifier {name!r} is used in channels with different bin counts")
            if mtype == "shapesys" and len(users) > 1:
                raise ConfigError(f"shapesys modifier {name!r} is used on more than one sample; names must be unique")
        pset = default_paramset(mtype, name, n)
        data: ConstraintData | None = None
        if mtype in ("normsys", "histosys"):
            data = ConstraintData(np.zeros((1,)), np.ones((1,)))
        elif mtype == "staterror":
            parts = [
                staterror_constraint(
                    [r.nominal for r in users if r.channel == c],
                    [r.mods[(name, mtype)] for r in users if r.channel == c],
                )
                for c in span_channels
            ]
            data = ConstraintData(_concat([p[0].auxdata for p in parts]), _concat([p[0].width for p in parts]))
            fixed = _concrete_bools(_concat([p[1] for p in parts]))
            pset = pset._replace(fixed=fixed or pset.fixed)
        elif mtype == "shapesys":
            data, invalid = shapesys_constraint(users[0].nominal, users[0].mods[(name, mtype)])
            _check_tau(data.auxdata, invalid, name, users[0])
            pset = pset._replace(fixed=_concrete_bools(invalid) or pset.fixed)
        if name in psets:
            old = psets[name]
            if (old.n, old.is_scalar, old.inits, old.bounds, old.constraint) != (
                pset.n,
                pset.is_scalar,
                pset.inits,
                pset.bounds,
                pset.constraint,
            ):
                raise ConfigError(f"modifier name {name!r} is used by incompatible modifier types; use distinct names")
        else:
            psets[name], cdata[name] = pset, data
        spans[name] = offsets

    user_configs: dict[str, Mapping[str, Any]] = {}
    for entry in spec.get("parameters", []) or []:
        if entry.get("name") in user_configs:
            raise ConfigError(f"parameter {entry.get('name')!r} is configured twice in the spec's 'parameters'")
        user_configs[entry.get("name")] = entry
    for name in psets:
        if name in user_configs or psets[name].inits == ():
            psets[name], cdata[name] = apply_user_config(psets[name], cdata[name], user_configs.get(name, {}))

    params = tuple(psets.values())
    starts_list, start = [], 0
    for p in params:
        starts_list.append(start)
        start += p.n
    start_of = {p.name: s for p, s in zip(params, starts_list)}

    entries, nominal, moddata = [], [], []
    for r in raws:
        refs, datas = [], []
        for mname, mtype in sorted(r.mods):
            lo = start_of[mname] + spans[mname].get(r.channel, 0)
            hi = lo + (nbins[r.channel] if mtype in _PER_BIN else 1)
            refs.append(ModRef(mtype, mname, lo, hi))
            value = r.mods[(mname, mtype)]
            datas.append(value if isinstance(value, tuple) else ())
        entries.append(Entry(names.index(r.channel), r.sample, tuple(refs)))
        nominal.append(r.nominal)
        moddata.append(tuple(datas))

    poi_index = None
    if poi_name is not None:
        if poi_name not in psets:
            raise ConfigError(
                f"parameter of interest {poi_name!r} is not a parameter of the model{closest(poi_name, psets)}"
            )
        if psets[poi_name].n != 1:
            raise ConfigError(
                f"parameter of interest {poi_name!r} has {psets[poi_name].n} components; it must be scalar"
            )
        poi_index = start_of[poi_name]

    structure = Structure(
        channels=tuple(names),
        nbins=tuple(nbins[c] for c in names),
        samples=tuple(sorted({r.sample for r in raws})),
        entries=tuple(entries),
        params=params,
        starts=tuple(starts_list),
        poi_name=poi_name,
        poi_index=poi_index,
    )
    constraints = tuple(cdata[p.name] for p in params)
    return structure, (tuple(nominal), tuple(moddata), constraints)
