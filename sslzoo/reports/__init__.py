"""What is made of result records: the comparison of two sets of records
(:mod:`~sslzoo.reports.comparison`, ``sslzoo compare``), the report with its figures
(:mod:`~sslzoo.reports.reporting`, ``sslzoo report``) and the results page
(:mod:`~sslzoo.reports.page`, ``sslzoo results``). The records themselves and their store are
:mod:`sslzoo.results`.

The results page's names are reachable here too (``from sslzoo.reports import accuracy_rows``).

May import: :mod:`sslzoo.planning` and below; never labeling or the CLI.
"""
from __future__ import annotations

from typing import Any

from sslzoo.reports import page
from sslzoo.reports.comparison import Comparison, compare
from sslzoo.reports.page import write_results
from sslzoo.reports.reporting import Report, report
from sslzoo.results.store import Loaded, RecordStore, load

__all__ = ["Comparison", "Loaded", "RecordStore", "Report", "compare", "load", "report", "write_results"]


def __getattr__(name: str) -> Any:
    """The results page's other names (``sslzoo.reports.accuracy_rows``, ...)."""
    try:
        return getattr(page, name)
    except AttributeError:
        raise AttributeError(f"module 'sslzoo.reports' has no attribute {name!r}") from None
