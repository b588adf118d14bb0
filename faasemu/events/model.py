"""PURE: the CloudEvent model: validation and defaults (`normalize`), content types, and the two HTTP
encodings runtimes deliver events in (binary `ce-*` headers, structured JSON).

An event is a plain `dict` in the CloudEvents 1.0 JSON format (attributes plus `data` or
`data_base64`), because it is stored in SQLite as JSON and sent to workers as JSON. Standard
library only: worker processes and the supervisor both import this module.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

SPECVERSION = "1.0"
# The versions accepted: 0.3 events still come from older producers (Knative sources, the CloudEvents
# SDKs' v0.3 classes), and both the SDK and functions-framework read them, so they are kept, not refused.
SPECVERSIONS = ("1.0", "0.3")

_NAME = re.compile(r"[a-z0-9]+\Z")
_REQUIRED = ("specversion", "id", "source", "type")
_OPTIONAL = ("subject", "time", "datacontenttype", "dataschema")
PAYLOAD = ("data", "data_base64")
# CloudEvents HTTP binding: header values percent-encode space, '"', '%' and everything outside
# printable ASCII (as UTF-8); every other printable character travels as is.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


class EventError(ValueError):
    """An object is not a valid CloudEvent. The message names the attribute at fault."""



EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def event_time(event: Mapping[str, Any]) -> datetime:
    """An event's `time` as an aware datetime (UTC when it has no offset), the epoch when it has none or
    it does not parse: what the platforms' shapes are stamped with (runtimes/*, verify/triggers.py)."""
    try:
        when = datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return EPOCH
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def kind_of(value: Any) -> str:
    """What a JSON value is, for messages: 'found a list'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _normal_time(value: str) -> str:
    """The `time` attribute as stored: as given when it is RFC 3339, with `Z` added when it has no offset.

    >>> _normal_time("2024-05-01T12:00:00"), _normal_time("2024-05-01T14:00:00+02:00")
    ('2024-05-01T12:00:00Z', '2024-05-01T14:00:00+02:00')

    Producers do send local-looking times without an offset (Python's `datetime.utcnow().isoformat()`);
    the CloudEvents SDKs and functions-framework pass them on rather than refuse the event, and the SDKs
    make their own times in UTC, so an offset-less time is read as UTC rather than the event lost.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or "T" not in value.upper():
        raise EventError(f"attribute 'time' must be an RFC 3339 timestamp like 2024-05-01T12:00:00Z, got {value!r}")
    return value if parsed.tzinfo is not None else value + "Z"


def normalize(
    obj: Any, *, default_id: str, default_time: str, default_source: str = "faasemu"
) -> dict[str, Any]:
    """Validate a CloudEvent in JSON form and fill in what it leaves out; returns a new dict.

    Events files get reproducible defaults (`files.read_events_file`, docs/delivery.md#events-files), the
    ingress random ids and the time of receipt (`ingress.parse_ingress`).

    A `null` attribute counts as absent (the CloudEvents JSON format says so). Without any
    `datacontenttype`, `data` is JSON (`application/json`) and `data_base64` is opaque bytes
    (`application/octet-stream`), so a binary-mode round trip keeps the event unchanged.
    """
    if not isinstance(obj, dict):
        raise EventError(f"an event must be a JSON object, found {kind_of(obj)}")
    given = {name: value for name, value in obj.items() if value is not None}
    for name in given:
        if name not in PAYLOAD and not (isinstance(name, str) and _NAME.match(name)):
            raise EventError(f"invalid attribute name {name!r}: CloudEvents attribute names are lowercase a-z and 0-9")
    if "type" not in given:
        raise EventError("missing required attribute 'type'")
    if "data" in given and "data_base64" in given:
        raise EventError("an event holds 'data' or 'data_base64', not both")
    given.setdefault("specversion", SPECVERSION)
    if given["specversion"] == "0.3" and str(given.get("datacontentencoding", "")).lower() == "base64":
        # 0.3's JSON format carries binary data as a base64 `data` string marked by `datacontentencoding`
        # (1.0 replaced both with `data_base64`): kept in the 1.0 form, which every runtime here reads.
        if not isinstance(given.get("data"), str):
            raise EventError("attribute 'data' must be a base64 string when 'datacontentencoding' is 'base64'")
        del given["datacontentencoding"]
        given["data_base64"] = given.pop("data")
    given.setdefault("id", default_id)
    given.setdefault("source", default_source)
    given.setdefault("time", default_time)
    if "data" in given:
        given.setdefault("datacontenttype", "application/json")
    elif "data_base64" in given:
        given.setdefault("datacontenttype", "application/octet-stream")
    for name in _REQUIRED + _OPTIONAL:
        value = given.get(name)
        if value is not None and not isinstance(value, str):
            raise EventError(f"attribute {name!r} must be a string, found {kind_of(value)}")
        if name in _REQUIRED and not value:
            raise EventError(f"attribute {name!r} must not be empty")
    if given["specversion"] not in SPECVERSIONS:
        raise EventError(f"attribute 'specversion' must be '1.0' (or '0.3'), got {given['specversion']!r}")
    given["time"] = _normal_time(given["time"])
    if "data_base64" in given:
        try:
            base64.b64decode(given["data_base64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise EventError("'data_base64' must be a base64 string") from None
    extensions = [name for name in given if name not in _REQUIRED + _OPTIONAL + PAYLOAD]
    for name in extensions:
        if not isinstance(given[name], (str, int)):  # bool is an int: booleans are allowed too
            raise EventError(f"extension attribute {name!r} must be a string, integer or boolean, "
                             f"found {kind_of(given[name])}")
    order = [name for name in _REQUIRED + _OPTIONAL if name in given] + extensions
    order += [name for name in PAYLOAD if name in given]
    return {name: given[name] for name in order}


class NonFiniteNumber(ValueError):
    """A JSON text holds NaN or Infinity, which Python's json reads and no other JSON reader does."""


def reject_non_finite(name: str) -> Any:
    # Python's json accepts NaN and Infinity, which no other JSON reader (nor SQLite's json) does.
    raise NonFiniteNumber(f"{name} is not a JSON number")



# --- content types and encodings ---------------------------------------------------------------


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    """Whether data of this content type is a JSON value (application/json, text/json, anything +json)."""
    media = media_type(content_type)
    return media in ("application/json", "text/json") or media.endswith("+json")


def charset(content_type: str | None) -> str:
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def data_bytes(event: Mapping[str, Any]) -> bytes:
    """The event's data as the bytes of an HTTP body: JSON-encoded for JSON types, raw otherwise."""
    if "data_base64" in event:
        return base64.b64decode(event["data_base64"])
    if event.get("data") is None:
        return b""
    data, declared = event["data"], event.get("datacontenttype")
    if isinstance(data, str) and declared is not None and not is_json(declared):
        return data.encode(charset(declared))
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _header_value(value: Any) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return quote(text, safe=_HEADER_SAFE, encoding="utf-8")


def to_binary(event: Mapping[str, Any]) -> tuple[list[tuple[str, str]], bytes]:
    """Binary mode: `ce-*` headers (percent-encoded) plus content-type, and the data as the body.

    Integer and boolean extensions become strings, as every HTTP header value is one.
    """
    headers = [(f"ce-{name}", _header_value(value)) for name, value in event.items()
               if name not in PAYLOAD and name != "datacontenttype"]
    if event.get("datacontenttype"):
        headers.append(("content-type", event["datacontenttype"]))
    elif "data" in event:
        headers.append(("content-type", "application/json"))
    elif "data_base64" in event:
        headers.append(("content-type", "application/octet-stream"))
    return headers, data_bytes(event)


def to_structured(event: Mapping[str, Any]) -> bytes:
    """Structured mode: the whole event as an `application/cloudevents+json` body."""
    return json.dumps(dict(event), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
