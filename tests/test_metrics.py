"""Label-efficiency metrics, difficulty buckets and the pseudo-label tally against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from sslzoo._engine.judge import Judge
from sslzoo._ops.metrics import budget_auc, budget_points, curve_metrics, labels_to_reach
from sslzoo._ops.quality import Tally, difficulty_buckets, pseudo_summary


def curve(*points: tuple[int, float]) -> list[dict]:
    return [{"labels": n, "test_accuracy": acc, "epoch": 5, "epochs": 5} for n, acc in points]


AL = curve((10, 0.5), (20, 0.7), (30, 0.8), (50, 0.9))
# A>B: the budget is met at 30 labels, then three auto-labeling rounds end at 30 as well
THEN = curve((10, 0.5), (20, 0.7), (30, 0.8), (30, 0.9), (30, 0.6), (30, 0.85))


def test_labels_to_reach_is_the_first_label_count_reached():
    assert labels_to_reach(AL, 0.5) == 10
    assert labels_to_reach(AL, 0.75) == 30  # 0.7 at 20 is short, 0.8 at 30 reaches it: never 25
    assert labels_to_reach(AL, 0.9) == 50
    assert labels_to_reach(AL, 0.95) is None


def test_budget_auc_is_the_trapezoid_area_over_the_label_range():
    # (10*(0.5+0.7) + 10*(0.7+0.8) + 20*(0.8+0.9)) / 2 = 30.5, over 40 labels
    assert budget_auc(AL) == pytest.approx(30.5 / 40)
    assert budget_auc(curve((10, 0.6))) is None
    assert budget_auc(curve((10, 0.6), (10, 0.7))) is None  # one label count: no area


def test_repeated_label_counts_are_one_point_the_last_round_at_that_count():
    assert budget_points(THEN) == [(10, 0.5), (20, 0.7), (30, 0.85)]
    # (10*(0.5+0.7) + 10*(0.7+0.85)) / 2 = 13.75 over 20 labels, whatever order the rounds came in
    assert budget_auc(THEN) == pytest.approx(13.75 / 20)
    assert budget_auc(list(reversed(THEN))) != budget_auc(THEN)  # "last" is the curve's order, not sorted
    assert labels_to_reach(THEN, 0.85) == 30 and labels_to_reach(THEN, 0.9) is None  # 0.9 was not kept


def test_mid_round_evaluations_are_not_points():
    mid = [{"labels": 20, "test_accuracy": 0.99, "epoch": 2, "epochs": 5}]
    assert budget_points(AL[:2] + mid) == [(10, 0.5), (20, 0.7)]
    assert labels_to_reach(AL[:2] + mid, 0.9) is None
    assert curve_metrics(AL) == {"labels_to_accuracy": {"0.90": 50, "0.95": None}, "budget_auc": 0.7625}


def test_difficulty_buckets_are_confidence_terciles_most_confident_first():
    confidence = torch.tensor([0.9, 0.1, 0.5, 0.7, 0.3, 0.8])
    # ranks (most confident first): 0.9→0, 0.8→1, 0.7→2, 0.5→3, 0.3→4, 0.1→5; bucket = rank·3 // 6
    assert difficulty_buckets(confidence).tolist() == [0, 2, 1, 1, 2, 0]
    # 4 items: ranks 0..3 → 0, 0, 1, 2; ties keep their order
    assert difficulty_buckets(torch.tensor([0.5, 0.5, 0.5, 0.5])).tolist() == [0, 0, 1, 2]
    assert difficulty_buckets(torch.tensor([0.2])).tolist() == [0]
    assert difficulty_buckets(torch.tensor([])).tolist() == []


def test_the_tally_counts_draws_per_bucket_and_distinct_ids_and_the_judge_scores_them():
    judge = Judge(torch.tensor([0, 1, 0, 1, 0, 1, 0, 1, 0, 1]), torch.zeros(1, dtype=torch.long), 2)
    tally = Tally(torch.device("cpu"), 10, judge.pseudo, key=0)
    # step 1: ids 1, 2, 3 in buckets easy, medium, hard; the hard one wrong
    tally.add(torch.tensor([0, 1, 2], dtype=torch.int8), torch.tensor([1, 2, 3]), torch.tensor([1, 0, 0]))
    tally.mark(torch.tensor([1, 2, 3]))
    # step 2: id 2 again (easy, right) and id 7 (easy, wrong)
    tally.add(torch.tensor([0, 0], dtype=torch.int8), torch.tensor([2, 7]), torch.tensor([0, 0]))
    tally.mark(torch.tensor([2, 7]))
    judge.started({})
    judge.entry({"round": 0, "epoch": 1, "epochs": 1}, torch.zeros(1, dtype=torch.long), tally.counts())
    judge.finish({"pseudo": None})
    assert judge.record["pseudo"] == {
        "count": 5, "ids": 4, "accuracy": 0.6,
        "buckets": {"easy": {"count": 3, "accuracy": round(2 / 3, 6)}, "medium": {"count": 1, "accuracy": 1.0},
                    "hard": {"count": 1, "accuracy": 0.0}}}
    assert pseudo_summary([0, 0, 0], [0, 0, 0], 0)["accuracy"] is None
