"""Nothing accepted is lost: `kill -9` of `faasemu up` and every worker mid-delivery, then `up` again.

docs/delivery.md#admission-and-durability-up: an event answered 202 is durably stored, and every
delivery not acknowledged when faasemu died is delivered by the next `up`. The handler records each
event id it receives into SQLite.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
from conftest import Server, write_project

HANDLER = '''\
import os
import sqlite3
import time


def handle(event, context):
    time.sleep(0.008)  # slow enough that deliveries are still in flight when the test pulls the plug
    with sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=30) as db:
        db.execute("INSERT INTO seen (event_id, pid) VALUES (?, ?)", (event["id"], os.getpid()))
'''

MANIFEST = """\
state:
  schema: schema.sql
functions:
  consumer:
    handler: consumer.py:handle
    events: ["job.*"]
    concurrency: 2
"""

SCHEMA = "CREATE TABLE seen (n INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, pid INTEGER);\n"


def seen(root: Path) -> list[str]:
    db = sqlite3.connect(root / ".faasemu" / "state.db", timeout=10)
    try:
        return [row[0] for row in db.execute("SELECT event_id FROM seen ORDER BY n")]
    finally:
        db.close()


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, found through /proc's parent links (workers run in sessions of their own)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the command name is in parentheses and may hold spaces: the ppid is the second field after it
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = {child for child, ppid in parents.items() if ppid == parent} - found
        found |= children
        frontier.extend(children)
    return found


def kill_everything(server: Server) -> list[int]:
    assert server.process is not None
    pids = [server.process.pid, *descendants(server.process.pid)]
    for pid in pids:  # SIGSTOP first, so no process reacts to another's death before it dies too
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.process.wait(timeout=10)
    for pid in pids[1:]:
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            try:  # a zombie whose parent died is reaped by init; wait until it is gone
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            except OSError:
                break
            time.sleep(0.01)
    return pids


def test_kill_9_of_every_faasemu_process_loses_no_accepted_event(tmp_path: Path) -> None:
    manifest = write_project(tmp_path, {"faasemu.yaml": MANIFEST, "consumer.py": HANDLER, "schema.sql": SCHEMA})
    first = Server(manifest, "--retry-delay", "0.05").start()
    accepted: list[str] = []
    try:
        url = f"{first.url}/_faasemu/events"
        with httpx.Client(timeout=30) as client:
            for batch in range(2):  # two batches of 100 ...
                events = [{"type": "job.batch", "id": f"b{batch}-{i}", "data": {"i": i}} for i in range(100)]
                response = client.post(url, content=json.dumps(events),
                                       headers={"content-type": "application/cloudevents-batch+json"})
                assert response.status_code == 202, response.text
                accepted += response.json()["ids"]
            for i in range(100):  # ... and 100 single posts, in each format a user would use
                if i % 2:
                    response = client.post(url, json={"type": "job.single", "id": f"s-{i}", "data": {"i": i}})
                else:
                    response = client.post(url, content=b'{"i": %d}' % i, headers={
                        "ce-specversion": "1.0", "ce-id": f"s-{i}", "ce-source": "durability",
                        "ce-type": "job.single", "content-type": "application/json"})
                assert response.status_code == 202, response.text
                accepted += response.json()["ids"]
        assert len(set(accepted)) == 300
        # more events keep arriving while the plug is pulled: those answered 202 must survive too
        stop = threading.Event()
        late: list[str] = []

        def keep_posting() -> None:
            with httpx.Client(timeout=5) as client:
                for i in range(10_000):
                    if stop.is_set():
                        return
                    try:
                        response = client.post(url, json={"type": "job.late", "id": f"late-{i}"})
                    except httpx.TransportError:
                        return
                    if response.status_code == 202:
                        late.extend(response.json()["ids"])

        poster = threading.Thread(target=keep_posting)
        poster.start()
        # pull the plug while deliveries are in flight and events are still arriving: some delivered,
        # most not yet (deliveries run while the 300 are posted, so wait for late arrivals too)
        deadline = time.monotonic() + 20
        while (len(seen(tmp_path)) < 20 or len(late) < 5) and time.monotonic() < deadline:
            time.sleep(0.005)
        killed = kill_everything(first)
        stop.set()
        poster.join(timeout=10)
    finally:
        first.stop()
    assert late, "some events were accepted while deliveries were running"
    accepted += late
    before = set(seen(tmp_path))
    undelivered = set(accepted) - before
    assert before and undelivered, f"the kill should land mid-delivery: {len(before)} of {len(accepted)} delivered"
    assert len(killed) >= 2, "the server and at least one worker were killed"

    second = Server(manifest, "--retry-delay", "0.05").start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            missing = set(accepted) - set(seen(tmp_path))
            if not missing:
                break
            time.sleep(0.05)
        assert not missing, (f"{len(missing)} of {len(accepted)} accepted events never reached the handler,"
                             f" e.g. {sorted(missing)[:5]}")
        out = second.wait_for_output("queued again")
        assert "deliveries left open by an earlier run" in out
        events = httpx.get(f"{second.url}/_faasemu/events", params={"limit": 100000}, timeout=10).json()["events"]
        assert {e["id"] for e in events} >= set(accepted)
    finally:
        second.stop()


SQS_HANDLER = '''\
import json
import os
import sqlite3
import time


def handle(event, context):
    record = event["Records"][0]
    with sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=30) as db:
        db.execute("INSERT INTO received VALUES (?, ?, ?, ?)", (record["messageId"],
                   record["attributes"]["ApproximateReceiveCount"], record["receiptHandle"], context.aws_request_id))
        count = db.execute("SELECT COUNT(*) FROM received WHERE message_id = ?", (record["messageId"],)).fetchone()[0]
        first = count == 1
    if first and json.loads(record["body"]).get("hang"):
        time.sleep(60)  # still running when faasemu is killed
'''

SQS_MANIFEST = """\
state:
  schema: schema.sql
