"""The plugin manager: entry-point loading, blocking, code plugins, attribution of failures."""

from __future__ import annotations

import importlib.metadata as md
import os
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from railgraph import ConfigError, PluginError, hookimpl
from railgraph.manager import Plugins, make_plugins


def test_builtins_load_from_the_entry_point_group() -> None:
    """Every built-in is discovered through the railgraph entry-point group, with its distribution."""
    plugins = make_plugins()
    names = set(plugins.names())
    assert {"memory_store", "sqlite_store", "cap", "redact", "retry"} <= names
    origin = plugins.origins["memory_store"]
    assert origin.source == "entry point" and origin.distribution == "railgraph"


def test_disable_blocks_by_name_and_unknown_names_fail() -> None:
    """A disabled plugin is not registered; naming an unknown plugin in disable is a ConfigError."""
    plugins = make_plugins(disable=["cap"])
    assert "cap" not in plugins.names() and plugins.blocked == ("cap",)
    with pytest.raises(ConfigError, match="unknown plugin.*'capp'"):
        make_plugins(disable=["capp"])


def test_misspelt_hook_fails_loudly_naming_the_nearest_hook() -> None:
    """A plugin implementing a hook that does not exist is a PluginError naming the plugin, the
    function and the hook it was probably meant to be."""
    bad = SimpleNamespace(name="typo", make_sink=hookimpl(lambda settings: []))
    with pytest.raises(PluginError) as info:
        make_plugins(load_entrypoints=False, plugins=[bad])
    assert str(info.value) == "plugin 'typo' implements 'make_sink', which is not a railgraph hook (did you mean make_sinks?)"
    assert (info.value.plugin, info.value.hook, info.value.exit_code) == ("typo", "make_sink", 4)
    assert "ordinary parameters" in info.value.help and "The named plugin raised" not in info.value.help
    far = SimpleNamespace(name="far", zzz=hookimpl(lambda: None))
    with pytest.raises(PluginError, match=r"railgraph's hooks: .*make_sinks"):
        make_plugins(load_entrypoints=False, plugins=[far])


def test_a_hook_parameter_with_a_default_gets_the_hooks_argument() -> None:
    """A parameter with a default receives the hook's argument (as pluggy passes it); a keyword-only
    one never could, and is refused when the plugin loads."""
    seen: list[object] = []

    def make_sinks(settings=None):
        seen.append(settings)
        return None
    plugins = make_plugins(load_entrypoints=False, plugins=[SimpleNamespace(name="defaults",
                                                                            make_sinks=hookimpl(make_sinks))])
    marker = object()
    plugins.call("make_sinks", settings=marker)
    assert seen == [marker]

    def hidden(*, settings=None):
        return None
    with pytest.raises(PluginError) as info:
        make_plugins(load_entrypoints=False, plugins=[SimpleNamespace(name="kwonly", make_sinks=hookimpl(hidden))])
    assert "hook make_sinks: parameter 'settings' is keyword-only" in str(info.value)
    assert (info.value.plugin, info.value.hook) == ("kwonly", "make_sinks")


