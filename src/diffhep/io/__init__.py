"""I/O edge: uproot → Awkward.

- :mod:`diffhep.io.generate`: synthetic NanoAOD-schema ntuples (signal, dy, ttbar, qcd).
- :mod:`diffhep.io.read`: TTree/RNTuple reading (paths, globs, folders, URLs) with NanoAOD collection zipping.
- :mod:`diffhep.io.memory`: events already in memory (uproot's flat branches, coffea's
  NanoEvents records) read as the branches of a file.
- :mod:`diffhep.io.samples`: samples with cross-sections and luminosity normalisation.
- :mod:`diffhep.io.generate_agc`: synthetic CMS NanoAOD for the AGC ttbar template
  (ttbar, W+jets, single top; :data:`AGC_PROCESSES`).
- :mod:`diffhep.io.generate_hzz`: synthetic H -> ZZ* -> 4l samples in the schema of the
  uproot H->ZZ tutorial file (:data:`HZZ_PROCESSES`).
- :mod:`diffhep.io.generate_common`: what the template generators share (block
  seeding, vectorised relativistic kinematics) and the atomic chunked writes every
  generator uses.
"""

from diffhep.io.generate import PROCESSES, generate_dataset, generate_sample
from diffhep.io.read import branch_names, iterate_events, num_entries, read_events
from diffhep.io.samples import Sample, load_sample, normalisation, sum_of_weights

__all__ = [
    "PROCESSES",
    "generate_sample",
    "generate_dataset",
    "read_events",
    "iterate_events",
    "branch_names",
    "num_entries",
    "Sample",
    "sum_of_weights",
    "normalisation",
    "load_sample",
]

# Template generators: AGC ttbar (NanoAOD ``Events``) and H->ZZ*->4l (tutorial ``events``).
from diffhep.io.generate_agc import AGC_PROCESSES, generate_agc_dataset, generate_agc_sample  # noqa: E402
from diffhep.io.generate_hzz import HZZ_PROCESSES, generate_hzz_dataset, generate_hzz_sample  # noqa: E402

__all__ += ["AGC_PROCESSES", "generate_agc_sample", "generate_agc_dataset"]
__all__ += ["HZZ_PROCESSES", "generate_hzz_sample", "generate_hzz_dataset"]
