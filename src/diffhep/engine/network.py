"""Network observables and honest training: a region's observable as a network of per-event inputs.

``observable: {network: mlp, inputs: [sum(jets.pt), MET_pt, ...], hidden: [32, 32], output: sigmoid}``
makes a region's observable the output of a multilayer perceptron (:class:`MLP`, an
:class:`equinox.Module`) of per-event inputs written in the expression language.
Inputs that do not depend on cut values (static) are computed once in
:meth:`~diffhep.engine.configured.ConfiguredAnalysis.load` (:func:`diffhep.engine.split.prepare`),
standardised with the mean and standard deviation of the training half's nominal
Monte Carlo events, and kept in ``SampleData.events`` under :func:`feature_key`. An input
that depends on cut values (a parameter, or objects with soft cuts: ``sum(jets.pt)``,
``trijet_mass(jets, jets.btag)``) is computed in the step, soft (differentiable in the
cuts) or hard, and standardised with the mean and standard deviation it had at the
parameters' starting values in ``load()`` (kept under :func:`scale_key`). The step runs the
network on them (:func:`output`), its weights an argument of the step (``networks=``),
histogrammed with the region's KDE (soft) or bandwidth 0 (hard).

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
from diffhep.errors import closest

__all__ = [
    "MLP",
    "NETWORKS",
    "register_network",
    "build_network",
    "build",
    "architecture",
    "from_architecture",
    "observable_node",
    "feature_key",
    "scale_key",
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


#: Plugin networks: name -> ``factory(inputs, *, key, **options)`` returning an :class:`equinox.Module`
#: that maps one event's standardised inputs ``Float[Array, "inputs"]`` to a scalar (:func:`register_network`).
NETWORKS: dict[str, Callable[..., eqx.Module]] = {}


def register_network(name: str) -> Callable[[Callable[..., eqx.Module]], Callable[..., eqx.Module]]:
    """Register a network for ``observable: {network: <name>, inputs: [...], options: {...}}`` (in a plugin module).

    The factory is called as ``factory(number_of_inputs, key=jax.random.PRNGKey(optimizer.seed), **options)``
    and returns any :class:`equinox.Module` mapping one event's inputs to a scalar; its inexact arrays
    are trained. A scalar attribute ``output = "sigmoid"`` tells the pre-training that its output is a
    probability (otherwise the output is taken as a logit).

    Example:
        >>> import equinox as eqx, jax
        >>> @register_network("linear_example")
        ... def linear(inputs, *, key):
        ...     return eqx.nn.Linear(inputs, "scalar", key=key)
        >>> build_network(NetworkObservable("sr", "linear_example", ("x", "y")), seed=0)(jax.numpy.ones(2)).shape
        ()
    """

    def add(factory: Callable[..., eqx.Module]) -> Callable[..., eqx.Module]:
        NETWORKS[name] = factory
        return factory

    return add


def build_network(spec: NetworkObservable, *, seed: int) -> eqx.Module:
    """The network of ``spec``, initialised with ``seed``: an :class:`MLP`, or a plugin's (:func:`register_network`);
    an unknown name or options a plugin refuses are a located one-line ConfigError."""
    if spec.kind == "mlp":
        if spec.options:
            raise spec.error("options", "options are for plugin networks; mlp takes hidden, activation and output")
        return build(len(spec.inputs), spec.hidden, spec.activation, spec.output, seed=seed)
    if spec.kind not in NETWORKS:
        known = ["mlp", *NETWORKS]
        raise spec.error(
            "network",
            f"unknown network {spec.kind!r}{closest(spec.kind, known)}; expected mlp or a network a plugin registers "
            "(@diffhep.engine.network.register_network)",
        )
    try:
        return NETWORKS[spec.kind](len(spec.inputs), key=jax.random.PRNGKey(seed), **dict(spec.options))
    except TypeError as exc:
        raise spec.error("options", f"network {spec.kind!r}: {str(exc).splitlines()[0]}") from None


def architecture(spec: NetworkObservable, mean: np.ndarray, std: np.ndarray) -> dict[str, Any]:
    """What rebuilds the network and its inputs (``results.json``): kind, inputs, layers, standardisation."""
    return {
        "network": spec.kind,
        "inputs": list(spec.inputs),
        "hidden": list(spec.hidden),
        "activation": spec.activation,
        "output": spec.output,
        "options": dict(spec.options),
        "mean": [float(x) for x in mean],
        "std": [float(x) for x in std],
    }


def from_architecture(record: Mapping[str, Any]) -> eqx.Module:
    """A network of the architecture ``record`` (its weights to be filled, e.g. by
    :func:`equinox.tree_deserialise_leaves`)."""
    if record["network"] != "mlp":
        factory = NETWORKS[record["network"]]
        return factory(len(record["inputs"]), key=jax.random.PRNGKey(0), **record.get("options", {}))
    return build(len(record["inputs"]), tuple(record["hidden"]), record["activation"], record["output"], seed=0)


def observable_node(region: str, inputs: list[ast.expr], dynamic: tuple[bool, ...] = ()) -> ast.Tuple:
    """The parsed observable of a network region: the tuple of its inputs, with ``.network = region`` and
    ``.dynamic`` (per input: whether it depends on cut values, computed in the step)."""
    node = ast.Tuple(elts=list(inputs), ctx=ast.Load())
    node.network = region  # type: ignore[attr-defined]
    node.dynamic = tuple(dynamic) or (False,) * len(inputs)  # type: ignore[attr-defined]
    return node


def feature_key(region: str) -> str:
    """The key of a region's standardised inputs ``Float[Array, "events inputs"]`` in ``SampleData.events``."""
    return f"<network {region}>"


def scale_key(region: str) -> str:
    """The key of a region's (mean, standard deviation) of its inputs, ``Float[Array, "2 inputs"]``."""
    return f"<network {region} scale>"


def output(step: Any, node: ast.Tuple, evaluate: Callable[[ast.expr], Any]) -> Any:
    """The network's output per event, ``(events,)``, of the network region ``node`` in a
    :class:`~diffhep.engine.regions.Step`: its static inputs from ``load()``, those that depend on
    cut values ``evaluate``-d now (the step's evaluator, soft or hard) and standardised."""
    region, dynamic = node.network, node.dynamic  # type: ignore[attr-defined]
    features = jnp.asarray(step.data.events[feature_key(region)])
    if any(dynamic):
        scale = jnp.asarray(step.data.events[scale_key(region)])
        shape = features.shape[:1]
        columns = [
            (jnp.broadcast_to(jnp.asarray(evaluate(x), dtype=features.dtype), shape) - scale[0, i]) / scale[1, i]
            if dynamic[i]
            else features[:, i]
            for i, x in enumerate(node.elts)
        ]
        features = jnp.stack(columns, axis=1)
    return step.backend.asarray(jax.vmap(step.networks[region])(features))
