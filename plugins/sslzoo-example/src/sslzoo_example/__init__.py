"""sslzoo-example: information density (Settles & Craven 2008), as a third-party sslzoo plugin."""

from __future__ import annotations

from collections.abc import Callable

import sslzoo
from sslzoo_example.information_density import InformationDensity, InformationDensityOptions, information_density

__all__ = ["InformationDensity", "InformationDensityOptions", "information_density", "register_strategies"]

SSLZOO_PLUGIN_API = ">=1,<2"  # the sslzoo plugin API this plugin is written for


@sslzoo.hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(InformationDensity)
