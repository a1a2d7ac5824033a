"""Support-ticket triage: the example the README's `make demo` runs.

    railgraph run examples/triage.py:graph --config examples/triage.toml --session demo
    railgraph errors demo

The graph::

    START → intake → lookup → classify ─┬→ escalate ──────┐
                                         ├→ auto_reply ────┼→ report → END
                                         └→ manual_review ─┘

What it shows of railgraph's error design:

* **intake** emits a non-fatal event (a ticket without a customer email) and goes on.
* **lookup** calls a flaky CRM. Its first attempt fails with a `CRMUnavailable` raised from a
  `TimeoutError`; the ``retry`` plugin (``[plugins.retry]`` in ``examples/triage.toml``) runs it
  again, and the failed attempt is an event tagged ``retry`` / ``attempt:1/3``. The failing
  request's URL carries an API key: the ``redact`` plugin scrubs it before the event is stored,
  so no output ever shows it.
* One customer is gone from the CRM for good: a permanent failure that no retry fixes. lookup
  records it as an event (with the cause ladder and a note) and routes the ticket to manual review
  instead of failing the whole run.
* **classify** emits an SLA-breach event; a **conditional edge** sends tickets to escalate,
  auto_reply and/or manual_review (a router may return several nodes), and **report** joins them.

Deterministic: the CRM's flakiness is drawn from ``random.Random(f"{seed}:{attempt}")`` (seed 3
by default: attempt 1 fails, attempt 2 succeeds). Input knobs, all optional::

    {"extra": {"tickets": [...], "seed": 3, "crm_failure_rate": 0.5}}

``"crm_failure_rate": 1.0`` makes every attempt fail, so the run ends with a diagnostic (exit 10).
Without ``[plugins.retry]`` (max_attempts 1, the default) the first CRM failure is final too.
"""

from __future__ import annotations

import random
from typing import Any

from railgraph import END, START, GraphBuilder, Message

DEFAULT_SEED = 3
DEFAULT_FAILURE_RATE = 0.5
SLA_HOURS = 24
API_KEY = "sk_live_51HxTriageDemoKey0000"  # a fake secret: watch the redact plugin scrub it

TICKETS: list[dict[str, Any]] = [
    {"id": "T-101", "customer": "c-ada", "email": "ada@example.com", "age_hours": 30,
     "subject": "Checkout is down: the payment page returns HTTP 500"},
    {"id": "T-102", "customer": "c-bob", "email": "bob@example.com", "age_hours": 2,
     "subject": "How do I export my invoices as CSV?"},
    {"id": "T-103", "customer": "c-cyd", "email": "cyd@example.com", "age_hours": 5,
     "subject": "Refund for a double charge on my card"},
    {"id": "T-104", "customer": "c-legacy-17", "email": "ops@legacy.example", "age_hours": 50,
     "subject": "Cannot log in after the migration"},
    {"id": "T-105", "customer": "c-eve", "email": None, "age_hours": 1,
     "subject": "Feature request: dark mode"},
]

# the CRM's records (a stand-in for the external service)
CRM: dict[str, dict[str, Any]] = {
    "c-ada": {"plan": "enterprise", "name": "Ada"},
    "c-bob": {"plan": "free", "name": "Bob"},
    "c-cyd": {"plan": "pro", "name": "Cyd"},
    "c-eve": {"plan": "pro", "name": "Eve"},
}


class CRMUnavailable(ConnectionError):
    """The CRM did not answer (transient: worth retrying)."""


class CustomerNotFound(LookupError):
    """The CRM has no record of the customer (permanent: retrying will not help)."""


# ---------------------------------------------------------------------------------------------
# Nodes
# ---------------------------------------------------------------------------------------------


def intake(state, ctx):
    """Load the tickets (the input's, else the sample) and warn about unreachable customers."""
    tickets = [dict(t) for t in state.extra.get("tickets", TICKETS)]
    events = [
        ctx.event(f"ticket {t['id']} has no customer email; the reply will wait in the support queue",
                  code="triage.intake.missing_email", tags=("warning", f"ticket:{t['id']}"),
                  details={"ticket": t["id"], "customer": t["customer"]})
        for t in tickets if not t.get("email")
    ]
    return {"extra": {"tickets": tickets}, "errors": events}


def crm_fetch(customers: list[str], *, attempt: int, seed: int, failure_rate: float) -> dict[str, Any]:
    """Fetch customer records from the (simulated, seeded-flaky) CRM.

    Raises:
        CRMUnavailable: the whole request failed this time (from a `TimeoutError`).
    """
    if random.Random(f"{seed}:{attempt}").random() < failure_rate:  # noqa: S311 - a simulation, not crypto
        url = f"https://crm.example.com/v2/customers?ids={','.join(customers)}&api_key={API_KEY}"
        try:
            raise TimeoutError("upstream read timed out after 2.0s")
        except TimeoutError as exc:
            raise CRMUnavailable(f"CRM returned HTTP 503 Service Unavailable for GET {url}") from exc
    found: dict[str, Any] = {}
    for customer in customers:
        try:
            found[customer] = CRM[customer]
        except KeyError as exc:
            err = CustomerNotFound(f"no CRM record for customer {customer!r}")
            err.add_note("the account was closed during the 2023 migration; a human must re-link it")
            err.__cause__ = exc
            found[customer] = err
    return found


