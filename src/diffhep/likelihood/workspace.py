"""Models from pyhf workspaces (the JSON published on HEPData), with pyhf's checks and defaults.

:func:`from_workspace` validates a workspace dict against pyhf's JSON schema,
picks a measurement (the first by default, as pyhf does) and builds the model
with that measurement's POI and parameter settings (inits, bounds, fixed,
auxdata, sigmas) and the interpolation codes of ``modifier_settings`` (pyhf's
rule: given settings replace the defaults code4/code4p as a whole, a type left
out uses code1/code0). The result has the same parameter order, suggested init,
bounds, fixed flags, auxdata and expected data as
``pyhf.Workspace(workspace).model(measurement_name=..., modifier_settings=...)``.
:func:`observed_data` is ``pyhf.Workspace.data``.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.errors import ConfigError, closest
from diffhep.likelihood.model import Model, build_model

__all__ = ["from_workspace", "observed_data", "validate_workspace", "get_measurement"]

_FROM_MEASUREMENT: Any = object()


def _short(value: Any, limit: int = 160) -> str:
    text = re.sub(r"\s+", " ", str(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _path(items: Any) -> str:
    out = ""
    for item in items:
        out += f"[{item}]" if isinstance(item, int) else f".{item}"
    return out.lstrip(".") or "<top level>"


def _explain(error: Any) -> tuple[str, str]:
    """``(path, message)`` of a jsonschema error; for ``anyOf`` (modifiers) the branch that was meant."""
    path = list(error.absolute_path)
    instance = error.instance
    if error.validator == "anyOf" and isinstance(instance, Mapping) and "type" in instance and error.context:
        branches: dict[Any, list[Any]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        meant = [errs for errs in branches.values() if not any(list(e.relative_path) == ["type"] for e in errs)]
        if not meant:
            valid = sorted(
                str(e.validator_value) for errs in branches.values() for e in errs if list(e.relative_path) == ["type"]
            )
            return _path([*path, "type"]), (
                f"{instance['type']!r} is not a modifier type{closest(str(instance['type']), valid)}"
            )
        sub = meant[0][0]
        return _path([*path, *sub.relative_path]), _short(sub.message)
    return _path(path), _short(error.message)


def _for_schema(value: Any) -> Any:
    """A copy with every NumPy/JAX array (also traced) replaced by a nested list of zeros of its shape."""
    if isinstance(value, Mapping):
        return {k: _for_schema(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_for_schema(v) for v in value]
    if isinstance(value, (jax.Array, np.ndarray, np.generic)):
        return np.zeros(np.shape(value)).tolist()
    return value


def _check_integers(workspace: Mapping[str, Any]) -> None:
    """Refuse an integer beyond the float range anywhere (an OverflowError when made a float), naming its path."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(workspace, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, Mapping):
            stack.extend((item, (*path, key)) for key, item in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > sys.float_info.max:
            raise ConfigError(f"invalid workspace at {_path(path)}: an integer beyond the float range, +-1.8e308")


def validate_workspace(workspace: Mapping[str, Any]) -> None:
    """Check ``workspace`` against pyhf's ``workspace.json`` schema.

    Numbers given as NumPy or JAX arrays (also traced ones) are checked for
    their shape only (as lists of zeros), so a workspace built from histograms
    inside ``jax.jit`` validates too.

    Raises:
        ConfigError: one line with the schema's complaint and the path of the
            offending field, e.g. ``channels[0].samples[1].modifiers[0].type``.
    """
    import pyhf

    if not isinstance(workspace, Mapping):
        raise ConfigError(f"a workspace must be a dict (the JSON pyhf.Workspace takes), got {type(workspace).__name__}")
    version = workspace.get("version")
    if version is not None and not isinstance(version, str):  # pyhf raised a TypeError for version: 1
        raise ConfigError(f"workspace 'version' {version!r} is not a pyhf schema version; use '1.0.0'")
    _check_integers(workspace)
    try:
        with warnings.catch_warnings():
            # pyhf's validator uses jsonschema's deprecated RefResolver
            warnings.filterwarnings("ignore", message="jsonschema.RefResolver", category=DeprecationWarning)
            pyhf.schema.validate(_for_schema(workspace), "workspace.json", version=version)
    except pyhf.exceptions.InvalidSpecification as err:
        path, message = _explain(err.parent)
        raise ConfigError(
            f"invalid workspace at {path}: {message} (pyhf schema workspace.json, version {version or 'default'})"
        ) from None
    except pyhf.exceptions.SchemaNotFound:  # unknown schema version
        raise ConfigError(f"workspace 'version' {version!r} is not a pyhf schema version; use '1.0.0'") from None


def get_measurement(workspace: Mapping[str, Any], measurement: str | None = None) -> Mapping[str, Any]:
    """The measurement named ``measurement``, or the first one (pyhf's default)."""
    measurements = list(workspace.get("measurements", []))
    names = [m["name"] for m in measurements]
    if not measurements:
        raise ConfigError("the workspace has no measurements; add one with a 'poi' and 'parameters'")
    if measurement is None:
        return measurements[0]
    if measurement not in names:
        raise ConfigError(
            f"measurement {measurement!r} is not in the workspace (it has {', '.join(map(repr, names))})"
            f"{closest(measurement, names, 1)}"
        )
    return measurements[names.index(measurement)]


def from_workspace(
    workspace: Mapping[str, Any],
    measurement: str | None = None,
    *,
    poi_name: str | None = _FROM_MEASUREMENT,
    modifier_settings: Mapping[str, Any] | None = None,
    validate: bool = True,
    check_yields: bool = True,
) -> Model:
    """Build the model of a pyhf workspace for one measurement.

    Args:
        workspace: the workspace JSON as a dict (``channels``, ``observations``,
            ``measurements``, ``version``), as ``pyhf.Workspace`` takes it.
        measurement: measurement name; default the first (as pyhf).
        poi_name: override the measurement's POI; ``None`` for a POI-less model.
        modifier_settings: as ``pyhf.Workspace.model``'s, e.g.
            ``{"normsys": {"interpcode": "code1"}, "histosys": {"interpcode": "code2"}}``;
            ``None`` for pyhf's defaults (code4/code4p). Given settings replace the
            defaults as a whole, as in pyhf: a type left out uses ``normsys`` code1 /
            ``histosys`` code0 (see :func:`~diffhep.likelihood.model.check_modifier_settings`).
        validate: check the workspace against pyhf's schema first (about 0.1-0.3 s
            for a published-size workspace; pass ``False`` in hot loops).
        check_yields: reject negative yields (see :func:`~diffhep.likelihood.build_model`).

    Returns:
        A :class:`~diffhep.likelihood.Model` whose ``config`` (parameter order,
        ``suggested_init()``, ``suggested_bounds()``, ``suggested_fixed()``,
        ``auxdata``, ``poi_index``) and ``logpdf``/``expected_data`` match
        ``pyhf.Workspace(workspace).model(measurement_name=measurement)``.

    Raises:
        ConfigError: invalid workspace (schema message and field path), unknown
            measurement, unsupported modifier or interpolation code, bad yields.

    Example:
        >>> ws = {"version": "1.0.0",
        ...       "channels": [{"name": "sr", "samples": [
        ...           {"name": "sig", "data": [5.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
        ...           {"name": "bkg", "data": [50.0], "modifiers": [{"name": "b", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}]}]}],
        ...       "observations": [{"name": "sr", "data": [52.0]}],
        ...       "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": []}}]}
        >>> model = from_workspace(ws)
        >>> model.config.par_names, model.config.poi_index
        (['mu', 'b'], 0)
        >>> [float(x) for x in observed_data(ws, model)]
        [52.0, 0.0]
    """
    if validate:
        validate_workspace(workspace)
    chosen = get_measurement(workspace, measurement)
    config = chosen.get("config", {})
    poi = config.get("poi") if poi_name is _FROM_MEASUREMENT else poi_name
    spec = {"channels": workspace["channels"], "parameters": config.get("parameters", [])}
    try:
        return build_model(spec, poi_name=poi, modifier_settings=modifier_settings, check_yields=check_yields)
    except ConfigError as err:
        raise ConfigError(f"workspace measurement {chosen.get('name')!r}: {err}") from None


def observed_data(workspace: Mapping[str, Any], model: Model, *, include_auxdata: bool = True) -> Array:
    """The workspace's observations in the model's channel order, then (by default) its auxdata.

    Args:
        workspace: the workspace dict.
        model: a model of it (fixes the channel order and the auxdata).
        include_auxdata: append ``model.config.auxdata``.

    Returns:
        Shape ``(nmaindata [+ nauxdata],)`` (events), like ``pyhf.Workspace.data``.
    """
    observations = {o["name"]: o["data"] for o in workspace.get("observations", [])}
    parts = []
    for channel in model.config.channels:
        if channel not in observations:
            raise ConfigError(
                f"the workspace has no observation for channel {channel!r}{closest(channel, observations, 1)}"
            )
        values = np.asarray(observations[channel], dtype=np.float64)
        if values.shape != (model.config.channel_nbins[channel],):
            raise ConfigError(
                f"observation of channel {channel!r} has {values.size} bins, the channel has "
                f"{model.config.channel_nbins[channel]}"
            )
        parts.append(values)
    main = jnp.asarray(np.concatenate(parts))
    return jnp.concatenate([main, model.config.auxdata]) if include_auxdata else main
