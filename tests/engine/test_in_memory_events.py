"""Events already in memory (``ConfiguredAnalysis.from_config(config, events=...)``) give what the files give.

An AGC-style config on small generated AGC samples (every kind of variation,
one reading its own files) and on the CMS NanoAOD file: the hard and soft
histograms, the cutflow and the workspace from arrays read into memory with
uproot, as flat branches (``Jet_pt``, ``nJet``, ``MET_pt``) and as coffea-style
nested records (``events.Jet.pt``, ``events.MET.pt``, no counters, named records
with a behaviour), are identical to those read from the files: the loaded data
themselves are (every array, so every histogram at any cut), and the hard and
soft histograms and the workspace at one point are checked too. Then the
one-line errors: a wrong type, an unknown or a missing key, a missing branch.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import awkward as ak
import jax
import numpy as np
import pytest
import uproot

from diffhep.config import Config, load_config_dict
from diffhep.engine.chunked import ChunkedAnalysis
from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.errors import InputError
from diffhep.examples import ttbar
from diffhep.execute import ExecutionSettings
from diffhep.io import read_events
from diffhep.io.generate_agc import generate_agc_sample

CMS_FILE = "nanoAOD_2015_CMS_Open_Data_ttbar.root"
EVENTS = 300
#: Loose enough that the few events fill both regions (the generated samples and the CMS file's 200 events).
CUTS = {"lepton_pt_min": 10.3, "jet_pt_min": 20.1, "btag_min": 0.3}


def config(files: dict[str, str]) -> dict:
    """The AGC selection with every kind of variation: scale, smear, weight, its own files."""
    return {
        "name": "in_memory",
        "lumi_pb": 3378.0,
        "tree": "Events",
        "samples": {
            "ttbar": {"role": "signal", "files": [files["ttbar"]], "xsec_pb": 729.84, "weight": "genWeight"},
            "wjets": {"role": "background", "files": [files["wjets"]], "xsec_pb": 15487.164},
        },
        "parameters": {
            "lepton_pt_min": {"init": 30, "bounds": [10, 80], "slope": 0.5, "unit": "GeV"},
            "jet_pt_min": {"init": 30, "bounds": [20, 80], "slope": 0.5, "unit": "GeV"},
            "btag_min": {"init": 0.5, "bounds": [0.1, 0.95], "slope": 20, "unit": ""},
        },
        "objects": {
            "muons": {
                "collection": "Muon",
                "require": "abs(eta) < 2.1 and tightId and sip3d < 4 and pfRelIso04_all < 0.15",
                "cuts": "pt > lepton_pt_min",
            },
            "electrons": {
                "collection": "Electron",
                "require": "abs(eta) < 2.1 and cutBased == 4 and sip3d < 4",
                "cuts": "pt > lepton_pt_min",
            },
            "leptons": {"union": ["muons", "electrons"]},
            "jets": {
                "collection": "Jet",
                "require": "abs(eta) < 2.4 and bit(jetId, 2)",
                "cuts": "pt > jet_pt_min",
                "order": "pt",
                "flags": {"btag": "btagCSVV2 > btag_min"},
            },
        },
        "regions": {
            "4j1b": {
                "select": "count(leptons) == 1 and count(jets) >= 4 and count(jets.btag) == 1 and MET_pt > 0",
                "observable": "sum(jets.pt)",
                "binning": {"bins": 11, "range": [110, 550]},
                "bandwidth": 5,
            },
            "4j2b": {
                "select": "count(leptons) == 1 and count(jets) >= 4 and count(jets.btag) >= 2 and nJet >= 4",
                "observable": "trijet_mass(jets, jets.btag)",
                "binning": {"bins": 11, "range": [110, 550]},
                "bandwidth": 5,
            },
        },
        "systematics": {
            "lumi": {"type": "lumi", "sigma": 0.03},
            "jes": {"type": "histosys", "samples": ["ttbar", "wjets"], "up": {"scale": {"Jet_pt": 1.03}}},
            "jer": {"type": "histosys", "up": {"smear": {"Jet_pt": 0.05}, "seed": 7}},
            "btag": {
                "type": "histosys",
                "up": {"weight": "1 + 0.075 * leading(jets.pt, 0) / 50"},
                "down": {"weight": "1 - 0.075 * leading(jets.pt, 0) / 50"},
            },
            "ttbar_model": {"type": "histosys", "samples": ["ttbar"], "up": {"files": [files["ttbar_alt"]]}},
            "mc_stat": {"type": "staterror"},
        },
        "measurement": {"poi": "mu"},
        "objective": {"name": "discovery_significance"},
    }


def nanoevents_like(flat: ak.Array) -> ak.Array:
    """What coffea's NanoEvents makes of uproot's flat branches, built by hand (coffea is no dependency):
    ``Jet_pt`` -> ``events.Jet.pt`` (a list of records named ``Jet``), ``MET_pt`` -> ``events.MET.pt``
    (a record), the counters ``nJet`` dropped, and a behaviour with a method that is not a field."""
    groups: dict[str, dict[str, ak.Array]] = {}
    out: dict[str, ak.Array] = {}
    for name in flat.fields:
        prefix, sep, rest = name.partition("_")
        if sep:
            groups.setdefault(prefix, {})[rest] = flat[name]
        else:
            out[name] = flat[name]
    for prefix, fields in groups.items():
        jagged = isinstance(next(iter(fields.values())).type.content, ak.types.ListType)
        out[prefix] = ak.zip(fields, depth_limit=2 if jagged else 1, with_name=prefix)
        out.pop(f"n{prefix}", None)

    class Jet(ak.Record):
        @property
        def ptx2(self):
            return 2 * self["pt"]

    return ak.Array(ak.zip(out, depth_limit=1), behavior={"Jet": Jet})


def _forms(path: str | Path) -> dict[str, ak.Array]:
    flat = uproot.open(path)["Events"].arrays()
    return {"flat": flat, "nested": nanoevents_like(flat)}


@pytest.fixture(scope="module", autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Config, dict[str, dict[str, ak.Array]], ConfiguredAnalysis]:
    """The config on generated samples, their events in memory in both forms, and the analysis of the files."""
    folder = tmp_path_factory.mktemp("in_memory")
    files = {name: str(folder / f"{name}.root") for name in ("ttbar", "wjets", "ttbar_alt")}
    for seed, (name, path) in enumerate(files.items()):
        generate_agc_sample(path, name, EVENTS, seed=seed + 1)
    data = load_config_dict(config(files), base_dir=folder)
    forms = {name: _forms(path) for name, path in files.items()}
    from_files = ConfiguredAnalysis.from_config(data)
    from_files.load()
    return data, forms, from_files


@pytest.fixture(scope="module")
def in_memory(generated) -> dict[str, ConfiguredAnalysis]:
    """Form -> the analysis of the same events in memory, loaded."""
    data, forms, _ = generated
    out = {form: ConfiguredAnalysis.from_config(data, events=_events(forms, form)) for form in ("flat", "nested")}
    for analysis in out.values():
        analysis.load()
    return out


def _events(forms: dict[str, dict[str, ak.Array]], form: str) -> dict[str, ak.Array]:
    return {
        "ttbar": forms["ttbar"][form],
        "wjets": forms["wjets"][form],
        "ttbar/ttbar_model/up": forms["ttbar_alt"][form],
    }


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for region in a:
        assert a[region].keys() == b[region].keys()
        for key in a[region]:
            np.testing.assert_array_equal(np.asarray(a[region][key].counts), np.asarray(b[region][key].counts))
            np.testing.assert_array_equal(np.asarray(a[region][key].sumw2), np.asarray(b[region][key].sumw2))


@pytest.mark.parametrize("form", ["flat", "nested"])
def test_events_in_memory_load_the_data_of_the_files(generated, in_memory, form):
    """The loaded structure (every array, every static field) is the files': so is every histogram at any cut."""
    _, _, from_files = generated
    memory = in_memory[form]
    assert jax.tree.structure(memory._data) == jax.tree.structure(from_files._data)
    for mine, theirs in zip(jax.tree.leaves(memory._data), jax.tree.leaves(from_files._data), strict=True):
        assert mine.dtype == theirs.dtype
        np.testing.assert_array_equal(mine, theirs)
    assert memory.discrete == from_files.discrete and "jets.jetId" in memory.discrete  # from the arrays' types
    assert memory.mean_weights == from_files.mean_weights
    assert memory.input_bytes() == 0


