"""PURE: trigger deliveries in a campaign (docs/verification.md#triggers).

A table change captured in a run's database (an events file's `{"change": ...}` line applied as an outside
client, or a handler's own write) becomes the event `change_event` makes, routed to its trigger's webhook
and delivered onward within the run like any emitted event (the cascade machinery of runner.py): found in
the traced baseline, perturbed like any delivery after it. Its id is the broker's (seeded, per path and
attempt) rather than the database's random uuid, so runs compare, and the Hasura payload carries the same
id. It reaches the webhook as Hasura posts it: an HTTP POST through the function's runtime, a 2xx answer
succeeding, retried up to the trigger's `retries`.
"""

from __future__ import annotations

import json
from typing import Any

from faasemu.delivery.webhooks import trigger_of, webhook_request
from faasemu.events.model import event_time
from faasemu.project.capture import CapturedChange, change_event
from faasemu.project.spec import FunctionSpec, TriggerSpec


def summary(event: dict[str, Any], width: int = 60) -> str:
    """How a counterexample's step reads: `change insert orders {"id": "o-1", ...}` for a table change,
    `trigger order-paid UPDATE orders {"id": "o-1", ...}` (the new row, or the old for a DELETE) for a
    trigger event, `type {data}` for any other event."""
    if "faasemuchange" in event:
        change = event["faasemuchange"] or {}
        op = next((op for op in ("insert", "update", "delete") if op in change), "?")
        text = f"change {op} {change.get('table', '?')} {json.dumps(change.get(op), ensure_ascii=False)}"
    elif is_trigger_event(event):
        data = event.get("data") or {}
        inner = data.get("event") or {}
        rows = inner.get("data") or {}
        table = (data.get("table") or {}).get("name", "?")
        row = rows.get("new") if rows.get("new") is not None else rows.get("old")
        name = (data.get("trigger") or {}).get("name", "?")
        text = f"trigger {name} {inner.get('op', '?')} {table} {json.dumps(row, ensure_ascii=False)}"
    else:
        data = json.dumps(event.get("data"), ensure_ascii=False)
        text = f"{event.get('type', '')} {data}"
    return text if len(text) <= width else text[:width - 3] + "..."


def is_trigger_event(event: dict[str, Any]) -> bool:
    return bool(event.get("faasemuwebhook")) and str(event.get("type", "")).startswith("trigger.")


def captured_events(changes: list[CapturedChange], triggers: tuple[TriggerSpec, ...]) -> list[dict[str, Any]]:
    """The events of changes captured since the last step, in capture order, without an id (the runner
    names them); a change of a trigger no longer in the manifest is dropped."""
    webhooks = {trigger.name: trigger.webhook for trigger in triggers}
    return [{**change_event(change, webhooks[change.trigger]), "id": ""}
            for change in changes if change.trigger in webhooks]


def webhook_item(spec: FunctionSpec, triggers: tuple[TriggerSpec, ...], event: dict[str, Any],
                 attempt: int) -> dict[str, Any]:
    """What a worker's batch item needs to POST a trigger event to its webhook (workers/entry.py)."""
    request = webhook_request(spec, trigger_of(event, triggers), event, attempt, _time_ms(event))
    return {"http": request.to_wire(), "http_body": request.body.decode()}


def webhook_retries(spec: FunctionSpec, triggers: tuple[TriggerSpec, ...], event: dict[str, Any]) -> int:
    """Hasura's `retry_conf.num_retries` for a trigger event, the function's `retries` for any other."""
    if not is_trigger_event(event):
        return spec.retries
    trigger = trigger_of(event, triggers)
    return trigger.retries if trigger is not None else 0


def _time_ms(event: dict[str, Any]) -> int:
    """The request's time: the change's, so that a run's requests do not depend on the clock."""
    return int(event_time(event).timestamp() * 1000)
