"""Settings: one validated, frozen model from arguments, environment, a TOML file and defaults.

Precedence (highest first): explicit arguments > ``RAILGRAPH_*`` environment variables (``__``
nests: ``RAILGRAPH_RUNNER__MAX_STEPS=50``) > the TOML file (``--config`` / ``Settings.load(path)``,
else ``$RAILGRAPH_CONFIG``, else ``./railgraph.toml`` if it exists) > defaults.

Plugins contribute the model of their ``[plugins.<name>]`` table through the ``settings_section``
hook; `Settings.bind` validates those tables (the runner does it when a graph is compiled). An
unknown key or a wrong type is a `ConfigError` naming the file, the key path and the line.

This module is an I/O edge: it reads the environment and the TOML file.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from .errors import ConfigError

ENV_PREFIX = "RAILGRAPH_"
DEFAULT_FILE = "railgraph.toml"
_SECTION = ConfigDict(extra="forbid", frozen=True)


class RunnerSettings(BaseModel):
    """``[runner]``: how supersteps run."""

    model_config = _SECTION
    max_steps: int = Field(1000, ge=1, description="Supersteps one invoke may run before StepLimitError.")
    max_concurrency: int = Field(16, ge=1, description="Nodes of one superstep that run at the same time.")
    node_timeout: float | None = Field(None, gt=0, description="Seconds a node may run (unset: no limit).")
    interrupt_before: list[str] = Field(default_factory=list, description="Pause before these nodes run.")
    interrupt_after: list[str] = Field(default_factory=list, description="Pause after these nodes ran.")
    interrupt_after_step: bool = Field(False, description="Pause after every superstep.")
    sink_timeout: float = Field(5.0, gt=0, description="Seconds a sink's write may take before it counts as failed.")
    sink_report_interval: float = Field(60.0, ge=0, description="Seconds between two app-scope events about the "
                                        "same failing sink.")


class PersistenceSettings(BaseModel):
    """``[persistence]``: where checkpoints and error events are stored."""

    model_config = _SECTION
    backend: str = Field("sqlite", min_length=1,
                         description="Store plugin: sqlite (default, durable), postgres, or memory (tests).")


class ErrorsSettings(BaseModel):
    """``[errors]``: bounds on the errors channel and on each event."""

    model_config = _SECTION
    channel_limit: int | None = Field(None, ge=1, description="Newest events kept in the in-memory errors channel "
                                      "(unset: all). The store keeps every event regardless.")
    max_message: int = Field(4096, ge=64, description="Characters kept of an error message; longer ones are cut "
                             "and marked in the event's `truncated`.")
    max_depth: int = Field(32, ge=1, description="Rungs kept of an exception chain.")
    max_context_bytes: int = Field(16384, ge=256, description="JSON bytes kept of an event's context or details.")


class PluginsSettings(BaseModel):
    """``[plugins]``: which plugins load, and (as sub-tables) each plugin's own settings."""

    model_config = ConfigDict(extra="allow", frozen=True)
    disable: list[str] = Field(default_factory=list, description="Plugin names not to load (built-in or third-party).")


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the chosen TOML file (named by `Settings.load`, $RAILGRAPH_CONFIG or ./railgraph.toml)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None, data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self.path, self.data = path, data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


# ConfigError's class help is about a bad key; a file that cannot be read has no key to fix.
MISSING_FILE_HELP = ("Check the file name and the working directory (a relative path is read from there); "
                     "`railgraph config init FILE` writes a new file with every key.")
UNREADABLE_FILE_HELP = "Make the file readable UTF-8 text; `railgraph config init FILE` writes a new one."
TOML_SYNTAX_HELP = "Fix the TOML syntax on the line shown; `railgraph config validate FILE` checks the file again."


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; raise `ConfigError` naming the file and line for any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found", file=str(path), help=MISSING_FILE_HELP) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}", file=str(path),
                          help=UNREADABLE_FILE_HELP) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        line = int(m.group(1)) if m else None
        raise ConfigError(f"{path}:{line or '?'}: invalid TOML: {exc}", file=str(path), line=line,
                          help=TOML_SYNTAX_HELP) from None


