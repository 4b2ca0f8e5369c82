"""Network observables and honest training: a region's observable as a network of per-event inputs.

``observable: {network: mlp, inputs: [sum(jets.pt), MET_pt, ...], hidden: [32, 32], output: sigmoid}``
makes a region's observable the output of a multilayer perceptron (:class:`MLP`, an
:class:`equinox.Module`) of per-event inputs written in the expression language. The
inputs must not depend on cut values: they are computed once in
:meth:`~diffhep.engine.configured.ConfiguredAnalysis.load` (:func:`diffhep.engine.split.prepare`),
standardised with the mean and standard deviation of the training half's nominal
Monte Carlo events, and kept in ``SampleData.events`` under :func:`feature_key`; the step
only runs the network on them (:func:`output`), its weights an argument of the step
(``networks=``), histogrammed with the region's KDE (soft) or bandwidth 0 (hard).

In the region's parsed definition the observable is an :class:`ast.Tuple` of the inputs
carrying the region's name (:func:`observable_node`), so the checks, the branch plan and
the candidate observables see the inputs as any other expression.

The inputs and the training and evaluation halves are prepared in :mod:`diffhep.engine.split`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.config.sections import NetworkObservable

__all__ = [
    "MLP",
    "build",
    "architecture",
    "from_architecture",
    "observable_node",
    "feature_key",
    "output",
]

_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "gelu": jax.nn.gelu,
    "softplus": jax.nn.softplus,
    "sigmoid": jax.nn.sigmoid,
    "identity": lambda x: x,
}


class MLP(eqx.Module):
    """A multilayer perceptron ``Float[Array, "inputs"] -> Float[Array, ""]`` (one event).

    Attributes:
        layers: the linear layers, the last one with one output.
        activation: of the hidden layers (static).
        output: of the output (static): ``sigmoid`` gives values in (0, 1).
    """

    layers: tuple[eqx.nn.Linear, ...]
    activation: str = eqx.field(static=True)
    output: str = eqx.field(static=True)

    def __call__(self, x: Array) -> Array:
        for layer in self.layers[:-1]:
            x = _ACTIVATIONS[self.activation](layer(x))
        return _ACTIVATIONS[self.output](self.layers[-1](x)[0])


def build(inputs: int, hidden: tuple[int, ...], activation: str, output: str, *, seed: int) -> MLP:
    """A freshly initialised :class:`MLP` (equinox's default initialisation, ``PRNGKey(seed)``, the default float)."""
    sizes = [inputs, *hidden, 1]
    keys = jax.random.split(jax.random.PRNGKey(seed), len(sizes) - 1)
    dtype = jnp.result_type(float)
    layers = tuple(eqx.nn.Linear(a, b, key=k, dtype=dtype) for a, b, k in zip(sizes[:-1], sizes[1:], keys))
    return MLP(layers, activation, output)


def architecture(spec: NetworkObservable, mean: np.ndarray, std: np.ndarray) -> dict[str, Any]:
    """What rebuilds the network and its inputs (``results.json``): kind, inputs, layers, standardisation."""
    return {
        "network": spec.kind,
        "inputs": list(spec.inputs),
        "hidden": list(spec.hidden),
        "activation": spec.activation,
        "output": spec.output,
        "mean": [float(x) for x in mean],
        "std": [float(x) for x in std],
    }


def from_architecture(record: Mapping[str, Any]) -> MLP:
    """An :class:`MLP` of the architecture ``record`` (its weights to be filled, e.g. by
    :func:`equinox.tree_deserialise_leaves`)."""
    return build(len(record["inputs"]), tuple(record["hidden"]), record["activation"], record["output"], seed=0)


def observable_node(region: str, inputs: list[ast.expr]) -> ast.Tuple:
    """The parsed observable of a network region: the tuple of its inputs, with ``.network = region``."""
    node = ast.Tuple(elts=list(inputs), ctx=ast.Load())
    node.network = region  # type: ignore[attr-defined]
    return node


def feature_key(region: str) -> str:
    """The key of a region's standardised inputs ``Float[Array, "events inputs"]`` in ``SampleData.events``."""
    return f"<network {region}>"


def output(step: Any, region: str) -> Any:
    """The network's output per event, ``(events,)``: the network of ``region`` of a
    :class:`~diffhep.engine.regions.Step` on its features."""
    features = step.data.events[feature_key(region)]
    return step.backend.asarray(jax.vmap(step.networks[region])(jnp.asarray(features)))
