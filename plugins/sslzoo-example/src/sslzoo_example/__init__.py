"""sslzoo-example: PowerBALD stochastic batch acquisition, as a third-party sslzoo plugin."""

from __future__ import annotations

from collections.abc import Callable

import sslzoo
from sslzoo_example.power_bald import PowerBald, PowerBaldOptions, power_sample

__all__ = ["PowerBald", "PowerBaldOptions", "power_sample", "register_strategies"]

SSLZOO_PLUGIN_API = ">=1,<2"  # the sslzoo plugin API this plugin is written for


@sslzoo.hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(PowerBald)
