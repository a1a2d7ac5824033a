"""Settings: source precedence, file discovery, and errors that name file, key path and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from railgraph import ConfigError, Settings
from railgraph.config import commented_toml, find_key_line, read_toml


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_source() -> None:
    """With no file, no env and no arguments, the documented defaults apply (SQLite is the default store)."""
    s = Settings()
    assert s.persistence.backend == "sqlite" and s.runner.max_steps == 1000 and s.file is None


def test_precedence_argument_env_file_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicit arguments beat RAILGRAPH_ env, which beats the TOML file, which beats defaults."""
    cfg = write(tmp_path / "c.toml", "[runner]\nmax_steps = 10\nmax_concurrency = 3\nnode_timeout = 9.0\n")
    monkeypatch.setenv("RAILGRAPH_RUNNER__MAX_CONCURRENCY", "5")
    monkeypatch.setenv("RAILGRAPH_RUNNER__NODE_TIMEOUT", "7")
    s = Settings.load(cfg, runner={"node_timeout": 1.5})
    assert s.runner.node_timeout == 1.5  # argument
    assert s.runner.max_concurrency == 5  # env over file
    assert s.runner.max_steps == 10  # file over default
    assert s.runner.interrupt_after_step is False  # default
    origins = s.origins()
    assert origins["runner.node_timeout"] == "argument" and origins["runner.max_concurrency"] == "env"
    assert origins["runner.max_steps"] == "file" and origins["runner.interrupt_after_step"] == "default"


def test_file_discovery_env_then_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a path, RAILGRAPH_CONFIG is read, else ./railgraph.toml."""
    write(tmp_path / "railgraph.toml", "[runner]\nmax_steps = 11\n")
    assert Settings().runner.max_steps == 11
    other = write(tmp_path / "other.toml", "[runner]\nmax_steps = 12\n")
    monkeypatch.setenv("RAILGRAPH_CONFIG", str(other))
    assert Settings().runner.max_steps == 12


def test_missing_named_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A config path that does not exist is a ConfigError, not a silent default (argument or env)."""
    with pytest.raises(ConfigError, match="not found"):
        Settings.load(tmp_path / "nope.toml")
    monkeypatch.setenv("RAILGRAPH_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="nope.toml: config file not found") as info:
        Settings()
    assert info.value.help.startswith("Check the file name") and "named key" not in info.value.help


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """Invalid TOML is reported with the file and the line of the problem."""
    cfg = write(tmp_path / "c.toml", "[runner]\nmax_steps = 3\nbroken = = 4\n")
    with pytest.raises(ConfigError) as info:
        Settings.load(cfg)
    assert info.value.line == 3 and f"{cfg}:3" in str(info.value)
    assert info.value.help.startswith("Fix the TOML syntax on the line shown")


@pytest.mark.parametrize("text, key, line, fragment", [
    ("[runner]\nmax_steps = 3\nmax_stepz = 4\n", "runner.max_stepz", 3, "unknown key (did you mean max_steps?)"),
    ("[runner]\nzzz = 4\n", "runner.zzz", 2, "zzz: unknown key\n"),
    ("\n\n[persistence]\nbackend = 5\n", "persistence.backend", 4, "valid string"),
    ("[runner]\nmax_steps = 0\n", "runner.max_steps", 2, "greater than or equal to 1"),
    ("[bogus]\nx = 1\n", "bogus", 1, "unknown key"),
])
def test_validation_errors_name_file_key_and_line(tmp_path: Path, text: str, key: str, line: int,
                                                  fragment: str) -> None:
    """Unknown keys and wrong types fail naming the file, the dotted key path and its line."""
    cfg = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError) as info:
        Settings.load(cfg)
    err = info.value
    assert err.key == key and err.line == line and err.file == str(cfg)
    assert fragment in str(err) + "\n" and str(err).startswith(f"{cfg}:{line}: {key}")


def test_env_error_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad environment value is reported with the variable's name."""
    monkeypatch.setenv("RAILGRAPH_RUNNER__MAX_STEPS", "lots")
    with pytest.raises(ConfigError, match="RAILGRAPH_RUNNER__MAX_STEPS"):
        Settings()


def test_settings_are_frozen() -> None:
    """Loaded settings cannot be changed in place."""
    s = Settings()
    with pytest.raises(Exception):
        s.runner.max_steps = 5  # type: ignore[misc]


