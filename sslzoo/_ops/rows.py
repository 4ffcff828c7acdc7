"""Arithmetic on the rows of a large matrix (a pool's embedding) in blocks that stay in cache: no
temporary the size of the matrix, no gather into fresh memory."""

from __future__ import annotations

import torch
from torch import Tensor

BLOCK_ELEMENTS = 2**20
"""Elements of a block of rows (4 MB in float32: it stays in cache)."""


def sq_norms(x: Tensor) -> Tensor:
    """``|x_i|²`` (N,), in blocks of rows (no temporary the size of ``x``)."""
    out = x.new_empty(x.shape[0])
    step = max(1, BLOCK_ELEMENTS // max(1, x.shape[1]))
    for start in range(0, x.shape[0], step):
        out[start:start + step] = x[start:start + step].square().sum(1)
    return out


def rows_dot(x: Tensor, rows: Tensor, y: Tensor) -> Tensor:
    """``x[rows] @ y`` (len(rows),), gathering the rows block by block into one small buffer: a gather
    into fresh memory of a tenth of a large ``x`` costs as much as a pass over all of it (the new pages),
    a block that stays in cache a fraction of that."""
    out = x.new_empty(rows.numel())
    step = max(1, BLOCK_ELEMENTS // max(1, x.shape[1]))
    block = x.new_empty(min(step, rows.numel()), x.shape[1])
    for start in range(0, rows.numel(), step):
        part = rows[start:start + step]
        gathered = torch.index_select(x, 0, part, out=block[:part.numel()])
        torch.mv(gathered, y, out=out[start:start + part.numel()])
    return out
