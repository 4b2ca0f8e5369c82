"""Optimiser settings: the ``optimizer`` section of an analysis config, checked and typed.

Everything is built from Optax by name, so any optimiser or schedule Optax has
can be used without code here::

    optimizer:
      name: adam                    # getattr(optax, name)
      learning_rate: 0.05           # or {name: cosine_decay_schedule, init_value: 0.05, decay_steps: 150}
      options: {}                   # further keyword arguments of the optimiser
      steps: 150
      slope_schedule: {start: 1.0, end: 4.0}
      checkpoint_every: 10
      early_stopping: {patience: 20, min_delta: 1.0e-4}
      seed: 1
      scan: {points: 7, width: 0.25}
      network: {name: adam, learning_rate: 0.001, options: {}}   # the weights of network observables

The cut values and the weights of network observables (``observable: {network: mlp, ...}``)
are two groups, each with its own Optax transform (``optax.multi_transform``): the
top-level ``name``/``learning_rate``/``options`` move the cuts, ``network`` the weights.

Every problem is a one-line :class:`~diffhep.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import optax

from diffhep.errors import ConfigError, closest
from diffhep.select.anneal import geometric_slope

__all__ = ["EarlyStopping", "ScanSettings", "OptimizerSettings"]

_KEYS = (
    "name",
    "learning_rate",
    "options",
    "steps",
    "slope_schedule",
    "checkpoint_every",
    "early_stopping",
    "seed",
    "scan",
    "network",
)

#: The optimiser of network weights when ``optimizer.network`` is left out.
NETWORK_DEFAULT = {"name": "adam", "learning_rate": 1e-3, "options": {}}


def _int(where: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _float(where: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if positive and not value > 0:
        raise ConfigError(f"{where}: must be > 0, got {value!r}")
    return float(value)


def _learning_rate(where: str, value: Any) -> Any:
    """A constant learning rate is a finite number > 0; a schedule (a mapping) is checked when built."""
    return value if isinstance(value, Mapping) else _float(where, value, positive=True)


#: The checks of the settings a command line may override: field -> check(where, value).
_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "steps": lambda where, value: _int(where, value, minimum=1),
    "learning_rate": _learning_rate,
    "seed": lambda where, value: _int(where, value, minimum=0),
}


def _mapping(where: str, value: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(keys)}, got {value!r}")
    for key in value:
        if key not in keys:
            raise ConfigError(f"{where}: unknown key {key!r}{closest(str(key), keys)}")
    return dict(value)


def _optax_callable(where: str, name: Any) -> Callable[..., Any]:
    """``getattr(optax, name)``, with the closest names when it does not exist."""
    public = [n for n in dir(optax) if not n.startswith("_") and callable(getattr(optax, n))]
    if not isinstance(name, str) or name not in public:
        raise ConfigError(f"{where}: optax has no {name!r}{closest(str(name), public)}")
    return getattr(optax, name)


def _call(where: str, fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
    """Call an Optax constructor; bad keyword arguments become a one-line ConfigError."""
    try:
        return fn(**kwargs)
    except (TypeError, ValueError) as exc:
        accepted = ", ".join(inspect.signature(fn).parameters)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{where}: {message} (accepted: {accepted})") from None


def _schedule(where: str, lr: Any) -> float | optax.Schedule:
    """A constant learning rate, or the Optax schedule ``{name, **options}`` built by name."""
    if not isinstance(lr, Mapping):
        return _learning_rate(where, lr)
    if "name" not in lr:
        raise ConfigError(f"{where}: a schedule needs a 'name' (an optax schedule), got {dict(lr)}")
    options = {k: v for k, v in lr.items() if k != "name"}
    fn = _optax_callable(f"{where}.name", lr["name"])
    schedule = _call(f"{where} ({lr['name']})", fn, options)
    if not callable(schedule):
        raise ConfigError(f"{where}: optax.{lr['name']} is not a schedule")
    return schedule


def _optimizer(where: str, name: Any, lr: Any, options: Mapping[str, Any], seed: int) -> optax.GradientTransformation:
    """``getattr(optax, name)(learning_rate, **options)``; every problem a one-line ConfigError at ``where``."""
    fn = _optax_callable(f"{where}.name", name)
    kwargs = {"learning_rate": _schedule(f"{where}.learning_rate", lr), **options}
    if "seed" in inspect.signature(fn).parameters and "seed" not in kwargs:
        kwargs["seed"] = seed
    optimizer = _call(f"{where} ({name})", fn, kwargs)
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ConfigError(f"{where}.name: optax.{name} is not an optimiser (it returned {type(optimizer).__name__})")
    return optimizer


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when the objective has not improved by ``min_delta`` for ``patience`` steps."""

    patience: int
    min_delta: float = 0.0


