"""Systematics of configs: variations applied when reading, and the pyhf-like spec and workspace.

A ``histosys`` variation is applied to the branches as they are read, before
any ``require``, ordering or candidate building, so every variation is a
sample of its own with its own static structure:

* ``scale: {Jet_pt: 1.03}`` multiplies a branch;
* ``branches: {Jet_pt: Jet_pt_jesUp}`` reads another branch in its place;
* ``smear: {Jet_pt: 0.05}, seed: 7`` multiplies every value by ``1 + 0.05 g``,
  ``g`` standard normal from ``numpy.random.default_rng([seed, crc32(branch)])``
  (reproducible, independent of reading order);
* ``weight: btag_up_weight`` multiplies the event weight by an expression
  (the normalisation stays the nominal one); a variation that does only this
  (:attr:`Variation.weight_only`) is no sample of its own in memory: it shares
  its sample's events and carries one weight per event
  (:attr:`~diffhep.engine.combine.SampleData.varied_weight`);
* ``files: [...]`` reads other files (normalised with their own weights).

A left-out ``down`` is the symmetrised ``2 nominal - up`` (floored as the nominal is:
at 0 for the signal, at one MC event of mean weight for a background).
:func:`build_spec` writes the pyhf-like spec (numbers may be JAX arrays,
traced or not) for :func:`diffhep.likelihood.build_model`; :func:`workspace`
the plain-JSON pyhf workspace with observed counts or Asimov (``mu = 1``) observations.
"""

from __future__ import annotations

import ast
import functools
import warnings
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import jax
import jax.numpy as jnp
import numpy as np

from diffhep.engine.backend import split_rows
from diffhep.engine.expressions import names, parse
from diffhep.errors import ConfigError, closest
from diffhep.histogram import Histogram
from diffhep.io.read import errors_within, expand_files, is_url
from diffhep.likelihood import SUMW2_EPSILON, check_mean_weights, to_pyhf
from diffhep.likelihood.parameters import as_float_array

__all__ = ["Variation", "SystematicDef", "parse_systematics", "variation_key", "build_spec", "workspace"]

TYPES = ("lumi", "normsys", "histosys", "staterror", "shapesys", "normfactor")


@dataclass(frozen=True)
class Variation:
    """One up or down variation of a ``histosys``.

    Attributes:
        scale: branch -> factor.
        branches: branch -> alternative branch read instead.
        smear: branch -> relative Gaussian width.
        seed: seed of the smearing.
        weight: expression multiplying the event weight (parsed), or ``None``.
        weight_text: its source.
        files: alternative files (paths, globs or folders, absolute, or URLs), or empty.
    """

    scale: Mapping[str, float] = field(default_factory=dict)
    branches: Mapping[str, str] = field(default_factory=dict)
    smear: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    weight: ast.expr | None = None
    weight_text: str = ""
    files: tuple[str, ...] = ()

    @property
    def weight_only(self) -> bool:
        """Whether it changes only the event weight (no ``scale``, ``branches``, ``smear`` or ``files``):
        the in-memory load shares the nominal's events and keeps only its weights."""
        return not (self.scale or self.branches or self.smear or self.files)

    def read_branches(self, branch: str) -> str:
        """The branch actually read for ``branch``."""
        return self.branches.get(branch, branch)

    def weight_names(self) -> list[str]:
        """Event branches read by the weight expression."""
        return [] if self.weight is None else names(self.weight)

    def column(self, branch: str, get: Callable[[str], ak.Array]) -> ak.Array:
        """Values of ``branch`` with this variation applied (``get`` reads a branch)."""
        values = get(self.read_branches(branch))
        if branch in self.scale:
            values = values * self.scale[branch]
        if branch in self.smear:
            jagged = values.ndim > 1
            flat = ak.to_numpy(ak.flatten(values, axis=1) if jagged else values)
            rng = np.random.default_rng([self.seed, zlib.crc32(branch.encode())])
            smeared = flat * (1.0 + self.smear[branch] * rng.standard_normal(len(flat))).astype(flat.dtype)
            values = ak.unflatten(smeared, ak.num(values, axis=1)) if jagged else ak.Array(smeared)
        return values


