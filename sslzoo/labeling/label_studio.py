"""Label Studio interchange: queries out as tasks with the model's pre-annotations, labels back in from
Label Studio's JSON export.

Out: :func:`labeling_config` is the project's labeling interface (the item, an image or its feature
values, and one choice among the classes); :func:`tasks` turns a round's queries into tasks whose
``data`` carries the item and its ``sslzoo_id`` and whose ``predictions`` carry the model's guess
with its confidence as the score (Label Studio shows them as pre-annotations).

In: :func:`read_export` reads both JSON exports of Label Studio, ``JSON`` (tasks with their
annotations; the latest annotation that was not cancelled counts) and ``JSON_MIN`` (one flat object
per annotated task), and finds each task's item by ``data.sslzoo_id``. Every field it reads is
checked against the type Label Studio's export gives it (``annotations`` and ``result`` lists,
``was_cancelled`` a boolean, ``choices`` a list of class names, times as text, ...): a field of
another type is a one-line :class:`~sslzoo.errors.SessionError` naming the task and the field, never
a label read wrong or a task dropped.
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


_KINDS = {dict: "an object", list: "a list", str: "text", int: "a whole number", bool: "true or false",
          float: "a number", type(None): "null"}


def _json_kind(value: Any) -> str:
    """What a JSON value is, in words: "an object", "a list", "text ('10')", ..."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (true or false)"
    kind = next((name for t, name in _KINDS.items() if type(value) is t), type(value).__name__)
    return f"{kind} ({value!r})" if isinstance(value, (str, int, float)) else kind


def _field(container: dict[str, Any], key: str, kinds: tuple[type, ...], where: str, path: str) -> Any:
    """``container[key]`` (None when absent), a SessionError naming the task and the field when it is
    there but of none of ``kinds`` (a bool is no whole number)."""
    value = container.get(key)
    if value is None or (isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)):
        return value
    wanted = " or ".join(_KINDS[k] for k in kinds)
    raise SessionError(f"{where}: field {path} is {_json_kind(value)}, expected {wanted} (Label Studio's export "
                       f"format)")


def _labeler(container: dict[str, Any], key: str, where: str, path: str) -> str | None:
    """Who annotated, as Label Studio's exports say it: a user's email, or their numeric id."""
    value = _field(container, key, (int, str, dict), where, path)
    if isinstance(value, dict):
        value = _field(value, "email", (str,), where, f"{path}.email") or _field(value, "id", (int,), where,
                                                                                  f"{path}.id")
    if value is None or value == "":
        return None
    return f"label-studio user {value}" if isinstance(value, int) else str(value)


def _time(container: dict[str, Any], where: str, path: str) -> str | None:
    """When it was annotated: ``updated_at``, else ``created_at`` (ISO 8601 text)."""
    updated = _field(container, "updated_at", (str,), where, f"{path}updated_at")
    created = _field(container, "created_at", (str,), where, f"{path}created_at")
    return updated or created


def _choices(value: Any, where: str, path: str) -> list[str]:
    """The class names of a choices control's value: a list of text."""
    if not isinstance(value, list):
        raise SessionError(f"{where}: field {path} is {_json_kind(value)}, expected a list of class names "
                           f"(Label Studio's export format)")
    for index, choice in enumerate(value):
        if not isinstance(choice, str):
            raise SessionError(f"{where}: field {path}[{index}] is {_json_kind(choice)}, expected a class name "
                               f"(text)")
    return value


