"""The plugin API's version, the version ranges plugins declare against it, and deprecated aliases.

``PLUGIN_API`` is a semantic version of what plugins build on (``sslzoo.__all__``, ``sslzoo.testing``,
the hooks): a new major version breaks plugins, a new minor version adds to the API and may deprecate
a name, which keeps working, with a ``DeprecationWarning``, until the next minor version.

A plugin states the versions it was written for in its entry-point module::

    SSLZOO_PLUGIN_API = ">=1,<2"

A range is comma-separated clauses, each an operator (``>=``, ``>``, ``<=``, ``<``, ``==``, ``!=``)
and a version ``MAJOR[.MINOR[.PATCH]]``; a version alone, ``"1.0"``, means that version or a later
one of the same major version. ``<`` and ``>`` compare with the missing parts as 0 (``<2`` is
``<2.0.0``); ``==`` and ``!=`` compare only the parts given (``==1`` is any 1.x.y).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, NamedTuple

PLUGIN_API = "1.0.0"
"""The plugin API this sslzoo provides."""
DECLARATION = "SSLZOO_PLUGIN_API"
"""The attribute of a plugin's entry-point module that holds the range of plugin APIs it fits."""
MIGRATION_PAGE = "docs/plugins/migrating.md"
"""Where each change of the plugin API is explained, for a plugin written against an earlier one."""

_VERSION = re.compile(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?")
_CLAUSE = re.compile(r"\s*(>=|<=|==|!=|>|<)?\s*(\S+?)\s*")
_COMPARE: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    ">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b,
}


def parse_version(text: str) -> tuple[int, ...]:
    """``"1.2"`` → ``(1, 2)``: the parts of a version ``MAJOR[.MINOR[.PATCH]]`` as given.

    Raises ``ValueError`` for anything else."""
    match = _VERSION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is no version MAJOR[.MINOR[.PATCH]]")
    return tuple(int(part) for part in match.groups() if part is not None)


def _padded(version: tuple[int, ...]) -> tuple[int, ...]:
    return (version + (0, 0, 0))[:3]


def _holds(operator: str, version: tuple[int, ...], bound: tuple[int, ...]) -> bool:
    if operator in ("==", "!="):
        return (version[:len(bound)] == bound) == (operator == "==")
    if operator:
        return _COMPARE[operator](version, _padded(bound))
    return bound[0] == version[0] and version >= _padded(bound)  # a version alone: it, or later of its major


def fits(requirement: str, version: str = PLUGIN_API) -> bool:
    """Whether plugin API ``version`` lies in the range ``requirement`` (see the module's docstring).

    Raises ``ValueError`` for a requirement that is no range."""
    if not requirement.strip():
        raise ValueError(f"{requirement!r} is no version range such as '>=1,<2'")
    have = _padded(parse_version(version))
    clauses = []
    for text in requirement.split(","):
        match = _CLAUSE.fullmatch(text)
        if not match:
            raise ValueError(f"{requirement!r} is no version range such as '>=1,<2'")
        try:
            clauses.append((match.group(1) or "", parse_version(match.group(2))))
        except ValueError:
            raise ValueError(f"{requirement!r} is no version range such as '>=1,<2'") from None
    return all(_holds(operator, have, bound) for operator, bound in clauses)


class Alias(NamedTuple):
    """A deprecated name: what replaced it, the object it still gives, and the plugin API that
    deprecated it; it is removed in the next minor version."""

    new: str
    obj: Any
    since: str

    def removed_in(self) -> str:
        """The plugin API without the alias: the minor version after :attr:`since`."""
        major, minor = _padded(parse_version(self.since))[:2]
        return f"{major}.{minor + 1}"


def deprecated_alias(module: str, name: str, aliases: Mapping[str, Alias]) -> Any:
    """A module ``__getattr__``'s answer for ``name``: the object a deprecated alias stands for, with a
    ``DeprecationWarning`` that names the new name and the migration page.

    Raises ``AttributeError`` for a name that is no alias, as a module does."""
    if name not in aliases:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    alias = aliases[name]
    warnings.warn(f"{module}.{name} is deprecated since plugin API {alias.since} and removed in "
                  f"{alias.removed_in()}: use {module}.{alias.new} (see {MIGRATION_PAGE})", DeprecationWarning,
                  stacklevel=3)
    return alias.obj


def misfit(declared: object) -> str | None:
    """Why a plugin declaring ``declared`` (its ``SSLZOO_PLUGIN_API``) does not fit this plugin API;
    None when it fits or declares nothing."""
    if declared is None:
        return None
    try:
        fit = fits(declared) if isinstance(declared, str) else None
    except ValueError:
        fit = None
    if fit is None:
        return f"its {DECLARATION} = {declared!r} is no version range such as '>=1,<2'"
    return None if fit else f"it needs sslzoo plugin API {declared} and this sslzoo provides {PLUGIN_API}"


def missing_name(exc: BaseException) -> str | None:
    """What an import failure says when it is an sslzoo module or name that no longer exists, the mark
    of a plugin written against an earlier plugin API; None for any other failure."""
    def ours(module: object) -> bool:
        return isinstance(module, str) and (module == "sslzoo" or module.startswith("sslzoo."))

    if isinstance(exc, ImportError) and ours(exc.name):
        return exc.msg.replace(f" ({exc.path})", "")  # the name, not where this sslzoo is installed
    if isinstance(exc, AttributeError):
        obj = getattr(exc, "obj", None)
        if ours(obj.__name__ if isinstance(obj, ModuleType) else getattr(obj, "__module__", None)):
            return str(exc)
    return None
