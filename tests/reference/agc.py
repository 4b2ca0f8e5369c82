"""Oracle of the AGC CMS Open Data ttbar processor, written from the AGC's own definition.

Imports nothing from diffhep (see README.md in this folder). The definition is
the Analysis Grand Challenge's ``TtbarAnalysis.process``
(iris-hep/analysis-grand-challenge, ``analyses/cms-open-data-ttbar/ttbar_analysis_pipeline.py``),
its ``utils/file_input.py`` (cross-sections, event weight), its ``corrections.json``
(b-tag and W+jets weight variations, ``../shared/data/agc/``, evaluated with
correctionlib as the AGC's processor does) and its ``cabinetry_config.yml`` (fit
binning), re-done here in plain Awkward + ``hist`` + correctionlib, without coffea:

* objects: electrons ``pT > lepton_pt_min``, ``|eta| < 2.1``, ``cutBased == 4``,
  ``sip3d < 4``; muons ``pT > lepton_pt_min``, ``|eta| < 2.1``, ``tightId``,
  ``sip3d < 4``, ``pfRelIso04_all < 0.15``; jets ``pT > jet_pt_min``,
  ``|eta| < 2.4`` and ``isTightLeptonVeto`` (bit 2 of ``Jet_jetId``), in file order;
* ``4j1b``: exactly one lepton (electrons + muons), at least four jets, exactly one
  jet with ``btagCSVV2 >= btag_min``; observable HT, the scalar sum of the jets' pT;
* ``4j2b``: exactly one lepton, at least four jets, at least two jets with
  ``btagCSVV2 > btag_min``; observable the mass of the trijet with the largest
  vector-sum pT among the three-jet combinations with at least one jet of
  ``btagCSVV2 > btag_min`` (the first such trijet on a tie, as ``ak.argmax``);
  the AGC uses ``>=`` for the one b-tag and ``>`` for the two, kept as it is;
* event weight ``xsec * lumi / nevts`` (``nevts`` the events in the files read,
  no ``genWeight``), lumi 3378 pb^-1;
* variations, only for the nominal samples: ``pt_scale_up`` (every jet pT x 1.03
  before the selection), ``pt_res_up`` (every jet pT x N(1, 0.05), one draw per
  jet of the file in order; the AGC draws from NumPy's global unseeded state,
  here from the ``rng`` the caller gives), ``btag_var_{i}_{up,down}`` (weight x
  ``event_systematics("btag_var", direction, pT_i)`` of corrections.json, ``1 +- 0.075
  pT_i / 50``, with ``pT_i`` the i-th selected jet in file order, i = 0..3: the AGC
  evaluates the key ``btag_var`` for every i, not ``btag_var_i``) and, for W+jets,
  ``scale_var_{up,down}`` (weight x ``event_systematics("scale_var", direction, pT_0)``,
  1.025 / 0.975; the pT only shapes the output);
  an alternative sample (the AGC's dedicated ttbar samples, :data:`TTBAR_VARIATIONS`) is
  processed nominally and filled under its own variation name;
* histograms as the AGC fills them (25 bins over 50-550 GeV, sum of weights and
  of squared weights), rebinned for the fit as the AGC's notebook does,
  ``[120j::hist.rebin(2)]``: 11 bins over 110-550 GeV (the cabinetry binning).

The jet mass is not varied with the pT (the AGC replaces ``jets["pt"]`` only),
and the four-momenta are summed as (px, py, pz, E) from (pT, eta, phi, m).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import awkward as ak
import correctionlib
import hist
import numpy as np
import uproot

#: The AGC's integrated luminosity, pb^-1.
LUMI_PB = 3378.0
#: The AGC's cross-sections, pb (its utils/file_input.py).
XSEC_PB = {
    "ttbar": 396.87 + 332.97,
    "single_top_s_chan": 2.0268 + 1.2676,
    "single_top_t_chan": (36.993 + 22.175) / 0.252,
    "single_top_tW": 37.936 + 37.906,
    "wjets": 61457 * 0.252,
}
#: The thresholds the AGC fixes (GeV, GeV, CSVv2 score).
AGC_CUTS = {"lepton_pt_min": 30.0, "jet_pt_min": 30.0, "btag_min": 0.5}
#: Relative jet energy scale shift and resolution of the AGC's jet variations.
PT_SCALE_UP = 1.03
PT_RESOLUTION = 0.05
#: Fit binning (cabinetry_config.yml), GeV.
FIT_EDGES = np.linspace(110.0, 550.0, 12)
REGIONS = ("4j1b", "4j2b")
#: The AGC's dedicated ttbar samples of its modelling systematics, by the variation name of their histograms
#: (``VariationPath`` in its cabinetry config, less the leading ``_``): "ME variation" and "PS variation" (up
#: only, cabinetry symmetrises the down), "ttbar scale variations" (up and down), each a NormPlusShape on ttbar.
TTBAR_VARIATIONS = ("ME_var", "PS_var", "scaleup", "scaledown")

COLLECTIONS = {
    "Electron": ("pt", "eta", "cutBased", "sip3d"),
    "Muon": ("pt", "eta", "tightId", "sip3d", "pfRelIso04_all"),
    "Jet": ("pt", "eta", "phi", "mass", "btagCSVV2", "jetId"),
}


def read(paths: str | Path | Sequence[str | Path], tree: str = "Events") -> ak.Array:
    """The branches the AGC reads, as records ``events.Jet.pt`` etc., every file in order.

    Floating-point branches are widened to float64 here, so that every sum and product
    below is done in double precision (the definition's arithmetic, not the file's storage).
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    branches = [f"{c}_{f}" for c, fields in COLLECTIONS.items() for f in fields]
    flat = uproot.concatenate([{str(p): tree} for p in paths], branches, library="ak")
    return ak.zip(
        {c: ak.zip({f: _widen(flat[f"{c}_{f}"]) for f in fields}) for c, fields in COLLECTIONS.items()},
        depth_limit=1,
    )


