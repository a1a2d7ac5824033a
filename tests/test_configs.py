"""Shipped configs validate and show every key; settings round-trip through TOML; bad input fails in one line."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from railgraph import END, START, ConfigError, GraphBuilder, PluginError, Settings
from railgraph.config import ErrorsSettings, PersistenceSettings, PluginsSettings, RunnerSettings
from railgraph.manager import make_plugins

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PLUGINS = make_plugins()  # the real installed plugin set, built-ins included
MODELS = PLUGINS.section_models()


def write(path: Path, text: str) -> Path:
    """Write dedented `text` to `path` and return it."""
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def tables(text: str) -> dict[str, str]:
    """TOML text split by table header: header → the lines under it (commented keys included)."""
    out: dict[str, str] = {"": ""}
    current = ""
    for line in text.splitlines():
        m = re.match(r"^\[([^\]]+)\]\s*$", line)
        if m:
            current = m.group(1)
            out[current] = ""
        else:
            out[current] += line + "\n"
    return out


def one_graph() -> GraphBuilder:
    """A trivial graph to compile settings against."""
    builder = GraphBuilder()
    builder.add_node("a", lambda state: None)
    builder.add_edge(START, "a")
    builder.add_edge("a", END)
    return builder


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_config_validates_against_the_real_plugin_set(path: Path) -> None:
    """Each file in configs/ loads and binds against every installed plugin's settings model."""
    bound = PLUGINS.bind(Settings.load(path))
    assert bound.file == path
    assert set(bound.sections) == set(MODELS)


def test_the_four_profiles_ship() -> None:
    """configs/ has the default, capped long-running, migrate-off-extra and Postgres profiles."""
    names = {p.name for p in CONFIGS.glob("*.toml")}
    assert {"default.toml", "long-running.toml", "migrate-off-extra.toml", "postgres.toml"} <= names
    long_running = PLUGINS.bind(Settings.load(CONFIGS / "long-running.toml"))
    assert long_running.plugin("cap").max_events is not None and long_running.errors.channel_limit is not None
    assert long_running.plugin("reserved_keys").gate_reserved_keys is True
    assert PLUGINS.bind(Settings.load(CONFIGS / "postgres.toml")).persistence.backend == "postgres"
    migrate = (CONFIGS / "migrate-off-extra.toml").read_text()
    assert all(m in migrate for m in ('"legacy"', '"dual"', '"verify"', '"store-only"', "railgraph migrate errors"))


def test_default_toml_shows_every_key_with_a_comment_and_loads_to_defaults() -> None:
    """default.toml lists every key of every section (set or commented) after a comment, and equals the defaults."""
    text = (CONFIGS / "default.toml").read_text()
    found = tables(text)
    # the built-ins' tables: a third-party plugin installed in the same environment is not shipped here
    builtin = {n: m for n, m in MODELS.items() if PLUGINS.origins[n].distribution == "railgraph"}
    assert {"cap", "redact", "retry", "sqlite_store"} <= set(builtin)
    sections: dict[str, Any] = {"runner": RunnerSettings, "persistence": PersistenceSettings,
                                "errors": ErrorsSettings, "plugins": PluginsSettings,
                                **{f"plugins.{n}": m for n, m in builtin.items()}}
    for header, model in sections.items():
        assert header in found, f"[{header}] missing from default.toml"
        body = found[header]
        for name in model.model_fields:
            m = re.search(rf"^(# )?{name} =", body, re.MULTILINE)
            assert m, f"{header}.{name} missing from default.toml"
            before = body[: m.start()].rstrip("\n").splitlines()
            assert before and before[-1].startswith("#"), f"{header}.{name} has no comment"
    defaults = PLUGINS.bind(Settings()).to_data()
    assert PLUGINS.bind(Settings.load(CONFIGS / "default.toml")).to_data() == defaults


words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-", min_size=1, max_size=10)
texts = st.text(max_size=20)
positive = st.floats(min_value=0.001, max_value=1e6, allow_nan=False)
retry_rule = st.fixed_dictionaries({}, optional={
    "max_attempts": st.integers(1, 10), "backoff": st.floats(0, 100), "multiplier": st.floats(1, 10),
    "max_delay": st.floats(0, 100), "jitter": st.floats(0, 1), "retry_on": st.lists(words, max_size=3)})
