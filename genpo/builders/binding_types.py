"""Check gin-bound values against the type annotations of the configurables they bind.

gin binds whatever literal it parses; a wrong type (``coupling.genpo.p = 'abc'``) only fails deep in
training with a long traceback. :func:`check_binding_types` runs once after parsing and turns the first
such mismatch into one line naming the binding, the value, the expected type and where it was bound:

    gin binding genpo.trainer.steps_per_env = 'x' (genpo/gin/tasks/pendulum.gin:16): expected int, got str

Only what can be judged without doubt is judged: int, float (an int is fine), bool (never for int or
float, nor an int for bool), str, None / Optional / ``X | None``, Union, Literal, tuple / list /
Sequence (a gin list or tuple either way; elements checked), dict / Mapping. References (``@x``, ``@x()``)
are skipped; macros (``%m``) and constants are resolved. Annotations that cannot be checked (Callable,
Any, type variables, other classes such as ``nn.Module`` or ``torch.device``, unresolvable names) accept
any value, as do values of types gin's parser never produces (objects bound from Python).
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import numbers
import os
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import gin
from gin import config_parser

_LITERAL_TYPES = (bool, int, float, complex, str, bytes, type(None), tuple, list, dict)
_SEQUENCE_ORIGINS = (
    tuple,
    list,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
    collections.abc.Collection,
    collections.abc.Iterable,
)
_MAPPING_ORIGINS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
_UNRESOLVED = object()  # a macro without a value: skipped
_hints_cache: dict[Any, dict[str, Any]] = {}


class _Mismatch(NamedTuple):
    scope: str
    selector: str
    arg_name: str
    value: Any
    expected: Any


def check_binding_types(config_files: Sequence[str] = (), bindings: Sequence[str] = ()) -> None:
    """Raise ValueError (one line) for the first bound value whose type contradicts its annotation.

    ``config_files`` and ``bindings`` are what was just parsed; they are re-read (only when a mismatch
    is found) to name the file and line of the offending binding, or ``--gin binding``.
    """
    mismatches = list(_mismatches())
    if not mismatches:
        return
    first = mismatches[0]
    where = _binding_locations(config_files, bindings).get((first.scope, first.selector, first.arg_name))
    given_selector, location = where if where else (first.selector, "not bound in the parsed config")
    name = f"{first.scope}/{given_selector}" if first.scope else given_selector
    resolved = _resolve(first.value)
    got = _type_name(type(resolved))
    if resolved is not first.value:
        got += f" ({first.value!r} = {resolved!r})"
    more = f" (and {len(mismatches) - 1} more wrong-typed binding(s))" if len(mismatches) > 1 else ""
    raise ValueError(
        f"gin binding {name}.{first.arg_name} = {_short_repr(first.value)} ({location}): "
        f"expected {_type_name(first.expected)}, got {got}{more}"
    )


def check_finite_bindings(config_files: Sequence[str] = (), bindings: Sequence[str] = ()) -> None:
    """Raise ValueError (one line) for the first bound number that is not finite (``1e999`` parses as
    inf): gin cannot write it back into ``config.gin``, so a resumed or evaluated run would silently
    fall back to the parameter's default."""
    for (scope, selector), arguments in list(gin.config._CONFIG.items()):  # noqa: SLF001
        for arg_name, value in arguments.items():
            if not any(_non_finite(item) for item in gin.config._iterate_flattened_values(value)):  # noqa: SLF001
                continue
            if selector == "gin.macro":
                binding = f"gin macro {scope}"
            else:
                where = _binding_locations(config_files, bindings).get((scope, selector, arg_name))
                given_selector, location = where if where else (selector, "not bound in the parsed config")
                binding = f"gin binding {f'{scope}/' if scope else ''}{given_selector}.{arg_name} ({location})"
            raise ValueError(
                f"{binding} = {_short_repr(value)}: not a finite number, which gin cannot store in the run's "
                "config.gin (a resume would silently use the default); bind a finite value"
            )


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _mismatches() -> Iterator[_Mismatch]:
    """Every (scope, selector, parameter) in gin's config whose value contradicts its annotation."""
    for (scope, selector), arguments in list(gin.config._CONFIG.items()):  # noqa: SLF001
        configurable = gin.config._REGISTRY.get(selector)  # noqa: SLF001
        if configurable is None or selector.startswith("gin."):
            continue
        hints = _parameter_types(configurable.wrapped)
        for arg_name, value in arguments.items():
            if arg_name in hints and not _matches(value, hints[arg_name]):
                yield _Mismatch(scope, selector, arg_name, value, hints[arg_name])


def _parameter_types(fn_or_cls: Any) -> dict[str, Any]:
    """The resolved annotations of a function's parameters or a class's ``__init__``; unresolvable ones left out."""
    if fn_or_cls in _hints_cache:
        return _hints_cache[fn_or_cls]
    fn = fn_or_cls.__init__ if inspect.isclass(fn_or_cls) else fn_or_cls
    module = sys.modules.get(getattr(fn_or_cls, "__module__", ""), None)
    globalns = {**(vars(module) if module else {}), **getattr(fn, "__globals__", {})}
    try:
        hints = typing.get_type_hints(fn, globalns=globalns)
    except Exception:  # noqa: BLE001  (one bad annotation: resolve the others one by one)
        hints = {}
        for name, annotation in getattr(fn, "__annotations__", {}).items():
            try:
                hints[name] = eval(annotation, globalns) if isinstance(annotation, str) else annotation  # noqa: S307
            except Exception:  # noqa: BLE001, S112
                continue
    hints.pop("return", None)
    _hints_cache[fn_or_cls] = hints
    return hints


