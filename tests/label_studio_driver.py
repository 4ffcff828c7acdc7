"""Drives a Label Studio server through its Python SDK as a labeling team would: run with the
Python of Label Studio's own environment (see ``tests/label_studio_server.py``).

    python label_studio_driver.py URL TOKEN DIRECTORY

DIRECTORY holds a round's ``label-studio-config.xml`` and ``label-studio-tasks.json`` and
``answers.json`` (item id → class, the labeler's answers; items it leaves out stay unannotated).
The driver creates a project with the config, imports the tasks, annotates them with the
answers, exports the project as JSON into ``export.json`` and prints what the server held as JSON:
the tasks' ids and prediction scores.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from label_studio_sdk import LabelStudio


def main(url: str, token: str, directory: Path) -> None:
    client = LabelStudio(base_url=url, api_key=token)
    config = (directory / "label-studio-config.xml").read_text()
    project = client.projects.create(title="sslzoo round", label_config=config)
    tasks = json.loads((directory / "label-studio-tasks.json").read_text())
    client.projects.import_tasks(id=project.id, request=tasks)
    answers = json.loads((directory / "answers.json").read_text())
    held = {}
    for task in client.tasks.list(project=project.id):
        item = str(task.data["sslzoo_id"])
        held[item] = [p.score for p in client.predictions.list(task=task.id)]
        if item in answers:
            client.annotations.create(id=task.id, result=[{
                "from_name": "label", "to_name": "item", "type": "choices",
                "value": {"choices": [answers[item]]}}])
    exported = client.projects.exports.as_json(project.id)
    (directory / "export.json").write_text(json.dumps(exported))
    print(json.dumps({"scores": held}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
