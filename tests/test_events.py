from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import write_project

from faasemu.events.files import file_time, read_events_file
from faasemu.events.ingress import BATCH, STRUCTURED, IngressError, parse_ingress
from faasemu.events.model import EventError, data_bytes, normalize, to_binary, to_structured
from faasemu.events.subscriptions import matches, subscribers
from faasemu.project.errors import InputFileError
from faasemu.project.spec import FunctionSpec


def counter_ids() -> Callable[[], str]:
    numbers = iter(range(1, 1000))
    return lambda: f"gen-{next(numbers)}"


def fixed_now() -> str:
    return "2024-05-01T12:00:00Z"


def ingress(content_type: str | None, body: bytes | str, headers: dict[str, str] | None = None, **kw: object):
    raw = body.encode() if isinstance(body, str) else body
    return parse_ingress(content_type, headers or {}, raw, id_factory=counter_ids(), now=fixed_now, **kw)


def ingress_error(content_type: str | None, body: bytes | str, headers: dict[str, str] | None = None, **kw: object):
    with pytest.raises(IngressError) as info:
        ingress(content_type, body, headers, **kw)
    return info.value


# --- normalize -----------------------------------------------------------------------------------


def test_normalize_fills_defaults_in_attribute_order() -> None:
    event = normalize({"data": {"n": 1}, "type": "t"}, default_id="x-1", default_time="1970-01-01T00:00:01Z")
    assert event == {"specversion": "1.0", "id": "x-1", "source": "faasemu", "type": "t",
                     "time": "1970-01-01T00:00:01Z", "datacontenttype": "application/json", "data": {"n": 1}}
    assert list(event) == ["specversion", "id", "source", "type", "time", "datacontenttype", "data"]


def test_normalize_keeps_given_attributes_and_extensions() -> None:
    given = {"type": "t", "id": "a", "source": "/s", "time": "2024-01-01T00:00:00+02:00", "subject": "x",
             "partitionkey": "p1", "sequence": 3, "traced": True, "datacontenttype": "text/plain", "data": "hi"}
    assert normalize(given, default_id="d", default_time="1970-01-01T00:00:00Z") == {"specversion": "1.0", **given}


def test_normalize_without_data_sets_no_content_type_and_binary_data_is_octet_stream() -> None:
    assert "datacontenttype" not in normalize({"type": "t"}, default_id="d", default_time="1970-01-01T00:00:00Z")
    event = normalize({"type": "t", "data_base64": "AAE="}, default_id="d", default_time="1970-01-01T00:00:00Z")
    assert event["datacontenttype"] == "application/octet-stream"


def test_null_attributes_count_as_absent() -> None:
    event = normalize({"type": "t", "id": None, "subject": None}, default_id="d", default_time="1970-01-01T00:00:00Z")
    assert event["id"] == "d" and "subject" not in event


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([1], "an event must be a JSON object, found a list"),
        ("x", "an event must be a JSON object, found a string"),
        ({"data": 1}, "missing required attribute 'type'"),
        ({"type": ""}, "attribute 'type' must not be empty"),
        ({"type": 3}, "attribute 'type' must be a string, found a number"),
        ({"type": "t", "id": ""}, "attribute 'id' must not be empty"),
        ({"type": "t", "source": {"a": 1}}, "attribute 'source' must be a string, found an object"),
        ({"type": "t", "specversion": "2.0"}, "attribute 'specversion' must be '1.0' (or '0.3'), got '2.0'"),
        ({"type": "t", "specversion": "0.3", "datacontentencoding": "base64", "data": {"a": 1}},
         "attribute 'data' must be a base64 string when 'datacontentencoding' is 'base64'"),
        ({"type": "t", "time": "yesterday"}, "attribute 'time' must be an RFC 3339 timestamp"),
        ({"type": "t", "time": "2024-01-01"}, "attribute 'time' must be an RFC 3339 timestamp"),
        ({"type": "t", "time": "2024-01-01 00:00"}, "attribute 'time' must be an RFC 3339 timestamp"),
        ({"type": "t", "Type": "x"}, "invalid attribute name 'Type'"),
        ({"type": "t", "my_ext": "x"}, "invalid attribute name 'my_ext'"),
        ({"type": "t", "ext": [1]}, "extension attribute 'ext' must be a string, integer or boolean, found a list"),
        ({"type": "t", "ext": 1.5}, "extension attribute 'ext' must be a string, integer or boolean, found a number"),
        ({"type": "t", "data": 1, "data_base64": "AA=="}, "an event holds 'data' or 'data_base64', not both"),
        ({"type": "t", "data_base64": "not base64!"}, "'data_base64' must be a base64 string"),
    ],
)
def test_normalize_errors_name_the_attribute(obj: object, message: str) -> None:
    with pytest.raises(EventError, match="^" + re.escape(message)):
        normalize(obj, default_id="d", default_time="1970-01-01T00:00:00Z")
    assert issubclass(EventError, ValueError)


