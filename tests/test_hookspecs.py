"""The hook contract itself: documented specs, declared built-ins, and a test for every hook."""

from __future__ import annotations

import importlib
import inspect
import tomllib
from pathlib import Path

import pytest

from railgraph import hookspecs
from railgraph.manager import make_plugins

ROOT = Path(__file__).resolve().parent.parent
SPECS = {name: obj for name, obj in vars(hookspecs).items() if hasattr(obj, "railgraph_spec")}


def test_there_is_a_spec_for_each_purpose_of_the_architecture() -> None:
    """The contract covers config, persistence, processing, sinks, cap, gating, mode, retries and lifecycle."""
    assert set(SPECS) == {"settings_section", "make_checkpointer", "event_processor", "extra_errors_mode",
                          "error_capper", "reserved_change_bumps_version", "make_sinks", "retry_decision",
                          "before_session", "after_step", "after_session", "store_missing"}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_spec_documents_parameters_return_and_raises(name: str) -> None:
    """Each spec's docstring names every parameter and says what it returns and what it may raise."""
    spec = SPECS[name]
    doc = inspect.getdoc(spec) or ""
    for param in inspect.signature(spec).parameters:
        assert param in doc, f"{name} does not document {param}"
    assert "Returns" in doc and "Raises" in doc, name


@pytest.mark.parametrize("name", sorted(SPECS))
def test_decision_hooks_are_firstresult(name: str) -> None:
    """Decision hooks (one answer) are firstresult; contributions and notifications are not."""
    decisions = {"make_checkpointer", "extra_errors_mode", "error_capper", "reserved_change_bumps_version",
                 "retry_decision", "store_missing"}
    assert SPECS[name].railgraph_spec["firstresult"] is (name in decisions)


def _declared() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data["project"]["entry-points"]["railgraph"]


def test_every_builtin_module_is_declared_as_an_entry_point_and_loads() -> None:
    """Every public module in plugins/ is an entry point named after it, and the manager loads it."""
    modules = sorted(p.stem for p in (ROOT / "plugins").glob("*.py") if not p.stem.startswith("_"))
    declared = _declared()
    assert sorted(declared) == modules
    for name, target in declared.items():
        assert target == f"railgraph.plugins.{name}"
        importlib.import_module(target)
    assert set(modules) <= set(make_plugins().names())


def test_core_never_imports_plugins() -> None:
    """No module of framework/ imports railgraph.plugins: the core only calls hooks."""
    for path in (ROOT / "framework").glob("*.py"):
        text = path.read_text()
        assert "railgraph.plugins" not in text and "from .plugins" not in text, path.name


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_hook_has_a_test(name: str) -> None:
    """Some test module other than this one exercises each hook by name."""
    users = [p.name for p in (ROOT / "tests").glob("test_*.py")
             if p.name != "test_hookspecs.py" and name in p.read_text()]
    assert users, f"no test mentions hook {name}"


def test_plugins_only_import_from_railgraph_public_modules() -> None:
    """Built-in plugins import no other plugin module (each stands alone like a third-party one)."""
    for path in (ROOT / "plugins").glob("*.py"):
        text = path.read_text()
        assert "railgraph.plugins." not in text and "from . import" not in text, path.name