def test_plugin_that_raises_at_load_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry point whose import fails raises PluginError naming the plugin and the target."""
    broken = md.EntryPoint(name="broken", value="railgraph_no_such_module_x", group="railgraph")
    monkeypatch.setattr("railgraph.manager._entry_points", lambda: [broken])
    with pytest.raises(PluginError) as info:
        make_plugins()
    assert info.value.plugin == "broken" and "railgraph_no_such_module_x" in str(info.value)
    assert info.value.exit_code == 4


def test_hook_exceptions_become_plugin_errors_naming_plugin_and_hook() -> None:
    """An exception inside an implementation is wrapped in a PluginError naming plugin and hook."""
    class Boom:
        name = "boom"

        @hookimpl
        def extra_errors_mode(self, settings):
            raise KeyError("x")
    plugins = make_plugins(load_entrypoints=False, plugins=[Boom()])
    with pytest.raises(PluginError) as info:
        plugins.first("extra_errors_mode", settings=None)
    assert (info.value.plugin, info.value.hook) == ("boom", "extra_errors_mode")
    assert isinstance(info.value.__cause__, KeyError)


def test_call_order_follows_tryfirst_and_trylast() -> None:
    """Implementations are called tryfirst first and trylast last, whatever the registration order."""
    order: list[str] = []

    def plugin(name: str, **marks):
        return SimpleNamespace(name=name, before_session=hookimpl(**marks)(
            lambda session, resumed, settings: order.append(name)))
    plugins = make_plugins(load_entrypoints=False, plugins=[plugin("last", trylast=True), plugin("plain"),
                                                            plugin("first", tryfirst=True)])
    assert plugins.notify("before_session", session="s", resumed=False, settings=None) == []
    assert order == ["first", "plain", "last"]
    assert plugins.implementers("before_session") == ["first", "plain", "last"]


def test_decision_first_answer_wins_and_none_means_no_opinion() -> None:
    """For a decision hook, None passes to the next plugin and the first real answer wins."""
    quiet = SimpleNamespace(name="quiet", extra_errors_mode=hookimpl(tryfirst=True)(lambda settings: None))
    loud = SimpleNamespace(name="loud", extra_errors_mode=hookimpl(lambda settings: "legacy"))
    plugins = make_plugins(load_entrypoints=False, plugins=[quiet, loud])
    assert plugins.first("extra_errors_mode", settings=None) == ("loud", "legacy")


def test_code_plugin_replaces_entry_point_of_same_name() -> None:
    """A plugin passed from code under a built-in's name replaces that built-in."""
    mine = SimpleNamespace(name="cap", error_capper=hookimpl(lambda settings: None))
    plugins = make_plugins(plugins=[mine])
    assert isinstance(plugins, Plugins) and plugins.origins["cap"].source == "code"
    assert plugins.pm.get_plugin("cap") is mine


def _install(site: Path, name: str, version: str, module: str) -> Path:
    """Lay out an installed distribution `name` with one railgraph entry point, as pip does."""
    dist = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text(f"[railgraph]\n{module} = {module}\n")
    (site / f"{module}.py").write_text("NAME = 'x'\n")
    return dist


def test_an_egg_info_rewritten_in_place_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin's metadata rewritten in place (setuptools' egg_info: same folder, a relative path on
    sys.path) gives its new version and entry points to the next make_plugins; after a chdir to
    another project, that project's copy is the one named."""
    def lay_out(project: Path, version: str, modules: tuple[str, ...]) -> None:
        info = project / "rg_inplace.egg-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: rg-inplace\nVersion: {version}\n")
        (info / "entry_points.txt").write_text("[railgraph]\n" + "".join(f"{m} = {m}\n" for m in modules))
        for m in modules:
            (project / f"{m}.py").write_text("NAME = 'x'\n")
        later = time.time() + 2  # a later mtime than any earlier read, whatever the clock's grain
        for f in info.iterdir():
            os.utime(f, (later, later))
    one, two = tmp_path / "one", tmp_path / "two"
    lay_out(one, "1.0", ("rg_inplace",))
    lay_out(two, "2.0", ("rg_inplace",))
    monkeypatch.chdir(one)
    monkeypatch.syspath_prepend("")  # the working directory, as `python -m` or an interactive session has it
    for module in ("rg_inplace", "rg_inplace_2"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    assert make_plugins().origins["rg_inplace"].version == "1.0"
    lay_out(one, "1.1", ("rg_inplace", "rg_inplace_2"))
    origins = make_plugins().origins
    assert origins["rg_inplace"].version == "1.1" and origins["rg_inplace_2"].version == "1.1"
    monkeypatch.chdir(two)
    monkeypatch.delitem(sys.modules, "rg_inplace", raising=False)
    origins = make_plugins().origins
    assert origins["rg_inplace"].version == "2.0" and "rg_inplace_2" not in origins


def test_entry_points_installed_or_removed_after_a_scan_are_seen(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution installed into (or removed from) a directory already scanned is seen by the
    next make_plugins, with its distribution's name and version."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    for module in ("rg_late_plugin", "rg_late_plugin_2"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    assert "rg_late_plugin" not in make_plugins().origins
    dist = _install(site, "rg-late-plugin", "1.2.3", "rg_late_plugin")
    origin = make_plugins().origins["rg_late_plugin"]
    assert (origin.source, origin.distribution, origin.version) == ("entry point", "rg-late-plugin", "1.2.3")
    # an upgrade: the old metadata directory goes, a new one comes (pip's way)
    shutil.rmtree(dist)
    _install(site, "rg-late-plugin", "2.0.0", "rg_late_plugin")
    assert make_plugins().origins["rg_late_plugin"].version == "2.0.0"
    for old in site.glob("*.dist-info"):
        shutil.rmtree(old)
    assert "rg_late_plugin" not in make_plugins().origins
