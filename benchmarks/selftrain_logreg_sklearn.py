"""The reference pipeline of ``selftrain-logreg-mnist1000``, run with scikit-learn on sslzoo's split.

    pip install -e ".[bench]"
    python benchmarks/selftrain_logreg_sklearn.py --protocol faithful --seeds 3 \\
        --out benchmarks/results/selftrain-logreg-mnist1000-faithful/scikit-learn
    python benchmarks/selftrain_logreg_sklearn.py --protocol clean --seeds 3 \\
        --out benchmarks/results/selftrain-logreg-mnist1000/scikit-learn

The source (Anirudh S, "Pseudo-Labeling to deal with small datasets", section 6, and its notebook)
fits scikit-learn's one-vs-rest ``SGDClassifier(loss="log_loss", alpha=1e-5)`` (one sample per step,
the ``optimal`` learning-rate schedule, to a tolerance) on L2-normalised pixels, PCA to 50
dimensions and degree-2 polynomial features (1326). This script runs that pipeline on exactly the
split sslzoo uses for the same seed (``sslzoo._datasets.split.initial_labels``: 1000 class-balanced labeled
images; the other 59,000 training images are the pool; the official test set), under one of two
protocols:

* ``faithful`` (the notebook's loop): PCA fitted once on the 1000 labeled images; the pool is
  shuffled once and each round takes the next 2360 images (4 % of it, without replacement: not the
  most confident), keeps those whose confidence (the largest one-vs-rest normalised probability) is
  outside the band 0.4-0.6, and refits from scratch. The notebook fits 25 times and labels a 25th
  sample that no fit ever sees, so its final model is the 25th fit: the labeled set plus 24 rounds.
* ``clean`` (the ``selftrain-logreg-mnist1000`` preset's protocol): each round accepts the most
  confident 4 % of the remaining pool (rounded up), 25 rounds, and refits from scratch with the PCA
  refitted on the labeled and pseudo-labeled images.

Each seed writes two records (``supervised``: the first fit alone; ``self_training``: the whole
loop) in the shape of sslzoo's own, with ``implementation`` = ``scikit-learn`` and the ``command``
that made them, appended to ``OUT/records.jsonl`` as soon as the seed is done; ``sslzoo results``
shows them beside sslzoo's rows of the same preset. With ``--resume``, seeds already in OUT are skipped.
"""

from __future__ import annotations

import argparse
import math
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import sklearn
from sklearn.decomposition import PCA
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, PolynomialFeatures

import sslzoo
from sslzoo._datasets.mnist import load_mnist
from sslzoo._datasets.split import initial_labels
from sslzoo._results.store import RecordStore


@dataclass(frozen=True)
class Protocol:
    """One self-training protocol of the pipeline (see the module docstring)."""

    preset: str
    pca_fit: str  # "initial": once on the labeled images; "training": on each fit's training set
    criterion: str  # "random": the next random chunk of the pool; "sample_rate": the most confident
    sample_rate: float
    rounds: int  # rounds of acceptance, each followed by a fit
    band: tuple[float, float] | None  # reject confidences inside [low, high]


PROTOCOLS = {
    "faithful": Protocol("selftrain-logreg-mnist1000-faithful", "initial", "random", 0.04, 24, (0.4, 0.6)),
    "clean": Protocol("selftrain-logreg-mnist1000", "training", "sample_rate", 0.04, 25, None),
}
ALPHA = 1e-5


@dataclass
class Split:
    x: np.ndarray  # (60000, 784) float64 pixels / 255
    y: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labeled: np.ndarray  # global ids
    pool: np.ndarray


def sslzoo_split(seed: int, labels: int = 1000, n_train: int = 0, n_test: int = 0) -> Split:
    """MNIST and the labeled set exactly as ``sslzoo bench --preset selftrain-logreg-mnist1000`` has them."""
    x_train, y_train, x_test, y_test = load_mnist()
    n_train, n_test = n_train or len(y_train), n_test or len(y_test)
    x_train, y_train, x_test, y_test = x_train[:n_train], y_train[:n_train], x_test[:n_test], y_test[:n_test]
    labeled = initial_labels(y_train, labels, seed, "balanced").numpy()
    pool = np.setdiff1d(np.arange(len(y_train)), labeled)
    flat = lambda t: t.reshape(len(t), -1).numpy().astype(np.float64) / 255.0  # noqa: E731
    return Split(flat(x_train), y_train.numpy(), flat(x_test), y_test.numpy(), labeled, pool)


def features(fit_on: np.ndarray, seed: int):
    """Normalizer (L2 per image), PCA(50) fitted on ``fit_on``, PolynomialFeatures(2): 1326 features."""
    return make_pipeline(Normalizer(), PCA(n_components=50, random_state=seed), PolynomialFeatures(2)).fit(fit_on)


def classifier(seed: int, jobs: int) -> SGDClassifier:
    return SGDClassifier(loss="log_loss", alpha=ALPHA, n_jobs=jobs, random_state=seed)


