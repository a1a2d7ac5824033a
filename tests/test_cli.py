"""The `railgraph` command: every command in-process (click's CliRunner) and as a real process.

In-process tests share one memory store across invocations (the ``memory_store`` plugin is patched
to hand out the same `MemoryCheckpointer`); real-process tests use the default SQLite store in the
test's own directory, so a later process reads what an earlier one wrote.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from store_helpers import backend_fixture

from railgraph import ErrorEvent, MemoryCheckpointer, hookimpl
from railgraph.cli import cli, filter_events, parse_since
from railgraph.plugins import memory_store

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TRIAGE = f"{EXAMPLES / 'triage.py'}:graph"
HELLO = f"{EXAMPLES / 'hello.py'}:graph"
API_KEY = "sk_live_51HxTriageDemoKey0000"
RAILGRAPH = Path(sys.executable).parent / "railgraph"

MEMORY_TOML = """\
[persistence]
backend = "memory"

[plugins.retry]
max_attempts = 3
backoff = 0.0
retry_on = ["ConnectionError", "TimeoutError"]
"""

FLAG_GRAPH = """\
from pathlib import Path
from railgraph import END, START, GraphBuilder

def first(state, ctx):
    return {"extra": {"first": True}, "errors": [ctx.event("first ran", code="test.first")]}

def second(state, ctx):
    if Path("fail.flag").exists():
        raise RuntimeError("fail.flag is present")
    return {"extra": {"second": True}}

graph = GraphBuilder()
graph.add_node("first", first)
graph.add_node("second", second)
graph.add_edge(START, "first")
graph.add_edge("first", "second")
graph.add_edge("second", END)
"""


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> MemoryCheckpointer:
    """One memory store shared by every in-process invocation of this test."""
    shared = MemoryCheckpointer()

    @hookimpl
    def make_checkpointer(backend, settings):
        return shared if backend == "memory" else None

    monkeypatch.setattr(memory_store, "make_checkpointer", make_checkpointer)
    return shared


@pytest.fixture
def mem_config(tmp_path: Path) -> str:
    """A config file selecting the memory backend with retries on."""
    path = tmp_path / "mem.toml"
    path.write_text(MEMORY_TOML)
    return str(path)


def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    """Run the CLI in-process; never let an exception escape unseen."""
    result = CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def real(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60):
    """Run the installed console script in a fresh process."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAILGRAPH_")}
    base.update(env or {})
    proc = subprocess.run([str(RAILGRAPH), *args], cwd=cwd, env=base, capture_output=True, text=True,
                          timeout=timeout)
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc


# ---------------------------------------------------------------------------------------------
# global options
# ---------------------------------------------------------------------------------------------


def test_version_prints_the_package_version():
    """--version prints 'railgraph <version>' and exits 0."""
    import railgraph

    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"railgraph {railgraph.__version__}"


def test_unknown_command_and_option_are_usage_errors_64():
    """A misspelt command or option is a usage error with exit code 64, not click's 2 (GraphError's)."""
    assert invoke("frobnicate").exit_code == 64
    result = invoke("sessions", "--bogus")
    assert result.exit_code == 64
    assert "No such option" in result.stderr


def test_config_option_works_before_the_command_and_via_environment(store, mem_config):
    """--config is accepted before the command name, and RAILGRAPH_CONFIG names the file too."""
    assert invoke("--config", mem_config, "sessions").exit_code == 0
    result = invoke("sessions", env={"RAILGRAPH_CONFIG": mem_config})
    assert result.exit_code == 0
    assert "no sessions in the store (memory)" in result.stdout


# ---------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------


def test_run_hello_completes_and_prints_progress_lines(store, mem_config):
    """Off a terminal, run prints one plain line per step and a final status line."""
    result = invoke("run", HELLO, "--config", mem_config, "--session", "h", "--input", '{"extra": {"name": "Ada"}}')
    assert result.exit_code == 0, result.output
    assert "step 2: ran greet · running" in result.stdout
    assert "session h completed at step 5" in result.stdout
    assert "\x1b[" not in result.stdout
    assert store.latest("h").extra["n"] == 3
    assert store.latest("h").messages[0].content == "hello, Ada!"


def test_run_triage_shows_the_ladder_with_retry_permanent_failure_and_warnings(store, mem_config):
    """The triage demo completes, and its ladder shows the retried attempt, the permanent failure and both warnings."""
    result = invoke("run", TRIAGE, "--config", mem_config, "--session", "demo")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "error ladder of session demo (this run)" in out
    assert "[retry, attempt:1/3]" in out
    assert "triage.CRMUnavailable: CRM returned HTTP 503" in out
    assert "caused by TimeoutError: upstream read timed out after 2.0s" in out
    assert "triage.CustomerNotFound: no CRM record for customer 'c-legacy-17'" in out
    assert "note: the account was closed during the 2023 migration" in out
    assert "triage.intake.missing_email" in out and "triage.sla.breached" in out
    assert "4 events: node 4 · 1 retry" in out
    assert "session demo completed" in out
    assert API_KEY not in result.output
    state = store.latest("demo")
    assert state.extra["escalated"] == ["T-101", "T-103"] and state.extra["manual_review"] == ["T-104"]
    assert state.extra["crm_attempts"] == 2


CHATTY_GRAPH = """\
import time
from railgraph import END, START, GraphBuilder

def talk(state):
    time.sleep(1.0)  # the test closes the pipe's reading end meanwhile
    for i in range(2000):
        print("line", i)
    return {"extra": {"talked": True}}

graph = GraphBuilder()
graph.add_node("talk", talk)
graph.add_edge(START, "talk")
graph.add_edge("talk", END)
"""


@pytest.mark.parametrize("target, steps, events", [(TRIAGE, 6, 4), ("chatty.py:graph", 2, 0)])
def test_run_whose_reader_went_away_finishes_and_exits_with_its_own_code(tmp_path, target, steps, events):
    """``railgraph run ... | head``: output that finds the pipe closed — the CLI's own, and what a node
    prints — is dropped, and the run still finishes, commits every step and exits with its own code
    (it used to die mid-step, exit 1, silent; a printing node failed with BrokenPipeError)."""
    (tmp_path / "chatty.py").write_text(CHATTY_GRAPH)
    read_end, write_end = os.pipe()
    proc = subprocess.Popen([str(RAILGRAPH), "run", target, "-c", str(EXAMPLES / "triage.toml"), "-s", "piped"],
                            cwd=tmp_path, stdout=write_end, stderr=subprocess.PIPE, text=True,
                            env={k: v for k, v in os.environ.items() if not k.startswith("RAILGRAPH_")})
    os.close(write_end)
    with os.fdopen(read_end) as reader:  # like head -2: the first two lines, then gone
        assert reader.readline().startswith("running ")
        assert reader.readline().startswith("step 1: ran input")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err == ""
    sessions = real("sessions", "--json", "-c", str(EXAMPLES / "triage.toml"), cwd=tmp_path)
    [row] = json.loads(sessions.stdout)
    assert (row["session"], row["status"], row["steps"], row["error_count"]) == ("piped", "completed", steps, events)


