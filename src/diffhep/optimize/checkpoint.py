"""Checkpoints of an optimisation: written atomically, restored bit for bit, checked before use.

A checkpoint is ``<folder>/step_XXXXXX.npz`` holding the unconstrained cut
variables (``u/<name>``), the weights of network observables, if any, flattened
the same way (``net/<i>``), the Optax state flattened with
:func:`jax.tree_util.tree_leaves` (``opt/<i>``), and a JSON record (step,
history, seed, parameter names, optimiser, and the run's settings: what the
numbers of the run depend on, see :func:`diffhep.optimize.run.resume_settings`).
``<folder>/latest`` names the most recent one, by its bare file name. The Optax
state is restored against the tree structure of ``optimizer.init(u)`` of the
same optimiser, leaf by leaf with shapes and dtypes checked, so a resumed run
continues exactly where the interrupted one stopped.

What can go wrong, and what happens:

* a checkpoint that cannot be read (truncated, empty, not an ``.npz``, a key or a
  record field missing or of the wrong type): :class:`CheckpointError`, one line
  naming the file; :func:`resume_checkpoint` then falls back to the previous
  readable checkpoint and says so;
* ``latest`` that does not name a checkpoint of its own folder (garbage, a path,
  a file elsewhere or one that is gone): it is not followed; the newest
  checkpoint of the folder is used, and :func:`resume_checkpoint` says so;
* a checkpoint of other cuts, another optimiser or other settings: a one-line
  :class:`~diffhep.errors.ConfigError` that names every difference.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.errors import ConfigError, InputError
from diffhep.outputs import atomic_write, write_text

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "resume_checkpoint",
    "settings_differences",
]

_NAME = re.compile(r"^step_(\d{6,})\.npz$")

#: The order in which differing settings are named.
_ORDER = ("steps", "name", "learning_rate", "options", "slope_schedule", "early_stopping", "seed", "dtype",
          "execution", "config")  # fmt: skip

#: Settings that may differ on resume without changing a number of the optimisation, and ``execution``,
#: which changes them only by rounding and may differ, with a note (see :func:`settings_differences`).
_HARMLESS = ("checkpoint_every", "scan", "config_hash", "execution")


class CheckpointError(InputError):
    """A checkpoint file that cannot be read; ``path`` is the file."""


class Checkpoint(NamedTuple):
    """The state of an optimisation after ``step`` steps.

    Attributes:
        step: steps completed (the next step to run).
        u: cut name -> unconstrained variable.
        opt_state: the Optax state (a pytree).
        history: per completed step, the history record.
        seed: the run's random seed.
        optimizer: the optimiser's name (checked on resume).
        settings: what the run's numbers depend on (checked on resume; ``None``
            when read from a checkpoint that does not record them).
        networks: the trainable arrays of the network observables (a pytree; ``None``: none).
    """

    step: int
    u: dict[str, Array]
    opt_state: Any
    history: list[dict[str, float]]
    seed: int
    optimizer: str
    settings: Mapping[str, Any] | None = None
    networks: Any = None


def save_checkpoint(folder: str | Path, checkpoint: Checkpoint) -> Path:
    """Write ``folder/step_XXXXXX.npz`` and then the ``latest`` pointer, both atomically."""
    folder = Path(folder)
    arrays = {f"u/{k}": np.asarray(v) for k, v in checkpoint.u.items()}
    for i, leaf in enumerate(jax.tree_util.tree_leaves(checkpoint.opt_state)):
        arrays[f"opt/{i}"] = np.asarray(leaf)
    for i, leaf in enumerate(jax.tree_util.tree_leaves(checkpoint.networks)):
        arrays[f"net/{i}"] = np.asarray(leaf)
    record = {
        "step": checkpoint.step,
        "seed": checkpoint.seed,
        "optimizer": checkpoint.optimizer,
        "parameters": list(checkpoint.u),
        "history": checkpoint.history,
        "settings": None if checkpoint.settings is None else dict(checkpoint.settings),
    }
    arrays["record"] = np.frombuffer(json.dumps(record).encode(), dtype=np.uint8)
    name = f"step_{checkpoint.step:06d}.npz"

    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    path = atomic_write(folder / name, writer)
    write_text(folder / "latest", name + "\n")
    return path


def _step(path: Path) -> int:
    match = _NAME.match(path.name)
    return int(match.group(1)) if match else -1


def _in_folder(folder: Path, name: str) -> Path | None:
    """``folder/name`` if ``name`` is a bare checkpoint name and that file lies in ``folder``, else ``None``."""
    if not _NAME.match(name):  # no separators, no "..": a bare step_XXXXXX.npz
        return None
    path = folder / name
    try:
        inside = path.is_file() and path.resolve().parent == folder.resolve()
    except OSError:
        return None
    return path if inside else None


def _pointed(folder: Path) -> tuple[Path | None, str | None]:
    """The checkpoint ``folder/latest`` names, and why it is not followed when it is not."""
    pointer = folder / "latest"
    if not pointer.exists() and not pointer.is_symlink():
        return None, None
    try:
        text = pointer.read_bytes()[:200].decode("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None, f"{pointer} cannot be read as a file name"
    path = _in_folder(folder, text)
    if path is None:
        return None, f"{pointer} names {text!r}, not a checkpoint file of that folder"
    return path, None


def _all(folder: Path) -> list[Path]:
    """The checkpoint files of ``folder``, newest (highest step) first."""
    found = [p for p in folder.glob("step_*.npz") if _in_folder(folder, p.name) is not None]
    return sorted(found, key=_step, reverse=True)


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The checkpoint ``folder/latest`` names, else the highest-numbered one, else ``None``.

    ``latest`` is followed only when it holds the bare name of a checkpoint file
    that lies in ``folder`` (never a path elsewhere).
    """
    folder = Path(folder)
    pointed, _ = _pointed(folder)
    if pointed is not None:
        return pointed
    found = _all(folder)
    return found[0] if found else None


