"""Hypothesis strategies shared by the test modules."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from hypothesis import strategies as st

from railgraph.events import AppScope, ErrorEvent, ErrorLadder, NodeScope, RunnerScope, SchedulerScope

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
steps = st.integers(min_value=0, max_value=10_000)

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20) | \
    st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(json_scalars, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=12)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)

scopes = st.one_of(
    st.builds(NodeScope, node=names, step=steps),
    st.builds(SchedulerScope, step=steps),
    st.builds(RunnerScope, session=st.text(min_size=1, max_size=12), step=steps),
    st.just(AppScope()),
)

utc_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                         timezones=st.just(timezone.utc))

ladders = st.recursive(
    st.builds(ErrorLadder, type=names, message=st.text(max_size=40), code=st.none() | names,
              help=st.none() | st.text(max_size=20), details=json_objects,
              notes=st.lists(st.text(max_size=10), max_size=2).map(tuple)),
    lambda inner: st.builds(ErrorLadder, type=names, message=st.text(max_size=40),
                            via=st.sampled_from(["cause", "context"]), cause=inner,
                            group=st.lists(inner.map(lambda r: r.model_copy(update={"via": "group"})),
                                           max_size=2).map(tuple)),
    max_leaves=6,
)

events = st.builds(
    ErrorEvent,
    id=st.uuids(version=4),
    when=utc_times,
    scope=scopes,
    error=ladders,
    tags=st.lists(names, max_size=3).map(tuple),
    context=json_objects,
)


def event_with_id(n: int, node: str = "n", step: int = 1) -> ErrorEvent:
    """A small deterministic event whose id is UUID(int=n)."""
    return ErrorEvent(id=uuid.UUID(int=n), when=datetime(2026, 1, 1, tzinfo=timezone.utc),
                      scope=NodeScope(node=node, step=step),
                      error=ErrorLadder(type="ValueError", message=f"event {n}"))


# -- policy plugins (cap, redaction, settings) ------------------------------------------------------

codes = st.none() | st.sampled_from(["railgraph.runner.node_failed", "app.warning", "app.quota"])

small_events = st.builds(
    ErrorEvent,
    id=st.uuids(version=4),
    when=utc_times,
    scope=scopes,
    error=st.builds(ErrorLadder, type=st.just("ValueError"), message=st.text(max_size=10), code=codes),
)
"""Events with a flat ladder: cheap to generate in long streams."""

event_batches = st.lists(st.lists(small_events, min_size=1, max_size=6), min_size=1, max_size=12)
"""A stream of merges: each inner list is what one superstep appends to extra["errors"]."""

secrets = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789", min_size=8, max_size=16) \
    .map(lambda s: f"Zq9{s}")
"""A secret value: distinctive enough that finding it in JSON is a real leak, not a coincidence."""

denied_keys = st.sampled_from(["password", "db_password", "PASSWD", "secret", "api_key", "X-Api-Key", "apiKey",
                               "token", "access_token", "Authorization", "cookie", "set-cookie", "session_id",
                               "private_key", "client_secret", "credentials", "dbPassword", "auth"])
"""Key names the redact plugin's default denylist must catch."""

message_leaks = st.sampled_from(["password={}", "token: {}", "Authorization: Bearer {}", "api_key='{}'",
                                 'connect failed "password": "{}"', "postgres://app:{}@db:5432/x",
                                 "retry with secret={} later", "header Cookie={}"])
"""Message templates that embed a secret the value patterns must catch."""
