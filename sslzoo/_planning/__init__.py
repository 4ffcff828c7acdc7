"""Planning and executing grids of runs: ``sslzoo.run``/``bench`` grids, presets, control groups,
and the executors (serial, worker processes, Ray) that run them.

May import: :mod:`sslzoo._results` (the record store), :mod:`sslzoo._engine` and below.
"""