plugin_tables = st.fixed_dictionaries({}, optional={
    "cap": st.fixed_dictionaries({}, optional={"max_events": st.integers(1, 10**6),
                                                "strategy": st.sampled_from(["summarize", "drop-oldest"])}),
    "extra_errors": st.fixed_dictionaries({"mode": st.sampled_from(["legacy", "dual", "verify", "store-only"])}),
    "reserved_keys": st.fixed_dictionaries({"gate_reserved_keys": st.booleans()}),
    "redact": st.fixed_dictionaries({}, optional={"enabled": st.booleans(), "keys": st.lists(words, max_size=3),
                                                  "patterns": st.lists(st.sampled_from([r"\d{4}", "ACCT-[0-9]+"])),
                                                  "replacement": st.text(min_size=1, max_size=8)}),
    "retry": retry_rule.flatmap(lambda rule: st.fixed_dictionaries(
        {}, optional={"seed": st.integers(-100, 100), "nodes": st.dictionaries(texts, retry_rule, max_size=2)}
    ).map(lambda extra: {**rule, **extra})),
    "jsonl_sink": st.fixed_dictionaries({}, optional={"enabled": st.booleans(), "path": st.text(min_size=1,
                                                      max_size=12), "fsync": st.booleans()}),
    "otel_sink": st.fixed_dictionaries({}, optional={"kind": st.sampled_from(["logs", "span-events"]),
                                                     "exporter": st.sampled_from(["global", "console"])}),
})
settings_args = st.fixed_dictionaries({
    "runner": st.fixed_dictionaries({}, optional={"max_steps": st.integers(1, 10**9), "node_timeout": positive,
                                                  "interrupt_before": st.lists(texts, max_size=3),
                                                  "interrupt_after_step": st.booleans(), "sink_timeout": positive}),
    "persistence": st.fixed_dictionaries({"backend": st.sampled_from(["memory", "sqlite", "postgres"])}),
    "errors": st.fixed_dictionaries({}, optional={"channel_limit": st.integers(1, 10**6),
                                                  "max_message": st.integers(64, 10**6)}),
    "plugins": plugin_tables,
})


@given(settings_args)
def test_settings_to_toml_and_back_is_the_identity(args: dict[str, Any]) -> None:
    """Any valid settings (plugin tables included) written with to_toml load back to equal settings."""
    original = PLUGINS.bind(Settings(**args))
    path = Path("roundtrip.toml")
    path.write_text(original.to_toml(), encoding="utf-8")
    assert PLUGINS.bind(Settings.load(path)).to_data() == original.to_data()


# -- bad input: one line, naming what and where ---------------------------------------------------


@pytest.mark.parametrize(("text", "key", "line"), [
    ("[runner]\nmax_steps = 5\n\n[plugins.retry]\nmax_attempts = \"three\"\n", "plugins.retry.max_attempts", 5),
    ("[plugins.cap]\nstrategy = \"summarize\"\nmax_events = 0\n", "plugins.cap.max_events", 3),
    ("[plugins.cap]\nmax_events = -2\n", "plugins.cap.max_events", 2),
    ("# staged\n[plugins.extra_errors]\nmode = \"shadow\"\n", "plugins.extra_errors.mode", 3),
    ("[plugins.capp]\nmax_events = 3\n", "plugins.capp", 1),
])
def test_bad_plugin_values_in_a_file_name_file_key_and_line(tmp_path: Path, text: str, key: str, line: int) -> None:
    """A bad plugin value (wrong type, cap <= 0, unknown mode, unknown table) is a one-line ConfigError at file:line."""
    cfg = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as info:
        one_graph().compile(Settings.load(cfg))
    err = info.value
    assert str(err).startswith(f"{cfg}:{line}: {key}") and "\n" not in str(err)
    assert (err.file, err.key, err.line, err.exit_code) == (str(cfg), key, line, 3)


def test_unknown_plugin_in_disable_names_the_file_and_line(tmp_path: Path) -> None:
    """plugins.disable naming no plugin is a one-line ConfigError with the file, key and line."""
    cfg = write(tmp_path / "bad.toml", "[persistence]\nbackend = \"memory\"\n\n[plugins]\ndisable = [\"capp\"]\n")
    with pytest.raises(ConfigError) as info:
        one_graph().compile(Settings.load(cfg))
    err = info.value
    assert str(err).startswith(f"{cfg}:5: plugins.disable names unknown plugin(s) ['capp']")
    assert "\n" not in str(err) and err.key == "plugins.disable" and err.line == 5


def test_disable_by_name_turns_a_builtin_off() -> None:
    """plugins.disable = ["redact"] leaves the redactor out of the processor chain."""
    with one_graph().compile(Settings(persistence={"backend": "memory"})) as on:
        assert "redact" in on.runner.processor_names
    with one_graph().compile(Settings(persistence={"backend": "memory"},
                                      plugins={"disable": ["redact"]})) as off:
        assert "redact" not in off.runner.processor_names and "redact" not in off.runner.plugins.names()


def test_plugin_that_raises_at_load_is_a_one_line_plugin_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """An installed entry point whose module raises on import fails compile with a one-line PluginError."""
    site = tmp_path / "site"
    dist = site / "railgraph_explodes-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: railgraph-explodes\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[railgraph]\nexplodes = railgraph_explodes_mod\n")
    (site / "railgraph_explodes_mod.py").write_text("raise RuntimeError('cannot reach license server')\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "railgraph_explodes_mod", raising=False)
    with pytest.raises(PluginError) as info:
        one_graph().compile(Settings(persistence={"backend": "memory"}))
    err = info.value
    assert (err.plugin, err.hook, err.exit_code) == ("explodes", "load", 4)
    assert "railgraph_explodes_mod" in str(err) and "cannot reach license server" in str(err)
    assert "\n" not in str(err)
    # and blocking it by name is the way out
    with one_graph().compile(Settings(persistence={"backend": "memory"}, plugins={"disable": ["explodes"]})) as g:
        assert "explodes" not in g.runner.plugins.names()
