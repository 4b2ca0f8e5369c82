"""The table of built-in functions (diffhep.config.functions) is what both the checks and the engine use."""

from __future__ import annotations

import ast

import numpy as np
import pytest
import yaml

from diffhep.config import load_config, load_config_dict
from diffhep.config.functions import BUILTINS, ELEMENTWISE, OBJECT_FUNCTIONS
from diffhep.engine import builtins
from diffhep.engine.backend import HARD, SOFT
from diffhep.engine.configured import ConfiguredAnalysis
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


#: Integer values as a NanoAOD bitmask holds them (the CMS file's Jet_jetId: 0, 2, 6), and negatives.
BITS = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 255, -1, -6], dtype=np.int32)


def _evaluate_bits(text: str, backend, values):
    evaluator = _Fields(parameters={"c": None}, cuts={"c": 1.0}, slopes={"c": 1.0}, backend=backend, functions={},
                        where="test")  # fmt: skip
    evaluator.name = lambda node: values  # every name reads the bitmask
    return np.asarray(evaluator.weight(parse(text, "test")))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7])
def test_bit_is_the_bitwise_test_soft_and_hard_on_integers_and_their_floats(n):
    expected = ((BITS & (1 << n)) != 0).astype(float)  # two's complement for the negatives, as `&`
    for backend, values in [(HARD, BITS), (HARD, BITS.astype(np.float64)), (SOFT, BITS.astype(np.float32))]:
        np.testing.assert_array_equal(_evaluate_bits(f"bit(x, {n})", backend, values), expected, err_msg=backend)
    # a condition like any other (no parameter: a step in the soft backend too)
    both = _evaluate_bits(f"bit(x, {n}) and not bit(x, 0)", SOFT, BITS.astype(np.float32))
    np.testing.assert_array_equal(both, expected * ((BITS & 1) == 0))


def test_bit_errors_are_one_line():
    cases = {
        "bit(x, 2.5)": r"bit number n from 0 to 30, like bit\(jetId, 2\) \(in 'bit\(x, 2.5\)'\)",
        "bit(x, 31)": "bit number n from 0 to 30",
        "bit(x, c)": "bit number n from 0 to 30",
        "bit(x + c, 2)": "no parameters",
    }
    for text, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            _evaluate_bits(text, HARD, BITS)
    with pytest.raises(ConfigError, match=r"bit\(\) needs integer values .*'x' is 1.5 \(in 'bit\(x, 2\)'\)"):
        _evaluate_bits("bit(x, 2)", HARD, np.array([2.0, 1.5]))


def test_the_checks_know_bit_and_name_its_file_and_line(tmp_path):
    config = {
        "name": "t",
        "lumi_pb": 1.0,
        "samples": {"s": {"role": "signal", "files": ["s.root"], "xsec_pb": 1.0}},
        "parameters": {"c": {"init": 1.0, "bounds": [0.0, 2.0], "slope": 1.0}},
        "objects": {"j": {"collection": "Jet", "require": "bit(jetId, 2)", "cuts": "pt > c"}},
        "regions": {
            "r": {"select": "count(j) >= 1", "observable": "MET_pt", "binning": {"bins": 2, "range": [0, 1]},
                  "bandwidth": 0.0}
        },
    }  # fmt: skip
    assert "bit" in OBJECT_FUNCTIONS and "bit" not in ELEMENTWISE  # no NumPy function: the evaluator computes it
    ConfiguredAnalysis.from_config(load_config_dict(config).data)
    config["objects"]["j"]["require"] = "bit(jetId)"
    with pytest.raises(ConfigError, match=r"bit\(\) takes 2 argument"):
        load_config_dict(config)
    config["objects"]["j"]["require"] = "abs(eta) < 2.4 and bit(jetId, 2.0)"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    line = path.read_text().splitlines().index("    require: abs(eta) < 2.4 and bit(jetId, 2.0)") + 1
    with pytest.raises(
        ConfigError, match=rf"config.yaml:{line}: objects.j.require: bit\(x, n\) takes a value and a bit"
    ):
        ConfiguredAnalysis.from_config(load_config(path))
