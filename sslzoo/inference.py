"""Batched inference: class probabilities, MC-dropout passes and test accuracy.

Everything runs in large chunks under ``torch.inference_mode()`` (or ``no_grad`` when the
result feeds a training step) and stays on the device. MC-dropout turns on the dropout
layers only, never ``model.train()`` (which would also change batch-norm), and computes the
deterministic layers before a ``Sequential`` model's first dropout layer once per sample.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

from sslzoo.errors import TrainingError

DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                 nn.FeatureAlphaDropout)
CHUNK = 4096
MC_CHUNK_ELEMENTS = 32 * 2**20  # activations per chunk of T stochastic passes (~128 MB in fp32)

#: what forward passes compute in: "auto" is bf16 autocast on CUDA and float32 on the CPU; "bf16"
#: and "fp32" ask for one on every device (bf16 changes the numbers).
Precision = Literal["auto", "fp32", "bf16"]


@contextlib.contextmanager
def eval_mode(model: nn.Module, dropout: bool = False) -> Iterator[None]:
    """Evaluation mode (optionally with the dropout layers stochastic); restores the previous modes."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    if dropout:
        for m in model.modules():
            if isinstance(m, DROPOUT_TYPES):
                m.train()
    try:
        yield
    finally:
        for m, training in modes.items():
            m.training = training


ACTIVATIONS = ("softmax", "sigmoid")


def output_activation(model: nn.Module) -> str:
    """How ``model``'s outputs score the classes: its ``output_activation`` attribute ("softmax" or
    "sigmoid"), "softmax" when it declares none. Class probabilities are the softmax of the outputs
    either way (a sigmoid model's argmax and ranking are the same)."""
    activation = getattr(model, "output_activation", "softmax")
    if activation not in ACTIVATIONS:
        raise TrainingError(f"the model declares output_activation={activation!r}; allowed: {', '.join(ACTIVATIONS)}")
    return activation


def autocast(device: torch.device, precision: Precision = "auto") -> contextlib.AbstractContextManager:
    """bf16 autocast for ``precision`` "bf16", and for "auto" on CUDA; nothing otherwise (float32).

    On the CPU bf16 pays where the matrix units take it natively (avx512_bf16, AMX); the same code
    path otherwise.
    """
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def probabilities(model: nn.Module, x: torch.Tensor, ids: torch.Tensor, grad_free: str = "inference",
                  chunk: int = CHUNK, precision: Precision = "auto") -> torch.Tensor:
    """Softmax outputs (k, C) for ``x[ids]``, dropout off. ``grad_free``: "inference" or "no_grad"."""
    guard = torch.inference_mode() if grad_free == "inference" else torch.no_grad()
    out = []
    with guard, eval_mode(model), autocast(x.device, precision):
        for start in range(0, ids.numel(), chunk):
            out.append(torch.softmax(model(x[ids[start:start + chunk]]).float(), dim=1))
    if not out:
        with guard:
            return torch.empty(0, 0, device=x.device)
    return torch.cat(out)


def split_at_dropout(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(deterministic prefix, stochastic rest) of a Sequential model; (identity, model) otherwise."""
    if isinstance(model, nn.Sequential):
        for i, layer in enumerate(model):
            if isinstance(layer, DROPOUT_TYPES) or any(isinstance(m, DROPOUT_TYPES) for m in layer.modules()):
                return model[:i], model[i:]
    return nn.Identity(), model


def mc_probabilities(model: nn.Module, x: torch.Tensor, ids: torch.Tensor, passes: int,
                     precision: Precision = "auto") -> torch.Tensor:
    """Softmax outputs (k, C, T) of ``passes`` stochastic forward passes with dropout on.

    The layers before the first dropout run once per sample; the rest runs for all T passes in
    one batch, in chunks bounded by ``MC_CHUNK_ELEMENTS`` activations.
    """
    prefix, rest = split_at_dropout(model)
    if ids.numel() == 0:
        return torch.empty(0, 0, passes, device=x.device)
    with torch.inference_mode(), eval_mode(model):
        probe = prefix(x[ids[:1]])
        per_sample, classes = max(1, probe[0].numel()), rest(probe).shape[-1]
    chunk = max(1, min(CHUNK, MC_CHUNK_ELEMENTS // (per_sample * passes)))
    # One preallocated output written chunk by chunk: no list of pieces to concatenate (which
    # doubled the output's memory and fragmented the heap when scoring a large pool).
    out = torch.empty(ids.numel(), classes, passes, device=x.device)
    with torch.inference_mode(), eval_mode(model, dropout=True), autocast(x.device, precision):
        for start in range(0, ids.numel(), chunk):
            h = prefix(x[ids[start:start + chunk]])
            k = h.shape[0]
            repeated = h.unsqueeze(0).expand(passes, *h.shape).reshape(passes * k, *h.shape[1:])
            logits = rest(repeated).float().reshape(passes, k, -1)
            out[start:start + k] = torch.softmax(logits, dim=2).permute(1, 2, 0)
    return out


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = CHUNK,
             precision: Precision = "auto") -> torch.Tensor:
    """Top-1 accuracy on (x, y) as a 0-d tensor on the device (no host sync)."""
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    with torch.inference_mode(), eval_mode(model), autocast(x.device, precision):
        for start in range(0, x.shape[0], chunk):
            logits = model(x[start:start + chunk])
            correct += (logits.argmax(dim=1) == y[start:start + chunk]).sum()
    return correct.double() / max(1, x.shape[0])
