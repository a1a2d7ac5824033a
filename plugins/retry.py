"""Built-in plugin ``retry``: retries failed nodes with exponential backoff and jitter.

Off unless configured: ``max_attempts = 1`` (the default) answers ``None``, so a failure is final.
``[plugins.retry]`` sets the global rule; ``[plugins.retry.nodes.NAME]`` overrides any of its
fields for one node (unset fields inherit the global value).

The delay after failed attempt ``n`` is ``backoff * multiplier ** (n - 1)``, at most
``max_delay``, then spread by ``jitter`` (a fraction: 0.1 means ±10 %, still at most
``max_delay``). With ``seed`` set, the jitter is a pure function of (seed, node, attempt), so
tests and replays see the same delays. ``retry_on`` lists exception type names, matched against
the exception's class and base classes by plain name (``TimeoutError``), qualified name or dotted
module path; empty means any ``Exception``. An exception that does not match gets no opinion (the
failure is final and carries no retry tags). Every attempt becomes an `ErrorEvent` tagged
``retry`` and ``attempt:n/N`` with the delay and the rule (``global`` or ``nodes.NAME``).
"""

from __future__ import annotations

import random
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from railgraph import RetryDecision, Settings, hookimpl

NAME = "retry"
_SECTION = ConfigDict(extra="forbid", frozen=True)


class NodeRetry(BaseModel):
    """``[plugins.retry.nodes.NAME]``: one node's overrides (unset fields inherit the global rule)."""

    model_config = _SECTION
    max_attempts: int | None = Field(None, ge=1, description="Total attempts for this node (1: no retry).")
    backoff: float | None = Field(None, ge=0, description="Seconds to wait after the first failed attempt.")
    multiplier: float | None = Field(None, ge=1, description="Factor applied to the delay after each attempt.")
    max_delay: float | None = Field(None, ge=0, description="Upper bound of any delay, in seconds.")
    jitter: float | None = Field(None, ge=0, le=1, description="Random spread of each delay, as a fraction.")
    retry_on: list[str] | None = Field(None, description="Exception type names to retry (empty: any Exception).")


class RetrySettings(BaseModel):
    """``[plugins.retry]``: retry failed nodes (off unless max_attempts > 1)."""

    model_config = _SECTION
    max_attempts: int = Field(1, ge=1, description="Total attempts per node, first included (1: no retry).")
    backoff: float = Field(0.5, ge=0, description="Seconds to wait after the first failed attempt.")
    multiplier: float = Field(2.0, ge=1, description="Factor applied to the delay after each attempt.")
    max_delay: float = Field(30.0, ge=0, description="Upper bound of any delay, in seconds.")
    jitter: float = Field(0.1, ge=0, le=1, description="Random spread of each delay, as a fraction (0.1 = ±10%).")
    retry_on: list[str] = Field(default_factory=list, description="Exception type names to retry, matched against "
                                "the class and its bases (empty: any Exception).")
    seed: int | None = Field(None, description="Makes jitter a pure function of (seed, node, attempt) "
                             "(unset: random).")
    nodes: dict[str, NodeRetry] = Field(default_factory=dict, description="Per-node overrides, keyed by node name.")


def rule_for(section: RetrySettings, node: str) -> tuple[str, dict[str, Any]]:
    """The rule name and the effective fields for `node`."""
    fields = {k: getattr(section, k) for k in NodeRetry.model_fields}
    override = section.nodes.get(node)
    if override is None:
        return "global", fields
    fields.update({k: v for k, v in override.model_dump().items() if v is not None})
    return f"nodes.{node}", fields


def matches(error: BaseException, names: list[str]) -> bool:
    """True when `error`'s class or a base class is named in `names` (empty: any Exception)."""
    if not names:
        return isinstance(error, Exception)
    wanted = set(names)
    for cls in type(error).__mro__:
        if {cls.__name__, cls.__qualname__, f"{cls.__module__}.{cls.__qualname__}"} & wanted:
            return True
    return False


def delay_for(fields: dict[str, Any], attempt: int, seed: int | None, node: str) -> float:
    """Seconds to wait after failed `attempt` (from 1) under `fields`."""
    base = min(fields["backoff"] * fields["multiplier"] ** (attempt - 1), fields["max_delay"])
    if fields["jitter"] <= 0 or base <= 0:
        return base
    rng = random.Random(f"{seed}:{node}:{attempt}") if seed is not None else random.Random()  # noqa: S311
    spread = base * fields["jitter"] * rng.uniform(-1.0, 1.0)
    return min(max(base + spread, 0.0), fields["max_delay"])


@hookimpl
def settings_section() -> type[BaseModel]:
    """Contribute ``[plugins.retry]``."""
    return RetrySettings


@hookimpl(trylast=True)
def retry_decision(node: str, attempt: int, error: BaseException, settings: Settings) -> RetryDecision | None:
    """The default policy: retry matching exceptions until the rule's ``max_attempts``."""
    section = settings.plugin(NAME)
    if not isinstance(section, RetrySettings):
        return None
    rule, fields = rule_for(section, node)
    total = fields["max_attempts"]
    if total <= 1 or not matches(error, fields["retry_on"]):
        return None
    if attempt >= total:
        return RetryDecision(retry=False, delay=0.0, max_attempts=total, rule=rule)
    return RetryDecision(retry=True, delay=delay_for(fields, attempt, section.seed, node), max_attempts=total,
                         rule=rule)
