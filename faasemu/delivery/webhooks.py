"""PURE: a trigger's delivery as Hasura makes it: an HTTP POST of the event payload to the webhook.

Hasura calls a webhook URL, so the function receives the change as an HTTP request through its
runtime (an API Gateway event for `aws-lambda`, a Flask request for `gcf` ...), never as a platform
event. The attempt succeeds on a 2xx answer; anything else, or no answer, is a failure retried after
the trigger's `interval` (Hasura's `retry_conf.interval_sec`) or the answer's `Retry-After`
seconds, up to the trigger's `retries` (https://hasura.io/docs/latest/event-triggers/payload/,
docs/delivery.md#triggers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from faasemu.project.capture import webhook_body
from faasemu.project.spec import FunctionSpec, TriggerSpec
from faasemu.runtimes.base import HttpRequest

WEBHOOK_OP = "webhook"  # the op of a delivery row made from a captured change
USER_AGENT = "hasura-graphql-engine/v2 (faasemu)"


@dataclass(frozen=True, slots=True)
class WebhookAnswer:
    """What one attempt's answer means for the delivery."""

    ok: bool
    status: int | None  # None: the function gave no HTTP answer (crash, timeout, unavailable)
    retry_after: float | None = None  # the answer's Retry-After, in seconds


def webhook_path(spec: FunctionSpec) -> str:
    """Where the POST goes: the function's first fixed route that takes POST, else `/`."""
    for trigger in spec.http:
        if "{" not in trigger.path and (not trigger.methods or "POST" in trigger.methods or "ANY" in trigger.methods):
            return trigger.path
    return "/"


def webhook_request(spec: FunctionSpec, trigger: TriggerSpec | None, event: dict[str, Any], attempt: int,
                    now_ms: int) -> HttpRequest:
    """The POST of attempt `attempt` (1-based; Hasura's `current_retry` is attempt - 1)."""
    max_retries = trigger.retries if trigger is not None else 0
    body = webhook_body(event.get("data") or {}, attempt - 1, max_retries)
    path = webhook_path(spec)
    headers = [("host", "127.0.0.1"), ("content-type", "application/json"), ("user-agent", USER_AGENT),
               ("content-length", str(len(body)))]
    return HttpRequest("POST", path, headers=headers, body=body, route=path, time_ms=now_ms)


def answer(kind: str, reply: dict[str, Any]) -> WebhookAnswer:
    """Read a worker's reply to the POST: 2xx succeeds, as Hasura counts it."""
    response = reply.get("res") if kind in ("ok", "error") else None
    if not isinstance(response, dict) or not isinstance(response.get("status"), int):
        return WebhookAnswer(False, None)
    status = response["status"]
    retry_after = None
    for name, value in response.get("headers") or ():
        if str(name).lower() == "retry-after" and str(value).strip().isdigit():
            retry_after = float(str(value).strip())
    return WebhookAnswer(200 <= status < 300, status, retry_after)


def trigger_of(event: dict[str, Any], triggers: tuple[TriggerSpec, ...]) -> TriggerSpec | None:
    """The manifest's trigger a stored change event came from (its payload names it)."""
    name = ((event.get("data") or {}).get("trigger") or {}).get("name")
    for trigger in triggers:
        if trigger.name == name:
            return trigger
    return None


def change_summary(event: dict[str, Any]) -> str:
    """How a change's delivery reads in the log: `trigger order-placed INSERT public.orders`."""
    data = event.get("data") or {}
    table = data.get("table") or {}
    op = (data.get("event") or {}).get("op", "?")
    name = (data.get("trigger") or {}).get("name", "?")
    return f"trigger {name} {op} {table.get('schema', '?')}.{table.get('name', '?')}"
