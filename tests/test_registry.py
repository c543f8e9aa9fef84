"""The component registry, and its exposure to gin as ``@<kind>.<name>``."""

from __future__ import annotations

import gin
import pytest

import genpo  # noqa: F401  (registers every library component)
from genpo import registry
from genpo.builders.config import parse_config


@pytest.fixture
def empty_registry(monkeypatch):
    """An empty registry for the duration of one test; the library's registrations are left untouched."""
    monkeypatch.setattr(registry, "_REGISTRY", {})


def make_class(name: str, module: str) -> type:
    return type(name, (), {"__module__": module})


def test_register_get_names_kinds(empty_registry):
    first, second, other = make_class("First", "pkg"), make_class("Second", "pkg"), make_class("Other", "pkg")
    assert registry.register("widget", "first")(first) is first
    registry.register("widget", "second")(second)
    registry.register("gadget", "other")(other)

    assert registry.get("widget", "first") is first
    assert registry.names("widget") == ["first", "second"]
    assert registry.kinds() == ["gadget", "widget"]
    assert registry.items() == [("gadget", "other", other), ("widget", "first", first), ("widget", "second", second)]
    assert (first.registered_kind, first.registered_name) == ("widget", "first")


def test_unknown_kind_lists_kinds(empty_registry):
    registry.register("widget", "first")(make_class("First", "pkg"))
    registry.register("gadget", "other")(make_class("Other", "pkg"))
    with pytest.raises(registry.RegistryError, match=r"unknown component kind 'gizmo'; registered kinds: gadget, widget"):
        registry.names("gizmo")


def test_unknown_name_lists_names(empty_registry):
    registry.register("widget", "first")(make_class("First", "pkg"))
    registry.register("widget", "second")(make_class("Second", "pkg"))
    with pytest.raises(KeyError, match=r"unknown widget 'third'; registered widget names: first, second") as error:
        registry.get("widget", "third")
    assert str(error.value).startswith("unknown")  # shown plainly, not quoted like a KeyError


def test_different_class_under_taken_name_is_rejected(empty_registry):
    registry.register("widget", "first")(make_class("Widget", "pkg_a"))
    with pytest.raises(registry.RegistryError, match=r"already registered to pkg_a\.Widget; cannot register pkg_b\.Widget"):
        registry.register("widget", "first")(make_class("Widget", "pkg_b"))


def test_same_class_may_register_again(empty_registry):
    """A re-imported module re-creates its classes under the same module and name: not a clash."""
    registry.register("widget", "first")(make_class("Widget", "pkg"))
    reimported = make_class("Widget", "pkg")
    registry.register("widget", "first")(reimported)
    assert registry.get("widget", "first") is reimported


@gin.configurable(module="test_registry")
def probe(component=None):
    """Returns whatever gin binds to ``component``."""
    return component


@pytest.mark.parametrize("kind, name, cls", registry.items(), ids=[f"{kind}.{name}" for kind, name, _ in registry.items()])
def test_every_component_is_reachable_from_gin(kind, name, cls):
    parse_config(bindings=[f"test_registry.probe.component = @{kind}.{name}"])
    assert issubclass(probe(), cls)