@pytest.mark.parametrize("form", ["flat", "nested"])
def test_events_in_memory_give_the_hard_histograms_and_workspace_of_the_files(generated, in_memory, form):
    _, _, from_files = generated
    memory = in_memory[form]
    hard = memory.hard_histograms(CUTS)
    _same(hard, from_files.hard_histograms(CUTS))
    assert sum(float(h.counts.sum()) for h in hard["4j2b"].values()) > 0  # the cuts fill the regions
    assert memory.workspace(hard) == from_files.workspace(from_files.hard_histograms(CUTS))


def test_events_in_memory_give_the_soft_histograms_of_the_files(generated, in_memory):
    _, _, from_files = generated
    soft = jax.jit(from_files.soft_histograms)  # one compiled function: the data have the same shapes
    expected = soft(CUTS, from_files._data)
    for memory in in_memory.values():
        _same(soft(CUTS, memory._data), expected)


@pytest.fixture(scope="module")
def cms(shared_data) -> tuple[Config, ConfiguredAnalysis, dict, dict[str, ak.Array]]:
    """The config on the CMS file (fewer systematics), the analysis of the file, its hard histograms, and
    every branch of the file read into memory with uproot in both forms."""
    path = shared_data / CMS_FILE
    raw = config({"ttbar": str(path), "wjets": str(path), "ttbar_alt": str(path)})
    raw["systematics"] = {k: raw["systematics"][k] for k in ("lumi", "jes", "ttbar_model", "mc_stat")}
    data = load_config_dict(raw, base_dir=shared_data)
    from_files = ConfiguredAnalysis.from_config(data)
    hard = from_files.hard_histograms(CUTS)
    assert sum(float(h.counts.sum()) for h in hard["4j1b"].values()) > 0
    return data, from_files, hard, _forms(path)


