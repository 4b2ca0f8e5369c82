"""A HistFactory model evaluated with JAX, built from a pyhf spec in pure Python.

Structure (channel, sample and modifier names, parameter order, bin counts)
is static and parsed from the spec; numbers (sample ``data``, ``normsys``
``hi``/``lo``, ``histosys`` ``hi_data``/``lo_data``, ``staterror``/``shapesys``
uncertainties) may be JAX arrays, including tracers, and flow through to the
likelihood. Building a model is cheap (no pyhf call), so it can happen inside a
jitted or differentiated function::

    def significance(yields):
        model = build_model(make_spec("sr", yields, signal="signal", normsys={}))
        return expected_discovery_significance(model)

    jax.grad(significance)(yields)

:class:`Model` is a pytree (numbers are leaves, structure is static), so it can
also be passed into ``jax.jit``-compiled functions and ``jax.vmap``-ed over
(models built from stacked yields). Parameter names, order, inits, bounds,
fixed flags and auxdata match ``pyhf.Model(spec, poi_name=...)``; pyhf
workspaces go through :func:`diffhep.likelihood.from_workspace`.

The interpolation codes of ``normsys`` and ``histosys`` are part of the static
structure (:class:`~diffhep.likelihood.interpolation.InterpCodes`): pyhf's
defaults, code4 and code4p, unless ``modifier_settings`` says otherwise, with
pyhf's rule that settings replace the defaults as a whole (see
:func:`check_modifier_settings`).

Evaluation is vectorised: every sample and modifier is handled by a few array
operations on padded tables (:mod:`diffhep.likelihood.layout`), so the cost of
compiling and running a model barely grows with the number of samples and
modifiers. The methods (``logpdf``, ``expected_data``, ...) are compiled once
per model structure when called eagerly, and inlined under ``jax.jit``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import gammaln, xlogy
from jax.scipy.stats import norm

from diffhep.errors import ConfigError, closest
from diffhep.likelihood.config import ModelConfig
from diffhep.likelihood.interpolation import (
    DEFAULT_CODES,
    FALLBACK_CODES,
    HISTOSYS_CODES,
    NORMSYS_CODES,
    InterpCodes,
)
from diffhep.likelihood.layout import Layout, make_layout
from diffhep.likelihood.model_parse import Structure, parse_spec
from diffhep.likelihood.modifiers import expected_rates
from diffhep.likelihood.parameters import ConstraintData

__all__ = ["Model", "ModelConfig", "build_model", "check_modifier_settings", "poisson_logpdf"]


def poisson_logpdf(n: Array, lam: Array) -> Array:
    """Continuous Poisson log-density ``n log(lam) - lam - lnGamma(n + 1)`` (as pyhf), elementwise.

    ``0 log 0 = 0`` with a finite gradient: an empty bin (``n = lam = 0``)
    contributes 0 and ``d/dlam = -1`` (``jax``'s ``xlogy`` would give ``0 / 0``).
    """
    return xlogy(n, jnp.where(n > 0, lam, 1.0)) - lam - gammaln(n + 1.0)


class Numbers(NamedTuple):
    """The numeric leaves of a :class:`Model` (possibly JAX tracers), padded as in :mod:`~diffhep.likelihood.layout`.

    Attributes:
        nominal: nominal yields, shape ``(entries, B)`` (events; 0 past a channel's bins).
        norm_hi: ``normsys`` ``hi`` ratios, shape ``(entries, Kn)`` (1 where padded).
        norm_lo: ``normsys`` ``lo`` ratios, shape ``(entries, Kn)`` (1 where padded).
        hist_lo: ``histosys`` ``lo_data``, shape ``(entries, Kh, B)`` (events; nominal where padded).
        hist_hi: ``histosys`` ``hi_data``, shape ``(entries, Kh, B)`` (events; nominal where padded).
        auxdata: suggested auxiliary data, shape ``(nauxdata,)``.
        aux_width: Normal sigma or Poisson factor of each auxiliary measurement, shape ``(nauxdata,)``.
    """

    nominal: Array
    norm_hi: Array
    norm_lo: Array
    hist_lo: Array
    hist_hi: Array
    auxdata: Array
    aux_width: Array


class _Static:
    """The static half of a :class:`Model` pytree: structure, index tables and interpolation codes, with a cached hash."""

    __slots__ = ("structure", "layout", "interpcodes", "_hash")

    def __init__(self, structure: Structure, layout: Layout, interpcodes: InterpCodes = DEFAULT_CODES):
        self.structure = structure
        self.layout = layout
        self.interpcodes = interpcodes
        self._hash = hash((structure, layout, interpcodes))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (
            isinstance(other, _Static)
            and self._hash == other._hash
            and self.interpcodes == other.interpcodes
            and self.layout == other.layout
            and self.structure == other.structure
        )


@jax.tree_util.register_pytree_node_class
class Model:
    """A HistFactory likelihood; see the module docstring. Build it with :func:`build_model`.

    Attributes:
        structure: static :class:`~diffhep.likelihood.model_parse.Structure`.
        layout: static :class:`~diffhep.likelihood.layout.Layout` index tables.
        interpcodes: static :class:`~diffhep.likelihood.interpolation.InterpCodes`,
            the ``normsys`` and ``histosys`` interpolation codes.
        numbers: the numeric leaves, :class:`Numbers`.
    """

    def __init__(self, static: _Static, numbers: Numbers):
        self._static = static
        self.numbers = numbers

    @property
    def structure(self) -> Structure:
        return self._static.structure

    @property
    def layout(self) -> Layout:
        return self._static.layout

    @property
    def interpcodes(self) -> InterpCodes:
        return self._static.interpcodes

    def tree_flatten(self) -> tuple[tuple[Numbers], _Static]:
        return (self.numbers,), self._static

    @classmethod
    def tree_unflatten(cls, static: _Static, children: tuple[Numbers]) -> Model:
        return cls(static, children[0])

    @property
    def config(self) -> ModelConfig:
        """Parameter and bin bookkeeping, matching ``pyhf.Model(spec).config``."""
        return ModelConfig(self.structure, self.numbers.auxdata)

    # The public methods call module-level jitted functions: one compiled program
    # per model structure when called eagerly, inlined when called under jit.

    def expected_actualdata(self, pars: Array) -> Array:
        """Expected main-measurement counts, shape ``(nmaindata,)`` (events).

        Args:
            pars: parameters, shape ``(npars,)``.

        Channels are concatenated in pyhf's (alphabetical) channel order.
        """
        return _expected_actualdata(self, jnp.asarray(pars))

    def expected_auxdata(self, pars: Array) -> Array:
        """Expected auxiliary data, shape ``(nauxdata,)``.

        Normal-constrained sets give their parameter values, Poisson-constrained
        ones ``factor * gamma`` (as pyhf).
        """
        return _expected_auxdata(self, jnp.asarray(pars))

    def expected_data(self, pars: Array, include_auxdata: bool = True) -> Array:
        """Expected main counts followed (by default) by expected auxdata, shape ``(nmaindata [+ nauxdata],)``."""
        return _expected_data(self, jnp.asarray(pars), include_auxdata)

    def constraint_logpdf(self, auxdata: Array, pars: Array) -> Array:
        """Sum of the constraint log-densities, shape ``()``.

        Args:
            auxdata: auxiliary data, shape ``(nauxdata,)``.
            pars: parameters, shape ``(npars,)``.
        """
        return _constraint_logpdf(self, jnp.asarray(auxdata), jnp.asarray(pars))

    def main_logpdf(self, pars: Array, maindata: Array) -> Array:
        """Sum of the Poisson log-densities of the main counts, shape ``()``.

        Args:
            pars: parameters, shape ``(npars,)``.
            maindata: observed counts, shape ``(nmaindata,)`` (events).
        """
        return _main_logpdf(self, jnp.asarray(pars), jnp.asarray(maindata))

    def logpdf(self, pars: Array, data: Array) -> Array:
        """Full log-likelihood (main Poisson terms plus constraints), shape ``(1,)`` like pyhf.

        Args:
            pars: parameters, shape ``(npars,)``.
            data: main counts followed by auxdata, shape ``(nmaindata + nauxdata,)``.
        """
        return _logpdf(self, jnp.asarray(pars), jnp.asarray(data))


@jax.jit
def _expected_actualdata(model: Model, pars: Array) -> Array:
    lay, num = model.layout, model.numbers
    rates = expected_rates(
        pars, lay, num.nominal, num.norm_hi, num.norm_lo, num.hist_lo, num.hist_hi, model.interpcodes
    )
    totals = jax.ops.segment_sum(
        rates, lay.entry_channel, num_segments=len(model.structure.channels), indices_are_sorted=True
    )
    return totals.reshape(-1)[lay.main_index]


@jax.jit
def _expected_auxdata(model: Model, pars: Array) -> Array:
    lay = model.layout
    values = pars[lay.aux_param]
    if lay.poisson_aux.size:
        poisson = np.zeros(lay.aux_param.shape, dtype=bool)
        poisson[lay.poisson_aux] = True
        values = values * jnp.where(poisson, model.numbers.aux_width, 1.0)
    return values


@partial(jax.jit, static_argnums=2)
def _expected_data(model: Model, pars: Array, include_auxdata: bool) -> Array:
    main = _expected_actualdata(model, pars)
    return jnp.concatenate([main, _expected_auxdata(model, pars)]) if include_auxdata else main


@jax.jit
def _constraint_logpdf(model: Model, auxdata: Array, pars: Array) -> Array:
    lay, width = model.layout, model.numbers.aux_width
    values = pars[lay.aux_param]
    total = jnp.zeros((), dtype=jnp.result_type(pars.dtype, width.dtype))
    if lay.normal_aux.size:
        n = lay.normal_aux
        total = total + jnp.sum(norm.logpdf(auxdata[n], values[n], width[n]))
    if lay.poisson_aux.size:
        p = lay.poisson_aux
        total = total + jnp.sum(poisson_logpdf(auxdata[p], values[p] * width[p]))
    return total


@jax.jit
def _main_logpdf(model: Model, pars: Array, maindata: Array) -> Array:
    return jnp.sum(poisson_logpdf(maindata, _expected_actualdata(model, pars)))


@jax.jit
def _logpdf(model: Model, pars: Array, data: Array) -> Array:
    nmain = sum(model.structure.nbins)
    main = _main_logpdf(model, pars, data[:nmain])
    return jnp.reshape(main + _constraint_logpdf(model, data[nmain:], pars), (1,))


def _stack(values: list[Any], shape: tuple[int, ...]) -> Array:
    """Stack arrays (NumPy when all are concrete, JAX otherwise) into ``shape``."""
    if not values:
        return jnp.zeros(shape, dtype=jnp.result_type(float))
    if not any(isinstance(v, jax.core.Tracer) for v in values):
        return jnp.asarray(np.stack([np.asarray(v, dtype=np.float64) for v in values]).reshape(shape))
    dtype = jnp.result_type(*values)
    return jnp.stack([jnp.asarray(v, dtype=dtype) for v in values]).reshape(shape)


def _concat(values: list[Any]) -> Array:
    """Concatenate 1-d arrays (NumPy when all are concrete, JAX otherwise)."""
    if not values:
        return jnp.zeros((0,), dtype=jnp.result_type(float))
    if not any(isinstance(v, jax.core.Tracer) for v in values):
        return jnp.asarray(np.concatenate([np.asarray(v, dtype=np.float64) for v in values]))
    return jnp.concatenate([jnp.asarray(v) for v in values])


def _pad(x: Any, bmax: int, fill: Any = None) -> Any:
    """``x`` (shape ``(n,)``) padded to ``(bmax,)`` with zeros or with ``fill[n:]``."""
    n = x.shape[0]
    if n == bmax:
        return x
    concrete = isinstance(x, np.ndarray) and (fill is None or isinstance(fill, np.ndarray))
    xp = np if concrete else jnp
    tail = xp.zeros((bmax - n,), dtype=x.dtype) if fill is None else fill[n:]
    return xp.concatenate([x, tail])


def _numbers(
    structure: Structure,
    layout: Layout,
    nominal: tuple[Array, ...],
    moddata: tuple[tuple[tuple[Array, ...], ...], ...],
    constraints: tuple[ConstraintData | None, ...],
) -> Numbers:
    """Pad and stack the per-entry numbers of a parsed spec into :class:`Numbers`."""
    bmax = max(structure.nbins)
    n_e = len(structure.entries)
    kn, kh = layout.norm_param.shape[1], layout.hist_param.shape[1]
    one = np.float64(1.0)
    noms, his, los, hlos, hhis = [], [], [], [], []
    for entry, nom, datas in zip(structure.entries, nominal, moddata):
        padded = _pad(nom, bmax)
        noms.append(padded)
        norm_rows = [d for m, d in zip(entry.mods, datas) if m.type == "normsys"]
        hist_rows = [d for m, d in zip(entry.mods, datas) if m.type == "histosys"]
        his.extend([d[0] for d in norm_rows] + [one] * (kn - len(norm_rows)))
        los.extend([d[1] for d in norm_rows] + [one] * (kn - len(norm_rows)))
        hlos.extend([_pad(d[0], bmax, padded) for d in hist_rows] + [padded] * (kh - len(hist_rows)))
        hhis.extend([_pad(d[1], bmax, padded) for d in hist_rows] + [padded] * (kh - len(hist_rows)))
    present = [c for c in constraints if c is not None]
    return Numbers(
        nominal=_stack(noms, (n_e, bmax)),
        norm_hi=_stack(his, (n_e, kn)),
        norm_lo=_stack(los, (n_e, kn)),
        hist_lo=_stack(hlos, (n_e, kh, bmax)),
        hist_hi=_stack(hhis, (n_e, kh, bmax)),
        auxdata=_concat([c.auxdata for c in present]),
        aux_width=_concat([c.width for c in present]),
    )


#: Interpolation codes per modifier type: those pyhf's modifiers accept.
SUPPORTED_INTERPCODES = {"normsys": tuple(NORMSYS_CODES), "histosys": tuple(HISTOSYS_CODES)}


def check_modifier_settings(settings: Mapping[str, Any] | None) -> InterpCodes:
    """The interpolation codes ``settings`` asks for, with pyhf's semantics; :class:`ConfigError` if invalid.

    Args:
        settings: pyhf's ``modifier_settings``, e.g.
            ``{"normsys": {"interpcode": "code1"}, "histosys": {"interpcode": "code2"}}``,
            or ``None`` for pyhf's defaults.

    Returns:
        ``InterpCodes("code4", "code4p")`` (pyhf's defaults) for ``None``. Given
        settings replace those defaults as a whole, as in pyhf: a modifier type
        left out (or an entry without ``interpcode``) gets the code its pyhf
        modifier falls back to, ``code1`` for ``normsys`` and ``code0`` for
        ``histosys``. So ``{"normsys": {"interpcode": "code4"}}`` alone gives
        ``histosys`` code0, and ``{}`` gives code1/code0. A code for a modifier
        type the model does not use is accepted (as in pyhf).

    Raises:
        ConfigError: a type other than ``normsys``/``histosys``, a key other than
            ``interpcode``, or a code pyhf's modifier does not accept (pyhf's
            ``normsys`` takes code1 and code4, its ``histosys`` code0, code2 and code4p).

    Example:
        >>> check_modifier_settings({"normsys": {"interpcode": "code4"}})
        InterpCodes(normsys='code4', histosys='code0')
    """
    if settings is None:
        return DEFAULT_CODES
    if not isinstance(settings, Mapping):
        raise ConfigError(
            f"modifier_settings must be a dict like {{'normsys': {{'interpcode': 'code4'}}}}, "
            f"got {type(settings).__name__}"
        )
    codes = FALLBACK_CODES._asdict()
    for mtype, options in settings.items():
        if mtype not in SUPPORTED_INTERPCODES:
            raise ConfigError(
                f"modifier_settings has an entry for {mtype!r}, which takes no settings"
                f"{closest(str(mtype), sorted(SUPPORTED_INTERPCODES))}"
            )
        if not isinstance(options, Mapping):
            raise ConfigError(
                f"modifier_settings[{mtype!r}] must be a dict like {{'interpcode': {codes[mtype]!r}}}, got {options!r}"
            )
        unknown = sorted(map(str, set(options) - {"interpcode"}))
        if unknown:
            raise ConfigError(f"modifier_settings[{mtype!r}] has unknown keys {unknown}; the only key is 'interpcode'")
        code = options.get("interpcode", codes[mtype])
        valid = SUPPORTED_INTERPCODES[mtype]
        if code not in valid:
            raise ConfigError(
                f"modifier_settings[{mtype!r}] asks for interpolation {code!r}, which pyhf's {mtype} does not take; "
                f"use one of {', '.join(map(repr, valid))}"
            )
        codes[mtype] = code
    return InterpCodes(**codes)


def build_model(
    spec: Mapping[str, Any],
    *,
    poi_name: str | None = "mu",
    modifier_settings: Mapping[str, Any] | None = None,
    check_yields: bool = True,
) -> Model:
    """Build a :class:`Model` from a pyhf model spec.

    Args:
        spec: ``{"channels": [{"name", "samples": [{"name", "data", "modifiers"}]}],
            "parameters": [...]}`` (``parameters`` optional); any numeric list may be
            a NumPy or JAX array, possibly traced (sample ``data``, ``normsys``
            ``hi``/``lo``, ``histosys`` ``hi_data``/``lo_data``, ``staterror`` and
            ``shapesys`` uncertainties).
        poi_name: name of the parameter of interest (a one-parameter set), or
            ``None`` for no POI.
        modifier_settings: pyhf's interpolation settings, e.g.
            ``{"normsys": {"interpcode": "code1"}, "histosys": {"interpcode": "code2"}}``;
            ``None`` for pyhf's defaults (``normsys`` code4, ``histosys`` code4p).
            As in pyhf, given settings replace the defaults as a whole: a type
            left out uses ``normsys`` code1 / ``histosys`` code0 (see
            :func:`check_modifier_settings`).
        check_yields: reject negative sample and ``histosys`` yields. Concrete
            numbers only: non-finite numbers are always rejected with channel,
            sample and bin in the message. Traced numbers (inside ``jax.jit`` or
            ``jax.grad``) are not checked; a NaN or negative yield there gives a
            NaN (or ``-inf``) ``logpdf`` rather than an error.

    Returns:
        The model. Raises :class:`~diffhep.errors.ConfigError` for invalid or
        unsupported specs (the message names channel, sample and modifier).

    Example:
        >>> spec = {"channels": [{"name": "sr", "samples": [
        ...     {"name": "signal", "data": [5.0], "modifiers": [
        ...         {"name": "mu", "type": "normfactor", "data": None}]},
        ...     {"name": "bkg", "data": [50.0], "modifiers": []}]}]}
        >>> model = build_model(spec)
        >>> model.config.par_names
        ['mu']
        >>> [round(float(x), 3) for x in model.expected_actualdata(jnp.array([2.0]))]
        [60.0]
    """
    interpcodes = check_modifier_settings(modifier_settings)
    structure, (nominal, moddata, constraints) = parse_spec(spec, poi_name=poi_name, check_yields=check_yields)
    layout = make_layout(structure)
    numbers = _numbers(structure, layout, nominal, moddata, constraints)
    return Model(_Static(structure, layout, interpcodes), numbers)
