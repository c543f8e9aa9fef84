"""Component registry: maps (kind, name) to a class.

Library modules register their classes at import time with :func:`register`; the composition layer
(``genpo.builders``) exposes every registered class to gin. The registry knows nothing about gin,
torch or any component: it is the bottom layer of the package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", bound=type)

_REGISTRY: dict[str, dict[str, type]] = {}


class RegistryError(KeyError):
    """An unknown kind or name, or a name registered twice."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly instead.
        return str(self.args[0])


def register(kind: str, name: str) -> Callable[[T], T]:
    """Class decorator: register ``cls`` as component ``name`` of ``kind``.

    Registering a different class under a name already taken is an error: two components must never
    shadow each other silently. Re-registering the same class (a module re-imported) is allowed.
    """

    def decorate(cls: T) -> T:
        table = _REGISTRY.setdefault(kind, {})
        existing = table.get(name)
        if existing is not None and _qualified_name(existing) != _qualified_name(cls):
            raise RegistryError(
                f"{kind} {name!r} is already registered to {_qualified_name(existing)}; "
                f"cannot register {_qualified_name(cls)} under the same name"
            )
        table[name] = cls
        cls.registered_kind = kind
        cls.registered_name = name
        return cls

    return decorate


def kinds() -> list[str]:
    """All kinds that have at least one registered component, sorted."""
    return sorted(_REGISTRY)


def names(kind: str) -> list[str]:
    """The registered names of ``kind``, sorted."""
    return sorted(_table(kind))


def get(kind: str, name: str) -> type:
    """The class registered as ``name`` of ``kind``; the error lists the valid names."""
    table = _table(kind)
    if name not in table:
        raise RegistryError(f"unknown {kind} {name!r}; registered {kind} names: {', '.join(sorted(table))}")
    return table[name]


def items() -> list[tuple[str, str, type]]:
    """Every (kind, name, class), sorted by kind then name."""
    return [(kind, name, _REGISTRY[kind][name]) for kind in kinds() for name in names(kind)]


def _table(kind: str) -> dict[str, type]:
    if kind not in _REGISTRY:
        raise RegistryError(f"unknown component kind {kind!r}; registered kinds: {', '.join(kinds())}")
    return _REGISTRY[kind]


def _qualified_name(cls: type) -> str:
    """``module.qualname``: the same for a class re-created by re-importing its module, else distinct."""
    return f"{cls.__module__}.{cls.__qualname__}"
