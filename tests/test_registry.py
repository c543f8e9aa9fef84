"""The component registry, module discovery, contracts, required class attributes, and exposure to gin as ``@<kind>.<name>``."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import textwrap

import gin
import pytest

import genpo  # noqa: F401  (registers every library component)
from genpo import registry
from genpo.builders.config import parse_config


@pytest.fixture
def empty_registry(monkeypatch):
    """An empty registry for the duration of one test; the library's registrations are left untouched."""
    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_REQUIRED", {})
    monkeypatch.setattr(registry, "_CONTRACTS", {})


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


# ------------------------------------------------------------------------------ required class attributes
def test_required_attribute_must_be_set_in_the_class_body(empty_registry):
    registry.require_attribute("widget", "exact", bool, "the tests rely on it")
    assert registry.required_attributes("widget") == {"exact": bool}
    with pytest.raises(registry.RegistryError, match=r"widget 'plain' \(pkg\.Plain\) must set the class attribute exact: bool in its own body \(the tests rely on it\)"):
        registry.register("widget", "plain")(make_class("Plain", "pkg"))
    parent = registry.register("widget", "parent")(type("Parent", (), {"__module__": "pkg", "exact": True}))
    with pytest.raises(registry.RegistryError, match="must set the class attribute exact"):  # inheriting it is not enough
        registry.register("widget", "child")(type("Child", (parent,), {"__module__": "pkg"}))
    with pytest.raises(registry.RegistryError, match=r"exact must be a bool, got 1"):
        registry.register("widget", "wrong")(type("Wrong", (), {"__module__": "pkg", "exact": 1}))
    assert registry.names("widget") == ["parent"]
    assert registry.required_attributes("gadget") == {}


def test_required_attribute_is_checked_for_classes_already_registered(empty_registry):
    registry.register("widget", "plain")(make_class("Plain", "pkg"))
    with pytest.raises(registry.RegistryError, match="widget 'plain'"):
        registry.require_attribute("widget", "exact", bool, "why")


def test_couplings_must_declare_whether_their_log_det_depends_on_the_state():
    assert registry.required_attributes("coupling") == {"state_independent_log_det": bool}
    base = registry.get("coupling", "genpo")
    with pytest.raises(registry.RegistryError, match="state_independent_log_det"):
        registry.register("coupling", "undeclared")(type("Undeclared", (base,), {"__module__": "pkg"}))
    assert "undeclared" not in registry.names("coupling")


# ------------------------------------------------------------------------------ discovery
def library_modules(package: str, exclude=()) -> set[str]:
    """Every module file under ``package`` (recursively), by walking the source tree."""
    root = __import__(package, fromlist=["_"])
    return {
        info.name
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}.")
        if not any(info.name == f"{package}.{name}" for name in exclude)
    }


def test_import_genpo_imports_every_component_and_env_module_but_isaaclab():
    """In a fresh interpreter: ``import genpo`` alone loads every module of the two packages (that is
    what registers them), except the Isaac Lab adapter, which is only imported on use."""
    from genpo import envs

    assert envs.ON_USE_ONLY == ("isaaclab",)
    expected = library_modules("genpo.components") | library_modules("genpo.envs", exclude=envs.ON_USE_ONLY)
    code = (
        "import sys, genpo\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith(('genpo.components.', 'genpo.envs.')))))\n"
    )
    loaded = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120).stdout.split())
    assert loaded == expected
    assert "genpo.envs.isaaclab" not in loaded