@dataclass(frozen=True)
class SystematicDef:
    """One entry of ``systematics:`` (its name is the pyhf parameter name).

    Attributes:
        name: modifier / parameter name.
        type: ``lumi``, ``normsys``, ``histosys``, ``staterror``, ``shapesys`` or ``normfactor``.
        samples: samples it applies to.
        sigma: relative luminosity uncertainty (``lumi``); relative per-bin uncertainty
            (``shapesys``: one number for every bin of every region).
        hi, lo: normalisation factors at +-1 sigma (``normsys``).
        up, down: variations (``histosys``; ``down`` may be ``None``).
        norm_plus_shape: ``histosys`` split as cabinetry's NormPlusShape (:func:`build_spec`).
    """

    name: str
    type: str
    samples: tuple[str, ...]
    sigma: float | None = None
    hi: float | None = None
    lo: float | None = None
    up: Variation | None = None
    down: Variation | None = None
    norm_plus_shape: bool = False


def limited_files(files: tuple[str, ...], max_files: int | None, where: str) -> tuple[str, ...]:
    """``files`` (paths, globs, folders, URLs) as they are, or, with ``max_files``, the first
    ``max_files`` files they expand to (``inputs.max_files_per_sample``); errors start with ``where``."""
    if max_files is None:
        return files
    with errors_within(where):
        return tuple(expand_files(list(files), max_files=max_files))


def _variation(spec: Any, where: str, base: Path, max_files: int | None = None) -> Variation:
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{where}: a variation is a mapping with scale, branches, weight, files or smear, got {spec!r}"
        )
    unknown = set(spec) - {"scale", "branches", "smear", "seed", "weight", "files", "generate"}  # generate: the CLI's
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}"
            f"{closest(sorted(unknown)[0], ['scale', 'branches', 'smear', 'seed', 'weight', 'files'])}"
        )
    weight = spec.get("weight")
    files = tuple(f if is_url(f) else str(base / f) for f in spec.get("files") or ())
    files = limited_files(files, max_files, where) if files else files
    return Variation(
        scale={k: float(v) for k, v in dict(spec.get("scale") or {}).items()},
        branches={k: str(v) for k, v in dict(spec.get("branches") or {}).items()},
        smear={k: float(v) for k, v in dict(spec.get("smear") or {}).items()},
        seed=int(spec.get("seed", 0)),
        weight=None if weight is None else parse(weight, f"{where} weight"),
        weight_text="" if weight is None else str(weight),
        files=files,
    )


def parse_systematics(
    config: Mapping[str, Mapping[str, Any]], samples: list[str], base: Path, *, max_files: int | None = None
) -> list[SystematicDef]:
    """Parse ``systematics:`` (``samples`` defaults to all samples; ``max_files``: of a variation's ``files``)."""
    out = []
    for name, spec in (config or {}).items():
        where = f"systematic {name!r}"
        kind = spec.get("type")
        if kind not in TYPES:
            raise ConfigError(f"{where}: type {kind!r} is not a systematic type{closest(str(kind), TYPES)}")
        chosen = tuple(spec.get("samples") or samples)
        for s in chosen:
            if s not in samples:
                raise ConfigError(f"{where}: unknown sample {s!r}{closest(s, samples)}")
        kwargs: dict[str, Any] = {}
        if kind == "lumi":
            kwargs["sigma"] = float(spec["sigma"])
        elif kind == "shapesys":
            sigma = spec.get("sigma")
            if isinstance(sigma, (list, tuple)) or not isinstance(sigma, (int, float)) or not sigma > 0:
                raise ConfigError(
                    f"{where}: a shapesys needs sigma, one relative uncertainty > 0 for every bin "
                    f"(0.05 = 5 %), got {sigma!r}"
                )
            kwargs["sigma"] = float(sigma)
        elif kind == "normsys":
            kwargs["hi"], kwargs["lo"] = float(spec["hi"]), float(spec["lo"])
        elif kind == "histosys":
            if "up" not in spec:
                raise ConfigError(f"{where}: a histosys needs 'up' (and optionally 'down')")
            kwargs["up"] = _variation(spec["up"], f"{where} up", base, max_files)
            if spec.get("down") is not None:
                kwargs["down"] = _variation(spec["down"], f"{where} down", base, max_files)
            kwargs["norm_plus_shape"] = bool(spec.get("norm_plus_shape", False))
        out.append(SystematicDef(name=name, type=kind, samples=chosen, **kwargs))
    return out


