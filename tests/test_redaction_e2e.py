"""Redaction end to end: secrets placed anywhere an event can carry them never reach a byte on disk,
in PostgreSQL, in the JSON Lines file, or on the CLI's stdout/stderr.

The graph runs through the real `railgraph` command in subprocesses: a first run fails (a node
raises with secrets in its message, cause and notes, after a retry attempt, while a sibling's
successful partial — whose events hold secrets — is kept as a pending write), a second run resumes
and completes. Then the stored trail is printed by `railgraph errors` and `railgraph sessions`.

`extra` (and `messages`) are the workflow's own state, not telemetry: railgraph stores them verbatim
and the redact plugin does not touch them (see README "Security"); the last test pins that down.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from railgraph import END, START, GraphBuilder, Settings

VENV_BIN = Path(sys.executable).parent
PG_ENV = "RAILGRAPH_TEST_POSTGRES_DSN"

# Each entry: (the text placed in the program, the fragment that must never appear in any output).
CORPUS = [
    ("password=Hunter2-Pa55word!", "Hunter2-Pa55word"),
    ("api_key: sk-live-abcdEFGH1234ijklMNOP5678qrst", "abcdEFGH1234ijklMNOP5678"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlMTIzNDU2", "c2lnbmF0dXJlMTIzNDU2"),
    ("curl -H 'Authorization: Basic dXNlcjpzM2NyZXRwYXNz'", "dXNlcjpzM2NyZXRwYXNz"),
    ("key id AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
    ("Cookie: sessionid=9f8e7d6c5b4a3f2e1d0c", "9f8e7d6c5b4a3f2e1d0c"),
    ("set-cookie: auth_token=tok_live_ZZ99yy88XX77", "tok_live_ZZ99yy88XX77"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAq7BFUpkGp3+LQmlQ\n-----END RSA PRIVATE KEY-----",
     "MIIEowIBAAKCAQEAq7BFUpkGp3"),
    ("could not connect to postgresql://admin:S3cr3tPassw0rd@db.internal:5432/prod", "S3cr3tPassw0rd"),
    ("token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 rejected", "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"),
    ("slack xoxb-1234567890-abcdefghijkl failed", "xoxb-1234567890-abcdefghijkl"),
    ("client_secret=\"q8Jd-Wlx_30fMz\"", "q8Jd-Wlx_30fMz"),
    ("cache at redis://:R3disPassw0rdX@cache:6379 refused", "R3disPassw0rdX"),  # no user name
    ("mysql://root:p@ssW0rdZ9x@db.internal:3306/app", "ssW0rdZ9x"),  # an '@' in the password
]
# values under secret-named keys in context / details (the whole value is replaced)
KEYED = {"password": "pw-K3yed-Value-1", "db_password": "pw-K3yed-Value-2", "api_key": "k3yed-api-key-3",
         "X-Api-Key": "k3yed-api-key-4", "clientSecret": "k3yed-secret-5", "private_key": "k3yed-pk-6",
         "access_token": "k3yed-token-7", "refreshToken": "k3yed-token-8", "credentials": {"user": "u",
                                                                                         "pass": "k3yed-cred-9"}}
KEYED_FRAGMENTS = ["pw-K3yed-Value", "k3yed-"]
FRAGMENTS = [frag for _, frag in CORPUS] + KEYED_FRAGMENTS

TARGET = textwrap.dedent('''
    import os
    from railgraph import END, START, GraphBuilder, RunnerError

    CORPUS = {corpus!r}
    KEYED = {keyed!r}
    TEXT = " | ".join(CORPUS)

    class LeakyRunnerError(RunnerError):
        """A node's own RunnerError: its message is user text."""

    def sibling(state, ctx):
        # succeeds while `fails` fails: its events are kept as pending writes
        return {{"extra": {{"sibling": "done"}},
                 "errors": [ctx.event("sibling saw " + TEXT, details=dict(KEYED, note=TEXT),
                                      context=dict(KEYED, trace=TEXT))]}}

    def fails(state, ctx):
        if os.environ.get("HEAL") != "1":
            try:
                raise ConnectionError("upstream said " + CORPUS[9])
            except ConnectionError as cause:
                err = ValueError("lookup failed: " + TEXT)
                err.add_note("retry hint: " + CORPUS[0] + " " + CORPUS[10])
                raise err from cause
        return {{"extra": {{"fails": "healed"}}}}

    def runner_error(state, ctx):
        if os.environ.get("HEAL") != "1":
            raise LeakyRunnerError("own error: " + TEXT, help="retry with " + CORPUS[1])
        return None

    def event_from(state, ctx):
        try:
            raise KeyError(CORPUS[5])
        except KeyError as exc:
            exc.add_note(CORPUS[8])
            return {{"errors": [ctx.event_from(exc, context={{"headers": {{"Authorization": CORPUS[2][15:]}}}})]}}

    graph = GraphBuilder(name="leaky")
    graph.add_node("sibling", sibling)
    graph.add_node("fails", fails)
    graph.add_node("runner_error", runner_error)
    graph.add_node("event_from", event_from)
    graph.add_edge(START, "sibling")
    graph.add_edge(START, "fails")
    graph.add_edge("fails", "event_from")
    graph.add_edge("event_from", "runner_error")
    graph.add_edge("runner_error", END)
