"""Honest training: the training and evaluation halves of the events, and the inputs of network observables.

``training.split: even_odd`` (the default with a network observable): events with an even
event number (the ``training.event_number`` branch, else the event's index in its sample)
are the training half, the others the evaluation half. :func:`prepare` returns the two as
weights (the other half's set to 0, so the static structure is shared), each scaled by
``N / N_half`` of its sample so that both are normalised to the full luminosity. The
optimisation sees only the training half; the hard-cut histograms, the workspace and the
reported significance only the evaluation half. It also computes the inputs of every network
observable once (:mod:`diffhep.engine.network`), standardised with the mean and standard
deviation of the training half's nominal Monte Carlo events.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from diffhep.config.sections import Sections, Training
from diffhep.engine import objects, regions
from diffhep.engine.backend import HARD
from diffhep.engine.combine import SampleData
from diffhep.engine.network import feature_key, scale_key
from diffhep.jagged import to_jax

__all__ = ["event_numbers", "with_features", "prepare"]


def event_numbers(data: SampleData, training: Training) -> np.ndarray:
    """Each event's number: the ``training.event_number`` branch, else its index among its sample's events."""
    if training.event_number is not None:
        return np.asarray(data.events[training.event_number]).astype(np.int64)
    sample = np.asarray(data.sample)
    numbers = np.zeros(sample.shape, dtype=np.int64)
    for s in np.unique(sample):
        where = np.flatnonzero(sample == s)
        numbers[where] = np.arange(len(where))
    return numbers


def _scaled(data: SampleData, keep: np.ndarray) -> SampleData:
    """``data`` with the weights of the events not in ``keep`` 0 and the others x ``N / N_kept`` of their sample."""
    sample = np.asarray(data.sample)
    factor = np.zeros(sample.shape)
    for s in np.unique(sample):
        mine = sample == s
        kept = int(np.count_nonzero(keep & mine))
        factor[mine & keep] = np.count_nonzero(mine) / kept if kept else 0.0
    dtype = jnp.result_type(float)
    out = eqx.tree_at(lambda d: d.weight, data, to_jax(np.asarray(data.weight) * factor, dtype))
    varied = getattr(data, "varied_weight", None)  # weight-only variations as rows over their sample's events
    if varied is not None:
        rows = np.asarray(varied) * factor[None, : varied.shape[1]]
        out = eqx.tree_at(lambda d: d.varied_weight, out, to_jax(rows, dtype))
    return out


def with_features(
    data: SampleData,
    *,
    sections: Sections,
    region_defs: Mapping[str, regions.RegionDef],
    standardisation: dict[str, tuple[np.ndarray, np.ndarray]],
    step_options: Mapping[str, Any],
    fit: np.ndarray | None = None,
) -> SampleData:
    """``data`` with the standardised inputs of every network observable (``events[feature_key(region)]``).

    Standardised with ``standardisation[region]`` where given; else with the mean and standard
    deviation of the events ``fit`` selects, stored there (``fit`` ``None``: every event).
    """
    if not sections.networks:
        return data
    parameters = step_options["parameters"]  # inputs that depend on cuts: as at the starting values
    init = {k: float(p.init) for k, p in parameters.items()}
    options = dict(step_options, cuts=init, slopes={k: p.slope for k, p in parameters.items()}, backend=HARD)
    defs, specs = options.pop("defs"), options.pop("specs")
    weights = objects.ObjectWeights(defs, data.objects, data.union_index, **options)
    step = regions.Step(data, defs, specs, weights, options)
    shape = np.shape(data.weight)
    fit = np.ones(shape, dtype=bool) if fit is None else fit
    features = {}
    for name in sections.networks:
        evaluator = step.evaluator(f"region {name!r} observable")
        nodes = region_defs[name].observable.elts  # type: ignore[attr-defined]
        raw = np.stack([np.broadcast_to(np.asarray(evaluator(n), dtype=float), shape) for n in nodes], 1)
        if name not in standardisation:
            std = raw[fit].std(axis=0) if fit.any() else np.ones(raw.shape[1])
            mean = raw[fit].mean(axis=0) if fit.any() else np.zeros(raw.shape[1])
            standardisation[name] = (mean, np.where(std > 0, std, 1.0))
        mean, std = standardisation[name]
        features[feature_key(name)] = to_jax((raw - mean) / std, jnp.result_type(float))
        features[scale_key(name)] = to_jax(np.stack([mean, std]), jnp.result_type(float))
    return eqx.tree_at(lambda d: d.events, data, {**data.events, **features})


def prepare(
    data: SampleData,
    *,
    sections: Sections,
    region_defs: Mapping[str, regions.RegionDef],
    nominal: list[str],
    standardisation: dict[str, tuple[np.ndarray, np.ndarray]],
    step_options: Mapping[str, Any],
) -> tuple[SampleData, SampleData]:
    """``(evaluation, training)``: the network inputs of ``data`` and its two halves (module docstring).

    The inputs are standardised with ``standardisation[region]`` where given (a network read
    back with its results), else with the training half's nominal events, stored there
    (:func:`with_features`). Without networks and ``split: none`` both are ``data`` itself.
    """
    training = sections.training
    if not sections.networks and training.split == "none":
        return data, data
    numbers = event_numbers(data, training)
    train = numbers % 2 == 0 if training.split == "even_odd" else np.ones(numbers.shape, dtype=bool)
    evaluate = ~train if training.split == "even_odd" else train
    fit = train & np.isin(np.asarray(data.sample), [data.keys.index(k) for k in nominal])
    data = with_features(
        data,
        sections=sections,
        region_defs=region_defs,
        standardisation=standardisation,
        step_options=step_options,
        fit=fit,
    )
    return _scaled(data, evaluate), _scaled(data, train)
