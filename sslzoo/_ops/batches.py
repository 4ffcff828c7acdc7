"""How an epoch cuts the labeled set into batches: the samples a pass draws and its last batch.

By default an epoch's labeled pass is one shuffled pass over the labeled set, cut into batches of
``batch_size`` with a smaller last batch, as PyTorch's ``DataLoader`` and Keras's ``fit`` do. Two
training options change it, as some sources train:

* ``samples_per_epoch`` S, when more than the ``n`` labeled samples: the pass draws S samples with
  repetition, ``randperm(S) % n``, so that each labeled sample comes ⌊S/n⌋ or ⌈S/n⌉ times (the
  lowest ids the extra time): BatchBALD's ``RandomFixedLengthSampler`` (Kirsch, van Amersfoort &
  Gal 2019, ``src/random_fixed_length_sampler.py`` of github.com/BlackHC/BatchBALD; its MNIST runs
  draw 5056 samples an epoch). Where sslzoo differs: with S at most n, that sampler walks the labeled
  set in order, unshuffled; sslzoo makes its ordinary shuffled pass.
* ``last_batch``: ``keep`` the last partial batch, ``drop`` it (a pass shorter than one batch stays
  one batch, so that a round always trains), or split the pass into ``even`` batches, as many as
  ``keep`` makes, whose sizes differ by at most 1 (so that 130 labels in batches of 128 are two
  batches of 65, not 128 and 2).
"""

from __future__ import annotations

import math

import torch

LAST_BATCH = ("keep", "drop", "even")
"""The allowed values of the training option ``last_batch``."""


def pass_length(n: int, samples_per_epoch: int) -> int:
    """How many samples a labeled pass over ``n`` labeled samples draws."""
    return max(n, samples_per_epoch) if n else 0


def pass_order(n: int, samples_per_epoch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A labeled pass's positions in the labeled set (of ``n``): a shuffle of them, or, when
    ``samples_per_epoch`` is more than ``n``, that many positions drawn with repetition."""
    if samples_per_epoch <= n:
        return torch.randperm(n, generator=generator, device=device)
    return torch.randperm(samples_per_epoch, generator=generator, device=device) % n


def pass_bounds(length: int, batch_size: int, last_batch: str = "keep") -> list[tuple[int, int]]:
    """The ``(start, stop)`` of each batch of a pass of ``length`` samples."""
    batches = math.ceil(length / batch_size)
    if last_batch == "even" and batches:
        size, bigger = divmod(length, batches)
        edges = [b * size + min(b, bigger) for b in range(batches + 1)]
        return list(zip(edges[:-1], edges[1:]))
    if last_batch == "drop" and length >= batch_size:
        batches = length // batch_size
    return [(b * batch_size, min((b + 1) * batch_size, length)) for b in range(batches)]
