"""Hostile input: every decoder fails with its typed error only, never another exception or a traceback.

Decoders: `ErrorEvent.from_json`, stored checkpoints (corrupt rows in a real SQLite file), TOML
configuration (`Settings.load`), and the CLI's ``--input`` (in process with click's CliRunner, and
in a few real subprocesses).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from railgraph import END, START, CheckpointError, ConfigError, EventDecodeError, GraphBuilder, Settings
from railgraph.cli import cli
from railgraph.events import ErrorEvent
from railgraph.manager import make_plugins
from railgraph.plugins.sqlite_store import SqliteCheckpointer
from railgraph.runner import Runner
from strategies import events, json_values

VENV_BIN = Path(sys.executable).parent

# -- ErrorEvent.from_json ---------------------------------------------------------------------------


def _decode_only_typed(data: str | bytes) -> None:
    try:
        ErrorEvent.from_json(data)
    except EventDecodeError as exc:
        assert exc.code == "railgraph.events.invalid" and exc.exit_code == 5
        assert len(str(exc)) < 2000  # a short message, whatever came in


@given(st.binary(max_size=300))
@example(b"\xff\xfe\x00")
@example(b"[" * 5000 + b"]" * 5000)
@example(b'{"id": "' + b"\x00" * 10 + b'"}')
def test_from_json_on_arbitrary_bytes_raises_only_event_decode_error(data: bytes) -> None:
    """Any bytes given to `ErrorEvent.from_json` decode or raise EventDecodeError, nothing else."""
    _decode_only_typed(data)


@given(st.text(max_size=300))
@example("\ud800")
@example('{"id": 1e99999}')
@example("NaN")
def test_from_json_on_arbitrary_text_raises_only_event_decode_error(data: str) -> None:
    """Any text (lone surrogates included) decodes or raises EventDecodeError, nothing else."""
    _decode_only_typed(data)


@given(json_values)
def test_from_json_on_arbitrary_json_shapes_raises_only_event_decode_error(value: object) -> None:
    """Any JSON document decodes or raises EventDecodeError."""
    _decode_only_typed(json.dumps(value))


def _mutations(event: ErrorEvent) -> st.SearchStrategy[str]:
    """Valid event JSON with one field replaced, removed, or nested absurdly deep."""
    data = json.loads(event.to_json())

    def paths(node: object, prefix: tuple) -> list[tuple]:
        out = [prefix] if prefix else []
        if isinstance(node, dict):
            for k, v in node.items():
                out += paths(v, (*prefix, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                out += paths(v, (*prefix, i))
        return out

    def apply(path: tuple, value: object, delete: bool) -> str:
        doc = json.loads(json.dumps(data))
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        if delete and isinstance(parent, dict):
            parent.pop(path[-1])
        else:
            parent[path[-1]] = value
        return json.dumps(doc)
    return st.builds(apply, st.sampled_from(paths(data, ())), json_values, st.booleans())


@given(events.flatmap(_mutations))
def test_from_json_on_mutated_events_raises_only_event_decode_error(text: str) -> None:
    """A real event's JSON with any field replaced by any JSON value, or removed, decodes or raises
    EventDecodeError; what decodes round-trips exactly."""
    try:
        event = ErrorEvent.from_json(text)
    except EventDecodeError:
        return
    assert ErrorEvent.from_json(event.to_json()) == event


def test_from_json_on_a_deeply_nested_cause_ladder_is_typed() -> None:
    """A ladder nested thousands of levels deep is refused with EventDecodeError, not a RecursionError."""
    depth = 3000
    rung = '{"type": "E", "message": "m", "cause": ' * depth + '{"type": "E", "message": "m"}' + "}" * depth
    doc = f'{{"id": "{uuid.uuid4()}", "when": "2026-01-01T00:00:00Z", "scope": {{"kind": "app"}}, "error": {rung}}}'
    _decode_only_typed(doc)


# -- stored checkpoints: corrupt rows in a real SQLite file ------------------------------------------

def _columns(path: Path) -> dict[str, list[str]]:
    """Every table of the store and its columns, read from the file (the schema may evolve)."""
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in sorted(tables)}


def _fan_graph() -> GraphBuilder:
    """Two parallel nodes, one failing on its first run, so the store holds pending writes too."""
    def ok(s, ctx):
        return {"messages": [{"role": "assistant", "content": f"ok {ctx.step}"}],
                "extra": {"n": s.extra.get("n", 0) + 1, "blob": {"k": [1, 2.5, None]}},
                "errors": [ctx.event("warned", details={"n": 1})]}

    def flaky(s, ctx):
        if not s.extra.get("healed"):
            raise ValueError("first run fails")
        return {"extra": {"done": True}}
    b = GraphBuilder().add_node("ok", ok).add_node("flaky", flaky)
    b.add_edge(START, "ok").add_edge(START, "flaky").add_edge("ok", END).add_edge("flaky", END)
    return b


@pytest.fixture(scope="module")
def pristine_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real SQLite store with a failed session (pending writes), a completed one, and a capped rail."""
    path = tmp_path_factory.mktemp("fuzzdb") / "pristine.db"
    s = Settings(plugins={"sqlite_store": {"path": str(path)}, "cap": {"max_events": 2}})
    g = _fan_graph().compile(settings=s)
    try:
        g.invoke({}, session="s1")
    except Exception:  # noqa: S110 - the failure is the point: it leaves pending writes behind
        pass
    g.invoke({"extra": {"healed": True}}, session="s2")
    g.invoke({"extra": {"healed": True}}, session="s2")
    g.runner.checkpointer.ack("sink", 1)
    g.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


