"""Expected predictive information gain: ``epig``.

BALD asks how much a label would tell about the model's parameters; much of that information may
be about inputs nobody will ever predict on. EPIG asks how much it would tell about the
predictions on *target inputs* x_* drawn from where the model will be used:
``EPIG(x) = E_{x_*}[I(y; y_* | x, x_*)] = H[p(y|x)] + E_{x_*} H[p(y_*|x_*)] - E_{x_*} H[p(y, y_*|x, x_*)]``,
with the joint ``p(y, y_*|x, x_*) = mean_k p(y|x, θ_k) p(y_*|x_*, θ_k)`` over K parameter samples.

Each round ``targets`` (default 100, the authors' ``n_target_samples``) target inputs are drawn
without replacement from the unlabeled pool with the run's generator: the paper's setting when no
separate target distribution is given, x_* ~ p_pool. Each chunk of candidates goes through
``passes`` *consistent* MC-dropout passes together with the targets
(:meth:`sslzoo._contract.context.Context.predict_mc` with ``consistent=True``: pass k is one sample
θ_k of the weights for the candidates and the targets alike, as the authors' ``estimate_epig_batch``
runs ``torch.cat((inputs_pool, inputs_targ))`` with ``independent=False``), and is scored by the
authors' matrix-product estimator (``epig_from_probs_using_matmul``), in float64.

Where sslzoo differs from the authors' code: one set of targets serves the whole round (their
loader draws a fresh target batch per pool batch), so that every candidate is scored against the
same x_*; and a score that rounding pushes below 0 is clamped to 0 (theirs only warns). Cost per
round: (candidates + targets × chunks) × passes forward passes and candidates × C² × targets ×
passes multiply-adds for the joint, linear in the pool.

Reference: Bickford Smith, F., Kirsch, A., Farquhar, S., Gal, Y., Foster, A. & Rainforth, T. (2023).
Prediction-Oriented Bayesian Active Learning. Proceedings of the 26th International Conference on
Artificial Intelligence and Statistics (AISTATS 2023), PMLR 206:7331–7348.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._strategies.active import MC_SCORE_ELEMENTS, MCDropoutOptions, MCDropoutStrategy

BICKFORD_SMITH_2023 = ("Bickford Smith, F., Kirsch, A., Farquhar, S., Gal, Y., Foster, A. & Rainforth, T. (2023). "
                       "Prediction-Oriented Bayesian Active Learning. Proceedings of the 26th International "
                       "Conference on Artificial Intelligence and Statistics (AISTATS 2023), PMLR 206:7331–7348")


def _entropy(p: Tensor) -> Tensor:
    """Entropy in nats of each row of ``p`` (..., C)."""
    return -torch.xlogy(p, p).sum(dim=-1)


def epig_scores(pool: Tensor, targets: Tensor) -> Tensor:
    """EPIG of each pool input given the target inputs, from probabilities of the same K weight samples.

    ``pool``: ``(N, C, K)``, ``targets``: ``(M, C, K)`` (pass k of both from one sample of the
    weights). ``H[mean_k p(y|x)] + mean_* H[mean_k p(y_*|x_*)] - mean_* H[p(y, y_*|x, x_*)]``, the
    joint a ``(N, C, M·C)`` matrix product; float64, clamped at 0. Returns ``(N,)``.
    """
    pool, targets = pool.double(), targets.double()
    m, c, k = targets.shape
    joint = pool @ targets.permute(2, 0, 1).reshape(k, m * c) / k  # (N, C, M·C)
    joint_entropy = -torch.xlogy(joint, joint).sum(dim=(1, 2)) / m
    gain = _entropy(pool.mean(dim=2)) + _entropy(targets.mean(dim=2)).mean() - joint_entropy
    return gain.clamp_min(0.0)


@dataclass
class EpigOptions(MCDropoutOptions):
    """MC-dropout options plus the number of target inputs (the authors' default, 100)."""

    targets: int = field(default=100, metadata={
        "min": 1, "max": 100_000, "help": "target inputs x_* drawn from the unlabeled pool each round "
                                          "(all of it when it holds fewer)"})


class Epig(MCDropoutStrategy):
    """Query the ids whose labels would tell most about the predictions on target inputs from the pool."""

    name = "epig"
    paper = BICKFORD_SMITH_2023
    summary = "EPIG: expected information gain about the predictions on target inputs drawn from the pool"
    Options: ClassVar[type] = EpigOptions
    options: EpigOptions

    def target_ids(self, ctx: Context) -> Tensor:
        """This round's target inputs: ``targets`` pool ids drawn without replacement."""
        pool = ctx.pool_ids()
        perm = torch.randperm(pool.numel(), generator=ctx.generator, device=pool.device)
        return pool[perm[:self.options.targets]]

    def score(self, ctx: Context, ids: Tensor) -> Tensor:
        targets = self.target_ids(ctx).to(ids.device)
        m, c, passes = targets.numel(), max(1, ctx.num_classes), self.options.passes
        chunk = max(1, MC_SCORE_ELEMENTS // (2 * c * max(passes, c * m)))  # float64 joints: twice the bytes
        out = []
        for start in range(0, ids.numel(), chunk):
            part = ids[start:start + chunk]
            probs = ctx.predict_mc(torch.cat([part, targets]), passes, consistent=True)
            out.append(epig_scores(probs[:part.numel()], probs[part.numel():]).float())
        return torch.cat(out) if out else torch.empty(0, device=ids.device)


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(Epig)