''').format(corpus=[text for text, _ in CORPUS], keyed=KEYED)


def _railgraph(cwd: Path, *args: str, heal: bool = False) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "HEAL": "1" if heal else "0", "RAILGRAPH_DEBUG": "", "COLUMNS": "200"}
    return subprocess.run([str(VENV_BIN / "railgraph"), *args], cwd=cwd, capture_output=True, timeout=120, env=env)


def _assert_clean(label: str, data: bytes) -> None:
    found = [frag for frag in FRAGMENTS if frag.encode() in data]
    assert not found, f"{label} leaks {found}"


def _run_the_story(tmp_path: Path, config: Path) -> list[bytes]:
    """Fail, resume-and-fail, resume-and-complete, then print the trail; return every output."""
    (tmp_path / "leaky.py").write_text(TARGET)
    outputs = []
    first = _railgraph(tmp_path, "run", "leaky.py:graph", "-c", str(config), "-s", "s1")
    assert first.returncode == 10, first.stderr.decode()  # NodeFailed, after the retry attempt
    second = _railgraph(tmp_path, "run", "leaky.py:graph", "-c", str(config), "-s", "s1", "--resume", heal=False)
    assert second.returncode == 10, second.stderr.decode()
    third = _railgraph(tmp_path, "run", "leaky.py:graph", "-c", str(config), "-s", "s1", "--resume", heal=True)
    assert third.returncode == 0, third.stderr.decode()
    fourth = _railgraph(tmp_path, "run", "leaky.py:graph", "-c", str(config), "-s", "s2", heal=True)
    fifth = _railgraph(tmp_path, "run", "leaky.py:graph", "-c", str(config), "-s", "s3", "-i",
                       '{"extra": {}}')  # fails in `fails` again; then the runner_error path on s4:
    outputs += [p.stdout + p.stderr for p in (first, second, third, fourth, fifth)]
    for args in (["errors", "s1"], ["errors", "s1", "--json"], ["errors", "s1", "--jsonl"], ["errors", "s3"],
                 ["sessions"], ["sessions", "--json"]):
        shown = _railgraph(tmp_path, *args, "-c", str(config))
        assert shown.returncode == 0, shown.stderr.decode()
        outputs.append(shown.stdout + shown.stderr)
    trail = json.loads(outputs[-5].decode())  # errors s1 --json
    assert len(trail) >= 4 and any(e["redacted"] for e in trail)  # the secrets were there, and scrubbed
    assert any("[REDACTED]" in json.dumps(e) for e in trail)
    return outputs


def _runner_error_story(tmp_path: Path, config: Path) -> list[bytes]:
    """A node raising its own RunnerError with secrets in its message: the stored failure is scrubbed too."""
    (tmp_path / "own.py").write_text(TARGET + textwrap.dedent('''
        graph = GraphBuilder(name="own")
        graph.add_node("runner_error", runner_error)
        graph.add_edge(START, "runner_error")
        graph.add_edge("runner_error", END)
    '''))
    run = _railgraph(tmp_path, "run", "own.py:graph", "-c", str(config), "-s", "own")
    assert run.returncode == 1, run.stderr.decode()
    shown = _railgraph(tmp_path, "errors", "own", "-c", str(config))
    assert b"own error" in shown.stdout and b"[REDACTED]" in shown.stdout
    return [run.stdout + run.stderr, shown.stdout + shown.stderr]


def _config(tmp_path: Path, persistence: str) -> Path:
    config = tmp_path / "rg.toml"
    config.write_text(textwrap.dedent(f"""
        {persistence}

        [plugins.retry]
        max_attempts = 2
        backoff = 0.0
        retry_on = ["ValueError"]
        nodes = {{ runner_error = {{ max_attempts = 1 }} }}

        [plugins.jsonl_sink]
        enabled = true
        path = "{tmp_path / 'errors.jsonl'}"
    """))
    return config


def test_no_secret_reaches_the_sqlite_file_the_jsonl_file_or_the_cli_output(tmp_path: Path) -> None:
    """Secrets in messages, causes, notes, context, details, retries and pending writes: none is in the
    SQLite database or its WAL (raw bytes, before and after a checkpoint), the JSON Lines file, or any
    byte the CLI printed."""
    db = tmp_path / "store.db"
    config = _config(tmp_path, f'[persistence]\nbackend = "sqlite"\n[plugins.sqlite_store]\npath = "{db}"')
    outputs = _run_the_story(tmp_path, config) + _runner_error_story(tmp_path, config)
    for i, out in enumerate(outputs):
        _assert_clean(f"CLI output #{i}", out)
    jsonl = (tmp_path / "errors.jsonl").read_bytes()
    assert jsonl.count(b"\n") >= 4
    _assert_clean("the JSON Lines file", jsonl)
    wal = Path(f"{db}-wal")
    _assert_clean("the SQLite file", db.read_bytes())
    if wal.exists():
        _assert_clean("the SQLite WAL", wal.read_bytes())
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        outbox = b"".join(r[0].encode() for r in conn.execute("SELECT data FROM outbox"))
    assert outbox
    _assert_clean("the outbox", outbox)
    _assert_clean("the SQLite file after a checkpoint", db.read_bytes())


@pytest.fixture
def pg_schema() -> str:
    """A fresh PostgreSQL schema name on the test server (dropped afterwards)."""
    dsn = os.environ.get(PG_ENV)
    if not dsn:
        pytest.skip(f"PostgreSQL tests skipped: set {PG_ENV} to a server DSN (.ci/run starts one)")
    schema = f"redact_{uuid.uuid4().hex[:10]}"
    yield schema
    import psycopg
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_no_secret_reaches_the_postgres_tables_or_the_cli_output(tmp_path: Path, pg_schema: str) -> None:
    """The same story on PostgreSQL: every row of every railgraph table, dumped as text, holds no secret."""
    import psycopg
    dsn = os.environ[PG_ENV]
    config = _config(tmp_path, f'[persistence]\nbackend = "postgres"\n[plugins.postgres_store]\n'
                               f'dsn = "{dsn}"\nschema = "{pg_schema}"')
    outputs = _run_the_story(tmp_path, config) + _runner_error_story(tmp_path, config)
    for i, out in enumerate(outputs):
        _assert_clean(f"CLI output #{i}", out)
    _assert_clean("the JSON Lines file", (tmp_path / "errors.jsonl").read_bytes())
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (pg_schema,))]
        assert {"outbox", "checkpoints"} <= set(tables)
        dump = []
        for table in tables:
            dump += [str(row) for row in conn.execute(f"SELECT t::text FROM {pg_schema}.{table} t")]  # noqa: S608
    text = "\n".join(dump).encode()
    assert b"[REDACTED]" in text
    _assert_clean("the PostgreSQL tables", text)


def test_extra_is_user_state_stored_verbatim_and_not_scrubbed(tmp_path: Path) -> None:
    """`extra` values are the workflow's own data: the redact plugin does not rewrite them, so state
    read back after a restart equals what the node wrote (keep secrets out of state; see README)."""
    def node(state, ctx):
        return {"extra": {"api_key": "stored-as-written-1", "url": CORPUS[9][0]}}
    b = GraphBuilder().add_node("n", node).add_edge(START, "n").add_edge("n", END)
    settings = Settings(plugins={"sqlite_store": {"path": str(tmp_path / "s.db")}})
    with b.compile(settings=settings) as g:
        g.invoke({}, session="s")
    with b.compile(settings=settings) as g:
        assert g.state("s").extra["api_key"] == "stored-as-written-1"
        assert g.state("s").extra["url"] == CORPUS[9][0]
        assert g.errors("s") == []
