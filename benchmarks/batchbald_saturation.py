"""Where BatchBALD's joint mutual information stops growing with the batch, for T dropout passes.

    python benchmarks/batchbald_saturation.py --passes 20 100 --out benchmarks/results/batchbald_saturation.json

With T consistent MC-dropout passes the posterior is T equally weighted weight samples, so the joint
mutual information of any batch with the weights is at most log T nats (the entropy of the weight
sample's index). The greedy pick therefore gains nothing measurable once the batch's joint MI nears
log T: later picks are chosen by the sampled estimator's noise. This script measures where that
happens on the batch presets' setting: `gal_cnn` trained on 20 class-balanced MNIST labels (seed 0,
50 epochs of Adam, as `batch-mnist`), a random 2000 of the pool as candidates, a batch of 100 built by
`sslzoo._ops.joint_entropy.batchbald` with 10,000 joint configurations (the scaled presets' setting); it
prints the joint MI after picks 1, 2, 3, 5, 10, 20, 50 and 100 beside log T.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import speedlib
import torch

from sslzoo._ops.joint_entropy import batchbald

PICKS = (1, 2, 3, 5, 10, 20, 50, 100)


def joint_mi_by_pick(passes: list[int], candidates: int, samples: int, seed: int) -> dict[int, dict[str, object]]:
    """For each T: log T and the greedy batch's joint MI estimate after each of ``PICKS``."""
    ctx, chosen = speedlib.batch_round(candidates, epochs=50, seed=seed)
    out: dict[int, dict[str, object]] = {}
    for t in passes:
        probs = ctx.predict_mc(chosen, t, consistent=True).double()
        _, mi = batchbald(probs, max(PICKS), samples, torch.Generator().manual_seed(seed))
        out[t] = {"log_T": round(math.log(t), 3),
                  "joint_mi_after_pick": {k: round(float(mi[k - 1]), 3) for k in PICKS}}
        print(f"T={t}: log T = {math.log(t):.3f}; joint MI after picks {PICKS}:",
              [round(float(mi[k - 1]), 3) for k in PICKS], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passes", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--candidates", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = joint_mi_by_pick(args.passes, args.candidates, args.samples, args.seed)
    if args.out:
        args.out.write_text(json.dumps({"candidates": args.candidates, "samples": args.samples, "seed": args.seed,
                                        "by_passes": result}, indent=1) + "\n")


if __name__ == "__main__":
    main()
