"""Label Studio interchange: queries out as tasks with the model's pre-annotations, labels back in from
Label Studio's JSON export.

Out: :func:`labeling_config` is the project's labeling interface (the item, an image or its feature
values, and one choice among the classes); :func:`tasks` turns a round's queries into tasks whose
``data`` carries the item and its ``sslzoo_id`` and whose ``predictions`` carry the model's guess
with its confidence as the score (Label Studio shows them as pre-annotations).

In: :func:`read_export` reads both JSON exports of Label Studio, ``JSON`` (tasks with their
annotations; the latest annotation that was not cancelled counts) and ``JSON_MIN`` (one flat object
per annotated task), and finds each task's item by ``data.sslzoo_id``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from sslzoo.errors import SessionError
from sslzoo.labeling.answers import Answer

ID_FIELD = "sslzoo_id"
"""The task data field that names the item (its global id in the session's dataset)."""
FROM_NAME = "label"
"""The name of the choices control in :func:`labeling_config`."""


def labeling_config(classes: Sequence[str], images: bool) -> str:
    """The Label Studio labeling interface: the item (an image, or its feature values as text) and
    a single choice among ``classes``."""
    item = ('  <Image name="item" value="$image"/>' if images else
            '  <Text name="item" value="$features"/>')
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in classes)
    return (f'<View>\n{item}\n  <Choices name="{FROM_NAME}" toName="item" choice="single" showInline="true">\n'
            f"{choices}\n  </Choices>\n</View>\n")


def png_data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI, which Label Studio's Image tag shows without any storage set up."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def tasks(items: Sequence[dict[str, Any]], model_version: str) -> list[dict[str, Any]]:
    """Label Studio tasks for queried items, each ``{"id", "data", "guess", "confidence"}`` (``guess``
    None: no model yet, no pre-annotation). ``data`` holds ``image`` (a URI) or ``features`` (text)."""
    out = []
    for item in items:
        task: dict[str, Any] = {"data": {**item["data"], ID_FIELD: item["id"]}}
        if item["guess"] is not None:
            task["predictions"] = [{
                "model_version": model_version, "score": item["confidence"],
                "result": [{"from_name": FROM_NAME, "to_name": "item", "type": "choices",
                            "value": {"choices": [item["guess"]]}}]}]
        out.append(task)
    return out


def _labeler(value: Any) -> str | None:
    """Who annotated, as Label Studio's exports say it: a user's email, or their numeric id."""
    if isinstance(value, dict):
        value = value.get("email") or value.get("id")
    if value is None or value == "":
        return None
    return f"label-studio user {value}" if isinstance(value, int) else str(value)


def _choice(result: Any, where: str) -> str | None:
    """The one class chosen in an annotation's ``result``, or None when it chose nothing."""
    chosen = [c for r in result if isinstance(r, dict) and r.get("type") == "choices"
              for c in (r.get("value") or {}).get("choices", [])] if isinstance(result, list) else []
    if len(chosen) > 1:
        raise SessionError(f"{where}: the annotation chooses {len(chosen)} classes ({', '.join(map(str, chosen))}); "
                           f"an item takes one class")
    return str(chosen[0]) if chosen else None


def _item_id(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().lstrip("-").isdigit():
        raise SessionError(f"{where}: {ID_FIELD} {value!r} is not a whole number")
    return int(value)


def _full_task(task: dict[str, Any], where: str) -> Answer | None:
    """A task of the ``JSON`` export: its latest annotation that was not cancelled and chose a class."""
    data = task.get("data")
    if not isinstance(data, dict) or ID_FIELD not in data:
        raise SessionError(f"{where}: no data.{ID_FIELD}: only tasks exported by sslzoo "
                           f"(label-studio-tasks.json) can be imported")
    done = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    done.sort(key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""))
    for annotation in reversed(done):
        label = _choice(annotation.get("result"), where)
        if label is not None:
            return Answer(_item_id(data[ID_FIELD], where), label, _labeler(annotation.get("completed_by")),
                          annotation.get("updated_at") or annotation.get("created_at"), where)
    return None


def _min_task(task: dict[str, Any], where: str) -> Answer | None:
    """A task of the ``JSON_MIN`` export: the data fields and each control's value, flat."""
    if ID_FIELD not in task:
        raise SessionError(f"{where}: no {ID_FIELD}: only tasks exported by sslzoo "
                           f"(label-studio-tasks.json) can be imported")
    value = task.get(FROM_NAME)
    if isinstance(value, dict):
        value = value.get("choices")
    if isinstance(value, list):
        if len(value) > 1:
            raise SessionError(f"{where}: the annotation chooses {len(value)} classes; an item takes one class")
        value = value[0] if value else None
    if value in (None, ""):
        return None
    return Answer(_item_id(task[ID_FIELD], where), str(value), _labeler(task.get("annotator")),
                  task.get("updated_at") or task.get("created_at"), where)


def read_export(text: str, path: Path) -> list[Answer]:
    """The labels in a Label Studio JSON (or JSON_MIN) export; tasks nobody annotated are left out."""
    try:
        exported = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SessionError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(exported, list):
        raise SessionError(f"{path}: not a Label Studio export (a JSON {type(exported).__name__}, expected a "
                           f"list of tasks)")
    answers = []
    for number, task in enumerate(exported):
        where = f"{path}: task {task.get('id', number) if isinstance(task, dict) else number}"
        if not isinstance(task, dict):
            raise SessionError(f"{where}: not a Label Studio task (a JSON {type(task).__name__})")
        answer = (_full_task if "annotations" in task or "data" in task else _min_task)(task, where)
        if answer is not None:
            answers.append(answer)
    return answers
