"""Gin wiring: expose the registry to gin and parse config files with clear errors.

Config files live in the package (``genpo/gin/``, shipped as package data; ``gin/`` at the repository
root is a symlink to it), so ``tasks/pendulum.gin`` resolves by name from any working directory after a
plain ``pip install``.

Macros (t5x style): a value that several bindings share (``GAMMA`` for GAE and the reward scaler,
``HIDDEN_SIZES`` for the actor's network and the critic) is defined once, by the task file, and used as
``%GAMMA`` by the policy and algorithm files, which list what they need in their header comment
(``algorithms/ppo.gin`` also declares ``GAMMA = %gin.REQUIRED``). gin 0.5 only checks
``%gin.REQUIRED`` in ``gin.finalize()``, which genpo does not call (configs are parsed, then extended by
``--gin`` bindings and re-parsed on resume), so :func:`parse_config` does it: a macro that is used but
left at ``%gin.REQUIRED`` or never defined fails with one line naming it when the component that uses
it is built, before any training step.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gin

from genpo import registry
from genpo.builders.binding_types import check_binding_types, check_finite_bindings

GIN_DIR = Path(__file__).resolve().parents[1] / "gin"
_exposed: set[tuple[str, str]] = set()


def expose_registry_to_gin() -> None:
    """Make every registered class a gin configurable named ``<kind>.<name>`` (idempotent)."""
    for kind, name, cls in registry.items():
        if (kind, name) not in _exposed:
            gin.external_configurable(cls, name=name, module=kind)
            _exposed.add((kind, name))


def resolve_config_path(path: str | Path) -> Path:
    """A config file as given, or relative to the package's config folder (``genpo/gin/``)."""
    candidate = Path(path)
    for resolved in (candidate, GIN_DIR / candidate):
        if resolved.is_file():
            return resolved.resolve()
    raise FileNotFoundError(f"gin config {str(path)!r} not found (looked in the working directory and {GIN_DIR})")


def parse_config(config_files: Sequence[str | Path] = (), bindings: Sequence[str] = ()) -> None:
    """Parse gin files then bindings; an unknown configurable or parameter fails here, before training.

    Includes inside gin files resolve relative to ``genpo/gin/`` (e.g. ``include 'policies/genpo.gin'``).
    A value of the wrong type for its parameter's annotation fails here too, in one line naming the
    binding and its file and line (see :mod:`genpo.builders.binding_types`). A macro that is used but
    not defined (or left at ``%gin.REQUIRED``) fails, naming it, when the component using it is built.
    """
    expose_registry_to_gin()
    prefixes = gin.config._LOCATION_PREFIXES  # noqa: SLF001  (gin has no public accessor)
    if str(GIN_DIR) not in prefixes:
        # First in the search order: gin logs a spurious error for each prefix an include misses.
        prefixes.insert(0, str(GIN_DIR))
    files = [str(resolve_config_path(path)) for path in config_files]
    try:
        with _quiet_include_search():
            gin.parse_config_files_and_bindings(files, list(bindings), finalize_config=False)
    except (ValueError, KeyError, SyntaxError) as error:
        replaced = _replaced_parameter(str(error))
        if replaced is not None:
            raise ValueError(replaced) from None
        message = _unparsable_token(str(error), files, bindings)
        raise ValueError(f"gin config error: {message}{_registered_alternatives(str(error))}") from error
    except OSError as error:
        raise ValueError(f"gin config error: {_missing_include(str(error))}") from None
    _defer_missing_macros()
    check_binding_types(files, bindings)
    check_finite_bindings(files, bindings)


def query_parameter(binding_key: str) -> Any:
    """``gin.query_parameter`` with macros resolved: the value the binding gives (``%GAMMA`` -> 0.99).

    Raises ValueError when nothing is bound to ``binding_key`` (as gin does) or when a macro it uses is
    not defined.
    """
    return _resolve_macros(gin.query_parameter(binding_key))


def _resolve_macros(value: Any, depth: int = 0) -> Any:
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve_macros(item, depth) for item in value)
    if isinstance(value, dict):
        return {key: _resolve_macros(item, depth) for key, item in value.items()}
    name = _macro_name(value)
    if name is None or depth > 32:
        return value
    bound = gin.config._CONFIG.get((name, "gin.macro"), {})  # noqa: SLF001
    if "value" not in bound or _is_required(bound["value"]) or _missing_macro_name(bound["value"]) is not None:
        raise ValueError(_missing_macro_message(name))
    return _resolve_macros(bound["value"], depth + 1)


# ------------------------------------------------------------------------- macros that are not defined
_UNDEFINED_MACRO = "genpo.undefined_macro"


@gin.configurable("undefined_macro", module="genpo")
def _undefined_macro() -> None:
    """What a used but undefined macro evaluates to (bound by :func:`_defer_missing_macros`): an error."""
    raise ValueError(_missing_macro_message(gin.current_scope_str()))


def _missing_macro_message(name: str) -> str:
    return (
        f"gin macro {name} is used but not defined: the task file defines it (`{name} = ...`, after its "
        f"includes; see the header of the policy or algorithm file that uses %{name}), or pass "
        f"--gin \"{name} = ...\""
    )


