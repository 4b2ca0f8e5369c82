"""``model.config``: a pyhf-like view of a model's parameters and bins.

Names, order, inits, bounds, fixed flags and auxdata follow
``pyhf.Model(spec).config``: ``suggested_init()``, ``suggested_bounds()`` and
``suggested_fixed()`` are methods (as in pyhf), the rest attributes.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.likelihood.model_parse import Structure
from diffhep.likelihood.parameters import ParamSet

__all__ = ["ModelConfig"]


class ModelConfig:
    """pyhf-like view of a model's parameters and bins (``model.config``).

    Like pyhf's, ``suggested_init()``, ``suggested_bounds()`` and
    ``suggested_fixed()`` are methods; ``par_names``, ``par_order``, ``npars``,
    ``poi_index``, ``poi_name``, ``channels``, ``samples`` and ``auxdata`` are attributes.
    """

    def __init__(self, structure: Structure, auxdata: Array):
        self._s = structure
        self._auxdata = auxdata
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

    @property
    def parameters(self) -> list[str]:
        """Parameter set names, sorted (as pyhf's ``config.parameters``)."""
        return sorted(self.par_order)

    @property
    def auxdata_order(self) -> list[str]:
        """Names of the constrained parameter sets, in the order of ``auxdata``."""
        return [p.name for p in self._s.params if p.constraint is not None]

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
        return jnp.asarray(np.asarray([v for p in self._s.params for v in p.inits], dtype=np.float64))

    def suggested_bounds(self) -> Array:
        """Parameter bounds, shape ``(npars, 2)`` as ``(low, high)``."""
        flat = np.asarray([b for p in self._s.params for b in p.bounds], dtype=np.float64)
        return jnp.asarray(flat.reshape(-1, 2))

    def suggested_fixed(self) -> list[bool]:
        """Whether each parameter is held fixed by default, length ``npars`` (static)."""
        return [f for p in self._s.params for f in p.fixed]

    @property
    def auxdata(self) -> Array:
        """Auxiliary data of all constrained parameter sets in parameter order, shape ``(nauxdata,)``."""
        return self._auxdata

    @property
    def nauxdata(self) -> int:
        """Number of auxiliary measurements."""
        return sum(p.n for p in self._s.params if p.constraint is not None)