def _corrupt(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} cannot be used: {what}", path=str(path))


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """The record, the cut variables, the Optax leaves and the network leaves of ``path``, each checked."""
    try:
        with open(path, "rb") as handle:  # closed also when NumPy fails on a damaged file
            start = handle.read(4)
            if start not in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip file, or an empty one
                raise _corrupt(path, "it is empty" if not start else "not an .npz archive (overwritten?)")
            handle.seek(0)
            f = np.load(handle, allow_pickle=False)
            with f:
                arrays = {k: f[k] for k in f.files}
    except CheckpointError:
        raise
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, RuntimeError) as exc:
        first = (str(exc).splitlines() or [""])[0] or type(exc).__name__
        raise _corrupt(path, f"not a readable .npz archive (truncated or damaged?): {first}") from None
    if "record" not in arrays:
        raise _corrupt(path, "it holds no 'record'")
    try:
        record = json.loads(arrays["record"].tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise _corrupt(path, "its 'record' is not JSON") from None
    fields = {"step": int, "seed": int, "optimizer": str, "parameters": list, "history": list}
    if not isinstance(record, dict):
        raise _corrupt(path, "its 'record' is not a mapping")
    for key, kind in fields.items():
        if key not in record:
            raise _corrupt(path, f"its record has no {key!r}")
        if not isinstance(record[key], kind) or isinstance(record[key], bool):
            raise _corrupt(path, f"its record's {key!r} is not of type {kind.__name__}: {record[key]!r:.60}")
    if record["step"] < 0 or not all(isinstance(p, str) for p in record["parameters"]):
        raise _corrupt(path, "its record's 'step' or 'parameters' are invalid")
    if not all(isinstance(h, dict) for h in record["history"]):
        raise _corrupt(path, "its record's 'history' is not a list of mappings")
    if not isinstance(record.get("settings"), (dict, type(None))):
        raise _corrupt(path, "its record's 'settings' is not a mapping")
    u = {}
    for name in record["parameters"]:
        value = arrays.get(f"u/{name}")
        if value is None:
            raise _corrupt(path, f"it has no value of cut {name!r} (u/{name})")
        if value.shape != () or value.dtype.kind != "f":
            raise _corrupt(path, f"its value of cut {name!r} is not one float")
        u[name] = value
    leaves = {}
    for prefix in ("opt", "net"):
        count = sum(1 for k in arrays if k.startswith(prefix + "/"))
        missing = [f"{prefix}/{i}" for i in range(count) if f"{prefix}/{i}" not in arrays]
        if missing:
            what = "optimiser state" if prefix == "opt" else "network weights"
            raise _corrupt(path, f"its {what} lacks {', '.join(missing)}")
        leaves[prefix] = [arrays[f"{prefix}/{i}"] for i in range(count)]
    return record, u, leaves["opt"], leaves["net"]


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def settings_differences(stored: Mapping[str, Any], wanted: Mapping[str, Any], *, step: int) -> list[str]:
    """The settings of a checkpoint at ``step`` that a run with ``wanted`` cannot continue from.

    Every setting counts but ``checkpoint_every``, the brute-force ``scan`` (they
    change no number of the optimisation), the informative ``config_hash`` (the
    config is compared, without its ``optimizer`` and ``execution`` sections, as
    ``config``) and ``execution``: in memory or chunk by chunk, the sums differ
    only by rounding, and a job may move to another execution (as
    ``configs/README.md`` promises); :func:`resume_checkpoint` says so when it does. ``steps`` counts where the slope schedule spans the steps (its
    start and end differ) or the checkpoint is past the new last step: with
    constant slopes, a run of more steps continues exactly as an uninterrupted run
    of that many steps would.

    Returns:
        The differing keys: those of :data:`_ORDER` first, in that order.
    """
    wanted = json.loads(json.dumps(dict(wanted), default=str))  # as it is stored
    out = []
    for key in sorted(wanted, key=lambda k: _ORDER.index(k) if k in _ORDER else len(_ORDER)):
        if key in _HARMLESS or stored.get(key) == wanted[key]:
            continue
        if key == "steps":
            slopes = wanted.get("slope_schedule") or {}
            if slopes.get("start") == slopes.get("end") and step <= wanted["steps"]:
                continue
        out.append(key)
    return out


def load_checkpoint(
    path: str | Path,
    parameters: Sequence[str],
    opt_template: Any,
    optimizer: str,
    *,
    settings: Mapping[str, Any] | None = None,
    networks: Any = None,
) -> Checkpoint:
    """Read a checkpoint and rebuild its Optax state with the structure of ``opt_template``.

    Args:
        path: a ``step_XXXXXX.npz`` file.
        parameters: the cut names of the analysis, in order.
        opt_template: ``optimizer.init(u)`` of the optimiser that will continue.
        optimizer: the optimiser's name.
        settings: the settings of the run that continues
            (:func:`~diffhep.optimize.run.resume_settings`); ``None``: not compared.
        networks: the trainable network arrays of the analysis (a template of their
            tree, shapes and dtypes), or ``None`` when it has no network observable.

    Raises:
        CheckpointError: the file cannot be read (one line naming it).
        ConfigError: the checkpoint belongs to other parameters, another optimiser
            or other settings (one line naming each difference).
    """
    path = Path(path)
    record, u, leaves, net_leaves = _read(path)
    # The step returns its dict of cuts with sorted keys, so compare names, not order.
    if sorted(record["parameters"]) != sorted(parameters):
        raise ConfigError(
            f"checkpoint {path} is for cuts {record['parameters']}, this analysis has {list(parameters)}; "
            "use another output folder or run without --resume"
        )
    if record["optimizer"] != optimizer:
        raise ConfigError(f"checkpoint {path} was written by optimiser {record['optimizer']!r}, not {optimizer!r}")
    stored = record.get("settings")
    if settings is not None:
        if stored is None:
            raise ConfigError(
                f"--resume: the checkpoint {path} does not record its settings (written by an older diffhep), "
                "so continuing it could silently change the result; run without --resume"
            )
        keys = settings_differences(stored, settings, step=record["step"])
        if keys:
            was = ", ".join(f"{k}={_text(stored.get(k))}" for k in keys)
            asks = ", ".join(f"{k}={_text(settings[k])}" for k in keys)
            raise ConfigError(
                f"--resume: the checkpoint in {path.parent} was written with {was}; this run asks {asks} "
                "(run without --resume, or with the same settings)"
            )
    net_template, net_def = jax.tree_util.tree_flatten(networks)
    if len(net_template) != len(net_leaves) or any(
        np.shape(a) != np.shape(b) or np.asarray(a).dtype != b.dtype for a, b in zip(net_template, net_leaves)
    ):
        shapes = lambda leaves: [tuple(np.shape(x)) for x in leaves]  # noqa: E731
        raise ConfigError(
            f"checkpoint {path}: its network weights {shapes(net_leaves)} do not match this analysis's network "
            f"observables {shapes(net_template)}; use another output folder or run without --resume"
        )
    template, treedef = jax.tree_util.tree_flatten(opt_template)
    if len(template) != len(leaves) or any(
        np.shape(a) != np.shape(b) or np.asarray(a).dtype != b.dtype for a, b in zip(template, leaves)
    ):
        raise ConfigError(f"checkpoint {path}: its optimiser state does not match the optimiser's options")
    opt_state = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(leaf) for leaf in leaves])
    restored = jax.tree_util.tree_unflatten(net_def, [jnp.asarray(leaf) for leaf in net_leaves])
    return Checkpoint(
        step=int(record["step"]),
        u={k: jnp.asarray(v) for k, v in u.items()},
        opt_state=opt_state,
        history=record["history"],
        seed=int(record["seed"]),
        optimizer=record["optimizer"],
        settings=stored,
        networks=None if networks is None else restored,
    )


