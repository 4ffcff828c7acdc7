"""One whole-process workload per hot path of the engine, to time one commit against another.

    python benchmarks/hot_paths.py pl|fixmatch|bald

``pl``: pseudo_label on 12,000 MNIST images and 1000 labels, a supervised warm-up epoch then an
epoch of unlabeled-only steps of 256 (``schedule=step``, the shared prefix); ``fixmatch``: two
FixMatch epochs at 250 labels (batch 32, mu 4); ``bald``: two BALD rounds over 2000 candidates with
20 MC-dropout passes. One intra-op thread, built-in plugins only. Time the process of this script
at two commits in turn (a checkout of each, ``PYTHONPATH`` at its root, e.g. with ``/usr/bin/time``
or hyperfine, alternating the two) and compare the medians.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("SSLZOO_LOAD_PLUGINS", "")

import torch  # noqa: E402

import sslzoo  # noqa: E402

MNIST = {"n_train": 12000, "n_test": 1000}
WORKLOADS = {
    "pl": ("pseudo_label", 1000, {"epochs": 2, "schedule": "step", "warmup": 1, "t1": 1, "t2": 3,
                                  "labeled_every": 50, "unlabeled_batch_size": 256}),
    "fixmatch": ("fixmatch", 250, {"epochs": 2, "batch_size": 32, "mu": 4, "threshold": 0.5}),
    "bald": ("bald", 100, {"epochs": 1, "budget": 120, "query_size": 10, "pool_subset": 2000, "passes": 20}),
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in WORKLOADS:
        sys.exit(f"usage: python {sys.argv[0]} {'|'.join(WORKLOADS)}")
    torch.set_num_threads(1)
    strategy, labels, options = WORKLOADS[sys.argv[1]]
    sslzoo.run(strategy, "mnist", labels=labels, device="cpu", dataset_options=MNIST, options=options)