@pytest.mark.parametrize(("given", "stored"), [
    ("2024-05-01T12:00:00", "2024-05-01T12:00:00Z"),
    ("2024-05-01T12:00:00.123456", "2024-05-01T12:00:00.123456Z"),
    ("2024-05-01t12:00:00", "2024-05-01t12:00:00Z"),
    ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"),
    ("2024-05-01T14:00:00+02:00", "2024-05-01T14:00:00+02:00"),
])
def test_a_time_without_an_offset_is_kept_as_utc(given: str, stored: str) -> None:
    # The CloudEvents SDK and functions-framework accept such events: refusing them would lose them.
    event = normalize({"type": "t", "time": given}, default_id="d", default_time="1970-01-01T00:00:00Z")
    assert event["time"] == stored


def test_a_specversion_0_3_event_is_kept_as_0_3() -> None:
    given = {"specversion": "0.3", "type": "t", "id": "old-1", "source": "/legacy", "schemaurl": "https://s/x",
             "data": {"n": 1}}
    event = normalize(given, default_id="d", default_time="2024-01-01T00:00:00Z")
    assert event == {"specversion": "0.3", "id": "old-1", "source": "/legacy", "type": "t",
                     "time": "2024-01-01T00:00:00Z", "datacontenttype": "application/json",
                     "schemaurl": "https://s/x", "data": {"n": 1}}


def test_a_0_3_base64_encoded_data_becomes_data_base64() -> None:
    given = {"specversion": "0.3", "type": "t", "id": "b", "source": "/s", "datacontentencoding": "base64",
             "data": "AAH/"}
    event = normalize(given, default_id="d", default_time="2024-01-01T00:00:00Z")
    assert event["data_base64"] == "AAH/" and "data" not in event and "datacontentencoding" not in event
    assert event["datacontenttype"] == "application/octet-stream"
    assert data_bytes(event) == b"\x00\x01\xff"


def test_events_files_accept_0_3_and_offsetless_times(tmp_path: Path) -> None:
    path = write(tmp_path, '{"type": "a", "specversion": "0.3"}\n{"type": "b", "time": "2024-05-01T12:00:00"}\n')
    first, second = read_events_file(path)
    assert first["specversion"] == "0.3"
    assert second["time"] == "2024-05-01T12:00:00Z"


def test_the_ingress_accepts_0_3_and_offsetless_times_in_every_mode() -> None:
    [structured] = ingress(STRUCTURED, '{"specversion": "0.3", "type": "t", "id": "s", "source": "/x", '
                                       '"time": "2024-05-01T12:00:00.5"}')
    assert (structured["specversion"], structured["time"]) == ("0.3", "2024-05-01T12:00:00.5Z")
    [binary] = ingress("application/json", b'{"k": 1}', {"ce-specversion": "0.3", "ce-type": "t", "ce-id": "b",
                                                          "ce-source": "/x", "ce-time": "2024-05-01T12:00:00"})
    assert (binary["specversion"], binary["time"], binary["data"]) == ("0.3", "2024-05-01T12:00:00Z", {"k": 1})
    batch = ingress(BATCH, '[{"type": "a", "time": "2024-05-01T12:00:00"}, {"type": "b", "specversion": "0.3"}]')
    assert [e["time"] for e in batch] == ["2024-05-01T12:00:00Z", fixed_now()]


