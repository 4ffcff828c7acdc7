"""BatchBALD: ``batchbald``.

Each round the pool candidates go through ``passes`` (K, default 100 as the paper's MNIST runs)
*consistent* MC-dropout passes (:meth:`sslzoo._contract.context.Context.predict_mc` with
``consistent=True``: pass k applies one set of dropout masks to every candidate, one sample of
the weights), and the batch is built greedily by the joint mutual information of its labels with
the weights, ``H[y_1..n] - Σ H[y_i | w]``: exact over every label configuration while there are
at most ``joint_samples`` of them, estimated from ``joint_samples`` sampled configurations
beyond (drawn from the run's generator). With a batch of one it is BALD. See
:mod:`sslzoo._ops.joint_entropy`, a port of the authors' ``batchbald_redux``.

Reference: Kirsch, A., van Amersfoort, J. & Gal, Y. (2019). BatchBALD: Efficient and Diverse Batch
Acquisition for Deep Bayesian Active Learning. Advances in Neural Information Processing Systems 32
(NeurIPS 2019), 7026–7037.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from torch import Tensor

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._ops.joint_entropy import batchbald
from sslzoo._strategies.active import BatchStrategy, MCDropoutOptions
from sslzoo.errors import OptionError

KIRSCH_2019 = ("Kirsch, A., van Amersfoort, J. & Gal, Y. (2019). BatchBALD: Efficient and Diverse Batch "
               "Acquisition for Deep Bayesian Active Learning. Advances in Neural Information Processing "
               "Systems 32 (NeurIPS 2019), 7026–7037")


@dataclass
class BatchBaldOptions(MCDropoutOptions):
    """BatchBALD's options: K = 100 consistent MC-dropout passes (the paper's MNIST runs) and 100,000
    sampled label configurations once exact joint entropies would need more (the reference
    implementation's example; the paper's code drop used 40,000 // K · K)."""

    passes: int = field(default=100, metadata={
        "min": 1, "max": 10_000, "help": "consistent MC-dropout passes K (one set of dropout masks per pass)"})
    joint_samples: int = field(default=100_000, metadata={
        "min": 1, "help": "label configurations of the batch: exact joint entropies up to this many (C^n), "
                          "sampled beyond; at least passes (joint_samples // passes per pass)"})


class BatchBald(BatchStrategy):
    """Query the batch with the largest joint mutual information with the model's weights, built greedily."""

    name = "batchbald"
    paper = KIRSCH_2019
    summary = "BatchBALD: greedy joint mutual information of the batch over consistent MC-dropout passes"
    Options: ClassVar[type] = BatchBaldOptions
    options: BatchBaldOptions

    def check(self, ctx: Context) -> None:
        super().check(ctx)
        if self.options.joint_samples < self.options.passes:
            raise OptionError(f"option joint_samples={self.options.joint_samples} of strategy {self.name!r} is "
                              f"smaller than passes={self.options.passes}: each pass draws joint_samples // passes "
                              f"configurations, so it must be at least {self.options.passes}")

    def choose(self, ctx: Context, ids: Tensor, k: int) -> Tensor:
        probs = ctx.predict_mc(ids, self.options.passes, consistent=True)
        positions, _ = batchbald(probs, k, self.options.joint_samples, ctx.generator)
        return ids[positions]


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(BatchBald)
