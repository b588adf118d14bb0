"""The request id an event delivery's invocation carries, wherever it is delivered (`up`'s bus,
`replay`, campaign runs, `faasemu invoke`), so the same delivery gets the same id everywhere.

Standard library only: workers import it. A runtime module may define `request_id(spec, seed,
event, copy, attempt)` for its platform's rule (aws-lambda: a UUID that Lambda's own retries of an
asynchronous invocation keep); otherwise the id is the per-attempt value (RUNTIMES.md).
"""

from __future__ import annotations

import hashlib
from types import ModuleType
from typing import Any

from faasemu.project.spec import FunctionSpec


def attempt_value(seed: int, function: str, event_id: str, attempt: int) -> str:
    """sha256 of (seed, function, event id, attempt), 16 hex digits: the same as `faasemu.delivery.bus.attempt_id`."""
    return hashlib.sha256(f"{seed}\0{function}\0{event_id}\0{attempt}".encode()).hexdigest()[:16]


def invocation_id(module: ModuleType, spec: FunctionSpec, seed: int, event: dict[str, Any], copy: int,
                  attempt: int) -> str:
    """`copy` counts deliveries of the event by its source (0 the original, then duplicates);
    redeliveries after a failure or a lost acknowledgement are the same copy, a later attempt."""
    rule = getattr(module, "request_id", None)
    if rule is not None:
        return rule(spec, seed, event, copy, attempt)
    return attempt_value(seed, spec.name, str(event["id"]), attempt)
