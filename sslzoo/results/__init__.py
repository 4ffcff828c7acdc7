"""Result records on disk: the record class (typed, versioned: :mod:`sslzoo.results.record`), the record
store (``--out DIR``, ``--resume``) and the formatting of figures shared by everything that shows records.

May import: :mod:`sslzoo.engine` and below; never planning, reports, labeling or the CLI.
"""