def test_run_with_its_standard_output_closed_completes(tmp_path):
    """A process started with no standard output at all (``>&-``) runs as with a closed pipe."""
    proc = subprocess.run(["sh", "-c", f'exec "{RAILGRAPH}" run "{HELLO}" -s closed >&-'], cwd=tmp_path,
                          capture_output=False, stderr=subprocess.PIPE, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == ""
    assert json.loads(real("sessions", "--json", cwd=tmp_path).stdout)[0]["status"] == "completed"


def test_run_with_the_live_display_completes(tmp_path):
    """On a terminal (FORCE_COLOR makes rich treat the pipe as one) the live display runs and the
    run returns: the display's stdout proxy once looped back into the console forever."""
    proc = real("run", HELLO, "-s", "live", cwd=tmp_path, env={"FORCE_COLOR": "1"}, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "completed at step 5" in proc.stdout and "\x1b[" in proc.stdout


def test_run_failure_prints_the_diagnostic_and_exits_with_the_error_code(store, mem_config):
    """When every CRM attempt fails, run prints the node_failed diagnostic on stderr and exits 10."""
    result = invoke("run", TRIAGE, "--config", mem_config, "--session", "down",
                    "--input", '{"extra": {"crm_failure_rate": 1.0}}')
    assert result.exit_code == 10
    err = result.stderr
    assert err.startswith("error[railgraph.runner.node_failed]: node 'lookup' failed at step 3 (CRMUnavailable)")
    assert "┌─ session down · step 3 · node lookup" in err
    assert "tags: retry, attempt:3/3" in err
    assert "resume with: railgraph run" in err and "--session down --resume" in err
    assert "[retry, attempt:2/3]" in result.stdout  # the earlier attempts, as a ladder
    assert API_KEY not in result.output


def test_run_accepts_factory_compiled_graph_and_module_targets(store, mem_config, tmp_path, monkeypatch):
    """TARGET may name a factory, an already compiled graph (re-bound to the CLI's settings) or package.module:NAME."""
    assert invoke("run", f"{EXAMPLES / 'triage.py'}:build", "-c", mem_config, "-s", "f").exit_code == 0
    (tmp_path / "compiled_target.py").write_text(
        "from railgraph import END, START, GraphBuilder, Settings\n"
        "b = GraphBuilder()\n"
        "b.add_node('a', lambda s, ctx: {'extra': {'a': 1}})\n"
        "b.add_edge(START, 'a'); b.add_edge('a', END)\n"
        "compiled = b.compile(settings=Settings(persistence={'backend': 'memory'}))\n")
    assert invoke("run", "compiled_target.py:compiled", "-c", mem_config, "-s", "c").exit_code == 0
    assert store.latest("c").status == "completed"
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "cli_target_pkg").mkdir()
    (tmp_path / "cli_target_pkg" / "__init__.py").write_text("")
    (tmp_path / "cli_target_pkg" / "flows.py").write_text(FLAG_GRAPH)
    result = invoke("run", "cli_target_pkg.flows:graph", "-c", mem_config, "-s", "m")
    assert result.exit_code == 0, result.output
    assert store.latest("m").extra["second"] is True


def test_run_input_from_file_and_stdin(store, mem_config, tmp_path):
    """--input @file reads JSON from a file and @- from stdin."""
    (tmp_path / "in.json").write_text('{"extra": {"name": "Grace"}}')
    assert invoke("run", HELLO, "-c", mem_config, "-s", "file", "-i", "@in.json").exit_code == 0
    assert store.latest("file").messages[0].content == "hello, Grace!"
    assert invoke("run", HELLO, "-c", mem_config, "-s", "stdin", "-i", "@-", input='{"extra": {"name": "Bo"}}'
                  ).exit_code == 0
    assert store.latest("stdin").messages[0].content == "hello, Bo!"


def test_run_resume_reruns_only_the_failed_node(store, mem_config, tmp_path):
    """After a failure, --resume continues the stored session and completes it without re-running 'first'."""
    (tmp_path / "flag_graph.py").write_text(FLAG_GRAPH)
    (tmp_path / "fail.flag").write_text("")
    failed = invoke("run", "flag_graph.py:graph", "-c", mem_config, "-s", "r")
    assert failed.exit_code == 10
    assert "RuntimeError: fail.flag is present" in failed.stderr
    (tmp_path / "fail.flag").unlink()
    resumed = invoke("run", "flag_graph.py:graph", "-c", mem_config, "-s", "r", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "resuming" in resumed.stdout and "session r completed" in resumed.stdout
    assert [e.code for e in store.session_events("r")].count("test.first") == 1


FANOUT_GRAPH = """\
from pathlib import Path
from railgraph import END, START, GraphBuilder

def a(state):
    with open("a.log", "a") as f:
        f.write("ran\\n")
    return {"extra": {"a": True}}

def b(state):
    if Path("fail.flag").exists():
        raise RuntimeError("fail.flag is present")
    return {"extra": {"b": True}}

graph = GraphBuilder()
graph.add_node("a", a)
graph.add_node("b", b)
graph.add_edge(START, "a")
graph.add_edge(START, "b")
graph.add_edge("a", END)
graph.add_edge("b", END)
"""


def test_run_resume_says_which_nodes_reused_their_stored_result(store, mem_config, tmp_path, monkeypatch):
    """A resumed fan-out step prints the node that ran again and the one whose stored result was
    reused (it once said 'ran a, b' though 'a' did not run again)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fanout.py").write_text(FANOUT_GRAPH)
    (tmp_path / "fail.flag").write_text("")
    assert invoke("run", "fanout.py:graph", "-c", mem_config, "-s", "f").exit_code == 10
    (tmp_path / "fail.flag").unlink()
    resumed = invoke("run", "fanout.py:graph", "-c", mem_config, "-s", "f", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "step 3: ran b (reused the stored result of a) · completed" in resumed.stdout
    assert (tmp_path / "a.log").read_text() == "ran\n"


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["--resume"], 64, "--resume needs --session"),
    (["-s", "x", "--resume", "-i", "{}"], 64, "takes no --input"),
    (["-i", "{not json"], 6, "--input:1:2: input is not valid JSON"),
    (["-i", "@missing.json"], 6, "cannot read input file missing.json"),
    (["-i", '["a list"]'], 6, "railgraph.input.invalid"),
    (["-s", "nobody", "--resume"], 18, "session 'nobody' has no stored checkpoint"),
    (["--max-steps", "0"], 64, "--max-steps"),
])
def test_run_bad_input_gives_a_short_message_and_distinct_code(store, mem_config, args, code, needle):
    """Bad run options and input exit with usage (64), InputError (6) or SessionNotFound (18) and say why."""
    result = invoke("run", HELLO, "-c", mem_config, *args)
    assert result.exit_code == code, result.output
    assert needle in result.stderr
    assert len(result.stderr.splitlines()) <= 6
    if code == 6:  # rejected before the run starts
        assert "running" not in result.stdout


def test_run_input_of_the_wrong_shape_creates_no_store(tmp_path):
    """An input that is JSON but not a run's mapping is refused before the default SQLite store is created."""
    proc = real("run", HELLO, "-i", "[1, 2]", cwd=tmp_path)
    assert proc.returncode == 6 and "input must be a mapping" in proc.stderr
    assert proc.stdout == "" and not (tmp_path / ".railgraph").exists()


@pytest.mark.parametrize(("target", "needle"), [
    ("missing.py:graph", "file missing.py not found"),
    (f"{EXAMPLES / 'hello.py'}:nope", "has no attribute 'nope' (graphs it defines: graph)"),
    ("no_such_module_xyz:graph", "no module named 'no_such_module_xyz'"),
    ("bad_target.py:NUMBER", "NUMBER is an int, not a GraphBuilder"),
    ("bad_target.py:OBJ", "OBJ is an object, not a GraphBuilder"),
    ("bad_target.py:needs_args", "a factory takes no arguments"),
    ("raising_target.py:graph", "importing raising_target.py raised RuntimeError: boom at import"),
    ("bad_target.py:unreachable", "node 'island' is unreachable from START"),
    ("bad_target.py:", "expected path/to/file.py:NAME"),
])
def test_run_bad_target_exits_2_with_the_reason(store, mem_config, tmp_path, target, needle):
    """Every way TARGET can be wrong is a GraphError (exit 2) naming the problem, with the TARGET help line."""
    (tmp_path / "bad_target.py").write_text(
        "from railgraph import START, GraphBuilder\n"
        "NUMBER = 3\n"
        "OBJ = object()\n"
        "def needs_args(x):\n    return x\n"
        "unreachable = GraphBuilder()\n"
        "unreachable.add_node('a', lambda s: None)\n"
        "unreachable.add_node('island', lambda s: None)\n"
        "unreachable.add_edge(START, 'a')\n")
    (tmp_path / "raising_target.py").write_text("raise RuntimeError('boom at import')\n")
    result = invoke("run", target, "-c", mem_config)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error[railgraph.graph.invalid]")
    assert needle in result.stderr


def test_run_with_a_bad_config_exits_3_naming_file_and_line(tmp_path):
    """A config with an unknown key stops run with ConfigError (3) naming the file, key and line."""
    (tmp_path / "bad.toml").write_text('[persistence]\nbackend = "memory"\n\n[runner]\nmax_stepz = 5\n')
    result = invoke("run", HELLO, "--config", "bad.toml")
    assert result.exit_code == 3
    assert "bad.toml:5: runner.max_stepz: unknown key" in result.stderr


MARKER_GRAPH = """\
from pathlib import Path
Path("imported.marker").write_text("the target's module-level code ran")
from railgraph import END, START, GraphBuilder
graph = GraphBuilder()
graph.add_node("a", lambda state: None)
graph.add_edge(START, "a")
graph.add_edge("a", END)
"""


@pytest.mark.parametrize(("config", "needle"), [
    ('[plugins.retry]\nbackof = 1\n', "bad.toml:4: plugins.retry.backof: unknown key"),
    ('[plugins.nosuch]\nx = 1\n', "bad.toml:3: plugins.nosuch: no loaded plugin named 'nosuch'"),
    ('[plugins]\ndisable = ["retyr"]\n', "bad.toml:4: plugins.disable names unknown plugin(s) ['retyr']"),
    ('[runner]\nmax_stepz = 1\n', "bad.toml:4: runner.max_stepz: unknown key"),
])
def test_run_rejects_a_bad_config_before_importing_the_target(tmp_path, config, needle):
    """Plugin-table errors, like core-key ones, exit 3 before TARGET is imported: its module code never runs."""
    (tmp_path / "marker_target.py").write_text(MARKER_GRAPH)
    (tmp_path / "bad.toml").write_text('[persistence]\nbackend = "memory"\n' + config)
    result = invoke("run", "marker_target.py:graph", "-c", "bad.toml")
    assert result.exit_code == 3, result.output
    assert needle in result.stderr
    assert not (tmp_path / "imported.marker").exists()
    (tmp_path / "bad.toml").write_text('[persistence]\nbackend = "memory"\n')
    assert invoke("run", "marker_target.py:graph", "-c", "bad.toml").exit_code == 0
    assert (tmp_path / "imported.marker").exists()  # the marker does show an import


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def demo(store, mem_config):
    """A completed triage session 'demo' and a failed one 'down' in the shared store."""
    assert invoke("run", TRIAGE, "-c", mem_config, "-s", "demo").exit_code == 0
    assert invoke("run", TRIAGE, "-c", mem_config, "-s", "down", "-i", '{"extra": {"crm_failure_rate": 1}}'
                  ).exit_code == 10
    return mem_config


def test_errors_prints_the_trail_as_a_ladder(demo):
    """`errors SESSION` prints every event of the session, numbered, with the summary line."""
    result = invoke("errors", "demo", "-c", demo)
    assert result.exit_code == 0
    out = result.stdout
    assert out.startswith("error trail of session demo")
    assert "#1" in out and "#4" in out and "#5" not in out
    assert "4 events: node 4 · 1 retry" in out
    assert API_KEY not in out


def test_errors_of_a_failed_session_ends_with_the_same_diagnostic_run_printed(demo, mem_config):
    """The stored failure renders exactly like the live diagnostic the failing run printed."""
    live = invoke("run", TRIAGE, "-c", mem_config, "-s", "down2", "-i", '{"extra": {"crm_failure_rate": 1}}')
    diagnostic = live.stderr.split("  resume with:")[0].rstrip("\n")
    stored = invoke("errors", "down2", "-c", mem_config).stdout
    assert "session down2 failed at step 3:" in stored
    assert stored.rstrip("\n").endswith(diagnostic)


def test_errors_json_and_jsonl_round_trip_as_events(demo):
    """--json prints an array and --jsonl one event per line; both decode as valid ErrorEvents."""
    as_json = json.loads(invoke("errors", "demo", "-c", demo, "--json").stdout)
    lines = invoke("errors", "demo", "-c", demo, "--jsonl").stdout.splitlines()
    assert len(as_json) == len(lines) == 4
    events = [ErrorEvent.from_json(line) for line in lines]
    assert [str(e.id) for e in events] == [d["id"] for d in as_json]


@pytest.mark.parametrize(("filters", "expected"), [
    (["--scope", "node"], 4),
    (["--scope", "app"], 0),
    (["--node", "lookup"], 2),
    (["--code", "triage.*"], 2),
    (["--code", "triage.sla.breached", "--code", "triage.intake.missing_email"], 2),
    (["--tag", "retry"], 1),
    (["--tag", "retry", "--tag", "permanent"], 0),
    (["--since", "2999-01-01"], 0),
    (["--since", "1h"], 4),
    (["--limit", "1"], 1),
])
def test_errors_filters(demo, filters, expected):
    """--scope/--node/--code (globs)/--tag/--since/--limit select the matching events."""
    result = invoke("errors", "demo", "-c", demo, "--jsonl", *filters)
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == expected


def test_errors_limit_keeps_the_newest(demo):
    """--limit N keeps the newest N events, oldest first."""
    events = [ErrorEvent.from_json(x) for x in invoke("errors", "demo", "-c", demo, "--jsonl").stdout.splitlines()]
    last = [ErrorEvent.from_json(x) for x in
            invoke("errors", "demo", "-c", demo, "--jsonl", "--limit", "2").stdout.splitlines()]
    assert last == events[-2:]


def test_errors_filtered_keep_their_numbers_in_the_trail(demo):
    """A filtered listing numbers each event as the whole trail does (#1 and #4), so numbers can be quoted."""
    def numbers(*filters: str) -> list[str]:
        out = invoke("errors", "demo", "-c", demo, *filters).stdout
        return re.findall(r"^  (#\d+) ", out, re.MULTILINE)
    assert numbers() == ["#1", "#2", "#3", "#4"]
    assert numbers("--code", "triage.*") == ["#1", "#4"]
    assert numbers("--limit", "1") == ["#4"]


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["nobody"], 18, "session 'nobody' is not in the store"),
    (["demo", "--json", "--jsonl"], 64, "exclusive"),
    (["demo", "--since", "yesterday"], 64, "neither an ISO time"),
    (["demo", "--scope", "galaxy"], 64, "galaxy"),
    (["demo", "--limit", "0"], 64, "--limit"),
])
def test_errors_bad_input(demo, args, code, needle):
    """A missing session exits 18; bad filters are usage errors (64); each says why."""
    result = invoke("errors", *args, "-c", demo)
    assert result.exit_code == code
    assert needle in result.stderr


