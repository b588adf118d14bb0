"""The bus keeps delivering whatever goes wrong inside faasemu, and live `--shuffle` delivers the order it logs.

Issue 8, reliability 1 and 4. The delivery-loop tests run a real Bus, Supervisor, event log and worker
processes in this process, with a fault injected into faasemu's own code (its console, its worker
pool), which a real server gives no way to reach; the shuffle test drives a real `faasemu up`.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import re
import time
from pathlib import Path
from typing import Any

import httpx
from conftest import arrivals, wait_for, write_project

from faasemu.chaos.live import ShuffleBuffer
from faasemu.delivery.bus import Bus
from faasemu.delivery.eventlog import EventLog
from faasemu.project.console import Console
from faasemu.project.manifest import load_manifest
from faasemu.server.supervisor import Supervisor
from faasemu.server.up import project_env

RECORDER = '''\
def record(event, context):
    with open("arrivals.txt", "a") as file:
        file.write(event["id"] + "\\n")
    return {"ok": True}
'''


def project(root: Path, retries: int = 1) -> Path:
    return write_project(root, {
        "faasemu.yaml": f"""\
            functions:
              rec:
                handler: recorder.py:record
                events: [order.*]
                retries: {retries}
                concurrency: 1
        """,
        "recorder.py": RECORDER,
    })



def cloudevent(event_id: str) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": "test", "type": "order.created",
            "time": "2026-01-01T00:00:00Z", "datacontenttype": "application/json", "data": {"n": event_id}}


class ConsoleFailingOnce(Console):
    """A console whose first invocation line raises, as a bug in faasemu's own logging would."""

    def __init__(self, file: io.StringIO) -> None:
        super().__init__(file=file)
        self.failed = False

    def invocation(self, *args: Any, **kwargs: Any) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("console broke [/internal]")
        super().invocation(*args, **kwargs)


async def deliver(root: Path, console: Console, *, break_pool_once: bool = False,
                  want: int = 2, timeout: float = 60) -> dict[str, Any]:
    """Publish e1 then e2 to a real bus and wait until `want` deliveries are settled (done or dead)."""
    manifest = load_manifest(str(root / "faasemu.yaml"))
    supervisor = Supervisor(manifest, console, project_env(manifest, "http://127.0.0.1:9"))
    log = EventLog(str(root / ".faasemu" / "events.db"))
    bus = Bus(log, supervisor, retry_delay=0.05)
    if break_pool_once:
        pool = supervisor.pools["rec"]
        real_call = pool.call
        broken = [False]

        async def call_failing_once(*args: Any, **kwargs: Any) -> Any:
            if not broken[0]:
                broken[0] = True
                raise ConnectionResetError("worker pipe lost [/internal]")
            return await real_call(*args, **kwargs)

        pool.call = call_failing_once  # type: ignore[method-assign]
    bus.start()
    try:
        await bus.publish([cloudevent("e1")], "test")
        await bus.publish([cloudevent("e2")], "test")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            settled = [row for _, rows in log.recent(10) for row in rows if row.status in ("done", "dead")]
            if len(settled) >= want:
                break
            await asyncio.sleep(0.05)
        rows = {stored.event["id"]: rows[0] for stored, rows in log.recent(10)}
        return {"rows": rows}
    finally:
        await bus.close()
        await supervisor.close()


def test_a_console_fault_after_a_delivery_neither_redelivers_it_nor_stops_the_loop(tmp_path: Path) -> None:
    project(tmp_path)
    out = io.StringIO()
    result = asyncio.run(deliver(tmp_path, ConsoleFailingOnce(out)))
    # Each event exactly once: the first was settled before its console line failed.
    assert sorted(arrivals(tmp_path)) == ["e1", "e2"], out.getvalue()
    assert {k: (r.status, r.attempts) for k, r in result["rows"].items()} == {"e1": ("done", 1), "e2": ("done", 1)}
    text = out.getvalue()
    assert "faasemu internal error" in text and "console broke [/internal]" in text, text