def resume_checkpoint(
    folder: str | Path,
    parameters: Sequence[str],
    opt_template: Any,
    optimizer: str,
    *,
    settings: Mapping[str, Any] | None = None,
    networks: Any = None,
    note: Callable[[str], None] = lambda line: None,
) -> tuple[Checkpoint | None, Path | None]:
    """The checkpoint to resume from in ``folder``: the one ``latest`` names, else the previous readable one.

    The candidates are the checkpoint ``latest`` names and then those with lower
    step numbers, newest first (without a usable ``latest``: every checkpoint of
    the folder, newest first). A candidate that cannot be read is skipped, and
    ``note`` is called with one line saying which file was skipped and which is
    used instead; the same for a ``latest`` that is not followed, and for a
    checkpoint written with another ``execution`` (:func:`settings_differences`). A readable
    checkpoint of other cuts, optimiser or settings is never skipped: its
    :class:`~diffhep.errors.ConfigError` is raised.

    Returns:
        ``(checkpoint, its file)``, or ``(None, None)`` when the folder holds none.

    Raises:
        CheckpointError: there are checkpoint files but none can be read
            (one line naming the newest and what is wrong with it).
        ConfigError: as :func:`load_checkpoint`.
    """
    folder = Path(folder)
    pointed, problem = _pointed(folder)
    found = _all(folder)
    if pointed is not None:
        candidates = [pointed, *(p for p in found if _step(p) < _step(pointed))]
    else:
        candidates = found
        if problem is not None and found:
            note(f"note: {problem}; not followed, the newest checkpoint {found[0].name} is used")
    skipped: list[CheckpointError] = []
    for path in candidates:
        try:
            ckpt = load_checkpoint(path, parameters, opt_template, optimizer, settings=settings, networks=networks)
        except CheckpointError as err:
            skipped.append(err)
            continue
        if skipped:
            names = ", ".join(Path(str(e.path)).name for e in skipped)
            note(f"note: {skipped[0]}; skipped ({names}), resuming from the previous checkpoint {path.name}")
        was, now = (ckpt.settings or {}).get("execution"), (settings or {}).get("execution")
        if settings is not None and was != now:
            note(
                f"note: {path.name} was written with execution {was}, this run is {now}: the result equals "
                "the uninterrupted run's up to rounding, not bit for bit"
            )
        return ckpt, path
    if skipped:
        raise CheckpointError(
            f"--resume: {skipped[0]}, and no earlier checkpoint in {folder} can be read "
            "(remove the folder's checkpoints or run without --resume)"
        )
    return None, None
