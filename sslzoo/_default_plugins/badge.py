"""BADGE, batch active learning by diverse gradient embeddings: ``badge``.

Each round every pool candidate gets its gradient embedding: the gradient of the loss, for the
label the model predicts, with respect to the weight of the model's last linear layer
(:meth:`sslzoo._contract.context.Context.gradient_embedding`, in closed form ``(p - onehot(argmax p)) ⊗ h``,
kept factored). Its norm grows with the model's uncertainty, its direction with what the sample
looks like, so k-means++ seeding on these vectors picks a batch both uncertain and diverse: the
largest gradient first, then each next one drawn with probability proportional to its squared
distance to the nearest one picked (from the run's generator), as the authors' code does.

Reference: Ash, J. T., Zhang, C., Krishnamurthy, A., Langford, J. & Agarwal, A. (2020). Deep Batch
Active Learning by Diverse, Uncertain Gradient Lower Bounds. International Conference on Learning
Representations (ICLR 2020).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._strategies.active import BatchStrategy
from sslzoo._strategies.diversity import kmeans_pp_seeding

ASH_2020 = ("Ash, J. T., Zhang, C., Krishnamurthy, A., Langford, J. & Agarwal, A. (2020). Deep Batch Active "
            "Learning by Diverse, Uncertain Gradient Lower Bounds. International Conference on Learning "
            "Representations (ICLR 2020)")


class Badge(BatchStrategy):
    """Query the candidates that k-means++ seeding picks among the last layer's gradient embeddings."""

    name = "badge"
    paper = ASH_2020
    summary = "BADGE: k-means++ seeding on last-layer gradient embeddings (uncertain and diverse)"

    def choose(self, ctx: Context, ids: Tensor, k: int) -> Tensor:
        return ids[kmeans_pp_seeding(ctx.gradient_embedding(ids), k, ctx.generator)]


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(Badge)
