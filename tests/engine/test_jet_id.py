"""The AGC's jet ID, ``bit(jetId, 2)``, on the CMS Open Data ttbar file: the jets a config keeps are those of
plain uproot + Awkward (coffea's ``isTightLeptonVeto``, ``(Jet_jetId & 4) != 0``; issue 14 item 1).

Of the file's 132 jets with pT > 30 GeV and ``|eta| < 2.4``, 55 fail the jet ID
(the event's leptons reconstructed as jets, mostly). The config counts the jets
per event three ways: the jet ID in ``require`` (static, on the host), as a flag
(evaluated in the step, soft and hard), and no jet ID; each histogram of
per-event counts equals the plain count, in memory and streamed in chunks.
"""

from __future__ import annotations

import awkward as ak
import jax
import numpy as np
import pytest
import uproot

from diffhep.config import load_config_dict
from diffhep.engine.chunked import ChunkedAnalysis
from diffhep.engine.configured import ConfiguredAnalysis
from diffhep.execute import ExecutionSettings

FILE = "nanoAOD_2015_CMS_Open_Data_ttbar.root"
CUTS = {"jet_pt_min": 30.0}
#: Per-event counts 0..10, one bin each.
EDGES = [n - 0.5 for n in range(12)]


def config(path: str) -> dict:
    """The file as signal and background, events of weight 1 (xsec x lumi = 200 events, no generator weight)."""
    count = {"binning": {"edges": EDGES}, "bandwidth": 0.01}
    return {
        "name": "jet_id",
        "lumi_pb": 1.0,
        "samples": {
            "tt": {"role": "signal", "files": [path], "xsec_pb": 200.0},
            "bkg": {"role": "background", "files": [path], "xsec_pb": 200.0},
        },
        "parameters": {"jet_pt_min": {"init": 30, "bounds": [20, 80], "slope": 0.5, "unit": "GeV"}},
        "objects": {
            "jets": {"collection": "Jet", "require": "abs(eta) < 2.4 and bit(jetId, 2)", "cuts": "pt > jet_pt_min"},
            "central": {
                "collection": "Jet",
                "require": "abs(eta) < 2.4",
                "cuts": "pt > jet_pt_min",
                "flags": {"tlv": "bit(jetId, 2)", "tight": "bit(jetId, 1) == 1"},
            },
        },
        "regions": {
            "identified": {"observable": "count(jets)", **count},
            "flagged": {"observable": "count(central.tlv)", **count},
            "tight": {"observable": "count(central.tight)", **count},
            "central": {"observable": "count(central)", **count},
        },
        "systematics": {"lumi": {"type": "lumi", "sigma": 0.03}},
        "objective": {"name": "asimov_significance"},
    }


@pytest.fixture(scope="module")
def plain(data_file) -> dict[str, np.ndarray]:
    """Region -> histogram of the per-event jet counts, from uproot and Awkward alone."""
    with uproot.open(data_file(FILE)) as f:
        jets = f["Events"].arrays(["Jet_pt", "Jet_eta", "Jet_jetId"])
    central = (jets.Jet_pt > CUTS["jet_pt_min"]) & (abs(jets.Jet_eta) < 2.4)
    tight_lepton_veto = (jets.Jet_jetId & 4) != 0  # coffea's Jet.isTightLeptonVeto
    assert int(ak.sum(central)) == 132 and int(ak.sum(central & ~tight_lepton_veto)) == 55

    def histogram(mask: ak.Array) -> np.ndarray:
        return np.bincount(ak.to_numpy(ak.sum(mask, axis=1)), minlength=len(EDGES) - 1).astype(np.float64)

    identified = histogram(central & tight_lepton_veto)
    return {
        "identified": identified,
        "flagged": identified,
        "tight": histogram(central & ((jets.Jet_jetId & 2) != 0)),
        "central": histogram(central),
    }


@pytest.fixture(scope="module")
def analysis(data_file):
    checked = load_config_dict(config(str(data_file(FILE))))
    with jax.enable_x64(True):
        memory = ConfiguredAnalysis.from_config(checked.data, base=checked.base_dir)
        data = memory.load()
    return checked, memory, data


def _check(histograms, plain: dict[str, np.ndarray]) -> None:
    for region, expected in plain.items():
        np.testing.assert_allclose(np.asarray(histograms[region]["tt"].counts), expected, atol=1e-6, err_msg=region)


def test_the_config_keeps_the_jets_of_plain_awkward(analysis, plain):
    _, memory, data = analysis
    _check(memory.hard_histograms(CUTS), plain)
    with jax.enable_x64(True):
        _check(memory.soft_histograms(CUTS, data, 1e6), plain)  # steep pT sigmoids: the hard counts
    jets = {r: float(np.dot(np.arange(len(EDGES) - 1), h)) for r, h in plain.items()}
    assert jets == {"identified": 77.0, "flagged": 77.0, "tight": 122.0, "central": 132.0}
    assert np.any(plain["identified"] != plain["central"])  # the jet ID changes which events have four jets


def test_streamed_in_chunks_too(analysis, plain):
    checked, memory, _ = analysis
    settings = ExecutionSettings(mode="streaming", chunk_size=70)
    with jax.enable_x64(True), ChunkedAnalysis(memory, checked.data, settings=settings) as streamed:
        streamed.load()
        _check(streamed.hard_histograms(CUTS), plain)
        result = streamed.value_and_grad(CUTS, 1e6)
        _check(streamed.program.assemble(result.histograms), plain)
