"""The ``railgraph`` command: run graphs, read error trails, inspect plugins, config and the store.

Every failure is a short message and a distinct exit code, never a traceback: a `RunnerError` is
rendered as a compiler-style diagnostic (see `railgraph.render`) and exits with its ``exit_code``;
a usage error exits 64; anything unexpected is reported in one line and exits 70
(``RAILGRAPH_DEBUG=1`` prints the traceback too).

    0    success (a run that paused at an interrupt included)
    1    RunnerError (generic)                2    GraphError: invalid graph, TARGET not loadable
    3    ConfigError                          4    PluginError
    5    EventDecodeError                     6    InputError: bad --input JSON or @file
    10   NodeFailed                           11   NodeTimeout
    12   ReservedKeyError / UnstorableValue   13   RouterError
    14   BarrierError                         15   StepLimitError
    16   CheckpointError: store unreadable    17   SessionBusyError
    18   SessionNotFoundError                 64   usage error (bad option, missing argument)
    66   no store: a read-only command found no SQLite file at the configured path (none is created)
    70   internal error (a bug)               73   config init refused to overwrite / cannot write
    130  interrupted (Ctrl-C)

This module is an I/O edge: it reads files, the environment and the store, and prints.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import importlib.util
import inspect
import io
import json
import os
import re
import shlex
import sqlite3
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

import click
from pydantic import BaseModel, Field, create_model
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from . import __version__, hookspecs
from .checkpoint import Checkpointer
from .config import (
    ENV_PREFIX,
    ErrorsSettings,
    PersistenceSettings,
    PluginsSettings,
    RunnerSettings,
    Settings,
    commented_toml,
    find_key_line,
    locate_in_file,
)
from .errors import CheckpointError, ConfigError, GraphError, InputError, RunnerError, SessionNotFoundError
from .events import ErrorEvent
from .graph import GraphBuilder, GraphSpec
from .hookspecs import EXTRA_ERRORS_MODES, StepReport, hookimpl
from .manager import ENTRY_POINT_GROUP, Plugins, _entry_points, dist_identity, make_plugins
from .render import diagnostic_from_failure, render_diagnostic, render_events, scope_text, summarize_events
from .runner import CompiledGraph, Runner, check_session_id
from .state import ERRORS_KEY, coerce_input

EXIT_USAGE = 64
EXIT_NO_STORE = 66  # sysexits EX_NOINPUT: the store a read-only command should read does not exist
EXIT_INTERNAL = 70
EXIT_CANTCREAT = 73
EXIT_INTERRUPTED = 130
DEFAULT_SQLITE_PATH = Path(".railgraph") / "railgraph.db"
TARGET_HELP = ("TARGET is path/to/file.py:NAME or package.module:NAME, where NAME is a GraphBuilder, a compiled "
               "graph, or a function taking no arguments that returns one (NAME defaults to `graph`).")


# ---------------------------------------------------------------------------------------------
# Consoles, settings and the store
# ---------------------------------------------------------------------------------------------


class _Stdout(io.TextIOBase):
    """Standard output that outlives its reader. When the reader goes away (``railgraph run ... |
    head``), the rest of the output is dropped and the command goes on: a run still finishes,
    commits and exits with its own code (a broken pipe once killed the run mid-step, exit 1,
    silent). Wraps the stream it is given, not whatever ``sys.stdout`` is later (rich's live
    display swaps in a proxy that writes back into the console)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self.gone = True
        # what the stream still buffers goes nowhere: its flush at exit must not raise again
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self._stream.fileno())
            finally:
                os.close(devnull)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", None) or "utf-8"


def _stdout() -> TextIO | None:
    """``sys.stdout`` as a `_Stdout` (``None`` when the process has no standard output)."""
    out = sys.stdout
    return out if out is None or isinstance(out, _Stdout) else _Stdout(out)


@contextmanager
def _outliving_reader() -> Iterator[None]:
    """For a run: ``sys.stdout`` is a `_Stdout` meanwhile, so what nodes print to a closed pipe is
    dropped too instead of failing them."""
    before = sys.stdout
    sys.stdout = _stdout()  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout = before


def _console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False, emoji=False, markup=False,  # user data is never markup
                      file=None if stderr else _stdout())
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160  # plain output is read by people and tools: do not wrap at 80
    return console