def find_key_line(path: Path, keypath: tuple[str, ...]) -> int | None:
    """Best-effort line number of `keypath` (``("plugins", "cap", "max_events")``) in a TOML file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    table: tuple[str, ...] = ()
    header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    for number, line in enumerate(lines, 1):
        h = header.match(line)
        if h:
            table = tuple(p.strip().strip('"') for p in h.group(1).split("."))
            if table == keypath:
                return number
            continue
        m = re.match(r"^\s*([A-Za-z0-9_\-\".]+)\s*=", line)
        if m:
            dotted = tuple(p.strip().strip('"') for p in m.group(1).split("."))
            if table + dotted == keypath[: len(table + dotted)] and len(table + dotted) >= 1:
                if table + dotted == keypath or keypath[: len(table + dotted)] == table + dotted:
                    return number
    # a whole table named by its parent (an unknown section): look for its header
    return None if len(keypath) <= 1 else find_key_line(path, keypath[:-1])


def _unknown_key(model: type[BaseModel], keypath: tuple[str, ...]) -> str:
    """"unknown key", with the nearest known key of the same table when one is close (a typo)."""
    for part in keypath[:-1]:
        field = model.model_fields.get(part)
        inner = field.annotation if field is not None else None
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return "unknown key"
        model = inner
    close = difflib.get_close_matches(keypath[-1], list(model.model_fields), n=1, cutoff=0.6) if keypath else []
    return f"unknown key (did you mean {close[0]}?)" if close else "unknown key"


def _env_holding(keypath: tuple[str, ...]) -> str | None:
    """The ``RAILGRAPH_*`` variable, as the user spelt it, that sets `keypath`: its own variable, or a
    shallower one whose JSON table holds the rest of the path (the deepest such variable)."""
    environ = {k.upper(): k for k in os.environ}  # variable names match without regard to case
    for depth in range(len(keypath), 0, -1):
        name = environ.get(ENV_PREFIX + "__".join(p.upper() for p in keypath[:depth]))
        if name is None:
            continue
        if depth == len(keypath):
            return name
        try:
            value = json.loads(os.environ[name])
        except ValueError:
            continue
        if isinstance(value, Mapping) and _nested_get(value, keypath[depth:]):
            return name
    return None


def _nested_get(data: Mapping[str, Any], keypath: tuple[str, ...]) -> bool:
    cur: Any = data
    for part in keypath:
        if not isinstance(cur, Mapping) or part not in cur:
            return False
        cur = cur[part]
    return True


class Settings(BaseSettings):
    """The validated, frozen configuration of a runner.

    Args (all optional, all explicit arguments that win over every other source):
        runner, persistence, errors, plugins: section values (models or mappings).

    Use `Settings.load(path)` to name a TOML file; plain `Settings()` looks at $RAILGRAPH_CONFIG,
    then ``./railgraph.toml``.

    Raises:
        ConfigError: a key is unknown, a value has the wrong type, or a named file is missing or
            not valid TOML; the message names the file, the key path and the line.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid",
                                      frozen=True, nested_model_default_partial_update=True)

    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    persistence: PersistenceSettings = Field(default_factory=PersistenceSettings)
    errors: ErrorsSettings = Field(default_factory=ErrorsSettings)
    plugins: PluginsSettings = Field(default_factory=PluginsSettings)

    _config_path: ClassVar[Path | None] = None
    _file: Path | None = PrivateAttr(default=None)
    _file_data: dict[str, Any] = PrivateAttr(default_factory=dict)
    _init_data: dict[str, Any] = PrivateAttr(default_factory=dict)
    _sections: dict[str, BaseModel] | None = PrivateAttr(default=None)

    def __init__(self, **values: Any) -> None:
        path, data = self._resolve_file()
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise self._config_error(exc, path, data, values) from None
        self._file, self._file_data, self._init_data = path, data, values

    # -- sources ---------------------------------------------------------------------------------

    @classmethod
    def _resolve_file(cls) -> tuple[Path | None, dict[str, Any]]:
        if cls._config_path is not None:
            return cls._config_path, read_toml(cls._config_path)
        env = os.environ.get(f"{ENV_PREFIX}CONFIG")
        if env:
            return Path(env), read_toml(Path(env))  # a named file must exist
        local = Path(DEFAULT_FILE)
        if local.is_file():
            return local, read_toml(local)
        return None, {}

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        path, data = cls._resolve_file()
        return init_settings, env_settings, _TomlSource(settings_cls, path, data)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, **values: Any) -> Settings:
        """Load settings from the TOML file at `path` (it must exist), the environment and `values`."""
        if path is None:
            return cls(**values)
        chosen = Path(path)
        if not chosen.is_file():
            raise ConfigError(f"{chosen}: config file not found", file=str(chosen), help=MISSING_FILE_HELP)
        bound = type(cls.__name__, (cls,), {"_config_path": chosen, "__module__": cls.__module__})
        return bound(**values)

    @staticmethod
    def _config_error(exc: ValidationError, path: Path | None, data: dict[str, Any],
                      values: Mapping[str, Any]) -> ConfigError:
        first = exc.errors()[0]
        keypath = tuple(str(p) for p in first["loc"])
        dotted = ".".join(keypath) or "(root)"
        msg = _unknown_key(Settings, keypath) if first["type"] == "extra_forbidden" else first["msg"]
        if _nested_get(values, keypath) or (keypath and keypath[0] in values and not _nested_get(data, keypath)):
            where = "argument"
            return ConfigError(f"{where} {dotted}: {msg}", key=dotted)
        env_name = ENV_PREFIX + "__".join(p.upper() for p in keypath)
        if env_name in os.environ:
            return ConfigError(f"environment {env_name}: {msg}", key=dotted)
        if path is not None and (_nested_get(data, keypath) or _nested_get(data, keypath[:-1])):
            line = find_key_line(path, keypath)
            return ConfigError(f"{path}:{line or '?'}: {dotted}: {msg}", file=str(path), key=dotted, line=line)
        return ConfigError(f"{dotted}: {msg}", key=dotted, file=str(path) if path else None)

    # -- plugin sections ---------------------------------------------------------------------------

    @property
    def file(self) -> Path | None:
        """The TOML file these settings were read from, if any."""
        return self._file

    def raw_sections(self) -> dict[str, Any]:
        """The ``[plugins.<name>]`` tables as given (not yet validated)."""
        return dict(self.plugins.model_extra or {})

    def bind(self, models: Mapping[str, type[BaseModel]], ignore: Iterable[str] = ()) -> Settings:
        """Validate every plugin table against the contributed models; return settings that know them.

        Tables named in `ignore` (plugins blocked by ``plugins.disable``) are skipped, so disabling a
        plugin does not require deleting its table.

        Raises:
            ConfigError: a table names no loaded plugin, or fails its model (file, key path, line).
        """
        raw = self.raw_sections()
        sections: dict[str, BaseModel] = {}
        skip = set(ignore)
        for name in raw:
            if name not in models and name not in skip:
                known = ", ".join(sorted(models)) or "none"
                raise self._section_error(("plugins", name), f"no loaded plugin named {name!r} has settings "
                                          f"(plugins with settings: {known})")
        for name, model in models.items():
            table = raw.get(name, {})
            if isinstance(table, BaseModel):
                table = table.model_dump()
            if not isinstance(table, Mapping):
                raise self._section_error(("plugins", name), "must be a table")
            try:
                sections[name] = model.model_validate(table)
            except ValidationError as exc:
                first = exc.errors()[0]
                keypath = ("plugins", name, *(str(p) for p in first["loc"]))
                msg = _unknown_key(model, keypath[2:]) if first["type"] == "extra_forbidden" else first["msg"]
                raise self._section_error(keypath, msg) from None
        bound = self.model_copy()
        bound._file, bound._file_data, bound._init_data = self._file, self._file_data, self._init_data
        bound._sections = sections
        return bound

    def _section_error(self, keypath: tuple[str, ...], msg: str) -> ConfigError:
        """A plugin table's error, blamed on the source the failing value came from: the source of
        the highest precedence (an argument, an environment variable, the file, whose line is
        given) that holds the whole key path, else the deepest part of it some source holds."""
        dotted = ".".join(keypath)
        for depth in range(len(keypath), 1, -1):
            part = keypath[:depth]
            if _nested_get(self._init_data, part):
                return ConfigError(f"argument {dotted}: {msg}", key=dotted)
            name = _env_holding(part)
            if name is not None:
                return ConfigError(f"environment {name}: {dotted}: {msg}", key=dotted)
            if self._file is not None and _nested_get(self._file_data, part):
                line = find_key_line(self._file, keypath)
                return ConfigError(f"{self._file}:{line or '?'}: {dotted}: {msg}", file=str(self._file), key=dotted,
                                   line=line)
        prefix = ENV_PREFIX + "__".join(p.upper() for p in keypath[:2]) + "__"
        names = sorted(k for k in os.environ if k.upper().startswith(prefix))
        if names:
            return ConfigError(f"environment {', '.join(names)}: {dotted}: {msg}", key=dotted)
        return ConfigError(f"{dotted}: {msg}", key=dotted)

    def plugin(self, name: str) -> BaseModel | None:
        """The validated ``[plugins.<name>]`` table (defaults if absent), or ``None`` if unknown.

        Raises:
            ConfigError: the settings were never bound to a plugin manager (see `bind`).
        """
        if self._sections is None:
            raise ConfigError("settings are not bound to the loaded plugins yet (call Settings.bind)",
                              help="Read plugin tables from a compiled graph's `graph.settings` (bound to its "
                                   "plugins), or from `Settings.bind(models)`.")
        return self._sections.get(name)

    @property
    def sections(self) -> dict[str, BaseModel]:
        """Every validated plugin table (empty before `bind`)."""
        return dict(self._sections or {})

    # -- writing back ------------------------------------------------------------------------------

    def to_data(self) -> dict[str, Any]:
        """JSON/TOML-ready data of the effective settings (``None`` values left out)."""
        data = self.model_dump(mode="json", exclude_none=True)
        if self._sections is not None:
            data["plugins"] = {"disable": list(self.plugins.disable),
                               **{n: m.model_dump(mode="json", exclude_none=True) for n, m in self._sections.items()}}
        return data

    def to_toml(self) -> str:
        """The effective settings as TOML (what `railgraph config show` prints)."""
        return tomli_w.dumps(self.to_data())

    def origins(self) -> dict[str, str]:
        """Dotted key → where its value came from: ``argument``, ``env``, ``file`` or ``default``."""
        env = EnvSettingsSource(type(self), case_sensitive=False, env_prefix=ENV_PREFIX, env_nested_delimiter="__")()
        out: dict[str, str] = {}

        def walk(data: Any, prefix: tuple[str, ...]) -> None:
            if isinstance(data, Mapping) and data:
                for k, v in data.items():
                    walk(v, (*prefix, str(k)))
                return
            if _nested_get(self._init_data, prefix) or (prefix and prefix[0] in self._init_data
                                                        and isinstance(self._init_data[prefix[0]], BaseModel)):
                out[".".join(prefix)] = "argument"
            elif _nested_get(env, prefix):
                out[".".join(prefix)] = "env"
            elif _nested_get(self._file_data, prefix):
                out[".".join(prefix)] = "file"
            else:
                out[".".join(prefix)] = "default"

        walk(self.to_data(), ())
        return out


