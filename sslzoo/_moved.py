"""Import paths of the modules that moved into subpackages, kept for one minor version.

Before the public face (``sslzoo``) existed, plugins imported the Strategy API by module path
(``from sslzoo.active import UncertaintyStrategy``). Those paths still import, with a
:class:`DeprecationWarning` naming the public import, until plugin API 1.1. Only the paths
plugins were taught are kept; every other internal module moved without an alias.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

MOVED = {
    "sslzoo.active": "sslzoo._strategies.active",
    "sslzoo.context": "sslzoo._contract.context",
    "sslzoo.strategy": "sslzoo._contract.strategy",
    "sslzoo.picking": "sslzoo._ops.picking",
    "sslzoo.registry": "sslzoo._contract.registry",
    "sslzoo.plugins": "sslzoo._contract.plugins",
}
"""Old module path -> where it lives now."""


class MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds a :data:`MOVED` path and loads the module it moved to, warning once per import."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> ModuleSpec | None:
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        warnings.warn(f"{spec.name} moved to {MOVED[spec.name]} (internal); import its public names from "
                      "sslzoo itself, e.g. `from sslzoo import UncertaintyStrategy`. The old path goes in "
                      "plugin API 1.1.", DeprecationWarning, stacklevel=2)
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """The module is the moved one, already executed."""


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(finder, MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedFinder())
