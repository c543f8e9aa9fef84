"""Parameter checks, written once: every failure is one ``ValueError`` naming the owner, the
parameter and the value. Used directly by components, and as attrs validators by settings classes.
"""

from __future__ import annotations

from typing import Any


def check_positive_int(owner: str, name: str, value: Any) -> int:
    """``value`` as a positive integer (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return value


def check_positive(owner: str, name: str, value: Any) -> float:
    """``value`` as a positive number (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{owner}: {name} must be > 0, got {value!r}")
    return value


def positive(instance: Any, attribute: Any, value: Any) -> None:
    """attrs validator: a positive number (an integer where the field is annotated ``int`` or
    ``int | None``), or None where the field allows it."""
    if value is None:
        return
    annotation = attribute.type if isinstance(attribute.type, str) else getattr(attribute.type, "__name__", str(attribute.type))
    integer = annotation in ("int", "int | None", "Optional[int]")
    (check_positive_int if integer else check_positive)(type(instance).__name__, attribute.name, value)
