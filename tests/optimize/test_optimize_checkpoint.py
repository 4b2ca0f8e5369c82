"""Damaged checkpoints and pointers: one line naming the file, or the previous good checkpoint, said so.

The checkpoints are written by :func:`save_checkpoint` for a small Optax state;
each test damages one the way a full disk, a copy cut short or a hand edit would.
"""

from __future__ import annotations

import io
import json
import zipfile

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from diffhep.errors import ConfigError
from diffhep.optimize.checkpoint import (
    Checkpoint,
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    resume_checkpoint,
    save_checkpoint,
)

OPT = optax.adam(0.1)
NAMES = ["a", "b"]


def _u(x: float) -> dict:
    return {"a": jnp.asarray(x), "b": jnp.asarray(-x)}


TEMPLATE = OPT.init(_u(0.0))


@pytest.fixture
def folder(tmp_path):
    """Checkpoints after steps 3 and 6 (``latest`` names step 6)."""
    folder = tmp_path / "checkpoints"
    state = TEMPLATE
    for step in (3, 6):
        history = [{"step": i, "objective": float(i)} for i in range(step)]
        save_checkpoint(folder, Checkpoint(step, _u(step / 10), state, history, 1, "adam", {"steps": 10}))
    return folder


def _resume(folder):
    notes = []
    ckpt, path = resume_checkpoint(folder, NAMES, TEMPLATE, "adam", note=notes.append)
    return ckpt, path, notes


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def _rewrite(path, drop=(), replace=None):
    """``path`` again without the keys ``drop`` and with ``replace`` (key -> array)."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files if k not in drop}
    arrays.update(replace or {})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def _record(path, **changes):
    with np.load(path) as f:
        record = json.loads(f["record"].tobytes())
    record.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del record[key]
    _rewrite(path, replace={"record": np.frombuffer(json.dumps(record).encode(), dtype=np.uint8)})


DAMAGE = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "truncated to a few bytes": lambda p: p.write_bytes(p.read_bytes()[:10]),
    "zero bytes": lambda p: p.write_bytes(b""),
    "empty npz": lambda p: np.savez(p),
    "not a zip": lambda p: p.write_bytes(b"garbage" * 100),
    "a .npy": lambda p: p.write_bytes(_npy()),
    "no record": lambda p: _rewrite(p, drop=["record"]),
    "a cut value missing": lambda p: _rewrite(p, drop=["u/b"]),
    "an optimiser leaf missing": lambda p: _rewrite(p, drop=["opt/1"]),
    "record not JSON": lambda p: _rewrite(p, replace={"record": np.frombuffer(b"{not json", dtype=np.uint8)}),
    "record a list": lambda p: _rewrite(p, replace={"record": np.frombuffer(b"[1, 2]", dtype=np.uint8)}),
    "no step in the record": lambda p: _record(p, step=None),
    "no history in the record": lambda p: _record(p, history=None),
    "step of the wrong type": lambda p: _record(p, step="six"),
    "pickled object": lambda p: _rewrite(p, replace={"u/a": np.array([object()], dtype=object)}),
    "a zip member damaged": lambda p: _flip_inside(p),
}


def _npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(3))
    return buffer.getvalue()


def _flip_inside(path):
    """Flip bytes in the middle of the record's data (its CRC no longer matches)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("record.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 80
    data[start : start + 8] = b"XXXXXXXX"
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_is_one_line_and_the_previous_one_is_used(folder, damage):
    DAMAGE[damage](folder / "step_000006.npz")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(folder / "step_000006.npz", NAMES, TEMPLATE, "adam")
    assert f"checkpoint {folder / 'step_000006.npz'} cannot be used: " in _one_line(err)
    assert err.value.path == str(folder / "step_000006.npz")

    ckpt, path, notes = _resume(folder)
    assert ckpt.step == 3 and path.name == "step_000003.npz"
    assert float(ckpt.u["a"]) == pytest.approx(0.3) and len(ckpt.history) == 3
    (note,) = notes
    assert str(folder / "step_000006.npz") in note and "resuming from the previous checkpoint step_000003.npz" in note


def test_no_readable_checkpoint_is_refused_in_one_line(folder):
    for name in ("step_000003.npz", "step_000006.npz"):
        DAMAGE["truncated"](folder / name)
    with pytest.raises(CheckpointError) as err:
        _resume(folder)
    text = _one_line(err)
    assert text.startswith(f"--resume: checkpoint {folder / 'step_000006.npz'} cannot be used")
    assert "no earlier checkpoint" in text