def _norm_plus_shape(nominal: Any, varied: Any, base: Any) -> tuple[Any, Any]:
    """Cabinetry's NormPlusShape split of variations, row by row: ``(factor, shape)``.

    ``nominal`` and ``varied`` are ``Float[Array, "rows bins"]`` (floored yields, events),
    ``base`` the rows a shape falls back to. ``factor = sum(varied) / sum(nominal)`` (this
    region's totals, the ``normsys`` ``hi`` or ``lo``) and ``shape = varied * sum(nominal) /
    sum(varied)`` (the ``histosys`` data); where a total is 0 the factor is 1 and the shape
    ``base`` (nothing to split). Written with ``where`` so that the gradient with respect to the
    yields stays finite there.
    """
    total, own = jnp.sum(nominal, axis=1), jnp.sum(varied, axis=1)
    ok = (total > 0) & (own > 0)
    safe_total, safe_own = jnp.where(ok, total, 1.0), jnp.where(ok, own, 1.0)
    factor = jnp.where(ok, safe_own / safe_total, 1.0)
    return factor, jnp.where(ok[:, None], varied * (safe_total / safe_own)[:, None], base)


def variation_key(sample: str, systematic: str, direction: str) -> str:
    """Histogram key of a variation (nominal histograms use the sample name).

    Example:
        >>> variation_key("ttbar", "jes", "up")
        'ttbar/jes/up'
    """
    return f"{sample}/{systematic}/{direction}"


@dataclass(frozen=True)
class _Plan:
    """The static layout of a region's rows for :func:`_region_arrays` (hashable: one compiled program each)."""

    row_floor: tuple[float, ...]  # floor of each histogram's yields (its sample's)
    sumw2_floor: tuple[float, ...]  # floor of each sample's sumw2
    missing: tuple[tuple[int, int], ...]  # (nominal, up) rows of each left-out down, appended in this order
    split: tuple[tuple[int, int, int], ...]  # (nominal, up, down) rows of each NormPlusShape split


@functools.partial(jax.jit, static_argnames="plan")
def _region_arrays(counts: list[Any], sumw2: list[Any], plan: _Plan) -> tuple[list[Any], ...]:
    """Rows of floored yields (the histograms', then the symmetrised downs), floored sumw2, and the
    NormPlusShape factors and shapes (ups, then downs) of a region (:class:`_RegionYields`).

    Jitted: the hard-cut path calls it with NumPy histograms, where each operation run alone would
    compile a program of its own (one per shape), and traced inside the objective it is inlined.
    """
    counts = as_float_array(jnp.stack(counts))
    sumw2 = as_float_array(jnp.stack(sumw2))
    row_floor = np.array(plan.row_floor)
    counts = jnp.maximum(counts, jnp.asarray(row_floor, counts.dtype)[:, None])
    sumw2 = jnp.maximum(sumw2, jnp.asarray(np.array(plan.sumw2_floor), sumw2.dtype)[:, None])
    if plan.missing:
        nominal, up = (np.array(i) for i in zip(*plan.missing, strict=True))
        floors = jnp.asarray(row_floor[nominal], counts.dtype)[:, None]
        counts = jnp.concatenate([counts, jnp.maximum(2.0 * counts[nominal] - counts[up], floors)])
    factor = shape = []
    if plan.split:
        nominal, up, down = (np.array(i) for i in zip(*plan.split, strict=True))
        nominal2 = np.concatenate([nominal, nominal])
        f, sh = _norm_plus_shape(counts[nominal2], counts[np.concatenate([up, down])], counts[nominal2])
        factor, shape = split_rows(f), split_rows(sh)
    # the rows, each array split once (one operation; indexing row by row was 6 equations a row with the gradient)
    return split_rows(counts), split_rows(sumw2), factor, shape