def test_plugin_sections_need_bind() -> None:
    """Reading a plugin table before binding to the loaded plugins is a clear ConfigError."""
    with pytest.raises(ConfigError, match="not bound") as info:
        Settings().plugin("cap")
    assert "graph.settings" in info.value.help and "named key" not in info.value.help


def test_find_key_line_handles_tables_and_dotted_keys(tmp_path: Path) -> None:
    """Key lines are found inside tables, sub-tables and dotted keys."""
    cfg = write(tmp_path / "c.toml", "[runner]\nmax_steps = 1\n\n[plugins.cap]\nmax_events = 3\n[plugins]\nretry.x = 1\n")
    assert find_key_line(cfg, ("runner", "max_steps")) == 2
    assert find_key_line(cfg, ("plugins", "cap", "max_events")) == 5
    assert find_key_line(cfg, ("plugins", "cap")) == 4
    assert find_key_line(cfg, ("plugins", "retry", "x")) == 7


def test_commented_default_toml_is_valid_and_loads_to_defaults(tmp_path: Path) -> None:
    """The generated commented default file parses and loads to the same settings as no file."""
    cfg = write(tmp_path / "c.toml", commented_toml())
    assert read_toml(cfg)["runner"]["max_steps"] == 1000
    assert Settings.load(cfg).to_data() == Settings().to_data()
    assert "# Supersteps one invoke may run" in cfg.read_text()


def test_to_toml_round_trips(tmp_path: Path) -> None:
    """Settings written with to_toml load back to equal settings."""
    s = Settings(runner={"max_steps": 7, "node_timeout": 2.5, "interrupt_before": ["a"]},
                 persistence={"backend": "memory"})
    cfg = write(tmp_path / "c.toml", s.to_toml())
    assert Settings.load(cfg).to_data() == s.to_data()


RETRY_TOML = "[runner]\nmax_steps = 5\n\n[plugins.retry]\nmax_attempts = 2\n"


@pytest.mark.parametrize("env, args, blamed", [
    # a variable's bad value, with the table in the file: the variable, not the file's line
    ({"RAILGRAPH_PLUGINS__RETRY__MAX_ATTEMPTS": "zz"}, {}, "environment RAILGRAPH_PLUGINS__RETRY__MAX_ATTEMPTS: "
     "plugins.retry.max_attempts: Input should be a valid integer"),
    # a misspelt variable, with the table in the file
    ({"RAILGRAPH_PLUGINS__RETRY__MAX_ATEMPTS": "5"}, {}, "environment RAILGRAPH_PLUGINS__RETRY__MAX_ATEMPTS: "
     "plugins.retry.max_atempts: unknown key (did you mean max_attempts?)"),
    # the name as the user spelt it (variables match without regard to case)
    ({"railgraph_plugins__retry__backoff": "soon"}, {}, "environment railgraph_plugins__retry__backoff: "
     "plugins.retry.backoff:"),
    # an argument wins over the variable and the file
    ({"RAILGRAPH_PLUGINS__RETRY__MAX_ATTEMPTS": "3"}, {"plugins": {"retry": {"max_attempts": "x"}}},
     "argument plugins.retry.max_attempts: Input should be a valid integer"),
    # a JSON table in a shallower variable that holds the key wins over the file (env over file)
    ({"RAILGRAPH_PLUGINS": '{"retry": {"max_attempts": "zz"}}'}, {},
     "environment RAILGRAPH_PLUGINS: plugins.retry.max_attempts: Input should be a valid integer"),
    # the file's own bad value still names the file and the line, whatever variables say of other keys
    ({"RAILGRAPH_PLUGINS__RETRY__BACKOFF": "0.5"}, {}, None),
    ({"RAILGRAPH_PLUGINS": '{"retry": {"backoff": 0.5}}'}, {}, None),
])
def test_plugin_table_errors_name_the_source_of_the_bad_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            env: dict[str, str], args: dict, blamed: str | None
                                                            ) -> None:
    """A plugin table's bad or unknown key is blamed on where it came from: an argument, the exact
    environment variable, or the TOML file with its line (the file was blamed for variables)."""
    from railgraph.manager import make_plugins

    text = RETRY_TOML if blamed is not None else RETRY_TOML.replace("max_attempts = 2", "max_attempts = -1")
    cfg = write(tmp_path / "c.toml", text)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        make_plugins().bind(Settings.load(cfg, **args))
    if blamed is None:
        assert str(info.value).startswith(f"{cfg}:5: plugins.retry.max_attempts: ") and info.value.line == 5
    else:
        assert str(info.value).startswith(blamed) and info.value.file is None