@dataclass(frozen=True)
class ScanSettings:
    """Brute-force check around the optimum.

    Attributes:
        points: grid points per parameter (<= 2 parameters), or ``points**2``
            random samples (more parameters).
        width: full width of the window, as a fraction of each parameter's range.
    """

    points: int = 7
    width: float = 0.25


@dataclass(frozen=True)
class OptimizerSettings:
    """How cut values are optimised.

    Attributes:
        name: an Optax optimiser, ``getattr(optax, name)``.
        learning_rate: a constant, or ``{"name": <optax schedule>, **options}``.
        options: further keyword arguments of the optimiser.
        steps: optimiser steps (the slope schedule spans them).
        slope_start, slope_end: multiplier of every slope at the first and the
            last step; geometric in between.
        checkpoint_every: write a checkpoint every this many steps (0: only at the end).
        early_stopping: ``None`` or :class:`EarlyStopping`.
        seed: random seed (random search, optimisers that take one); stored in checkpoints.
        scan: :class:`ScanSettings` of the comparison with a brute-force scan.
        network: the optimiser of network weights ``{name, learning_rate, options}``
            (:data:`NETWORK_DEFAULT` where left out); used only by analyses with networks.
    """

    name: str = "adam"
    learning_rate: float | Mapping[str, Any] = 0.05
    options: Mapping[str, Any] = field(default_factory=dict)
    steps: int = 150
    slope_start: float = 1.0
    slope_end: float = 1.0
    checkpoint_every: int = 10
    early_stopping: EarlyStopping | None = None
    seed: int = 1
    scan: ScanSettings = field(default_factory=ScanSettings)
    network: Mapping[str, Any] = field(default_factory=lambda: dict(NETWORK_DEFAULT))

    def __post_init__(self) -> None:
        for key, check in _CHECKS.items():
            check(f"optimizer.{key}", getattr(self, key))
        _int("optimizer.checkpoint_every", self.checkpoint_every, minimum=0)
        _float("optimizer.slope_schedule.start", self.slope_start, positive=True)
        _float("optimizer.slope_schedule.end", self.slope_end, positive=True)
        if self.early_stopping is not None:
            _int("optimizer.early_stopping.patience", self.early_stopping.patience, minimum=1)
            _float("optimizer.early_stopping.min_delta", self.early_stopping.min_delta)
        _int("optimizer.scan.points", self.scan.points, minimum=2)
        if not 0 < _float("optimizer.scan.width", self.scan.width) <= 1:
            raise ConfigError(f"optimizer.scan.width: must be in (0, 1], got {self.scan.width!r}")
        if not isinstance(self.options, Mapping):
            raise ConfigError(f"optimizer.options: expected a mapping, got {self.options!r}")
        self.build()  # checks the optimiser, its options and the learning rate now
        self.build_network()

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> OptimizerSettings:
        """Settings from the config's ``optimizer`` mapping (keys left out keep their defaults)."""
        raw = _mapping("optimizer", config or {}, _KEYS)
        kwargs: dict[str, Any] = {
            k: raw[k] for k in ("name", "learning_rate", "steps", "checkpoint_every", "seed") if k in raw
        }
        if "options" in raw:
            kwargs["options"] = dict(raw["options"] or {}) if isinstance(raw["options"], Mapping) else raw["options"]
        if "slope_schedule" in raw:
            slope = _mapping("optimizer.slope_schedule", raw["slope_schedule"], ("start", "end"))
            kwargs["slope_start"] = slope.get("start", 1.0)
            kwargs["slope_end"] = slope.get("end", kwargs["slope_start"])
        if raw.get("early_stopping") is not None:
            stop = _mapping("optimizer.early_stopping", raw["early_stopping"], ("patience", "min_delta"))
            if "patience" not in stop:
                raise ConfigError("optimizer.early_stopping: needs 'patience' (steps without improvement)")
            kwargs["early_stopping"] = EarlyStopping(stop["patience"], stop.get("min_delta", 0.0))
        if "scan" in raw:
            kwargs["scan"] = ScanSettings(**_mapping("optimizer.scan", raw["scan"], ("points", "width")))
        if raw.get("network") is not None:
            net = _mapping("optimizer.network", raw["network"], ("name", "learning_rate", "options"))
            kwargs["network"] = {**NETWORK_DEFAULT, **net}
        return cls(**kwargs)

    def override(
        self, *, steps: int | None = None, learning_rate: float | None = None, seed: int | None = None
    ) -> OptimizerSettings:
        """These settings with command-line values (``None``: keep).

        A value the settings do not accept (``--learning-rate nan``, ``--steps 0``,
        ``--seed -1``) is a one-line ConfigError naming its option, checked as the
        config's values are; a learning rate replaces the config's (schedule included).
        """
        changes = {"steps": steps, "learning_rate": learning_rate, "seed": seed}
        changes = {key: value for key, value in changes.items() if value is not None}
        for key, value in changes.items():
            _CHECKS[key]("--" + key.replace("_", "-"), value)
        return replace(self, **changes)

    def learning_rate_schedule(self) -> float | optax.Schedule:
        """The constant learning rate, or the Optax schedule built by name."""
        return _schedule("optimizer.learning_rate", self.learning_rate)

    def build(self) -> optax.GradientTransformation:
        """The Optax optimiser ``getattr(optax, name)(learning_rate, **options)``."""
        return _optimizer("optimizer", self.name, self.learning_rate, self.options, self.seed)

    def build_network(self) -> optax.GradientTransformation:
        """The Optax optimiser of network weights (``network``), built by name as :meth:`build` builds the cuts'."""
        net = _mapping("optimizer.network", self.network, ("name", "learning_rate", "options"))
        net = {**NETWORK_DEFAULT, **net}
        lr = net["learning_rate"]
        if not isinstance(lr, Mapping):
            lr = _learning_rate("optimizer.network.learning_rate", lr)
        if not isinstance(net["options"], Mapping):
            raise ConfigError(f"optimizer.network.options: expected a mapping, got {net['options']!r}")
        return _optimizer("optimizer.network", net["name"], lr, net["options"], self.seed)

    def slope_schedule(self) -> optax.Schedule:
        """Slope multiplier per step: ``slope_start`` at step 0, ``slope_end`` at the last step."""
        return geometric_slope(self.slope_start, self.slope_end, max(self.steps - 1, 1))

    def step_key(self) -> str:
        """What the compiled step depends on (optimiser, options, learning rate), as a string."""
        takes_seed = "seed" in inspect.signature(getattr(optax, self.name)).parameters
        key = [self.name, self.learning_rate, self.options, self.seed if takes_seed else None, self.network]
        return json.dumps(key, sort_keys=True, default=str)

    def to_dict(self) -> dict[str, Any]:
        """The settings in the config's layout (JSON-ready)."""
        d = asdict(self)
        d["learning_rate"] = dict(self.learning_rate) if isinstance(self.learning_rate, Mapping) else self.learning_rate
        d["options"] = dict(self.options)
        d["network"] = json.loads(json.dumps(dict(self.network), default=str))
        d["slope_schedule"] = {"start": d.pop("slope_start"), "end": d.pop("slope_end")}
        return d
