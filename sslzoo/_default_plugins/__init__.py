"""The built-in plugins: strategies, datasets, models, recipes and stopping criteria, registered like
third-party ones (:data:`sslzoo._contract.plugins.DEFAULT_PLUGINS`).

May import: :mod:`sslzoo._strategies`, :mod:`sslzoo._datasets`, :mod:`sslzoo._contract` and below.
"""