def test_errors_unreadable_store_is_a_checkpoint_error_16(store, mem_config, monkeypatch):
    """A store that raises while being read (corrupt data) gives CheckpointError, exit 16, no traceback."""
    import sqlite3

    def broken(*_a, **_k):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(store, "latest", broken)
    monkeypatch.setattr(store, "sessions", broken)
    for args in (["errors", "x"], ["sessions"], ["store", "stats"]):
        result = invoke(*args, "-c", mem_config)
        assert result.exit_code == 16, args
        assert "error[railgraph.persistence.checkpoint_failed]" in result.stderr
        assert "database disk image is malformed" in result.stderr


def test_since_parsing():
    """--since accepts ISO times (naive = UTC) and durations; filter_events applies it."""
    from datetime import datetime, timezone

    now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert parse_since("2h", now) == datetime(2026, 1, 1, 22, tzinfo=timezone.utc)
    assert parse_since("2026-01-01T10:00", now) == datetime(2026, 1, 1, 10, tzinfo=timezone.utc)
    assert parse_since("2026-01-01T10:00Z", now).tzinfo is not None
    assert filter_events([], since=now) == []


# ---------------------------------------------------------------------------------------------
# sessions
# ---------------------------------------------------------------------------------------------


def test_sessions_lists_status_steps_errors_and_last_error(demo):
    """`sessions` shows each session with status, steps, error count and last error, newest first."""
    result = invoke("sessions", "-c", demo)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["session", "status", "steps", "errors", "last", "error", "updated"]
    down = next(line for line in lines if line.startswith("down "))
    demo_line = next(line for line in lines if line.startswith("demo "))
    assert lines.index(down) < lines.index(demo_line)
    assert down.split()[1:4] == ["failed", "3", "4"] and demo_line.split()[1:4] == ["completed", "6", "4"]
    assert "node_failed" in down


