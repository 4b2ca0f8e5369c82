"""Hand-written analyses on the core, without a config: library examples to read and adapt.

They use :mod:`diffhep.jagged`, :mod:`diffhep.select` and :mod:`diffhep.histogram`
directly and sit outside the engine's import path (nothing in ``diffhep`` but the
benchmarks imports them). Each has a soft path and a plain-Awkward hard path.

* :mod:`~diffhep.examples.dimuon`: dimuon resonance search, three cuts (the
  selection of ``analyses/dimuon``); :mod:`~diffhep.examples.dimuon_fit` chains it
  to a HistFactory model and the expected significance, and evaluates it with pyhf;
* :mod:`~diffhep.examples.hzz`: H -> ZZ* -> 4 leptons with Z-candidate pairing;
* :mod:`~diffhep.examples.ttbar`: the AGC ttbar selection (one lepton, >= 4 jets, b-tags).
"""
