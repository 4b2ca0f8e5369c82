"""``count(c) <op> N`` in selections: exact count probabilities, shared between regions.

With per-object pass probabilities ``w``, the number of passing objects
follows a Poisson-binomial distribution (:func:`~diffhep.select.count_distribution`).
The comparisons of one ``and`` are grouped by collection: conditions on the
objects and on one of their flags (``count(jets) >= 4 and count(jets.btag) == 1``)
are read off the joint distribution of (selected, selected-and-flagged)
counts (:func:`~diffhep.select.joint_count_distribution`), since the flagged
objects are among the selected ones; different collections, and further
flags, are multiplied. ``P = sum_{i,j} dist[i, j] * mask[i, j]`` with a static
0/1 mask of the counts that satisfy every condition.

Every weight key tracks the same number of counts in the whole config (its
largest ``N + 1``, :func:`count_limits`), so one distribution per key and step
serves every region (and every cutflow step); a condition that only tells
"none" from "some" (``>= 1``, ``== 0``) uses the cheaper
:func:`~diffhep.select.none_pass` unless the distribution is already there.
The distributions come from the step's backend: with the hard one (0/1
weights) a distribution is all on the plain count, so the same code gives
exactly the 0/1 answer.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import numpy as np
from jax import Array

from diffhep.engine.backend import Backend
from diffhep.engine.combine import SampleData
from diffhep.engine.expressions import COMPARE, split_compare
from diffhep.engine.objects import ObjectDef, ObjectWeights, Ref, parse_ref


class Step(Protocol):
    """What counting needs of a step (:class:`diffhep.engine.regions.Step` is one; regions imports this module)."""

    data: SampleData
    weights: ObjectWeights
    limits: Mapping[str, int]
    cache: dict[tuple, Array]

    @property
    def backend(self) -> Backend: ...

    def cached(self, key: tuple, compute: Callable[[], Array]) -> Array: ...


__all__ = ["Condition", "count_condition", "count_limits", "mask", "probability"]

#: ``(objects, comparison, N)``: ``count(objects) <op> N``.
Condition = tuple[Ref, ast.cmpop, int]

_FLIP = {
    ast.Gt: ast.Lt(),
    ast.GtE: ast.LtE(),
    ast.Lt: ast.Gt(),
    ast.LtE: ast.GtE(),
    ast.Eq: ast.Eq(),
    ast.NotEq: ast.NotEq(),
}


def count_condition(node: ast.Compare, defs: Mapping[str, ObjectDef]) -> Condition | None:
    """``(ref, op, N)`` if ``node`` is ``count(ref) op N`` (or ``N op count(ref)``), integer N >= 0."""
    left, op, right = node.left, node.ops[0], node.comparators[0]
    if isinstance(left, ast.Constant):
        left, op, right = right, _FLIP[type(op)], left
    if not (isinstance(left, ast.Call) and isinstance(left.func, ast.Name) and left.func.id == "count"):
        return None
    if len(left.args) != 1 or not isinstance(right, ast.Constant):
        return None
    ref, n = parse_ref(left.args[0], defs), right.value
    if ref is None or ref.field is not None or isinstance(n, bool) or not isinstance(n, (int, float)):
        return None
    if n < 0 or not float(n).is_integer():
        return None
    return ref, op, int(n)


def count_limits(selects: Iterable[ast.expr], defs: Mapping[str, ObjectDef]) -> dict[str, int]:
    """Weight key -> largest ``N + 1`` of any ``count(key) op N`` in ``selects``."""
    out: dict[str, int] = {}
    for select in selects:
        for node in ast.walk(select):
            if isinstance(node, ast.Compare):
                for single in split_compare(node):
                    found = count_condition(single, defs)
                    if found is not None:
                        out[found[0].key] = max(out.get(found[0].key, 0), found[2] + 1)
    return out


def mask(conditions: list[tuple[ast.cmpop, int]], n_max: int) -> np.ndarray:
    """``(n_max + 1,)``: 1.0 where every condition holds for count ``i`` (``i = n_max`` means ``>= n_max``).

    Example: ``count(jets) >= 1 and count(jets) != 2`` tracked up to 3:
        >>> mask([(ast.GtE(), 1), (ast.NotEq(), 2)], 3).tolist()
        [0.0, 1.0, 0.0, 1.0]
    """
    return np.array([all(COMPARE[type(op)](i, n) for op, n in conditions) for i in range(n_max + 1)], dtype=float)


def _limit(step: Step, key: str, conditions: list[tuple[ast.cmpop, int]]) -> int:
    return max(step.limits.get(key, 0), max(n for _, n in conditions) + 1)


def _joint(step: Step, obj: str, flag: str, n_sel: int, n_tag: int) -> Array:
    jagged, weights = step.data.objects[obj], step.weights
    return step.cached(
        ("joint", obj, flag, n_sel, n_tag),
        lambda: step.backend.joint_count_distribution(jagged, weights(obj), weights(f"{obj}.{flag}"), n_sel, n_tag),
    )


def _distribution(step: Step, obj: str, flag: str | None, n_max: int, *, compute: bool) -> Array | None:
    """``(events, n_max + 1)``: cached, the marginal of a cached joint one, computed, or ``None``."""
    key = obj if flag is None else f"{obj}.{flag}"
    if ("count", key, n_max) in step.cache:
        return step.cache[("count", key, n_max)]
    for k, dist in list(step.cache.items()):
        if k[0] == "joint" and k[1] == obj and flag in (None, k[2]) and k[3 if flag is None else 4] == n_max:
            return step.cached(("count", key, n_max), lambda dist=dist: dist.sum(axis=2 if flag is None else 1))
    if not compute:
        return None
    jagged, w = step.data.objects[obj], step.weights(key)
    return step.cached(("count", key, n_max), lambda: step.backend.count_distribution(jagged, w, n_max))


def probability(step: Step, conditions: list[Condition]) -> Any:
    """Probability that every ``count(ref) op N`` holds, ``(events,)``.

    Args:
        step: the sample's step (data, weights, backend, limits and cache).
        conditions: the comparisons of one ``and``.
    """
    objects, weights, backend = step.data.objects, step.weights, step.backend
    groups: dict[str, dict[str | None, list[tuple[ast.cmpop, int]]]] = {}
    for ref, op, n in conditions:
        groups.setdefault(ref.obj, {}).setdefault(ref.flag, []).append((op, n))
    result = 1.0
    for obj, by_flag in groups.items():
        flags = [f for f in by_flag if f is not None]
        if None in by_flag and flags:
            own, tagged = by_flag.pop(None), by_flag.pop(flags[0])
            n_sel, n_tag = _limit(step, obj, own), _limit(step, f"{obj}.{flags[0]}", tagged)
            both = np.outer(mask(own, n_sel), mask(tagged, n_tag))
            result = result * backend.xp.sum(_joint(step, obj, flags[0], n_sel, n_tag) * both, axis=(1, 2))
        for flag, conds in by_flag.items():
            key = obj if flag is None else f"{obj}.{flag}"
            n_max = _limit(step, key, conds)
            m = mask(conds, n_max)
            dist = _distribution(step, obj, flag, n_max, compute=not np.all(m[1:] == m[1]))
            if dist is None:  # only "none" vs "some" matters: one product
                none = step.cached(
                    ("none", key), lambda key=key, obj=obj: backend.none_pass(objects[obj], weights(key))
                )
                result = result * (m[0] * none + m[1] * (1.0 - none))
            else:
                result = result * (dist @ m)
    return result