def accept(protocol: Protocol, proba: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of the drawn samples (rows of ``proba``) the round accepts, and their pseudo-labels."""
    confidence, guess = proba.max(axis=1), classes[proba.argmax(axis=1)]
    if protocol.criterion == "random":
        keep = np.ones(len(proba), dtype=bool)
        if protocol.band is not None:
            keep = (confidence < protocol.band[0]) | (confidence > protocol.band[1])
    else:
        keep = np.zeros(len(proba), dtype=bool)
        keep[np.argsort(-confidence, kind="stable")[:math.ceil(protocol.sample_rate * len(proba))]] = True
    return keep, guess


def run_seed(protocol: Protocol, seed: int, jobs: int, data: Split, command: str = "") -> list[dict[str, Any]]:
    """The first fit (supervised) and the self-training loop of one seed, as two records."""
    started = time.perf_counter()
    labeled_y = data.y[data.labeled]
    feats = features(data.x[data.labeled], seed)
    x_pool = feats.transform(data.x[data.pool])  # recomputed each round when the PCA is refitted
    undrawn = np.arange(len(data.pool))  # positions in the pool not yet drawn (random) or accepted
    if protocol.criterion == "random":
        np.random.RandomState(seed).shuffle(undrawn)
    chunk = int(len(data.pool) * protocol.sample_rate)
    pseudo, pseudo_y = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=labeled_y.dtype)
    curve: list[dict[str, Any]] = []
    records = []
    termination = "max_rounds"
    model = classifier(seed, jobs)  # refitted every round; round 0's fit is what round 1 draws with
    for rnd in range(protocol.rounds + 1):
        if rnd > 0:
            drawn = undrawn[:chunk] if protocol.criterion == "random" else undrawn
            if drawn.size == 0:
                termination = "pool_empty"
                break
            keep, guess = accept(protocol, model.predict_proba(x_pool[drawn]), model.classes_)
            if not keep.any():
                termination = "nothing_selected"
                break
            undrawn = undrawn[chunk:] if protocol.criterion == "random" else drawn[~keep]
            pseudo, pseudo_y = np.concatenate([pseudo, drawn[keep]]), np.concatenate([pseudo_y, guess[keep]])
            if protocol.pca_fit == "training":
                feats = features(np.concatenate([data.x[data.labeled], data.x[data.pool[pseudo]]]), seed)
                x_pool = feats.transform(data.x[data.pool])
        train_x = np.concatenate([feats.transform(data.x[data.labeled]), x_pool[pseudo]])
        model = classifier(seed + 1000 * rnd, jobs).fit(train_x, np.concatenate([labeled_y, pseudo_y]))
        accuracy = float((model.predict(feats.transform(data.x_test)) == data.y_test).mean())
        right = pseudo_y == data.y[data.pool[pseudo]]
        curve.append({"round": rnd, "epoch": int(model.n_iter_), "epochs": int(model.n_iter_),
                      "labels": len(data.labeled), "pseudo_labels": len(pseudo),
                      "pseudo_accuracy": round(float(right.mean()), 4) if len(right) else None,
                      "test_accuracy": round(accuracy, 4)})
        print(f"seed {seed} round {rnd}: {100 * accuracy:.2f} %, {len(pseudo)} pseudo-labels, "
              f"{model.n_iter_} epochs, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        if rnd == 0:
            records.append(record("supervised", protocol, seed, curve[:1], "single_round",
                                  time.perf_counter() - started, data, command))
    records.append(record("self_training", protocol, seed, curve, termination, time.perf_counter() - started, data,
                          command))
    return records


def record(strategy: str, protocol: Protocol, seed: int, curve: list[dict[str, Any]], termination: str,
           wall: float, data: Split, command: str) -> dict[str, Any]:
    """A record in the shape of sslzoo's, marked as scikit-learn's, with the ``command`` that made it."""
    options = {"loss": "log_loss", "alpha": ALPHA, "learning_rate": "optimal", "multiclass": "one-vs-rest"}
    if strategy == "self_training":
        options.update(asdict(protocol))
        options.pop("preset")
    last = curve[-1]
    return {
        "strategy": strategy, "family": "baseline" if strategy == "supervised" else "ssl",
        "implementation": "scikit-learn", "command": command, "options": options, "dataset": "mnist",
        "preset": protocol.preset, "dataset_options": {"data_dir": None, "n_train": 0, "n_test": 0, "scale": "unit"},
        "model": "Normalizer + PCA(50) + PolynomialFeatures(2) + SGDClassifier", "seed": seed,
        "split": {"how": "balanced", "exclude_classes": []}, "labels": len(data.labeled),
        "oracle_labels": len(data.labeled), "test_accuracy": last["test_accuracy"], "termination": termination,
        "curve": curve, "pseudo": {"count": last["pseudo_labels"], "accuracy": last["pseudo_accuracy"]},
        "wall_seconds": round(wall, 3), "device": "cpu",
        "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__,
                     "sslzoo": sslzoo.__version__, "python": platform.python_version()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="faithful")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds")
    parser.add_argument("--jobs", type=int, default=1, help="SGDClassifier n_jobs (one-vs-rest classes in parallel)")
    parser.add_argument("--out", required=True, help="directory: records.jsonl is appended there")
    parser.add_argument("--resume", action="store_true", help="skip the seeds already in OUT")
    args = parser.parse_args(argv)
    command = "python benchmarks/selftrain_logreg_sklearn.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    protocol = PROTOCOLS[args.protocol]
    store = RecordStore(args.out)
    done = {(r["strategy"], r["seed"]) for r in store.load().records} if args.resume else set()
    for seed in range(args.seed, args.seed + args.seeds):
        if ("self_training", seed) in done:
            continue
        for rec in run_seed(protocol, seed, args.jobs, sslzoo_split(seed), command):
            store.append(rec)
            print(f"{rec['strategy']:<14} seed {seed}: {100 * rec['test_accuracy']:.2f} % "
                  f"({rec['pseudo']['count']} pseudo-labels, {rec['wall_seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
