"""Typed, frozen sections of a loaded config: the one reader of the YAML mapping.

:class:`~diffhep.config.Config` validates a config (schema, meaning checks,
every expression parsed); :attr:`Config.sections <diffhep.config.Config.sections>`
turns it, once, into the frozen objects below, which later stages (the engine,
the command line) read instead of the raw dict. Every section remembers where
it is written: :meth:`Located.where` gives ``FILE:LINE: field.path`` and
:meth:`Located.error` a :class:`~diffhep.errors.ConfigError` with it (through
:meth:`Config.error <diffhep.config.Config.error>`), so a problem found long
after loading still names the line of the config.

Converted fully: the top level (``name``, ``lumi_pb``, ``tree``, ``plugins``,
``corrections`` as set name -> absolute file),
``parameters`` (:class:`Parameters` of
:class:`~diffhep.config.parameters.CutParameter`), ``samples``
(:class:`Sample`), ``measurement`` (:class:`Measurement`) and ``objective``
(:class:`Objective`), the network observables of ``regions`` (:class:`NetworkObservable`)
and ``training`` (:class:`Training`). Kept as read-only mappings of the validated data (their
shapes are checked by the schema, their expressions by the checks; the engine
parses them into its own definitions): ``objects``, ``regions``,
``systematics`` (``files`` made absolute), ``optimizer`` and ``execution``;
:meth:`Sections.where` and :meth:`Sections.error` still locate errors in them.
The mappings are copies of the validated data (plain dicts and lists, so they
go on into JSON workspaces and pickles): changing them changes nothing else.

Example:
    >>> from diffhep.config import load_config_dict
    >>> config = load_config_dict({
    ...     "name": "x", "lumi_pb": 10,
    ...     "samples": {"s": {"role": "signal", "files": ["s.root"], "xsec_pb": 1}},
    ...     "regions": {"r": {"observable": "MET_pt", "binning": {"bins": 2, "range": [0, 1]}, "bandwidth": 0}},
    ... }, base_dir="/data")
    >>> config.sections.samples["s"].files, config.sections.objective.name
    (('/data/s.root',), 'discovery_significance')
    >>> str(config.sections.samples["s"].error("xsec_pb", "too small"))
    '<dict>: samples.s.xsec_pb: too small'
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diffhep.config.checks import FieldPath, format_path
from diffhep.config.expr import Expr
from diffhep.config.parameters import CutParameter
from diffhep.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from diffhep.config.load import Config

__all__ = [
    "Located",
    "Parameters",
    "Sample",
    "Measurement",
    "MinBackground",
    "Objective",
    "NetworkObservable",
    "Pretraining",
    "Training",
    "Sections",
    "build_sections",
    "FEW_MC_EVENTS",
]


@dataclass(frozen=True)
class Located:
    """Where a section is written: its field path and the config's locating helpers.

    Attributes:
        path: field path of the section (``("samples", "ttbar")``; ``()`` for the top level).
        source: display name of the config (its path as given, or ``"<dict>"``).
    """

    path: FieldPath
    source: str = field(compare=False)
    _line: Callable[[FieldPath], int | None] = field(repr=False, compare=False)
    _error: Callable[[FieldPath, str], ConfigError] = field(repr=False, compare=False)

    def _full(self, field_path: str | FieldPath) -> FieldPath:
        if isinstance(field_path, str):
            parts: list[Any] = []
            for piece in field_path.replace("[", ".[").split("."):
                if piece.startswith("[") and piece.endswith("]") and piece[1:-1].isdigit():
                    parts.append(int(piece[1:-1]))
                elif piece:
                    parts.append(piece)
            return (*self.path, *parts)
        return (*self.path, *field_path)

    def line(self, field_path: str | FieldPath = ()) -> int | None:
        """Line of ``field_path`` (relative to this section, ``"weight"`` or ``("flags", "btag")``), if known."""
        return self._line(self._full(field_path))

    def where(self, field_path: str | FieldPath = ()) -> str:
        """``FILE:LINE: samples.ttbar.weight`` (``FILE`` alone when the line is unknown)."""
        full = self._full(field_path)
        line = self._line(full)
        place = f"{self.source}:{line}" if line is not None else self.source
        return f"{place}: {format_path(full)}" if full else place

    def error(self, field_path: str | FieldPath, message: str) -> ConfigError:
        """A :class:`ConfigError` ``FILE:LINE: section.field: message`` (raise it)."""
        return self._error(self._full(field_path), message)

    def at(self, *field_path: Any) -> Located:
        """The helper of a part of this section (``at("flags", "btag")``)."""
        return Located(self._full(field_path), self.source, self._line, self._error)


class _Locatable:
    """``where``/``error`` of a section, through its ``located`` helper (``None``: built by hand)."""

    located: Located | None

    def where(self, field_path: str | FieldPath = ()) -> str:
        """``FILE:LINE: <section>.<field_path>``."""
        return _located(self).where(field_path)

    def error(self, field_path: str | FieldPath, message: str) -> ConfigError:
        """A located :class:`ConfigError` about ``<section>.<field_path>``."""
        return _located(self).error(field_path, message)


@dataclass(frozen=True)
class Parameters(_Locatable):
    """``parameters:``: the cut parameters in config order, by name.

    Attributes:
        values: the :class:`CutParameter` of each entry, in config order.
        located: where ``parameters`` is written (``located.at(name, "init")``).
    """

    values: tuple[CutParameter, ...]
    located: Located = field(repr=False, compare=False)

    def __iter__(self) -> Iterator[CutParameter]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.values)

    def __getitem__(self, name: str) -> CutParameter:
        for p in self.values:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.values)


@dataclass(frozen=True)
class Sample(_Locatable):
    """One entry of ``samples:``.

    Attributes:
        name: sample name.
        role: ``"signal"``, ``"background"`` or ``"data"`` (observed events: weight 1, not normalised).
        files: paths or glob patterns, absolute.
        tree: TTree or RNTuple name (the sample's, else the top-level ``tree``).
        xsec_pb: cross-section, pb (0 for data).
        weight_text: the event weight as written (``"1"`` when left out).
        weight: the parsed event weight.
        generate: the ``generate:`` block (process, events, seed), or ``None``.
        max_files: read only its first files (``inputs.max_files_per_sample``), or ``None``.
        max_events: read only its first events (``inputs.max_events_per_sample``), or ``None``.
        located: where the sample is written.
        normalisation: ``"weight"`` (``xsec_pb * lumi_pb / sum(weight)`` over the events read) or
            ``"events"`` (``xsec_pb * lumi_pb / N``: the AGC's with the weight left out).
    """

    name: str
    role: str
    files: tuple[str, ...]
    tree: str
    xsec_pb: float
    weight_text: str
    weight: Expr = field(compare=False)
    generate: Mapping[str, Any] | None = field(default=None, compare=False)
    max_files: int | None = None
    max_events: int | None = None
    located: Located | None = field(default=None, repr=False, compare=False)
    normalisation: str = "weight"


@dataclass(frozen=True)
class Measurement(_Locatable):
    """``measurement:``.

    Attributes:
        poi: the parameter of interest (a normfactor on the signal samples).
        fixed: parameters held constant in fits.
        parameters: parameter name -> its settings (``bounds``, ``inits``, ``auxdata``, ``sigmas``), as written.
        located: where ``measurement`` is written.
    """

    poi: str = "mu"
    fixed: tuple[str, ...] = ()
    parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, compare=False)
    located: Located | None = field(default=None, repr=False, compare=False)


#: Bins whose total background has fewer effective MC events than this are listed in the report
#: (``objective.few_mc_events`` when left out).
FEW_MC_EVENTS = 10.0


@dataclass(frozen=True)
class MinBackground:
    """``objective.min_background``: per-bin minima of the total background (``None``: no minimum).

    Attributes:
        events: smallest total background per bin, events.
        mc_events: smallest effective number of background MC events per bin.
        strength: objective units taken off at an empty bin.
    """

    events: float | None = None
    mc_events: float | None = None
    strength: float = 1.0


@dataclass(frozen=True)
class Objective(_Locatable):
    """``objective:``: the figure of merit to maximise (``name``), the signal strength of ``cls`` (``mu``),
    an optional per-bin minimum of the background (``min_background``) and the report's threshold of
    background MC events (``few_mc_events``)."""

    name: str = "discovery_significance"
    mu: float = 1.0
    min_background: MinBackground | None = None
    few_mc_events: float = FEW_MC_EVENTS
    located: Located | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class NetworkObservable(_Locatable):
    """A region's ``observable: {network: mlp, inputs: [...], hidden: [...], activation, output}``.

    Attributes:
        region: the region it is the observable of.
        kind: ``"mlp"``, or the name of a network a plugin registers
            (:func:`diffhep.engine.network.register_network`).
        inputs: the per-event inputs, expressions as written.
        hidden: widths of the hidden layers.
        activation: of the hidden layers (``relu``, ``tanh``, ``gelu``, ``softplus``).
        output: of the one output (``sigmoid``, ``identity``, ``tanh``).
        options: keyword arguments of a plugin network.
        located: where ``regions.<region>.observable`` is written.
    """

    region: str
    kind: str
    inputs: tuple[str, ...]
    hidden: tuple[int, ...] = (32, 32)
    activation: str = "relu"
    output: str = "sigmoid"
    options: Mapping[str, Any] = field(default_factory=dict, compare=False)
    located: Located | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Pretraining:
    """``training.pretrain``: binary cross-entropy pre-training (Adam, ``steps`` at ``learning_rate``)."""

    steps: int
    learning_rate: float = 0.01


@dataclass(frozen=True)
class Training(_Locatable):
    """``training:``: which events train and which evaluate, and the pre-training.

    Attributes:
        split: ``"even_odd"`` (even event numbers train, odd ones evaluate) or ``"none"``; left out:
            ``even_odd`` with a network observable, else ``none``.
        event_number: the branch of the event number, or ``None`` (the event's index in its sample).
        pretrain: :class:`Pretraining` or ``None``.
        located: where ``training`` is written (the top level when left out).
    """

    split: str = "none"
    event_number: str | None = None
    pretrain: Pretraining | None = None
    located: Located | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Sections(_Locatable):
    """All sections of one validated config (see the module docstring for what is typed).

    Attributes:
        name: analysis name.
        lumi_pb: integrated luminosity, pb^-1.
        tree: default TTree or RNTuple name of the samples.
        plugins: plugin files, absolute.
        base_dir: folder relative paths of the config start from.
        parameters: the cut parameters.
        samples: sample name -> :class:`Sample`, in config order.
        measurement: the measurement settings.
        objective: the figure of merit.
        objects, regions: those sections as validated (copies; expressions as written).
        systematics: ``systematics:`` as validated, variation ``files`` absolute.
        optimizer, execution: those sections as written, or ``None`` when left out.
        located: the top-level helper (``located.at("regions", "sr", "select")``).
        corrections: correction set name -> its correctionlib file, absolute.
        observations: what the workspace observes: ``"data"`` (the ``role: data`` samples), ``"pseudodata"``
            (the sum of the nominal MC samples) or ``"asimov"`` (``observations:``, defaulting to
            ``"data"`` when a data sample exists).
        networks: region -> its network observable, for the regions that have one.
        training: the ``training`` section (defaults filled).
    """

    name: str
    lumi_pb: float
    tree: str
    plugins: tuple[str, ...]
    base_dir: Path
    parameters: Parameters
    samples: Mapping[str, Sample] = field(compare=False)
    measurement: Measurement
    objective: Objective
    objects: Mapping[str, Mapping[str, Any]] = field(compare=False)
    regions: Mapping[str, Mapping[str, Any]] = field(compare=False)
    systematics: Mapping[str, Mapping[str, Any]] = field(compare=False)
    optimizer: Mapping[str, Any] | None = field(compare=False)
    execution: Mapping[str, Any] | None = field(compare=False)
    located: Located = field(repr=False, compare=False)
    corrections: Mapping[str, str] = field(default_factory=dict, compare=False)
    observations: str = "asimov"
    networks: Mapping[str, NetworkObservable] = field(default_factory=dict, compare=False)
    training: Training = field(default_factory=Training, compare=False)

    @property
    def signal(self) -> tuple[str, ...]:
        """Names of the signal samples (at least one: the checks require it)."""
        return tuple(name for name, s in self.samples.items() if s.role == "signal")


def _located(section: Any) -> Located:
    if section.located is None:  # built by hand, not by build_sections
        return Located(
            (),
            "<config>",
            lambda _: None,
            lambda path, message: ConfigError(f"{format_path(path)}: {message}" if path else message),
        )
    return section.located


def _copy(value: Any) -> Any:
    """A deep copy of JSON data (plain dicts and lists, so it can go on into JSON and pickles)."""
    return copy.deepcopy(value)


def build_sections(config: Config) -> Sections:
    """The sections of a validated ``config`` (call :attr:`Config.sections`, which builds them once)."""
    data, resolved = config.data, config.resolved
    top = Located((), config.source, config.line, config.error)
    parameters = Parameters(
        tuple(
            CutParameter(
                name,
                float(p["init"]),
                float(p["bounds"][0]),
                float(p["bounds"][1]),
                slope=float(p["slope"]),
                unit=str(p.get("unit", "")),
                description=str(p.get("description", "")),
            )
            for name, p in data["parameters"].items()
        ),
        top.at("parameters"),
    )
    samples = {}
    inputs = data.get("inputs") or {}
    for name, s in data["samples"].items():
        path = f"samples.{name}.weight"
        weight = config.expressions[path]
        samples[name] = Sample(
            name=name,
            role=str(s["role"]),
            files=tuple(resolved["samples"][name]["files"]),
            tree=str(s.get("tree", data["tree"])),
            xsec_pb=float(s.get("xsec_pb", 0.0)),  # data: none
            weight_text=weight.text,
            weight=weight,
            generate=_copy(s["generate"]) if s.get("generate") is not None else None,
            max_files=inputs.get("max_files_per_sample"),
            max_events=inputs.get("max_events_per_sample"),
            located=top.at("samples", name),
            normalisation=str(s["normalisation"]),
        )
    m = data["measurement"]
    measurement = Measurement(
        poi=str(m["poi"]),
        fixed=tuple(m["fixed"]),
        parameters=_copy(m["parameters"]),
        located=top.at("measurement"),
    )
    goal = data["objective"]
    floor = goal.get("min_background")
    objective = Objective(
        name=str(goal["name"]),
        mu=float(goal["mu"]),
        min_background=None
        if floor is None
        else MinBackground(
            events=None if floor.get("events") is None else float(floor["events"]),
            mc_events=None if floor.get("mc_events") is None else float(floor["mc_events"]),
            strength=float(floor["strength"]),
        ),
        few_mc_events=float(goal.get("few_mc_events", FEW_MC_EVENTS)),
        located=top.at("objective"),
    )
    optional = {key: _copy(data[key]) if data.get(key) is not None else None for key in ("optimizer", "execution")}
    networks = {
        name: NetworkObservable(
            region=name,
            kind=str(r["observable"]["network"]),
            inputs=tuple(str(x) for x in r["observable"]["inputs"]),
            hidden=tuple(int(w) for w in r["observable"].get("hidden", (32, 32))),
            activation=str(r["observable"].get("activation", "relu")),
            output=str(r["observable"].get("output", "sigmoid")),
            options=_copy(r["observable"].get("options", {})),
            located=top.at("regions", name, "observable"),
        )
        for name, r in data["regions"].items()
        if isinstance(r["observable"], dict)
    }
    train = data.get("training") or {}
    pre = train.get("pretrain")
    training = Training(
        split=str(train.get("split", "even_odd" if networks else "none")),
        event_number=train.get("event_number"),
        pretrain=None if pre is None else Pretraining(int(pre["steps"]), float(pre.get("learning_rate", 0.01))),
        located=top.at("training") if "training" in data else top,
    )
    return Sections(
        name=str(data["name"]),
        lumi_pb=float(data["lumi_pb"]),
        tree=str(data["tree"]),
        plugins=tuple(resolved["plugins"]),
        base_dir=config.base_dir,
        parameters=parameters,
        samples=samples,
        measurement=measurement,
        objective=objective,
        objects=_copy(data["objects"]),
        regions=_copy(data["regions"]),
        systematics=_copy(resolved["systematics"]),
        located=top,
        corrections={name: str(c["file"]) for name, c in resolved["corrections"].items()},
        observations=str(data.get("observations") or _default_observations(data["samples"])),
        networks=networks,
        training=training,
        **optional,
    )


def _default_observations(samples: Mapping[str, Any]) -> str:
    """``"data"`` when a sample has ``role: data``, else ``"asimov"``."""
    return "data" if any(s["role"] == "data" for s in samples.values()) else "asimov"
