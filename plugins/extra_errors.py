"""Built-in plugin ``extra_errors``: the staged flag that moves events off ``extra["errors"]``.

Modes, in migration order (see ``configs/migrate-off-extra.toml``):

* ``legacy`` — ``extra["errors"]`` only (the seed behaviour);
* ``dual`` (default) — ``extra["errors"]`` and the dedicated errors store;
* ``verify`` — dual, and a disagreement between the two is itself a diagnostic event;
* ``store-only`` — ``extra["errors"]`` is no longer written (Option A of the design).

``runner.errors(session)`` gives the same answer in every mode: it reads the union of the
outbox, the errors store and ``extra["errors"]``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from railgraph import Settings, hookimpl

NAME = "extra_errors"


class ExtraErrorsSettings(BaseModel):
    """``[plugins.extra_errors]``: where error events are persisted."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: Literal["legacy", "dual", "verify", "store-only"] = Field(
        "dual", description="legacy: extra[\"errors\"] only; dual: extra and the errors store; verify: dual and "
        "report mismatches; store-only: stop writing extra[\"errors\"].")


@hookimpl
def settings_section() -> type[BaseModel]:
    """Contribute ``[plugins.extra_errors]``."""
    return ExtraErrorsSettings


@hookimpl(trylast=True)
def extra_errors_mode(settings: Settings) -> str | None:
    """The default answer: the configured ``mode``."""
    section = settings.plugin(NAME)
    return section.mode if isinstance(section, ExtraErrorsSettings) else None