def test_sessions_json_and_status_filter(demo):
    """--json prints records; --status keeps only the given statuses."""
    rows = json.loads(invoke("sessions", "-c", demo, "--json", "--status", "failed").stdout)
    assert [r["session"] for r in rows] == ["down"]
    assert rows[0]["status"] == "failed" and rows[0]["error_count"] == 4 and rows[0]["updated"]


# ---------------------------------------------------------------------------------------------
# plugins
# ---------------------------------------------------------------------------------------------


def test_plugins_lists_origin_hooks_and_blocked(tmp_path):
    """`plugins` lists every built-in with its distribution, hooks and status; disabled ones show as blocked."""
    (tmp_path / "block.toml").write_text('[plugins]\ndisable = ["otel_sink"]\n')
    rows = {r["name"]: r for r in json.loads(invoke("plugins", "--json", "-c", "block.toml").stdout)}
    assert {"memory_store", "sqlite_store", "retry", "redact", "cap"} <= set(rows)
    assert rows["retry"]["origin"].startswith("built-in (railgraph ")
    assert "retry_decision" in rows["retry"]["hooks"] and "settings_section" in rows["retry"]["hooks"]
    assert rows["otel_sink"]["status"] == "blocked" and rows["otel_sink"]["hooks"]
    assert rows["retry"]["status"] == "loaded"
    table = invoke("plugins", "-c", "block.toml").stdout
    assert re.search(r"^otel_sink\s+built-in \(railgraph [\d.]+\)\s+blocked", table, re.M)


def test_plugins_with_unknown_disabled_name_is_a_config_error(tmp_path):
    """Disabling a plugin that does not exist is a ConfigError (3)."""
    (tmp_path / "typo.toml").write_text('[plugins]\ndisable = ["retyr"]\n')
    result = invoke("plugins", "-c", "typo.toml")
    assert result.exit_code == 3
    assert "retyr" in result.stderr


# ---------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------


def test_config_init_writes_a_valid_commented_file_and_refuses_to_overwrite(tmp_path):
    """init writes every section (plugins' included) with comments; it validates; a second init exits 73."""
    result = invoke("config", "init")
    assert result.exit_code == 0
    text = (tmp_path / "railgraph.toml").read_text()
    assert "[runner]" in text and "[plugins.retry]" in text and "[plugins.sqlite_store]" in text
    assert text.count("\n# ") > 10
    valid = invoke("config", "validate", "railgraph.toml")
    assert valid.exit_code == 0, valid.output
    again = invoke("config", "init")
    assert again.exit_code == 73
    assert "already exists; use --force" in again.stderr
    assert invoke("config", "init", "--force").exit_code == 0
    assert invoke("config", "init", "sub/dir/other.toml").exit_code == 0
    assert (tmp_path / "sub" / "dir" / "other.toml").is_file()


def test_config_show_prints_effective_settings_as_toml(mem_config):
    """show prints TOML that parses and carries file values, plugin defaults and defaults."""
    data = tomllib.loads(invoke("config", "show", "-c", mem_config).stdout)
    assert data["persistence"]["backend"] == "memory"
    assert data["plugins"]["retry"]["max_attempts"] == 3
    assert data["runner"]["max_steps"] == 1000
    assert "sqlite_store" in data["plugins"]


def test_config_explain_names_each_source_and_the_hook_implementers(mem_config):
    """explain marks values as file / env / default and names who implements and decides each hook."""
    result = invoke("config", "explain", "-c", mem_config, "--json", env={"RAILGRAPH_RUNNER__MAX_STEPS": "50"})
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    values = {v["key"]: v for v in data["values"]}
    assert values["persistence.backend"] == {"key": "persistence.backend", "value": "memory", "source": "file"}
    assert values["runner.max_steps"]["source"] == "env" and values["runner.max_steps"]["value"] == 50
    assert values["errors.max_depth"]["source"] == "default"
    assert values["plugins.retry.max_attempts"]["source"] == "file"
    hooks = {h["hook"]: h for h in data["hooks"]}
    assert "retry" in hooks["retry_decision"]["implementers"]
    assert hooks["extra_errors_mode"]["answer"] == "dual"
    assert hooks["extra_errors_mode"]["decided_by"] == "extra_errors"
    text = invoke("config", "explain", "-c", mem_config).stdout
    assert re.search(r"^persistence\.backend\s+\"memory\"\s+file", text, re.M)
    # a decision answered by a callable says what it does, not <function>
    capped = json.loads(invoke("config", "explain", "-c", str(ROOT / "configs" / "long-running.toml"),
                               "--json").stdout)
    capper = {h["hook"]: h for h in capped["hooks"]}["error_capper"]
    assert (capper["answer"], capper["decided_by"]) == (
        'keep the newest 200 entries of extra["errors"], the first a summary of the dropped ones', "cap")


@pytest.mark.parametrize(("content", "needle"), [
    ('[runner]\nmax_steps = 5\nmax_steps = 6\n', "bad.toml:3: invalid TOML"),
    ('[runner]\n\nmax_stepz = 5\n', "bad.toml:3: runner.max_stepz: unknown key"),
    ('[runner]\nmax_steps = "many"\n', "bad.toml:2: runner.max_steps"),
    ('[plugins.retry]\nmax_attempts = 3\n\nbackof = 1\n', "bad.toml:4: plugins.retry.backof: unknown key"),
    ('[plugins.nosuch]\nx = 1\n', "no loaded plugin named 'nosuch'"),
    ('[plugins]\n\ndisable = ["retyr"]\n', "bad.toml:3: plugins.disable names unknown plugin(s) ['retyr']"),
])
def test_config_validate_reports_the_line_of_the_first_problem(tmp_path, content, needle):
    """validate exits 3 with file:line and key path for syntax errors, unknown keys, bad types and plugin tables."""
    (tmp_path / "bad.toml").write_text(content)
    result = invoke("config", "validate", "bad.toml")
    assert result.exit_code == 3, result.output
    assert needle in result.stderr
    assert result.stderr.startswith("error[railgraph.config.invalid]")


def test_config_file_errors_help_with_the_file_and_key_errors_with_the_key(tmp_path):
    """The rendered help fits the error: the path for a missing file, the line for bad TOML, the key for a bad key."""
    (tmp_path / "syntax.toml").write_text('[runner]\nmax_steps = = 3\n')
    (tmp_path / "key.toml").write_text('[runner]\nmax_stepz = 3\n')
    missing = invoke("run", HELLO, "-c", "nope.toml").stderr
    assert "help: Check the file name and the working directory" in missing and "named key" not in missing
    syntax = invoke("run", HELLO, "-c", "syntax.toml").stderr
    assert "help: Fix the TOML syntax on the line shown" in syntax and "named key" not in syntax
    assert "help: Fix the named key" in invoke("config", "validate", "key.toml").stderr


