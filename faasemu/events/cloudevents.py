"""PURE: the CloudEvent model, JSON Lines events files, HTTP ingress formats and routing by type.

An event is a plain `dict` in the CloudEvents 1.0 JSON format (attributes plus `data` or
`data_base64`), because it is stored in SQLite as JSON and sent to workers as JSON. Standard
library only: worker processes and the supervisor both import this module.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from faasemu.project.errors import InputFileError
from faasemu.project.spec import FunctionSpec

SPECVERSION = "1.0"
# The versions accepted: 0.3 events still come from older producers (Knative sources, the CloudEvents
# SDKs' v0.3 classes), and both the SDK and functions-framework read them, so they are kept, not refused.
SPECVERSIONS = ("1.0", "0.3")
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

_NAME = re.compile(r"[a-z0-9]+\Z")
_REQUIRED = ("specversion", "id", "source", "type")
_OPTIONAL = ("subject", "time", "datacontenttype", "dataschema")
_PAYLOAD = ("data", "data_base64")
# CloudEvents HTTP binding: header values percent-encode space, '"', '%' and everything outside
# printable ASCII (as UTF-8); every other printable character travels as is.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


class EventError(ValueError):
    """An object is not a valid CloudEvent. The message names the attribute at fault."""


class IngressError(Exception):
    """A request to the event ingress is refused; `status` is the HTTP answer (400, 413, 415)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"{status}: {message}")


def _kind(value: Any) -> str:
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
    """Validate a CloudEvent in JSON form and fill the defaults of SPEC §3; returns a new dict.

    A `null` attribute counts as absent (the CloudEvents JSON format says so). Without any
    `datacontenttype`, `data` is JSON (`application/json`) and `data_base64` is opaque bytes
    (`application/octet-stream`), so a binary-mode round trip keeps the event unchanged.
    """
    if not isinstance(obj, dict):
        raise EventError(f"an event must be a JSON object, found {_kind(obj)}")
    given = {name: value for name, value in obj.items() if value is not None}
    for name in given:
        if name not in _PAYLOAD and not (isinstance(name, str) and _NAME.match(name)):
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
            raise EventError(f"attribute {name!r} must be a string, found {_kind(value)}")
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
    extensions = [name for name in given if name not in _REQUIRED + _OPTIONAL + _PAYLOAD]
    for name in extensions:
        if not isinstance(given[name], (str, int)):  # bool is an int: booleans are allowed too
            raise EventError(f"extension attribute {name!r} must be a string, integer or boolean, "
                             f"found {_kind(given[name])}")
    order = [name for name in _REQUIRED + _OPTIONAL if name in given] + extensions
    order += [name for name in _PAYLOAD if name in given]
    return {name: given[name] for name in order}


def file_time(line: int) -> str:
    """The default `time` of the event on `line`: the epoch plus that many seconds, so file order is time order."""
    return (EPOCH + timedelta(seconds=line)).strftime("%Y-%m-%dT%H:%M:%SZ")


