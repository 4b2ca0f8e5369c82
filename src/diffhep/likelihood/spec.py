"""Build pyhf model specs from histograms, and convert them to plain JSON.

:func:`make_spec` writes the skeleton analysis's one-channel spec from sample
yields (possibly JAX tracers from a soft selection); :func:`to_pyhf` turns any
spec with array numbers into one that ``json.dump`` and ``pyhf.Model`` accept.
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

__all__ = ["make_spec", "to_pyhf", "BKG_YIELD_FLOOR", "BKG_SUMW2_FLOOR"]

#: Smallest background yield per bin (events) written to the spec.
BKG_YIELD_FLOOR = 1e-3
#: Smallest background sum of squared weights per bin (events^2) written to the spec.
BKG_SUMW2_FLOOR = 1e-6


def make_spec(
    channel: str,
    samples: Mapping[str, tuple[Array, Array]],
    *,
    signal: str,
    normsys: Mapping[str, tuple[float, float]],
    staterror: bool = True,
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

    Returns:
        The spec ``{"channels": [...]}``, with array numbers.

    Floors: a bin where the backgrounds sum to zero has an undefined staterror
    (``sigma = sqrt(sum sumw2) / sum yields``) and a zero expected count under the
    background-only hypothesis. Therefore background yields are floored at
    ``BKG_YIELD_FLOOR`` (``jnp.maximum``) and background ``sumw2`` at
    ``BKG_SUMW2_FLOOR`` (so ``sigma > 0`` and ``sqrt`` has a finite gradient).
    The floored numbers are what the spec holds, so diffhep and pyhf (via
    :func:`to_pyhf`) see the same model. The signal is written as given.

    Example:
        >>> spec = make_spec("sr", {"signal": ([1.0, 2.0], [1.0, 2.0]),
        ...                         "bkg": ([10.0, 0.0], [4.0, 0.0])},
        ...                  signal="signal", normsys={"bkg": (1.1, 0.9)})
        >>> [m["name"] for m in spec["channels"][0]["samples"][1]["modifiers"]]
        ['bkg_norm', 'staterror_sr']
        >>> [round(float(x), 4) for x in spec["channels"][0]["samples"][1]["data"]]
        [10.0, 0.001]
    """
    if signal not in samples:
        raise ConfigError(f"signal sample {signal!r} is not among the samples{closest(signal, samples)}")
    for name, value in normsys.items():
        if name not in samples or name == signal:
            raise ConfigError(
                f"normsys given for {name!r}, which is not a background sample{closest(name, [s for s in samples if s != signal])}"
            )
        if len(value) != 2 or not all(float(v) > 0 for v in value):
            raise ConfigError(f"normsys for {name!r} must be (hi, lo) with both > 0, got {value!r}")
    out = []
    for name, (yields, sumw2) in samples.items():
        yields = as_float_array(yields)
        if name == signal:
            out.append(
                {"name": name, "data": yields, "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]}
            )
            continue
        yields = jnp.maximum(yields, BKG_YIELD_FLOOR)
        modifiers: list[dict[str, Any]] = []
        if name in normsys:
            hi, lo = normsys[name]
            modifiers.append({"name": f"{name}_norm", "type": "normsys", "data": {"hi": float(hi), "lo": float(lo)}})
        if staterror:
            sigma = jnp.sqrt(jnp.maximum(as_float_array(sumw2), BKG_SUMW2_FLOOR))
            modifiers.append({"name": f"staterror_{channel}", "type": "staterror", "data": sigma})
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
