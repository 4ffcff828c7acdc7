"""sslzoo: a plugin-based zoo of label-efficient learning strategies on PyTorch.

The public API is what this module exports (``__all__``), plus the plugin test kit
:mod:`sslzoo.testing` and the labeling sessions of :mod:`sslzoo.labeling`. Plugins, the docs and
the example plugin import only these; every other module path is internal, named with a leading
underscore (``sslzoo._engine``, ...), and may change.
``scores`` is the module of uncertainty scores (``sslzoo.scores.bald(probs)``).
"""

from __future__ import annotations

from sslzoo import _moved, scores
from sslzoo._contract.context import Context
from sslzoo._contract.dataset import Arrays, Dataset
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.labels import ORACLE, PSEUDO, Labels
from sslzoo._contract.plugin_api import PLUGIN_API
from sslzoo._contract.plugins import make_plugins
from sslzoo._contract.pretraining import Pretrainer, PretrainOptions
from sslzoo._contract.recipe import Recipe
from sslzoo._contract.registry import ModelSpec, Registry
from sslzoo._contract.stopping import Predictions, StoppingCriterion, StoppingOptions
from sslzoo._contract.strategy import (
    Batch,
    EpochPlan,
    PseudoLabels,
    Step,
    StepLoss,
    Strategy,
    TrainOptions,
    supervised_loss,
    weighted_cross_entropy,
)
from sslzoo._engine.catalog import (
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
from sslzoo._ops.embedding import GradientEmbedding
from sslzoo._ops.layers import HintonDropout
from sslzoo._ops.picking import top_k
from sslzoo._ops.teacher import Teacher
from sslzoo._planning.bench import run
from sslzoo._planning.executor import Executor, SerialExecutor
from sslzoo._planning.ray_cluster import RayExecutor
from sslzoo._planning.worker_pool import ProcessExecutor
from sslzoo._reports.comparison import compare
from sslzoo._reports.reporting import report
from sslzoo._strategies.active import (
    ActiveOptions,
    ActiveStrategy,
    BatchStrategy,
    MCDropoutOptions,
    MCDropoutStrategy,
    UncertaintyStrategy,
)
from sslzoo._strategies.pseudo import ArgmaxPseudoLabeler, argmax_labels
from sslzoo._version import __version__
from sslzoo.errors import (
    AmbiguousNameError,
    ChecksumError,
    DataError,
    OptionError,
    OracleError,
    PluginError,
    PluginWarning,
    PresetError,
    ResultsError,
    SessionError,
    SslzooError,
    TrackingError,
    TrackingWarning,
    TrainingError,
    UnknownNameError,
    WorkerError,
)

__all__ = [
    # running and comparing
    "run", "compare", "report",
    "Executor", "SerialExecutor", "ProcessExecutor", "RayExecutor",
    "list_strategies", "get_strategy", "create_strategy",
    "list_datasets", "get_dataset", "create_dataset",
    "list_models", "get_model", "create_model",
    # writing a strategy
    "Strategy", "TrainOptions", "Context", "Labels", "Batch", "Step", "StepLoss", "PseudoLabels", "EpochPlan",
    "ORACLE", "PSEUDO", "weighted_cross_entropy", "supervised_loss", "Teacher",
    "ActiveStrategy", "ActiveOptions", "UncertaintyStrategy", "MCDropoutStrategy", "MCDropoutOptions",
    "BatchStrategy", "GradientEmbedding",
    "ArgmaxPseudoLabeler", "argmax_labels", "scores", "top_k",
    # writing a dataset or a model
    "Dataset", "Arrays", "ModelSpec", "HintonDropout", "Recipe",
    # writing a stopping criterion
    "StoppingCriterion", "StoppingOptions", "Predictions",
    # writing a pretraining method
    "Pretrainer", "PretrainOptions",
    # plugins
    "hookimpl", "Registry", "make_plugins", "PLUGIN_API",
    # errors and warnings
    "SslzooError", "UnknownNameError", "OptionError", "PresetError", "DataError", "ChecksumError",
    "PluginError", "OracleError", "TrainingError", "ResultsError", "SessionError", "WorkerError", "PluginWarning",
    "AmbiguousNameError", "TrackingError", "TrackingWarning",
    "__version__",
]

_moved.install()