def _widen(values: ak.Array) -> ak.Array:
    kind = ak.type(values).content.content.primitive
    return ak.values_astype(values, np.float64) if kind.startswith("float") else values


def new_histogram(process: str, variations: Sequence[str]) -> hist.Hist:
    """The AGC processor's histogram: observable x region x process x variation, weighted.

    The AGC's category axes grow as they are filled; here they are declared up front,
    so that a variation that selects no event is an empty histogram, not a missing one.
    """
    return (
        hist.Hist.new.Reg(25, 50, 550, name="observable", label="observable [GeV]")
        .StrCat(list(REGIONS), name="region")
        .StrCat([process], name="process")
        .StrCat(list(variations), name="variation")
        .Weight()
    )


def jet_pt_resolution(pt: ak.Array, rng: np.random.Generator) -> ak.Array:
    """A factor N(1, 0.05) per jet, drawn in file order, shaped as ``pt``."""
    return ak.unflatten(rng.normal(1.0, PT_RESOLUTION, size=int(ak.sum(ak.num(pt)))), ak.num(pt))


def _trijet_mass(jets: ak.Array, btag_min: float) -> np.ndarray:
    """Mass of the trijet with the largest pT among those with a b-tagged jet (one per event, GeV)."""
    px, py = jets.pt * np.cos(jets.phi), jets.pt * np.sin(jets.phi)
    pz = jets.pt * np.sinh(jets.eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + jets.mass**2)
    p4 = ak.zip({"px": px, "py": py, "pz": pz, "e": e, "btag": jets.btagCSVV2})
    trijet = ak.combinations(p4, 3, fields=["j1", "j2", "j3"])
    sums = {k: trijet.j1[k] + trijet.j2[k] + trijet.j3[k] for k in ("px", "py", "pz", "e")}
    max_btag = np.maximum(trijet.j1.btag, np.maximum(trijet.j2.btag, trijet.j3.btag))
    keep = max_btag > btag_min
    sums = {k: v[keep] for k, v in sums.items()}
    best = ak.argmax(np.hypot(sums["px"], sums["py"]), axis=1, keepdims=True)
    m2 = sums["e"][best] ** 2 - sums["px"][best] ** 2 - sums["py"][best] ** 2 - sums["pz"][best] ** 2
    return ak.to_numpy(ak.flatten(np.sqrt(m2)))


