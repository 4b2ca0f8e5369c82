"""Deterministic pyhf workspaces for the likelihood and inference tests and the benchmark.

* :func:`hepdata_like` — a workspace shaped like the ones published on HEPData
  (ATLAS HistFitter exports): control and signal regions, a dozen physics
  samples, a signal strength and two background normalisations, ``lumi``,
  dozens of experimental/theory ``normsys`` (some also ``histosys`` with the
  same name), ``staterror`` per channel, ``shapesys`` on a data-driven sample,
  a ``shapefactor`` in one control region, Poisson-fluctuated observations and
  two measurements. Everything comes from one ``numpy`` generator with a fixed
  seed: same arguments, same workspace.
* :func:`small_workspace` — any model spec wrapped into a workspace with
  fluctuated observations and one measurement;
* :func:`modifier_spec` — small specs with each modifier type alone, all
  together on two channels, and pyhf's ``simplemodels``.

Nothing is downloaded.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyhf

__all__ = [
    "hepdata_like",
    "small_workspace",
    "modifier_spec",
    "MODIFIER_KINDS",
    "NB",
    "CHANNELS_5",
    "CHANNELS_2",
]

#: (name, bins, role) of the five-channel workspace used by the tests.
CHANNELS_5: tuple[tuple[str, int, str], ...] = (
    ("CR_DY", 3, "CR"),
    ("CR_WZ", 3, "CR"),
    ("CR_ttZ", 3, "CR"),
    ("SR_high", 4, "SR"),
    ("SR_low", 4, "SR"),
)
#: (name, bins, role) of the two-channel workspace used by the benchmark.
CHANNELS_2: tuple[tuple[str, int, str], ...] = (("CR_WZ", 5, "CR"), ("SR", 6, "SR"))

# sample -> (yield scale per bin in a signal region, in a control region, normfactor or None)
_SAMPLES: dict[str, tuple[float, float, str | None]] = {
    "signal": (6.0, 0.8, "mu_SIG"),
    "WZ": (12.0, 120.0, "mu_WZ"),
    "ttZ": (8.0, 60.0, "mu_ttZ"),
    "ZZ": (4.0, 25.0, None),
    "ttbar": (5.0, 30.0, None),
    "ttW": (3.0, 10.0, None),
    "tZ": (1.5, 8.0, None),
    "tWZ": (1.0, 6.0, None),
    "VVV": (0.6, 2.0, None),
    "higgs": (0.8, 3.0, None),
    "singletop": (1.2, 9.0, None),
    "DY": (2.0, 150.0, None),
    "other": (0.7, 4.0, None),
    "fakes": (4.0, 20.0, None),  # data-driven: no lumi, shapesys instead of staterror
}


#: Bins per channel of :func:`modifier_spec`.
NB = 4
#: Kinds accepted by :func:`modifier_spec`: each modifier type alone, all together, pyhf's simple models.
MODIFIER_KINDS = (
    "normfactor",
    "normsys",
    "staterror",
    "lumi",
    "shapesys",
    "histosys",
    "shapefactor",
    "combined",
    "uncorrelated_background",
    "correlated_background",
)


def _sample(rng: np.random.Generator, name: str, mods: list, low: float = 5.0, high: float = 20.0) -> dict:
    return {"name": name, "data": list(rng.uniform(low, high, NB)), "modifiers": mods}


def _unc(rng: np.random.Generator) -> list:
    return list(rng.uniform(0.5, 2.0, NB))


NF = {"name": "mu", "type": "normfactor", "data": None}
LUMI_PARAM = {"name": "lumi", "auxdata": [1.0], "sigmas": [0.02], "bounds": [[0.5, 1.5]], "inits": [1.0]}


def modifier_spec(kind: str) -> dict[str, Any]:
    """A small model spec (``NB`` bins) per modifier type, plus combined and pyhf-simplemodels ones.

    ``kind`` is one of :data:`MODIFIER_KINDS`; the numbers come from a generator
    seeded by the kind's name.
    """
    rng = np.random.default_rng(zlib.crc32(kind.encode()))
    sig = _sample(rng, "sig", [NF], 1.0, 5.0)
    if kind == "normfactor":
        return {"channels": [{"name": "sr", "samples": [sig, _sample(rng, "bkg", [])]}]}
    if kind == "normsys":
        mods = [{"name": "bn", "type": "normsys", "data": {"hi": 1.1, "lo": 0.85}}]
        return {"channels": [{"name": "sr", "samples": [sig, _sample(rng, "bkg", mods)]}]}
    if kind == "staterror":
        # shared by two samples; one bin has zero yield in one sample
        b1 = _sample(rng, "b1", [{"name": "staterror_sr", "type": "staterror", "data": _unc(rng)}])
        b2 = _sample(rng, "b2", [{"name": "staterror_sr", "type": "staterror", "data": _unc(rng)}])
        b2["data"][1] = 0.0
        b2["modifiers"][0]["data"][1] = 0.0
        return {"channels": [{"name": "sr", "samples": [sig, b1, b2]}]}
    if kind == "lumi":
        mods = [{"name": "lumi", "type": "lumi", "data": None}]
        sig["modifiers"] = [NF, *mods]
        return {
            "channels": [{"name": "sr", "samples": [sig, _sample(rng, "bkg", mods)]}],
            "parameters": [LUMI_PARAM],
        }
    if kind == "shapesys":
        mods = [{"name": "ss", "type": "shapesys", "data": _unc(rng)}]
        return {"channels": [{"name": "sr", "samples": [sig, _sample(rng, "bkg", mods)]}]}
    if kind == "histosys":
        data = {"hi_data": list(rng.uniform(5, 20, NB)), "lo_data": list(rng.uniform(5, 20, NB))}
        mods = [{"name": "hs", "type": "histosys", "data": data}]
        return {"channels": [{"name": "sr", "samples": [sig, _sample(rng, "bkg", mods)]}]}
    if kind == "shapefactor":
        mods = [{"name": "sf", "type": "shapefactor", "data": None}]
        return {"channels": [{"name": "sr", "samples": [sig, _sample(rng, "bkg", mods)]}]}
    if kind == "combined":  # every type, two channels, shared names across channels and types
        lumi = {"name": "lumi", "type": "lumi", "data": None}
        sig["modifiers"] = [NF, lumi]
        hs = {"hi_data": list(rng.uniform(5, 20, NB)), "lo_data": list(rng.uniform(5, 20, NB))}
        b1 = _sample(
            rng,
            "zz_bkg1",
            [
                {"name": "b_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.85}},
                {"name": "staterror_sr", "type": "staterror", "data": _unc(rng)},
                {"name": "shape", "type": "histosys", "data": hs},
                {"name": "shape", "type": "normsys", "data": {"hi": 1.02, "lo": 0.97}},
            ],
        )
        b2 = _sample(
            rng,
            "a_bkg2",
            [
                {"name": "staterror_sr", "type": "staterror", "data": _unc(rng)},
                {"name": "ss", "type": "shapesys", "data": _unc(rng)},
                {"name": "a_norm", "type": "normsys", "data": {"hi": 1.2, "lo": 0.9}},
            ],
        )
        cr = _sample(
            rng,
            "zz_bkg1",
            [
                {"name": "b_norm", "type": "normsys", "data": {"hi": 1.1, "lo": 0.85}},
                {"name": "staterror_cr", "type": "staterror", "data": _unc(rng)},
                {"name": "sf", "type": "shapefactor", "data": None},
                lumi,
            ],
        )
        return {
            "channels": [{"name": "sr", "samples": [sig, b1, b2]}, {"name": "cr", "samples": [cr]}],
            "parameters": [LUMI_PARAM],
        }
    if kind == "uncorrelated_background":
        return pyhf.simplemodels.uncorrelated_background([5.0, 6.0, 1.0], [50.0, 52.0, 3.0], [3.0, 7.0, 2.0]).spec
    if kind == "correlated_background":
        return pyhf.simplemodels.correlated_background([5.0, 8.0], [50.0, 52.0], [45.0, 57.0], [55.0, 47.0]).spec
    raise ValueError(kind)


KINDS = [
    "normfactor",
    "normsys",
    "staterror",
    "lumi",
    "shapesys",
    "histosys",
    "shapefactor",
    "combined",
    "uncorrelated_background",
]


def _names(prefix: str, n: int) -> list[str]:
    groups = ("JET_JER", "JET_EffectiveNP", "EG_SCALE", "EL_EFF_ID", "MUON_EFF_RECO", "FT_EFF_B", "MET_SoftTrk", "PRW")
    return [f"{prefix}{groups[i % len(groups)]}_{i}" for i in range(n)]


def hepdata_like(
    *,
    seed: int = 2024,
    channels: Sequence[tuple[str, int, str]] = CHANNELS_5,
    n_normsys: int = 56,
    n_histosys: int = 24,
    n_shared: int = 10,
    mu_obs: float = 0.7,
) -> dict[str, Any]:
    """A deterministic HEPData-style workspace (see the module docstring).

    Args:
        seed: seed of the ``numpy`` generator; the workspace is a pure function of the arguments.
        channels: ``(name, bins, "SR"|"CR")`` per channel.
        n_normsys: number of ``normsys`` parameters (experimental and theory).
        n_histosys: number of ``histosys`` parameters, of which the first
            ``n_shared`` reuse ``normsys`` names (as HistFitter exports do).
        mu_obs: signal strength of the observations (before Poisson fluctuation).

    Returns:
        A workspace dict (``channels``, ``observations``, ``measurements``, ``version``)
        that ``pyhf.Workspace`` accepts. With the defaults it has 5 channels,
        14 samples and 120 parameters.
    """
    rng = np.random.default_rng(seed)
    normsys_names = _names("sys_", n_normsys)
    histosys_names = normsys_names[:n_shared] + _names("shape_", n_histosys - n_shared)
    out_channels = []
    observations = []
    for cname, nbins, role in channels:
        shape = rng.uniform(0.6, 1.4, nbins)
        samples = []
        expected = np.zeros(nbins)
        for sname, (sr_scale, cr_scale, nf) in _SAMPLES.items():
            if role == "CR" and sname == "signal" and rng.uniform() < 0.5:
                continue  # signal leaks into some control regions only
            if sname == "DY" and role == "SR":
                continue
            scale = sr_scale if role == "SR" else cr_scale
            nominal = scale * shape * rng.uniform(0.5, 1.5, nbins)
            modifiers: list[dict[str, Any]] = []
            if nf is not None:
                modifiers.append({"name": nf, "type": "normfactor", "data": None})
            if sname != "fakes":
                modifiers.append({"name": "lumi", "type": "lumi", "data": None})
            # up and down variations on opposite sides of the nominal (asymmetric sizes, either
            # sign): the likelihood has one minimum, as a fit comparison needs
            for name in rng.choice(normsys_names, size=min(8, n_normsys), replace=False):
                size = rng.uniform(0.005, 0.12) * rng.choice([1.0, -1.0])
                hi, lo = 1.0 + size, 1.0 - size * rng.uniform(0.5, 1.5)
                modifiers.append({"name": str(name), "type": "normsys", "data": {"hi": hi, "lo": lo}})
            for name in rng.choice(histosys_names, size=min(4, n_histosys), replace=False):
                size = rng.uniform(0.0, 0.1, nbins) * rng.choice([1.0, -1.0], nbins)
                up = nominal * (1.0 + size)
                down = nominal * (1.0 - size * rng.uniform(0.5, 1.5, nbins))
                modifiers.append(
                    {"name": str(name), "type": "histosys", "data": {"hi_data": up.tolist(), "lo_data": down.tolist()}}
                )
            if sname == "fakes":
                if role == "SR" or cname == "CR_WZ":
                    unc = nominal * rng.uniform(0.1, 0.4, nbins)
                    modifiers.append({"name": f"fakes_stat_{cname}", "type": "shapesys", "data": unc.tolist()})
            else:
                unc = np.sqrt(nominal) * rng.uniform(0.05, 0.3, nbins)
                modifiers.append({"name": f"staterror_{cname}", "type": "staterror", "data": unc.tolist()})
            if sname == "DY" and cname == "CR_DY":
                modifiers.append({"name": "sf_DY", "type": "shapefactor", "data": None})
            samples.append({"name": sname, "data": nominal.tolist(), "modifiers": modifiers})
            expected += nominal * (mu_obs if sname == "signal" else 1.0)
        rng.shuffle(samples)  # pyhf sorts; so must we
        out_channels.append({"name": cname, "samples": samples})
        observations.append({"name": cname, "data": rng.poisson(expected).astype(float).tolist()})
    lumi = {"name": "lumi", "auxdata": [1.0], "sigmas": [0.017], "bounds": [[0.915, 1.085]], "inits": [1.0]}
    measurements = [
        {
            "name": "NormalMeasurement",
            "config": {
                "poi": "mu_SIG",
                "parameters": [
                    lumi,
                    {"name": "mu_SIG", "bounds": [[0.0, 5.0]], "inits": [1.0]},
                    {"name": normsys_names[-1], "fixed": True},
                ],
            },
        },
        {
            "name": "WZMeasurement",
            "config": {"poi": "mu_WZ", "parameters": [lumi, {"name": "mu_SIG", "inits": [0.0], "fixed": True}]},
        },
    ]
    return {
        "channels": out_channels,
        "observations": observations,
        "measurements": measurements,
        "version": "1.0.0",
    }


def small_workspace(
    spec: Mapping[str, Any],
    *,
    poi: str = "mu",
    parameters: Sequence[Mapping[str, Any]] = (),
    seed: int = 0,
) -> dict[str, Any]:
    """Wrap a model spec into a workspace with one measurement and fluctuated observations.

    Args:
        spec: ``{"channels": [...], "parameters": [...]?}`` (a ``pyhf.Model`` spec).
        poi: the measurement's parameter of interest.
        parameters: extra measurement parameter configs (the spec's own
            ``parameters`` come first).
        seed: seed for the observations: the nominal sum of every channel times
            ``uniform(0.8, 1.2)`` per bin.

    Returns:
        A workspace dict.
    """
    rng = np.random.default_rng(seed)
    channels = copy.deepcopy(list(spec["channels"]))
    observations = []
    for channel in channels:
        total = np.sum([np.asarray(s["data"], dtype=float) for s in channel["samples"]], axis=0)
        observations.append({"name": channel["name"], "data": (total * rng.uniform(0.8, 1.2, total.shape)).tolist()})
    params = [*copy.deepcopy(list(spec.get("parameters", []))), *copy.deepcopy(list(parameters))]
    return {
        "channels": channels,
        "observations": observations,
        "measurements": [{"name": "meas", "config": {"poi": poi, "parameters": params}}],
        "version": "1.0.0",
    }