def _resolve(value: Any, depth: int = 0) -> Any:
    """A macro's or constant's value (following chains); any other value unchanged."""
    if not isinstance(value, gin.config.ConfigurableReference) or not value.evaluate or depth > 20:
        return value
    wrapped = value.configurable.wrapped
    name = "/".join(value.scopes)
    if wrapped is gin.config.macro:
        bound = gin.config._CONFIG.get((name, "gin.macro"), {})  # noqa: SLF001
        return _resolve(bound["value"], depth + 1) if "value" in bound else _UNRESOLVED
    if wrapped is gin.config._retrieve_constant:  # noqa: SLF001
        return gin.config._CONSTANTS.get(name, _UNRESOLVED)  # noqa: SLF001
    return value


def _matches(value: Any, annotation: Any) -> bool:
    """False only when ``value`` certainly is not of type ``annotation``."""
    value = _resolve(value)
    if value is _UNRESOLVED or value is gin.REQUIRED or not isinstance(value, _LITERAL_TYPES):
        return True  # references, sentinels, objects bound from Python
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _matches(value, args[0])
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if origin is typing.Literal:
        return any(type(value) is type(arg) and value == arg for arg in args)
    if annotation is None or annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if annotation is complex:
        return isinstance(value, numbers.Complex) and not isinstance(value, bool)
    if annotation in (str, bytes):
        return isinstance(value, annotation)
    if annotation in _SEQUENCE_ORIGINS or origin in _SEQUENCE_ORIGINS:
        return _matches_sequence(value, origin or annotation, args)
    if annotation in _MAPPING_ORIGINS or origin in _MAPPING_ORIGINS:
        if not isinstance(value, collections.abc.Mapping):
            return False
        key_type, value_type = args if len(args) == 2 else (Any, Any)
        return all(_matches(k, key_type) and _matches(v, value_type) for k, v in value.items())
    return True  # Any, Callable, TypeVar, type[...], other classes: not checked


def _matches_sequence(value: Any, origin: Any, args: tuple) -> bool:
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):  # gin's (a, b) and [a, b] both pass for either
            return False
    elif not isinstance(value, origin):
        return False
    if not args or not isinstance(value, (tuple, list, str)):
        return True
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        if args == ((),):  # tuple[()]
            return len(value) == 0
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    return all(_matches(item, args[0]) for item in value)


def _type_name(annotation: Any) -> str:
    """``int``, ``float | None``, ``Sequence[int]``, ``tuple[int, ...]``, ``Literal['k1', 'k3']``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is None or annotation is type(None):
        return "None"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(arg) for arg in args)}]"
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is not None and args:
        inner = ", ".join("..." if arg is Ellipsis else _type_name(arg) for arg in args)
        return f"{_type_name(origin)}[{inner}]"
    if isinstance(annotation, type):
        return annotation.__qualname__
    return str(annotation).removeprefix("typing.")


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _IgnoreValues(config_parser.ParserDelegate):
    """Re-reading only for locations: references and macros need not resolve."""

    def configurable_reference(self, scoped_configurable_name: str, evaluate: bool) -> None:
        return None

    def macro(self, macro_name: str) -> None:
        return None


_Locations = dict[tuple[str, str, str], tuple[str, str]]


def _binding_locations(config_files: Sequence[str], bindings: Sequence[str]) -> _Locations:
    """(scope, complete selector, parameter) -> (selector as written, ``file:line`` or ``--gin binding``).

    Re-reads the files (following includes as gin does) then the bindings; the last binding wins, as in gin.
    """
    locations: _Locations = {}
    for path in config_files:
        _read_file(str(path), locations, depth=0)
    _read_statements(config_parser.ConfigParser("\n".join(bindings), _IgnoreValues()), locations, depth=0)
    return locations


def _read_file(path: str, locations: _Locations, depth: int) -> None:
    prefixes = gin.config._LOCATION_PREFIXES if not os.path.isabs(path) else [""]  # noqa: SLF001
    for prefix in prefixes:
        candidate = os.path.join(prefix, path)
        if os.path.isfile(candidate):
            with open(candidate) as file:
                _read_statements(config_parser.ConfigParser(file, _IgnoreValues()), locations, depth)
            return


def _read_statements(parser: config_parser.ConfigParser, locations: _Locations, depth: int) -> None:
    for statement in parser:
        if isinstance(statement, config_parser.IncludeStatement) and depth < 32:
            _read_file(statement.filename, locations, depth + 1)
        elif isinstance(statement, config_parser.BindingStatement) and statement.arg_name:
            configurable = gin.config._REGISTRY.get_match(statement.selector)  # noqa: SLF001
            if configurable is not None:
                key = (statement.scope, configurable.selector, statement.arg_name)
                locations[key] = (statement.selector, _format_location(statement.location))


def _format_location(location: config_parser.Location) -> str:
    if location.filename is None:
        return "--gin binding"
    path = os.path.relpath(location.filename)
    if path.startswith(os.pardir):
        path = location.filename
    return f"{path}:{location.line_num}"
