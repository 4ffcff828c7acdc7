"""sslzoo: a plugin-based zoo of label-efficient learning strategies on PyTorch.

The public API is what this module exports (``__all__``), plus the plugin test kit
:mod:`sslzoo.testing` and the labeling sessions of :mod:`sslzoo.labeling`. Plugins, the docs and
the example plugin import only these; every other module path is internal and may change.
``scores`` is the module of uncertainty scores (``sslzoo.scores.bald(probs)``).
"""

from __future__ import annotations

from sslzoo import _moved, scores
from sslzoo._version import __version__
from sslzoo.contract.context import Context
from sslzoo.contract.dataset import Arrays, Dataset
from sslzoo.contract.hookspecs import hookimpl
from sslzoo.contract.labels import ORACLE, PSEUDO, Labels
from sslzoo.contract.plugin_api import PLUGIN_API
from sslzoo.contract.plugins import make_plugins
from sslzoo.contract.recipe import Recipe
from sslzoo.contract.registry import ModelSpec, Registry
from sslzoo.contract.stopping import Predictions, StoppingCriterion, StoppingOptions
from sslzoo.contract.strategy import (
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
from sslzoo.engine.catalog import (
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
    TrainingError,
    UnknownNameError,
    WorkerError,
)
from sslzoo.ops.embedding import GradientEmbedding
from sslzoo.ops.layers import HintonDropout
from sslzoo.ops.picking import top_k
from sslzoo.ops.teacher import Teacher
from sslzoo.planning.bench import run
from sslzoo.planning.executor import Executor, SerialExecutor
from sslzoo.planning.ray_cluster import RayExecutor
from sslzoo.planning.worker_pool import ProcessExecutor
from sslzoo.reports.comparison import compare
from sslzoo.reports.reporting import report
from sslzoo.strategies.active import (
    ActiveOptions,
    ActiveStrategy,
    BatchStrategy,
    MCDropoutOptions,
    MCDropoutStrategy,
    UncertaintyStrategy,
)
from sslzoo.strategies.pseudo import ArgmaxPseudoLabeler, argmax_labels

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
    # plugins
    "hookimpl", "Registry", "make_plugins", "PLUGIN_API",
    # errors and warnings
    "SslzooError", "UnknownNameError", "OptionError", "PresetError", "DataError", "ChecksumError",
    "PluginError", "OracleError", "TrainingError", "ResultsError", "SessionError", "WorkerError", "PluginWarning",
    "AmbiguousNameError",
    "__version__",
]

_moved.install()