_VALUES = (st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=40) | st.binary(max_size=40)
           | st.floats(allow_nan=True) | json_values.map(json.dumps)
           | st.sampled_from(["{}", "[]", "null", '{"a": 1}', '["x"]', "2026-13-45", '{"kind": "app"}']))


def _store_reads(store: SqliteCheckpointer) -> list:
    """Every read of the store's own API, each a separate call."""
    reads = []
    for session in ("s1", "s2", "nope"):
        reads += [lambda s=session: store.latest(s), lambda s=session: store.history(s),
                  lambda s=session: store.session_events(s), lambda s=session: store.stored_errors(s)]
        reads += [lambda s=session, n=n: store.get(s, n) for n in range(0, 6)]
    reads += [lambda: store.undelivered("sink", 100), lambda: store.undelivered("other", 100), store.sessions,
              lambda: store.backfill_errors(dry_run=True)]
    return reads


def _runner_reads(graph) -> list:
    """Every read a user makes through a compiled graph."""
    reads = []
    for session in ("s1", "s2", "nope"):
        reads += [lambda s=session: graph.state(s), lambda s=session: graph.errors(s),
                  lambda s=session: graph.history(s), lambda s=session: graph.runner.failure(s)]
    return reads


def _unexpected(reads: list) -> list[BaseException]:
    """Run every read; return the exceptions that are not CheckpointError."""
    bad = []
    for read in reads:
        try:
            read()
        except CheckpointError as exc:
            assert exc.code.startswith("railgraph.persistence") and len(str(exc)) < 5000
        except Exception as exc:  # noqa: BLE001 - collecting the failures is the point
            bad.append(exc)
    return bad


def _read_everything(path: Path) -> None:
    store = SqliteCheckpointer(path)
    try:
        for read in _store_reads(store):
            read()
    finally:
        store.close()


