"""The request id an event delivery's invocation carries, wherever it is delivered (`up`'s bus,
`replay`, campaign runs, `faasemu invoke`), so the same delivery gets the same id everywhere.

Standard library only: workers import it. A runtime may give `Runtime.request_id` for its
platform's rule (aws-lambda: a UUID that Lambda's own retries of an asynchronous invocation keep);
otherwise the id is the per-attempt value (docs/delivery.md#ids).
"""

from __future__ import annotations

import functools
import hashlib
from typing import TYPE_CHECKING, Any

from faasemu.project.spec import FunctionSpec

if TYPE_CHECKING:
    from faasemu.runtimes.contract import Runtime


@functools.lru_cache(maxsize=1 << 16)  # a campaign asks the same attempts' ids in every run
def attempt_value(seed: int, function: str, event_id: str, attempt: int) -> str:
    """sha256 of (seed, function, event id, attempt), 16 hex digits: the attempt id, defined here once because
    runtimes (below the delivery layer) need it for their default request id; `delivery/policy.py` gives
    it to the bus, `replay` and the campaign as `attempt_id`."""
    return hashlib.sha256(f"{seed}\0{function}\0{event_id}\0{attempt}".encode()).hexdigest()[:16]


def invocation_id(runtime: Runtime, spec: FunctionSpec, seed: int, event: dict[str, Any], copy: int,
                  attempt: int) -> str:
    """`copy` counts deliveries of the event by its source (0 the original, then duplicates);
    redeliveries after a failure or a lost acknowledgement are the same copy, a later attempt."""
    return runtime.request_id(spec, seed, event, copy, attempt)