# --- JSON Lines files ----------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "orders.jsonl") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_file_defaults_ids_and_times_from_physical_lines(tmp_path: Path) -> None:
    path = write(tmp_path, '{"type": "a"}\n\n   \n{"type": "b", "data": 1}\r\n{"type": "c", "id": "mine"}\n')
    events = read_events_file(path)
    assert [e["id"] for e in events] == ["orders-1", "orders-4", "mine"]
    assert [e["time"] for e in events] == ["1970-01-01T00:00:01Z", "1970-01-01T00:00:04Z", "1970-01-01T00:00:05Z"]
    assert all(e["source"] == "faasemu" and e["specversion"] == "1.0" for e in events)
    assert events[1]["datacontenttype"] == "application/json"


def test_default_times_strictly_increase_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, "".join('{"type": "t"}\n' for _ in range(120)))
    times = [e["time"] for e in read_events_file(path)]
    assert times == sorted(times) and len(set(times)) == 120
    assert file_time(61) == "1970-01-01T00:01:01Z"


def test_repeated_ids_are_kept_as_the_same_event_again(tmp_path: Path) -> None:
    path = write(tmp_path, '{"type": "t", "id": "e1"}\n{"type": "t", "id": "e1"}\n')
    assert [e["id"] for e in read_events_file(path)] == ["e1", "e1"]


def test_line_separator_inside_a_json_string_is_not_a_line_break(tmp_path: Path) -> None:
    path = write(tmp_path, '{"type": "t", "data": "a\u2028b"}\n{"type": "u"}\n')
    events = read_events_file(path)
    assert events[0]["data"] == "a\u2028b" and events[1]["id"] == "orders-2"


def test_bom_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"type": "t"}\n')
    assert read_events_file(str(path))[0]["type"] == "t"


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ('{"type": "a"}\n\n{"type": "b" "data": 1}\n', 3, "not valid JSON (Expecting ',' delimiter at column 14)"),
        ('{"type": "a"}\n{"data": 1}\n', 2, "missing required attribute 'type'"),
        ('[{"type": "a"}]\n', 1, "an event must be a JSON object, found a list"),
        ('{"type": "a", "data": NaN}\n', 1, "not valid JSON (NaN is not a JSON number)"),
        ('{"type": "a", "specversion": "1"}\n', 1, "attribute 'specversion' must be '1.0' (or '0.3'), got '1'"),
    ],
)
def test_malformed_line_names_file_line_and_reason(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputFileError) as info:
        read_events_file(path)
    assert (info.value.file, info.value.line, info.value.detail) == (path, line, reason)
    assert str(info.value) == f"{path}:{line}: {reason}"


def test_first_bad_line_stops_reading(tmp_path: Path) -> None:
    path = write(tmp_path, '{"type": "a"}\nnope\n{"data": 1}\n')
    with pytest.raises(InputFileError) as info:
        read_events_file(path)
    assert info.value.line == 2


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        read_events_file(str(tmp_path / "absent.jsonl"))
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"type": "a"}\n{"type": "\xff"}\n')
    with pytest.raises(InputFileError) as info:
        read_events_file(str(path))
    assert info.value.line == 2 and "not UTF-8" in info.value.detail


# --- ingress -------------------------------------------------------------------------------------


def test_structured_mode_keeps_data_and_data_base64() -> None:
    [event] = ingress(STRUCTURED, '{"type": "t", "id": "a", "data": {"x": 1}}')
    assert event["data"] == {"x": 1} and event["id"] == "a" and event["time"] == fixed_now()
    [event] = ingress(STRUCTURED + "; charset=utf-8", '{"type": "t", "data_base64": "AAEC"}')
    assert event["data_base64"] == "AAEC" and event["id"] == "gen-1"


