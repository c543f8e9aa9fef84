"""Gin wiring: expose the registry to gin and parse config files with clear errors."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import gin

from genpo import registry
from genpo.builders.binding_types import check_binding_types

GIN_DIR = Path(__file__).resolve().parents[2] / "gin"
_exposed: set[tuple[str, str]] = set()


def expose_registry_to_gin() -> None:
    """Make every registered class a gin configurable named ``<kind>.<name>`` (idempotent)."""
    for kind, name, cls in registry.items():
        if (kind, name) not in _exposed:
            gin.external_configurable(cls, name=name, module=kind)
            _exposed.add((kind, name))


def resolve_config_path(path: str | Path) -> Path:
    """A config file as given, or relative to the repository's ``gin/`` folder."""
    candidate = Path(path)
    for resolved in (candidate, GIN_DIR / candidate):
        if resolved.is_file():
            return resolved.resolve()
    raise FileNotFoundError(f"gin config {str(path)!r} not found (looked in the working directory and {GIN_DIR})")


def parse_config(config_files: Sequence[str | Path] = (), bindings: Sequence[str] = ()) -> None:
    """Parse gin files then bindings; an unknown configurable or parameter fails here, before training.

    Includes inside gin files resolve relative to ``gin/`` (e.g. ``include 'policies/genpo.gin'``).
    A value of the wrong type for its parameter's annotation fails here too, in one line naming the
    binding and its file and line (see :mod:`genpo.builders.binding_types`).
    """
    expose_registry_to_gin()
    prefixes = gin.config._LOCATION_PREFIXES  # noqa: SLF001  (gin has no public accessor)
    if str(GIN_DIR) not in prefixes:
        # First in the search order: gin logs a spurious error for each prefix an include misses.
        prefixes.insert(0, str(GIN_DIR))
    files = [str(resolve_config_path(path)) for path in config_files]
    try:
        gin.parse_config_files_and_bindings(files, list(bindings), finalize_config=False)
    except (ValueError, KeyError, SyntaxError) as error:
        raise ValueError(f"gin config error: {error}{_registered_alternatives(str(error))}") from error
    check_binding_types(files, bindings)


def _registered_alternatives(message: str) -> str:
    """For gin's "No configurable matching 'kind.name'", the names registered under that kind."""
    match = re.search(r"No configurable matching (?:reference )?'@?(\w+)\.\w+", message)
    if match is None or match.group(1) not in registry.kinds():
        return ""
    return f"\nregistered {match.group(1)} names: {', '.join(registry.names(match.group(1)))}"
