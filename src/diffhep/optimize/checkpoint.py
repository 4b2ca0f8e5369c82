"""Checkpoints of an optimisation: written atomically, restored bit for bit.

A checkpoint is ``<folder>/step_XXXXXX.npz`` holding the unconstrained cut
variables (``u/<name>``), the Optax state flattened with
:func:`jax.tree_util.tree_leaves` (``opt/<i>``), and a JSON record (step,
history, seed, parameter names, optimiser). ``<folder>/latest`` names the most
recent one. The Optax state is restored against the tree structure of
``optimizer.init(u)`` of the same optimiser, leaf by leaf with shapes and dtypes
checked, so a resumed run continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from diffhep.errors import ConfigError
from diffhep.outputs import atomic_write, write_text

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "latest_checkpoint"]

_NAME = re.compile(r"^step_(\d{6,})\.npz$")


class Checkpoint(NamedTuple):
    """The state of an optimisation after ``step`` steps.

    Attributes:
        step: steps completed (the next step to run).
        u: cut name -> unconstrained variable.
        opt_state: the Optax state (a pytree).
        history: per completed step, the history record.
        seed: the run's random seed.
        optimizer: the optimiser's name (checked on resume).
    """

    step: int
    u: dict[str, Array]
    opt_state: Any
    history: list[dict[str, float]]
    seed: int
    optimizer: str


def save_checkpoint(folder: str | Path, checkpoint: Checkpoint) -> Path:
    """Write ``folder/step_XXXXXX.npz`` and then the ``latest`` pointer, both atomically."""
    folder = Path(folder)
    arrays = {f"u/{k}": np.asarray(v) for k, v in checkpoint.u.items()}
    for i, leaf in enumerate(jax.tree_util.tree_leaves(checkpoint.opt_state)):
        arrays[f"opt/{i}"] = np.asarray(leaf)
    record = {
        "step": checkpoint.step,
        "seed": checkpoint.seed,
        "optimizer": checkpoint.optimizer,
        "parameters": list(checkpoint.u),
        "history": checkpoint.history,
    }
    arrays["record"] = np.frombuffer(json.dumps(record).encode(), dtype=np.uint8)
    name = f"step_{checkpoint.step:06d}.npz"

    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    path = atomic_write(folder / name, writer)
    write_text(folder / "latest", name + "\n")
    return path


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The checkpoint ``folder/latest`` names, else the highest-numbered one, else ``None``."""
    folder = Path(folder)
    pointer = folder / "latest"
    if pointer.is_file():
        path = folder / pointer.read_text().strip()
        if _NAME.match(path.name) and path.is_file():
            return path
    found = sorted((p for p in folder.glob("step_*.npz") if _NAME.match(p.name)), key=lambda p: p.name)
    return found[-1] if found else None


def load_checkpoint(path: str | Path, parameters: Sequence[str], opt_template: Any, optimizer: str) -> Checkpoint:
    """Read a checkpoint and rebuild its Optax state with the structure of ``opt_template``.

    Args:
        path: a ``step_XXXXXX.npz`` file.
        parameters: the cut names of the analysis, in order.
        opt_template: ``optimizer.init(u)`` of the optimiser that will continue.
        optimizer: the optimiser's name.

    Raises:
        ConfigError: the checkpoint belongs to other parameters or another optimiser.
    """
    path = Path(path)
    with np.load(path) as f:
        record = json.loads(f["record"].tobytes().decode())
        u = {k: jnp.asarray(f[f"u/{k}"]) for k in record["parameters"]}
        leaves = [f[f"opt/{i}"] for i in range(sum(1 for k in f.files if k.startswith("opt/")))]
    # The step returns its dict of cuts with sorted keys, so compare names, not order.
    if sorted(record["parameters"]) != sorted(parameters):
        raise ConfigError(
            f"checkpoint {path} is for cuts {record['parameters']}, this analysis has {list(parameters)}; "
            "use another output folder or run without --resume"
        )
    if record["optimizer"] != optimizer:
        raise ConfigError(f"checkpoint {path} was written by optimiser {record['optimizer']!r}, not {optimizer!r}")
    template, treedef = jax.tree_util.tree_flatten(opt_template)
    if len(template) != len(leaves) or any(
        np.shape(a) != np.shape(b) or np.asarray(a).dtype != b.dtype for a, b in zip(template, leaves)
    ):
        raise ConfigError(f"checkpoint {path}: its optimiser state does not match the optimiser's options")
    opt_state = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(leaf) for leaf in leaves])
    return Checkpoint(
        step=int(record["step"]),
        u=u,
        opt_state=opt_state,
        history=record["history"],
        seed=int(record["seed"]),
        optimizer=record["optimizer"],
    )
