"""Component registry: maps (kind, name) to a class.

Library modules register their classes at import time with :func:`register`; :func:`discover` imports
every module of a package so that adding a component is adding a file (``genpo.components`` and
``genpo.envs`` discover their modules when imported). Every kind has a contract (:func:`require_contract`:
a base class or a ``typing.Protocol``) and may declare class attributes its components must state
explicitly (:func:`require_attribute`); both are checked when each class registers. The
composition layer (``genpo.builders``) exposes every registered class to gin. The registry knows nothing
about gin, torch or any component: it is the bottom layer of the package.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Collection
from typing import Protocol, TypeVar

T = TypeVar("T", bound=type)

_REGISTRY: dict[str, dict[str, type]] = {}
# kind -> attribute -> (required type, why it is required): see require_attribute.
_REQUIRED: dict[str, dict[str, tuple[type, str]]] = {}
# kind -> the base class or Protocol its components satisfy: see require_contract.
_CONTRACTS: dict[str, type] = {}


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
        _check_contract(kind, name, cls)
        _check_required_attributes(kind, name, cls)
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


def require_attribute(kind: str, attribute: str, attribute_type: type, why: str) -> None:
    """Every class registered as ``kind`` must set ``attribute`` (an ``attribute_type``) in its own body.

    Inheriting it does not count: the attribute states a property of the class itself (e.g. whether a
    coupling's log-det depends on the state), and a subclass that changes the behaviour it describes must
    not silently inherit its parent's answer. Checked for every class registered later and for those
    already registered; ``why`` ends the error message.
    """
    _REQUIRED.setdefault(kind, {})[attribute] = (attribute_type, why)
    for name, cls in _REGISTRY.get(kind, {}).items():
        _check_required_attributes(kind, name, cls)


def require_contract(kind: str, contract: type) -> None:
    """Every class registered as ``kind`` satisfies ``contract``, checked when it registers.

    A ``typing.Protocol`` is checked structurally: the class defines every method and property the
    protocol declares (inherited ones count; a member left abstract, or bound to a private placeholder
    such as ``nn.Module``'s unimplemented ``forward``, does not). Attributes the protocol only annotates
    are set per instance and are checked by the kind's contract tests. Any other class is a base class:
    the component subclasses it and leaves none of its abstract methods unimplemented. Checked for every
    class registered later and for those already registered.
    """
    _CONTRACTS[kind] = contract
    for name, cls in _REGISTRY.get(kind, {}).items():
        _check_contract(kind, name, cls)


def contract(kind: str) -> type | None:
    """The contract of ``kind`` (see :func:`require_contract`), or None when it has none."""
    return _CONTRACTS.get(kind)


def contract_members(contract: type) -> list[str]:
    """The methods and properties a ``typing.Protocol`` declares (its own and its protocol bases'), sorted."""
    members: set[str] = set()
    for base in contract.__mro__:
        if base in (Protocol, object) or not getattr(base, "_is_protocol", False):
            continue
        members.update(
            name for name, value in vars(base).items() if not name.startswith("_") and (callable(value) or isinstance(value, property))
        )
    return sorted(members)


def required_attributes(kind: str) -> dict[str, type]:
    """``attribute -> type`` that every class registered as ``kind`` must set in its own body."""
    return {attribute: attribute_type for attribute, (attribute_type, _) in _REQUIRED.get(kind, {}).items()}


def discover(package: str, *, exclude: Collection[str] = ()) -> list[str]:
    """Import every module of ``package`` and of its subpackages, so that their ``@register`` runs.

    ``exclude`` names modules (relative to ``package``, e.g. ``"isaaclab"``) that must only be imported on
    use, such as adapters for optional extras; naming one that does not exist is an error, so an exclusion
    cannot outlive its module. Returns the imported module names, sorted.
    """
    excluded = {f"{package}.{name}" for name in exclude}
    imported: list[str] = []
    found: set[str] = set()

    def walk(parent: str) -> None:
        for info in pkgutil.iter_modules(importlib.import_module(parent).__path__, prefix=f"{parent}."):
            found.add(info.name)
            if info.name in excluded:
                continue
            importlib.import_module(info.name)
            imported.append(info.name)
            if info.ispkg:
                walk(info.name)

    walk(package)
    unknown = excluded - found
    if unknown:
        raise RegistryError(f"discover({package!r}): excluded modules do not exist: {', '.join(sorted(unknown))}")
    return sorted(imported)


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


def _check_contract(kind: str, name: str, cls: type) -> None:
    contract = _CONTRACTS.get(kind)
    if contract is None:
        return
    culprit = f"{kind} {name!r} ({_qualified_name(cls)})"
    if getattr(contract, "_is_protocol", False):
        missing = [member for member in contract_members(contract) if not _implements(cls, member)]
        if missing:
            raise RegistryError(f"{culprit} does not satisfy {contract.__name__}: it lacks {', '.join(missing)}")
        return
    if not (isinstance(cls, type) and issubclass(cls, contract)):
        raise RegistryError(f"{culprit} must subclass {_qualified_name(contract)}")
    abstract = sorted(getattr(cls, "__abstractmethods__", ()))
    if abstract:
        raise RegistryError(f"{culprit} leaves abstract methods of {contract.__name__} unimplemented: {', '.join(abstract)}")


def _implements(cls: type, member: str) -> bool:
    """Whether ``cls`` has ``member``, neither abstract nor a private placeholder function (a public name
    bound to a function named ``_...``, as ``nn.Module.forward`` is until a subclass defines it)."""
    for base in cls.__mro__:
        if member in vars(base):
            value = vars(base)[member]
            if getattr(value, "__isabstractmethod__", False) or getattr(base, "_is_protocol", False):
                return False
            function_name = getattr(value, "__name__", member)
            return not (function_name.startswith("_") and not member.startswith("_"))
    return False


def _check_required_attributes(kind: str, name: str, cls: type) -> None:
    for attribute, (attribute_type, why) in _REQUIRED.get(kind, {}).items():
        declared = vars(cls).get(attribute, _MISSING)
        if declared is _MISSING:
            raise RegistryError(
                f"{kind} {name!r} ({_qualified_name(cls)}) must set the class attribute "
                f"{attribute}: {attribute_type.__name__} in its own body ({why})"
            )
        if not isinstance(declared, attribute_type):
            raise RegistryError(
                f"{kind} {name!r} ({_qualified_name(cls)}): class attribute {attribute} must be a "
                f"{attribute_type.__name__}, got {declared!r} ({why})"
            )


_MISSING = object()


def _qualified_name(cls: type) -> str:
    """``module.qualname``: the same for a class re-created by re-importing its module, else distinct."""
    return f"{cls.__module__}.{cls.__qualname__}"