class _NonFinite(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity, which no other JSON reader (nor SQLite's json) does.
    raise _NonFinite(f"{name} is not a JSON number")


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
            obj = json.loads(line_text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise InputFileError(path, number, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        except _NonFinite as exc:
            raise InputFileError(path, number, f"not valid JSON ({exc})") from None
        try:
            events.append(normalize(obj, default_id=f"{stem}-{number}", default_time=file_time(number)))
        except EventError as exc:
            raise InputFileError(path, number, str(exc)) from None
    return events


# --- HTTP: ingress parsing and the encodings runtimes deliver events in -------------------------


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    """Whether data of this content type is a JSON value (application/json, text/json, anything +json)."""
    media = media_type(content_type)
    return media in ("application/json", "text/json") or media.endswith("+json")


def _charset(content_type: str | None) -> str:
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _uuid_hex() -> str:
    return uuid.uuid4().hex


def _load_json(body: bytes, what: str = "body") -> Any:
    if not body.strip():
        raise IngressError(400, f"{what} is empty; expected JSON")
    try:
        return json.loads(body.decode("utf-8-sig"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise IngressError(400, f"{what} is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise IngressError(400, f"{what} is not valid JSON ({exc.msg} at {where})") from None
    except _NonFinite as exc:
        raise IngressError(400, f"{what} is not valid JSON ({exc})") from None


def parse_ingress(
    content_type: str | None,
    headers: Mapping[str, str],
    body: bytes,
    *,
    max_batch: int = 1000,
    id_factory: Callable[[], str] = _uuid_hex,
    now: Callable[[], str] = utc_now,
) -> list[dict[str, Any]]:
    """Turn a POST to `/_faasemu/events` into normalized events, all or nothing.

    `headers` has lower-case names. Structured and batch content types win over `ce-*` headers,
    as the CloudEvents HTTP binding says; a missing content type is read as plain JSON. Ingress
    ids are random (`id_factory`): only events files need reproducible ids.
    """
    received = now()

    def one(obj: Any, where: str = "") -> dict[str, Any]:
        default_id = id_factory() if isinstance(obj, dict) and obj.get("id") is None else ""
        try:
            return normalize(obj, default_id=default_id, default_time=received)
        except EventError as exc:
            raise IngressError(400, f"{where}{exc}") from None

    def many(items: list[Any]) -> list[dict[str, Any]]:
        if len(items) > max_batch:
            raise IngressError(413, f"a batch holds at most {max_batch} events, got {len(items)}")
        return [one(item, f"event at index {index}: ") for index, item in enumerate(items)]

    media = media_type(content_type)
    if media == STRUCTURED:
        obj = _load_json(body)
        if isinstance(obj, list):
            raise IngressError(400, f"a {STRUCTURED} body holds one event; send a JSON array as {BATCH}")
        return [one(obj)]
    if media == BATCH:
        obj = _load_json(body)
        if not isinstance(obj, list):
            raise IngressError(400, f"a {BATCH} body must be a JSON array of events, found {_kind(obj)}")
        return many(obj)
    if "ce-specversion" in headers:
        return [_binary(content_type, headers, body, one)]
    if media in ("", "application/json"):
        obj = _load_json(body)
        return many(obj) if isinstance(obj, list) else [one(obj)]
    raise IngressError(415, f"unsupported content type {content_type!r}: send {STRUCTURED}, {BATCH}, "
                            "application/json, or binary mode (ce-* headers)")


def _binary(
    content_type: str | None, headers: Mapping[str, str], body: bytes, one: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    """Binary mode: attributes from `ce-*` headers (percent-decoded), the body is the data."""
    attributes: dict[str, Any] = {}
    for name, value in headers.items():
        if not name.startswith("ce-"):
            continue
        if name[3:] in _PAYLOAD:
            raise IngressError(400, f"header {name!r} is not allowed: in binary mode the body is the data")
        try:
            attributes[name[3:]] = unquote(value, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            raise IngressError(400, f"header {name!r} is not percent-encoded UTF-8") from None
    if content_type:
        attributes["datacontenttype"] = content_type
    declared = attributes.get("datacontenttype")
    if body:
        if declared is None or is_json(declared):
            attributes["data"] = _load_json(body, f"body (content type {declared or 'application/json'})")
        elif media_type(declared).startswith("text/"):
            try:
                attributes["data"] = body.decode(_charset(declared))
            except (UnicodeDecodeError, LookupError):
                raise IngressError(400, f"body is not text in charset {_charset(declared)!r}") from None
        else:
            attributes["data_base64"] = base64.b64encode(body).decode("ascii")
    return one(attributes)


def data_bytes(event: Mapping[str, Any]) -> bytes:
    """The event's data as the bytes of an HTTP body: JSON-encoded for JSON types, raw otherwise."""
    if "data_base64" in event:
        return base64.b64decode(event["data_base64"])
    if event.get("data") is None:
        return b""
    data, declared = event["data"], event.get("datacontenttype")
    if isinstance(data, str) and declared is not None and not is_json(declared):
        return data.encode(_charset(declared))
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _header_value(value: Any) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return quote(text, safe=_HEADER_SAFE, encoding="utf-8")


def to_binary(event: Mapping[str, Any]) -> tuple[list[tuple[str, str]], bytes]:
    """Binary mode: `ce-*` headers (percent-encoded) plus content-type, and the data as the body.

    Integer and boolean extensions become strings, as every HTTP header value is one.
    """
    headers = [(f"ce-{name}", _header_value(value)) for name, value in event.items()
               if name not in _PAYLOAD and name != "datacontenttype"]
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


# --- routing ------------------------------------------------------------------------------------


def matches(pattern: str, event_type: str) -> bool:
    """Glob match of an `events:` pattern against a type, case-sensitive (`fnmatch.fnmatchcase`).

    `*` matches any characters, dots included: `order.*` matches `order.item.added`, and `*`
    alone matches every type. `?` and `[abc]` work as in shell globs.
    """
    return fnmatchcase(event_type, pattern)


def subscribers(event_type: str, functions: Sequence[FunctionSpec]) -> list[str]:
    """Names of the functions subscribed to `event_type`, in manifest order (canonical order, §3)."""
    return [spec.name for spec in functions if any(matches(pattern, event_type) for pattern in spec.events)]