@pytest.mark.parametrize(
    "pointer",
    [b"garbage\n", b"\xff\xfe\x00binary", b"", b"../other/step_000009.npz\n", b"step_000009.npz\n", b"latest"],
)
def test_latest_is_followed_only_to_a_checkpoint_of_its_own_folder(folder, pointer):
    other = folder.parent / "other"
    save_checkpoint(other, Checkpoint(9, _u(0.9), TEMPLATE, [{"step": i} for i in range(9)], 1, "adam"))
    (folder / "latest").write_bytes(pointer)
    assert latest_checkpoint(folder) == folder / "step_000006.npz"
    ckpt, path, notes = _resume(folder)
    assert ckpt.step == 6 and path == folder / "step_000006.npz"
    (note,) = notes
    assert "latest" in note and "not followed" in note and "step_000006.npz" in note and "\n" not in note


def test_latest_by_absolute_path_or_through_a_link_is_not_followed(folder):
    other = folder.parent / "other"
    save_checkpoint(other, Checkpoint(9, _u(0.9), TEMPLATE, [{"step": i} for i in range(9)], 1, "adam"))
    (folder / "latest").write_text(str(other / "step_000009.npz"))
    assert latest_checkpoint(folder) == folder / "step_000006.npz"
    (folder / "step_000012.npz").symlink_to(other / "step_000009.npz")  # a checkpoint file that lies elsewhere
    (folder / "latest").write_text("step_000012.npz\n")
    assert latest_checkpoint(folder) == folder / "step_000006.npz"
    assert _resume(folder)[0].step == 6


def test_a_later_checkpoint_than_latest_names_is_not_used(folder):
    # latest names step 3 (as after a rerun from scratch that stopped there): a step-6 file is another run's
    (folder / "latest").write_text("step_000003.npz\n")
    ckpt, path, notes = _resume(folder)
    assert ckpt.step == 3 and path == folder / "step_000003.npz" and notes == []
    DAMAGE["zero bytes"](folder / "step_000003.npz")
    with pytest.raises(CheckpointError, match="no earlier checkpoint"):
        _resume(folder)


def test_an_empty_folder_has_nothing_to_resume(tmp_path):
    assert _resume(tmp_path / "none") == (None, None, [])
    assert _resume(tmp_path) == (None, None, [])


def test_a_readable_checkpoint_of_other_cuts_is_refused_not_skipped(folder):
    DAMAGE["truncated"](folder / "step_000006.npz")
    with pytest.raises(ConfigError, match="is for cuts"):
        resume_checkpoint(folder, ["a", "c"], TEMPLATE, "adam")


def test_the_settings_are_compared_and_another_execution_is_noted(tmp_path):
    stored = {"steps": 10, "learning_rate": 0.1, "dtype": "float32", "execution": "memory", "checkpoint_every": 2}
    save_checkpoint(tmp_path, Checkpoint(2, _u(0.2), TEMPLATE, [{}, {}], 1, "adam", stored))
    notes = []
    same = resume_checkpoint(tmp_path, NAMES, TEMPLATE, "adam", settings=stored, note=notes.append)
    assert same[0].step == 2 and same[0].settings == stored and notes == []
    moved = {**stored, "execution": "streaming, chunks of 1000 events", "checkpoint_every": 5}
    assert resume_checkpoint(tmp_path, NAMES, TEMPLATE, "adam", settings=moved, note=notes.append)[0].step == 2
    assert notes == [
        "note: step_000002.npz was written with execution memory, this run is streaming, chunks of 1000 events: "
        "the result equals the uninterrupted run's up to rounding, not bit for bit"
    ]
    with pytest.raises(ConfigError) as err:
        resume_checkpoint(tmp_path, NAMES, TEMPLATE, "adam", settings={**stored, "dtype": "float64", "seed": 2})
    assert _one_line(err).startswith(
        f"--resume: the checkpoint in {tmp_path} was written with seed=None, dtype=float32; "
        "this run asks seed=2, dtype=float64 "
    )
    # A checkpoint that does not record its settings cannot be checked: refused.
    save_checkpoint(tmp_path, Checkpoint(3, _u(0.3), TEMPLATE, [{}] * 3, 1, "adam"))
    with pytest.raises(ConfigError, match="does not record its settings"):
        resume_checkpoint(tmp_path, NAMES, TEMPLATE, "adam", settings=stored)
