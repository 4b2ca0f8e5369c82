"""Samples: files plus cross-section, and their normalisation to a luminosity.

A Monte-Carlo sample with cross-section ``xsec_pb`` (pb) and generator weights
``w_i`` is scaled to an integrated luminosity ``L`` (pb^-1) by

    normalisation = xsec_pb * L / sum_i w_i

so that ``sum_i normalisation * w_i`` is the expected number of events.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

from diffhep.errors import InputError
from diffhep.io.read import iterate_events, num_entries, read_events

__all__ = ["Sample", "EmptySampleError", "sum_of_weights", "normalisation", "load_sample"]


class EmptySampleError(InputError):
    """A sample has no events or a zero sum of weights, so it cannot be normalised."""


@dataclass(frozen=True)
class Sample:
    """One simulated process.

    Attributes:
        name: sample name used in configs and outputs.
        files: ROOT files (paths or glob patterns).
        xsec_pb: cross-section in pb.
        tree: TTree or RNTuple name.
        weight_branch: per-event generator weight branch; ``None`` for unweighted samples.
    """

    name: str
    files: tuple[str, ...]
    xsec_pb: float
    tree: str = "Events"
    weight_branch: str | None = "genWeight"

    def __post_init__(self) -> None:
        if isinstance(self.files, (str, bytes)):  # a bare string is one file, not characters
            object.__setattr__(self, "files", (self.files,))
        else:
            object.__setattr__(self, "files", tuple(str(f) for f in self.files))


def _files_text(sample: Sample) -> str:
    return ", ".join(sample.files) or "no files"


def sum_of_weights(sample: Sample) -> float:
    """Sum of ``weight_branch`` over all events (float64), or the event count if unweighted.

    Reads only the weight branch, in batches.
    """
    if not sample.files:
        raise EmptySampleError(f"sample {sample.name!r} has no files")
    if sample.weight_branch is None:
        return float(num_entries(list(sample.files), tree=sample.tree))
    total = 0.0
    for batch in iterate_events(
        list(sample.files), tree=sample.tree, branches=[sample.weight_branch], step_size=1_000_000
    ):
        total += float(np.sum(ak.to_numpy(batch[sample.weight_branch]), dtype=np.float64))
    return total


def normalisation(sample: Sample, lumi_pb: float) -> float:
    """Per-weight scale factor ``xsec_pb * lumi_pb / sum_of_weights`` (lumi in pb^-1).

    Raises:
        EmptySampleError: the sample has no events or its weights sum to zero.
    """
    total = sum_of_weights(sample)
    if total == 0.0:
        empty = sample.weight_branch is None or num_entries(list(sample.files), tree=sample.tree) == 0
        what = "no events" if empty else f"zero sum of {sample.weight_branch}"
        raise EmptySampleError(f"sample {sample.name!r} has {what}, cannot normalise (files: {_files_text(sample)})")
    return sample.xsec_pb * lumi_pb / total


def load_sample(sample: Sample, branches: list[str] | None = None) -> ak.Array:
    """Read ``branches`` of every file of ``sample`` into one zipped events array."""
    if not sample.files:
        raise EmptySampleError(f"sample {sample.name!r} has no files")
    return read_events(list(sample.files), tree=sample.tree, branches=branches)