def _config_callback(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta["railgraph.config"] = value


def config_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--config FILE`` on a command (also accepted before the command name)."""
    return click.option("--config", "-c", metavar="FILE", expose_value=False, callback=_config_callback,
                        is_eager=True, help="TOML settings file (default: $RAILGRAPH_CONFIG, else ./railgraph.toml).")(fn)


def config_path() -> str | None:
    """The ``--config`` given on the command line, if any."""
    return click.get_current_context().meta.get("railgraph.config")


def load_settings() -> Settings:
    """Settings from ``--config`` (else the usual sources); plugin tables are not validated yet."""
    return Settings.load(config_path())


def bind_settings(settings: Settings) -> tuple[Settings, Plugins]:
    """`settings` validated against the installed plugins, ``[plugins.*]`` tables and ``plugins.disable`` included.

    Raises:
        ConfigError: a plugin table or ``plugins.disable`` is invalid (file and line when it came from the file).
        PluginError: an installed plugin fails to load.
    """
    try:
        plugins = make_plugins(disable=settings.plugins.disable)
    except ConfigError as exc:
        located = locate_in_file(settings, exc)  # as the runner names it
        if located is exc:
            raise
        raise located from None
    return plugins.bind(settings), plugins


def bound_settings() -> tuple[Settings, Plugins]:
    """Settings from ``--config`` validated against the installed plugins (see `bind_settings`)."""
    return bind_settings(load_settings())


class NoStoreError(click.ClickException):
    """A read-only command found no store to read (exit 66); it does not create one."""

    exit_code = EXIT_NO_STORE

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


def _bind_quietly(settings: Settings) -> tuple[Settings, Plugins] | None:
    """`settings` bound to the installed plugins, or ``None`` if that fails (the runner then reports why)."""
    try:
        plugins = make_plugins(disable=settings.plugins.disable)
        return plugins.bind(settings), plugins
    except RunnerError:
        return None


def missing_store(settings: Settings) -> tuple[str, str] | None:
    """When the configured store does not exist (nothing is created to find out): its long and short
    messages. The built-in SQLite store's file is checked here; another store plugin answers the
    ``store_missing`` hook. ``None`` when it exists, or nobody can tell."""
    bound = _bind_quietly(settings)
    if bound is None:
        return None
    settings, plugins = bound
    backend = settings.persistence.backend
    if backend == "sqlite" and "sqlite_store" in plugins.implementers("make_checkpointer"):
        path = _sqlite_path(settings)
        return None if path.exists() else (no_store_message(path), no_store_message(path, short=True))
    answer = plugins.first("store_missing", backend=backend, settings=settings)[1]
    return (answer, answer) if isinstance(answer, str) else None


def _redact_dsn(dsn: str) -> str:
    """A PostgreSQL DSN without its password (URL ``user:pw@`` or a ``password=`` pair)."""
    dsn = re.sub(r"(://[^:/@?#]*):[^@/?#]*@", r"\1@", dsn)
    return re.sub(r"(?i)\b((?:ssl)?password)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)", r"\1=[REDACTED]", dsn)


def store_description(settings: Settings) -> str:
    """Which store `settings` select, for messages: backend and file or DSN (never a password)."""
    backend = settings.persistence.backend
    if backend == "sqlite":
        path = _sqlite_path(settings)
        return f"sqlite store {path.resolve() if not path.is_absolute() else path}"
    if backend == "postgres":
        section = settings.sections.get("postgres_store")
        dsn, schema = getattr(section, "dsn", ""), getattr(section, "schema", None)
        return f"postgres store {_redact_dsn(dsn) or '(no dsn)'}" + (f", schema {schema}" if schema else "")
    if backend == "memory":
        return "memory store of this process"
    return f"{backend} store"


def no_store_message(path: Path, *, short: bool = False) -> str:
    shown = path.resolve() if not path.is_absolute() else path
    if short:
        return f"no store at {shown} (nothing has run with these settings in this directory)"
    return (f"no store at {shown}: nothing has run with these settings in this directory (persistence.backend "
            f"\"sqlite\", [plugins.sqlite_store] path {str(path)!r}); run where the runs ran and with their "
            "--config, or run a graph first")


def open_store(settings: Settings | None = None, *, existing: bool = False, session: str | None = None) -> Runner:
    """A runner without a graph: the configured store and plugins, for reading sessions and errors.

    With `existing`, a missing SQLite file is not created: `NoStoreError` (exit 66), or
    `SessionNotFoundError` (18) naming the path when a `session` was asked for.
    """
    settings = settings if settings is not None else load_settings()
    if existing:
        missing = missing_store(settings)
        if missing is not None:
            if session is not None:
                raise SessionNotFoundError(f"session {session!r} is not in the store: {missing[1]}", session=session)
            raise NoStoreError(missing[0])
    spec = GraphSpec(nodes={}, entry=(), edges={}, routers={}, name="(store)")
    return Runner(spec, settings=settings)


@contextmanager
def store_errors(what: str) -> Iterator[None]:
    """Turn anything a store raises that is not a `RunnerError` into a `CheckpointError`."""
    try:
        yield
    except RunnerError:
        raise
    except Exception as exc:
        raise CheckpointError(f"the store could not be read while {what}: {type(exc).__name__}: {exc}") from exc


def _session_exists(store: Checkpointer, session: str) -> bool:
    return store.latest(session) is not None or bool(store.session_events(session))


# ---------------------------------------------------------------------------------------------
# The command group and its error boundary
# ---------------------------------------------------------------------------------------------


def _show_internal(exc: BaseException) -> None:
    err = _console(stderr=True)
    err.print(Text(f"internal error: {type(exc).__name__}: {exc}", style="bold red"), soft_wrap=True)
    if os.environ.get("RAILGRAPH_DEBUG"):
        err.print("".join(traceback.format_exception(exc)), markup=False, soft_wrap=True)
    else:
        err.print("This is a bug in railgraph or a plugin; RAILGRAPH_DEBUG=1 shows the traceback.", style="dim")


class RailgraphGroup(click.Group):
    """The root group: maps every failure to a diagnostic and an exit code (see the module table)."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        code = self.run(args, prog_name or "railgraph", complete_var, **extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def run(self, args: Sequence[str] | None, prog_name: str, complete_var: str | None, **extra: Any) -> int:
        """Run the command line; return the exit code instead of exiting."""
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            return rv if isinstance(rv, int) else 0
        except click.UsageError as exc:
            exc.show()
            return EXIT_USAGE
        except click.ClickException as exc:
            exc.show()
            return exc.exit_code
        except click.Abort:
            click.echo("aborted", err=True)
            return EXIT_INTERRUPTED
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            return EXIT_INTERRUPTED
        except RunnerError as exc:
            _console(stderr=True).print(render_diagnostic(exc), soft_wrap=True)
            return exc.exit_code
        except BrokenPipeError:
            # the reader went away (`railgraph errors s | head`): silence the final flush too
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 0
        except Exception as exc:
            _show_internal(exc)
            return EXIT_INTERNAL


@click.group(cls=RailgraphGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="railgraph", message="%(prog)s %(version)s")
@config_option
def cli() -> None:
    """railgraph: graph workflows whose errors are typed, durable, bounded and pluggable.

    Exit codes: 0 ok (an interrupt pause too), 1 other error, 2 graph/TARGET, 3 config, 4 plugin,
    5 event JSON, 6 input, 10-15 run failures, 16 store unreadable, 17 session busy, 18 no such
    session, 64 usage, 66 no store, 70 internal, 73 cannot write the file, 130 interrupted (Ctrl-C);
    the README has the full table.
    """


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``railgraph``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="railgraph")


# ---------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------


def _target_error(target: str, why: str) -> GraphError:
    return GraphError(f"cannot load TARGET {target!r}: {why}", help=TARGET_HELP)