def _choice(annotation: dict[str, Any], where: str, path: str) -> str | None:
    """The one class chosen in an annotation's ``result``, or None when it chose nothing."""
    result = _field(annotation, "result", (list,), where, f"{path}.result") or []
    chosen: list[str] = []
    for index, region in enumerate(result):
        at = f"{path}.result[{index}]"
        if not isinstance(region, dict):
            raise SessionError(f"{where}: field {at} is {_json_kind(region)}, expected an object")
        if _field(region, "type", (str,), where, f"{at}.type") != "choices":
            continue
        value = _field(region, "value", (dict,), where, f"{at}.value") or {}
        chosen += _choices(value.get("choices", []), where, f"{at}.value.choices")
    if len(chosen) > 1:
        raise SessionError(f"{where}: the annotation chooses {len(chosen)} classes ({', '.join(chosen)}); an item "
                           f"takes one class")
    return chosen[0] if chosen else None


def _item_id(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().lstrip("-").isdigit():
        raise SessionError(f"{where}: {ID_FIELD} {value!r} is not a whole number")
    return int(value)


def _full_task(task: dict[str, Any], where: str) -> Answer | None:
    """A task of the ``JSON`` export: its latest annotation that was not cancelled and chose a class."""
    data = _field(task, "data", (dict,), where, "data")
    if data is None or ID_FIELD not in data:
        raise SessionError(f"{where}: no data.{ID_FIELD}: only tasks exported by sslzoo "
                           f"(label-studio-tasks.json) can be imported")
    item = _item_id(data[ID_FIELD], where)
    done = []
    for index, annotation in enumerate(_field(task, "annotations", (list,), where, "annotations") or []):
        path = f"annotations[{index}]"
        if not isinstance(annotation, dict):
            raise SessionError(f"{where}: field {path} is {_json_kind(annotation)}, expected an object")
        if not _field(annotation, "was_cancelled", (bool,), where, f"{path}.was_cancelled"):
            done.append((_time(annotation, where, f"{path}.") or "", index, annotation))
    for at, index, annotation in sorted(done, key=lambda entry: entry[:2], reverse=True):
        path = f"annotations[{index}]"
        label = _choice(annotation, where, path)
        if label is not None:
            return Answer(item, label, _labeler(annotation, "completed_by", where, f"{path}.completed_by"),
                          at or None, where)
    return None


def _min_task(task: dict[str, Any], where: str) -> Answer | None:
    """A task of the ``JSON_MIN`` export: the data fields and each control's value, flat."""
    if ID_FIELD not in task:
        raise SessionError(f"{where}: no {ID_FIELD}: only tasks exported by sslzoo "
                           f"(label-studio-tasks.json) can be imported")
    value = _field(task, FROM_NAME, (str, list, dict), where, FROM_NAME)
    if isinstance(value, (list, dict)):
        chosen = _choices(value, where, FROM_NAME) if isinstance(value, list) else \
            _choices(value.get("choices", []), where, f"{FROM_NAME}.choices")
        if len(chosen) > 1:
            raise SessionError(f"{where}: the annotation chooses {len(chosen)} classes ({', '.join(chosen)}); an item "
                               f"takes one class")
        value = chosen[0] if chosen else None
    if value in (None, ""):
        return None
    return Answer(_item_id(task[ID_FIELD], where), value, _labeler(task, "annotator", where, "annotator"),
                  _time(task, where, ""), where)


def read_export(text: str, path: Path) -> list[Answer]:
    """The labels in a Label Studio JSON (or JSON_MIN) export; tasks nobody annotated are left out."""
    try:
        exported = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SessionError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise SessionError(f"{path}: JSON nested too deeply to be a Label Studio export") from None
    if not isinstance(exported, list):
        raise SessionError(f"{path}: not a Label Studio export (a JSON {type(exported).__name__}, expected a "
                           f"list of tasks)")
    answers = []
    for number, task in enumerate(exported):
        if not isinstance(task, dict):
            raise SessionError(f"{path}: task {number}: not a Label Studio task ({_json_kind(task)}, expected an "
                               f"object)")
        where = f"{path}: task {number}"
        where = f"{path}: task {_field(task, 'id', (int, str), where, 'id') or number}"
        answer = (_full_task if "annotations" in task or "data" in task else _min_task)(task, where)
        if answer is not None:
            answers.append(answer)
    return answers
