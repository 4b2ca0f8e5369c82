"""correctionlib corrections in event weights, and the two normalisations of a sample (issue 14 items 8 and 3).

On a copy of the CMS Open Data ttbar file (200 events; 26 negative ``genWeight``), a config
with a ``corrections:`` file (written here, with a ``string``, a ``real`` and an
``int`` input) calls ``correction(set.name, ...)`` in a sample's weight (an
``int`` input read from the ``nJet`` branch) and in variation weights (a ``real``
input from ``leading(jets.pt, i)``). Its per-event weights equal correctionlib
called directly on plain-Awkward values, for ``normalisation: weight``
(``xsec * lumi / sum(weight)``) and ``normalisation: events`` (``xsec * lumi / N``);
the streaming execution gives the in-memory histograms.
"""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import correctionlib
import jax
import numpy as np
import pytest
import uproot
import yaml

from diffhep.config import load_config
from diffhep.engine.chunk_prepare import ChunkProgram, PrepareChunk
from diffhep.engine.chunked import ChunkedAnalysis
from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.errors import ConfigError
from diffhep.execute import ExecutionSettings
from diffhep.io import read_events

FILE = "nanoAOD_2015_CMS_Open_Data_ttbar.root"
LUMI, XSEC = 3378.0, 729.84
CUTS = {"jet_pt_min": 20.1}

#: A correctionlib file: ``jet_sf(direction: string, pt: real)`` and ``njet_sf(n: int)``.
CORRECTIONS = {
    "schema_version": 2,
    "corrections": [
        {
            "name": "jet_sf",
            "version": 1,
            "inputs": [{"name": "direction", "type": "string"}, {"name": "pt", "type": "real"}],
            "output": {"name": "weight", "type": "real"},
            "data": {
                "nodetype": "category",
                "input": "direction",
                "content": [
                    {
                        "key": "up",
                        "value": {
                            "nodetype": "formula",
                            "expression": "1.0 + x / 400",
                            "parser": "TFormula",
                            "variables": ["pt"],
                        },
                    },
                    {
                        "key": "down",
                        "value": {
                            "nodetype": "formula",
                            "expression": "1.0 - x / 400",
                            "parser": "TFormula",
                            "variables": ["pt"],
                        },
                    },
                ],
            },
        },  # fmt: skip
        {
            "name": "njet_sf",
            "version": 1,
            "inputs": [{"name": "n", "type": "int"}],
            "output": {"name": "weight", "type": "real"},
            "data": {
                "nodetype": "category",
                "input": "n",
                "content": [{"key": 0, "value": 0.5}, {"key": 1, "value": 0.8}, {"key": 2, "value": 1.5}],
                "default": 1.1,
            },
        },
    ],
}


def config(path: str, normalisation: str) -> dict:
    """One sample of the CMS file, weighted by ``genWeight`` and a correction of its jet count."""
    return {
        "name": "corrections",
        "lumi_pb": LUMI,
        "corrections": {"sf": {"file": "corrections.json"}},  # relative to the config's folder
        "samples": {
            "ttbar": {
                "role": "signal",
                "files": [path],
                "xsec_pb": XSEC,
                "weight": "genWeight * correction(sf.njet_sf, nJet)",
                "normalisation": normalisation,
            }
        },
        "parameters": {"jet_pt_min": {"init": 30, "bounds": [20, 80], "slope": 0.5, "unit": "GeV"}},
        "objects": {
            "jets": {"collection": "Jet", "require": "abs(eta) < 2.4", "cuts": "pt > jet_pt_min", "order": "pt"}
        },
        "regions": {
            "ht": {
                "select": "count(jets) >= 2",
                "observable": "sum(jets.pt)",
                "binning": {"bins": 8, "range": [0, 400]},
                "bandwidth": 10,
            }
        },
        "systematics": {
            "jet_sf": {
                "type": "histosys",
                "up": {"weight": 'correction(sf.jet_sf, "up", leading(jets.pt, 1))'},
                "down": {"weight": 'correction(sf.jet_sf, "down", leading(jets.pt, 1))'},
            },
            "flat": {"type": "histosys", "up": {"weight": 'correction(sf.jet_sf, "up", 40)'}},  # numbers only: 1.1
        },
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory, data_file) -> tuple[Path, str]:
    """A folder with the correction file, and a copy of the CMS file with the branches read here
    (each open of the original's 947 branches takes a second)."""
    folder = tmp_path_factory.mktemp("corrections")
    (folder / "corrections.json").write_text(json.dumps(CORRECTIONS))
    with uproot.open(data_file(FILE)) as file:
        arrays = file["Events"].arrays(["genWeight", "Jet_pt", "Jet_eta"])
    slim = {"genWeight": arrays["genWeight"], "Jet": ak.zip({"pt": arrays["Jet_pt"], "eta": arrays["Jet_eta"]})}
    with uproot.recreate(folder / "cms_slim.root") as file:  # a TTree with its counter nJet, as the original
        file.mktree("Events", {k: v.type for k, v in slim.items()}).extend(slim)
    return folder, str(folder / "cms_slim.root")