def test_config_validate_says_that_node_names_are_checked_by_run(tmp_path):
    """Node names to interrupt at need the graph: validate says run checks them (and run does, exit 3)."""
    cfg = tmp_path / "ib.toml"
    cfg.write_text('[persistence]\nbackend = "memory"\n[runner]\ninterrupt_before = ["cont"]\n')
    result = invoke("config", "validate", str(cfg))
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [f"{cfg}: valid", "note: the node names in runner.interrupt_before are "
                                          "checked by `run`, against the graph"]
    assert invoke("run", HELLO, "-c", str(cfg)).exit_code == 3
    plain = tmp_path / "plain.toml"
    plain.write_text('[persistence]\nbackend = "memory"\n')
    assert invoke("config", "validate", str(plain)).stdout.splitlines() == [f"{plain}: valid"]


def test_config_validate_missing_and_unreadable_files_exit_3(tmp_path):
    """A missing file, or one that cannot be read, is a ConfigError (3)."""
    assert "config file not found" in invoke("config", "validate", "nope.toml").stderr
    assert invoke("config", "validate", "nope.toml").exit_code == 3
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00garbage")
    result = invoke("config", "validate", "binary.toml")
    assert result.exit_code == 3
    assert "cannot read config file" in result.stderr


def test_config_validate_accepts_the_shipped_example_config():
    """examples/triage.toml is a valid settings file."""
    result = invoke("config", "validate", str(EXAMPLES / "triage.toml"))
    assert result.exit_code == 0
    assert result.stdout.strip().endswith("triage.toml: valid")


def test_config_schema_includes_plugin_sections():
    """schema prints a JSON Schema whose plugins object has each plugin's table and forbids unknown keys."""
    schema = json.loads(invoke("config", "schema").stdout)
    assert set(schema["properties"]) == {"runner", "persistence", "errors", "plugins"}
    assert schema["additionalProperties"] is False
    plugins = schema["$defs"]["PluginsSettings"]
    assert {"retry", "sqlite_store", "disable"} <= set(plugins["properties"])
    assert plugins["additionalProperties"] is False
    assert "max_attempts" in schema["$defs"]["RetrySettings"]["properties"]


# ---------------------------------------------------------------------------------------------
# migrate and store
# ---------------------------------------------------------------------------------------------


def test_migrate_errors_on_a_store_without_errors_store_says_so(store, mem_config):
    """On the memory backend there is nothing to backfill, and the command says it and exits 0."""
    result = invoke("migrate", "errors", "--dry-run", "-c", mem_config)
    assert result.exit_code == 0
    assert "has no dedicated errors store" in result.stdout


def test_store_stats_reports_sessions_bytes_and_error_share(demo):
    """store stats counts sessions and checkpoints, bytes per channel, the error trail's share, the largest sessions."""
    data = json.loads(invoke("store", "stats", "-c", demo, "--json").stdout)
    assert data["backend"] == "memory" and data["sessions"] == 2 and data["checkpoints"] == 6 + 3
    channels = data["bytes_by_channel"]
    assert set(channels) == {"messages", "extra", "extra.errors", "outbox events", "errors store"}
    # the trail counts every committed event once: extra["errors"] reads the same events again
    assert data["error_trail_bytes"] == channels["outbox events"] == channels["extra.errors"] > 0
    assert data["bytes"] == channels["messages"] + channels["extra"] + data["error_trail_bytes"]
    assert data["error_trail_share"] == data["error_trail_bytes"] / data["bytes"]
    largest = data["largest_sessions"]
    assert {r["session"] for r in largest} == {"demo", "down"}
    assert largest[0]["bytes"] >= largest[1]["bytes"] and all(r["error_bytes"] > 0 for r in largest)
    assert sum(r["error_bytes"] for r in largest) == data["error_trail_bytes"]
    text = invoke("store", "stats", "-c", demo).stdout
    assert "error trail" in text and "largest sessions" in text and "are not counted again" in text


def test_an_unexpected_exception_is_one_line_and_exit_70(store, mem_config, monkeypatch):
    """A bug surfaces as 'internal error: ...' with exit 70 and no traceback (unless RAILGRAPH_DEBUG)."""
    import railgraph.cli as cli_module

    def bug(*_a, **_k):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(cli_module, "_human", bug)
    result = invoke("store", "stats", "-c", mem_config)
    assert result.exit_code == 70
    assert "internal error: ZeroDivisionError: oops" in result.stderr
    debug = CliRunner().invoke(cli, ["store", "stats", "-c", mem_config], env={"RAILGRAPH_DEBUG": "1"})
    assert debug.exit_code == 70 and "Traceback" in debug.stderr


# ---------------------------------------------------------------------------------------------
# real processes: exit codes, and the SQLite store shared between processes
# ---------------------------------------------------------------------------------------------

sqlite_ready = pytest.mark.skipif(
    not hasattr(__import__("railgraph.plugins.sqlite_store", fromlist=["x"]), "make_checkpointer"),
    reason="the sqlite_store plugin is not implemented yet")


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["--version"], 0, ""),
    (["run", "missing.py:graph"], 2, "error[railgraph.graph.invalid]"),
    (["run", HELLO, "-c", "bad.toml"], 3, "bad.toml:2: invalid TOML"),
    (["config", "validate", "unknown.toml"], 3, "unknown.toml:2: runner.max_stepz: unknown key"),
    (["plugins", "-c", "typo.toml"], 3, "retyr"),
    (["run", HELLO, "-i", "{"], 6, "input is not valid JSON"),
    (["run", HELLO, "-c", "mem.toml", "-s", "x", "--resume"], 18, "session 'x' has no stored checkpoint"),
    (["errors", "nobody", "-c", "mem.toml"], 18, "session 'nobody' is not in the store"),
    (["run"], 64, "Missing argument 'TARGET'"),
    (["config", "init", "mem.toml"], 73, "already exists"),
])
def test_real_process_exit_codes(tmp_path, args, code, needle):
    """The installed `railgraph` script exits with the documented code and a short message, never a traceback."""
    (tmp_path / "bad.toml").write_text('[runner]\nmax_steps = = 3\n')
    (tmp_path / "unknown.toml").write_text('[runner]\nmax_stepz = 3\n')
    (tmp_path / "typo.toml").write_text('[plugins]\ndisable = ["retyr"]\n')
    (tmp_path / "mem.toml").write_text(MEMORY_TOML)
    proc = real(*args, cwd=tmp_path)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert needle in proc.stderr
    assert len(proc.stderr.splitlines()) <= 8


