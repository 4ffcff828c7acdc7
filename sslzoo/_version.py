"""The version of sslzoo (the package face re-exports it as ``sslzoo.__version__``)."""

__version__ = "0.1.0"
