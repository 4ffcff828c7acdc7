"""Result records and what is made of them: the record store (:mod:`~sslzoo.results.store`), the
comparison of two sets of records (:mod:`~sslzoo.results.comparison`, ``sslzoo compare``), the
report with its figures (:mod:`~sslzoo.results.reporting`, ``sslzoo report``) and the results page
(:mod:`~sslzoo.results.page`, ``sslzoo results``), sharing one way to group records, write mean ±
std over seeds and render tables (:mod:`~sslzoo.results.formatting`).

The results page's names are reachable here too (``from sslzoo.results import accuracy_rows``).
"""

from __future__ import annotations

from typing import Any

from sslzoo.results import page
from sslzoo.results.comparison import Comparison, compare
from sslzoo.results.page import write_results
from sslzoo.results.reporting import Report, report
from sslzoo.results.store import Loaded, RecordStore, load

__all__ = ["Comparison", "Loaded", "RecordStore", "Report", "compare", "load", "report", "write_results"]


def __getattr__(name: str) -> Any:
    """The results page's other names (``sslzoo.results.accuracy_rows``, ...)."""
    try:
        return getattr(page, name)
    except AttributeError:
        raise AttributeError(f"module 'sslzoo.results' has no attribute {name!r}") from None
