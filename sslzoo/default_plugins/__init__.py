"""The built-in plugins: strategies, datasets, models, recipes and stopping criteria, registered like
third-party ones (:data:`sslzoo.contract.plugins.DEFAULT_PLUGINS`).

May import: :mod:`sslzoo.strategies`, :mod:`sslzoo.datasets`, :mod:`sslzoo.contract` and below.
"""
