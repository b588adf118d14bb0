"""PURE: what a POST to `/_faasemu/events` holds: structured, batch, binary or plain JSON, all or nothing."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from faasemu.events.model import (
    PAYLOAD,
    EventError,
    NonFiniteNumber,
    charset,
    is_json,
    kind_of,
    media_type,
    normalize,
    reject_non_finite,
    utc_now,
)

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


class IngressError(Exception):
    """A request to the event ingress is refused; `status` is the HTTP answer (400, 413, 415)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"{status}: {message}")


def _uuid_hex() -> str:
    return uuid.uuid4().hex


def _load_json(body: bytes, what: str = "body") -> Any:
    if not body.strip():
        raise IngressError(400, f"{what} is empty; expected JSON")
    try:
        return json.loads(body.decode("utf-8-sig"), parse_constant=reject_non_finite)
    except UnicodeDecodeError as exc:
        raise IngressError(400, f"{what} is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise IngressError(400, f"{what} is not valid JSON ({exc.msg} at {where})") from None
    except NonFiniteNumber as exc:
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
            raise IngressError(400, f"a {BATCH} body must be a JSON array of events, found {kind_of(obj)}")
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
        if name[3:] in PAYLOAD:
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
                attributes["data"] = body.decode(charset(declared))
            except (UnicodeDecodeError, LookupError):
                raise IngressError(400, f"body is not text in charset {charset(declared)!r}") from None
        else:
            attributes["data_base64"] = base64.b64encode(body).decode("ascii")
    return one(attributes)
