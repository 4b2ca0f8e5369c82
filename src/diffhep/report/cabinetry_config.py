"""A cabinetry config of a diffhep workspace: the standard, non-differentiable path on the outputs.

``diffhep run`` and ``diffhep optimize`` write, next to ``workspace.json``:

* in ``histograms.root``, folder ``workspace/``, the templates of ``workspace.json`` as
  ``TH1D``\\ s named as the AGC names its histograms, ``{region}_{sample}{variation}``
  (:func:`workspace_templates`): every sample's nominal yields as the workspace holds them
  (after the MC floors of :func:`diffhep.likelihood.mc_floor`), ``_<systematic>_up`` and
  ``_<systematic>_down`` of every ``histosys`` (a symmetrised ``down`` written out) and
  ``{region}_observations``, the workspace's observations;
* ``cabinetry_config.yml`` (:func:`cabinetry_config`), from which cabinetry, run in that
  folder, builds the same model::

      import cabinetry
      config = cabinetry.configuration.load("cabinetry_config.yml")
      cabinetry.templates.collect(config)
      workspace = cabinetry.workspace.build(config)

How each modifier of ``workspace.json`` is written, and how close cabinetry's comes
(cabinetry 0.6 has two systematic types, ``Normalization`` and ``NormPlusShape``):

============  ===============================================  ==========================================
diffhep       cabinetry                                        cabinetry's logpdf
============  ===============================================  ==========================================
normfactor    ``NormFactors`` (the POI too), init and bounds   equal
normsys       ``Normalization``, ``hi - 1`` and ``lo - 1``     equal
staterror     cabinetry's per-region staterror (a sample it    equal, the parameter renamed
              does not cover gets ``DisableStaterror``)        ``staterror_<region>``
histosys      ``NormPlusShape`` with the up and down           equal where a sample's histosys parameters
              templates: a normsys of the yield ratio times    are 0 but at most one, which is -1 or +1
              a histosys of the templates normalised to the    (the nominal or a template); elsewhere the
              nominal                                          normalisation interpolates exponentially
                                                               (normsys, code 4), not linearly (histosys,
                                                               code 4p), and multiplies the other shapes
histosys      ``NormPlusShape`` of the product templates       equal
with          (``hi * hi_data``, ``lo * lo_data``): cabinetry
norm_plus_    splits them back into the same normsys and
shape         histosys
lumi          ``Normalization`` of +-sigma                     parameter ``alpha = (lumi - 1) / sigma``;
                                                               equal rates at ``alpha`` = -1, 0, +1, where
                                                               cabinetry's logpdf is diffhep's plus
                                                               ``log(sigma)`` (the Gaussian's normalisation,
                                                               a constant); elsewhere the normalisation
                                                               interpolates exponentially, not linearly
shapesys      left out (no cabinetry type)                     differs
============  ===============================================  ==========================================

:attr:`CabinetryConfig.notes` (written at the top of the file) says which of these a
workspace has; :attr:`CabinetryConfig.parameter_names` maps its parameters to cabinetry's.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import yaml

from diffhep.histogram import Histogram
from diffhep.outputs import write_text

__all__ = [
    "FILENAME",
    "FOLDER",
    "DATA",
    "CabinetryConfig",
    "histogram_name",
    "variation_path",
    "workspace_templates",
    "cabinetry_config",
    "render_cabinetry_config",
    "write_cabinetry_config",
]

#: The config's file name, next to ``workspace.json``.
FILENAME = "cabinetry_config.yml"
#: The folder of ``histograms.root`` holding the templates the config reads.
FOLDER = "workspace"
#: Sample path of the workspace's observations (``{region}_observations``).
DATA = "observations"


class CabinetryConfig(NamedTuple):
    """What :func:`cabinetry_config` returns.

    Attributes:
        config: the cabinetry config (plain dict, valid for ``cabinetry.configuration.validate``).
        notes: where cabinetry's model is not the workspace's (empty: the same logpdf everywhere,
            up to the renamed parameters).
        parameter_names: every parameter of the workspace -> cabinetry's name for it.
    """

    config: dict[str, Any]
    notes: list[str]
    parameter_names: dict[str, str]


def histogram_name(region: str, sample: str, variation: str = "") -> str:
    """The AGC's (cabinetry's ``{RegionPath}_{SamplePath}{VariationPath}``) name of a histogram.

    Example:
        >>> histogram_name("4j2b", "ttbar", variation_path("btag_var_0", "up"))
        '4j2b_ttbar_btag_var_0_up'
    """
    return f"{region}_{sample}{variation}"


def variation_path(systematic: str, direction: str) -> str:
    """The ``VariationPath`` of a variation, ``_<systematic>_<up|down>``."""
    return f"_{systematic}_{direction}"


def _relative(factor: float) -> float:
    """``factor - 1`` with the fewest digits for which cabinetry's ``1 + x`` is ``factor`` again (0.1, not
    0.10000000000000009 for 1.1)."""
    for digits in range(1, 18):
        x = float(f"{factor - 1.0:.{digits}g}")
        if 1.0 + x == factor:
            return x
    return factor - 1.0


def _data_name(workspace: Mapping[str, Any]) -> str:
    samples = {s["name"] for c in workspace["channels"] for s in c["samples"]}
    name = DATA
    while name in samples:
        name = f"{name}_"
    return name


def workspace_templates(
    workspace: Mapping[str, Any], hard: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, dict[str, Histogram]]:
    """The histograms ``workspace`` is made of: region -> ``{sample}{variation}`` -> :class:`Histogram`.

    Names: ``<sample>`` (its nominal yields), ``<sample>_<systematic>_up`` / ``_down`` (a
    histosys's ``hi_data`` / ``lo_data``), and ``observations`` (the channel's observed counts).
    ``sumw2`` of a nominal is its staterror's squared (the MC floors included); of a sample
    without staterror, and of a variation, the hard-cut histogram's in ``hard`` (region ->
    sample or ``sample/systematic/up`` -> histogram), else 0; of the observations, the counts.
    """
    observed = {o["name"]: o["data"] for o in workspace["observations"]}
    data = _data_name(workspace)
    out: dict[str, dict[str, Histogram]] = {}
    for channel in workspace["channels"]:
        region = channel["name"]
        raw = (hard or {}).get(region, {})

        def sumw2(key: str, n: int, raw: Mapping[str, Any] = raw) -> np.ndarray:
            return np.asarray(raw[key].sumw2, dtype=float) if key in raw else np.zeros(n)

        templates = {}
        for sample in channel["samples"]:
            name = sample["name"]
            counts = np.asarray(sample["data"], dtype=float)
            stat = [m for m in sample["modifiers"] if m["type"] == "staterror"]
            var = np.asarray(stat[0]["data"], dtype=float) ** 2 if stat else sumw2(name, len(counts))
            templates[name] = Histogram(counts, var)
            norms = {m["name"]: m["data"] for m in sample["modifiers"] if m["type"] == "normsys"}
            for m in sample["modifiers"]:
                if m["type"] != "histosys":
                    continue
                for direction, field, factor in (("up", "hi_data", "hi"), ("down", "lo_data", "lo")):
                    key = f"{name}/{m['name']}/{direction}"
                    # a normsys of the same name: diffhep's norm_plus_shape split; its variation is the product
                    scale = float(norms[m["name"]][factor]) if m["name"] in norms else 1.0
                    templates[name + variation_path(m["name"], direction)] = Histogram(
                        scale * np.asarray(m["data"][field], dtype=float), sumw2(key, len(counts))
                    )
        counts = np.asarray(observed[region], dtype=float)
        templates[data] = Histogram(counts, counts.copy())
        out[region] = templates
    return out


def cabinetry_config(
    workspace: Mapping[str, Any],
    *,
    observables: Mapping[str, str] | None = None,
    edges: Mapping[str, Any] | None = None,
    histograms: str = "histograms.root",
    histogram_folder: str = "cabinetry_histograms/",
) -> CabinetryConfig:
    """The cabinetry config that builds ``workspace`` from :func:`workspace_templates` (module docstring).

    Args:
        workspace: a pyhf workspace written by diffhep (``workspace.json``).
        observables: region -> axis label (the regions' ``Variable``).
        edges: region -> bin edges (the regions' ``Binning``).
        histograms: the ROOT file holding the templates in its folder :data:`FOLDER`, relative to
            the folder cabinetry runs in.
        histogram_folder: where ``cabinetry.templates.collect`` puts its copies.
    """
    measurement = workspace["measurements"][0]
    poi = measurement["config"]["poi"]
    settings = {p["name"]: p for p in measurement["config"].get("parameters", [])}
    channels = workspace["channels"]
    regions = [c["name"] for c in channels]
    samples: list[str] = []
    where: dict[str, set[str]] = {}  # sample -> regions holding it
    total: dict[tuple[str, str], float] = {}  # (region, sample) -> nominal yield
    mods: dict[tuple[str, str], list[tuple[str, str, Any]]] = {}  # (name, type) -> [(region, sample, data)]
    for channel in channels:
        for sample in channel["samples"]:
            if sample["name"] not in samples:
                samples.append(sample["name"])
            where.setdefault(sample["name"], set()).add(channel["name"])
            total[(channel["name"], sample["name"])] = float(np.sum(sample["data"]))
            for m in sample["modifiers"]:
                mods.setdefault((m["name"], m["type"]), []).append((channel["name"], sample["name"], m.get("data")))
    notes: list[str] = []
    names: dict[str, str] = {}
    # diffhep's norm_plus_shape histosys: a normsys and a histosys of one name on the same places, their
    # templates of equal totals; cabinetry's NormPlusShape of the product templates is exactly that pair
    split = {
        name
        for (name, kind), entries in mods.items()
        if kind == "histosys"
        and {(r, s) for r, s, _ in mods.get((name, "normsys"), [])} == {(r, s) for r, s, _ in entries}
    }
    for name in split:
        del mods[(name, "normsys")]

    def scope(name: str, entries: list[tuple[str, str, Any]]) -> dict[str, Any]:
        """``Samples`` (and ``Regions`` unless all) of a modifier; a note where these are not its places."""
        chosen = [s for s in samples if any(e[1] == s for e in entries)]
        inside = sorted({e[0] for e in entries}, key=regions.index)
        out: dict[str, Any] = {"Samples": chosen}
        if len(inside) < len(regions):
            out["Regions"] = inside
        places = {(r, s) for r, s, _ in entries}
        if places != {(r, s) for r in inside for s in chosen if r in where[s]}:
            notes.append(
                f"{name!r}: cabinetry applies a modifier to every sample it names in every region it names; "
                "this one is on fewer"
            )
        return out

    stat_samples = {s for (_, kind), entries in mods.items() if kind == "staterror" for _, s, _ in entries}
    norm_factors: list[dict[str, Any]] = []
    systematics: list[dict[str, Any]] = []
    for sample in sorted(stat_samples, key=samples.index):
        covered = {
            r for (_, kind), entries in mods.items() if kind == "staterror" for r, s, _ in entries if s == sample
        }
        if covered != where[sample]:
            notes.append(f"sample {sample!r} has a staterror in some of its regions only: cabinetry's is in all")
    for (name, kind), entries in mods.items():
        setting = settings.get(name, {})
        carried = {"name", "fixed"} | ({"inits"} if setting.get("fixed") and kind != "staterror" else set())
        if kind in ("normsys", "histosys", "staterror") and set(setting) - carried:
            notes.append(f"the settings of {name!r} in measurement.parameters are left out (cabinetry sets none)")
        if kind == "staterror":
            for region in {e[0] for e in entries}:
                names[name] = "staterror_" + region.replace(" ", "-")
            if len({e[0] for e in entries}) != 1:
                notes.append(f"staterror {name!r} spans several regions: cabinetry has one per region")
            if settings.get(name, {}).get("fixed"):
                notes.append(f"staterror {name!r} is fixed in workspace.json, not in cabinetry's")
            continue
        names[name] = name
        if kind == "normfactor":
            entry = {"Name": name, **scope(name, entries)}
            if "inits" in settings.get(name, {}):
                entry["Nominal"] = float(settings[name]["inits"][0])
            if "bounds" in settings.get(name, {}):
                entry["Bounds"] = [float(x) for x in settings[name]["bounds"][0]]
            norm_factors.append(entry)
        elif kind == "normsys":
            by_value: dict[tuple[float, float], list[tuple[str, str, Any]]] = {}
            for e in entries:
                by_value.setdefault((float(e[2]["hi"]), float(e[2]["lo"])), []).append(e)
            for i, ((hi, lo), group) in enumerate(by_value.items()):
                entry = {"Name": name if len(by_value) == 1 else f"{name} ({i + 1})", "Type": "Normalization"}
                entry |= {"Up": {"Normalization": _relative(hi)}, "Down": {"Normalization": _relative(lo)}}
                entry |= scope(name, group)
                if len(by_value) > 1:
                    entry["ModifierName"] = name
                systematics.append(entry)
        elif kind == "histosys":
            entry = {"Name": name, "Type": "NormPlusShape"}
            entry |= {"Up": {"VariationPath": variation_path(name, "up")}}
            entry |= {"Down": {"VariationPath": variation_path(name, "down")}, **scope(name, entries)}
            systematics.append(entry)
            empty = [f"{s} in {r}" for r, s, _ in entries if not total[(r, s)] > 0]
            if empty:
                notes.append(
                    f"histosys {name!r}: cabinetry divides by the nominal yield, 0 for {', '.join(empty)} "
                    "(its normsys is not a number there)"
                )
            if name in split:
                continue
            notes.append(
                f"histosys {name!r} is cabinetry's NormPlusShape: the same model where {name} is -1, 0 or +1 "
                "and a sample's other histosys are 0; elsewhere its normalisation interpolates exponentially "
                "(a normsys times the normalised shapes), not linearly (a histosys alone)"
            )
        elif kind == "lumi":
            sigma = float(settings[name]["sigmas"][0])
            entry = {"Name": name, "Type": "Normalization", "Up": {"Normalization": sigma}}
            entry |= {"Down": {"Normalization": -sigma}, **scope(name, entries)}
            systematics.append(entry)
            notes.append(
                f"lumi {name!r} is a Normalization of +-{sigma:g} (cabinetry has no lumi modifier): its parameter is "
                f"({name} - 1) / {sigma:g}; the rates are the same at -1, 0, +1, where cabinetry's logpdf is "
                f"workspace.json's plus log({sigma:g}) (a constant), and elsewhere the normalisation interpolates "
                "exponentially, not linearly"
            )
        else:
            del names[name]
            notes.append(f"{kind} {name!r} is left out: cabinetry has no {kind} modifier")
    fixed = []
    for name, p in settings.items():
        kinds = {kind for (n, kind) in mods if n == name}
        if p.get("fixed") and name in names and "staterror" not in kinds:
            value = float(p["inits"][0]) if "inits" in p else (1.0 if kinds & {"normfactor", "lumi"} else 0.0)
            if "lumi" in kinds:
                value = (value - 1.0) / float(p["sigmas"][0])
            fixed.append({"Name": names[name], "Value": value})
    data = _data_name(workspace)
    general: dict[str, Any] = {
        "Measurement": measurement["name"],
        "POI": poi,
        "HistogramFolder": histogram_folder,
        "InputPath": f"{histograms}:{FOLDER}/{{RegionPath}}_{{SamplePath}}{{VariationPath}}",
        "VariationPath": "",
    }
    if fixed:
        general["Fixed"] = fixed
    region_entries = []
    for region in regions:
        entry: dict[str, Any] = {"Name": region, "RegionPath": region}
        if observables and region in observables:
            entry["Variable"] = observables[region]
        if edges is not None and region in edges:
            entry["Binning"] = [float(x) for x in np.asarray(edges[region], dtype=float)]
        region_entries.append(entry)
    sample_entries: list[dict[str, Any]] = [{"Name": data, "SamplePath": data, "Data": True}]
    for sample in samples:
        entry = {"Name": sample, "SamplePath": sample}
        if sample not in stat_samples:
            entry["DisableStaterror"] = True
        if len(where[sample]) < len(regions):
            entry["Regions"] = sorted(where[sample], key=regions.index)
        sample_entries.append(entry)
    config: dict[str, Any] = {"General": general, "Regions": region_entries, "Samples": sample_entries}
    config["NormFactors"] = norm_factors
    if systematics:
        config["Systematics"] = systematics
    return CabinetryConfig(config, notes, names)


def render_cabinetry_config(result: CabinetryConfig) -> str:
    """The config as YAML, headed by how to run it, the renamed parameters and the notes."""
    renamed = [f"{a} -> {b}" for a, b in result.parameter_names.items() if a != b]
    lines = [
        "# cabinetry config of workspace.json, written by diffhep (diffhep.report.cabinetry_config).",
        "# Run cabinetry in this folder:",
        "#   import cabinetry",
        f'#   config = cabinetry.configuration.load("{FILENAME}")',
        "#   cabinetry.templates.collect(config)",
        "#   workspace = cabinetry.workspace.build(config)",
        f"# It reads the templates of workspace.json in histograms.root, folder {FOLDER}/ (the hard-cut",
        "# histograms are at the top of that file, with the same names).",
    ]
    if renamed:
        lines.append("# Parameters cabinetry names otherwise: " + ", ".join(renamed))
    if result.notes:
        lines.append("# Where cabinetry's model is not workspace.json's:")
        for note in result.notes:
            lines += textwrap.wrap(note, 100, initial_indent="#   - ", subsequent_indent="#     ")
    else:
        lines.append("# cabinetry's model is workspace.json's: the same logpdf at every parameter point.")
    body = yaml.dump(result.config, Dumper=_Dumper, sort_keys=False, width=120)
    return "\n".join(lines) + "\n" + body


class _Dumper(yaml.SafeDumper):
    """Block style, but a list of numbers or names on one line (``Binning: [110.0, 150.0]``)."""

    def represent_list(self, data: list) -> yaml.Node:
        flat = all(not isinstance(x, (list, dict)) for x in data)
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(list, _Dumper.represent_list)


def write_cabinetry_config(path: str | Path, result: CabinetryConfig) -> Path:
    """Write :func:`render_cabinetry_config` of ``result`` atomically."""
    return write_text(path, render_cabinetry_config(result))
