"""Parse the ``config.gin`` stored in a run directory without running code from it.

Runs are shared between people and downloaded with papers' artefacts, and ``genpo evaluate``, ``play``,
``export``, ``train --resume`` and :func:`genpo.load_policy` rebuild a run from its ``config.gin``. gin's
full language can import modules (``import os``, ``from __gin__ import dynamic_registration``) and call
any configurable it can reach (``@os.system()``), so opening a run would run whatever its config says.

A run's config is therefore read in a restricted mode first: every statement must be a binding of one of
genpo's configurables (the registry's components and genpo's own ``genpo.*`` functions) or a macro
definition (``GAMMA = 0.99``), and every value a literal, a macro or constant (``%GAMMA``,
``%gin.REQUIRED``) or a reference to one of genpo's configurables (``@actor.genpo``). Anything else
(``import``, ``include``, a reference to another callable) fails with one line naming the file and line,
before gin parses anything. What genpo writes into ``config.gin`` (``gin.config_str()`` of a config
built from genpo's configurables) always passes. User configs given to ``genpo train`` keep gin's full
language; a run trained from one that imports modules cannot be reopened.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import gin
from gin import config_parser

from genpo import registry
from genpo.builders.config import expose_registry_to_gin, parse_config


class UnsafeConfigError(ValueError):
    """A run's stored config uses more of gin than genpo writes (imports, includes, foreign callables)."""


def parse_run_config(config_file: str | Path, bindings: Sequence[str] = ()) -> None:
    """:func:`~genpo.builders.config.parse_config` of a run's stored ``config_file`` (plus genpo's own
    ``bindings``, e.g. a device), after :func:`check_run_config` has accepted it."""
    check_run_config(config_file)
    parse_config([config_file], bindings)


def check_run_config(config_file: str | Path) -> None:
    """Raise :class:`UnsafeConfigError` (one line, ``file:line``) for the first statement of ``config_file``
    that is not a binding of genpo's configurables to literals, macros or genpo references."""
    expose_registry_to_gin()
    path = Path(config_file)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise UnsafeConfigError(f"{path}: cannot be read ({type(error).__name__}: {error})") from None
    delegate = _RecordingDelegate()
    statements = iter(config_parser.ConfigParser(text, delegate))
    while True:
        try:
            statement = next(statements)
        except StopIteration:
            return
        except SyntaxError as error:
            raise UnsafeConfigError(f"{path}:{error.lineno}: not a gin statement ({error.msg})") from None
        refusal = _refusal(statement, delegate.take())
        if refusal:
            line = statement.location.line_num
            raise UnsafeConfigError(
                f"{path}:{line}: {refusal}; a run's config.gin may only bind genpo's configurables to literals, "
                "macros and @references to genpo's configurables (opening a run never runs code from it)"
            )


class _RecordingDelegate(config_parser.ParserDelegate):
    """Records the references and macros of the statement being parsed instead of resolving them."""

    def __init__(self) -> None:
        self.references: list[str] = []
        self.macros: list[str] = []

    def configurable_reference(self, scoped_configurable_name: str, evaluate: bool) -> None:
        self.references.append(scoped_configurable_name)

    def macro(self, macro_name: str) -> None:
        self.macros.append(macro_name)

    def take(self) -> tuple[list[str], list[str]]:
        taken = (self.references, self.macros)
        self.references, self.macros = [], []
        return taken


def _refusal(statement, recorded: tuple[list[str], list[str]]) -> str | None:
    """Why ``statement`` is refused, or None."""
    if isinstance(statement, config_parser.ImportStatement):
        package, _, name = statement.module.rpartition(".")
        written = f"from {package} import {name}" if statement.is_from else f"import {statement.module}"
        return f"`{written}` refused"
    if isinstance(statement, config_parser.IncludeStatement):
        return f"`include {statement.filename!r}` refused"
    if not isinstance(statement, config_parser.BindingStatement):
        return f"unexpected statement {type(statement).__name__}"
    if statement.arg_name:  # a parameter binding; no arg_name: a macro definition
        if not _is_genpo_configurable(statement.selector):
            return f"binding of {statement.selector!r}, which is not one of genpo's configurables, refused"
    references, macros = recorded
    for name in references:
        selector = name.split("/")[-1]
        if not _is_genpo_configurable(selector):
            return f"reference @{name} to something that is not one of genpo's configurables refused"
    for name in macros:
        if "." in name.split("/")[-1] and name not in gin.config._CONSTANTS:  # noqa: SLF001
            return f"%{name} is neither a macro nor a gin constant"
    return None


def _is_genpo_configurable(selector: str) -> bool:
    try:
        configurable = gin.config._REGISTRY.get_match(selector)  # noqa: SLF001
    except (KeyError, ValueError):  # an ambiguous selector
        return False
    if configurable is None:
        return False
    wrapped = configurable.wrapped
    module = getattr(wrapped, "__module__", "") or ""
    if module == "genpo" or module.startswith("genpo."):
        return True
    return any(wrapped is cls for _, _, cls in registry.items())
