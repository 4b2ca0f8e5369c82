"""Candidate observables of configs: ``pair_mass``, ``trijet_mass``, ``m4l``, ``max(c.f)``, ``min(c.f)``.

Every one of them picks, per event, one *candidate* (a pair, a trijet, a ZZ
candidate, an object) among all possible ones in a static order: which
candidates exist, their order and their values (masses in GeV) do not depend
on the parameters, so they are built once on the host (:func:`prepare`) with
Awkward and ``vector`` by :mod:`diffhep.jagged.candidates`.
In the step only the probability that each candidate is *the* chosen one
flows (:func:`probabilities`); with 0/1 weights it is exactly the hard choice.

* ``pair_mass(c)``: the two leading objects of ``c`` that pass. A pair
  ``(i, j)``, ``i < j`` in the collection's order, is chosen with probability
  ``first_pass(w)_i * w_j * prod_{i<k<j} (1 - w_k)`` (the last product is an
  exclusive product along the pairs that share ``i``, :mod:`diffhep.engine.backend`).
* ``trijet_mass(c, c.flag)``: the largest-pT trijet of passing objects with at
  least one flagged object (the AGC's top candidate).
* ``m4l(muons, electrons)``: the H -> ZZ* -> 4l candidate (two opposite-sign,
  same-flavour pairs, Z1 closest to the Z mass) of passing leptons.
* ``max(c.f)`` / ``min(c.f)``: the passing object with the largest / smallest ``f``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import awkward as ak
import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.config.functions import CANDIDATES
from diffhep.engine.backend import SOFT, Backend
from diffhep.engine.expressions import text
from diffhep.engine.objects import ObjectDef, Ref, parse_ref
from diffhep.errors import ConfigError
from diffhep.jagged import Jagged, structure_from_counts, to_jax
from diffhep.jagged.candidates import trijets, zz_candidates

__all__ = ["BUILTINS", "CandidateSpec", "Candidates", "candidate_spec", "prepare", "probabilities", "expected"]

#: Built-in candidate observables (and the number of collection arguments).
#: Candidate observables: name -> number of object arguments (the table is :data:`diffhep.config.functions.BUILTINS`).
BUILTINS = CANDIDATES


@dataclass(frozen=True)
class CandidateSpec:
    """A candidate observable in an expression.

    Attributes:
        kind: ``pair_mass``, ``trijet_mass``, ``m4l``, ``max`` or ``min``.
        refs: its collection arguments.
        key: the call's text (identifies the candidates in the loaded data).
    """

    kind: str
    refs: tuple[Ref, ...]
    key: str

    def kinematic_objects(self) -> tuple[str, ...]:
        """Objects whose four-momenta are needed."""
        return () if self.kind in ("max", "min") else tuple(r.obj for r in self.refs)


def candidate_spec(node: ast.AST, defs: Mapping[str, ObjectDef], where: str) -> CandidateSpec | None:
    """The candidate observable ``node`` calls, or ``None`` if it is not one."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        return None
    name, args = node.func.id, node.args
    if name in ("max", "min") and len(args) == 1:
        ref = parse_ref(args[0], defs)
        if ref is None or ref.field is None:
            raise ConfigError(
                f"{where}: {name}() of one argument needs objects and a field, like {name}(jets.pt) (in {text(node)!r})"
            )
        return CandidateSpec(name, (ref,), text(node))
    if name not in BUILTINS:
        return None
    refs = tuple(parse_ref(a, defs) for a in args)
    if len(refs) != BUILTINS[name] or any(r is None or r.field is not None for r in refs):
        raise ConfigError(f"{where}: {name}() takes {BUILTINS[name]} object argument(s) (in {text(node)!r})")
    if name == "trijet_mass" and (refs[0].flag or not refs[1].flag or refs[1].obj != refs[0].obj):
        raise ConfigError(
            f"{where}: trijet_mass(c, c.flag) needs objects and one of their flags, "
            f"like trijet_mass(jets, jets.btag) (in {text(node)!r})"
        )
    return CandidateSpec(name, refs, text(node))