def commented_toml(models: Mapping[str, type[BaseModel]] | None = None) -> str:
    """A TOML document with every key at its default, each preceded by its description as a comment."""
    lines = ["# railgraph configuration. Every key is shown with its default.",
             "# Precedence: arguments > RAILGRAPH_* environment (__ nests) > this file > defaults.", ""]

    def table(header: str, model: type[BaseModel]) -> None:
        doc = (model.__doc__ or "").strip().splitlines()
        lines.append(f"# {doc[0]}" if doc else f"# [{header}]")
        lines.append(f"[{header}]")
        instance = model()
        for name, info in model.model_fields.items():
            if info.description:
                lines.append(f"# {info.description}")
            value = getattr(instance, name)
            if isinstance(value, BaseModel):
                continue
            if value is None:
                lines.append(f"# {name} =")
            else:
                lines.append(_toml_line(name, _plain(value)))
        lines.append("")

    table("runner", RunnerSettings)
    table("persistence", PersistenceSettings)
    table("errors", ErrorsSettings)
    table("plugins", PluginsSettings)
    for name, model in sorted((models or {}).items()):
        table(f"plugins.{name}", model)
    return "\n".join(lines)


def _toml_line(name: str, value: Any) -> str:
    """``name = value`` on one line (a mapping as an inline table, not a ``[name]`` header)."""
    if isinstance(value, Mapping):
        items = ", ".join(_toml_line(k, v) for k, v in value.items())
        return f"{tomli_w.dumps({name: 0}).split('=')[0].strip()} = {{{' ' + items + ' ' if items else ''}}}"
    return tomli_w.dumps({name: value}).strip()


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def locate_in_file(settings: Settings, exc: ConfigError) -> ConfigError:
    """`exc`, raised about a key of `settings` by code that did not know where the key came from,
    naming the file and line when the key came from `settings`' TOML file; else `exc` itself."""
    if exc.file is None and exc.key and settings.file is not None and settings.origins().get(exc.key) == "file":
        line = find_key_line(settings.file, tuple(exc.key.split(".")))
        return ConfigError(f"{settings.file}:{line or '?'}: {exc.message}", file=str(settings.file), key=exc.key,
                           line=line)
    return exc


__all__ = [
    "ErrorsSettings",
    "PersistenceSettings",
    "PluginsSettings",
    "RunnerSettings",
    "Settings",
    "commented_toml",
    "find_key_line",
    "locate_in_file",
    "read_toml",
]
