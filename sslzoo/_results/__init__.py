"""Result records on disk: the record class (typed, versioned: :mod:`sslzoo._results.record`), the record
store (``--out DIR``, ``--resume``) and the formatting of figures shared by everything that shows records.

May import: :mod:`sslzoo._engine` and below; never planning, reports, labeling or the CLI.
"""
