"""The supervised baseline: cross-entropy on the labeled set only."""

from __future__ import annotations

from collections.abc import Callable

from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.strategy import Strategy


class Supervised(Strategy):
    """Train on the labeled set only: the baseline every other strategy must beat."""

    name = "supervised"
    family = "baseline"
    paper = "—"
    summary = "cross-entropy on the labeled set; no unlabeled data, no queries"


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(Supervised)
