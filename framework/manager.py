"""The plugin manager: loads the ``railgraph`` entry-point group, blocks names, calls hooks safely.

`make_plugins` builds a fresh manager from explicit options and ends with pluggy's pending
check, so a misspelt hook implementation fails loudly. Nothing loads on import.

Every hook call goes through `Plugins`, which calls implementations one by one in pluggy's order
(``tryfirst`` first, ``trylast`` last, later-registered before earlier within a group) so that an
exception can be attributed: it becomes a `PluginError` naming the plugin and the hook.
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import inspect
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy
from pydantic import BaseModel

from . import hookspecs
from .errors import ConfigError, PluginError, RunnerError

if TYPE_CHECKING:
    from .config import Settings

ENTRY_POINT_GROUP = "railgraph"


@dataclass(frozen=True, slots=True)
class PluginOrigin:
    """Where a plugin came from: ``entry point`` (with its distribution) or ``code``."""

    name: str
    source: str
    distribution: str | None = None
    version: str | None = None
    value: str | None = None


class Plugins:
    """A loaded plugin set and the one way the core calls hooks."""

    def __init__(self, pm: pluggy.PluginManager, origins: dict[str, PluginOrigin], blocked: tuple[str, ...]) -> None:
        self.pm = pm
        self.origins = origins
        self.blocked = blocked

    # -- introspection -----------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Registered plugin names, sorted."""
        return sorted(n for n, p in self.pm.list_name_plugin() if p is not None)

    def hooks_of(self, name: str) -> list[str]:
        """Hook names the plugin `name` implements."""
        plugin = self.pm.get_plugin(name)
        if plugin is None:
            return []
        return sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])

    def implementers(self, hook: str) -> list[str]:
        """Plugin names implementing `hook`, in call order (first called first)."""
        return [impl.plugin_name for impl in self._impls(hook)]

    def _impls(self, hook: str) -> list[Any]:
        caller = getattr(self.pm.hook, hook)
        return [i for i in reversed(caller.get_hookimpls()) if not (i.hookwrapper or i.wrapper)]

    # -- calling -----------------------------------------------------------------------------------

    def call(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation of `hook`; return ``(plugin, result)`` for non-``None`` results.

        Raises:
            PluginError: an implementation raised; names the plugin and the hook.
        """
        out = []
        for impl in self._impls(hook):
            result = self._call_one(impl, hook, kwargs)
            if result is not None:
                out.append((impl.plugin_name, result))
        return out

    def first(self, hook: str, **kwargs: Any) -> tuple[str, Any] | tuple[None, None]:
        """Call implementations of a decision hook until one answers; return ``(plugin, answer)``."""
        for impl in self._impls(hook):
            result = self._call_one(impl, hook, kwargs)
            if result is not None:
                return impl.plugin_name, result
        return None, None

    def notify(self, hook: str, **kwargs: Any) -> list[PluginError]:
        """Call every implementation of a notification; collect failures instead of raising."""
        failures = []
        for impl in self._impls(hook):
            try:
                self._call_one(impl, hook, kwargs)
            except PluginError as exc:
                failures.append(exc)
        return failures

    def has(self, hook: str) -> bool:
        """True when at least one plugin implements `hook`."""
        return bool(self._impls(hook))

    @staticmethod
    def _call_one(impl: Any, hook: str, kwargs: Mapping[str, Any]) -> Any:
        args = {k: kwargs[k] for k in impl.argnames}
        for k in impl.kwargnames:  # a parameter with a default gets the hook's value too (as pluggy passes it)
            if k in kwargs:
                args[k] = kwargs[k]
        try:
            return impl.function(**args)
        except RunnerError:
            raise
        except Exception as exc:
            # "hook NAME raised TYPE: ..." keeps the hook name out of key=value shapes a redactor scrubs
            raise PluginError(f"plugin {impl.plugin_name!r} hook {hook} raised {type(exc).__name__}: {exc}",
                              plugin=impl.plugin_name, hook=hook) from exc

    # -- resolved contributions --------------------------------------------------------------------

    def section_models(self) -> dict[str, type[BaseModel]]:
        """Plugin name → the model of its ``[plugins.<name>]`` table."""
        models = {}
        for name, model in self.call("settings_section"):
            if not (inspect.isclass(model) and issubclass(model, BaseModel)):
                raise PluginError(f"plugin {name!r} hook 'settings_section' returned {model!r}, not a pydantic model",
                                  plugin=name, hook="settings_section")
            models[name] = model
        return models

    def bind(self, settings: Settings) -> Settings:
        """Validate `settings`' plugin tables against this plugin set (see `Settings.bind`)."""
        unknown = [n for n in settings.plugins.disable if n not in self.origins and n not in self.blocked_known]
        if unknown:
            raise ConfigError(f"plugins.disable names unknown plugin(s) {unknown}; known: {sorted(self.origins)}",
                              key="plugins.disable", file=str(settings.file) if settings.file else None)
        return settings.bind(self.section_models(), ignore=self.blocked)

    blocked_known: frozenset[str] = frozenset()


# (distribution name, version) by its metadata file and that file's mtime: reading them parses the
# file (~0.4 ms a distribution, twice through ``dist.name`` and ``dist.version``), which made most
# of a compile's time when every compile did it for every plugin. A reinstall or an in-place rewrite
# (setuptools' egg_info) changes the mtime; the path is absolute (egg-info paths may be relative).
_DIST_IDS: dict[tuple[str, int], tuple[str | None, str | None]] = {}


def _metadata_file(dist: md.Distribution) -> str | None:
    path = getattr(dist, "_path", None)  # PathDistribution's .dist-info / .egg-info (a folder or a file)
    if path is None:
        return None
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        for name in ("METADATA", "PKG-INFO"):
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        return None
    return path


def dist_identity(dist: md.Distribution | None) -> tuple[str | None, str | None]:
    """``(name, version)`` of an entry point's distribution (``(None, None)`` without one), read once
    per version of its metadata file."""
    if dist is None:
        return None, None
    key = None
    found = _metadata_file(dist)
    if found is not None:
        try:
            key = (found, os.stat(found).st_mtime_ns)
        except OSError:
            key = None
    known = _DIST_IDS.get(key) if key is not None else None
    if known is not None:
        return known
    meta = dist.metadata  # one parse for both
    identity = (meta["Name"], meta["Version"])
    if key is not None:
        _DIST_IDS[key] = identity
    return identity


def _entry_points() -> list[md.EntryPoint]:
    seen: dict[str, md.EntryPoint] = {}
    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        seen.setdefault(ep.name, ep)
    return list(seen.values())


HOOK_HELP = ("Name the function after a railgraph hook and take its arguments as ordinary parameters (`railgraph "
             "plugins` lists the hooks each plugin implements once it loads), or block the plugin with "
             "`plugins.disable = [\"NAME\"]`.")


def _check_hooks(pm: pluggy.PluginManager) -> None:
    """Every hook implementation names a railgraph hook, and can receive the arguments it names.

    Hooks pass their arguments by name to the parameters an implementation declares (a default
    included), but never to a keyword-only one: ``def make_sinks(*, settings=None)`` would always
    see ``None``. Names starting with ``_`` are left alone, as pluggy's own check does.

    Raises:
        PluginError: naming the plugin, the function and what is wrong (with the nearest hook's
            name for a misspelt one).
    """
    callers = {name: caller for name, caller in vars(pm.hook).items()
               if isinstance(caller, pluggy.HookCaller) and not name.startswith("_")}
    specs = sorted(name for name, caller in callers.items() if caller.has_spec())
    for name, caller in sorted(callers.items()):
        for impl in caller.get_hookimpls():
            if caller.spec is None:
                if impl.optionalhook:
                    continue
                close = difflib.get_close_matches(name, specs, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]}?)" if close else f" (railgraph's hooks: {', '.join(specs)})"
                raise PluginError(f"plugin {impl.plugin_name!r} implements {name!r}, which is not a railgraph "
                                  f"hook{hint}", plugin=impl.plugin_name, hook=name, help=HOOK_HELP)
            try:
                params = inspect.signature(impl.function).parameters.values()
            except (TypeError, ValueError):  # no signature to read: pluggy's own reading stands
                continue
            hidden = [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name in caller.spec.argnames]
            if hidden:
                raise PluginError(f"plugin {impl.plugin_name!r} hook {name}: parameter {hidden[0]!r} is keyword-only, "
                                  "so the hook's argument never reaches it", plugin=impl.plugin_name, hook=name,
                                  help=HOOK_HELP)


def make_plugins(*, load_entrypoints: bool = True, disable: Iterable[str] = (),
                 plugins: Sequence[Any] = ()) -> Plugins:
    """Build a fresh plugin manager.

    Args:
        load_entrypoints: load every plugin of the ``railgraph`` entry-point group (built-ins included).
        disable: plugin names to block (entry points or code plugins).
        plugins: plugin objects (modules, classes or instances) to register from code; each is
            named by its ``name`` attribute, else its module or class name.

    Raises:
        ConfigError: a name in `disable` matches no plugin.
        PluginError: a plugin fails to import, or implements a hook that does not exist.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    blocked = tuple(dict.fromkeys(disable))
    for name in blocked:
        pm.set_blocked(name)
    origins: dict[str, PluginOrigin] = {}
    known: set[str] = set()
    if load_entrypoints:
        for ep in _entry_points():
            known.add(ep.name)
            if ep.name in blocked:
                continue
            try:
                obj = ep.load()
            except Exception as exc:
                raise PluginError(f"plugin {ep.name!r} failed to load from {ep.value!r}: {type(exc).__name__}: {exc}",
                                  plugin=ep.name, hook="load") from exc
            pm.register(obj, name=ep.name)
            origins[ep.name] = PluginOrigin(ep.name, "entry point", *dist_identity(getattr(ep, "dist", None)),
                                            ep.value)
    for obj in plugins:
        name = getattr(obj, "name", None) or getattr(obj, "__name__", None) or type(obj).__name__
        name = str(name).rsplit(".", 1)[-1]
        known.add(name)
        if name in blocked:
            continue
        if pm.get_plugin(name) is not None:
            pm.unregister(name=name)  # a code plugin replaces an entry point of the same name
        pm.register(obj, name=name)
        origins[name] = PluginOrigin(name, "code")
    unknown = [n for n in blocked if n not in known]
    if unknown:
        raise ConfigError(f"plugins.disable names unknown plugin(s) {unknown}; known: {sorted(known)}",
                          key="plugins.disable")
    _check_hooks(pm)
    result = Plugins(pm, origins, blocked)
    result.blocked_known = frozenset(b for b in blocked if b in known)
    return result


__all__ = ["ENTRY_POINT_GROUP", "PluginOrigin", "Plugins", "make_plugins"]