class Candidates(eqx.Module):
    """Static candidates of one sample.

    Attributes:
        combos: one entry per candidate, largest preference first in each
            event; field ``value`` (GeV for masses).
        members: ``Int[Array, "candidates n"]`` flat indices into the
            concatenated weights of the spec's references.
        runs: pairs only: the pairs sharing their first object, for the
            exclusive product of the objects between the two.
    """

    combos: Jagged
    members: Array
    runs: Jagged | None = None


def _offsets(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)])[:-1].astype(np.int64)


def _flat_members(local: list[ak.Array], counts: np.ndarray, parent_counts: np.ndarray) -> np.ndarray:
    event = np.repeat(np.arange(len(counts)), counts)
    start = _offsets(parent_counts)[event]
    cols = [ak.to_numpy(ak.flatten(c, axis=1)).astype(np.int64) + start for c in local]
    return np.stack(cols, axis=1).reshape(-1, len(local))


def _jagged(values: ak.Array) -> Jagged:
    counts = ak.to_numpy(ak.num(values, axis=1))
    seg, local = structure_from_counts(counts)
    flat = to_jax(ak.to_numpy(ak.flatten(values, axis=1)).astype(np.float64), jnp.result_type(float))
    return Jagged(
        fields={"value": flat},
        segment_ids=to_jax(seg),
        local_index=to_jax(local),
        n_events=len(counts),
        max_count=int(counts.max()) if len(counts) else 0,
    )


def _pairs(p4: ak.Array) -> Candidates:
    counts = ak.to_numpy(ak.num(p4, axis=1))
    i, j = ak.unzip(ak.argcombinations(p4, 2, axis=1))
    combos = _jagged((p4[i] + p4[j]).mass)
    members = _flat_members([i, j], combos.counts(), counts)
    gap = ak.to_numpy(ak.flatten(j - i, axis=1)).astype(np.int64)
    start = gap == 1
    runs = Jagged(
        fields={},
        segment_ids=to_jax(np.cumsum(start) - 1, np.int32),
        local_index=to_jax(gap - 1, np.int32),
        n_events=int(start.sum()),
        max_count=int(gap.max()) if len(gap) else 0,
    )
    return Candidates(combos, to_jax(members, np.int32), runs)


def _trijets(p4: ak.Array) -> Candidates:
    tri = trijets(p4)
    combos = _jagged(tri.mass)
    members = _flat_members([tri.i1, tri.i2, tri.i3], combos.counts(), ak.to_numpy(ak.num(p4, axis=1)))
    return Candidates(combos, to_jax(members, np.int32))


def _m4l(muons: ak.Array, electrons: ak.Array) -> Candidates:
    n_mu, n_el = (ak.to_numpy(ak.num(a, axis=1)) for a in (muons, electrons))
    flavoured = [
        ak.with_field(a, ak.full_like(a.charge, flag, dtype=bool), "is_muon")
        for a, flag in ((muons, True), (electrons, False))
    ]
    leptons = ak.concatenate(flavoured, axis=1)
    cands = zz_candidates(leptons)
    combos = _jagged(cands.m4l)
    counts = combos.counts()
    event = np.repeat(np.arange(len(counts)), counts)
    cols = []
    for k in range(1, 5):
        local = ak.to_numpy(ak.flatten(cands[f"i{k}"], axis=1)).astype(np.int64)
        is_mu = local < n_mu[event]
        cols.append(
            np.where(is_mu, _offsets(n_mu)[event] + local, n_mu.sum() + _offsets(n_el)[event] + local - n_mu[event])
        )
    members = np.stack(cols, axis=1).reshape(-1, 4)
    return Candidates(combos, to_jax(members, np.int32))