def _import_file(target: str, ref: str) -> Any:
    path = Path(ref)
    if not path.is_file():
        raise _target_error(target, f"file {ref} not found")
    # the file's own name, as `python file.py` users expect in type names (stored in events for good)
    name = path.stem if path.stem.isidentifier() else "railgraph_target_" + re.sub(r"\W", "_", path.stem)
    loaded = sys.modules.get(name)
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() != path.resolve():
        name = "railgraph_target_" + re.sub(r"\W", "_", str(path.resolve().with_suffix("")))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise _target_error(target, f"{ref} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    parent = str(path.resolve().parent)
    if parent not in sys.path:
        sys.path.insert(0, parent)  # so the file can import its neighbours, as `python file.py` would
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except RunnerError:
        sys.modules.pop(name, None)
        raise
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        raise _target_error(target, f"importing {ref} raised {type(exc).__name__}: {exc}") from exc
    return module


def _import_module(target: str, ref: str) -> Any:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: modules of the working directory import
    try:
        return importlib.import_module(ref)
    except ModuleNotFoundError as exc:
        if exc.name and (ref == exc.name or ref.startswith(exc.name + ".")):
            raise _target_error(target, f"no module named {exc.name!r}") from None
        raise _target_error(target, f"importing {ref} raised ModuleNotFoundError: {exc}") from exc
    except RunnerError:
        raise
    except (Exception, SystemExit) as exc:
        raise _target_error(target, f"importing {ref} raised {type(exc).__name__}: {exc}") from exc


def load_target(target: str) -> GraphSpec:
    """Resolve TARGET to a validated graph spec.

    Raises:
        GraphError: the file or module cannot be imported, has no such attribute, the attribute is
            not a graph, a factory failed, or the graph is invalid.
    """
    ref, sep, attr = target.rpartition(":")
    if not sep:
        ref, attr = target, "graph"
    if not ref or not attr:
        raise _target_error(target, "expected path/to/file.py:NAME or package.module:NAME")
    is_file = ref.endswith(".py") or "/" in ref or os.sep in ref
    module = _import_file(target, ref) if is_file else _import_module(target, ref)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            found = sorted(n for n, v in vars(module).items()
                           if isinstance(v, (GraphBuilder, CompiledGraph)) and not n.startswith("_"))
            hint = f" (graphs it defines: {', '.join(found)})" if found else ""
            raise _target_error(target, f"{ref} has no attribute {attr!r}{hint}")
        obj = getattr(obj, part)
    if not isinstance(obj, (GraphBuilder, CompiledGraph)) and callable(obj) and not inspect.isclass(obj):
        try:
            obj = obj()
        except RunnerError:
            raise
        except TypeError as exc:
            raise _target_error(target, f"calling {attr}() failed: {exc} (a factory takes no arguments)") from exc
        except Exception as exc:
            raise _target_error(target, f"calling {attr}() raised {type(exc).__name__}: {exc}") from exc
    if isinstance(obj, GraphBuilder):
        return obj.validate()
    if isinstance(obj, CompiledGraph):
        return obj.spec
    kind = type(obj).__name__
    article = "an" if kind[:1].lower() in "aeiou" else "a"
    raise _target_error(target, f"{attr} is {article} {kind}, not a GraphBuilder, a compiled graph or a "
                                "factory returning one")


def read_input(raw: str | None) -> Any:
    """Parse ``--input``: JSON text, ``@file`` (JSON in a file) or ``@-`` (JSON on stdin).

    Raises:
        InputError: the file cannot be read, or the text is not JSON (with its line and column).
    """
    if raw is None:
        return {}
    source = "--input"
    text = raw
    if raw.startswith("@"):
        name = raw[1:]
        source = name or "-"
        try:
            text = sys.stdin.read() if name in ("", "-") else Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: a NUL in the path
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise InputError(f"cannot read input file {name}: {reason}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}:{exc.lineno}:{exc.colno}: input is not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise InputError(f"{source}: input is nested too deeply to be read as JSON") from None


def _wrap_nodes(spec: GraphSpec, running: dict[str, float]) -> GraphSpec:
    """The same graph whose nodes record themselves in `running` while they run (for the live view)."""

    def wrap(node: Any) -> Any:
        fn, name = node.fn, node.name
        if node.is_async:
            async def arun(*args: Any) -> Any:
                running[name] = time.monotonic()
                try:
                    return await fn(*args)
                finally:
                    running.pop(name, None)
            return dataclasses.replace(node, fn=arun)

        def run(*args: Any) -> Any:
            running[name] = time.monotonic()
            try:
                return fn(*args)
            finally:
                running.pop(name, None)
        return dataclasses.replace(node, fn=run)

    return dataclasses.replace(spec, nodes={n: wrap(s) for n, s in spec.nodes.items()})


class Progress:
    """A code plugin (``after_step``) that shows progress: a live panel on a terminal, lines otherwise."""

    name = "railgraph_cli_progress"

    def __init__(self, console: Console, session: str, live: bool) -> None:
        self.console, self.session, self.live = console, session, live
        self.events: list[ErrorEvent] = []
        self.step = 0
        self.status = "starting"
        self.last_ran: tuple[str, ...] = ()
        self.last_reused: tuple[str, ...] = ()
        self.running: dict[str, float] = {}
        self.started = time.monotonic()
        self.on_start: Callable[[bool], None] | None = None  # called once the run holds the session's claim
        self._lock = threading.Lock()

    @hookimpl
    def before_session(self, session: str, resumed: bool) -> None:
        """The runner claimed the session and loaded it: the run really starts."""
        if session == self.session and self.on_start is not None:
            self.on_start(resumed)

    @hookimpl
    def after_step(self, report: StepReport) -> None:
        """Record the step; print a line when not on a terminal."""
        if report.session != self.session:
            return
        with self._lock:
            self.events.extend(report.events)
            self.step, self.status = report.step, report.status
            self.last_ran = tuple("input" if n == "__input__" else n for n in report.ran if n not in report.reused)
            self.last_reused = report.reused
        if not self.live:
            line = f"step {report.step}: ran {', '.join(self.last_ran) or '-'}"
            if report.reused:
                line += f" (reused the stored result of {', '.join(report.reused)})"
            if report.skipped:
                line += f" (skipped {', '.join(report.skipped)})"
            if report.events:
                line += f" · {len(report.events)} event{'s' if len(report.events) != 1 else ''}"
            line += f" · {report.status}"
            self.console.print(line, markup=False, soft_wrap=True)

    def __rich__(self) -> Group:
        with self._lock:
            now = time.monotonic()
            running = ", ".join(f"{n} ({now - t:.1f}s)" for n, t in sorted(self.running.items())) or "-"
            head = Text.assemble(("⏵ ", "green"), ("session ", "dim"), (self.session, "bold"),
                                 ("  step ", "dim"), (str(self.step + 1 if self.running else self.step), "bold"),
                                 ("  elapsed ", "dim"), f"{now - self.started:.1f}s")
            lines = [head, Text.assemble(("  running: ", "dim"), running),
                     Text.assemble(("  last step ran: ", "dim"), ", ".join(self.last_ran) or "-",
                                   (f" (reused the stored result of {', '.join(self.last_reused)})"
                                    if self.last_reused else "", "dim"))]
            errs = Text.assemble(("  errors so far: ", "dim"), (str(len(self.events)), "bold red" if self.events else ""))
            if self.events:
                last = self.events[-1]
                message = last.error.message if len(last.error.message) <= 80 else last.error.message[:79] + "…"
                errs.append(f"  (last: {scope_text(last)} · {last.error.type}: {message})", style="dim")
            lines.append(errs)
        return Group(*lines)


def settings_env() -> list[str]:
    """The RAILGRAPH_* variables that change settings (``RAILGRAPH_CONFIG`` unless --config was given)."""
    return sorted(k for k in os.environ if k.startswith(ENV_PREFIX) and
                  ("__" in k or (k == ENV_PREFIX + "CONFIG" and config_path() is None)))


def resume_command(target: str, session: str, *, config: str | None = None, max_steps: int | None = None) -> str:
    """The shell command that resumes `session` with the same --config and --max-steps (quoted for a shell)."""
    args = ["railgraph", "run", target]
    if config is not None:
        args += ["--config", config]
    args += ["--session", session, "--resume"]
    if max_steps is not None:
        args += ["--max-steps", str(max_steps)]
    return " ".join(shlex.quote(a) for a in args)


def _print_resume(console: Console, target: str, session: str, max_steps: int | None, style: str = "") -> None:
    console.print(f"  resume with: {resume_command(target, session, config=config_path(), max_steps=max_steps)}",
                  markup=False, soft_wrap=True, style=style)
    env = settings_env()
    if env:
        console.print(f"  (this run also took settings from the environment: {', '.join(env)}; a resume uses "
                      "the environment it runs in)", markup=False, soft_wrap=True, style=style or "dim")


@cli.command()
@click.argument("target")
@config_option
@click.option("--session", "-s", help="Session id (default: a new random id). Reuse it to resume or restart.")
@click.option("--input", "-i", "input_", metavar="JSON|@FILE",
              help='Input: JSON text such as \'{"extra": {"n": 1}}\', or @file.json, or @- for stdin.')
@click.option("--resume", is_flag=True, help="Resume the stored session from its last checkpoint (needs --session).")
@click.option("--max-steps", type=click.IntRange(min=1), help="Supersteps this run may take (default runner.max_steps).")
def run(target: str, session: str | None, input_: str | None, resume: bool, max_steps: int | None) -> None:
    """Run the graph TARGET (path/to/file.py:NAME or package.module:NAME).

    On failure prints the diagnostic and exits with the error's exit code.
    """
    with _outliving_reader():
        _run(target, session, input_, resume, max_steps)


def _run(target: str, session: str | None, input_: str | None, resume: bool, max_steps: int | None) -> None:
    if resume and not session:
        raise click.UsageError("--resume needs --session (the session to resume)")
    if resume and input_ is not None:
        raise click.UsageError("--resume continues from the stored checkpoint and takes no --input")
    if session is not None:
        check_session_id(session)
    data = None if resume else read_input(input_)
    if data is not None:
        coerce_input(data)  # its shape, before a store is opened or created, or anything printed
    settings = load_settings()
    # The whole config, plugin tables included, before TARGET's module-level code runs. The runner
    # binds the same installed plugins again: the CLI never takes plugins from the target itself.
    check_resolvable(*bind_settings(settings), ask_stores=False)
    spec = load_target(target)
    if resume:
        missing = missing_store(settings)
        if missing is not None:  # do not create an empty store just to find the session is not in it
            raise SessionNotFoundError(f"session {session!r} has no stored checkpoint to resume: {missing[1]}",
                                       session=session)
    out = _console()
    session = session or uuid.uuid4().hex[:12]
    live = out.is_terminal
    progress = Progress(out, session, live)
    if live:
        spec = _wrap_nodes(spec, progress.running)
    runner = Runner(spec, settings=settings, plugins=[progress])
    graph = CompiledGraph(spec, runner)
    if not live:
        out.print(f"{'resuming' if resume else 'running'} {target} · session {session} · "
                  f"store {runner.settings.persistence.backend}", markup=False, soft_wrap=True)
    prior = None
    if not resume:
        with store_errors(f"reading session {session!r}"):
            prior = runner.checkpointer.latest(session)

    def restart_note(resumed: bool) -> None:  # only once the claim is ours: a busy session is not restarted
        if prior is not None and not resumed:
            out.print(f"note: session {session} exists ({prior.status} at step {prior.step}): starting it again "
                      "from the entry; its trail keeps the earlier events (use --resume to continue it instead)",
                      style="dim", markup=False, soft_wrap=True)

    progress.on_start = restart_note
    display = Live(progress, console=out, refresh_per_second=8, transient=True) if live else nullcontext()
    try:
        try:
            with display:
                state = graph.invoke(data, session=session, max_steps=max_steps)
        except KeyboardInterrupt:
            errs = _console(stderr=True)
            if progress.step or resume:  # something of this session is committed: it can be resumed
                at = f"after step {progress.step}" if progress.step else "at its last checkpoint"
                errs.print(f"interrupted (Ctrl-C): session {session} stopped {at} (every committed step is kept); "
                           "the store shows it as \"running\" until it is resumed or restarted",
                           markup=False, soft_wrap=True)
                _print_resume(errs, target, session, max_steps)
            else:
                errs.print("interrupted (Ctrl-C) before the run committed anything", markup=False, soft_wrap=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except RunnerError as err:
            if isinstance(err, SessionNotFoundError):  # name the store that was looked in
                err = SessionNotFoundError(f"{err.message} (in the {store_description(runner.settings)})",
                                           session=err.session)
            failed = {e.id for e in err.events}
            earlier = [e for e in progress.events if e.id not in failed]
            if earlier:
                out.print(render_events(earlier, title=f"events of session {session} before the failure"),
                          soft_wrap=True)
            errs = _console(stderr=True)
            errs.print(render_diagnostic(err), soft_wrap=True)
            if err.event is not None and err.session:  # the failure was committed: it can be resumed
                _print_resume(errs, target, session, max_steps, style="dim")
            raise click.exceptions.Exit(err.exit_code) from None
        if progress.events:
            out.print(render_events(progress.events, title=f"error ladder of session {session} (this run)"),
                      soft_wrap=True)
        line = Text.assemble(("✔ " if state.status == "completed" else "⏸ ", "green"), "session ",
                             (session, "bold"), f" {state.status} at step {state.step}")
        out.print(line, soft_wrap=True)
        if state.status == "interrupted":
            _print_resume(out, target, session, max_steps)
        if progress.events:
            out.print(f"  the full trail: railgraph errors {session}", markup=False, soft_wrap=True)
    finally:
        graph.close()


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO date/time (UTC if naive) or a duration back from now (``30s 10m 2h 1d 1w``)."""
    m = _DURATION.match(value)
    if m:
        return (now or datetime.now(timezone.utc)) - timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither an ISO time (2026-01-31T12:00) nor a duration "
                                 "(30s, 10m, 2h, 1d, 1w)", param_hint="--since") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def type_matches(type_name: str, pattern: str) -> bool:
    """`pattern` (a glob) matches the dotted exception type or its last part (``CRMUnavailable``)."""
    return fnmatch.fnmatchcase(type_name, pattern) or fnmatch.fnmatchcase(type_name.rpartition(".")[2], pattern)


def filter_events(events: Sequence[ErrorEvent], *, scopes: Sequence[str] = (), nodes: Sequence[str] = (),
                  codes: Sequence[str] = (), types: Sequence[str] = (), tags: Sequence[str] = (),
                  since: datetime | None = None, limit: int | None = None) -> list[ErrorEvent]:
    """Events matching every given filter, the newest `limit` of them, in order.

    `codes` and `types` are globs: a code matches only events that carry one (``event.code``); a
    type matches the exception type of the ladder's top rung (``event.error.type``, e.g.
    ``triage.CRMUnavailable``, or just its last part, ``CRMUnavailable``).
    """
    out = []
    for e in events:
        if scopes and e.scope.kind not in scopes:
            continue
        if nodes and e.node not in nodes:
            continue
        if codes and not any(fnmatch.fnmatchcase(e.code or "", c) for c in codes):
            continue
        if types and not any(type_matches(e.error.type, t) for t in types):
            continue
        if tags and not all(t in e.tags for t in tags):
            continue
        if since is not None and e.when < since:
            continue
        out.append(e)
    return out[-limit:] if limit else out


@cli.command()
@click.argument("session")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of events.")
@click.option("--jsonl", is_flag=True, help="Print one JSON event per line.")
@click.option("--scope", multiple=True, type=click.Choice(["node", "scheduler", "runner", "app"]),
              help="Only events of this scope (repeatable).")
@click.option("--node", multiple=True, help="Only events of this node (repeatable).")
@click.option("--code", multiple=True,
              help="Only events with this code; globs work: 'railgraph.runner.*' (repeatable). Events without a "
                   "code never match: use --type for exception types.")
@click.option("--type", "type_", multiple=True,
              help="Only events whose exception type matches, dotted or its last part; globs work: 'triage.*', "
                   "TimeoutError (repeatable).")
@click.option("--tag", multiple=True, help="Only events carrying this tag (repeatable: all must match).")
@click.option("--since", help="Only events at or after an ISO time (UTC unless it has an offset: "
                              "2026-01-31T12:00+01:00), or within a duration back from now: 30s, 10m, 2h, 1d, 1w.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the newest N matching events.")
def errors(session: str, as_json: bool, jsonl: bool, scope: tuple[str, ...], node: tuple[str, ...],
           code: tuple[str, ...], type_: tuple[str, ...], tag: tuple[str, ...], since: str | None,
           limit: int | None) -> None:
    """Show the persisted error trail of SESSION, oldest first (works after the run ended or crashed)."""
    if as_json and jsonl:
        raise click.UsageError("--json and --jsonl are exclusive")
    check_session_id(session)
    since_at = parse_since(since) if since else None
    runner = open_store(existing=True, session=session)
    try:
        with store_errors(f"reading session {session!r}"):
            if not _session_exists(runner.checkpointer, session):
                raise SessionNotFoundError(f"session {session!r} is not in the store "
                                           f"({store_description(runner.settings)})", session=session)
            events = runner.errors(session)
            latest = runner.checkpointer.latest(session)
            failure = runner.failure(session) if latest is not None and latest.status == "failed" else None
        shown = filter_events(events, scopes=scope, nodes=node, codes=code, types=type_, tags=tag, since=since_at,
                              limit=limit)
        if as_json:
            click.echo(json.dumps([json.loads(e.to_json()) for e in shown], indent=2))
            return
        if jsonl:
            for e in shown:
                click.echo(e.to_json())
            return
        out = _console()
        filtered = len(shown) != len(events)
        title = f"error trail of session {session}" + (f" ({len(shown)} of {len(events)} events)" if filtered else "")
        position = {id(e): i for i, e in enumerate(events, 1)}  # a filtered event keeps its number in the trail
        out.print(render_events(shown, title=title, numbers=[position[id(e)] for e in shown]), soft_wrap=True)
        if failure is not None:
            out.print()
            out.print(Text(f"session {session} failed at step {latest.step if latest else '?'}:", style="bold"))
            out.print(render_diagnostic(diagnostic_from_failure(*failure)), soft_wrap=True)
    finally:
        runner.close()


# ---------------------------------------------------------------------------------------------
# sessions
# ---------------------------------------------------------------------------------------------


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "-"
    secs = max(0.0, (now - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{when:%Y-%m-%d %H:%M:%S}Z ({int(secs // size)}{unit} ago)"
    return f"{when:%Y-%m-%d %H:%M:%S}Z ({int(secs)}s ago)"


@cli.command()
@config_option
@click.option("--status", multiple=True, type=click.Choice(["running", "completed", "failed", "interrupted"]),
              help="Only sessions with this status (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the N most recently updated sessions.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def sessions(status: tuple[str, ...], limit: int | None, as_json: bool) -> None:
    """List stored sessions: status, steps, error count, last error, last update (newest first).

    "running" means the last commit was a running step: the session is running now, or its process
    died (killed, Ctrl-C) before it finished; `railgraph run TARGET --session ID --resume` continues it.
    """
    runner = open_store(existing=True)
    try:
        with store_errors("listing sessions"):
            infos = runner.checkpointer.sessions()
    finally:
        runner.close()
    infos = [i for i in infos if not status or i.status in status][:limit]
    if as_json:
        click.echo(json.dumps([{**dataclasses.asdict(i), "updated": i.updated.isoformat() if i.updated else None}
                               for i in infos], indent=2))
        return
    out = _console()
    if not infos:
        out.print(f"no sessions in the store ({runner.settings.persistence.backend})", markup=False)
        return
    colors = {"completed": "green", "failed": "red", "running": "yellow", "interrupted": "cyan"}
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("session", "status", "steps", "errors", "last error", "updated"):
        table.add_column(col, justify="right" if col in ("steps", "errors") else "left",
                         overflow="fold" if col == "last error" else "ellipsis")
    now = datetime.now(timezone.utc)
    for i in infos:
        table.add_row(i.session, Text(i.status, style=colors.get(i.status, "")), str(i.steps), str(i.error_count),
                      i.last_error or "-", _ago(i.updated, now))
    out.print(table)


# ---------------------------------------------------------------------------------------------
# plugins
# ---------------------------------------------------------------------------------------------


def _implemented_hooks(obj: Any) -> list[str]:
    hooks = set()
    for attr in dir(obj):
        opts = getattr(getattr(obj, attr, None), f"{hookspecs.PROJECT}_impl", None)
        if isinstance(opts, dict):
            hooks.add(opts.get("specname") or attr)
    return sorted(hooks)


def plugin_rows(plugins: Plugins) -> list[dict[str, Any]]:
    """Every entry-point plugin (loaded or blocked) and code plugin: origin, hooks, status."""
    rows: list[dict[str, Any]] = []
    for ep in sorted(_entry_points(), key=lambda e: e.name):
        dist_name, version = dist_identity(getattr(ep, "dist", None))
        origin = f"built-in ({dist_name} {version})" if dist_name == "railgraph" else \
            (f"{dist_name} {version}" if dist_name else "entry point")
        blocked = ep.name in plugins.blocked
        if blocked:
            try:
                hooks = _implemented_hooks(ep.load())
            except Exception as exc:  # a blocked plugin may be blocked precisely because it is broken
                hooks = [f"(not loadable: {type(exc).__name__})"]
        else:
            hooks = plugins.hooks_of(ep.name)
        rows.append({"name": ep.name, "origin": origin, "distribution": dist_name, "version": version,
                     "value": ep.value, "hooks": hooks, "status": "blocked" if blocked else "loaded"})
    for name, origin in sorted(plugins.origins.items()):
        if origin.source == "code":
            rows.append({"name": name, "origin": "code", "distribution": None, "version": None, "value": None,
                         "hooks": plugins.hooks_of(name), "status": "loaded"})
    return rows


@cli.command("plugins")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins_cmd(as_json: bool) -> None:
    """List every plugin: where it came from, the hooks it implements, and whether it is blocked."""
    settings = load_settings()
    plugins = make_plugins(disable=settings.plugins.disable)
    rows = plugin_rows(plugins)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("plugin", "from", "status", "hooks"):
        table.add_column(col, overflow="fold" if col == "hooks" else "ellipsis")
    for r in rows:
        table.add_row(r["name"], r["origin"], Text(r["status"], style="red" if r["status"] == "blocked" else "green"),
                      ", ".join(r["hooks"]) or "-")
    out = _console()
    out.print(table)
    out.print(f"{len(rows)} plugins in entry-point group {ENTRY_POINT_GROUP!r}; "
              f"block one with [plugins] disable = [\"NAME\"]", style="dim", markup=False)


# ---------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------


@cli.group()
def config() -> None:
    """Write, show, explain, validate the settings, or print their JSON Schema."""


@config.command("init")
@click.argument("path", default="railgraph.toml", type=click.Path(dir_okay=False))
@config_option
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def config_init(path: str, force: bool) -> None:
    """Write a commented default TOML file (every key, plugin sections included) to PATH."""
    models = make_plugins().section_models()
    target = Path(path)
    if target.exists() and not force:
        click.echo(f"error: {path} already exists; use --force to overwrite it", err=True)
        raise click.exceptions.Exit(EXIT_CANTCREAT)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(commented_toml(models) + "\n", encoding="utf-8")
    except OSError as exc:
        click.echo(f"error: cannot write {path}: {exc.strerror or exc}", err=True)
        raise click.exceptions.Exit(EXIT_CANTCREAT) from None
    click.echo(f"wrote {path}")


@config.command("show")
@config_option
def config_show() -> None:
    """Print the effective settings (file, environment and defaults merged) as TOML."""
    settings, _ = bound_settings()
    click.echo(settings.to_toml(), nl=False)


def _flat(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, Mapping) and v:
            out.update(_flat(v, (*prefix, str(k))))
        else:
            out[".".join((*prefix, str(k)))] = v
    return out


# hooks whose decision depends on settings only: `explain` asks them for their answer
_DECISIONS_BY_SETTINGS = ("extra_errors_mode", "error_capper", "reserved_change_bumps_version")


def explain_hooks(settings: Settings, plugins: Plugins) -> list[dict[str, Any]]:
    """Each hook: its kind, its implementers in call order and, for settings-only decisions, the answer."""
    rows = []
    for hook in sorted(hookspecs._spec_names()):
        caller = getattr(plugins.pm.hook, hook)
        firstresult = bool(caller.spec and caller.spec.opts.get("firstresult"))
        row: dict[str, Any] = {"hook": hook, "kind": "decision" if firstresult else "all",
                               "implementers": plugins.implementers(hook)}
        if hook in _DECISIONS_BY_SETTINGS:
            who, answer = plugins.first(hook, settings=settings)
            row["decided_by"] = who
            if isinstance(answer, (str, bool, int, float)) or answer is None:
                row["answer"] = answer
            else:  # a callable (a capper...): the first line of its docstring says what it does
                doc = (inspect.getdoc(answer) or "").strip().splitlines()
                row["answer"] = doc[0] if doc else f"<{type(answer).__name__}>"
        elif hook == "make_checkpointer":
            row["answer"] = f"backend {settings.persistence.backend!r}"
        rows.append(row)
    return rows


def explain_values(settings: Settings) -> list[tuple[str, Any, str]]:
    """Every key of bound `settings` as ``(key, value, source)``, unset ones (``None``) included."""
    data = settings.model_dump(mode="json")
    data["plugins"] = {"disable": list(settings.plugins.disable),
                       **{n: m.model_dump(mode="json") for n, m in settings.sections.items()}}
    origins = settings.origins()  # covers the keys that have a value
    return [(key, value, origins.get(key, "default")) for key, value in _flat(data).items()]


@config.command("explain")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def config_explain(as_json: bool) -> None:
    """Print each effective value with its source, and which plugin implements each hook.

    Keys that are unset (no value: no limit, no cap...) are listed as ``(unset)``.
    """
    settings, plugins = bound_settings()
    rows = explain_values(settings)
    hooks = explain_hooks(settings, plugins)
    if as_json:
        click.echo(json.dumps({"file": str(settings.file) if settings.file else None,
                               "values": [{"key": k, "value": v, "source": s, **({"unset": True} if v is None else {})}
                                          for k, v, s in rows],
                               "hooks": hooks}, indent=2, default=str))
        return
    out = _console()
    out.print(Text.assemble(("settings file: ", "dim"), str(settings.file) if settings.file else "(none)"))
    table = Table(box=None, header_style="bold", pad_edge=False, title_justify="left")
    table.add_column("key")
    table.add_column("value", overflow="fold")
    table.add_column("source")
    styles = {"default": "dim", "file": "green", "env": "yellow", "argument": "cyan"}
    for key, value, source in rows:
        shown = Text("(unset)", style="dim") if value is None else Text(json.dumps(value))
        table.add_row(key, shown, Text(source, style=styles.get(source, "")))
    out.print(table)
    out.print()
    hooks_table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("hook", "kind", "implemented by (call order)", "decision"):
        hooks_table.add_column(col, overflow="fold")
    for h in hooks:
        decision = ""
        if "decided_by" in h:
            decision = f"{h['answer']} (from {h['decided_by']})" if h["decided_by"] else "no answer: core default"
        elif "answer" in h:
            decision = str(h["answer"])
        hooks_table.add_row(h["hook"], h["kind"], ", ".join(h["implementers"]) or "-", decision)
    out.print(hooks_table)


@config.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
def config_validate(file: str) -> None:
    """Check FILE as `run` would: TOML syntax, unknown keys, types, plugin sections, and that the loaded
    plugins serve its backend and extra-errors mode; the first problem with its file, line and key.

    Opens no store (a third-party backend is asked for its store, as `run` would, and it is closed).
    """
    settings, plugins = bind_settings(Settings.load(file))
    check_resolvable(settings, plugins)
    click.echo(f"{file}: valid")
    named = [k for k in ("interrupt_before", "interrupt_after") if getattr(settings.runner, k)]
    if named:  # node names need the graph: `run` checks them once it has imported TARGET
        click.echo(f"note: the node names in runner.{' and runner.'.join(named)} are checked by `run`, "
                   "against the graph")


def located_error(settings: Settings, key: str, message: str) -> ConfigError:
    """A `ConfigError` about `key` naming where its value came from: file and line, or environment variable."""
    keypath = tuple(key.split("."))
    source = settings.origins().get(key)
    if source == "file" and settings.file is not None:
        line = find_key_line(settings.file, keypath)
        return ConfigError(f"{settings.file}:{line or '?'}: {key}: {message}", file=str(settings.file), key=key,
                           line=line)
    if source == "env":
        return ConfigError(f"environment {ENV_PREFIX}{'__'.join(p.upper() for p in keypath)}: {key}: {message}",
                           key=key)
    return ConfigError(f"{key}: {message}", key=key)


_BUILTIN_BACKENDS = {"sqlite": "sqlite_store", "postgres": "postgres_store", "memory": "memory_store"}


def check_resolvable(settings: Settings, plugins: Plugins, *, ask_stores: bool = True) -> None:
    """What `Runner` resolves beyond the settings model: the extra-errors mode and the backend.

    A backend only a third-party plugin can serve is checked by asking it for its store (closed at
    once); with ``ask_stores=False`` it is left to the runner, and no store is opened here.

    Raises:
        ConfigError: no loaded plugin serves ``persistence.backend``, the postgres backend has no
            DSN, or the extra-errors mode decided by the plugins is unknown (file, line and key).
    """
    who, mode = plugins.first("extra_errors_mode", settings=settings)
    if mode is not None and mode not in EXTRA_ERRORS_MODES:
        raise located_error(settings, "plugins.extra_errors.mode",
                            f"plugin {who} answers unknown extra-errors mode {mode!r}; expected one of "
                            f"{list(EXTRA_ERRORS_MODES)}")
    backend = settings.persistence.backend
    providers = plugins.implementers("make_checkpointer")
    builtin = _BUILTIN_BACKENDS.get(backend)
    if builtin is not None and builtin in providers:
        if backend == "postgres" and not getattr(settings.sections.get("postgres_store"), "dsn", ""):
            raise located_error(settings, "plugins.postgres_store.dsn", 'persistence.backend = "postgres" needs a '
                                "DSN (or RAILGRAPH_PLUGINS__POSTGRES_STORE__DSN)")
        return
    others = [p for p in providers if p not in _BUILTIN_BACKENDS.values()]
    if others and not ask_stores:
        return
    if others:  # only a third-party plugin can serve this name: ask it, as run would
        _, store = plugins.first("make_checkpointer", backend=backend, settings=settings)
        if store is not None:
            store.close()
            return
    served = sorted(b for b, p in _BUILTIN_BACKENDS.items() if p in providers)
    raise located_error(settings, "persistence.backend",
                        f"no loaded plugin provides backend {backend!r} (available: {', '.join(served) or 'none'}"
                        f"{'; third-party store plugins: ' + ', '.join(others) if others else ''})")


def settings_schema(models: Mapping[str, type[BaseModel]]) -> dict[str, Any]:
    """The JSON Schema of the settings file, each plugin's ``[plugins.<name>]`` table included."""
    fields: dict[str, Any] = {name: (model, Field(default_factory=model)) for name, model in sorted(models.items())}
    plugins_model = create_model("PluginsSettings", __base__=PluginsSettings, **fields)
    root = create_model(
        "RailgraphSettings", __base__=BaseModel,
        runner=(RunnerSettings, Field(default_factory=RunnerSettings)),
        persistence=(PersistenceSettings, Field(default_factory=PersistenceSettings)),
        errors=(ErrorsSettings, Field(default_factory=ErrorsSettings)),
        plugins=(plugins_model, Field(default_factory=plugins_model)),
    )
    schema = root.model_json_schema()
    schema["additionalProperties"] = False
    schema["$defs"]["PluginsSettings"]["additionalProperties"] = False  # bind rejects unknown tables
    schema["title"] = "railgraph settings"
    schema["description"] = ("The railgraph TOML settings file. Precedence: arguments > RAILGRAPH_* environment "
                             "(__ nests) > this file > defaults.")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


@config.command("schema")
@config_option
def config_schema() -> None:
    """Print the JSON Schema of the settings, plugin sections included."""
    settings = load_settings()
    models = make_plugins(disable=settings.plugins.disable).section_models()
    click.echo(json.dumps(settings_schema(models), indent=2))


# ---------------------------------------------------------------------------------------------
# migrate
# ---------------------------------------------------------------------------------------------


@cli.group()
def migrate() -> None:
    """Data migrations of the store."""


@migrate.command("errors")
@config_option
@click.option("--dry-run", is_flag=True, help="Count what would be copied; change nothing.")
def migrate_errors(dry_run: bool) -> None:
    """Backfill the dedicated errors store from the extra["errors"] of stored checkpoints (idempotent)."""
    runner = open_store(existing=True)
    try:
        store = runner.checkpointer
        backend = runner.settings.persistence.backend
        if not getattr(store, "has_errors_store", False):
            click.echo(f"backend {backend!r} has no dedicated errors store: nothing to backfill")
            return
        with store_errors("backfilling the errors store"):
            report = store.backfill_errors(dry_run)
    finally:
        runner.close()
    verb = "would add" if dry_run else "added"
    click.echo(f"{'dry run: ' if dry_run else ''}scanned {report.sessions} session(s), {report.checkpoints} "
               f"checkpoint(s), {report.events_seen} event(s) in extra[\"errors\"]; {verb} {report.events_added} "
               "to the errors store")


# ---------------------------------------------------------------------------------------------
# store
# ---------------------------------------------------------------------------------------------


def _json_len(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def _event_bytes(events: Sequence[ErrorEvent]) -> int:
    return sum(len(e.to_json().encode()) for e in events)


def logical_stats(store: Checkpointer, top: int = 5) -> dict[str, Any]:
    """A store-independent report built through the checkpointer protocol.

    Bytes are the compact JSON size of each session's *latest* state per channel and of its error
    trail: what the data weighs, not the disk. The trail is every committed event once (the outbox
    events; the ``extra.errors`` rail when a session has none there); ``extra.errors`` and
    ``errors store`` are listed too, but they hold the same events and are not added again.
    """
    channels = {"messages": 0, "extra": 0, "extra.errors": 0, "outbox events": 0, "errors store": 0}
    per_session = []
    checkpoints = 0
    infos = store.sessions()
    for info in infos:
        cp = store.latest(info.session)
        n_cp = len(store.history(info.session))
        checkpoints += n_cp
        sizes = dict.fromkeys(channels, 0)
        if cp is not None:
            sizes["messages"] = _json_len([m.to_dict() for m in cp.messages])
            sizes["extra"] = _json_len({k: v for k, v in cp.extra.items() if k != ERRORS_KEY})
            sizes["extra.errors"] = _event_bytes(tuple(cp.extra.get(ERRORS_KEY, ())))
        sizes["outbox events"] = _event_bytes(store.session_events(info.session))
        if store.has_errors_store:
            sizes["errors store"] = _event_bytes(store.stored_errors(info.session))
        for k, v in sizes.items():
            channels[k] += v
        trail = sizes["outbox events"] or sizes["extra.errors"]
        per_session.append({"session": info.session, "status": info.status, "checkpoints": n_cp,
                            "events": info.error_count, "bytes": sizes["messages"] + sizes["extra"] + trail,
                            "error_bytes": trail})
    trail = sum(r["error_bytes"] for r in per_session)
    total = channels["messages"] + channels["extra"] + trail
    per_session.sort(key=lambda r: r["bytes"], reverse=True)
    return {"sessions": len(infos), "checkpoints": checkpoints, "bytes_by_channel": channels, "bytes": total,
            "error_trail_bytes": trail, "error_trail_share": (trail / total) if total else 0.0,
            "largest_sessions": per_session[:top]}


def sqlite_file_stats(path: Path) -> dict[str, Any] | None:
    """On-disk size of an SQLite store: the files, and bytes per table and index (``dbstat`` when compiled in)."""
    if not path.is_file():
        return None
    report: dict[str, Any] = {"file": str(path), "file_bytes": path.stat().st_size}
    wal = path.with_name(path.name + "-wal")
    if wal.is_file():
        report["wal_bytes"] = wal.stat().st_size
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return report
    try:
        try:
            rows = con.execute("SELECT name, SUM(payload), SUM(pgsize) FROM dbstat GROUP BY name "
                               "ORDER BY 3 DESC, 2 DESC, 1").fetchall()
            report["tables"] = {name: {"payload_bytes": int(payload), "allocated_bytes": int(size)}
                                for name, payload, size in rows}
        except sqlite3.Error:
            page = con.execute("PRAGMA page_size").fetchone()[0]
            count = con.execute("PRAGMA page_count").fetchone()[0]
            report["database_bytes"] = int(page) * int(count)
    except sqlite3.Error as exc:
        raise CheckpointError(f"{path}: the SQLite store is unreadable: {exc}") from exc
    finally:
        con.close()
    return report


def _sqlite_path(settings: Settings) -> Path:
    section = settings.sections.get("sqlite_store")
    for attr in ("path", "file", "database"):
        value = getattr(section, attr, None)
        if value:
            return Path(value)
    return DEFAULT_SQLITE_PATH


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - loop always returns


@cli.group()
def store() -> None:
    """Inspect the configured store."""


@store.command("stats")
@config_option
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True, help="How many largest sessions.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def store_stats(top: int, as_json: bool) -> None:
    """A storage report: sessions, checkpoints, bytes per channel, the error trail's share, largest sessions."""
    runner = open_store(existing=True)
    try:
        cp = runner.checkpointer
        backend = runner.settings.persistence.backend
        with store_errors("collecting store statistics"):
            report: dict[str, Any] = {"backend": backend, **logical_stats(cp, top)}
            native = getattr(cp, "stats", None)
            if callable(native):
                report["store"] = native()
            elif backend == "sqlite":
                report["store"] = sqlite_file_stats(_sqlite_path(runner.settings))
            else:
                report["store"] = None
    finally:
        runner.close()
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    out = _console()
    out.print(Text.assemble(("backend ", "dim"), (backend, "bold"), ("  sessions ", "dim"), str(report["sessions"]),
                            ("  checkpoints ", "dim"), str(report["checkpoints"])))
    out.print(Text("latest state and error trail, in JSON bytes", style="bold"))
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("channel")
    table.add_column("bytes", justify="right")
    table.add_column("share", justify="right")
    total = report["bytes"] or 1
    channels = report["bytes_by_channel"]
    for name in ("messages", "extra"):
        table.add_row(name, _human(channels[name]), f"{100 * channels[name] / total:.1f}%")
    table.add_row(Text("error trail", style="bold"), _human(report["error_trail_bytes"]),
                  f"{100 * report['error_trail_share']:.1f}%")
    out.print(table)
    out.print(f"  the same events, as extra[\"errors\"] ({_human(channels['extra.errors'])}) and the errors store "
              f"({_human(channels['errors store'])}) read them, are not counted again", style="dim", markup=False,
              soft_wrap=True)
    if report["largest_sessions"]:
        out.print(Text("largest sessions", style="bold"))
        largest = Table(box=None, header_style="bold", pad_edge=False)
        for col in ("session", "status", "checkpoints", "events", "bytes", "error trail"):
            largest.add_column(col, justify="left" if col in ("session", "status") else "right")
        for r in report["largest_sessions"]:
            largest.add_row(r["session"], r["status"], str(r["checkpoints"]), str(r["events"]), _human(r["bytes"]),
                            _human(r["error_bytes"]))
        out.print(largest)
    native_report = report["store"]
    if not native_report:
        if backend != "memory":
            out.print(f"the {backend} store offers no on-disk report (no stats() method)", style="dim", markup=False)
        return
    out.print(Text(f"{backend} store on disk", style="bold"))
    tables = native_report.get("tables") if isinstance(native_report, Mapping) else None
    for key, value in _flat({k: v for k, v in native_report.items() if k != "tables"}).items():
        shown = _human(value) if isinstance(value, int) and "bytes" in key else value
        out.print(f"  {key}: {shown}", markup=False, soft_wrap=True)
    if tables:
        disk = Table(box=None, header_style="bold", pad_edge=False)
        for col in ("table or index", "payload", "allocated"):
            disk.add_column(col, justify="left" if col == "table or index" else "right")
        for name, sizes in tables.items():
            disk.add_row(name, _human(sizes["payload_bytes"]), _human(sizes["allocated_bytes"]))
        out.print(disk)


__all__ = ["cli", "filter_events", "load_target", "main", "open_store", "parse_since", "read_input"]