def lookup(state, ctx):
    """Enrich tickets with the customer's plan. A flaky CRM is retried; an unknown customer is not."""
    tickets = [dict(t) for t in state.extra["tickets"]]
    records = crm_fetch(sorted({t["customer"] for t in tickets}), attempt=ctx.attempt,
                        seed=int(state.extra.get("seed", DEFAULT_SEED)),
                        failure_rate=float(state.extra.get("crm_failure_rate", DEFAULT_FAILURE_RATE)))
    events = []
    for t in tickets:
        record = records[t["customer"]]
        if isinstance(record, Exception):
            t["plan"], t["needs_human"] = None, True
            events.append(ctx.event_from(record, tags=("permanent", f"ticket:{t['id']}"),
                                         context={"ticket": t["id"], "customer": t["customer"]}))
        else:
            t["plan"], t["name"] = record["plan"], record["name"]
    return {"extra": {"tickets": tickets, "crm_attempts": ctx.attempt}, "errors": events}


def priority_of(ticket: dict[str, Any]) -> str:
    """``urgent`` (outages, money), ``manual`` (no CRM record) or ``normal``."""
    if ticket.get("needs_human"):
        return "manual"
    subject = ticket["subject"].lower()
    if any(word in subject for word in ("down", "500", "double charge", "outage")):
        return "urgent"
    return "normal"


def classify(state, ctx):
    """Give each ticket a priority; an urgent ticket older than the SLA is a (non-fatal) event."""
    tickets = [dict(t, priority=priority_of(t)) for t in state.extra["tickets"]]
    events = [
        ctx.event(f"SLA breached: urgent ticket {t['id']} has been open {t['age_hours']}h (target {SLA_HOURS}h)",
                  code="triage.sla.breached", tags=("sla", f"ticket:{t['id']}"),
                  details={"ticket": t["id"], "age_hours": t["age_hours"], "sla_hours": SLA_HOURS})
        for t in tickets if t["priority"] == "urgent" and t["age_hours"] > SLA_HOURS
    ]
    return {"extra": {"tickets": tickets}, "errors": events}


def route(state):
    """Every queue that has tickets: escalate, auto_reply and/or manual_review."""
    queues = {"urgent": "escalate", "normal": "auto_reply", "manual": "manual_review"}
    wanted = {queues[t["priority"]] for t in state.extra["tickets"]}
    return [q for q in ("escalate", "auto_reply", "manual_review") if q in wanted] or END


def escalate(state, ctx):
    """Page the on-call engineer for urgent tickets."""
    ids = [t["id"] for t in state.extra["tickets"] if t["priority"] == "urgent"]
    return {"extra": {"escalated": ids},
            "messages": [Message("system", f"paged on-call for {', '.join(ids)}")]}


def auto_reply(state, ctx):
    """Answer normal tickets from the knowledge base."""
    tickets = [t for t in state.extra["tickets"] if t["priority"] == "normal"]
    return {"extra": {"auto_replied": [t["id"] for t in tickets]},
            "messages": [Message("assistant", f"{t['id']}: hi {t.get('name', 'there')}, here is how: …")
                         for t in tickets]}


def manual_review(state, ctx):
    """Queue tickets the CRM could not resolve for a human."""
    return {"extra": {"manual_review": [t["id"] for t in state.extra["tickets"] if t["priority"] == "manual"]}}


def report(state, ctx):
    """One summary message."""
    extra = state.extra
    text = (f"{len(extra['tickets'])} tickets: {len(extra.get('escalated', []))} escalated, "
            f"{len(extra.get('auto_replied', []))} auto-replied, {len(extra.get('manual_review', []))} to manual "
            f"review (CRM answered on attempt {extra.get('crm_attempts', 1)})")
    return {"messages": [Message("assistant", text)], "extra": {"summary": text}}


def build() -> GraphBuilder:
    """The triage graph (a factory: ``railgraph run examples/triage.py:build`` works too)."""
    b = GraphBuilder(name="triage")
    for name, fn in (("intake", intake), ("lookup", lookup), ("classify", classify), ("escalate", escalate),
                     ("auto_reply", auto_reply), ("manual_review", manual_review), ("report", report)):
        b.add_node(name, fn)
    b.add_edge(START, "intake")
    b.add_edge("intake", "lookup")
    b.add_edge("lookup", "classify")
    b.add_conditional_edges("classify", route, ["escalate", "auto_reply", "manual_review", END])
    for queue in ("escalate", "auto_reply", "manual_review"):
        b.add_edge(queue, "report")
    b.add_edge("report", END)
    return b


graph = build()
