"""Build pyhf model specs from histograms, and convert them to plain JSON.

:func:`make_spec` writes the skeleton analysis's one-channel spec from sample
yields (possibly JAX tracers from a soft selection); :func:`to_pyhf` turns any
spec with array numbers into one that ``json.dump`` and ``pyhf.Model`` accept;
:func:`mc_floor` is the treatment of (nearly) empty Monte Carlo bins that every
spec of diffhep uses (:func:`make_spec` and ``diffhep.engine.systematics.build_spec``).

Empty MC bins: a bin where a background's simulation has no event does not
predict zero background: it predicts nothing better than what one MC event of
that sample could hide. With a flat prior on the expected number of MC events
``m`` of a bin and ``k = 0`` events seen, ``m`` has mean 1 and standard
deviation 1 (Gamma(k + 1)), so the bin's background is one event of the
sample's mean weight ``w = sum(w_i) / N`` (over all its ``N`` MC events,
before any cut), with an uncertainty of ``w``: the same numbers as a bin with
exactly one MC event. :func:`mc_floor` therefore floors the background's yield
at ``w`` and its ``sumw2`` at ``w**2``; removing the last MC event of a
background from a bin then never raises the significance (it leaves the bin
as it was with one event), where a fixed floor (1e-3 events) let an empty bin
look background-free. The staterror's relative width of such a bin is at most
1 (``sqrt(sum w**2) / sum w``), so pyhf's default staterror bounds ``[1e-10,
10]`` leave it 9 standard deviations of room upwards: no bounds are changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.errors import ConfigError, closest
from diffhep.likelihood.parameters import as_float_array

__all__ = ["make_spec", "to_pyhf", "mc_floor", "check_mean_weights", "SUMW2_EPSILON"]

#: Smallest ``sumw2`` (events^2) written for a sample that gets no MC floor (the signal):
#: keeps ``sqrt(sumw2)`` differentiable in a bin the signal does not reach.
SUMW2_EPSILON = 1e-12


def mc_floor(yields: Array, sumw2: Array, mean_weight: float | Array) -> tuple[Array, Array]:
    """A background's ``(yields, sumw2)`` with (nearly) empty MC bins as one MC event of ``mean_weight``.

    Args:
        yields: ``Float[Array, "bins"]`` the sample's yields (events; may be traced).
        sumw2: ``Float[Array, "bins"]`` its sums of squared weights (events^2).
        mean_weight: the sample's mean MC event weight ``sum(w) / N`` over all its
            events before any cut (events per MC event); not differentiated.

    Returns:
        ``(maximum(yields, w), maximum(sumw2, w**2))`` (see the module docstring).

    Example:
        >>> y, s = mc_floor(jnp.array([0.0, 0.5, 7.0]), jnp.array([0.0, 0.25, 12.0]), 2.0)
        >>> [float(v) for v in y], [float(v) for v in s]
        ([2.0, 2.0, 7.0], [4.0, 4.0, 12.0])
    """
    yields, sumw2 = as_float_array(yields), as_float_array(sumw2)
    w = jax.lax.stop_gradient(jnp.asarray(mean_weight, dtype=yields.dtype))
    return jnp.maximum(yields, w), jnp.maximum(sumw2, w * w)


def check_mean_weights(mean_weights: Mapping[str, float], backgrounds: list[str]) -> dict[str, float]:
    """``mean_weights`` restricted to ``backgrounds``, each checked to be a finite number > 0.

    Raises:
        ConfigError: a background has no mean weight, or one that is not > 0.
    """
    out = {}
    for name in backgrounds:
        if name not in mean_weights:
            raise ConfigError(
                f"background {name!r} has no mean MC event weight (mean_weights has "
                f"{sorted(mean_weights) or 'none'}); give sum(weights) / number of MC events of every background"
            )
        value = float(mean_weights[name])
        if not np.isfinite(value) or value <= 0:
            raise ConfigError(f"mean MC event weight of {name!r} must be a finite number > 0, got {value!r}")
        out[name] = value
    return out


def make_spec(
    channel: str,
    samples: Mapping[str, tuple[Array, Array]],
    *,
    signal: str,
    normsys: Mapping[str, tuple[float, float]],
    staterror: bool = True,
    mean_weights: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Build a one-channel pyhf spec: a signal strength and background systematics.

    Args:
        channel: channel name, e.g. ``"mumu"``.
        samples: sample name -> ``(yields, sumw2)``, each shape ``(bins,)``
            (events, events^2); may be JAX arrays, also traced.
        signal: name of the signal sample; it gets ``normfactor`` ``"mu"`` only.
        normsys: background sample name -> ``(hi, lo)`` relative normalisation at
            +-1 sigma (e.g. ``(1.05, 0.95)``); gives a ``normsys`` named
            ``f"{sample}_norm"``. Backgrounds not listed get no ``normsys``.
        staterror: give every background a ``staterror`` named
            ``f"staterror_{channel}"`` with ``data = sqrt(sumw2)``.
        mean_weights: background name -> its mean MC event weight ``sum(w) / N``
            over all its MC events before any cut (events); ``None``: 1 for every
            background (unweighted MC events).

    Returns:
        The spec ``{"channels": [...]}``, with array numbers.

    Each background's yields and ``sumw2`` go through :func:`mc_floor` with its
    mean weight: an empty bin holds one MC event's yield and uncertainty (see
    the module docstring), so the staterror's width is defined and > 0 and
    ``sqrt`` has a finite gradient. The floored numbers are what the spec holds,
    so diffhep and pyhf (via :func:`to_pyhf`) see the same model. The signal is
    written as given.

    Example:
        >>> spec = make_spec("sr", {"signal": ([1.0, 2.0], [1.0, 2.0]),
        ...                         "bkg": ([10.0, 0.0], [4.0, 0.0])},
        ...                  signal="signal", normsys={"bkg": (1.1, 0.9)}, mean_weights={"bkg": 0.5})
        >>> [m["name"] for m in spec["channels"][0]["samples"][1]["modifiers"]]
        ['bkg_norm', 'staterror_sr']
        >>> [round(float(x), 4) for x in spec["channels"][0]["samples"][1]["data"]]
        [10.0, 0.5]
    """
    if signal not in samples:
        raise ConfigError(f"signal sample {signal!r} is not among the samples{closest(signal, samples)}")
    backgrounds = [name for name in samples if name != signal]
    for name, value in normsys.items():
        if name not in samples or name == signal:
            raise ConfigError(
                f"normsys given for {name!r}, which is not a background sample{closest(name, backgrounds)}"
            )
        if len(value) != 2 or not all(float(v) > 0 for v in value):
            raise ConfigError(f"normsys for {name!r} must be (hi, lo) with both > 0, got {value!r}")
    for name in mean_weights or {}:
        if name not in backgrounds:
            raise ConfigError(
                f"mean weight given for {name!r}, which is not a background sample{closest(name, backgrounds)}"
            )
    weights = check_mean_weights(mean_weights if mean_weights is not None else dict.fromkeys(backgrounds, 1.0),
                                 backgrounds)  # fmt: skip
    out = []
    for name, (yields, sumw2) in samples.items():
        yields = as_float_array(yields)
        if name == signal:
            out.append(
                {"name": name, "data": yields, "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]}
            )
            continue
        yields, sumw2 = mc_floor(yields, sumw2, weights[name])
        modifiers: list[dict[str, Any]] = []
        if name in normsys:
            hi, lo = normsys[name]
            modifiers.append({"name": f"{name}_norm", "type": "normsys", "data": {"hi": float(hi), "lo": float(lo)}})
        if staterror:
            modifiers.append({"name": f"staterror_{channel}", "type": "staterror", "data": jnp.sqrt(sumw2)})
        out.append({"name": name, "data": yields, "modifiers": modifiers})
    return {"channels": [{"name": channel, "samples": out}]}


def to_pyhf(spec: Any) -> Any:
    """Return a copy of ``spec`` with every array and NumPy/JAX number as plain Python floats.

    Lists stay lists, dicts stay dicts, strings/``None``/bools unchanged; the
    result can be passed to ``json.dump`` and ``pyhf.Model``. Traced values
    cannot be converted: call this outside ``jax.jit``/``jax.grad``.
    """
    if isinstance(spec, Mapping):
        return {k: to_pyhf(v) for k, v in spec.items()}
    if isinstance(spec, (list, tuple)):
        return [to_pyhf(v) for v in spec]
    if isinstance(spec, jax.core.Tracer):
        raise ConfigError("to_pyhf got a traced JAX value; call it outside jax.jit/jax.grad on concrete numbers")
    if isinstance(spec, (jax.Array, np.ndarray, np.generic)):
        arr = np.asarray(spec)
        if arr.dtype == bool:
            return arr.tolist()
        return arr.astype(float).tolist()
    return spec  # str, None, bool, int, float
