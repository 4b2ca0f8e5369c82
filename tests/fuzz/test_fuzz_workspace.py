"""Fuzz :func:`diffhep.likelihood.from_workspace` against pyhf on the same mutated workspace.

Start: the small workspaces of ``workspace_factory`` (each modifier type alone, all
of them on two channels, pyhf's simple models). Mutations: dropped keys, values of
the wrong type, lists cut or lengthened (bin counts that disagree), negative, NaN
and infinite yields and uncertainties, unknown modifier types, duplicated
channels, samples, modifiers and measurements, names made equal, empty lists.

pyhf's verdict is ``pyhf.Workspace(ws).model()`` and the logpdf of its observed
data at its suggested init. Where both accept, the logpdfs agree (NaN where pyhf
gives NaN); where pyhf refuses, diffhep refuses with one line; diffhep may refuse
what pyhf accepts (counted as "stricter than pyhf"); anything else fails.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import jax
import numpy as np
import pyhf
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_config import paths_of
from workspace_factory import MODIFIER_KINDS, modifier_spec, small_workspace

from diffhep.errors import DiffhepError
from diffhep.likelihood import from_workspace, observed_data

BASES = {kind: small_workspace(modifier_spec(kind)) for kind in MODIFIER_KINDS}


WRONG = st.sampled_from([None, "x", "", -1, 0, 1.5, [], {}, True, [1.0], {"a": 1}, "1.0.0", 10**400])
YIELD = st.sampled_from([-1.0, -1e-9, 0.0, math.nan, math.inf, -math.inf, 1e308, 1e-300])
TYPES = st.sampled_from(["shapesyst", "", "normsys ", "NormSys", "lumi2", "staterror", "histosys", "shapefactor"])
ACTION = st.one_of(
    st.tuples(st.just("drop"), st.integers(0, 10**6)),
    st.tuples(st.just("wrong"), st.integers(0, 10**6), WRONG),
    st.tuples(st.just("resize"), st.integers(0, 10**6), st.integers(-3, 2)),
    st.tuples(st.just("number"), st.integers(0, 10**6), YIELD),
    st.tuples(st.just("type"), st.integers(0, 10**6), TYPES),
    st.tuples(st.just("duplicate"), st.integers(0, 10**6), st.integers(0, 10)),
    st.tuples(st.just("same name"), st.integers(0, 10**6), st.integers(0, 10**6)),
)


def _at(ws: Any, path: tuple) -> Any:
    for key in path:
        ws = ws[key]
    return ws


def mutate(kind: str, actions: list[tuple]) -> dict:
    """Apply each action to a path of the given kind chosen by its index among the paths that fit."""
    ws = copy.deepcopy(BASES[kind])
    for action in actions:
        name, pick = action[0], action[1]
        paths = [p for p in paths_of(ws)[1:] if _fits(name, p, _at(ws, p))]
        if not paths:
            continue
        path = paths[pick % len(paths)]
        parent, last, value = _at(ws, path[:-1]), path[-1], _at(ws, path)
        if name == "drop":
            del parent[last]
        elif name in ("wrong", "number", "type"):
            parent[last] = action[2]
        elif name == "resize":
            parent[last] = value[: max(len(value) + action[2], 0)] if action[2] < 0 else value + value[-1:] * action[2]
        elif name == "duplicate":
            value.append(copy.deepcopy(value[action[2] % len(value)]))
        else:  # a name made equal to another name of the workspace
            names = [_at(ws, p) for p in paths_of(ws)[1:] if p[-1] == "name" and isinstance(_at(ws, p), str)]
            parent[last] = names[action[2] % len(names)]
    return ws


def _fits(action: str, path: tuple, value: Any) -> bool:
    if action == "resize":
        return isinstance(value, list) and bool(value)
    if action == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if action == "type":
        return path[-1] == "type"
    if action == "duplicate":
        return isinstance(value, list) and bool(value) and isinstance(value[0], dict)
    if action == "same name":
        return path[-1] == "name"
    return True


def pyhf_logpdf(ws: dict) -> tuple[float, np.ndarray] | None:
    """pyhf's logpdf of the observed data at its suggested init, or None if pyhf refuses the workspace."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            workspace = pyhf.Workspace(copy.deepcopy(ws))
            model = workspace.model()
            init = np.asarray(model.config.suggested_init(), dtype=float)
            return float(np.asarray(model.logpdf(init, workspace.data(model)))[0]), init
    except Exception:  # noqa: BLE001 - any refusal of pyhf's
        return None


def test_mutated_workspaces_against_pyhf(fuzz) -> None:
    @fuzz.settings(examples=20)
    @given(st.sampled_from(MODIFIER_KINDS), st.lists(ACTION, min_size=1, max_size=3))
    def check(kind: str, actions: list[tuple]) -> None:
        ws = mutate(kind, actions)
        reference = pyhf_logpdf(ws)
        with jax.enable_x64(True), fuzz.case("workspaces: from_workspace vs pyhf") as case:
            try:
                model = from_workspace(copy.deepcopy(ws))
                init = np.asarray(model.config.suggested_init(), dtype=float)
                logpdf = float(np.asarray(model.logpdf(init, observed_data(ws, model))).reshape(-1)[0])
            except DiffhepError as err:
                if reference is None:
                    raise
                assert "\n" not in str(err), str(err)
                case.outcome("stricter than pyhf")
                return
            assert reference is not None, f"pyhf refuses this workspace; diffhep gives logpdf {logpdf}"
            expected, pyhf_init = reference
            np.testing.assert_array_equal(init, pyhf_init)
            assert (math.isnan(logpdf) and math.isnan(expected)) or math.isclose(logpdf, expected, rel_tol=1e-9), (
                logpdf,
                expected,
            )

    check()