class _RegionYields:
    """One region's floored yields and histosys data, each kind computed for all samples at once.

    Every histogram of the region (each sample's nominal, each histosys variation) is floored in
    one array operation, the left-out ``down`` variations are symmetrised in one and the
    NormPlusShape splits done in one (:func:`_norm_plus_shape`); the spec's entries are rows of
    these arrays. One operation per histogram instead made most of the compiled objective of the
    AGC template: 8,000 of its 12,700 equations, 21 s of its compilation (2026-12-07).

    Floors (:func:`~diffhep.likelihood.mc_floor`): a background's yields at its mean weight
    ``w`` and its ``sumw2`` at ``w**2``; the signal's at 0 and
    :data:`~diffhep.likelihood.SUMW2_EPSILON` (negative generator weights).
    """

    def __init__(
        self,
        hists: Mapping[str, Histogram],
        roles: Mapping[str, str],
        systematics: list[SystematicDef],
        weights: Mapping[str, float],
    ) -> None:
        samples = list(roles)
        floor = {s: (0.0 if roles[s] == "signal" else weights[s]) for s in samples}
        shapes = [(s, syst) for s in samples for syst in systematics if s in syst.samples and syst.type == "histosys"]
        rows = samples + [variation_key(s, syst.name, "up") for s, syst in shapes]
        rows += [key for s, syst in shapes if (key := variation_key(s, syst.name, "down")) in hists]
        self.row = {key: i for i, key in enumerate(rows)}
        missing = [(s, syst) for s, syst in shapes if variation_key(s, syst.name, "down") not in hists]
        for i, (s, syst) in enumerate(missing):  # left-out downs: rows appended after the histograms'
            self.row[variation_key(s, syst.name, "down")] = len(rows) + i
        split = [(s, syst) for s, syst in shapes if syst.norm_plus_shape]
        self.split = {(s, syst.name): i for i, (s, syst) in enumerate(split)}
        self.n_split = len(split)
        plan = _Plan(
            row_floor=tuple(floor[key.split("/")[0]] for key in rows),
            sumw2_floor=tuple(SUMW2_EPSILON if roles[s] == "signal" else weights[s] ** 2 for s in samples),
            missing=tuple((self.row[s], self.row[variation_key(s, syst.name, "up")]) for s, syst in missing),
            split=tuple(
                (
                    self.row[s],
                    self.row[variation_key(s, syst.name, "up")],
                    self.row[variation_key(s, syst.name, "down")],
                )
                for s, syst in split
            ),
        )
        counts = [hists[key].counts for key in rows]
        sumw2 = [hists[s].sumw2 for s in samples]
        self.counts, self.sumw2, self.factor, self.shape = _region_arrays(counts, sumw2, plan)

    def nominal(self, sample: str) -> tuple[Any, Any]:
        """``(yields, sumw2)`` of ``sample``, floored, ``(bins,)`` each."""
        i = self.row[sample]
        return self.counts[i], self.sumw2[i]

    def histosys(self, sample: str, syst: SystematicDef) -> list[dict[str, Any]]:
        """The modifiers of ``syst`` on ``sample``: a histosys, or cabinetry's NormPlusShape (a normsys and a
        histosys of the same parameter)."""
        if not syst.norm_plus_shape:
            up, down = (self.counts[self.row[variation_key(sample, syst.name, d)]] for d in ("up", "down"))
            return [{"name": syst.name, "type": "histosys", "data": {"hi_data": up, "lo_data": down}}]
        i, j = self.split[(sample, syst.name)], self.split[(sample, syst.name)] + self.n_split
        return [
            {"name": syst.name, "type": "normsys", "data": {"hi": self.factor[i], "lo": self.factor[j]}},
            {"name": syst.name, "type": "histosys", "data": {"hi_data": self.shape[i], "lo_data": self.shape[j]}},
        ]


