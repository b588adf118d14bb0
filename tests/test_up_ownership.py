"""One `faasemu up` owns a project's event log, and a wildcard bind hands out reachable URLs.

Issue 8: reliability 3 (two `up` in one project both delivered every event) and the security item
on `0.0.0.0` (URLs printed and given to handlers that no client can connect to).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
from conftest import Server, arrivals, free_port, run_cli, wait_for, write_project

HANDLERS = '''\
import json
import os


def record(event, context):
    if (event.get("detail") or {}).get("fail"):
        raise RuntimeError("asked to fail")
    with open("arrivals.txt", "a") as file:
        file.write(event["id"] + "\\n")


def urls(event, context):
    keys = ("FAASEMU_SINK_URL", "FAASEMU_EVENTS_URL")
    return {"statusCode": 200, "body": json.dumps({key: os.environ[key] for key in keys})}
'''


def project(root: Path) -> Path:
    return write_project(root, {
        "faasemu.yaml": """\
            functions:
              rec:
                handler: handlers.py:record
                events: [order.*]
                retries: 0
              urls:
                handler: handlers.py:urls
                http: {path: /urls}
        """,
        "handlers.py": HANDLERS,
        "events.jsonl": '{"id": "replayed-1", "type": "order.created", "data": {}}\n',
    })




def test_a_second_up_in_the_same_project_refuses_naming_the_first(run_server, tmp_path: Path) -> None:
    first = run_server(project(tmp_path))
    assert first.process is not None
    for port in (free_port(), first.port):  # another port, and the same one: the lock is checked first
        second = run_cli("up", "--port", str(port), cwd=tmp_path, timeout=60)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"pid {first.process.pid}" in second.stderr and first.url in second.stderr, second.stderr
        assert "cannot listen" not in second.stderr
    # The first one still owns the log and delivers each event once.
    response = httpx.post(f"{first.url}/_faasemu/events", json={"type": "order.created", "data": {}}, timeout=30)
    event_id = response.json()["ids"][0]
    assert wait_for(lambda: event_id in arrivals(tmp_path))
    assert arrivals(tmp_path) == [event_id]


def test_the_lock_of_a_killed_up_is_taken_over(tmp_path: Path) -> None:
    manifest = project(tmp_path)
    killed = Server(manifest).start()
    assert killed.process is not None
    killed.process.send_signal(signal.SIGKILL)
    killed.process.wait(timeout=30)
    with Server(manifest) as after:  # starts: the kernel dropped the dead process's lock
        response = httpx.post(f"{after.url}/_faasemu/events", json={"type": "order.created", "data": {}}, timeout=30)
        assert response.status_code == 202
        event_id = response.json()["ids"][0]
        assert wait_for(lambda: event_id in arrivals(tmp_path)), after.output()


def test_events_redrive_and_local_replay_still_work_while_up_runs(run_server, tmp_path: Path) -> None:
    server = run_server(project(tmp_path), "--retry-delay", "0.05")
    httpx.post(f"{server.url}/_faasemu/events", json={"type": "order.created", "data": {"fail": True}}, timeout=30)
    server.wait_for_output("dead letter")
    redriven = run_cli("events", "--redrive", "all", cwd=tmp_path)
    assert redriven.returncode == 0, redriven.stdout + redriven.stderr
    assert "by the running faasemu up" in redriven.stdout, redriven.stdout
    server.wait_for_output("attempt 2")
    replayed = run_cli("replay", "events.jsonl", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "replayed-1" in arrivals(tmp_path)


def test_binding_every_interface_prints_and_hands_out_loopback_urls(run_server, tmp_path: Path) -> None:
    server = run_server(project(tmp_path), "--host", "0.0.0.0")
    output = server.wait_for_output("without authentication")
    loopback = f"http://127.0.0.1:{server.port}"
    assert "0.0.0.0:" not in output, output  # no URL on the wildcard address
    assert f"{loopback}/urls" in output and f"{loopback}/_faasemu/events" in output, output
    assert "listening on 0.0.0.0" in output
    given = httpx.get(f"{server.url}/urls", timeout=30).json()
    assert given == {"FAASEMU_SINK_URL": f"{loopback}/_faasemu/sink", "FAASEMU_EVENTS_URL": f"{loopback}/_faasemu/events"}
    marker = json.loads((tmp_path / ".faasemu" / "up.json").read_text())
    assert marker["url"] == loopback and marker["pid"] == server.process.pid  # type: ignore[union-attr]
    assert os.stat(tmp_path / ".faasemu" / "up.lock").st_mode & 0o077 == 0