def _macro_name(value: Any) -> str | None:
    """The name of the macro ``value`` refers to (``%NAME``), else None."""
    if isinstance(value, gin.config.ConfigurableReference) and value.evaluate:
        if value.configurable.wrapped is gin.config.macro:
            return "/".join(value.scopes)
    return None


def _missing_macro_name(value: Any) -> str | None:
    """The macro name when ``value`` is the error reference bound by :func:`_defer_missing_macros`."""
    if isinstance(value, gin.config.ConfigurableReference) and value.configurable.selector == _UNDEFINED_MACRO:
        return "/".join(value.scopes)
    return None


def _is_required(value: Any) -> bool:
    """``value`` is ``%gin.REQUIRED``."""
    return (
        isinstance(value, gin.config.ConfigurableReference)
        and value.evaluate
        and value.configurable.wrapped is gin.config._retrieve_constant  # noqa: SLF001
        and "/".join(value.scopes) == "gin.REQUIRED"
    )


def _defer_missing_macros() -> None:
    """Bind every macro left at ``%gin.REQUIRED``, or used and never defined, to ``@NAME/genpo.undefined_macro()``.

    gin would pass its REQUIRED sentinel object into the component (or fail with "macro() missing 1 required
    positional argument"); this way the component that uses the macro fails with one line naming it. Failing
    here, at parse time, would also refuse partial configs whose missing macro is never used (a policy
    file parsed alone to build one actor, with its network sizes bound directly).
    """
    config = gin.config._CONFIG  # noqa: SLF001
    defined = {scope for (scope, selector), arguments in config.items() if selector == "gin.macro" and "value" in arguments}
    missing = {name for name in defined if _is_required(config[(name, "gin.macro")]["value"])}
    for arguments in list(config.values()):
        for value in arguments.values():
            for item in gin.config._iterate_flattened_values(value):  # noqa: SLF001
                name = _macro_name(item)
                if name is not None and name not in defined:
                    missing.add(name)
    for name in sorted(missing):
        if re.fullmatch(r"[A-Za-z_]\w*", name):
            gin.parse_config(f"{name} = @{name}/{_UNDEFINED_MACRO}()")


# Bindings of a parameter that a builder does not take, with the binding that sets it (one line).
_REPLACED_PARAMETERS = {
    ("genpo.trainer", "kl_for_lr"): (
        "genpo.trainer.kl_for_lr is not a parameter: the KL that drives the lr is the loss's, bind "
        "loss.ppo.kl_estimator = @kl_estimator.k1() (or .k3(), .gaussian_action())"
    ),
}


def _replaced_parameter(message: str) -> str | None:
    """For gin's "doesn't have a parameter named", the binding to use instead, when there is one."""
    match = re.search(r"Configurable '([\w.]+)' doesn't have a parameter named '(\w+)'", message)
    return None if match is None else _REPLACED_PARAMETERS.get((match.group(1), match.group(2)))


def _registered_alternatives(message: str) -> str:
    """For gin's "No configurable matching 'kind.name'", the names registered under that kind."""
    match = re.search(r"No configurable matching (?:reference )?'@?(\w+)\.\w+", message)
    if match is None or match.group(1) not in registry.kinds():
        return ""
    return f"\nregistered {match.group(1)} names: {', '.join(registry.names(match.group(1)))}"


# ------------------------------------------------------------------------------------ parse errors
_NON_FINITE_TOKENS = ("inf", "nan", "infinity")


def _unparsable_token(message: str, files: Sequence[str], bindings: Sequence[str]) -> str:
    """gin's "malformed node or string ... <ast.Name object at 0x...>  Failed to parse token 'inf' (file,
    line 4)" as one line naming the token and the binding it is in; other messages unchanged."""
    match = re.search(r"Failed to parse token '(.*)' \((?:(.*), )?line (\d+)\)", message)
    if match is None:
        return message
    token, filename, line = match.group(1), match.group(2), int(match.group(3))
    if filename is None:
        lines = "\n".join(bindings).splitlines()
        where = f"--gin {lines[line - 1].strip()!r}" if line <= len(lines) else "--gin binding"
    else:
        where = f"{filename}, line {line}"
        for path in files:
            if Path(path).name == filename:
                lines = Path(path).read_text().splitlines()
                where = f"{path}, line {line} ({lines[line - 1].strip()})" if line <= len(lines) else where
    why = "values are Python literals, @references or %macros"
    if token.strip().lstrip("+-").lower() in _NON_FINITE_TOKENS:
        why = "gin has no non-finite numbers (inf, nan): bind a finite value"
    return f"{where}: cannot parse {token!r} ({why})"


def _missing_include(message: str) -> str:
    """gin's "Unable to open file: X. Searched config paths: [...]. In file F, line N" as one line."""
    match = re.search(r"Unable to open file: (.*?)\. Searched.*?In file \"(.*?)\", line (\d+)", message, re.DOTALL)
    if match is None:
        return message.splitlines()[0]
    return f"{match.group(2)}, line {match.group(3)}: include {match.group(1)!r} not found (looked in the working directory and {GIN_DIR})"


class _NoIncludeMisses(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Path not found")


@contextlib.contextmanager
def _quiet_include_search():
    """gin logs an error for each search path an include misses; the include that resolves nowhere
    fails with one line instead."""
    quiet = _NoIncludeMisses()
    logging.getLogger().addFilter(quiet)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(quiet)
