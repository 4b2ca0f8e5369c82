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
also be passed into ``jax.jit``-compiled functions. Parameter names, order,
inits, bounds, fixed flags and auxdata match ``pyhf.Model(spec, poi_name=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import gammaln, xlogy
from jax.scipy.stats import norm

from diffhep.likelihood.model_parse import Structure, parse_spec
from diffhep.likelihood.modifiers import expected_entry
from diffhep.likelihood.parameters import ConstraintData, ParamSet

__all__ = ["Model", "ModelConfig", "build_model", "poisson_logpdf"]


def poisson_logpdf(n: Array, lam: Array) -> Array:
    """Continuous Poisson log-density ``n log(lam) - lam - lnGamma(n + 1)`` (as pyhf), elementwise."""
    return xlogy(n, lam) - lam - gammaln(n + 1.0)


class Numbers(NamedTuple):
    """The numeric leaves of a :class:`Model` (possibly JAX tracers).

    Attributes:
        nominal: per entry (sample in channel), nominal yields ``(bins,)`` (events).
        moddata: per entry, per modifier: ``(hi, lo)`` for ``normsys``,
            ``(lo_data, hi_data)`` for ``histosys``, ``()`` otherwise.
        constraints: per parameter set, its :class:`ConstraintData` or ``None``.
    """

    nominal: tuple[Array, ...]
    moddata: tuple[tuple[tuple[Array, ...], ...], ...]
    constraints: tuple[ConstraintData | None, ...]


class ModelConfig:
    """pyhf-like view of a model's parameters and bins (``model.config``)."""

    def __init__(self, structure: Structure, constraints: tuple[ConstraintData | None, ...]):
        self._s = structure
        self._constraints = constraints
        self.channels: list[str] = list(structure.channels)
        self.samples: list[str] = list(structure.samples)
        self.channel_nbins: dict[str, int] = dict(zip(structure.channels, structure.nbins))
        self.channel_slices: dict[str, slice] = {}
        begin = 0
        for name, n in zip(structure.channels, structure.nbins):
            self.channel_slices[name] = slice(begin, begin + n)
            begin += n
        self.nmaindata: int = begin
        self.par_order: list[str] = [p.name for p in structure.params]
        self.npars: int = sum(p.n for p in structure.params)
        self.poi_name: str | None = structure.poi_name
        self.poi_index: int | None = structure.poi_index

    @property
    def par_names(self) -> list[str]:
        """Parameter names, ``name`` for scalar sets and ``name[i]`` otherwise (as pyhf)."""
        names: list[str] = []
        for p in self._s.params:
            names.extend([p.name] if p.is_scalar else [f"{p.name}[{i}]" for i in range(p.n)])
        return names

    def par_slice(self, name: str) -> slice:
        """Slice of the parameter vector holding parameter set ``name``."""
        i = self.par_order.index(name)
        start = self._s.starts[i]
        return slice(start, start + self._s.params[i].n)

    def param_set(self, name: str) -> ParamSet:
        """Static description of parameter set ``name``."""
        return self._s.params[self.par_order.index(name)]

    def suggested_init(self) -> Array:
        """Initial parameter values, shape ``(npars,)``."""
        return jnp.asarray([v for p in self._s.params for v in p.inits], dtype=float)

    def suggested_bounds(self) -> Array:
        """Parameter bounds, shape ``(npars, 2)`` as ``(low, high)``."""
        return jnp.asarray([b for p in self._s.params for b in p.bounds], dtype=float).reshape(-1, 2)

    def suggested_fixed(self) -> list[bool]:
        """Whether each parameter is held fixed by default, length ``npars`` (static)."""
        return [f for p in self._s.params for f in p.fixed]

    @property
    def auxdata(self) -> Array:
        """Auxiliary data of all constrained parameter sets in parameter order, shape ``(nauxdata,)``."""
        parts = [c.auxdata for c in self._constraints if c is not None]
        return jnp.concatenate(parts) if parts else jnp.zeros((0,))

    @property
    def nauxdata(self) -> int:
        """Number of auxiliary measurements."""
        return sum(p.n for p in self._s.params if p.constraint is not None)


@jax.tree_util.register_pytree_node_class
class Model:
    """A HistFactory likelihood; see the module docstring. Build it with :func:`build_model`."""

    def __init__(self, structure: Structure, numbers: Numbers):
        self.structure = structure
        self.numbers = numbers

    def tree_flatten(self) -> tuple[tuple[Numbers], Structure]:
        return (self.numbers,), self.structure

    @classmethod
    def tree_unflatten(cls, structure: Structure, children: tuple[Numbers]) -> Model:
        return cls(structure, children[0])

    @property
    def config(self) -> ModelConfig:
        """Parameter and bin bookkeeping, matching ``pyhf.Model(spec).config``."""
        return ModelConfig(self.structure, self.numbers.constraints)

    def expected_actualdata(self, pars: Array) -> Array:
        """Expected main-measurement counts, shape ``(nmaindata,)`` (events).

        Args:
            pars: parameters, shape ``(npars,)``.

        Channels are concatenated in pyhf's (alphabetical) channel order.
        """
        pars = jnp.asarray(pars)
        s = self.structure
        totals: list[Array | None] = [None] * len(s.channels)
        for entry, nominal, moddata in zip(s.entries, self.numbers.nominal, self.numbers.moddata):
            rate = expected_entry(pars, entry, nominal, moddata)
            prev = totals[entry.channel]
            totals[entry.channel] = rate if prev is None else prev + rate
        return jnp.concatenate([t for t in totals if t is not None])

    def expected_auxdata(self, pars: Array) -> Array:
        """Expected auxiliary data, shape ``(nauxdata,)``.

        Normal-constrained sets give their parameter values, Poisson-constrained
        ones ``factor * gamma`` (as pyhf).
        """
        pars = jnp.asarray(pars)
        parts = []
        for p, start, c in zip(self.structure.params, self.structure.starts, self.numbers.constraints):
            if c is None:
                continue
            values = pars[start : start + p.n]
            parts.append(values if p.constraint == "normal" else values * c.width)
        return jnp.concatenate(parts) if parts else jnp.zeros((0,), dtype=pars.dtype)

    def expected_data(self, pars: Array, include_auxdata: bool = True) -> Array:
        """Expected main counts followed (by default) by expected auxdata, shape ``(nmaindata [+ nauxdata],)``."""
        main = self.expected_actualdata(pars)
        if not include_auxdata:
            return main
        return jnp.concatenate([main, self.expected_auxdata(pars)])

    def constraint_logpdf(self, auxdata: Array, pars: Array) -> Array:
        """Sum of the constraint log-densities, shape ``()``.

        Args:
            auxdata: auxiliary data, shape ``(nauxdata,)``.
            pars: parameters, shape ``(npars,)``.
        """
        pars = jnp.asarray(pars)
        total = jnp.zeros((), dtype=pars.dtype)
        offset = 0
        for p, start, c in zip(self.structure.params, self.structure.starts, self.numbers.constraints):
            if c is None:
                continue
            aux = auxdata[offset : offset + p.n]
            values = pars[start : start + p.n]
            if p.constraint == "normal":
                total = total + jnp.sum(norm.logpdf(aux, values, c.width))
            else:
                total = total + jnp.sum(poisson_logpdf(aux, values * c.width))
            offset += p.n
        return total

    def logpdf(self, pars: Array, data: Array) -> Array:
        """Full log-likelihood (main Poisson terms plus constraints), shape ``(1,)`` like pyhf.

        Args:
            pars: parameters, shape ``(npars,)``.
            data: main counts followed by auxdata, shape ``(nmaindata + nauxdata,)``.
        """
        data = jnp.asarray(data)
        nmain = sum(self.structure.nbins)
        main = jnp.sum(poisson_logpdf(data[:nmain], self.expected_actualdata(pars)))
        return jnp.reshape(main + self.constraint_logpdf(data[nmain:], pars), (1,))


def build_model(spec: Mapping[str, Any], *, poi_name: str | None = "mu") -> Model:
    """Build a :class:`Model` from a pyhf model spec.

    Args:
        spec: ``{"channels": [{"name", "samples": [{"name", "data", "modifiers"}]}],
            "parameters": [...]}`` (``parameters`` optional); any numeric list may be
            a NumPy or JAX array, possibly traced.
        poi_name: name of the parameter of interest (a one-parameter set), or
            ``None`` for no POI.

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
    structure, (nominal, moddata, constraints) = parse_spec(spec, poi_name=poi_name)
    return Model(structure, Numbers(nominal, moddata, constraints))
