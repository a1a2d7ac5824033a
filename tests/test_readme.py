"""The README stays true: its Python examples run, and its reference tables cover every key and error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from railgraph import Settings, errors

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_python_examples_run(index: int) -> None:
    """Every ```python block of the README executes without error (in a scratch directory)."""
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {"__name__": "readme"})


def _keys(model: type[BaseModel], prefix: str) -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.extend(_keys(ann, f"{prefix}{name}."))
        else:
            out.append(f"{prefix}{name}")
    return out


def test_every_core_setting_is_documented() -> None:
    """Each key of the core Settings model appears in the README's configuration reference."""
    for key in _keys(Settings, ""):
        section, _, leaf = key.rpartition(".")
        assert f"`{key}`" in README or (f"`{section}." in README and f"{leaf}`" in README), key


def test_every_error_class_and_code_is_documented() -> None:
    """Each RunnerError subclass and its code appear in the README's error table."""
    todo = list(errors.RunnerError.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__name__ == "NodeError":
            continue
        assert f"`{cls.__name__}`" in README and f"`{cls.code}`" in README, cls.__name__


# ---------------------------------------------------------------------------------------------
# the CLI the README shows is the CLI that exists
# ---------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
BASH = re.findall(r"```bash\n(.*?)```", README, re.S)


def _railgraph_lines() -> list[list[str]]:
    """Every `railgraph ...` command of the README's bash blocks, as arguments (comments, pipes and VAR= cut)."""
    import shlex

    out = []
    for block in BASH:
        for line in block.splitlines():
            line = line.split(" #", 1)[0].split(" | ", 1)[0].strip()
            words = shlex.split(line) if line else []
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                words = words[1:]
            if words and words[0] == "railgraph":
                out.append(words[1:])
    return out


def test_every_cli_example_uses_commands_and_options_that_exist() -> None:
    """Each `railgraph ...` line of the README names a real command, and only options it accepts."""
    import click

    from railgraph.cli import cli

    lines = _railgraph_lines()
    assert len(lines) >= 8
    for args in lines:
        cmd: click.Command = cli
        rest = list(args)
        while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
            sub = cmd.commands.get(rest[0])
            assert sub is not None, f"unknown command {rest[0]!r} in: railgraph {' '.join(args)}"
            cmd, rest = sub, rest[1:]
        known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help", "-h", "--config", "-c"}
        for word in rest:
            if word.startswith("-") and word != "-":
                assert word.split("=", 1)[0] in known, f"{word} is not an option of: railgraph {' '.join(args)}"


def test_the_tours_filter_examples_say_what_they_do() -> None:
    """The tour filters exception types with --type (a --code glob never matches an event without a code)."""
    assert re.search(r"railgraph errors \w+ --type 'triage\.\*'", README)
    code_line = next(ln for ln in README.splitlines() if re.search(r"railgraph errors \w+ --code 'triage\.\*'", ln))
    assert "carry a code" in code_line


def test_the_tour_by_hand_uses_a_new_session_not_make_demos() -> None:
    """`make demo` runs session `demo`; the by-hand command of the tour must not restart it."""
    makefile = (ROOT / "Makefile").read_text()
    demo = re.search(r"--session (\S+)", makefile).group(1)
    by_hand = next(a for a in _railgraph_lines() if a[:2] == ["run", "examples/triage.py:graph"])
    assert by_hand[by_hand.index("--session") + 1] != demo


def test_the_tours_resume_hint_is_the_one_run_prints() -> None:
    """The `resume with:` line in the tour is exactly what `run` prints for that failing command."""
    from railgraph.cli import resume_command

    shown = re.search(r"^  resume with: (.*)$", README, re.M).group(1)
    assert shown == resume_command("examples/triage.py:graph", "down", config="examples/triage.toml")
    assert "railgraph run examples/triage.py:graph --config examples/triage.toml --session down --resume" in BASH[
        next(i for i, b in enumerate(BASH) if "--resume" in b)]


TEXT = re.findall(r"```text\n(.*?)```", README, re.S)
_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z"


def _shown_line(line: str) -> re.Pattern[str]:
    """A README output line as a pattern: its time matches any time, and `…` any cut text."""
    parts = re.split(f"(…|{_TIME})", line)
    return re.compile("".join(".*" if p == "…" else _TIME if re.fullmatch(_TIME, p) else re.escape(p) for p in parts))


def test_the_tours_sample_outputs_are_what_its_commands_print(tmp_path: Path) -> None:
    """Run, failing run and resume of the tour print the README's samples line for line (times and `…` cuts aside)."""
    import os
    import shutil
    import subprocess
    import sys

    (tmp_path / "examples").mkdir()
    for name in ("triage.py", "triage.toml"):
        shutil.copy(ROOT / "examples" / name, tmp_path / "examples" / name)
    railgraph = Path(sys.executable).parent / "railgraph"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAILGRAPH_")}
    config = ["--config", "examples/triage.toml"]
    runs = [  # (the sample's first line, arguments, extra environment, exit code), as the tour runs them
        ("running examples/triage.py:graph · session tour", [*config, "--session", "tour"], {}, 0),
        ("running examples/triage.py:graph · session down", ["-c", "examples/triage.toml", "-s", "down"],
         {"RAILGRAPH_PLUGINS__RETRY__MAX_ATTEMPTS": "1"}, 10),
        ("resuming examples/triage.py:graph · session down", [*config, "--session", "down", "--resume"], {}, 0),
    ]
    for first, args, extra_env, code in runs:
        proc = subprocess.run([str(railgraph), "run", "examples/triage.py:graph", *args], cwd=tmp_path,
                              env={**env, **extra_env}, capture_output=True, text=True, timeout=60)
        assert proc.returncode == code, proc.stderr
        printed = (proc.stdout + proc.stderr).splitlines()  # the diagnostic (stderr) comes after stdout
        shown = next(b for b in TEXT if b.startswith(first)).splitlines()
        assert len(printed) == len(shown), "\n".join(printed)
        for want, got in zip(shown, printed):
            assert _shown_line(want).fullmatch(got), f"README shows {want!r}, {first!r} printed {got!r}"


def _exit_codes_of(text: str) -> set[int]:
    codes: set[int] = set()
    for a, b in re.findall(r"^\| (\d+)(?:–(\d+))? \|", text, re.M):
        codes.update(range(int(a), int(b or a) + 1))
    return codes


def test_the_exit_code_table_lists_every_code_the_cli_documents() -> None:
    """The README's exit-code table and the codes in `railgraph --help` and the cli module agree."""
    import railgraph.cli as cli_module

    readme = _exit_codes_of(README)
    module = {int(c) for c in re.findall(r"^\s+(\d+)\s{2,}", cli_module.__doc__ or "", re.M)}
    module |= {int(c) for c in re.findall(r"\s{3,}(\d+)\s{2,}[A-Za-z]", cli_module.__doc__ or "")}
    assert module <= readme, module - readme
    help_text = " ".join((cli_module.cli.help or "").split())
    for code in sorted(readme):
        if 10 <= code <= 15:
            continue
        assert re.search(rf"\b{code} [a-z]", help_text), f"exit code {code} is missing from railgraph --help"
    assert {0, 1, 2, 3, 4, 5, 6, 10, 15, 16, 17, 18, 64, 66, 70, 73, 130} <= readme


def test_user_docs_have_no_internal_design_wording() -> None:
    """README and configs/ speak to users: no design-document labels, and the API names are the public ones."""
    texts = {"README.md": README, **{f"configs/{p.name}": p.read_text() for p in (ROOT / "configs").glob("*.toml")}}
    for name, text in texts.items():
        for phrase in ("Option A", "the seed's", "seed behaviour", "runner.errors(", "a object",
                       "railgraph/hookspecs.py", "pip install 'railgraph["):
            assert phrase not in text, f"{phrase!r} in {name}"


def test_the_readmes_in_code_backfill_works_on_a_compiled_graph() -> None:
    """`graph.runner.checkpointer.backfill_errors(dry_run=True)` exists and returns the counts."""
    from railgraph import END, START, GraphBuilder

    builder = GraphBuilder()
    builder.add_node("a", lambda state: None)
    builder.add_edge(START, "a")
    builder.add_edge("a", END)
    graph = builder.compile(settings=Settings(persistence={"backend": "memory"}))
    graph.invoke({}, session="s")
    assert "graph.runner.checkpointer.backfill_errors(dry_run=True)" in README
    report = graph.runner.checkpointer.backfill_errors(dry_run=True)
    assert report.dry_run is True and report.events_added == 0
    assert [step for step, _, _ in graph.history("s")] == [1, 2]
