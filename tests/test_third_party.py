"""The third-party story: a real distribution with a ``railgraph`` entry point is discovered,
configured from its TOML table, receives committed events, and can be disabled by name.

The sample plugin lives in ``tests/plugins/railgraph-sample-sink``. It is pip-installed (offline,
no build isolation) into a private ``--target`` folder put on ``sys.path`` for this module only,
so the shared virtual environment — and anyone else's test run in it — never sees it.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from railgraph import END, START, GraphBuilder, NodePartial, Settings
from railgraph.manager import make_plugins

SAMPLE = Path(__file__).resolve().parent / "plugins" / "railgraph-sample-sink"


@pytest.fixture(scope="module", autouse=True)
def installed_sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """pip-install the sample plugin distribution, and make its entry point visible to this process."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(target), str(SAMPLE)], check=True, capture_output=True, timeout=120)
    sys.path.insert(0, str(target))
    sys.modules.pop("railgraph_sample_sink", None)  # a copy installed in the environment may be imported already
    importlib.invalidate_caches()
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("railgraph_sample_sink", None)
        importlib.invalidate_caches()


def graph(settings: Settings) -> Any:
    """A one-node graph emitting two warnings, compiled with `settings` and every installed plugin."""
    def warn(state: Any, ctx: Any) -> NodePartial:
        return NodePartial(errors=[ctx.event("quota low", code="app.quota"), ctx.event("slow upstream")])

    builder = GraphBuilder()
    builder.add_node("warn", warn)
    builder.add_edge(START, "warn")
    builder.add_edge("warn", END)
    return builder.compile(settings)


def test_discovered_through_the_entry_point_group(installed_sample: Path) -> None:
    """The installed distribution's `sample_sink` entry point loads with the built-ins, origin recorded."""
    plugins = make_plugins()
    origin = plugins.origins["sample_sink"]
    assert (origin.source, origin.distribution, origin.version) == ("entry point", "railgraph-sample-sink", "0.1.0")
    assert {"make_sinks", "settings_section"} == set(plugins.hooks_of("sample_sink"))
    assert "sample_sink" in plugins.section_models()
    assert Path(sys.modules["railgraph_sample_sink"].__file__).is_relative_to(installed_sample)


def test_configured_from_its_toml_table_it_receives_committed_events(tmp_path: Path) -> None:
    """With [plugins.sample_sink] in a TOML file, every committed event reaches the sink, prefixed."""
    out = tmp_path / "sample.log"
    cfg = tmp_path / "railgraph.toml"
    cfg.write_text(f'[persistence]\nbackend = "memory"\n\n[plugins.sample_sink]\npath = "{out}"\nprefix = "rg| "\n')
    with graph(Settings.load(cfg)) as g:
        g.invoke({}, session="s1")
        expected = [f"rg| s1 {e.id} {e.code or e.error.type}" for e in g.errors("s1")]
    assert out.read_text().splitlines() == expected and len(expected) == 2


def test_inert_by_default() -> None:
    """Installed but not configured, the plugin contributes no sink (so other tests are unaffected)."""
    with graph(Settings(persistence={"backend": "memory"})) as g:
        assert "sample_sink" in g.runner.plugins.names()
        assert [s.name for s in g.runner.sinks] == []
        assert g.runner.settings.plugin("sample_sink").path is None


def test_disabled_by_name_even_with_its_table_present(tmp_path: Path) -> None:
    """plugins.disable = ["sample_sink"] blocks it: not loaded, no sink, its table tolerated and nothing written."""
    out = tmp_path / "sample.log"
    cfg = tmp_path / "railgraph.toml"
    cfg.write_text(f'[persistence]\nbackend = "memory"\n\n[plugins]\ndisable = ["sample_sink"]\n\n'
                   f'[plugins.sample_sink]\npath = "{out}"\n')
    with graph(Settings.load(cfg)) as g:
        g.invoke({}, session="s1")
        assert "sample_sink" not in g.runner.plugins.names() and g.runner.sinks == []
        assert len(g.errors("s1")) == 2
    assert not out.exists()
