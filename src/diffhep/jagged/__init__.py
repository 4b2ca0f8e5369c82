"""Jagged (ragged) collections as flat JAX buffers with static structure.

Modules, in the order an analysis uses them:

* :mod:`~diffhep.jagged.core`: :class:`Jagged`, :func:`from_awkward`,
  :func:`to_awkward` (the Awkward <-> JAX boundary).
* :mod:`~diffhep.jagged.events`: :class:`Events`, :func:`from_awkward_events`
  (``events.Jet.pt`` as in Awkward).
* :mod:`~diffhep.jagged.order`: static :func:`sort` / :func:`keep` (host, once);
  dense :func:`leading` / :func:`first` with a mask; :func:`dense_to_awkward`.
* :mod:`~diffhep.jagged.reduce`: per-event ``mean``, ``min``, ``max``, smooth
  max/min, ``softmax``, exact products, soft any/all (also ``Jagged`` methods).
* :mod:`~diffhep.jagged.combinations`: :class:`Combinations` from
  :func:`combinations` and :func:`cartesian`.
* :mod:`~diffhep.jagged.kinematics`: :class:`FourVector` and angular distances
  in JAX, for parameter-dependent kinematics.
* :mod:`~diffhep.jagged.candidates`: candidates built once on the host with
  Awkward and ``vector`` (trijets, ZZ -> 4 lepton candidates), shared by the
  config engine and the hand-written examples.
"""

from diffhep.jagged.combinations import Combinations, cartesian, combinations
from diffhep.jagged.core import Jagged, from_awkward, structure_from_counts, to_awkward, to_jax
from diffhep.jagged.events import Events, from_awkward_events
from diffhep.jagged.kinematics import (
    FourVector,
    delta_phi,
    delta_r,
    four_momenta,
    from_ptetaphim,
    from_pxpypze,
)
from diffhep.jagged.order import Leading, dense_to_awkward, first, keep, leading, sort
from diffhep.jagged.reduce import (
    segment_prod,
    smooth_max,
    smooth_min,
    soft_all,
    soft_any,
    softmax,
)

__all__ = [
    "Jagged",
    "from_awkward",
    "to_awkward",
    "structure_from_counts",
    "to_jax",
    "Events",
    "from_awkward_events",
    "Leading",
    "sort",
    "keep",
    "leading",
    "first",
    "dense_to_awkward",
    "segment_prod",
    "smooth_max",
    "smooth_min",
    "softmax",
    "soft_all",
    "soft_any",
    "Combinations",
    "combinations",
    "cartesian",
    "FourVector",
    "from_ptetaphim",
    "from_pxpypze",
    "four_momenta",
    "delta_phi",
    "delta_r",
]
