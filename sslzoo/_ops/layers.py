"""Layers the built-in models are made of, beyond torch's own."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class HintonDropout(nn.Dropout):
    """Dropout in its original form (Hinton, Srivastava, Krizhevsky, Sutskever & Salakhutdinov 2012,
    "Improving neural networks by preventing co-adaptation of feature detectors", arXiv:1207.0580):
    in training each unit is zeroed with probability ``p`` and the kept units pass *unscaled*; at
    test time every unit passes, multiplied by ``1 - p`` (their outgoing weights scaled down), which
    is the training output's expectation.

    ``nn.Dropout`` is the inverted form (kept units scaled by ``1 / (1 - p)`` in training, nothing at
    test time). Both represent the same functions (the next layer's weights times ``1 - p``), but
    with the inverted form a step of the same learning rate moves the next layer's outputs
    ``1 / (1 - p)²`` times as far (4× at p = 0.5): a learning rate tuned for the original form, such
    as Lee (2013)'s 1.5, is too large for the inverted one.

    It is an ``nn.Dropout`` computed with ``F.dropout``, so MC-dropout (:mod:`sslzoo._ops.dropout`)
    finds it and makes it stochastic: a pass computes the training form.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.dropout(input, self.p, self.training, self.inplace) * (1.0 - self.p)
