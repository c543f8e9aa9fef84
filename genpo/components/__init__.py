"""Registered components: importing this package imports every module under it, which registers them all.

Modules are discovered, not listed: a new component is a new file in the subpackage of its concept
(``couplings/``, ``actors/``, ...) with a ``@register(kind, name)`` class (docs/extending.md).
"""

from genpo.registry import discover

discover(__name__)
