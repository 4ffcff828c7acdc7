"""The plugin contract and its types: the Strategy hooks and what they receive and return
(:class:`~sslzoo._contract.strategy.Strategy`, :class:`~sslzoo._contract.context.Context`, labels,
the oracle handle, the ledger of labeled ids), the pluggy hook specifications and the plugin API
version, the registry that plugins fill and how plugins are loaded, the base classes of datasets,
recipes and stopping criteria, options, and result records.

Plugins import these through the public face (``sslzoo``), never by these module paths.
May import: :mod:`sslzoo._ops`, :mod:`sslzoo.errors`, :mod:`sslzoo._files`.
"""
