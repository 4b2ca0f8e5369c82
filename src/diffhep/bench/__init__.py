"""Benchmarks shipped with the package (``diffhep bench``).

* :mod:`~diffhep.bench.agc`: AGC-style event rates of a configured ttbar
  analysis against the plain Awkward/NumPy pass, in memory, streaming and on Dask.
"""
