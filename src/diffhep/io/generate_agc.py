"""Synthetic CMS NanoAOD samples for the Analysis Grand Challenge ttbar template.

:func:`generate_agc_sample` writes one process of :data:`AGC_PROCESSES` to a
ROOT file with a TTree ``Events`` whose branches have the names and types of
the CMS 2015 Open Data NanoAOD file (``uint32`` counters, ``float32`` kinematics,
``int32`` charges and IDs, ``bool`` muon tight ID); see :data:`BRANCHES`.
Energies, momenta and masses are in GeV; cross-sections in pb.

Physics (vectorised, per block of events):

* tops (m = 172.5 GeV) decay to ``b W``; W bosons (m = 80.4 GeV) to ``e nu``,
  ``mu nu``, ``tau nu`` (tau -> lepton 35%, else a tau jet) or two quarks
  (``c s`` half the time) with PDG branching ratios, so ttbar has one e or mu
  in ~38% of events, two in ~6% (before acceptance and identification);
* jets from quarks: pT response 0.97 with 5% + 100%/sqrt(pT) resolution, mass
  ~ 0.17 pT; initial-state jets with a power-law pT spectrum above 20 GeV; jets
  kept above 15 GeV and ``|eta| < 4.7``;
* ``Jet_btagCSVV2`` from Beta distributions fitted to the CSVv2 efficiencies
  (b: 85/61/42%, c: 37/11/3%, light: 10/1.2/0.15% at 0.54/0.85/0.95);
  ``Jet_hadronFlavour`` (5, 4, 0) is the truth;
* ``Jet_jetId`` (the NanoAOD bitmask, bit 1 tight, bit 2 tight lepton veto, which
  the AGC requires): 6 for 96% of jets in ``|eta| < 2.4`` (0 for 3%, 2 for 1%) and
  82% of forward ones (else 0), the rates of the CMS 2015 Open Data file's jets
  without a lepton inside (73 of 76 at pT > 30 GeV pass in ``|eta| < 2.4``). Most
  jets that fail in that file (52 of its 55 at pT > 30 GeV, ``|eta| < 2.4``) are
  the event's leptons reconstructed as jets, which this generator does not make.
  Drawn from a stream of its own (``rng.spawn``), so the other branches are those
  of a generator without it;
* ``Jet_btagSF_up`` / ``Jet_btagSF_down``: per-jet relative b-tagging
  scale-factor variations ``1 +- u`` with ``u = 2% + 4% min(pT, 400)/400`` for b
  and c jets and 6% for light jets; multiply them into the event weight for the
  jets that pass the b-tag cut to get the b-tag systematic;
* leptons: prompt ones isolated (``pfRelIso ~ exp(0.03)``), tight (97% muons,
  cutBased = 4 for 75% of electrons), ``sip3d ~ |N(0, 1.2)|``; non-prompt ones
  from b, c and light jets carry a fraction of the jet pT, are not isolated
  (``0.05 + exp(0.5)``) and displaced (``sip3d ~ exp(5)``);
* W+jets: extra jets above 20 GeV with the physical geometric multiplicity, ``n``
  with probability ``0.65 x 0.35^n`` (mean ~0.54), drawn as they occur: no biased
  sampling and no compensating factor in ``genWeight``, so every sample is valid
  with the AGC's event weight ``xsec x lumi / N``, which ignores ``genWeight``
  (few W+jets events reach four jets: the samples need many of them);
* ttbar modelling variations, the AGC's dedicated ttbar samples (its
  ``ttbar__ME_var``, ``__PS_var``, ``__scaleup``, ``__scaledown``; :data:`TTBAR_VARIATIONS`),
  each the nominal ttbar with a few settings changed and a random stream of
  its own (not event-by-event correlated with the nominal, as separate samples
  are not): ``ttbar_ME_var`` (another matrix-element generator) harder tops
  (pT scale 53 instead of 50 GeV) and slightly more, harder extra jets;
  ``ttbar_PS_var`` (another parton shower) the jet response 0.96 instead of
  0.97, a b-tag efficiency 1.6 points lower and a light mistag rate 1.1 points
  higher at 0.5 (CSVv2 Beta shapes ``(1.40, 0.36)`` and ``(0.43, 1.70)``), fewer
  and softer extra jets; ``ttbar_scaleup`` / ``ttbar_scaledown``
  (renormalisation and factorisation scales x2 / x0.5) less / more radiation,
  in opposite directions: 1.08 / 1.32 extra jets on average instead of 1.2,
  softer / harder (Pareto index 2.35 / 2.05 instead of 2.2), tops pT scale
  49 / 51 GeV, so fewer / more events reach four jets. Their cross-section is
  the nominal's, as in the AGC (which weighs each by ``xsec x lumi / N`` with
  the ttbar cross-section): rates change through the acceptance only. The
  older ``ttbar_alt`` (one alternative: softer tops, more and harder extra
  jets) is kept for the configs and tests that use it;
* ``genWeight``: lognormal(0, 0.05) for every sample, a fraction negative for the
  NLO samples (3% ttbar, 10% s-channel single top); it carries no physics, so
  ``genWeight x xsec x lumi / sum(genWeight)`` and ``xsec x lumi / N`` agree up to
  that jitter (and the negative fractions).

Example:
    >>> import tempfile, uproot
    >>> path = generate_agc_sample(tempfile.mkdtemp() + "/tt.root", "ttbar", 500, seed=1)
    >>> uproot.open(path)["Events"].typenames()["nJet"]
    'uint32_t'
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from diffhep.io.generate_common import (
    breit_wigner,
    collection,
    p4_from,
    pt_eta_phi,
    two_body,
    write_dataset,
    write_sample,
)

__all__ = [
    "AGC_PROCESSES",
    "BRANCHES",
    "SCHEMA_VERSION",
    "TTBAR_VARIATIONS",
    "generate_agc_sample",
    "generate_agc_dataset",
]

#: Version of the generated content; bump it whenever branches or physics change, so that files
#: generated before (``diffhep generate --config``, ``diffhep bench agc``) are generated again.
#: (New processes change no existing file: every process has a random stream of its own.)
SCHEMA_VERSION = 3  # 2: Jet_jetId; 3: W+jets unbiased (its jet multiplicity drawn as it occurs)

#: Process -> cross-section (pb: the AGC's, from its ``utils/file_input.py``) and description.
AGC_PROCESSES: dict[str, dict] = {
    "ttbar": {"xsec_pb": 729.84, "description": "inclusive ttbar (NLO-like, 3% negative weights)"},
    "ttbar_alt": {
        "xsec_pb": 729.84,
        "description": "ttbar, alternative modelling: softer tops, more and harder extra jets",
    },
    "ttbar_ME_var": {
        "xsec_pb": 729.84,
        "description": "ttbar, the AGC's ME variation: another matrix element, harder tops, a little more radiation",
    },
    "ttbar_PS_var": {
        "xsec_pb": 729.84,
        "description": "ttbar, the AGC's PS variation: another parton shower, jet response, b-tag, extra jets",
    },
    "ttbar_scaleup": {
        "xsec_pb": 729.84,
        "description": "ttbar, the AGC's scale up (mu_R, mu_F x 2): less and softer radiation",
    },
    "ttbar_scaledown": {
        "xsec_pb": 729.84,
        "description": "ttbar, the AGC's scale down (mu_R, mu_F x 0.5): more and harder radiation",
    },
    "single_top_s_chan": {"xsec_pb": 2.0268 + 1.2676, "description": "single top s-channel: t + b"},
    "single_top_t_chan": {
        "xsec_pb": (36.993 + 22.175) / 0.252,
        "description": "single top t-channel: t + forward light jet",
    },
    "single_top_tW": {"xsec_pb": 37.936 + 37.906, "description": "single top tW: t + W"},
    "wjets": {
        "xsec_pb": 61457 * 0.252,
        "description": "W -> l nu + jets, falling jet spectrum (0.35^n), few b",
    },
}

_COUNTED = {
    "Jet": ("pt", "eta", "phi", "mass", "btagCSVV2", "jetId", "hadronFlavour", "btagSF_up", "btagSF_down"),
    "Muon": ("pt", "eta", "phi", "mass", "charge", "pfRelIso04_all", "tightId", "sip3d"),
    "Electron": ("pt", "eta", "phi", "mass", "charge", "pfRelIso03_all", "cutBased", "sip3d"),
}
#: Branches written, in order.
BRANCHES = (
    ["run", "luminosityBlock", "event"]
    + [name for c, fields in _COUNTED.items() for name in [f"n{c}"] + [f"{c}_{f}" for f in fields]]
    + ["MET_pt", "MET_phi", "genWeight"]
)

TOP_MASS, TOP_WIDTH = 172.5, 1.4  # GeV
W_MASS, W_WIDTH = 80.38, 2.09  # GeV
B_MASS = 4.8  # GeV
MUON_MASS, ELECTRON_MASS = 0.1057, 0.000511  # GeV
#: W -> e, mu, tau, hadrons.
_W_BR = np.array([0.108, 0.106, 0.113, 0.673])
#: CSVv2 score ~ Beta(a, b) per hadron flavour.
_BTAG_BETA = {5: (1.454, 0.337), 4: (0.806, 1.059), 0: (0.414, 1.751)}
#: Jet_jetId values and their probabilities for jets in |eta| < 2.4 and forward jets.
_JET_ID = np.array([0, 2, 6], dtype=np.int32)
_JET_ID_P = {"central": [0.03, 0.01, 0.96], "forward": [0.18, 0.0, 0.82]}
#: Jet pT response (reconstructed / parton) of the nominal samples.
_RESPONSE = 0.97

#: The AGC's ttbar modelling variations: process -> the settings of :func:`_ttbar` it changes
#: (nominal: top pT scale 50 GeV, 1.2 extra jets of Pareto index 2.2, response 0.97, :data:`_BTAG_BETA`).
TTBAR_VARIATIONS: dict[str, dict] = {
    "ttbar_ME_var": {"pt_scale": 53.0, "isr_rate": 1.3, "isr_index": 2.1},
    "ttbar_PS_var": {
        "isr_rate": 1.1,
        "isr_index": 2.3,
        "response": 0.96,
        "btag_beta": {**_BTAG_BETA, 5: (1.40, 0.36), 0: (0.43, 1.70)},
    },
    "ttbar_scaleup": {"pt_scale": 49.0, "isr_rate": 1.08, "isr_index": 2.35},
    "ttbar_scaledown": {"pt_scale": 51.0, "isr_rate": 1.32, "isr_index": 2.05},
}


class _Event:
    """Accumulates flat objects of ``n`` events; :meth:`build` makes the NanoAOD columns."""

    def __init__(
        self,
        rng: np.random.Generator,
        n: int,
        *,
        response: float = _RESPONSE,
        btag_beta: Mapping[int, tuple[float, float]] = _BTAG_BETA,
    ) -> None:
        self.rng, self.n = rng, n
        self.response, self.btag_beta = response, btag_beta
        self.jets: list[dict] = []
        self.leptons: list[dict] = []
        self.met = np.zeros((2, n))

    def jet(self, idx: np.ndarray, p4: np.ndarray, flavour: np.ndarray | int) -> None:
        """A jet from parton ``p4`` (4, m) with hadron ``flavour`` (5, 4 or 0); may radiate a lepton.

        Its pT is the parton's times the response (0.97) with 5% + 100%/sqrt(pT) resolution."""
        rng, m = self.rng, len(idx)
        pt, eta, phi = pt_eta_phi(p4)
        resolution = np.hypot(0.05, 1.0 / np.sqrt(np.maximum(pt, 1.0)))
        pt = np.maximum(self.response * pt * (1.0 + resolution * rng.normal(size=m)), 0.1)
        flavour = np.broadcast_to(np.asarray(flavour, dtype=np.int32), (m,))
        self.jets.append({"idx": idx, "pt": pt, "eta": eta, "phi": phi, "flavour": flavour})
        rate = np.select([flavour == 5, flavour == 4], [0.4, 0.2], 0.02)
        has = rng.random(m) < rate
        k = int(has.sum())
        lep_pt = pt[has] * rng.uniform(0.05, 0.4, k)
        near = rng.normal(0.0, 0.05, (2, k))  # inside the jet cone: not isolated
        lep = p4_from(np.zeros(k), lep_pt, eta[has] + near[0], phi[has] + near[1])
        self.lepton(idx[has], lep, rng.random(k) < 0.5, rng.choice([-1, 1], k), prompt=False)

    def lepton(self, idx: np.ndarray, p4: np.ndarray, muon: np.ndarray, charge: np.ndarray, *, prompt: bool) -> None:
        """Leptons (muons where ``muon``, else electrons) from ``p4`` (4, m); pT smeared 1.5% / 2.5%."""
        pt, eta, phi = pt_eta_phi(p4)
        pt = pt * (1.0 + self.rng.normal(size=len(idx)) * np.where(muon, 0.015, 0.025))
        fields = {"pt": pt, "eta": eta, "phi": phi, "muon": muon, "charge": charge}
        self.leptons.append({"idx": idx, **fields, "prompt": np.full(len(idx), prompt)})

    def invisible(self, idx: np.ndarray, p4: np.ndarray) -> None:
        self.met += np.stack([np.bincount(idx, p4[i], minlength=self.n) for i in (1, 2)])

    def build(self, weight: np.ndarray, first: int) -> dict:
        rng, n = self.rng, self.n
        jets = self._jets(rng)
        lep = {k: np.concatenate([p[k] for p in self.leptons]) for k in self.leptons[0]}
        muons, electrons = self._leptons(rng, lep)
        met = self.met + rng.normal(0.0, 12.0, (2, n))
        event = np.arange(first + 1, first + n + 1, dtype=np.uint64)
        return {
            "run": np.ones(n, dtype=np.uint32),
            "luminosityBlock": (event // 1000 + 1).astype(np.uint32),
            "event": event,
            "Jet": collection(n, [jets], "pt"),
            "Muon": collection(n, [muons], "pt"),
            "Electron": collection(n, [electrons], "pt"),
            "MET_pt": np.hypot(*met).astype(np.float32),
            "MET_phi": np.arctan2(met[1], met[0]).astype(np.float32),
            "genWeight": weight.astype(np.float32),
        }

    def _jets(self, rng: np.random.Generator) -> dict:
        j = {k: np.concatenate([p[k] for p in self.jets]) for k in ("idx", "pt", "eta", "phi", "flavour")}
        keep = (j["pt"] > 15.0) & (np.abs(j["eta"]) < 4.7)
        j = {k: v[keep] for k, v in j.items()}
        m, fl, pt = len(j["pt"]), j["flavour"], j["pt"]
        btag = np.zeros(m)
        for f, (a, b) in self.btag_beta.items():
            sel = fl == f
            btag[sel] = rng.beta(a, b, int(sel.sum()))
        u = np.where(fl > 0, 0.02 + 0.04 * np.minimum(pt, 400.0) / 400.0, 0.06)
        id_rng = rng.spawn(1)[0]  # its own stream: draws nothing from rng
        central = np.abs(j["eta"]) < 2.4
        jet_id = np.where(
            central,
            id_rng.choice(_JET_ID, m, p=_JET_ID_P["central"]),
            id_rng.choice(_JET_ID, m, p=_JET_ID_P["forward"]),
        )
        f32 = np.float32
        return {
            "idx": j["idx"], "pt": pt.astype(f32), "eta": j["eta"].astype(f32), "phi": j["phi"].astype(f32),
            "mass": (pt * np.clip(rng.normal(0.17, 0.05, m), 0.03, 0.35)).astype(f32),
            "btagCSVV2": btag.astype(f32), "jetId": jet_id.astype(np.int32), "hadronFlavour": fl.astype(np.int32),
            "btagSF_up": (1 + u).astype(f32), "btagSF_down": (1 - u).astype(f32),
        }  # fmt: skip

    @staticmethod
    def _leptons(rng: np.random.Generator, lep: dict) -> tuple[dict, dict]:
        m, prompt, muon = len(lep["pt"]), lep["prompt"].astype(bool), lep["muon"].astype(bool)
        iso = np.where(prompt, rng.exponential(0.03, m), 0.05 + rng.exponential(0.5, m))
        sip3d = np.where(prompt, np.abs(rng.normal(0.0, 1.2, m)), rng.exponential(5.0, m))
        tight = rng.random(m) < np.where(prompt, 0.97, 0.7)
        levels = np.arange(5)
        cut_based = np.where(
            prompt,
            rng.choice(levels, m, p=[0.03, 0.03, 0.06, 0.13, 0.75]),
            rng.choice(levels, m, p=[0.45, 0.2, 0.15, 0.1, 0.1]),
        )
        f32 = np.float32
        out = []
        for is_mu, eta_max, pt_min, mass in ((True, 2.4, 3.0, MUON_MASS), (False, 2.5, 5.0, ELECTRON_MASS)):
            s = (muon == is_mu) & (np.abs(lep["eta"]) < eta_max) & (lep["pt"] > pt_min)
            d = {
                "idx": lep["idx"][s].astype(np.int64), "pt": lep["pt"][s].astype(f32),
                "eta": lep["eta"][s].astype(f32), "phi": lep["phi"][s].astype(f32),
                "mass": np.full(int(s.sum()), mass, dtype=f32), "charge": lep["charge"][s].astype(np.int32),
            }  # fmt: skip
            if is_mu:
                d.update(pfRelIso04_all=iso[s].astype(f32), tightId=tight[s], sip3d=sip3d[s].astype(f32))
            else:
                d.update(pfRelIso03_all=iso[s].astype(f32), cutBased=cut_based[s].astype(np.int32))
                d.update(sip3d=sip3d[s].astype(f32))
            out.append(d)
        return out[0], out[1]


def _weights(rng: np.random.Generator, n: int, negative_fraction: float = 0.0) -> np.ndarray:
    """genWeight: lognormal(0, 0.05), a fraction flipped negative (NLO-like)."""
    w = rng.lognormal(0.0, 0.05, n)
    return np.where(rng.random(n) < negative_fraction, -w, w)


def _decay_w(
    ev: _Event, idx: np.ndarray, w: np.ndarray, m_w: np.ndarray, charge: np.ndarray, br: np.ndarray = _W_BR
) -> None:
    """W (4, m) of mass ``m_w`` and ``charge`` -> e, mu, tau (35% leptonic) or quarks (c s half the time)."""
    rng, m = ev.rng, len(idx)
    mode = rng.choice(4, m, p=br)
    d1, d2 = two_body(rng, w, m_w, 0.0, 0.0)
    lep, tau, had = mode < 2, mode == 2, mode == 3
    ev.lepton(idx[lep], d1[:, lep], mode[lep] == 1, charge[lep], prompt=True)
    ev.invisible(idx[mode < 3], d2[:, mode < 3])
    visible = rng.uniform(0.2, 0.8, m)  # tau momentum fraction of its visible decay products
    tau_lep = tau & (rng.random(m) < 0.35)
    tau_had = tau & ~tau_lep
    tau_mu = rng.random(int(tau_lep.sum())) < 0.5
    ev.lepton(idx[tau_lep], d1[:, tau_lep] * visible[tau_lep], tau_mu, charge[tau_lep], prompt=True)
    ev.jet(idx[tau_had], d1[:, tau_had] * visible[tau_had], 0)
    ev.invisible(idx[tau], d1[:, tau] * (1.0 - visible[tau]))
    charm = rng.random(m) < 0.5
    ev.jet(idx[had], d1[:, had], np.where(charm[had], 4, 0))
    ev.jet(idx[had], d2[:, had], 0)


def _decay_top(ev: _Event, idx: np.ndarray, top: np.ndarray, m_top: np.ndarray, charge: np.ndarray) -> None:
    """t (charge +1) or tbar (-1) -> b W."""
    m_w = breit_wigner(ev.rng, W_MASS, W_WIDTH, 50.0, 100.0, len(idx))
    b, w = two_body(ev.rng, top, m_top, B_MASS, m_w)
    ev.jet(idx, b, 5)
    _decay_w(ev, idx, w, m_w, charge)


def _top(
    rng: np.random.Generator, pt: np.ndarray, phi: np.ndarray, y_sigma: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Top quarks with ``pt`` and ``phi``, rapidity ~ N(0, ``y_sigma``): ``(p4, mass)``."""
    m_t = breit_wigner(rng, TOP_MASS, TOP_WIDTH, 150.0, 195.0, len(pt))
    return p4_from(m_t, pt, rng.normal(0.0, y_sigma, len(pt)), phi), m_t


def _extra_jets(
    ev: _Event, counts: np.ndarray, index: float, flavours: tuple[float, float, float], pt_min: float = 20.0
) -> None:
    """``counts`` jets per event: pT ~ ``pt_min`` x Pareto(``index``) GeV, ``eta ~ N(0, 2)``,
    light / c / b with probabilities ``flavours``."""
    rng = ev.rng
    idx = np.repeat(np.arange(ev.n), counts)
    m = len(idx)
    pt = pt_min * rng.uniform(0.0, 1.0, m) ** (-1.0 / index)
    p4 = p4_from(np.zeros(m), pt, rng.normal(0.0, 2.0, m), rng.uniform(-np.pi, np.pi, m))
    ev.jet(idx, p4, rng.choice(np.array([0, 4, 5]), m, p=flavours))


def _ttbar(
    rng: np.random.Generator,
    n: int,
    first: int,
    *,
    pt_scale: float = 50.0,
    isr_rate: float = 1.2,
    isr_index: float = 2.2,
    response: float = _RESPONSE,
    btag_beta: Mapping[int, tuple[float, float]] = _BTAG_BETA,
) -> dict:
    """t tbar back to back, top pT ~ Gamma(2, ``pt_scale``) GeV, Poisson(``isr_rate``) extra jets of
    Pareto index ``isr_index``; jet ``response`` and CSVv2 shapes ``btag_beta`` (:class:`_Event`)."""
    ev, idx = _Event(rng, n, response=response, btag_beta=btag_beta), np.arange(n)
    pt, phi = rng.gamma(2.0, pt_scale, n), rng.uniform(-np.pi, np.pi, n)
    for charge, dphi in ((1, 0.0), (-1, np.pi)):
        top, m_t = _top(rng, pt, phi + dphi)
        _decay_top(ev, idx, top, m_t, np.full(n, charge))
    _extra_jets(ev, rng.poisson(isr_rate, n), isr_index, (0.85, 0.1, 0.05))
    return ev.build(_weights(rng, n, 0.03), first)


def _ttbar_alt(rng: np.random.Generator, n: int, first: int) -> dict:
    """Alternative ttbar modelling: softer tops, more and harder extra jets."""
    return _ttbar(rng, n, first, pt_scale=46.0, isr_rate=1.5, isr_index=1.9)


def _single_top(rng: np.random.Generator, n: int, first: int, channel: str) -> dict:
    """One top (65% t, 35% tbar) plus: a forward light jet (t), a b jet (s) or a W (tW)."""
    ev, idx = _Event(rng, n), np.arange(n)
    charge = np.where(rng.random(n) < 0.65, 1, -1)
    pt, phi = rng.gamma(2.0, 35.0 if channel == "tW" else 30.0, n), rng.uniform(-np.pi, np.pi, n)
    top, m_t = _top(rng, pt, phi, 1.2)
    _decay_top(ev, idx, top, m_t, charge)
    recoil = phi + np.pi + rng.normal(0.0, 0.3, n)
    if channel == "t":
        eta = np.where(rng.random(n) < 0.5, 1.0, -1.0) * (2.4 + rng.normal(0.0, 0.8, n))
        ev.jet(idx, p4_from(np.zeros(n), 20.0 + rng.exponential(30.0, n), eta, recoil), 0)
        spectator = rng.random(n) < 0.5  # the second b from the initial gluon splitting
        k = int(spectator.sum())
        pt_b, eta_b = 15.0 + rng.exponential(15.0, k), rng.normal(0.0, 2.5, k)
        ev.jet(idx[spectator], p4_from(np.zeros(k), pt_b, eta_b, rng.uniform(-np.pi, np.pi, k)), 5)
    elif channel == "s":
        pt_b, eta_b = rng.gamma(2.0, 25.0, n), rng.normal(0.0, 1.2, n)
        ev.jet(idx, p4_from(np.full(n, B_MASS), pt_b, eta_b, recoil), 5)
    else:
        m_w = breit_wigner(rng, W_MASS, W_WIDTH, 50.0, 110.0, n)
        _decay_w(ev, idx, p4_from(m_w, pt, rng.normal(0.0, 1.2, n), recoil), m_w, -charge)
    _extra_jets(ev, rng.poisson(1.0 if channel == "tW" else 0.8, n), 2.2, (0.85, 0.1, 0.05))
    return ev.build(_weights(rng, n, 0.10 if channel == "s" else 0.0), first)


#: W+jets: ratio of the geometric jet multiplicity (jets above 20 GeV): ``P(n) = (1 - r) r^n``.
_WJETS_RATIO = 0.35


def _wjets(rng: np.random.Generator, n: int, first: int) -> dict:
    """W -> l nu (l = e, mu, tau) with pT ~ exp(15) GeV, geometric jet multiplicity, few b and c.

    The multiplicity is drawn as it occurs (unweighted events: ``genWeight`` is the
    lognormal jitter of every sample), so ``xsec x lumi / N`` is the right weight.
    """
    ev, idx = _Event(rng, n), np.arange(n)
    charge = np.where(rng.random(n) < 0.58, 1, -1)
    m_w = breit_wigner(rng, W_MASS, W_WIDTH, 50.0, 110.0, n)
    w = p4_from(m_w, rng.exponential(15.0, n), rng.normal(0.0, 1.8, n), rng.uniform(-np.pi, np.pi, n))
    _decay_w(ev, idx, w, m_w, charge, br=np.array([1.0, 1.0, 1.0, 0.0]) / 3.0)
    counts = rng.geometric(1.0 - _WJETS_RATIO, n) - 1
    _extra_jets(ev, counts, 2.0, (0.88, 0.09, 0.03))
    return ev.build(_weights(rng, n), first)


_MAKERS = {
    "ttbar": _ttbar,
    "ttbar_alt": _ttbar_alt,
    **{
        name: (lambda rng, n, first, settings=settings: _ttbar(rng, n, first, **settings))
        for name, settings in TTBAR_VARIATIONS.items()
    },
    "single_top_s_chan": lambda rng, n, first: _single_top(rng, n, first, "s"),
    "single_top_t_chan": lambda rng, n, first: _single_top(rng, n, first, "t"),
    "single_top_tW": lambda rng, n, first: _single_top(rng, n, first, "tW"),
    "wjets": _wjets,
}


def generate_agc_sample(path: str | Path, process: str, n_events: int, *, seed: int, chunk_size: int = 100_000) -> Path:
    """Write ``n_events`` synthetic NanoAOD events of ``process`` to ``path`` (TTree ``Events``).

    Args:
        path: output file, replaced atomically (parent folders are created).
        process: a key of :data:`AGC_PROCESSES`.
        n_events: number of events (``>= 0``).
        seed: random seed; the output is a function of ``(process, seed, n_events)``.
        chunk_size: events per ``TTree.extend``; does not change the content.

    Returns:
        The path written; its branches are :data:`BRANCHES`, collections sorted
        by descending pT (GeV).
    """
    return write_sample(
        path, process, n_events, seed=seed, chunk_size=chunk_size, processes=AGC_PROCESSES, makers=_MAKERS,
        stream="agc", tree_name="Events", title="diffhep synthetic AGC NanoAOD", unsigned_counters=True,
    )  # fmt: skip


def generate_agc_dataset(
    folder: str | Path, n_events: Mapping[str, int] | int, *, seed: int = 1, chunk_size: int = 100_000
) -> dict[str, Path]:
    """Write ``<folder>/<process>.root`` for each process.

    Args:
        folder: output folder (created if missing).
        n_events: events per process, or one count for every process of :data:`AGC_PROCESSES`.
        seed: random seed shared by all processes (their streams differ).
        chunk_size: events per write.

    Returns:
        Process -> path, in the order of ``n_events`` (or :data:`AGC_PROCESSES`).
    """
    return write_dataset(generate_agc_sample, folder, n_events, AGC_PROCESSES, seed=seed, chunk_size=chunk_size)
