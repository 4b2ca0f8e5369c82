"""Network observables in the optimisation: their weights as a second group of parameters.

An analysis may have network observables: ``analysis.networks`` (region ->
:class:`equinox.Module`, the networks at their current weights), and then its
``objective`` takes them as ``objective(cuts, data, slope_scale, networks=...)``.
The optimiser moves a pytree ``{"cuts": <unconstrained cut variables>, "networks":
<the networks' inexact arrays>}``: the cut values through the bounds transform
(:mod:`~diffhep.optimize.bounds`), the weights unbounded, each group with its own
Optax transform (:func:`joint_optimizer`, ``optax.multi_transform``). :func:`pretrain`
is the usual baseline and starting point: binary cross-entropy, signal against background.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from diffhep.engine.network import architecture, build_network, feature_key
from diffhep.optimize.settings import OptimizerSettings

__all__ = [
    "starting_networks",
    "has_networks",
    "split_networks",
    "joint_optimizer",
    "network_records",
    "pretrain",
    "binary_cross_entropy",
]


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


def starting_networks(analysis: Any, seed: int) -> dict[str, eqx.Module]:
    """The analysis's networks, or where they were initialised with another seed (``analysis.network_seed``,
    the config's ``optimizer.seed``) than ``seed`` (``--seed``), freshly initialised with ``seed``."""
    if getattr(analysis, "network_seed", seed) == seed:
        return dict(analysis.networks)
    return {r: build_network(analysis.sections.networks[r], seed=seed) for r in analysis.networks}


def network_records(analysis: Any) -> dict[str, dict[str, Any]]:
    """Region -> the architecture of its network and its inputs' standardisation (``results.json``)."""

    specs = analysis.sections.networks
    return {r: architecture(specs[r], *analysis.standardisation[r]) for r in analysis.networks}


def pretrain(analysis: Any, data: Any, *, steps: int, learning_rate: float) -> dict[str, eqx.Module]:
    """The networks after ``steps`` full-batch Adam steps of binary cross-entropy, signal against background.

    On the events of ``data`` (the training half: events of weight 0 count for nothing) of the
    nominal Monte Carlo samples, each class weighted to a sum of 1 (the event weights, so
    normalised as in the histograms). The network's output is the probability of signal where it
    ends in a sigmoid, else its sigmoid. Deterministic: a function of the starting networks.
    """

    weights, static = split_networks(analysis.networks)
    sample = np.asarray(data.sample)
    w = np.asarray(data.weight, dtype=float)
    nominal = np.isin(sample, [data.keys.index(k) for k in analysis.samples])
    signal = np.isin(sample, [data.keys.index(k) for k in analysis.signal])
    use = nominal & (w != 0)
    dtype = jnp.result_type(float)
    y = jnp.asarray(signal[use], dtype=dtype)
    sums = {True: w[use & signal].sum(), False: w[use & ~signal].sum()}
    scale = np.where(signal[use], 1 / sums[True] if sums[True] else 0.0, 1 / sums[False] if sums[False] else 0.0)
    event_w = jnp.asarray(w[use] * scale, dtype=dtype)
    features = {r: jnp.asarray(data.events[feature_key(r)])[use] for r in analysis.networks}

    def loss(trainable):
        nets = eqx.combine(trainable, static)
        total = 0.0
        for region, net in nets.items():
            out = jax.vmap(net)(features[region])
            p = out if getattr(net, "output", None) == "sigmoid" else jax.nn.sigmoid(out)
            p = jnp.clip(p, 1e-7, 1 - 1e-7)
            total = total - jnp.sum(event_w * (y * jnp.log(p) + (1 - y) * jnp.log1p(-p))) / 2
        return total

    optimizer = optax.adam(learning_rate)

    @jax.jit
    def step(trainable, state):
        grad = jax.grad(loss)(trainable)
        updates, state = optimizer.update(grad, state, trainable)
        return optax.apply_updates(trainable, updates), state

    state = optimizer.init(weights)
    for _ in range(steps):
        weights, state = step(weights, state)
    return eqx.combine(weights, static)


def binary_cross_entropy(analysis: Any, data: Any, networks: Mapping[str, eqx.Module]) -> float:
    """The class-balanced binary cross-entropy :func:`pretrain` minimises, of ``networks`` on ``data``."""

    sample, w = np.asarray(data.sample), np.asarray(data.weight, dtype=float)
    nominal = np.isin(sample, [data.keys.index(k) for k in analysis.samples])
    signal = np.isin(sample, [data.keys.index(k) for k in analysis.signal])
    total = 0.0
    for region, net in networks.items():
        p = np.asarray(jax.vmap(net)(jnp.asarray(data.events[feature_key(region)])), dtype=float)
        p = p if getattr(net, "output", None) == "sigmoid" else 1 / (1 + np.exp(-p))
        p = np.clip(p, 1e-7, 1 - 1e-7)
        for cls, term in ((True, np.log(p)), (False, np.log1p(-p))):
            mine = nominal & (signal == cls) & (w != 0)
            total -= float(np.sum(w[mine] * term[mine]) / np.sum(w[mine])) / 2
    return total
