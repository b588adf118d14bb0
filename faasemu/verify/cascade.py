"""PURE: cascades in a campaign run (docs/verification.md#cascades): what one run's deliveries emitted,
how an emitted event is read and named, and how baseline deliveries are named by path.

The runner (verify/runner.py) does the I/O: it reads what a lane's effect server received and the changes
its database captured, and attributes them to the step that produced them with these records.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from faasemu.chaos.model import DeliveryRef, Step
from faasemu.events.ingress import IngressError, parse_ingress
from faasemu.verify.model import EmittedEffect


@dataclass
class CascadeRun:
    """One run's emitted events, attributed to the deliveries that emitted them.

    `first`: what each delivery's first run (the first attempt whose handler ran) emitted, ids
    assigned; `events`: the event each downstream or new delivery delivers in this run; `effects`:
    one per (source, id), the first copy winning; `joined`: downstream deliveries found while
    discovering (they join the end of the schedule); `queue`: new events' deliveries, after it.
    """

    discover: bool
    first: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    events: dict[int, dict[str, Any]] = field(default_factory=dict)
    effects: dict[tuple[str, str], EmittedEffect] = field(default_factory=dict)
    unnamed: list[EmittedEffect] = field(default_factory=list)  # unreadable bodies: counted per call
    joined: list[Step] = field(default_factory=list)
    queue: list[Step] = field(default_factory=list)
    paths: dict[int, str] = field(default_factory=dict)  # new deliveries' paths and depths
    depth: dict[int, int] = field(default_factory=dict)
    new: int = 0
    mark: int = 0  # bodies of the lane's `EffectLog.emitted` already attributed


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


EMITTED_TIME = "1970-01-01T00:00:00Z"  # the time of an emitted event without one and of no delivery
_NO_ID = "\x00no id"  # the ingress's id for an event without one: the runner names it (broker_id)


def read_emitted(body: Any, time: str) -> list[tuple[dict[str, Any], bool]]:
    """Each event of a body posted to $FAASEMU_EVENTS_URL, normalized as the ingress does (a missing
    `time` is `time`, a missing id ""), and whether it could be read: only those go onward."""
    raw = json.dumps(body).encode() if not isinstance(body, str) else body.encode()
    content_type = "application/cloudevents-batch+json" if isinstance(body, list) else "application/json"
    try:
        events = parse_ingress(content_type, {}, raw, id_factory=lambda: _NO_ID, now=lambda: time)
    except IngressError:
        return [(body, False)] if isinstance(body, dict) else [({"type": "(unreadable)", "data": body}, False)]
    return [({**event, "id": ""} if event.get("id") == _NO_ID else event, True) for event in events]


def broker_id(seed: int, path: str, attempt: int, number: int) -> str:
    """The id the broker gives an event emitted without one: new per attempt, as EventBridge's
    PutEvents gives, and a pure function of the seed, the emitting delivery's path, its attempt
    and the emission's index, so the same seed names it the same."""
    digest = hashlib.sha256(f"{seed}/{path}/{attempt}/{number}".encode()).hexdigest()[:32]
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"


def delivery_paths(refs: Sequence[DeliveryRef]) -> list[str]:
    """Each baseline delivery's path: its event id, with `:function` when that event reaches more
    than one function, and `#k` for the k-th line of a file that repeats the id (k from 2)."""
    counts = Counter(ref.event_id for ref in refs)
    seen: Counter[str] = Counter()
    paths = []
    for ref in refs:
        path = ref.event_id if counts[ref.event_id] == 1 else f"{ref.event_id}:{ref.function}"
        seen[path] += 1
        paths.append(path if seen[path] == 1 else f"{path}#{seen[path]}")
    return paths


def identity_of(event: dict[str, Any]) -> tuple[str, str]:
    return str(event.get("source", "")), str(event.get("id", ""))


def record_effect(run: CascadeRun, event: dict[str, Any], readable: bool) -> None:
    """One emitted event as an effect: once per (source, id), the first copy's content winning."""
    source, identity = identity_of(event)
    effect = EmittedEffect(str(event.get("type")), source, canonical_json(event.get("data")), identity)
    if readable and identity:
        run.effects.setdefault((source, identity), effect)
    else:
        run.unnamed.append(effect)
