"""The effect sink honours Idempotency-Key as Stripe's API does (docs/verification.md#idempotency-keys).

Against a real LocalEffectServer (what `invoke`, `replay` and the campaign's lanes use) over HTTP,
and once against a real `faasemu up` (Gateway.sink), where the console says what happened.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, write_project

from faasemu.delivery.effects import EffectLog, LocalEffectServer, PendingCall, SinkAnswer


@pytest.fixture
def effects() -> Iterator[LocalEffectServer]:
    with LocalEffectServer() as server:
        yield server


def post(url: str, body: bytes, key: str | None = None, header: str = "Idempotency-Key",
         method: str = "POST") -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON answer, headers with lower-case names), whatever the status."""
    headers = {"content-type": "application/json", **({header: key} if key is not None else {})}
    request = urllib.request.Request(url, body, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), {k.lower(): v for k, v in error.headers.items()}


def test_without_a_key_every_call_is_a_new_effect_with_its_own_id(effects: LocalEffectServer) -> None:
    url = effects.base_url + "/sink/payment"
    first = post(url, b'{"amount": 10}')
    second = post(url, b'{"amount": 10}')
    assert (first[0], first[1]) == (200, {"ok": True, "id": "call_1"})
    assert (second[0], second[1]) == (200, {"ok": True, "id": "call_2"})
    assert "idempotent-replayed" not in second[2]
    assert [c.body for c in effects.log.sink] == [{"amount": 10}, {"amount": 10}]
    assert effects.log.replayed == [] and effects.log.errors == []


def test_the_same_key_and_body_is_answered_with_the_first_answer_and_is_no_new_effect(
    effects: LocalEffectServer,
) -> None:
    url = effects.base_url + "/sink/payment"
    post(url, b'{"other": 1}')  # call_1, so the keyed call's id is visibly its own
    first = post(url, b'{"amount": 10, "currency": "eur"}', "charge-o-1")
    # The header name in any case, the same parameters in another order and spacing: the same request.
    again = post(url, b'{ "currency" : "eur",\n "amount": 10 }', "charge-o-1", header="idempotency-key")
    assert (first[0], first[1]) == (200, {"ok": True, "id": "call_2"})
    assert (again[0], again[1]) == (200, {"ok": True, "id": "call_2"})
    assert again[2]["idempotent-replayed"] == "true" and "idempotent-replayed" not in first[2]
    assert [c.body for c in effects.log.sink] == [{"other": 1}, {"amount": 10, "currency": "eur"}]
    assert [(c.name, c.method, c.body) for c in effects.log.replayed] == [
        ("payment", "POST", {"currency": "eur", "amount": 10})]


def test_a_used_key_with_other_parameters_is_stripes_400_and_no_effect(effects: LocalEffectServer) -> None:
    url = effects.base_url + "/sink/payment"
    post(url, b'{"amount": 10}', "k1")
    status, answer, _ = post(url, b'{"amount": 20}', "k1")
    assert status == 400 and answer["error"]["type"] == "idempotency_error"
    message = answer["error"]["message"]
    assert message.startswith("Keys for idempotent requests can only be used with the same parameters they were first "
                              "used with.") and "'k1'" in message and "sink payment" in message
    assert post(url, b'{"amount": 10}', "k1", method="PUT")[0] == 400  # the method is a parameter too
    assert post(url, b'{"amount": true}', "k2")[0] == 200 and post(url, b'{"amount": 1}', "k2")[0] == 400
    assert [c.body for c in effects.log.sink] == [{"amount": 10}, {"amount": True}]
    assert [(e.key, e.status, e.call.body) for e in effects.log.errors] == [
        ("k1", 400, {"amount": 20}), ("k1", 400, {"amount": 10}), ("k2", 400, {"amount": 1})]
    assert effects.log.replayed == []


def test_keys_are_scoped_per_sink_name_per_lane_and_per_log(effects: LocalEffectServer) -> None:
    sink_a, _ = effects.add_lane("a")
    sink_b, _ = effects.add_lane("b")
    body = b'{"to": "ada@example.com"}'
    assert post(sink_a + "/email", body, "k")[1] == {"ok": True, "id": "call_1"}
    assert post(sink_a + "/sms", body, "k")[2].get("idempotent-replayed") is None  # another name: a new call
    assert post(sink_b + "/email", body, "k")[2].get("idempotent-replayed") is None  # another lane
    assert len(effects.logs["a"].sink) == 2 and len(effects.logs["b"].sink) == 1
    taken = effects.take("a")  # a fresh log for the next run: its keys start unused
    assert len(taken.sink) == 2
    status, answer, headers = post(sink_a + "/email", body, "k")
    assert (status, answer, headers.get("idempotent-replayed")) == (200, {"ok": True, "id": "call_1"}, None)