@pytest.mark.parametrize("form", ["flat", "nested"])
def test_the_cms_nanoaod_file_read_into_memory_gives_what_the_file_gives(cms, form):
    data, from_files, hard, forms = cms
    events = forms[form]  # 947 branches: HLT_* flags become a record of booleans, LHE weights lists, ...
    memory = ConfiguredAnalysis.from_config(
        data, events={"ttbar": events, "wjets": events, "ttbar/ttbar_model/up": events}
    )
    assert memory.discrete == from_files.discrete
    _same(memory.hard_histograms(CUTS), hard)
    assert memory.workspace(memory.hard_histograms(CUTS)) == from_files.workspace(hard)


def test_coffea_nanoevents(shared_data):
    """A real coffea NanoEvents array, where coffea is installed (no dependency of diffhep)."""
    nanoevents = pytest.importorskip("coffea.nanoevents")
    path = shared_data / CMS_FILE
    with warnings.catch_warnings():  # coffea's own, on this 2015 file: missing cross-references of newer schemas
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            events = nanoevents.NanoEventsFactory.from_root({str(path): "Events"}, mode="eager").events()
        except TypeError:  # coffea before 2025: delayed=False
            events = nanoevents.NanoEventsFactory.from_root({str(path): "Events"}, delayed=False).events()
    assert isinstance(events.MET.pt, ak.Array) and "nJet" not in events.fields
    files = {"ttbar": str(path), "wjets": str(path), "ttbar_alt": str(path)}
    data = load_config_dict(config(files), base_dir=shared_data)
    memory = ConfiguredAnalysis.from_config(
        data, events={"ttbar": events, "wjets": events, "ttbar/ttbar_model/up": events}
    )
    from_files = ConfiguredAnalysis.from_config(data)
    assert memory.discrete == from_files.discrete
    _same(memory.hard_histograms(CUTS), from_files.hard_histograms(CUTS))
    prepared = ttbar.prepare(events, normalisation=1.0)
    expected = ttbar.prepare(read_events(path, branches=ttbar.BRANCHES), normalisation=1.0)
    for mine, theirs in zip(jax.tree.leaves(prepared), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def _error(data: dict, events) -> str:
    with pytest.raises(InputError) as err:
        ConfiguredAnalysis.from_config(data, events=events).load()
    message = str(err.value)
    assert "\n" not in message
    return message


def test_errors_name_what_is_wrong_and_what_was_expected(generated):
    data, forms, _ = generated
    events = _events(forms, "flat")
    flat = events["ttbar"]
    message = _error(data, flat)
    assert message.startswith("events: expected a mapping of sample name -> its events") and "Awkward Array" in message
    message = _error(data, {**events, "ttbar": np.zeros(3)})
    assert message.startswith("events['ttbar']: expected an Awkward Array of events") and "NumPy array" in message
    message = _error(data, {**events, "wjets": {"Jet_pt": [[40.0]], "MET_pt": [20.0]}})
    assert message.startswith("events['wjets']: expected an Awkward Array") and "ak.Array(d)" in message
    message = _error(data, {**events, "ttbar": flat.Jet_pt})
    assert "got an Awkward Array of type var * float32" in message
    message = _error(data, {**events, "ttbarr": flat})
    assert (
        message
        == "events['ttbarr']: no sample or variation reading its own files has that name (did you mean 'ttbar'?)"
    )
    message = _error(data, {**events, "ttbar/jes/up": flat})
    assert "variation 'ttbar/jes/up' reads no files of its own" in message and "events['ttbar']" in message
    message = _error(data, {k: v for k, v in events.items() if k != "wjets"})
    assert message == "sample 'wjets' has no events in memory: give them as events['wjets']"
    message = _error(data, {k: v for k, v in events.items() if "/" not in k})
    assert message == (
        "variation 'ttbar/ttbar_model/up' reads other files (systematics.ttbar_model.up.files): "
        "give its events as events['ttbar/ttbar_model/up']"
    )


@pytest.mark.parametrize("form", ["flat", "nested"])
def test_a_missing_branch_is_named_with_the_sample_and_the_closest_name(generated, form):
    data, forms, _ = generated
    events = _events(forms, form)
    flat = forms["wjets"]["flat"]
    without_met = flat[[f for f in flat.fields if f != "MET_pt"]]
    message = _error(data, {**events, "wjets": without_met if form == "flat" else nanoevents_like(without_met)})
    assert message.startswith("sample 'wjets': region '4j1b' select")  # the sample first, as for files
    assert "branch 'MET_pt' not in events['wjets']" in message
    assert "did you mean" in message
    broken = copy.deepcopy(data.raw)
    broken["objects"]["jets"]["flags"] = {"btag": "btagCSV > btag_min"}
    analysis = load_config_dict(broken, base_dir=data.base_dir)
    message = _error(analysis, events)
    assert "field 'btagCSV' needs branch 'Jet_btagCSV', not in events['ttbar'] (did you mean 'Jet_btagCSVV2'?)" in (
        message
    )


def test_streaming_refuses_events_in_memory(generated):
    data, forms, _ = generated
    memory = ConfiguredAnalysis.from_config(data, events=_events(forms, "flat"))
    with pytest.raises(InputError, match="events given in memory run in memory"):
        ChunkedAnalysis(memory, data, settings=ExecutionSettings(mode="streaming"))


@pytest.mark.parametrize("form", ["flat", "nested"])
def test_the_python_api_of_the_ttbar_template_takes_events_in_memory(cms, shared_data, form):
    """``diffhep.examples.ttbar.prepare`` (the hand-written AGC selection) on the events in memory is the same
    as on :func:`diffhep.io.read_events`'s (it read ``events.Jet`` only, and failed on flat branches)."""
    _, _, _, forms = cms
    expected = ttbar.prepare(read_events(shared_data / CMS_FILE, branches=ttbar.BRANCHES), normalisation=1.0)
    prepared = ttbar.prepare(forms[form], normalisation=1.0)
    assert jax.tree.structure(prepared) == jax.tree.structure(expected)
    for mine, theirs in zip(jax.tree.leaves(prepared), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(InputError, match=r"^events: no branch 'Jet_btagCSVV2' \(did you mean"):
        ttbar.prepare(forms["flat"][[f for f in forms["flat"].fields if f != "Jet_btagCSVV2"]], normalisation=1.0)