functions:
  queue-consumer:
    handler: consumer.py:handle
    events: [job.hang]
    event_source: sqs
    timeout: 2m
"""


def test_a_delivery_in_flight_when_killed_is_redelivered_as_a_new_attempt(tmp_path: Path) -> None:
    """SQS counts every receive: the redelivery after a crash has ApproximateReceiveCount 2 and a new
    receiptHandle (docs/delivery.md#ids: per-attempt values are new for every redelivery), the same messageId."""
    manifest = write_project(tmp_path, {
        "faasemu.yaml": SQS_MANIFEST, "consumer.py": SQS_HANDLER,
        "schema.sql": "CREATE TABLE received (message_id TEXT, receive_count TEXT, receipt TEXT, request_id TEXT);\n",
    })

    def received() -> list[tuple[str, str, str, str]]:
        db = sqlite3.connect(tmp_path / ".faasemu" / "state.db", timeout=10)
        try:
            return db.execute("SELECT * FROM received").fetchall()
        finally:
            db.close()

    first = Server(manifest).start()
    try:
        response = httpx.post(f"{first.url}/_faasemu/events", json={"type": "job.hang", "id": "job-1",
                                                                   "data": {"hang": True}}, timeout=10)
        assert response.status_code == 202, response.text
        deadline = time.monotonic() + 15
        while not received() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(received()) == 1
        kill_everything(first)
    finally:
        first.stop()
    second = Server(manifest).start()
    try:
        deadline = time.monotonic() + 15
        while len(received()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        got = received()
    finally:
        second.stop()
    assert len(got) == 2, got
    (id1, count1, receipt1, request1), (id2, count2, receipt2, request2) = got
    assert id1 == id2 == "job-1"
    assert (count1, count2) == ("1", "2")
    assert receipt1 != receipt2
    assert request1 != request2