def test_structured_mode_rejects_an_array() -> None:
    error = ingress_error(STRUCTURED, '[{"type": "t"}]')
    assert error.status == 400 and BATCH in error.message


def test_batch_generates_ids_and_names_the_bad_index() -> None:
    events = ingress(BATCH, '[{"type": "a"}, {"type": "b", "id": "given"}, {"type": "c"}]')
    assert [e["id"] for e in events] == ["gen-1", "given", "gen-2"]
    error = ingress_error(BATCH, '[{"type": "a"}, {"type": "b"}, {"data": 1}]')
    assert (error.status, error.message) == (400, "event at index 2: missing required attribute 'type'")
    error = ingress_error(BATCH, '{"type": "a"}')
    assert error.status == 400 and "must be a JSON array of events, found an object" in error.message


def test_batch_limit_answers_413_before_anything_else() -> None:
    body = json.dumps([{"type": "t"}] * 4)
    assert len(ingress(BATCH, body, max_batch=4)) == 4
    error = ingress_error(BATCH, body, max_batch=3)
    assert (error.status, error.message) == (413, "a batch holds at most 3 events, got 4")
    assert ingress_error("application/json", body, max_batch=3).status == 413
    assert ingress(BATCH, "[]") == []


def test_plain_json_object_array_and_missing_content_type() -> None:
    [event] = ingress("application/json", '{"type": "order.created", "data": {"id": 7}, "subject": "o7"}')
    assert (event["type"], event["data"], event["subject"], event["id"]) == ("order.created", {"id": 7}, "o7", "gen-1")
    assert [e["type"] for e in ingress("application/json", '[{"type": "a"}, {"type": "b"}]')] == ["a", "b"]
    assert ingress(None, '{"type": "a"}')[0]["type"] == "a"
    error = ingress_error("application/json", '[{"type": "a"}, {"type": 5}]')
    assert error.message == "event at index 1: attribute 'type' must be a string, found a number"


@pytest.mark.parametrize(
    ("content_type", "body", "status", "fragment"),
    [
        ("application/json", "", 400, "body is empty"),
        ("application/json", '{"type": "a",}', 400, "body is not valid JSON (Expecting property name"),
        ("application/json", b"\xff\xfe", 400, "body is not UTF-8"),
        ("application/json", '{"type": "a", "data": Infinity}', 400, "Infinity is not a JSON number"),
        ("application/json", '"just a string"', 400, "an event must be a JSON object, found a string"),
        ("application/json", '{"data": 1}', 400, "missing required attribute 'type'"),
        ("application/x-www-form-urlencoded", "type=a", 415, "unsupported content type"),
    ],
)
def test_ingress_errors(content_type: str, body: str | bytes, status: int, fragment: str) -> None:
    error = ingress_error(content_type, body)
    assert error.status == status and fragment in error.message


def test_binary_mode_json_text_and_opaque_data() -> None:
    headers = {"ce-specversion": "1.0", "ce-type": "t", "ce-id": "b1", "ce-source": "/src", "x-other": "ignored"}
    [event] = ingress("application/json", '{"a": [1, 2]}', headers)
    assert event == {"specversion": "1.0", "id": "b1", "source": "/src", "type": "t", "time": fixed_now(),
                     "datacontenttype": "application/json", "data": {"a": [1, 2]}}
    [event] = ingress("application/vnd.x+json", "3", headers)
    assert event["data"] == 3
    [event] = ingress("text/plain; charset=utf-8", "h\u00e9llo".encode(), headers)
    assert event["data"] == "h\u00e9llo"
    [event] = ingress("image/png", b"\x89PNG\x00", headers)
    assert base64.b64decode(event["data_base64"]) == b"\x89PNG\x00" and "data" not in event
    [event] = ingress(None, b"", {"ce-specversion": "1.0", "ce-type": "t"})
    assert "data" not in event and "datacontenttype" not in event and event["id"] == "gen-1"


