"""The sink's side of a delivery's steps, for the crash probe (docs/verification.md#steps-at-the-sink).

A real LocalEffectServer, a real counter file (project/stepcounter.py) and a real child process
standing in for the worker: the test bumps the counter itself where a worker would commit.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from faasemu.delivery.effects import LocalEffectServer
from faasemu.project import stepcounter


@pytest.fixture
def effects() -> Iterator[LocalEffectServer]:
    with LocalEffectServer() as server:
        yield server


@pytest.fixture
def worker() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child
    if child.poll() is None:
        child.kill()
    child.wait()


@pytest.fixture
def counter_path(tmp_path: Path) -> str:
    path = str(tmp_path / "steps")
    stepcounter.create(path)
    return path


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, body, {"content-type": "application/json", **(headers or {})}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def test_a_crash_after_a_sink_call_records_it_kills_the_worker_and_never_answers(
    effects: LocalEffectServer, worker: subprocess.Popen[bytes], counter_path: str,
) -> None:
    sink, _ = effects.add_lane("a")
    effects.arm("a", counter_path, worker.pid, crash_after=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
        post(sink + "/payment", b'{"amount": 10}')
    assert worker.wait(timeout=10) == -9
    log = effects.logs["a"]
    assert [(c.name, c.body) for c in log.sink] == [("payment", {"amount": 10})]  # the call happened
    assert log.steps == [(1, "sink", "payment")]
    assert stepcounter.StepCounter(counter_path).value == 1


def test_steps_interleave_with_the_workers_commits_in_one_numbering(
    effects: LocalEffectServer, worker: subprocess.Popen[bytes], counter_path: str,
) -> None:
    sink, events = effects.add_lane("a")
    effects.arm("a", counter_path, worker.pid)
    commits = stepcounter.StepCounter(counter_path)  # the worker's side
    assert commits.bump() == 1  # the handler's first commit
    assert post(sink + "/payment", b'{"amount": 10}') == 200
    assert post(events, json.dumps({"type": "order.paid", "source": "s", "id": "1"}).encode()) == 202
    assert commits.bump() == 4
    assert post(events, json.dumps([{"type": "invoice.sent"}, {"type": "other"}]).encode()) == 202  # a batch: one step
    assert post(events, b'{"order": "o-1"}', {"ce-type": "order.shipped", "ce-id": "2", "ce-source": "s"}) == 202
    assert post(events, b"not json") == 202
    assert effects.logs["a"].steps == [(2, "sink", "payment"), (3, "emit", "order.paid"), (5, "emit", "invoice.sent"),
                                       (6, "emit", "order.shipped"), (7, "emit", "")]
    assert commits.value == 7 and worker.poll() is None


def test_a_crash_after_an_emit_and_replayed_or_refused_calls_count_as_steps(
    effects: LocalEffectServer, worker: subprocess.Popen[bytes], counter_path: str,
) -> None:
    sink, events = effects.add_lane("a")
    effects.arm("a", counter_path, worker.pid, crash_after=4)
    key = {"Idempotency-Key": "k"}
    assert post(sink + "/payment", b'{"amount": 10}', key) == 200
    assert post(sink + "/payment", b'{"amount": 10}', key) == 200  # replayed: no effect, but a call was made
    with pytest.raises(urllib.error.HTTPError):
        post(sink + "/payment", b'{"amount": 20}', key)  # refused (400): a call all the same
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
        post(events, b'{"type": "order.paid"}')
    assert worker.wait(timeout=10) == -9
    log = effects.logs["a"]
    assert log.steps == [(1, "sink", "payment"), (2, "sink", "payment"), (3, "sink", "payment"),
                         (4, "emit", "order.paid")]
    assert (len(log.sink), len(log.replayed), len(log.errors), log.emitted) == (1, 1, 1, [{"type": "order.paid"}])


def test_arming_survives_take_is_replaced_by_arming_again_and_ends_with_disarm(
    effects: LocalEffectServer, worker: subprocess.Popen[bytes], counter_path: str, tmp_path: Path,
) -> None:
    sink, _ = effects.add_lane("a")
    other, _ = effects.add_lane("b")
    effects.arm("a", counter_path, worker.pid)
    post(sink + "/email", b"{}")
    post(other + "/email", b"{}")  # another lane is not armed
    taken = effects.take("a")
    assert taken.steps == [(1, "sink", "email")] and effects.logs["b"].steps == []
    post(sink + "/email", b"{}")  # still armed after take: counted into the fresh log
    assert effects.logs["a"].steps == [(2, "sink", "email")]

    second = str(tmp_path / "second")
    stepcounter.create(second)
    effects.arm("a", second, worker.pid, crash_after=5)  # new settings, a new counter
    post(sink + "/email", b"{}")
    assert effects.logs["a"].steps[-1] == (1, "sink", "email")
    assert stepcounter.StepCounter(counter_path).value == 2  # the first counter is left alone

    effects.disarm("a")
    for _ in range(5):
        assert post(sink + "/email", b"{}") == 200  # past crash_after, but disarmed: no step, no crash
    assert len(effects.logs["a"].steps) == 2 and worker.poll() is None
    assert stepcounter.StepCounter(second).value == 1
    effects.disarm("a")  # disarming twice is harmless


def test_a_worker_already_gone_is_no_error_and_the_server_keeps_answering(
    effects: LocalEffectServer, counter_path: str,
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    sink, _ = effects.add_lane("a")
    effects.arm("a", counter_path, gone.pid, crash_after=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
        post(sink + "/payment", b"{}")
    assert post(sink + "/payment", b"{}") == 200  # step 2: answered
    assert effects.logs["a"].steps == [(1, "sink", "payment"), (2, "sink", "payment")]