def test_a_second_call_while_the_first_is_in_flight_is_409(effects: LocalEffectServer) -> None:
    url = effects.base_url + "/sink/payment"
    started = effects.log.begin_sink("payment", "POST", b'{"amount": 10}', "k")  # the first call, not yet answered
    assert isinstance(started, PendingCall)
    status, answer, _ = post(url, b'{"amount": 10}', "k")
    assert status == 409 and answer["error"]["type"] == "idempotency_error"
    assert "in progress" in answer["error"]["message"] and "'k' on sink payment" in answer["error"]["message"]
    assert effects.log.sink == [] and [(e.key, e.status) for e in effects.log.errors] == [("k", 409)]
    assert effects.log.finish_sink(started).payload == {"ok": True, "id": "call_1"}
    status, answer, headers = post(url, b'{"amount": 10}', "k")  # answered now: replayed
    assert (status, answer, headers["idempotent-replayed"]) == (200, {"ok": True, "id": "call_1"}, "true")
    assert len(effects.log.sink) == 1 and len(effects.log.replayed) == 1


def test_simultaneous_first_uses_of_one_key_make_one_effect() -> None:
    log = EffectLog()
    barrier = threading.Barrier(8)
    results: list[SinkAnswer | PendingCall] = []

    def call() -> None:
        barrier.wait()
        results.append(log.begin_sink("payment", "POST", b'{"amount": 10}', "k"))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pending = [r for r in results if isinstance(r, PendingCall)]
    assert len(pending) == 1
    assert sorted(r.status for r in results if isinstance(r, SinkAnswer)) == [409] * 7
    log.finish_sink(pending[0])
    assert len(log.sink) == 1 and len(log.errors) == 7


def test_an_empty_key_is_no_key_and_an_overlong_key_is_refused(effects: LocalEffectServer) -> None:
    url = effects.base_url + "/sink/payment"
    assert post(url, b"{}", "  ")[1] == {"ok": True, "id": "call_1"}
    assert post(url, b"{}", "  ")[1] == {"ok": True, "id": "call_2"}
    status, answer, _ = post(url, b"{}", "k" * 256)
    assert status == 400 and answer["error"]["type"] == "invalid_request_error"
    assert "256 characters" in answer["error"]["message"] and "no longer than 255" in answer["error"]["message"]
    assert len(effects.log.sink) == 2 and len(effects.log.errors) == 1


def test_up_replays_and_refuses_by_the_same_rule_and_says_so(tmp_path: Path) -> None:
    manifest = write_project(tmp_path, {
        "faasemu.yaml": """\
            name: sinkdemo
            functions:
              hello:
                handler: fns/hello.py:hello
                http: [{path: /hello, methods: [GET]}]
        """,
        "fns/hello.py": "def hello(event, context):\n    return {'ok': True}\n",
    })
    with Server(manifest) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        key = {"Idempotency-Key": "charge-o-1"}
        first = client.post("/_faasemu/sink/payment", json={"amount": 10}, headers=key)
        again = client.post("/_faasemu/sink/payment", content=b'{ "amount" : 10 }',
                            headers={"content-type": "application/json", "idempotency-key": "charge-o-1"})
        other = client.post("/_faasemu/sink/payment", json={"amount": 20}, headers=key)
        assert (first.status_code, first.json()) == (200, {"ok": True, "id": "call_1"})
        assert "idempotent-replayed" not in first.headers
        assert (again.status_code, again.json(), again.headers["idempotent-replayed"]) == (
            200, {"ok": True, "id": "call_1"}, "true")
        assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"
        listed = client.get("/_faasemu/sink").json()
        assert [c["body"] for c in listed["calls"]] == [{"amount": 10}]
        assert [c["body"] for c in listed["replayed"]] == [{"amount": 10}]
        assert [(e["key"], e["status"], e["body"]) for e in listed["errors"]] == [("charge-o-1", 400, {"amount": 20})]
        output = server.wait_for_output("other parameters")
    lines = [line for line in output.splitlines() if "POST payment" in line]
    assert len(lines) == 3
    assert " 200 " in lines[0] and "replayed" not in lines[0]
    assert " 200 " in lines[1] and "replayed (Idempotency-Key)" in lines[1]
    assert " 400 " in lines[2]
    assert "refused: Idempotency-Key 'charge-o-1' was first used with other parameters" in lines[2]