def _corrupt_copy(pristine: Path, tmp_path: Path, data: st.DataObject) -> Path | None:
    """A copy of the pristine store with one column of one row (or of every row) replaced by any value."""
    path = tmp_path / f"{uuid.uuid4().hex}.db"
    shutil.copy(pristine, path)
    columns = _columns(pristine)
    table = data.draw(st.sampled_from(sorted(columns)), label="table")
    column = data.draw(st.sampled_from(columns[table]), label="column")
    value = data.draw(_VALUES, label="value")
    try:
        with sqlite3.connect(path) as conn:
            info = conn.execute(f"PRAGMA table_info({table})").fetchall()
            pk = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5]] or [r[1] for r in info]
            keys = conn.execute(f"SELECT {', '.join(pk)} FROM {table}").fetchall()  # noqa: S608
            if data.draw(st.booleans(), label="every row") or not keys:
                conn.execute(f"UPDATE {table} SET {column} = ?", (value,))  # noqa: S608
            else:
                key = data.draw(st.sampled_from(keys), label="row")
                where = " AND ".join(f"{c} IS ?" for c in pk)
                conn.execute(f"UPDATE {table} SET {column} = ? WHERE {where}", (value, *key))  # noqa: S608
    except sqlite3.IntegrityError:  # the schema itself refuses this corruption (NOT NULL, UNIQUE)
        path.unlink(missing_ok=True)
        return None
    return path


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_corrupt_rows_read_through_the_runner_raise_only_checkpoint_error(pristine_db: Path, tmp_path: Path,
                                                                          data: st.DataObject) -> None:
    """Any column of any row replaced by any value: `state`, `errors`, `history` and `failure` of a
    compiled graph either work or raise CheckpointError, never another exception."""
    path = _corrupt_copy(pristine_db, tmp_path, data)
    if path is None:
        return
    try:
        graph = _fan_graph().compile(settings=Settings(plugins={"sqlite_store": {"path": str(path)}}))
    except CheckpointError:
        return
    with graph:
        assert _unexpected(_runner_reads(graph)) == []


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_corrupt_rows_read_through_the_store_api_raise_only_checkpoint_error(pristine_db: Path, tmp_path: Path,
                                                                             data: st.DataObject) -> None:
    """Any column of any row replaced by any value: every read of the SQLite store's own API either
    works or raises CheckpointError (the contract of `Checkpointer`)."""
    path = _corrupt_copy(pristine_db, tmp_path, data)
    if path is None:
        return
    try:
        store = SqliteCheckpointer(path)
    except CheckpointError:
        return
    try:
        bad = _unexpected(_store_reads(store))
    finally:
        store.close()
    assert bad == [], [f"{type(e).__name__}: {e}" for e in bad]


def test_garbage_files_as_a_sqlite_store_raise_only_checkpoint_error(tmp_path: Path) -> None:
    """A file that is not SQLite, an empty one, a truncated store and a foreign database: CheckpointError."""
    cases = {"garbage.db": b"not a database at all" * 100, "empty-ish.db": b"SQLite format 3\x00" + b"\x00" * 50}
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    for path in [*(tmp_path / n for n in cases), foreign]:
        with pytest.raises(CheckpointError):
            _read_everything(path)