def write_package(root, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def scratch_package(tmp_path, monkeypatch):
    """A package ``genpo_scratch_plugins`` on sys.path; its modules are dropped from sys.modules afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path / "genpo_scratch_plugins"
    for name in [name for name in sys.modules if name.split(".")[0] == "genpo_scratch_plugins"]:
        del sys.modules[name]


def test_discover_imports_every_module_so_a_new_file_registers(empty_registry, scratch_package):
    register = "from genpo.registry import register\n"
    write_package(
        scratch_package,
        {
            "__init__.py": "",
            "first.py": register + "@register('widget', 'first')\nclass First: pass\n",
            "nested/__init__.py": "",
            "nested/second.py": register + "@register('widget', 'second')\nclass Second: pass\n",
            "extra.py": "raise ImportError('needs an optional extra')\n",
            "extra_package/__init__.py": "raise ImportError('needs an optional extra')\n",
        },
    )
    imported = registry.discover("genpo_scratch_plugins", exclude=["extra", "extra_package"])
    assert imported == [
        "genpo_scratch_plugins.first",
        "genpo_scratch_plugins.nested",
        "genpo_scratch_plugins.nested.second",
    ]
    assert registry.names("widget") == ["first", "second"]
    assert "genpo_scratch_plugins.extra" not in sys.modules
    assert "genpo_scratch_plugins.extra_package" not in sys.modules


def test_discover_rejects_an_exclusion_that_names_no_module(empty_registry, scratch_package):
    write_package(scratch_package, {"__init__.py": "", "first.py": ""})
    with pytest.raises(registry.RegistryError, match=r"excluded modules do not exist: genpo_scratch_plugins\.gone"):
        registry.discover("genpo_scratch_plugins", exclude=["gone"])


@gin.configurable(module="test_registry")
def probe(component=None):
    """Returns whatever gin binds to ``component``."""
    return component


@pytest.mark.parametrize("kind, name, cls", registry.items(), ids=[f"{kind}.{name}" for kind, name, _ in registry.items()])
def test_every_component_is_reachable_from_gin(kind, name, cls):
    parse_config(bindings=[f"test_registry.probe.component = @{kind}.{name}"])
    assert issubclass(probe(), cls)


# ------------------------------------------------------------------------------ contracts
def test_every_registered_kind_has_a_contract():
    assert [kind for kind in registry.kinds() if registry.contract(kind) is None] == []


def test_a_protocol_contract_names_what_the_class_lacks(empty_registry):
    from typing import Protocol

    class Widget(Protocol):
        def spin(self) -> None: ...

        @property
        def size(self) -> int: ...

    registry.require_contract("widget", Widget)
    assert registry.contract_members(Widget) == ["size", "spin"]
    with pytest.raises(registry.RegistryError, match=r"^widget 'bare' \(pkg\.Bare\) does not satisfy Widget: it lacks size, spin$"):
        registry.register("widget", "bare")(make_class("Bare", "pkg"))
    placeholder = type("Placeholder", (), {"__module__": "pkg", "spin": lambda self: None, "size": 1})
    registry.register("widget", "structural")(placeholder)  # structural: no need to subclass the protocol
    with pytest.raises(registry.RegistryError, match="it lacks spin$"):  # a private stand-in does not count
        registry.register("widget", "stub")(type("Stub", (), {"__module__": "pkg", "spin": _unimplemented, "size": 1}))
    assert registry.names("widget") == ["structural"]


def _unimplemented(self): ...


def test_a_base_class_contract_requires_a_concrete_subclass(empty_registry):
    import abc

    class Base(abc.ABC):
        @abc.abstractmethod
        def run(self): ...

    registry.register("gadget", "unrelated")(make_class("Unrelated", "pkg"))
    with pytest.raises(registry.RegistryError, match=r"gadget 'unrelated' \(pkg\.Unrelated\) must subclass .*Base$"):
        registry.require_contract("gadget", Base)  # also checked for classes already registered
    registry._REGISTRY["gadget"].clear()
    with pytest.raises(registry.RegistryError, match=r"leaves abstract methods of Base unimplemented: run$"):
        registry.register("gadget", "abstract")(type("Abstract", (Base,), {"__module__": "pkg"}))
    registry.register("gadget", "concrete")(type("Concrete", (Base,), {"__module__": "pkg", "run": lambda self: 1}))
    assert registry.names("gadget") == ["concrete"]


def test_a_library_component_missing_its_contract_fails_at_registration():
    import torch

    with pytest.raises(registry.RegistryError, match=r"advantage 'bare' \(pkg\.Bare\) does not satisfy AdvantageEstimator: it lacks forward"):
        registry.register("advantage", "bare")(type("Bare", (torch.nn.Module,), {"__module__": "pkg"}))
    env_base = registry.contract("env")
    with pytest.raises(registry.RegistryError, match=r"leaves abstract methods of BatchedEnv unimplemented: load_state_dict, reset, state_dict, step"):
        registry.register("env", "bare")(type("Bare", (env_base,), {"__module__": "pkg"}))
    assert "bare" not in registry.names("advantage") + registry.names("env")