@sqlite_ready
def test_real_processes_share_the_sqlite_trail_and_the_diagnostic(tmp_path):
    """A run in one process, then errors/sessions/store stats/migrate in new processes read the same SQLite store."""
    ok = real("run", TRIAGE, "--config", str(EXAMPLES / "triage.toml"), "--session", "demo", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / ".railgraph" / "railgraph.db").is_file()
    trail = real("errors", "demo", cwd=tmp_path)
    assert trail.returncode == 0
    assert "4 events: node 4 · 1 retry" in trail.stdout and API_KEY not in trail.stdout
    ladder = ok.stdout.split("error ladder of session demo (this run)\n")[1].split("\n✔")[0]
    assert trail.stdout.split("\n", 1)[1].rstrip("\n") == ladder.rstrip("\n")

    bad = real("run", TRIAGE, "-c", str(EXAMPLES / "triage.toml"), "-s", "down",
               "-i", '{"extra": {"crm_failure_rate": 1.0}}', cwd=tmp_path)
    assert bad.returncode == 10
    diagnostic = bad.stderr.split("  resume with:")[0].rstrip("\n")
    later = real("errors", "down", cwd=tmp_path)
    assert later.stdout.rstrip("\n").endswith(diagnostic)
    assert API_KEY not in bad.stdout + bad.stderr + later.stdout

    rows = {r["session"]: r for r in json.loads(real("sessions", "--json", cwd=tmp_path).stdout)}
    assert rows["demo"]["status"] == "completed" and rows["down"]["status"] == "failed"
    stats = json.loads(real("store", "stats", "--json", cwd=tmp_path).stdout)
    assert stats["sessions"] == 2 and stats["store"]["file_bytes"] > 0
    dry = real("migrate", "errors", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0 and dry.stdout.startswith("dry run: scanned 2 session(s)")
    assert real("migrate", "errors", cwd=tmp_path).returncode == 0


@sqlite_ready
def test_real_process_crash_leaves_a_readable_trail(tmp_path):
    """After a process dies mid-run, a new process lists the session as running and shows its events."""
    (tmp_path / "crash_graph.py").write_text(
        "import os\n"
        "from railgraph import END, START, GraphBuilder\n"
        "def first(s, ctx):\n"
        "    return {'errors': [ctx.event('about to crash', code='test.precrash')]}\n"
        "def crash(s, ctx):\n"
        "    os._exit(9)\n"
        "graph = GraphBuilder()\n"
        "graph.add_node('first', first); graph.add_node('crash', crash)\n"
        "graph.add_edge(START, 'first'); graph.add_edge('first', 'crash'); graph.add_edge('crash', END)\n")
    died = real("run", "crash_graph.py:graph", "-s", "c", cwd=tmp_path)
    assert died.returncode == 9
    rows = json.loads(real("sessions", "--json", cwd=tmp_path).stdout)
    assert rows[0]["session"] == "c" and rows[0]["status"] == "running" and rows[0]["error_count"] == 1
    events = real("errors", "c", "--jsonl", cwd=tmp_path).stdout.splitlines()
    assert [ErrorEvent.from_json(e).code for e in events] == ["test.precrash"]


@sqlite_ready
def test_real_process_corrupt_store_exits_16(tmp_path):
    """A store file that is not a database is a CheckpointError (16) for every store command."""
    (tmp_path / ".railgraph").mkdir()
    (tmp_path / ".railgraph" / "railgraph.db").write_bytes(os.urandom(4096))
    for args in (["sessions"], ["errors", "x"], ["store", "stats"], ["migrate", "errors"], ["run", HELLO]):
        proc = real(*args, cwd=tmp_path)
        assert proc.returncode == 16, (args, proc.stderr)
        assert "error[railgraph.persistence.checkpoint_failed]" in proc.stderr


def test_run_pauses_at_an_interrupt_exits_0_and_resumes(store, tmp_path):
    """A run that pauses at interrupt_before exits 0 with a resume hint; --resume completes it."""
    (tmp_path / "pause.toml").write_text('[persistence]\nbackend = "memory"\n[runner]\ninterrupt_before = ["greet"]\n')
    paused = invoke("run", HELLO, "-c", "pause.toml", "-s", "p")
    assert paused.exit_code == 0
    assert "session p interrupted" in paused.stdout and "--session p --resume" in paused.stdout
    assert store.latest("p").status == "interrupted"
    rows = json.loads(invoke("sessions", "-c", "pause.toml", "--json").stdout)
    assert rows[0]["status"] == "interrupted"
    resumed = invoke("run", HELLO, "-c", "pause.toml", "-s", "p", "--resume")
    assert resumed.exit_code == 0 and store.latest("p").status == "completed"


def test_live_view_tracks_running_nodes_steps_and_errors():
    """On a terminal, wrapped nodes show as running while they run and the panel counts steps and events."""
    import dataclasses
    import io
    import uuid as _uuid
    from datetime import datetime, timezone

    from rich.console import Console

    from railgraph import StepReport
    from railgraph.cli import Progress, _wrap_nodes, load_target
    from railgraph.events import NodeScope, make_event
    from railgraph.state import Snapshot

    progress = Progress(Console(file=io.StringIO()), "live", live=True)
    seen: list[dict] = []
    spec = load_target(HELLO)
    greet = spec.nodes["greet"]

    def spy(state, ctx):
        seen.append(dict(progress.running))
        return greet.fn(state, ctx)

    spec = dataclasses.replace(spec, nodes={**spec.nodes, "greet": dataclasses.replace(greet, fn=spy)})
    wrapped = _wrap_nodes(spec, progress.running)
    snap = Snapshot((), {}, (), {"messages": 1, "extra": 1, "errors": 1})
    assert wrapped.nodes["greet"].fn(snap, None)["extra"] == {"n": 0}
    assert list(seen[0]) == ["greet"] and progress.running == {}
    event = make_event("slow CRM", scope=NodeScope(node="lookup", step=3), id=_uuid.UUID(int=5),
                       when=datetime(2026, 1, 1, tzinfo=timezone.utc))
    progress.after_step(report=StepReport("live", 3, ("lookup",), {}, (event,), "running", {}))
    progress.after_step(report=StepReport("other", 9, ("x",), {}, (event,), "running", {}))  # another session
    buf = io.StringIO()
    Console(file=buf, width=200).print(progress)
    panel = buf.getvalue()
    assert "session live" in panel and "step 3" in panel
    assert "last step ran: lookup" in panel
    assert "errors so far: 1" in panel and "slow CRM" in panel


# ---------------------------------------------------------------------------------------------
# resume hints, Ctrl-C, busy sessions, missing stores, --type, validate, explain
# ---------------------------------------------------------------------------------------------

def _hint(text: str) -> list[str]:
    """The arguments of the printed `resume with:` command (after `railgraph`)."""
    line = next(ln for ln in text.splitlines() if "resume with:" in ln)
    args = shlex.split(line.split("resume with:", 1)[1])
    assert args[0] == "railgraph"
    return args[1:]


@pytest.mark.parametrize("config_first", [False, True])
def test_resume_hint_keeps_the_config_and_copying_it_resumes(store, mem_config, tmp_path, config_first):
    """The hint after a failure repeats --config as given (before or after the command) and --max-steps;
    running it verbatim resumes the session on the same store and completes it."""
    (tmp_path / "flag_graph.py").write_text(FLAG_GRAPH)
    (tmp_path / "fail.flag").write_text("")
    args = ["run", "flag_graph.py:graph", "-s", "hint", "--max-steps", "50"]
    failed = invoke("-c", mem_config, *args) if config_first else invoke(*args, "-c", mem_config)
    assert failed.exit_code == 10
    hint = _hint(failed.stderr)
    assert hint == ["run", "flag_graph.py:graph", "--config", mem_config, "--session", "hint", "--resume",
                    "--max-steps", "50"]
    assert "from the environment" not in failed.stderr
    (tmp_path / "fail.flag").unlink()
    resumed = invoke(*hint)
    assert resumed.exit_code == 0, resumed.output
    assert "session hint completed" in resumed.stdout and store.latest("hint").status == "completed"


def test_resume_hint_names_settings_taken_from_the_environment(store, mem_config, tmp_path):
    """RAILGRAPH_* settings variables cannot be part of the command: the hint says they applied."""
    (tmp_path / "flag_graph.py").write_text(FLAG_GRAPH)
    (tmp_path / "fail.flag").write_text("")
    failed = invoke("run", "flag_graph.py:graph", "-c", mem_config, "-s", "env",
                    env={"RAILGRAPH_RUNNER__MAX_CONCURRENCY": "2"})
    assert failed.exit_code == 10
    assert "settings from the environment: RAILGRAPH_RUNNER__MAX_CONCURRENCY" in failed.stderr


@sqlite_ready
def test_tour_failure_fixed_by_config_then_the_printed_resume_succeeds(tmp_path):
    """The README tour: retries switched off by the environment make the CRM's first failure final (exit 10);
    the printed command, run as is, resumes with the config file's retries and completes."""
    config = str(EXAMPLES / "triage.toml")
    failed = real("run", TRIAGE, "-c", config, "-s", "down", cwd=tmp_path,
                  env={"RAILGRAPH_PLUGINS__RETRY__MAX_ATTEMPTS": "1"})
    assert failed.returncode == 10, failed.stderr
    assert "triage.CRMUnavailable" in failed.stderr
    hint = _hint(failed.stderr)
    assert hint == ["run", TRIAGE, "--config", config, "--session", "down", "--resume"]
    assert "RAILGRAPH_PLUGINS__RETRY__MAX_ATTEMPTS" in failed.stderr
    resumed = real(*hint, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "[retry, attempt:1/3]" in resumed.stdout and "session down completed" in resumed.stdout


CTRL_C_GRAPH = FLAG_GRAPH.replace('raise RuntimeError("fail.flag is present")', "raise KeyboardInterrupt")


def test_ctrl_c_prints_the_resume_command_and_exits_130(store, mem_config, tmp_path):
    """Ctrl-C during a run: exit 130, the session stays 'running' at its last commit, and the printed
    resume command continues it."""
    (tmp_path / "ctrl_c_graph.py").write_text(CTRL_C_GRAPH)
    (tmp_path / "fail.flag").write_text("")
    stopped = invoke("run", "ctrl_c_graph.py:graph", "-c", mem_config, "-s", "cc")
    assert stopped.exit_code == 130
    assert "interrupted (Ctrl-C): session cc stopped after step 2" in stopped.stderr
    assert store.latest("cc").status == "running"
    hint = _hint(stopped.stderr)
    assert hint == ["run", "ctrl_c_graph.py:graph", "--config", mem_config, "--session", "cc", "--resume"]
    (tmp_path / "fail.flag").unlink()
    resumed = invoke(*hint)
    assert resumed.exit_code == 0 and store.latest("cc").status == "completed"


def test_busy_session_is_refused_without_the_restart_note(store, mem_config):
    """A session another worker holds: exit 17, and no 'starting it again' note (nothing was restarted).
    A session that is free gets the note once its claim is held."""
    import threading

    assert invoke("run", HELLO, "-c", mem_config, "-s", "busy").exit_code == 0
    holder = threading.Thread(target=store.acquire, args=("busy",))
    holder.start()
    holder.join()  # the claim now belongs to a thread that is gone: another worker, as far as we know
    refused = invoke("run", HELLO, "-c", mem_config, "-s", "busy")
    assert refused.exit_code == 17, refused.output
    assert "railgraph.persistence.session_busy" in refused.stderr
    assert "note:" not in refused.output
    store.release("busy")
    again = invoke("run", HELLO, "-c", mem_config, "-s", "busy")
    assert again.exit_code == 0
    assert "note: session busy exists (completed at step" in again.stdout


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["sessions"], 66, "no store at "),
    (["sessions", "--json"], 66, "no store at "),
    (["store", "stats"], 66, "no store at "),
    (["migrate", "errors", "--dry-run"], 66, "no store at "),
    (["migrate", "errors"], 66, "no store at "),
    (["errors", "nobody"], 18, "session 'nobody' is not in the store: no store at "),
    (["run", HELLO, "-s", "nobody", "--resume"], 18, "session 'nobody' has no stored checkpoint to resume: no store"),
])
def test_read_only_commands_do_not_create_a_missing_sqlite_store(tmp_path, args, code, needle):
    """Without a SQLite file, the store commands say so, naming the path, and create nothing."""
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert needle in result.stderr
    assert str(tmp_path / ".railgraph" / "railgraph.db") in result.stderr
    assert not (tmp_path / ".railgraph").exists()


