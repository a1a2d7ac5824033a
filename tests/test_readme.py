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
