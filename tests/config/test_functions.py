"""The table of built-in functions (diffhep.config.functions) is what both the checks and the engine use."""

from __future__ import annotations

import ast

import numpy as np
import pytest

from diffhep.config import load_config_dict
from diffhep.config.functions import BUILTINS, ELEMENTWISE, OBJECT_FUNCTIONS
from diffhep.engine import builtins
from diffhep.engine.backend import HARD, SOFT
from diffhep.engine.expressions import Evaluator, parse
from diffhep.errors import ConfigError

X = np.array([0.3, 1.7, 2.2])
Y = np.array([-1.0, 0.5, 4.0])
Z = np.array([0.9, -2.0, 3.0])


class _Fields(Evaluator):
    def name(self, node: ast.Name):
        return {"x": X, "y": Y, "z": Z}[node.id]


def _evaluate(text: str, backend):
    evaluator = _Fields(parameters={}, cuts={}, slopes={}, backend=backend, functions={}, where="test")
    return np.asarray(evaluator(parse(text, "test")))


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@pytest.mark.parametrize("backend", [SOFT, HARD], ids=["soft", "hard"])
def test_every_elementwise_function_of_the_table_is_evaluated_as_numpy_does(name, backend):
    low, _ = BUILTINS[name].arity
    args = ["x", "y", "z"][: max(low, 2 if "reduction" in BUILTINS[name].kinds else low)]
    expected = getattr(np, ELEMENTWISE[name])(*(dict(x=X, y=Y, z=Z)[a] for a in args))
    np.testing.assert_allclose(_evaluate(f"{name}({', '.join(args)})", backend), expected, rtol=1e-6)


def test_min_and_max_of_three_values():
    np.testing.assert_allclose(_evaluate("max(x, y, z)", HARD), np.maximum(np.maximum(X, Y), Z))
    np.testing.assert_allclose(_evaluate("min(x, y, z)", SOFT), np.minimum(np.minimum(X, Y), Z), rtol=1e-6)


def test_the_engine_knows_every_candidate_of_the_table():
    candidates = {n for n, f in BUILTINS.items() if "candidate" in f.kinds}
    assert set(builtins.BUILTINS) == candidates
    assert all(BUILTINS[n].unit == "GeV" for n in candidates)  # masses: axis labels say GeV


def test_the_checks_take_names_and_arities_from_the_table():
    config = {
        "name": "t",
        "lumi_pb": 1.0,
        "samples": {"s": {"role": "signal", "files": ["s.root"], "xsec_pb": 1.0}},
        "parameters": {"c": {"init": 1.0, "bounds": [0.0, 2.0], "slope": 1.0}},
        "objects": {"j": {"collection": "Jet", "cuts": "arctan2(eta, phi) > c"}},
        "regions": {
            "r": {
                "select": "count(j) >= 1",
                "observable": "MET_pt",
                "binning": {"bins": 2, "range": [0, 1]},
                "bandwidth": 0.0,
            }
        },
    }
    assert "arctan2" in OBJECT_FUNCTIONS
    load_config_dict(config)  # arctan2 takes two arguments: fine
    config["objects"]["j"]["cuts"] = "arctan2(eta) > c"
    with pytest.raises(ConfigError, match=r"arctan2\(\) takes 2 argument"):
        load_config_dict(config)
