"""The control group's replay and a session's report.

:func:`replay` trains a labeling session's control learner (:mod:`sslzoo.labeling.control_queries`: random
queries, the strategy's protocol) at every training of the session, on the schedule the session
kept: its training N learns from the labels the strategy's training N could have had, restricted
to the start and the draws of the rounds asked before it, with the session's seed, model and
training options (with ``retrain=warm`` it goes on from its own training N-1). It reads only labels
people gave. :func:`report` turns both learners' trainings into result records (test accuracy
against the labels each trained on) and writes ``sslzoo report``'s report of them, which states the
strategy's efficiency boost over its control group as it does for ``sslzoo bench --control``.

Crash safety is the session's: ``control.jsonl`` is a journal, one line per replayed training,
appended whole and fsync-ed; ``control-model.pt`` is replaced whole and carries its line, so a kill
between the two loses nothing; the replay holds the session, so a second writer is refused. A
replay killed midway goes on from the training it had not finished.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import torch

from sslzoo._engine.catalog import create_strategy
from sslzoo._files import Journal, replace_file
from sslzoo._reports.reporting import Report
from sslzoo._reports.reporting import report as write_report
from sslzoo._results.record import SCHEMA_VERSION
from sslzoo._results.store import RECORDS_FILE
from sslzoo.errors import SessionError
from sslzoo.labeling.control_queries import CONTROL_FILE, CONTROL_MODEL_FILE, holdings
from sslzoo.labeling.holdout import evaluated_on
from sslzoo.labeling.label_log import labeled
from sslzoo.labeling.session import Session, check_strategy, now

REPORT_DIR = "report"
"""Where ``sslzoo label report`` writes by default, inside the session."""


def replay(session: Session) -> list[dict[str, Any]]:
    """Replay ``session``'s control group at every training it has not replayed yet; the lines of all
    the trainings it replayed (``{"event": "control", "training", "at", "batches", "labels",
    "labels_per_class", "test_accuracy", ...}``, as the session's training lines)."""
    group = session.control
    if group is None:
        raise SessionError(f"{session.directory}: this session has no control group; start a session with "
                           f"--control F to measure the strategy against random queries")
    with session.writing():
        journal = Journal(session.directory / CONTROL_FILE, SessionError)
        lines = journal.read().entries
        path = session.directory / CONTROL_MODEL_FILE
        if path.exists():
            last = torch.load(path, map_location="cpu", weights_only=True)["line"]
            if not lines or last["training"] > lines[-1]["training"]:  # killed between the model and its line
                journal.append(last)
                lines.append(last)
        state = session.state()
        trainings = [(at, e) for at, e in enumerate(state.history) if e.get("event") == "train"]
        todo = trainings[len(lines):]
        if todo:
            data = session._data()
            for at, entry in todo:
                batches = state.batches[:entry["batches"]]
                labels = holdings(state.history[:at], batches).control_labels(labeled(batches))
                strategy = create_strategy(group.strategy, session.registry, **group.options, query_size=1,
                                           budget=len(labels) + 1)
                run = session._run(strategy, group.strategy, data, batches, labels, set(), group.options)
                session.notify(f"control group: training {entry['training']} of {trainings[-1][1]['training']} on "
                               f"{len(labels)} labels, {run.training.epochs} epochs")
                numbers, weights = session._fit(run, strategy, labels, entry["training"], path if lines else None)
                line = {"event": "control", "training": entry["training"], "at": now(), "batches": entry["batches"],
                        **numbers}
                buffer = io.BytesIO()
                torch.save({"state_dict": weights, "line": line}, buffer)
                replace_file(path, buffer.getvalue(), SessionError)
                journal.append(line)
                lines.append(line)
        return lines


def _record(session: Session, name: str, family: str, options: dict[str, Any],
            entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A result record of one learner of ``session``: its trainings (``entries``) as the curve."""
    spec, last = session.spec, entries[-1]
    return {"schema": SCHEMA_VERSION, "strategy": name, "family": family, "options": options,
            "dataset": spec["dataset"], "preset": None,
            "dataset_options": spec["dataset_options"], "model": spec["model"], "seed": spec["seed"],
            "labels": entries[0]["labels"], "oracle_labels": last["labels"], "test_accuracy": last["test_accuracy"],
            "classes": session.classes, "confusion": last["confusion"],
            "curve": [{"round": n, "labels": e["labels"], "test_accuracy": e["test_accuracy"],
                       "confusion": e["confusion"]} for n, e in enumerate(entries)],
            "wall_seconds": round(sum(e["wall_seconds"] for e in entries), 3), "device": spec["device"],
            "session": str(session.directory), "evaluated_on": evaluated_on(spec.get("holdout"))}


def session_records(session: Session, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``session``'s strategy and, with the control group's replayed ``lines``, its control group as result
    records: test accuracy against the labels each learner trained on, at each training."""
    spec = session.spec
    trainings = [e for e in session.state().history if e.get("event") == "train"]
    if not trainings:
        raise SessionError(f"{session.directory}: no training yet; label the first queries and run "
                           f"`sslzoo label train {session.directory}`")
    if any(e["test_accuracy"] is None for e in trainings):
        raise SessionError(f"{session.directory}: dataset {spec['dataset']!r} has no labeled test split and the "
                           f"session holds no items out, so its trainings have no accuracy to report")
    strategy = check_strategy(spec["strategy"], spec["options"], session.registry)
    records = [_record(session, spec["strategy"], strategy.family, spec["resolved_options"], trainings)]
    if session.control is not None:
        control = session.control
        family = create_strategy(control.strategy, session.registry, **control.options).family
        records.append(_record(session, control.strategy, family, control.options, lines))
    return records


def _notes(session: Session, lines: list[dict[str, Any]]) -> list[str]:
    """What the report's reader needs to know about a session's records."""
    spec = session.spec
    holdout = spec.get("holdout")
    measured = (f"Accuracy is measured on {evaluated_on(holdout)}: labels of the data set aside at the start (its "
                f"test split has no labels), never trained on." if holdout else
                f"Accuracy is measured on the labeled test split of {spec['dataset']}.")
    notes = [f"Labeling session `{session.directory}`: {spec['strategy']} on {spec['dataset']}. {measured}"]
    group = session.control
    if group is not None:
        status = session.status()["control"]
        notes.append(f"Its control group drew {group.fraction:g} of each round's queries at random: "
                     f"{status['asked']} control items asked of the labelers beside the queries (the cost of the "
                     f"comparison), {status['labels']} of them labeled, and {status['drawn'] - status['asked']} "
                     f"draws the strategy had asked about too. The strategy's model never trained on a control "
                     f"label; {group.strategy} trained on the shared start and its draws only, at each of the "
                     f"session's {len(lines)} trainings.")
    if session.stop_option:
        stop = session.stopped()
        notes.append(f"Its stopping criterion `{session.stop_option}` fired after training {stop['training']} "
                     f"({stop['labels']} labels): {stop['why']}." if stop else
                     f"Its stopping criterion `{session.stop_option}` had not fired.")
    return notes


def report(session: Session, out_dir: str | os.PathLike | None = None) -> Report:
    """Replay ``session``'s control group (if it has one) where it has not been, then write its records
    (``records.jsonl``) and their report (``report.md`` and figures: :func:`sslzoo._reports.reporting.report`)
    into ``out_dir`` (default: the session's ``report/``)."""
    out = Path(out_dir) if out_dir is not None else session.directory / REPORT_DIR
    with session.writing():
        lines = replay(session) if session.control is not None else []
        records = session_records(session, lines)
        notes = _notes(session, lines)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SessionError(f"{out}: cannot create the report directory: {exc.strerror or exc}") from None
    replace_file(out / RECORDS_FILE, "".join(json.dumps(r) + "\n" for r in records).encode(), SessionError)
    return write_report(out / RECORDS_FILE, out, notes=notes)
