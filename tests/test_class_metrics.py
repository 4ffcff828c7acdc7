"""Per-class precision and recall and confusion matrices: measured on the test split at each round's
end, the confusion counts stored in records and precision and recall derived from them
(:meth:`sslzoo._results.record.Record.per_class`), shown by compare and report; records from before them stay
readable."""

from __future__ import annotations

import json
import statistics

import pytest
import torch
from torch import nn

from sslzoo._engine.judge import Judge
from sslzoo._ops import inference
from sslzoo._ops.metrics import class_metrics
from sslzoo._reports.comparison import compare
from sslzoo._reports.reporting import report
from sslzoo._results.record import Record
from tests.tiny_records import moons_records, write_jsonl


def test_precision_and_recall_per_class_from_a_confusion_matrix() -> None:
    # rows: true class, columns: predicted; class 2 is never predicted, class 3 never in the test split
    confusion = [[8, 2, 0, 0], [1, 3, 0, 0], [0, 4, 0, 0], [0, 0, 0, 0]]
    got = class_metrics(confusion)
    assert got["support"] == [10, 4, 4, 0]
    assert got["precision"] == [round(8 / 9, 6), round(3 / 9, 6), None, None]
    assert got["recall"] == [0.8, 0.75, 0.0, None]


def test_the_judges_confusion_counts_give_exactly_its_accuracy(one_thread) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 3))
    x, y = torch.randn(300, 5), torch.randint(0, 3, (300,))
    judge = Judge(torch.zeros(0, dtype=torch.long), y, 3)
    reported = inference.predicted_classes(model, x, chunk=64)
    counts = judge.confusion(reported)
    assert int(counts.sum()) == 300
    predicted = model(x).argmax(1)
    assert torch.equal(reported, predicted)
    assert counts.tolist() == [[int(((y == i) & (predicted == j)).sum()) for j in range(3)] for i in range(3)]
    assert float(counts.trace().double() / 300) == judge.accuracy(reported)


def test_records_carry_classes_and_confusion_at_every_rounds_end_and_per_class_is_derived_from_them() -> None:
    record = moons_records("least_confidence", seeds=1)[0]
    assert record["classes"] == ["0", "1"]
    confusion = record["confusion"]
    assert sum(map(sum, confusion)) == 1000  # moons' test split
    assert confusion[0][0] + confusion[1][1] == round(record["test_accuracy"] * 1000)
    assert "per_class" not in record and Record.from_json(record).per_class() == class_metrics(confusion)
    assert all("confusion" in entry for entry in record["curve"]) and record["curve"][-1]["confusion"] == confusion
    assert len(record["curve"]) == 3  # 10 → 20 → 30 labels


def _old(records: list[dict]) -> list[dict]:
    """Records as sslzoo wrote them before it measured classes."""
    for record in records:
        for key in ("classes", "confusion"):
            record.pop(key)
        for entry in record["curve"]:
            entry.pop("confusion", None)
    return records


def test_compare_shows_each_class_change_and_counts_the_classes_up_and_down(tmp_path) -> None:
    base = moons_records("least_confidence")
    new = moons_records("least_confidence")
    for record in new:  # half the class-0 samples predicted as 1 are now predicted as 0
        confusion = record["confusion"]
        moved = confusion[0][1] // 2
        confusion[0][0], confusion[0][1] = confusion[0][0] + moved, confusion[0][1] - moved

    def change(metric: str, c: int) -> str:
        mean = [statistics.fmean(Record.from_json(r).per_class()[metric][c] for r in records)
                for records in (new, base)]
        return f"{100 * (mean[0] - mean[1]):+.2f}"

    text = compare(base, new).render("plain")
    recall = text[text.index("Recall by class"):].splitlines()
    assert recall[1].split() == ["strategy", "dataset", "0", "1", "up", "/", "down"]
    assert recall[3].split() == ["least_confidence", "moons", change("recall", 0), "+0.00", "1", "/", "0", "of", "2"]
    assert change("recall", 0).startswith("+") and change("recall", 0) != "+0.00"
    precision = text[text.index("Precision by class"):].splitlines()
    assert precision[3].split()[2:4] == [change("precision", 0), change("precision", 1)]
    assert "Recall by class at the end of the runs" in compare(base, new).render("md")
    row = json.loads(compare(base, new).render("json"))["rows"][0]
    assert row["new"]["per_class"]["classes"] == ["0", "1"]
    assert "by class" not in compare(base, base).render("plain")  # no class changed: no table


def test_old_records_without_classes_still_compare_and_report(tmp_path) -> None:
    old = _old(moons_records("least_confidence", "random"))
    assert "by class" not in compare(old, moons_records("least_confidence", "random")).render("plain")
    written = report(write_jsonl(tmp_path / "old.jsonl", old), tmp_path / "report")
    text = written.markdown.read_text(encoding="utf-8")
    assert "Precision and recall by class" not in text and "Against the control group" in text
    assert not any(f.name.startswith("confusion_") for f in written.figures)


def test_the_report_tables_precision_and_recall_by_class_and_draws_confusion_matrices(tmp_path) -> None:
    records = moons_records("least_confidence", "supervised")
    written = report(records, tmp_path)
    text = written.markdown.read_text(encoding="utf-8")
    table = text[text.index("| class |"):].splitlines()
    assert table[0] == ("| class | least_confidence precision | least_confidence recall | supervised precision | "
                        "supervised recall |")
    recall = sum(Record.from_json(r).per_class()["recall"][1] for r in records if r["strategy"] == "supervised") / 2
    assert table[3].startswith("| 1 |") and table[3].rstrip(" |").endswith(f"{100 * recall:.1f} %")
    assert (tmp_path / "confusion_moons.png").is_file()


@pytest.mark.parametrize("fmt", ["plain", "md"])
def test_compare_of_records_of_other_classes_has_no_class_table(fmt: str) -> None:
    base, new = moons_records("least_confidence"), moons_records("least_confidence")
    for record in new:
        record["classes"] = ["left", "right"]
    assert "by class" not in compare(base, new).render(fmt)