def test_runner_reads_of_a_corrupt_store_are_checkpoint_errors(pristine_db: Path, tmp_path: Path) -> None:
    """`Runner.state`, `errors` and a resume on a store whose event rows are garbage raise CheckpointError."""
    path = tmp_path / "bad.db"
    shutil.copy(pristine_db, path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE outbox SET data = '{\"id\": 42}'")
    g = _fan_graph().compile(settings=Settings(plugins={"sqlite_store": {"path": str(path)}}))
    with g:
        for call in (lambda: g.state("s1"), lambda: g.errors("s1"), lambda: g.invoke(None, session="s1")):
            with pytest.raises(CheckpointError):
                call()


# -- TOML configuration ----------------------------------------------------------------------------

_TOML_SNIPPETS = st.sampled_from([
    "[runner]\nmax_steps = 5\n", "[runner]\nmax_steps = -1\n", "[runner]\nmax_steps = 'x'\n",
    "[errors]\nmax_message = 1e400\n", "[plugins]\ndisable = 'redact'\n", "[plugins.cap]\nmax_events = true\n",
    "[plugins.redact]\npatterns = ['(']\n", "[plugins.nope]\nx = 1\n", "[[runner]]\n", "runner = 3\n",
    "[persistence]\nbackend = 7\n", "a.b.c = 1\n", "[runner]\nsink_timeout = inf\n", "= 1\n", "\x00",
    "[plugins.sqlite_store]\npath = ''\n", "[plugins.retry]\nmax_attempts = 0\n", '"\\ud800" = 1\n',
])


@given(st.text(max_size=200) | _TOML_SNIPPETS | st.lists(_TOML_SNIPPETS, max_size=4).map("".join))
@example("\ufeff[runner]\nmax_steps = 2\n")
def test_settings_load_on_arbitrary_text_raises_only_config_error(tmp_path_factory: pytest.TempPathFactory,
                                                                  text: str) -> None:
    """`Settings.load` of any file content, then binding the plugin tables, works or raises ConfigError."""
    path = tmp_path_factory.mktemp("toml") / "railgraph.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        settings_ = Settings.load(path)
        make_plugins(disable=settings_.plugins.disable).bind(settings_)
    except ConfigError as exc:
        assert exc.exit_code == 3 and len(str(exc)) < 5000


@given(st.binary(max_size=120))
def test_settings_load_on_arbitrary_bytes_raises_only_config_error(tmp_path_factory: pytest.TempPathFactory,
                                                                   raw: bytes) -> None:
    """Files that are not UTF-8 (or are TOML by accident) load or raise ConfigError."""
    path = tmp_path_factory.mktemp("tomlb") / "railgraph.toml"
    path.write_bytes(raw)
    try:
        Settings.load(path)
    except ConfigError:
        pass


# -- CLI --input --------------------------------------------------------------------------------------

_TARGET = '''
from railgraph import END, START, GraphBuilder

def node(state, ctx):
    return {"extra": {"seen": len(state.messages)}}

graph = GraphBuilder().add_node("node", node).add_edge(START, "node").add_edge("node", END)
'''

_INPUTS = st.sampled_from([
    "", "{", "}", "null", "[]", "1", '"x"', "NaN", "Infinity", '{"extra": []}', '{"messages": "x"}',
    '{"messages": [1]}', '{"messages": [{"role": 1}]}', '{"extra": {"errors": []}}', '{"bogus": 1}',
    '{"extra": {"a": 1e999}}', "[" * 3000, '{"messages": [{"role": "user", "content": {"a": [1]}}]}',
    "@", "@/nonexistent/file.json", "@-", "@.", "\ud800", '{"extra": {"\\ud800": 1}}',
])


def _cli_env(tmp_path: Path) -> tuple[Path, Path]:
    target = tmp_path / "target.py"
    target.write_text(_TARGET)
    config = tmp_path / "rg.toml"
    config.write_text('[persistence]\nbackend = "memory"\n')
    return target, config


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(raw=st.text(max_size=80) | _INPUTS | json_values.map(json.dumps))
@example(raw="@\x00")  # a NUL in the file name: Path.read_text raises ValueError, not OSError
def test_cli_input_on_arbitrary_strings_is_a_short_message_and_an_exit_code(tmp_path: Path, raw: str) -> None:
    """`railgraph run --input X` for any X exits 0 or with a typed code and prints no traceback."""
    target, config = _cli_env(tmp_path)
    result = CliRunner().invoke(cli, ["run", f"{target}:graph", "-c", str(config), "-s", "fz", "-i", raw],
                                input="{", catch_exceptions=True)
    out = result.output + (result.stderr_bytes or b"").decode("utf-8", "replace") if hasattr(
        result, "stderr_bytes") else result.output
    assert result.exit_code in (0, 6, 18), (raw, result.exit_code, out)
    assert "Traceback" not in out and "internal error" not in out
    assert result.exception is None or isinstance(result.exception, SystemExit)
    if result.exit_code == 6:
        assert len(out) < 2000


@pytest.mark.parametrize("raw", ["{", "[" * 100_000, '{"extra": {"a": 1e999}}', '{"messages": [1]}',
                                 "@/nonexistent.json", '{"extra": {"errors": 1}}', '"\\udcff"'])
def test_cli_input_in_a_real_process_never_prints_a_traceback(tmp_path: Path, raw: str) -> None:
    """A real `railgraph run --input` with hostile text exits with a typed code and a one-screen message."""
    target, config = _cli_env(tmp_path)
    proc = subprocess.run([str(VENV_BIN / "railgraph"), "run", f"{target}:graph", "-c", str(config), "-s", "fz",
                           "-i", raw], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**os.environ, "RAILGRAPH_DEBUG": ""})
    assert proc.returncode in (0, 6), (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    if proc.returncode == 6:
        assert "railgraph.input.invalid" in proc.stderr and len(proc.stderr) < 2000


def test_cli_session_argument_that_is_not_unicode_is_an_input_error(tmp_path: Path) -> None:
    """A session id given as undecodable bytes on the command line is a clear InputError (exit 6)."""
    _, config = _cli_env(tmp_path)
    proc = subprocess.run([os.fsencode(VENV_BIN / "railgraph"), b"errors", b"bad\xffid", b"-c", os.fsencode(config)],
                          capture_output=True, timeout=60, cwd=tmp_path)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 6 and "Traceback" not in err and "session id" in err


def _unused() -> None:  # keep imports honest for linters: Runner and END are used by readers of this file
    _ = (Runner, END)
