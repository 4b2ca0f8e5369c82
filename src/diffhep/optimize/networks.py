"""Network observables in the optimisation: their weights as a second group of parameters.

An analysis may have network observables: ``analysis.networks`` (region ->
:class:`equinox.Module`, the networks at their current weights), and then its
``objective`` takes them as ``objective(cuts, data, slope_scale, networks=...)``.
The optimiser moves a pytree ``{"cuts": <unconstrained cut variables>, "networks":
<the networks' inexact arrays>}``: the cut values through the bounds transform
(:mod:`~diffhep.optimize.bounds`), the weights unbounded, each group with its own
Optax transform (:func:`joint_optimizer`, ``optax.multi_transform``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import optax

from diffhep.optimize.settings import OptimizerSettings

__all__ = ["has_networks", "split_networks", "joint_optimizer"]


def has_networks(analysis: Any) -> bool:
    """Whether ``analysis`` has network observables (a non-empty ``networks`` mapping)."""
    return bool(getattr(analysis, "networks", None))


def split_networks(networks: Mapping[str, eqx.Module]) -> tuple[Any, Any]:
    """``(weights, static)``: the networks' inexact arrays (what is trained) and the rest
    (``equinox.combine(weights, static)`` gives the networks back)."""
    return eqx.partition(dict(networks), eqx.is_inexact_array)


def _labels(u: Mapping[str, Any]) -> dict[str, Any]:
    return {group: jax.tree.map(lambda _, g=group: g, u[group]) for group in ("cuts", "networks")}


def joint_optimizer(settings: OptimizerSettings) -> optax.GradientTransformation:
    """``optax.multi_transform``: the config's optimiser on ``u["cuts"]``, ``optimizer.network``'s on ``u["networks"]``."""
    return optax.multi_transform({"cuts": settings.build(), "networks": settings.build_network()}, _labels)
