"""Built-in plugin ``reserved_keys``: the gating toggle for reserved keys of ``extra``.

``extra["errors"]`` is a reserved key: only the runner writes it. With ``gate_reserved_keys``
off (the default, the seed behaviour) an injected error bumps ``extra.version``, so nodes gated on
``extra`` may run again. On, a change that touches only reserved keys is still stored but moves
no version, so no gated node re-runs because an error was recorded. The step report
(`StepReport.skipped`) says why each skipped node was skipped.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from railgraph import Settings, hookimpl

NAME = "reserved_keys"


class ReservedKeysSettings(BaseModel):
    """``[plugins.reserved_keys]``: the version-gating toggle for reserved keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    gate_reserved_keys: bool = Field(False, description="true: a change touching only reserved keys "
                                     "(extra[\"errors\"]) bumps no version, so no gated node re-runs; "
                                     "false: the seed behaviour (it bumps extra.version).")


@hookimpl
def settings_section() -> type[BaseModel]:
    """Contribute ``[plugins.reserved_keys]``."""
    return ReservedKeysSettings


@hookimpl(trylast=True)
def reserved_change_bumps_version(settings: Settings) -> bool | None:
    """The default answer: bump unless ``gate_reserved_keys`` is on."""
    section = settings.plugin(NAME)
    if not isinstance(section, ReservedKeysSettings):
        return None
    return not section.gate_reserved_keys