@sqlite_ready
def test_missing_session_messages_name_the_store(tmp_path, store, mem_config):
    """'not in the store' says which store: the SQLite file, or the memory store."""
    assert invoke("run", HELLO, "-s", "there").exit_code == 0
    db = tmp_path / ".railgraph" / "railgraph.db"
    result = invoke("errors", "nobody")
    assert result.exit_code == 18 and f"(sqlite store {db})" in result.stderr
    resumed = invoke("run", HELLO, "-s", "nobody", "--resume")
    assert resumed.exit_code == 18 and f"in the sqlite store {db}" in resumed.stderr
    result = invoke("errors", "nobody", "-c", mem_config)
    assert result.exit_code == 18 and "(memory store of this process)" in result.stderr


def test_store_description_never_shows_a_postgres_password():
    """A DSN's password (URL or key=value) is left out of messages."""
    from railgraph.cli import _redact_dsn

    assert _redact_dsn("postgresql://app:s3cret@db:5432/rg") == "postgresql://app@db:5432/rg"
    assert "s3cret" not in _redact_dsn("host=db password=s3cret user=app")
    assert "s3 cret" not in _redact_dsn("host=db password='s3 cret' user=app")
    assert _redact_dsn("postgresql://app@db/rg") == "postgresql://app@db/rg"
    # the TLS key's password too, and query parameters end at the next &
    assert _redact_dsn("postgresql://app@db/rg?sslpassword=k3y&connect_timeout=5") == \
        "postgresql://app@db/rg?sslpassword=[REDACTED]&connect_timeout=5"
    assert "k3y" not in _redact_dsn("host=db sslpassword=k3y user=app")


@pytest.mark.parametrize(("filters", "expected"), [
    (["--type", "triage.*"], 2),                     # CRMUnavailable (retried attempt) and CustomerNotFound
    (["--type", "CustomerNotFound"], 1),             # the last part of the dotted type
    (["--type", "railgraph.NodeEvent"], 2),          # events built with ctx.event
    (["--type", "TimeoutError"], 0),                 # a cause, not the top rung
    (["--code", "triage.*"], 2),                     # only events that carry a code
    (["--type", "triage.*", "--code", "triage.*"], 0),
])
def test_errors_type_filter_matches_the_exception_type_not_the_code(demo, filters, expected):
    """--type globs the top rung's exception type; --code never matches an event without a code."""
    result = invoke("errors", "demo", "-c", demo, "--jsonl", *filters)
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == expected


def test_filter_events_by_type():
    """filter_events(types=...) matches the dotted type or its last part, with globs."""
    import uuid
    from datetime import datetime, timezone

    from railgraph.events import NodeScope, make_event

    def ev(type_: str, code: str | None = None) -> ErrorEvent:
        return make_event("m", scope=NodeScope(node="n", step=1), type=type_, code=code, id=uuid.uuid4(),
                          when=datetime.now(timezone.utc))

    events = [ev("triage.CRMUnavailable"), ev("railgraph.NodeEvent", "triage.sla.breached"), ev("KeyError")]
    assert [e.error.type for e in filter_events(events, types=["triage.*"])] == ["triage.CRMUnavailable"]
    assert [e.error.type for e in filter_events(events, types=["*Error"])] == ["KeyError"]
    assert [e.error.type for e in filter_events(events, types=["CRM*", "Key*"])] == ["triage.CRMUnavailable",
                                                                                     "KeyError"]
    assert [e.code for e in filter_events(events, codes=["triage.*"])] == ["triage.sla.breached"]


@pytest.mark.parametrize(("content", "needle"), [
    ('[persistence]\n\nbackend = "sqlit"\n', "bad.toml:3: persistence.backend: no loaded plugin provides backend "
                                             "'sqlit'"),
    ('[persistence]\nbackend = "postgres"\n', "plugins.postgres_store.dsn"),
    ('[persistence]\nbackend = "sqlite"\n[plugins]\ndisable = ["sqlite_store"]\n', "bad.toml:2: persistence.backend"),
])
def test_config_validate_rejects_what_run_rejects(tmp_path, content, needle):
    """validate resolves the backend against the loaded plugins, as run does, naming file, line and key."""
    (tmp_path / "bad.toml").write_text(content)
    result = invoke("config", "validate", "bad.toml")
    assert result.exit_code == 3, result.output
    assert needle in result.stderr
    assert not (tmp_path / ".railgraph").exists()
    ran = invoke("run", HELLO, "-c", "bad.toml")
    assert ran.exit_code == 3