def _extreme(values: ak.Array, largest: bool) -> Candidates:
    order = ak.argsort(values, axis=1, ascending=not largest, stable=True)
    combos = _jagged(values[order])
    members = _flat_members([order], combos.counts(), ak.to_numpy(ak.num(values, axis=1)))
    return Candidates(combos, to_jax(members, np.int32))


def prepare(spec: CandidateSpec, built: Mapping[str, ak.Array], p4: Callable[[str], ak.Array]) -> Candidates:
    """Static candidates of ``spec`` for one sample (host, once).

    Args:
        spec: the candidate observable.
        built: object name -> static records (after require/order/union).
        p4: object name -> ``Momentum4D`` records of its objects (float64, GeV),
            with a ``charge`` field for leptons of ``m4l``.
    """
    if spec.kind in ("max", "min"):
        ref = spec.refs[0]
        return _extreme(ak.values_astype(built[ref.obj][ref.field], np.float64), spec.kind == "max")
    if spec.kind == "m4l":
        return _m4l(p4(spec.refs[0].obj), p4(spec.refs[1].obj))
    if spec.kind == "pair_mass":
        return _pairs(p4(spec.refs[0].obj))
    return _trijets(p4(spec.refs[0].obj))


def probabilities(
    spec: CandidateSpec,
    cands: Candidates,
    weight: Callable[[str], Array],
    raw: Callable[[str], Array],
    parent: Callable[[str], Jagged],
    backend: Backend = SOFT,
) -> Array:
    """Probability that each candidate is the chosen one, ``Float[Array, "candidates"]``.

    Args:
        spec: the candidate observable.
        cands: its static candidates.
        weight: weight key (``"jets"``, ``"jets.btag"``) -> ``(objects,)`` weights.
        raw: flag key -> ``(objects,)`` weight of the flag alone.
        parent: object name -> its :class:`~diffhep.jagged.Jagged`.
        backend: :data:`~diffhep.engine.backend.SOFT` or
            :data:`~diffhep.engine.backend.HARD` (0/1 weights).
    """
    m = backend.asarray(cands.members)
    if spec.kind in ("max", "min"):
        return backend.first_pass(cands.combos, weight(spec.refs[0].key)[m[:, 0]])
    if spec.kind == "pair_mass":
        ref = spec.refs[0]
        w = weight(ref.key)
        w_second = w[m[:, 1]]
        first = backend.first_pass(parent(ref.obj), w)[m[:, 0]]
        return first * w_second * backend.none_before(cands.runs, w_second)
    if spec.kind == "trijet_mass":
        w, tag = weight(spec.refs[0].key), raw(spec.refs[1].key)
        selected = w[m[:, 0]] * w[m[:, 1]] * w[m[:, 2]]
        untagged = (1.0 - tag[m[:, 0]]) * (1.0 - tag[m[:, 1]]) * (1.0 - tag[m[:, 2]])
        return backend.first_pass(cands.combos, selected * (1.0 - untagged))
    w = backend.xp.concatenate([weight(r.key) for r in spec.refs])
    return backend.first_pass(cands.combos, w[m[:, 0]] * w[m[:, 1]] * w[m[:, 2]] * w[m[:, 3]])


def expected(cands: Candidates, prob: Array, backend: Backend = SOFT) -> tuple[Array, Array]:
    """``(P(a candidate is chosen), expected value given one is)``, both ``(events,)``; value 0 if none.

    The value is 0 also where that probability is below the float type's epsilon: the derivative of
    ``total / exists`` grows as ``1 / exists**2``, which overflowed to a non-finite gradient where a
    candidate was all but impossible (float32, a network input ``trijet_mass(jets, jets.btag)``).
    """
    xp, value = backend.xp, backend.asarray(cands.combos.value)
    exists = backend.segment_sum(cands.combos, prob)
    total = backend.segment_sum(cands.combos, prob * value)
    ok = exists > xp.finfo(exists.dtype).eps
    return exists, xp.where(ok, total / xp.where(ok, exists, 1.0), 0.0)