def process(
    events: ak.Array,
    *,
    process: str,
    xsec_pb: float,
    nevts: int,
    variation: str = "nominal",
    cuts: dict[str, float] = AGC_CUTS,
    rng: np.random.Generator | None = None,
    lumi_pb: float = LUMI_PB,
    corrections: correctionlib.CorrectionSet | None = None,
) -> hist.Hist:
    """The AGC processor on ``events`` of one sample: its histograms, every variation.

    Args:
        events: from :func:`read`.
        process: the sample's name (``wjets`` also gets ``scale_var``).
        xsec_pb: its cross-section, pb; ``nevts``: its number of events.
        variation: ``nominal``, or the name of an alternative sample (filled without variations).
        cuts: ``lepton_pt_min``, ``jet_pt_min`` (GeV) and ``btag_min``; the AGC's by default.
        rng: the source of the jet resolution smearing (the AGC's is unseeded).
        corrections: the AGC's corrections.json (``correctionlib.CorrectionSet.from_file``); needed
            for the nominal samples' event systematics.
    """
    xsec_weight = xsec_pb * lumi_pb / nevts
    rng = np.random.default_rng() if rng is None else rng
    jet_factors = {"pt_scale_up": PT_SCALE_UP, "pt_res_up": jet_pt_resolution(events.Jet.pt, rng)}
    event_systs = [f"btag_var_{i}" for i in range(4)] + (["scale_var"] if process == "wjets" else [])
    if variation != "nominal":  # an alternative sample: its own nominal selection, nothing varied
        jet_factors, event_systs = {}, []
    names = [variation, *jet_factors] + [f"{s}_{d}" for s in event_systs for d in ("up", "down")]
    histogram = new_histogram(process, names)
    btag_min = cuts["btag_min"]

    # The AGC loops over [nominal, *jet_factors, *event_systs] and selects again for each; an event
    # systematic selects exactly as the nominal does, so its weights are filled in the nominal pass here.
    for jet_variation in ("nominal", *jet_factors):
        elecs, muons, jets = events.Electron, events.Muon, events.Jet
        if jet_variation in jet_factors:
            jets = ak.with_field(jets, jets.pt * jet_factors[jet_variation], "pt")
        elecs = elecs[
            (elecs.pt > cuts["lepton_pt_min"]) & (abs(elecs.eta) < 2.1) & (elecs.cutBased == 4) & (elecs.sip3d < 4)
        ]
        muons = muons[
            (muons.pt > cuts["lepton_pt_min"])
            & (abs(muons.eta) < 2.1)
            & muons.tightId
            & (muons.sip3d < 4)
            & (muons.pfRelIso04_all < 0.15)
        ]
        jets = jets[(jets.pt > cuts["jet_pt_min"]) & (abs(jets.eta) < 2.4) & ((jets.jetId & 4) != 0)]

        exactly_1l = (ak.num(elecs) + ak.num(muons)) == 1
        atleast_4j = ak.num(jets) >= 4
        exactly_1b = ak.sum(jets.btagCSVV2 >= btag_min, axis=1) == 1
        atleast_2b = ak.sum(jets.btagCSVV2 > btag_min, axis=1) >= 2
        selection = {"4j1b": exactly_1l & atleast_4j & exactly_1b, "4j2b": exactly_1l & atleast_4j & atleast_2b}

        for region in REGIONS:
            region_jets = jets[selection[region]]
            region_weights = np.ones(len(region_jets)) * xsec_weight
            if region == "4j1b":
                observable = ak.to_numpy(ak.sum(region_jets.pt, axis=-1))
            else:
                observable = _trijet_mass(region_jets, btag_min)
            fill = {"observable": observable, "region": region, "process": process}
            name = variation if jet_variation == "nominal" else jet_variation
            histogram.fill(**fill, variation=name, weight=region_weights)
            if jet_variation != "nominal":
                continue
            for syst_var in event_systs:
                for direction in ("up", "down"):
                    event_systematics = corrections["event_systematics"]
                    if syst_var == "scale_var":  # the pT array only shapes the output, as in the AGC
                        pt_0 = ak.to_numpy(region_jets.pt[:, 0])
                        factor = event_systematics.evaluate("scale_var", direction, pt_0)
                    else:  # the i-th selected jet, in file order (the AGC's region_jets.pt[:, i])
                        pt_i = ak.to_numpy(region_jets.pt[:, int(syst_var.rsplit("_", 1)[-1])])
                        factor = event_systematics.evaluate("btag_var", direction, pt_i)
                    histogram.fill(**fill, variation=f"{syst_var}_{direction}", weight=region_weights * factor)
    return histogram


def fit_histograms(histogram: hist.Hist) -> dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]]:
    """``(region, process, variation) -> (counts, sumw2)`` in the fit binning (:data:`FIT_EDGES`)."""
    out = {}
    for process_name in histogram.axes["process"]:
        for variation in histogram.axes["variation"]:
            for region in REGIONS:
                h = histogram[120j :: hist.rebin(2), region, process_name, variation]
                np.testing.assert_allclose(h.axes[0].edges, FIT_EDGES)
                out[region, process_name, variation] = (
                    np.asarray(h.values(), dtype=np.float64),
                    np.asarray(h.variances(), dtype=np.float64),
                )
    return out
