"""The engine: one run from its spec (:mod:`~sslzoo._engine.run`), training, the judge that holds a
run's hidden labels and the learner process that never receives them, the catalog of names
(strategies, datasets, models), and how another process rebuilds the registry.

May import: :mod:`sslzoo._strategies`, :mod:`sslzoo._datasets`, :mod:`sslzoo._contract` and below;
never planning, results, reports, labeling or the CLI.
"""