def _write(folder: Path, data: dict, name: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _weights(path: Path) -> tuple[ConfiguredAnalysis, dict[str, np.ndarray]]:
    with jax.enable_x64(True):
        analysis = ConfiguredAnalysis.from_config(load_config(path))
        data = analysis.load()
    return analysis, {k: data.weights_of(k) for k in data.keys}  # a weight variation: a row over its sample


@pytest.fixture(scope="module")
def plain(folder):
    """What the weights must be: correctionlib called directly on plain-Awkward values."""
    _, path = folder
    events = read_events(path, branches=["genWeight", "nJet", "Jet_pt", "Jet_eta"])
    cset = correctionlib.CorrectionSet.from_file(str(folder[0] / "corrections.json"))
    jets = events.Jet[abs(events.Jet.eta) < 2.4]
    pt = ak.sort(jets.pt, axis=1, ascending=False)
    pt1 = ak.to_numpy(ak.fill_none(ak.pad_none(pt, 2, axis=1)[:, 1], 0)).astype(np.float64)
    weight = np.asarray(events.genWeight, dtype=np.float64) * cset["njet_sf"].evaluate(
        np.asarray(events.nJet, dtype=np.int64)
    )
    return {
        "weight": weight,
        "up": cset["jet_sf"].evaluate("up", pt1),
        "down": cset["jet_sf"].evaluate("down", pt1),
        "nJet": np.asarray(events.nJet),
    }


@pytest.mark.parametrize("normalisation", ["weight", "events"])
def test_weights_are_correctionlibs(folder, plain, normalisation):
    root, path = folder
    _, weights = _weights(_write(root, config(path, normalisation), normalisation))
    n = len(plain["weight"])
    assert n == 200 and np.sum(plain["weight"] < 0) > 0 and len(np.unique(plain["nJet"])) > 3
    total = np.sum(plain["weight"]) if normalisation == "weight" else n
    nominal = plain["weight"] * XSEC * LUMI / total
    np.testing.assert_allclose(weights["ttbar"], nominal, rtol=1e-12, atol=0)
    for direction in ("up", "down"):  # the variation's weight multiplies the nominal one
        varied = weights[f"ttbar/jet_sf/{direction}"]
        np.testing.assert_allclose(varied, nominal * plain[direction], rtol=1e-12, atol=0)
        assert np.std(plain[direction]) > 0
    np.testing.assert_allclose(weights["ttbar/flat/up"], nominal * 1.1, rtol=1e-12, atol=0)
    if normalisation == "weight":
        assert np.sum(weights["ttbar"]) == pytest.approx(XSEC * LUMI, rel=1e-12)
    else:  # the mean weight (genWeight times the correction) is not 1: the events normalisation keeps it
        assert np.sum(weights["ttbar"]) == pytest.approx(XSEC * LUMI * np.mean(plain["weight"]), rel=1e-12)
        assert np.sum(weights["ttbar"]) != pytest.approx(XSEC * LUMI, rel=1e-3)


def test_the_normalisations_differ_and_agree_without_a_weight(folder):
    root, path = folder
    sums = {}
    for normalisation in ("weight", "events"):
        data = config(path, normalisation)
        data["systematics"] = {}
        for weight in ("genWeight", None):
            if weight is None:
                data["samples"]["ttbar"].pop("weight")
            else:
                data["samples"]["ttbar"]["weight"] = weight
            _, weights = _weights(_write(root, data, f"{normalisation}_{weight}"))
            sums[normalisation, weight] = weights["ttbar"]
    # no weight: both are xsec * lumi / N
    np.testing.assert_array_equal(sums["weight", None], sums["events", None])
    np.testing.assert_allclose(sums["events", None], XSEC * LUMI / 200, rtol=1e-15)
    # genWeight (26 of 200 negative): genWeight * xsec * lumi / sum(genWeight) is not genWeight * xsec * lumi / N
    assert not np.allclose(sums["weight", "genWeight"], sums["events", "genWeight"])
    np.testing.assert_allclose(
        sums["weight", "genWeight"] / sums["events", "genWeight"],
        200 / np.sum(sums["events", "genWeight"] / (XSEC * LUMI / 200)),
        rtol=1e-10,
    )


@pytest.mark.parametrize("normalisation", ["weight", "events"])
def test_streaming_equals_in_memory(folder, normalisation):
    root, path = folder
    analysis, _ = _weights(_write(root, config(path, normalisation), f"streamed_{normalisation}"))
    with jax.enable_x64(True):
        memory = analysis.hard_histograms(CUTS)
        settings = ExecutionSettings(mode="streaming", chunk_size=70, reuse=False)
        with ChunkedAnalysis(analysis, analysis.config.data, settings=settings) as streamed:
            streamed.load()
            hard = streamed.hard_histograms(CUTS)
    assert list(hard["ht"]) == ["ttbar", "ttbar/jet_sf/up", "ttbar/jet_sf/down", "ttbar/flat/up"]
    for key, h in memory["ht"].items():
        np.testing.assert_allclose(hard["ht"][key].counts, h.counts, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(hard["ht"][key].sumw2, h.sumw2, rtol=1e-12, atol=1e-9)
    assert memory["ht"]["ttbar/jet_sf/up"].counts.sum() > memory["ht"]["ttbar"].counts.sum() > 0


def test_a_failing_evaluation_is_one_line_naming_the_weight(folder):
    """``jet_sf`` has no ``sideways`` and no default: correctionlib's error, in one line naming the weight."""
    root, path = folder
    data = config(path, "events")
    data["systematics"]["jet_sf"]["up"]["weight"] = 'correction(sf.jet_sf, "sideways", leading(jets.pt, 1))'
    with pytest.raises(ConfigError) as info:
        _weights(_write(root, data, "sideways"))
    message = str(info.value)
    assert "\n" not in message and message.startswith('variation weight \'correction(sf.jet_sf, "sideways"')
    assert "correction sf.jet_sf failed: " in message, message


def test_prepared_chunks_depend_on_the_correction_files_contents(folder, tmp_path):
    """A streamed run's cached chunks (``PrepareChunk.version``) change when a correction file changes."""
    _, path = folder
    (tmp_path / "corrections.json").write_text(json.dumps(CORRECTIONS))
    analysis, _ = _weights(_write(tmp_path, config(path, "events"), "cached"))
    program = ChunkProgram.of(analysis, analysis.config)
    before = PrepareChunk(program, {"ttbar": 1.0}).version()
    assert PrepareChunk(program, {"ttbar": 1.0}).version() == before
    changed = json.loads(json.dumps(CORRECTIONS))
    changed["corrections"][1]["data"]["default"] = 1.2
    (tmp_path / "corrections.json").write_text(json.dumps(changed))
    assert PrepareChunk(program, {"ttbar": 1.0}).version() != before