def test_config_validate_names_an_environment_backend(tmp_path):
    """A bad backend from RAILGRAPH_PERSISTENCE__BACKEND is reported as coming from the environment."""
    (tmp_path / "ok.toml").write_text("[runner]\nmax_steps = 5\n")
    result = invoke("config", "validate", "ok.toml", env={"RAILGRAPH_PERSISTENCE__BACKEND": "nope"})
    assert result.exit_code == 3
    assert "environment RAILGRAPH_PERSISTENCE__BACKEND: persistence.backend" in result.stderr


def test_run_unknown_backend_names_file_and_line(tmp_path):
    """The runner's ConfigError for an unknown backend carries the file and the line."""
    (tmp_path / "bad.toml").write_text('[runner]\nmax_steps = 5\n\n[persistence]\nbackend = "sqlit"\n')
    result = invoke("run", HELLO, "-c", "bad.toml")
    assert result.exit_code == 3
    assert "┌─ bad.toml:5 · key persistence.backend" in result.stderr


def test_config_explain_lists_unset_keys(mem_config):
    """Keys without a value (no node timeout, no cap...) are listed as (unset) with their source."""
    text = invoke("config", "explain", "-c", mem_config).stdout
    for key in ("runner.node_timeout", "errors.channel_limit", "plugins.cap.max_events", "plugins.retry.seed"):
        assert re.search(rf"^{re.escape(key)}\s+\(unset\)\s+default", text, re.M), key
    data = json.loads(invoke("config", "explain", "-c", mem_config, "--json").stdout)
    rows = {v["key"]: v for v in data["values"]}
    assert rows["runner.node_timeout"] == {"key": "runner.node_timeout", "value": None, "source": "default",
                                           "unset": True}
    assert rows["persistence.backend"]["source"] == "file"


def test_help_lists_every_exit_code():
    """`railgraph --help` names every exit code the CLI can return."""
    text = " ".join(invoke("--help").stdout.split())
    for code in ("0", "1", "2", "3", "4", "5", "6", "10-15", "16", "17", "18", "64", "66", "70", "73", "130"):
        assert re.search(rf"\b{code} [a-zA-Z]", text), code


read_only_backend = backend_fixture(("sqlite", "postgres"))


@pytest.mark.parametrize(("args", "code"), [
    (["sessions"], 66), (["errors", "x"], 18), (["store", "stats"], 66), (["migrate", "errors", "--dry-run"], 66),
    (["run", HELLO, "-s", "x", "--resume"], 18),
])
def test_read_only_commands_create_no_store(read_only_backend, tmp_path, args, code):
    """The commands that only read a store stop (66, or 18 for a session) where none exists — a file
    path or a PostgreSQL schema a typo led them to — and create nothing there (on PostgreSQL they
    once created the schema and its tables, and answered from the new empty store)."""
    b = read_only_backend
    cfg = tmp_path / "ro.toml"
    table = (f'[plugins.sqlite_store]\npath = "{b.path}"\n' if b.name == "sqlite"
             else f'[plugins.postgres_store]\ndsn = "{b.dsn}"\nschema = "{b.schema}"\n')
    cfg.write_text(f'[persistence]\nbackend = "{b.name}"\n{table}')
    proc = real(*args, "-c", str(cfg), cwd=tmp_path)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "nothing has run with these settings" in proc.stderr
    if b.name == "sqlite":
        assert not b.path.exists()
    else:
        import psycopg
        with psycopg.connect(b.dsn) as conn:
            assert conn.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s",
                                (b.schema,)).fetchone() is None


def test_a_store_plugin_saying_its_store_is_missing_stops_the_read_only_commands(store, mem_config, monkeypatch):
    """The store_missing hook: a store plugin's answer stops sessions (66) and errors SESSION (18)
    with its message, before any store is opened; None lets them read as usual."""
    @hookimpl
    def store_missing(backend, settings):
        return "no store in the vault 'v1' (nothing has run with these settings)" if backend == "memory" else None
    monkeypatch.setattr(memory_store, "store_missing", store_missing, raising=False)
    result = invoke("sessions", "-c", mem_config)
    assert result.exit_code == 66 and "no store in the vault 'v1'" in result.stderr
    result = invoke("errors", "s", "-c", mem_config)
    assert result.exit_code == 18 and "session 's' is not in the store: no store in the vault 'v1'" in result.stderr
    monkeypatch.setattr(memory_store, "store_missing", hookimpl(lambda backend, settings: None))
    assert invoke("sessions", "-c", mem_config).exit_code == 0


def test_a_store_in_a_mixed_case_postgres_schema_is_found(tmp_path):
    """PostgreSQL folds an unquoted schema name to lower case: the read-only commands' check for a
    missing store folds it too, so a store made under `Tenant_X` is read, not refused."""
    from store_helpers import make_backend

    b = make_backend("postgres", tmp_path)
    b.schema = b.schema.replace("rgt_", "Rgt_Up_")
    try:
        cfg = tmp_path / "up.toml"
        cfg.write_text(f'[persistence]\nbackend = "postgres"\n[plugins.postgres_store]\ndsn = "{b.dsn}"\n'
                       f'schema = "{b.schema}"\n')
        assert real("run", HELLO, "-s", "u", "-c", str(cfg), cwd=tmp_path).returncode == 0
        listed = real("sessions", "--json", "-c", str(cfg), cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert [r["session"] for r in json.loads(listed.stdout)] == ["u"]
    finally:
        b.schema = b.schema.lower()
        b.close()


def test_a_role_that_cannot_read_the_store_is_told_so_not_that_it_is_missing(tmp_path):
    """information_schema lists only the tables a role may use: the missing-store check reads the
    catalog, so a role without table privileges gets the store's permission error (16), not 'no
    railgraph store' (66)."""
    import uuid

    import psycopg
    from store_helpers import make_backend

    b = make_backend("postgres", tmp_path)
    role = f"rg_reader_{uuid.uuid4().hex[:8]}"
    try:
        cfg = tmp_path / "owner.toml"
        cfg.write_text(f'[persistence]\nbackend = "postgres"\n[plugins.postgres_store]\ndsn = "{b.dsn}"\n'
                       f'schema = "{b.schema}"\n')
        assert real("run", HELLO, "-s", "s1", "-c", str(cfg), cwd=tmp_path).returncode == 0
        with psycopg.connect(b.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {role} LOGIN")
            conn.execute(f"GRANT USAGE ON SCHEMA {b.schema} TO {role}")
        reader = tmp_path / "reader.toml"
        reader.write_text(cfg.read_text().replace("postgres@", f"{role}@", 1))
        proc = real("sessions", "-c", str(reader), cwd=tmp_path)
        assert proc.returncode == 16 and "permission denied" in proc.stderr, proc.stderr
    finally:
        b.close()
        with psycopg.connect(b.dsn, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")


def test_the_live_panel_does_not_count_reused_nodes_as_run():
    """On a terminal, the panel's 'last step ran' names the nodes that ran and, apart, those whose
    stored result the resumed step reused."""
    from rich.console import Console

    from railgraph.cli import Progress
    from railgraph.hookspecs import StepReport
    from railgraph.render import to_plain

    progress = Progress(Console(file=io.StringIO()), "s", live=True)
    progress.after_step(StepReport("s", 3, ("a", "b"), reused=("a",)))
    assert "last step ran: b (reused the stored result of a)" in to_plain(progress)