def test_binary_mode_percent_decodes_header_values() -> None:
    headers = {"ce-specversion": "1.0", "ce-type": "t", "ce-subject": "caf%C3%A9%20%22x%22%2525", "ce-ext": "a%2Fb"}
    [event] = ingress(None, b"", headers)
    assert event["subject"] == 'caf\u00e9 "x"%25' and event["ext"] == "a/b"


@pytest.mark.parametrize(
    ("headers", "content_type", "body", "fragment"),
    [
        ({"ce-specversion": "0.2", "ce-type": "t"}, None, b"", "attribute 'specversion' must be '1.0'"),
        ({"ce-specversion": "1.0"}, None, b"", "missing required attribute 'type'"),
        ({"ce-specversion": "1.0", "ce-type": "t", "ce-data": "x"}, None, b"", "header 'ce-data' is not allowed"),
        ({"ce-specversion": "1.0", "ce-type": "t", "ce-subject": "%FF"}, None, b"", "header 'ce-subject' is not"),
        ({"ce-specversion": "1.0", "ce-type": "t", "ce-my_ext": "x"}, None, b"", "invalid attribute name 'my_ext'"),
        ({"ce-specversion": "1.0", "ce-type": "t"}, "application/json", b"{x", "body (content type application/json)"),
        ({"ce-specversion": "1.0", "ce-type": "t"}, "text/plain", b"\xff", "charset 'utf-8'"),
    ],
)
def test_binary_mode_errors(headers: dict[str, str], content_type: str | None, body: bytes, fragment: str) -> None:
    error = ingress_error(content_type, body, headers)
    assert error.status == 400 and fragment in error.message


def test_ingress_calls_the_id_factory_only_for_events_without_id() -> None:
    calls: list[int] = []

    def factory() -> str:
        calls.append(1)
        return "new"

    parse_ingress(BATCH, {}, b'[{"type": "a", "id": "x"}, {"type": "b"}]', id_factory=factory, now=fixed_now)
    assert len(calls) == 1


# --- encodings -----------------------------------------------------------------------------------


EXAMPLES = [
    {"type": "order.created", "id": "e-1", "source": "/shop", "data": {"total": 12.5, "items": ["a", "b"]}},
    {"type": "note", "id": "e-2", "subject": 'caf\u00e9 "100%"', "datacontenttype": "text/plain; charset=utf-8",
     "data": "h\u00e9llo\nworld", "tenant": "acme corp"},
    {"type": "blob", "id": "e-3", "data_base64": base64.b64encode(b"\x00\xffbytes").decode()},
    {"type": "empty", "id": "e-4"},
    {"type": "scalar", "id": "e-5", "datacontenttype": "application/cloudevents-data+json", "data": "a string"},
]


@pytest.mark.parametrize("raw", EXAMPLES, ids=[e["type"] for e in EXAMPLES])
def test_binary_round_trip_through_ingress(raw: dict[str, object]) -> None:
    event = normalize(raw, default_id="unused", default_time="2024-01-01T00:00:00Z")
    headers, body = to_binary(event)
    names = [name for name, _ in headers]
    assert all(name == "content-type" or name.startswith("ce-") for name in names)
    assert all(value.isascii() and " " not in value for name, value in headers if name != "content-type")
    header_map = dict(headers)
    assert parse_ingress(header_map.pop("content-type", None), header_map, body, now=fixed_now) == [event]


@pytest.mark.parametrize("raw", EXAMPLES, ids=[e["type"] for e in EXAMPLES])
def test_structured_round_trip_through_ingress(raw: dict[str, object]) -> None:
    event = normalize(raw, default_id="unused", default_time="2024-01-01T00:00:00Z")
    assert parse_ingress(STRUCTURED, {}, to_structured(event), now=fixed_now) == [event]


