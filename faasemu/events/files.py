"""PURE: JSON Lines events files, as `replay` and `chaos` read them (docs/delivery.md#events-files)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from faasemu.events.model import EventError, NonFiniteNumber, normalize, reject_non_finite
from faasemu.events.subscriptions import CHANGE_TYPE
from faasemu.project.capture import ChangeError, parse_change
from faasemu.project.errors import InputFileError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def file_time(line: int) -> str:
    """The default `time` of the event on `line`: the epoch plus that many seconds, so file order is time order."""
    return (EPOCH + timedelta(seconds=line)).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_events_file(path: str) -> list[dict[str, Any]]:
    """Read a JSON Lines events file; the first malformed line raises `InputFileError` and nothing is returned.

    Lines are physical lines (split on '\\n' only: a JSON string may hold U+2028, which
    `str.splitlines` would split on). A repeated id is kept: it is the same event delivered again.
    """
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputFileError(path, None, "no such file") from None
    except OSError as exc:
        raise InputFileError(path, None, f"cannot be read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputFileError(path, line, f"not UTF-8 text (byte {exc.start})") from None
    stem = Path(path).stem
    events = []
    for number, line_text in enumerate(text.split("\n"), start=1):
        if not line_text.strip():
            continue
        try:
            obj = json.loads(line_text, parse_constant=reject_non_finite)
        except json.JSONDecodeError as exc:
            raise InputFileError(path, number, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        except NonFiniteNumber as exc:
            raise InputFileError(path, number, f"not valid JSON ({exc})") from None
        if isinstance(obj, dict) and "change" in obj:
            events.append(change_line(obj, path, number, f"{stem}-{number}"))
            continue
        try:
            events.append(normalize(obj, default_id=f"{stem}-{number}", default_time=file_time(number)))
        except EventError as exc:
            raise InputFileError(path, number, str(exc)) from None
    return events


def change_line(obj: dict[str, Any], path: str, number: int, default_id: str) -> dict[str, Any]:
    """A line `{"change": {"table": "orders", "insert": {...}}}`: a write an outside client makes (a GraphQL
    mutation), applied in file order; its triggers' deliveries are the events (docs/delivery.md#table-changes).
    Kept in the events list as a record of type `faasemu.change` that no function subscribes to."""
    extra = [key for key in obj if key not in ("change", "id")]
    if extra:
        raise InputFileError(path, number, f"unknown key '{extra[0]}' beside 'change': a change line holds only "
                                           'the change, as {"change": {"table": "orders", "insert": {"id": "o-1"}}}')
    try:
        parse_change(obj)
    except ChangeError as exc:
        raise InputFileError(path, number, str(exc)) from None
    return {"specversion": "1.0", "id": str(obj.get("id") or default_id), "source": "faasemu/changes",
            "type": CHANGE_TYPE, "time": file_time(number), "faasemuchange": obj["change"],
            "faasemufile": path, "faasemuline": number}


def is_change(event: dict[str, Any]) -> bool:
    """Whether an events-file record is a table change rather than an event."""
    return event.get("type") == CHANGE_TYPE and "faasemuchange" in event
