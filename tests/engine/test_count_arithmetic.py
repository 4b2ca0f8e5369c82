"""A count used in arithmetic (issue 18 item 6): refused when the analysis is built, exact forms kept.

``count(c) <op> N`` (N a whole number >= 0) is the exact probability of the count; a comparison
reading a parameter is a soft cut. Any other comparison of a count (``count(a) + count(b) >= 3``)
or a count used as a condition would be a 0/1 step of the expected count in the soft selection:
no gradient w.r.t. the cuts. The config check refuses those with one line naming the field.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_configured import write_events

from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.errors import ConfigError

CUTS = {"lep_pt": 20.0, "jet_pt": 35.0, "btag_min": 0.5, "n_lep": 1.5}


@pytest.fixture(scope="module", autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("count_arithmetic")
    write_events(path / "s.root", 300, 5, signal=True)
    return path


def config(regions: dict[str, dict]) -> dict:
    """Muons, electrons, their union, jets with a b-tag flag; ``regions``: name -> select (and observable)."""
    return {
        "name": "counts",
        "lumi_pb": 10.0,
        "samples": {"s": {"role": "signal", "files": ["s.root"], "xsec_pb": 5.0, "weight": "genWeight"}},
        "parameters": {
            "lep_pt": {"init": 20, "bounds": [5, 60], "slope": 0.5},
            "jet_pt": {"init": 30, "bounds": [20, 80], "slope": 0.5},
            "btag_min": {"init": 0.5, "bounds": [0.1, 0.95], "slope": 20},
            "n_lep": {"init": 1.5, "bounds": [0, 5], "slope": 2},
        },
        "objects": {
            "muons": {"collection": "Muon", "cuts": "pt > lep_pt"},
            "electrons": {"collection": "Electron", "cuts": "pt > lep_pt"},
            "leptons": {"union": ["muons", "electrons"]},
            "jets": {"collection": "Jet", "cuts": "pt > jet_pt", "flags": {"btag": "btag > btag_min"}},
        },
        "regions": {
            name: {"observable": "MET_pt", "binning": {"bins": 4, "range": [0, 200]}, "bandwidth": 0, **spec}
            for name, spec in regions.items()
        },
    }


def uses_every_parameter(select: str) -> dict[str, dict]:
    """A region with ``select`` plus one that reads every parameter (unused parameters are refused)."""
    return {
        "sr": {"select": select},
        "other": {"select": "count(jets.btag) >= 1 and count(leptons) >= 1 and MET_pt > 10 * n_lep"},
    }


REFUSED = [
    "count(muons) + count(electrons) >= 3",
    "count(jets) * 2 > 5",
    "count(jets) - count(jets.btag) >= 2",
    "count(jets) == count(muons)",
    "count(jets) >= 2.5",
    "count(jets) >= -1",
    "2 <= count(jets) + 1 <= 4",
    "MET_pt > 20 and abs(count(jets) - 3) < 1",
    "pair_mass(muons) > 10 * count(jets)",
    "count(jets) >= 2 or (count(muons) + count(electrons)) / 2 > 1",
    "MET_pt * (count(jets) >= 3) > 20",
]


@pytest.mark.parametrize("select", REFUSED)
def test_a_count_compared_other_than_with_a_whole_number_is_one_line_naming_the_field(folder, select):
    with pytest.raises(ConfigError) as err:
        ConfiguredAnalysis.from_config(config(uses_every_parameter(select)), base=folder)
    message = str(err.value)
    assert "\n" not in message, message
    assert "regions.sr.select" in message and "a count can only be compared with a whole number" in message, message
    assert "union" in message, message  # says what to write instead


@pytest.mark.parametrize(
    "select, piece",
    [
        ("count(jets)", "count(jets)"),
        ("not count(muons)", "count(muons)"),
        ("count(jets) - 2 and MET_pt > 20", "count(jets) - 2"),
        ("MET_pt > 20 or count(jets.btag)", "count(jets.btag)"),
    ],
)
def test_a_count_used_as_a_condition_is_one_line_naming_the_field(folder, select, piece):
    with pytest.raises(ConfigError) as err:
        ConfiguredAnalysis.from_config(config(uses_every_parameter(select)), base=folder)
    message = str(err.value)
    assert "\n" not in message, message
    assert "regions.sr.select" in message and f"{piece!r}: a count is not a condition" in message, message
    assert ">= 1 or any(" in message, message


def test_a_count_compared_inside_an_observable_is_refused_naming_the_observable(folder):
    regions = uses_every_parameter("MET_pt > 0")
    regions["sr"]["observable"] = "MET_pt * (count(jets) + count(muons) > 2)"
    with pytest.raises(ConfigError, match=r"regions\.sr\.observable: 'count\(jets\) \+ count\(muons\) > 2': a count"):
        ConfiguredAnalysis.from_config(config(regions), base=folder)


#: Forms computed exactly (or a soft cut on a parameter): region -> select.
SUPPORTED = {
    "ge": "count(jets) >= 4",
    "flipped": "4 <= count(jets)",
    "eq": "count(jets) == 2",
    "flag": "count(jets.btag) >= 1",
    "chain": "1 <= count(jets) < 3 and count(jets.btag) == 0",
    "float_n": "count(jets) >= 3.0",
    "union": "count(leptons) >= 2",
    "parameter": "count(muons) + count(electrons) > n_lep",
}


@pytest.fixture(scope="module")
def supported(folder):
    regions = {name: {"select": select} for name, select in SUPPORTED.items()}
    regions["value"] = {"select": "count(jets) >= 1", "observable": "count(jets) + count(muons)"}
    regions["value"]["binning"] = {"bins": 20, "range": [0.5, 20.5]}
    analysis = ConfiguredAnalysis.from_config(config(regions), base=folder)
    return analysis, analysis.load()


def totals(analysis, data, slope_scale):
    def f(cuts):
        hists = analysis.soft_histograms(cuts, data, slope_scale)
        return jnp.stack([hists[name]["s"].counts.sum() for name in (*SUPPORTED, "value")])

    return jax.jit(f)


def test_supported_count_forms_converge_to_hard_at_steep_slopes(supported):
    analysis, data = supported
    hard = analysis.hard_histograms(CUTS)
    soft = totals(analysis, data, 1e6)({k: jnp.asarray(v) for k, v in CUTS.items()})
    expected = [hard[name]["s"].counts.sum() for name in (*SUPPORTED, "value")]
    assert min(expected) > 0
    np.testing.assert_allclose(soft, expected, rtol=1e-8)


def test_supported_count_forms_have_the_finite_difference_gradient_wrt_object_cuts(supported):
    analysis, data = supported
    f = totals(analysis, data, 1.0)
    cuts = {k: jnp.asarray(v) for k, v in CUTS.items()}
    grad = jax.jacfwd(f)(cuts)
    for name in ("jet_pt", "lep_pt"):
        h = 1e-4
        fd = (f({**cuts, name: cuts[name] + h}) - f({**cuts, name: cuts[name] - h})) / (2 * h)
        np.testing.assert_allclose(grad[name], fd, rtol=1e-6, atol=1e-9, err_msg=name)
    # every region depends on a jet or a lepton cut through its counts: none is a flat step
    moved = np.abs(np.asarray(grad["jet_pt"])) + np.abs(np.asarray(grad["lep_pt"]))
    assert np.all(moved > 1e-6), dict(zip((*SUPPORTED, "value"), moved.tolist(), strict=True))
