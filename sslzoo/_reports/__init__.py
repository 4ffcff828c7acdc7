"""What is made of result records: the comparison of two sets of records
(:mod:`~sslzoo._reports.comparison`, ``sslzoo compare``), the report with its figures
(:mod:`~sslzoo._reports.reporting`, ``sslzoo report``), the results page
(:mod:`~sslzoo._reports.page`, ``sslzoo results``) and the stopping study all three show
(:mod:`~sslzoo._reports.stopping`). The records themselves and their store are :mod:`sslzoo._results`.

The results page's names are reachable here too (``from sslzoo._reports import accuracy_rows``).

May import: :mod:`sslzoo._planning` and below; never labeling or the CLI.
"""
from __future__ import annotations

from typing import Any

from sslzoo._reports import page
from sslzoo._reports.comparison import Comparison, compare
from sslzoo._reports.page import write_results
from sslzoo._reports.reporting import Report, report
from sslzoo._results.store import Loaded, RecordStore, load

__all__ = ["Comparison", "Loaded", "RecordStore", "Report", "compare", "load", "report", "write_results"]


def __getattr__(name: str) -> Any:
    """The results page's other names (``sslzoo._reports.accuracy_rows``, ...)."""
    try:
        return getattr(page, name)
    except AttributeError:
        raise AttributeError(f"module 'sslzoo._reports' has no attribute {name!r}") from None
