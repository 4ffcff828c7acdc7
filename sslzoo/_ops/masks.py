"""Dropout masks for MC-dropout passes, drawn from raw random words with exact keep probabilities.

torch's own dropout draws one uniform float per element (``bernoulli_``), which costs far more
than the arithmetic it gates. Here an element is dropped iff a uniform ``U = 0.u1u2u3…`` (its
random bits) is below ``p``, decided by comparing the bits of ``U`` with ``p``'s binary expansion
from the top, 64 elements per 64-bit word (bit-sliced): bit ``j`` of every element of a word
comes from one random word; an element whose bit differs from ``p``'s is decided (``U < p``:
dropped, ``U > p``: kept), one whose bits all equal ``p``'s so far is still tied. Every
:data:`COMPACT_EVERY` bits only the words that still hold a tied element get further random
words (lazily: after 8 bits about 22 % of the words, after 16 bits 0.1 %), so ``p = 0.5, 0.25,
0.75`` cost exactly one, two and two random bits per element and any other ``p`` about ten. A
float ``p`` has a finite binary expansion (it is a dyadic rational), so the comparison ends at
its last 1-bit: an element still tied there has ``U ≥ p`` and is kept. The keep probability is
therefore exactly ``1 - p`` for every ``p``, not only multiples of 1/256.

Random words are full-range 64-bit draws (``random_(-2**63, None)``: every bit uniform) from the
run's ``torch.Generator``, so masks are reproducible under the run's seed and independent across
elements, samples and passes, on CPU and CUDA alike. Packed keep bits become a float mask of
``0`` or ``1 / (1 - p)`` through a 256 × 8 lookup table (one ``index_select``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

COMPACT_EVERY = 8
"""Bits of ``p`` compared for every word before only the words with a tied element go on."""

BATCH_WORDS = 2**15
"""Keep words (64 masks each) drawn at once: the comparison's fixed costs are paid per batch."""


def binary_expansion(p: float) -> list[int]:
    """The bits of ``p`` (0 ≤ p < 1) after the binary point, up to its last 1-bit (exact: a float is
    a dyadic rational). ``binary_expansion(0.25) == [0, 1]``; ``[]`` for 0."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"a dropout probability below 1 is needed for its bit expansion, got {p}")
    numerator, denominator = float(p).as_integer_ratio()
    length = denominator.bit_length() - 1
    return [(numerator >> (length - 1 - j)) & 1 for j in range(length)]


def random_words(n: int, generator: torch.Generator) -> Tensor:
    """``n`` int64 words of 64 uniform random bits each from ``generator`` (on its device)."""
    return torch.empty(n, dtype=torch.int64, device=generator.device).random_(-2**63, None, generator=generator)


def keep_words(n: int, p: float, generator: torch.Generator) -> Tensor:
    """``n`` int64 words whose 64·n bits are independent keep bits, each 1 with probability exactly
    ``1 - p`` (see the module docstring for how)."""
    device = generator.device
    less = torch.zeros(n, dtype=torch.int64, device=device)  # decided U < p: dropped
    tied = torch.full((n,), -1, dtype=torch.int64, device=device)
    where: Tensor | None = None  # which words ``less``/``tied`` hold when not all of them
    active_less, active_tied = less, tied
    for j, bit in enumerate(binary_expansion(p)):
        if j and j % COMPACT_EVERY == 0:
            open_words = active_tied.nonzero().squeeze(1)
            if where is not None:
                less[where] = active_less
            if open_words.numel() == 0:
                return less.bitwise_not_()
            where = open_words if where is None else where[open_words]
            active_less, active_tied = active_less[open_words], active_tied[open_words]
        zeros = random_words(active_tied.numel(), generator).bitwise_not_()  # set where U's bit j is 0
        if bit:  # p's bit is 1: a tied element with a 0 here has U < p (dropped); with a 1 it stays tied
            zeros &= active_tied
            active_less |= zeros
            active_tied ^= zeros
        else:  # p's bit is 0: a tied element with a 1 here has U > p (kept); with a 0 it stays tied
            active_tied &= zeros
    if where is not None:
        less[where] = active_less
    return less.bitwise_not_()  # still tied after p's last 1-bit: U ≥ p, kept


class KeepBits:
    """A stream of keep bits for one dropout probability, drawn in batches of up to :data:`BATCH_WORDS` words."""

    def __init__(self, p: float, generator: torch.Generator) -> None:
        self.p, self.generator = p, generator
        self.buffer = torch.empty(0, dtype=torch.uint8, device=generator.device)
        self.used = 0

    def take(self, elements: int) -> Tensor:
        """Bytes (uint8) holding the next ``elements`` keep bits, element ``8 i + b`` in bit ``b`` of
        byte ``i``; the last byte's spare bits are never used again."""
        n = math.ceil(elements / 8)
        if self.used + n > self.buffer.numel():  # batches double up to BATCH_WORDS: few draws for few masks
            words = max(math.ceil(n / 8), min(BATCH_WORDS, self.buffer.numel() // 4))
            self.buffer, self.used = keep_words(words, self.p, self.generator).view(torch.uint8), 0
        out = self.buffer[self.used:self.used + n]
        self.used += n
        return out


def bit_table(low: float, high: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(256, 8) table: row ``b`` holds ``high`` where bit ``k`` of byte ``b`` is set, else ``low``."""
    bits = (torch.arange(256, device=device).unsqueeze(1) >> torch.arange(8, device=device)) & 1
    return torch.where(bits.bool(), high, low).to(dtype)


def unpack(table: Tensor, packed: Tensor, elements: int, out: Tensor) -> Tensor:
    """``table`` looked up bit by bit for the bytes of ``packed``, into ``out`` (``len(packed)`` × 8):
    the first ``elements`` values."""
    return torch.index_select(table, 0, packed.int(), out=out).view(-1)[:elements]