def build_spec(
    histograms: Mapping[str, Mapping[str, Histogram]],
    *,
    roles: Mapping[str, str],
    systematics: list[SystematicDef],
    poi: str,
    mean_weights: Mapping[str, float],
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    fixed: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """The pyhf-like spec ``{"channels": [...], "parameters": [...]}`` of region histograms.

    Args:
        histograms: region -> sample (or :func:`variation_key`) -> histogram (events).
        roles: sample -> ``"signal"`` or ``"background"`` (signal gets normfactor ``poi``).
        systematics: modifiers to add.
        poi: name of the parameter of interest.
        mean_weights: background sample -> its mean MC event weight ``sum(w) / N``
            over all its events before any cut (events).
        parameters: measurement parameter settings, name -> ``{bounds, inits, auxdata, sigmas, fixed}``.
        fixed: parameters held fixed.

    Empty MC bins: each background's nominal yields, ``sumw2`` (staterror) and
    ``histosys`` variations go through :func:`~diffhep.likelihood.mc_floor`
    with its mean weight (a bin without MC events holds one MC event's yield
    and uncertainty), as in :func:`diffhep.likelihood.make_spec`; a left-out
    ``down`` is ``2 nominal - up`` of the floored histograms, floored the same
    way. Signal yields (negative where negative generator weights dominate a
    bin) are floored at 0.
    """
    weights = check_mean_weights(mean_weights, [s for s, role in roles.items() if role != "signal"])
    channels = []
    for region, hists in histograms.items():
        yields = _RegionYields(hists, roles, systematics, weights)
        samples = []
        for sample, role in roles.items():
            counts, sumw2 = yields.nominal(sample)
            mods: list[dict[str, Any]] = []
            if role == "signal":
                mods.append({"name": poi, "type": "normfactor", "data": None})
            for syst in systematics:
                if sample not in syst.samples:
                    continue
                if syst.type == "lumi":
                    mods.append({"name": syst.name, "type": "lumi", "data": None})
                elif syst.type == "normsys":
                    mods.append({"name": syst.name, "type": "normsys", "data": {"hi": syst.hi, "lo": syst.lo}})
                elif syst.type == "staterror":
                    mods.append({"name": f"{syst.name}_{region}", "type": "staterror", "data": jnp.sqrt(sumw2)})
                elif syst.type == "shapesys":  # Poisson-constrained per bin: absolute uncertainty sigma x yield
                    mods.append({"name": f"{syst.name}_{region}", "type": "shapesys", "data": syst.sigma * counts})
                elif syst.type == "normfactor":  # free normalisation (pyhf's bounds [0, 10], init 1)
                    mods.append({"name": syst.name, "type": "normfactor", "data": None})
                else:
                    mods.extend(yields.histosys(sample, syst))
            samples.append({"name": sample, "data": counts, "modifiers": mods})
        channels.append({"name": region, "samples": samples})
    settings: dict[str, dict[str, Any]] = {}
    for syst in systematics:
        if syst.type == "lumi":
            settings[syst.name] = {
                "auxdata": [1.0],
                "sigmas": [syst.sigma],
                "inits": [1.0],
                "bounds": [[max(1.0 - 5.0 * syst.sigma, 0.0), 1.0 + 5.0 * syst.sigma]],
            }
    for name, values in (parameters or {}).items():
        settings.setdefault(name, {}).update(values)
    for name in fixed:
        settings.setdefault(name, {})["fixed"] = True
    return {"channels": channels, "parameters": [{"name": k, **v} for k, v in settings.items()]}


def workspace(
    spec: Mapping[str, Any], *, poi: str, name: str, observations: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A plain-JSON pyhf workspace of ``spec``, validated by pyhf: its observations are ``observations[channel]``
    (counts per bin) where given, else the Asimov data at ``poi = 1``."""
    import pyhf

    plain = to_pyhf(dict(spec))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="jsonschema.RefResolver", category=DeprecationWarning)
        model = pyhf.Model({"channels": plain["channels"], "parameters": plain["parameters"]}, poi_name=poi)
        pars = np.asarray(model.config.suggested_init(), dtype=float)
        pars[model.config.poi_index] = 1.0
        expected = np.asarray(model.expected_actualdata(pars), dtype=float)
        observed = []
        for channel in model.config.channels:
            part = expected[model.config.channel_slices[channel]]
            if observations is not None and channel in observations:
                part = np.asarray(observations[channel], dtype=float)
            observed.append({"name": channel, "data": [float(x) for x in part]})
        ws = {
            "channels": plain["channels"],
            "observations": observed,
            "measurements": [{"name": name, "config": {"poi": poi, "parameters": plain["parameters"]}}],
            "version": "1.0.0",
        }
        pyhf.Workspace(ws)
    return ws
