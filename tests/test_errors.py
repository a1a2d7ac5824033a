"""The RunnerError tree: codes, help lines, exit codes, location data and builtin bases."""

from __future__ import annotations

import re

import railgraph
from railgraph import errors


def _classes() -> list[type[errors.RunnerError]]:
    out, todo = [], [errors.RunnerError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def test_every_class_has_a_stable_dotted_code_help_and_exit_code() -> None:
    """Each error class declares a dotted railgraph.* code, a help line and a positive exit code."""
    for cls in _classes():
        assert re.fullmatch(r"railgraph(\.[a-z_]+)+", cls.code), cls
        assert cls.help and cls.help.strip() == cls.help, cls
        assert isinstance(cls.exit_code, int) and 0 < cls.exit_code < 64, cls


def test_codes_are_registered_in_one_table() -> None:
    """The CODES table holds every class's code with its help and exit code."""
    for cls in _classes():
        assert errors.CODES[cls.code] == (cls.help, cls.exit_code)


def test_codes_are_unique_per_class() -> None:
    """No two classes share a code (a code names one failure kind)."""
    codes = [cls.code for cls in _classes()]
    assert len(codes) == len(set(codes))


def test_errors_subclass_the_matching_builtins() -> None:
    """A timeout is a TimeoutError; decoding and input errors are ValueErrors."""
    assert issubclass(railgraph.NodeTimeout, TimeoutError)
    assert issubclass(railgraph.EventDecodeError, ValueError)
    assert issubclass(railgraph.InputError, ValueError)


def test_instances_carry_location_and_chain() -> None:
    """An instance keeps session/step/node, exposes them via where(), and chains its cause."""
    cause = KeyError("missing")
    try:
        try:
            raise cause
        except KeyError as exc:
            raise railgraph.NodeFailed("node 'n' failed", session="s", step=2, node="n") from exc
    except railgraph.NodeFailed as err:
        assert err.where() == {"session": "s", "step": 2, "node": "n"}
        assert err.__cause__ is cause
        assert str(err) == "node 'n' failed"
        assert err.event is None and err.events == ()


def test_config_and_plugin_errors_name_where() -> None:
    """ConfigError reports file/key/line and PluginError reports plugin/hook in where()."""
    c = railgraph.ConfigError("bad", file="a.toml", key="runner.max_steps", line=3)
    assert c.where() == {"file": "a.toml", "key": "runner.max_steps", "line": 3}
    p = railgraph.PluginError("boom", plugin="cap", hook="error_capper")
    assert p.where() == {"plugin": "cap", "hook": "error_capper"}


def test_exit_codes_distinguish_failure_kinds() -> None:
    """Config, plugin, input, router, step-limit and checkpoint failures exit differently."""
    kinds = [railgraph.ConfigError, railgraph.PluginError, railgraph.InputError, railgraph.RouterError,
             railgraph.StepLimitError, railgraph.CheckpointError, railgraph.SessionNotFoundError, railgraph.GraphError]
    assert len({k.exit_code for k in kinds}) == len(kinds)
