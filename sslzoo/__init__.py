"""sslzoo: a plugin-based zoo of label-efficient learning strategies on PyTorch."""

from __future__ import annotations

__version__ = "0.1.0"

from sslzoo.api import (  # noqa: E402
    create_dataset,
    create_model,
    create_strategy,
    get_dataset,
    get_model,
    get_strategy,
    list_datasets,
    list_models,
    list_strategies,
)
from sslzoo.bench import run  # noqa: E402
from sslzoo.comparison import compare  # noqa: E402
from sslzoo.dataset import Arrays, Dataset  # noqa: E402
from sslzoo.errors import (  # noqa: E402
    ChecksumError,
    DataError,
    OptionError,
    OracleError,
    PluginError,
    ResultsError,
    SslzooError,
    TrainingError,
    UnknownNameError,
)
from sslzoo.hookspecs import hookimpl  # noqa: E402
from sslzoo.reporting import report  # noqa: E402
from sslzoo.strategy import Batch, Labels, Strategy, TrainOptions  # noqa: E402

__all__ = [
    "Arrays", "Batch", "ChecksumError", "DataError", "Dataset", "Labels", "OptionError", "OracleError",
    "PluginError", "ResultsError", "SslzooError", "Strategy", "TrainOptions", "TrainingError", "UnknownNameError",
    "__version__", "compare", "create_dataset", "create_model", "create_strategy", "get_dataset", "get_model",
    "get_strategy", "hookimpl", "list_datasets", "list_models", "list_strategies", "report", "run",
]