def test_a_fault_inside_faasemu_retries_the_delivery_and_the_loop_goes_on(tmp_path: Path) -> None:
    project(tmp_path, retries=1)
    out = io.StringIO()
    result = asyncio.run(deliver(tmp_path, Console(file=out), break_pool_once=True))
    assert sorted(arrivals(tmp_path)) == ["e1", "e2"], out.getvalue()
    rows = result["rows"]
    assert (rows["e1"].status, rows["e1"].attempts) == ("done", 2), out.getvalue()
    assert rows["e2"].status == "done"
    text = out.getvalue()
    assert "faasemu internal error" in text and "worker pipe lost [/internal]" in text and "retried in" in text, text


def test_a_fault_inside_faasemu_past_the_retries_is_dead_lettered_with_its_error(tmp_path: Path) -> None:
    project(tmp_path, retries=0)
    out = io.StringIO()
    result = asyncio.run(deliver(tmp_path, Console(file=out), break_pool_once=True))
    assert arrivals(tmp_path) == ["e2"], out.getvalue()
    rows = result["rows"]
    assert rows["e1"].status == "dead"
    assert rows["e1"].last_error == "faasemu internal error: ConnectionResetError: worker pipe lost [/internal]"
    assert rows["e2"].status == "done"


def test_live_shuffle_delivers_in_the_order_it_logs(run_server, tmp_path: Path) -> None:
    manifest = project(tmp_path)
    server = run_server(manifest, "--shuffle", "3", "--seed", "7")
    ids = [f"e{n}" for n in range(10)]
    response = httpx.post(f"{server.url}/_faasemu/events", content=json.dumps([cloudevent(i) for i in ids]),
                          headers={"content-type": "application/cloudevents-batch+json"}, timeout=30)
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 60
    while len(arrivals(tmp_path)) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.05)
    arrived = arrivals(tmp_path)

    # The seeded order: the pure shuffle buffer with the seed `up` derives from --seed 7.
    buffer: ShuffleBuffer[str] = ShuffleBuffer(3, random.Random("7/shuffle"))
    expected = [item for i in ids for item in buffer.push(i)] + buffer.flush()
    assert expected != ids  # this seed does reorder
    assert arrived == expected, server.output()

    # Every logged release is, in that order, a contiguous part of what the handler saw.
    logged = re.findall(r"shuffle released \d+ deliveries in seeded order: (.*)", server.output())
    assert logged, server.output()
    joined = " ".join(arrived)
    for line in logged:
        order = [part.split("->")[0] for part in line.strip().split(", ")]
        assert " ".join(order) in joined, (order, arrived)


def test_live_shuffle_never_reorders_deliveries_with_the_same_order_key(run_server, tmp_path: Path) -> None:
    """`order_key: data.group`: events of one group arrive in the order they were posted, while the
    groups still interleave in the seeded order (docs/verification.md#order-keys)."""
    manifest = write_project(tmp_path, {
        "faasemu.yaml": """\
            functions:
              rec:
                handler: recorder.py:record
                events: [order.*]
                concurrency: 1
                order_key: data.group
        """,
        "recorder.py": RECORDER,
    })
    server = run_server(manifest, "--shuffle", "all", "--seed", "7")
    ids = [f"e{n}" for n in range(12)]
    events = [{**cloudevent(i), "data": {"n": i, "group": "a" if n % 2 else "b"}} for n, i in enumerate(ids)]
    response = httpx.post(f"{server.url}/_faasemu/events", content=json.dumps(events),
                          headers={"content-type": "application/cloudevents-batch+json"}, timeout=30)
    assert response.status_code == 202, response.text
    assert wait_for(lambda: len(arrivals(tmp_path)) == len(ids)), server.output()
    arrived = arrivals(tmp_path)
    for group in ("a", "b"):
        posted = [i for n, i in enumerate(ids) if (n % 2 == 1) == (group == "a")]
        assert [i for i in arrived if i in posted] == posted, (group, arrived)
    assert arrived != ids, "the seed interleaves the two groups differently from the posting order"