def test_data_bytes_per_content_type() -> None:
    assert data_bytes({"datacontenttype": "application/json", "data": {"a": 1}}) == b'{"a":1}'
    assert data_bytes({"datacontenttype": "application/json", "data": "s"}) == b'"s"'
    assert data_bytes({"datacontenttype": "text/plain", "data": "s\u00e9"}) == "s\u00e9".encode()
    assert data_bytes({"datacontenttype": "text/plain; charset=latin-1", "data": "\u00e9"}) == b"\xe9"
    assert data_bytes({"data_base64": "AAE="}) == b"\x00\x01"
    assert data_bytes({"type": "t"}) == b""


def test_binary_headers_encode_booleans_and_integers() -> None:
    event = normalize({"type": "t", "flag": True, "count": 3}, default_id="i", default_time="2024-01-01T00:00:00Z")
    headers, body = to_binary(event)
    assert ("ce-flag", "true") in headers and ("ce-count", "3") in headers and body == b""
    assert not any(name == "content-type" for name, _ in headers)


# --- routing -------------------------------------------------------------------------------------


def test_glob_routing() -> None:
    assert matches("order.created", "order.created")
    assert not matches("order.created", "order.Created")
    assert matches("order.*", "order.item.added")  # '*' crosses dots
    assert not matches("order.*", "orders.created")
    assert matches("*", "anything.at.all")
    assert matches("order.?", "order.x") and matches("order.[ab]", "order.b")


def test_subscribers_in_manifest_order() -> None:
    functions = [
        FunctionSpec(name="audit", handler="a.py:h", runtime="aws-lambda", events=("*",)),
        FunctionSpec(name="web", handler="w.py:h", runtime="aws-lambda"),
        FunctionSpec(name="credit", handler="c.py:h", runtime="aws-lambda", events=("payment.*", "order.created")),
        FunctionSpec(name="ship", handler="s.py:h", runtime="aws-lambda", events=("order.*",)),
    ]
    assert subscribers("order.created", functions) == ["audit", "credit", "ship"]
    assert subscribers("payment.ok", functions) == ["audit", "credit"]
    assert subscribers("user.new", functions[1:]) == []


# --- end to end: the ingress of a real `faasemu up` ---------------------------------------------

RECORDER = """\
import json
import os


def handler(event, context):
    with open(os.path.join(os.environ["RECORD_DIR"], event["id"] + ".json"), "w") as out:
        json.dump(event, out)
"""


def test_up_takes_and_delivers_0_3_events_and_offsetless_times(run_server: Callable[..., object],
                                                               tmp_path: Path) -> None:
    record = tmp_path / "seen"
    record.mkdir()
    manifest = write_project(tmp_path, {
        "faasemu.yaml": f"""\
            name: lenient
            env: {{RECORD_DIR: "{record}"}}
            functions:
              recorder:
                handler: recorder.py:handler
                events: ["legacy.*"]
            """,
        "recorder.py": RECORDER,
    })
    server = run_server(manifest)
    posted = [
        (STRUCTURED, {"specversion": "0.3", "id": "v03", "source": "/old", "type": "legacy.order",
                      "time": "2024-05-01T12:00:00Z", "data": {"n": 1}}),
        (STRUCTURED, {"specversion": "1.0", "id": "naive", "source": "/py", "type": "legacy.order",
                      "time": "2024-05-01T12:00:00.250", "data": {"n": 2}}),
    ]
    for content_type, event in posted:
        answer = httpx.post(server.url + "/_faasemu/events", content=json.dumps(event),
                            headers={"content-type": content_type}, timeout=10)
        assert answer.status_code == 202, answer.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list(record.iterdir())) < 2:
        time.sleep(0.05)
    delivered = {path.stem: json.loads(path.read_text()) for path in record.iterdir()}
    assert set(delivered) == {"v03", "naive"}, server.output()
    assert delivered["v03"]["detail"] == {"n": 1}
    assert delivered["naive"]["time"] == "2024-05-01T12:00:00Z"  # EventBridge's whole-second UTC time
