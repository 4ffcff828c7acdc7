"""Golden records: fixed fast runs whose records a refactor must not change (see ``runs.py``)."""
