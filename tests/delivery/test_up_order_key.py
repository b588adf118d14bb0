"""`up` delivers a function's events with one `order_key` value one event at a time, in order, even
with `concurrency` > 1 and retries, as an SQS FIFO message group does; other keys run beside them
(docs/delivery.md#ordering). A real `faasemu up` process and real workers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from conftest import write_project

HANDLER = '''\
import json, os, time


def handler(event, context):
    """Log start and end of each attempt; the first attempt of an event with data.fail fails."""
    log = os.path.join(os.environ["FAASEMU_STATE"], "log.jsonl")
    data = event["detail"]  # an EventBridge event: the CloudEvent's data
    def write(what):
        with open(log, "a") as file:
            file.write(json.dumps({"id": event["id"], "key": data["account"], "what": what}) + "\\n")
    write("start")
    time.sleep(0.15)
    marker = os.path.join(os.environ["FAASEMU_STATE"], event["id"] + ".failed")
    if data.get("fail") and not os.path.exists(marker):
        open(marker, "w").close()
        write("fail")
        raise RuntimeError("first attempt fails")
    write("end")
'''
MANIFEST = """\
    state:
      dir: state
    functions:
      ledger:
        handler: app.py:handler
        events: [account.*]
        order_key: data.account
        concurrency: 4
        retries: 2
"""


def test_up_keeps_each_key_in_order_through_retries_while_other_keys_run_beside(run_server, tmp_path: Path) -> None:
    manifest = write_project(tmp_path, {"faasemu.yaml": MANIFEST, "app.py": HANDLER})
    (tmp_path / "state").mkdir()
    server = run_server(manifest, "--retry-delay", "0.1")
    events = [{"type": "account.changed", "id": "a1", "data": {"account": "A", "fail": True}},
              {"type": "account.changed", "id": "a2", "data": {"account": "A"}},
              {"type": "account.changed", "id": "b1", "data": {"account": "B"}},
              {"type": "account.changed", "id": "a3", "data": {"account": "A"}}]
    response = httpx.post(f"{server.url}/_faasemu/events", content=json.dumps(events).encode(),
                          headers={"content-type": "application/cloudevents-batch+json"})
    assert response.status_code == 202, response.text
    log_path = tmp_path / "state" / "log.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []
        if sum(1 for line in lines if line["what"] == "end") == 4:
            break
        time.sleep(0.05)
    key_a = [(line["id"], line["what"]) for line in lines if line["key"] == "A"]
    assert key_a == [("a1", "start"), ("a1", "fail"), ("a1", "start"), ("a1", "end"),
                     ("a2", "start"), ("a2", "end"), ("a3", "start"), ("a3", "end")], lines
    # key B did not wait for key A: b1 started while a1's first attempt was still running
    order = [(line["id"], line["what"]) for line in lines]
    assert order.index(("b1", "start")) < order.index(("a1", "fail")), lines
