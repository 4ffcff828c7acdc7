"""The golden runs: every built-in strategy on two-moons, one short MNIST run per family (and the
pseudo-label step schedule whose forward passes share a prefix), and the two kinds of composition,
each on seed 0, and what of their records must stay the same.

Run as a script, this module runs them all in this process and prints one JSON object: the
records by name and ``probe``, a digest of a fixed float32 workload (convolution, matrix products,
softmax, Adam) that tells whether this machine computes bit for bit as the one that recorded them.
``tests/test_golden_records.py`` runs it in a child process with the numerics pinned
(:data:`PINNED`): one thread, MKL's conditional numerical reproducibility, oneDNN and ATen held to
AVX2. ``python -m tests.golden.runs --write`` records ``records.json`` anew; a change to a golden
number is a commit of its own that says why.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

RECORDS = Path(__file__).with_name("records.json")

#: the child's environment: the same float32 numerics on any x86-64 CPU with AVX2
PINNED = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2",
          "ATEN_CPU_CAPABILITY": "avx2", "SSLZOO_LOAD_PLUGINS": ""}

AL = {"epochs": 20, "budget": 30, "query_size": 10}
MOONS: dict[str, tuple[str, dict[str, Any]]] = {
    "supervised": ("supervised", {"epochs": 20}),
    "random": ("random", AL),
    "least_confidence": ("least_confidence", AL),
    "margin": ("margin", AL),
    "entropy": ("entropy", AL),
    "bald": ("bald", AL),
    "mc_entropy": ("mc_entropy", AL),
    "mc_variation_ratios": ("mc_variation_ratios", AL),
    "mc_mean_std": ("mc_mean_std", AL),
    "batchbald": ("batchbald", AL),
    "badge": ("badge", AL),
    "kcenter": ("kcenter", AL),
    "typiclust": ("typiclust", AL),
    "pseudo_label": ("pseudo_label", {"epochs": 20, "t1": 5, "t2": 15, "unlabeled_batch_size": 64}),
    "pseudo_label-step": ("pseudo_label", {"epochs": 6, "schedule": "step", "warmup": 2, "t1": 2, "t2": 6,
                                           "labeled_every": 4, "unlabeled_batch_size": 64}),
    "pseudo_label-threshold": ("pseudo_label", {"epochs": 20, "t1": 5, "t2": 15, "unlabeled_batch_size": 64,
                                                "threshold": 0.55}),
    "self_training": ("self_training", {"epochs": 20, "criterion": "k_best", "k_best": 50, "max_rounds": 3,
                                        "weighting": "confidence"}),
    "fixmatch": ("fixmatch", {"epochs": 40, "threshold": 0.55}),
    "mean_teacher": ("mean_teacher", {"epochs": 20, "rampup_steps": 20}),
    "pi_model": ("pi_model", {"epochs": 20, "rampup_steps": 20}),
    "vat": ("vat", {"epochs": 20, "eps": 0.3, "xi": 0.1, "entmin": True}),
    "label_propagation": ("label_propagation", {"epochs": 20}),
    "label_spreading": ("label_spreading", {"epochs": 20}),
    "entropy+pseudo_label": ("entropy+pseudo_label", {**AL, "t1": 5, "t2": 15, "unlabeled_batch_size": 64}),
    "least_confidence+self_training": ("least_confidence+self_training", AL),
    "margin>self_training": ("margin>self_training", AL),
    "entropy-hinton2012": ("entropy", {**AL, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                                       "recipe": "hinton2012"}),
    "entropy-keras_adam": ("entropy", {**AL, "patience": 2, "recipe": "keras_adam"}),
    "entropy-keras_l2_hidden": ("entropy", {**AL, "weight_decay": 2.5, "recipe": "keras_l2_hidden"}),
}
SMALL_MNIST = {"n_train": 3000, "n_test": 1000}
MNIST_AL = {"epochs": 2, "budget": 120, "query_size": 10, "pool_subset": 500}
MNIST: dict[str, tuple[str, dict[str, Any]]] = {
    "supervised": ("supervised", {"epochs": 2}),
    "pseudo_label": ("pseudo_label", {"epochs": 2, "t1": 0, "t2": 2, "unlabeled_batch_size": 128}),
    "pseudo_label-step": ("pseudo_label", {"epochs": 2, "schedule": "step", "warmup": 1, "t1": 1, "t2": 3,
                                           "labeled_every": 4, "unlabeled_batch_size": 128}),
    "fixmatch": ("fixmatch", {"epochs": 2, "batch_size": 16, "mu": 2, "threshold": 0.15}),
    "self_training-augment": ("self_training", {"epochs": 2, "criterion": "k_best", "k_best": 200,
                                                "max_rounds": 1, "augment": True}),
    "mean_teacher": ("mean_teacher", {"epochs": 2, "rampup_steps": 20}),
    "bald": ("bald", {**MNIST_AL, "passes": 10}),
    "label_propagation": ("label_propagation", {"epochs": 2}),
    "badge": ("badge", MNIST_AL),
    "batchbald": ("batchbald", {**MNIST_AL, "passes": 10}),
}

#: record fields that say when and with what a run was made, not what it computed
UNSTABLE = ("wall_seconds", "versions", "machine")


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """The record without the fields that may change between two runs of the same code, its decision
    boundary (a grid of thousands of numbers) as a digest."""
    kept = {key: value for key, value in record.items() if key not in UNSTABLE}
    if "boundary" in kept:
        kept["boundary"] = hashlib.sha256(json.dumps(kept["boundary"], sort_keys=True).encode()).hexdigest()[:16]
    return kept


def probe() -> str:
    """A digest of a fixed float32 workload: equal on two machines that compute bit for bit alike."""
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 5), nn.ReLU(),
                          nn.Flatten(), nn.Linear(16 * 8 * 8, 64), nn.Tanh(), nn.Linear(64, 10))
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(32, 1, 28, 28, generator=generator).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (32,), generator=generator)
    digest = hashlib.sha256()
    for _ in range(3):
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y) + torch.softmax(logits, 1).log1p().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        digest.update(logits.detach().numpy().tobytes())
    for p in model.parameters():
        digest.update(p.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def record_all() -> dict[str, Any]:
    """Run every golden run; the records by name (``moons/NAME``, ``mnist/NAME``) and the probe."""
    import torch

    import sslzoo

    torch.set_num_threads(1)
    records: dict[str, Any] = {}
    for group, runs, extra in (("moons", MOONS, {"labels": 10}),
                               ("mnist", MNIST, {"labels": 100, "dataset_options": SMALL_MNIST})):
        for name, (strategy, options) in runs.items():
            (record,) = sslzoo.run(strategy, group, seed=0, device="cpu", options=options, **extra)
            records[f"{group}/{name}"] = comparable(record)
    return {"probe": probe(), "records": records}


def pinned_environment() -> dict[str, str]:
    """This process's environment with the numerics pinned (:data:`PINNED`)."""
    return {**os.environ, **PINNED}


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        import subprocess

        root = Path(__file__).resolve().parents[2]
        out = subprocess.run([sys.executable, "-m", "tests.golden.runs"], cwd=root, env=pinned_environment(),
                             check=True, capture_output=True, text=True).stdout
        RECORDS.write_text(json.dumps(json.loads(out), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    else:
        print(json.dumps(record_all()))
