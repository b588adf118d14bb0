"""`faasemu chaos --cluster` (faasemu/verify/cluster.py) against a real local Ray cluster this module
starts (`ray start --head --block` in a session of its own, ended by pid at the end): the same seed
gives the same exit code, byte-identical JSON and JUnit reports and the same console report (less
its timings) as a local run. The project has a cascade, so the traced baseline's discovered
deliveries must reach every actor."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import run_cli, write_project

pytestmark = pytest.mark.cluster

PROJECT = {
    "faasemu.yaml": """\
        name: clustered
        state:
          schema: schema.sql
        functions:
          place-order:
            handler: produce.py:place
            events: [order.placed]
          invoice-naive:
            handler: invoice.py:naive
            events: [invoice.requested]
          invoice-dedup:
            handler: invoice.py:dedup
            events: [invoice.requested]
    """,
    "produce.py": """\
        import json, os, urllib.request


        def place(event, context):
            body = {"id": "invoice-" + event["id"], "type": "invoice.requested", "source": "orders",
                    "data": {"order": event["detail"]["order"]}}
            request = urllib.request.Request(os.environ["FAASEMU_EVENTS_URL"], data=json.dumps(body).encode(),
                                             headers={"content-type": "application/cloudevents+json"}, method="POST")
            urllib.request.urlopen(request, timeout=10).read()
    """,
    "invoice.py": """\
        import os, sqlite3


        def _insert(sql, values):
            db = sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=10)
            with db:
                db.execute(sql, values)
            db.close()


        def naive(event, context):
            _insert("INSERT INTO naive (order_id) VALUES (?)", (event["detail"]["order"],))


        def dedup(event, context):
            _insert("INSERT OR IGNORE INTO dedup (event_id, order_id) VALUES (?, ?)",
                    (event["id"], event["detail"]["order"]))
    """,
    "schema.sql": """\
        CREATE TABLE naive (order_id TEXT NOT NULL);
        CREATE TABLE dedup (event_id TEXT PRIMARY KEY, order_id TEXT NOT NULL);
    """,
    "events.jsonl": """\
        {"id": "order-1", "type": "order.placed", "source": "shop", "data": {"order": "o-1"}}
        {"id": "order-2", "type": "order.placed", "source": "shop", "data": {"order": "o-2"}}
    """,
}
TIMINGS = re.compile(r"\d+:\d\d:\d\d|in \d+\.\d s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # an ephemeral port: outside Ray's worker ports (10002-19999)
        return int(sock.getsockname()[1])


def session_pids(sid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid:
                found.append(int(name))
    return found


@pytest.fixture(scope="module")
def ray_head():
    pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")
    temp = tempfile.mkdtemp(prefix="fr-", dir="/tmp")  # Ray's socket paths must stay short
    gcs, client = free_port(), free_port()
    # token auth off: `auto` would write ~/.ray/auth_token, which the next head then demands of Ray Client
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    ray = str(Path(sys.executable).with_name("ray"))
    head = subprocess.Popen([ray, "start", "--head", "--block", f"--port={gcs}", f"--ray-client-server-port={client}",
                             "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp}",
                             "--disable-usage-stats"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", client), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None and time.monotonic() < deadline, "ray start --head did not come up"
                time.sleep(0.2)
        yield f"ray://127.0.0.1:{client}", env
    finally:
        # the head's session only: processes this test started. SIGKILL at once: Ray's daemons take ~10 s to
        # end on SIGTERM, and nothing of theirs outlives the test but files under `temp`, removed below
        for pid in session_pids(head.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        head.wait(timeout=10)
        deadline = time.monotonic() + 10
        while session_pids(head.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(temp, ignore_errors=True)


def campaign(root: Path, name: str, *extra: str, env: dict[str, str] | None = None):
    result = run_cli("chaos", "events.jsonl", "--seed", "5", "--runs", "2", "--json", f"{name}.json",
                     "--junit", f"{name}.xml", *extra, cwd=root, timeout=240, env=env)
    assert (root / f"{name}.json").exists(), f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result, (root / f"{name}.json").read_bytes(), (root / f"{name}.xml").read_bytes()


def test_a_campaign_on_the_cluster_reports_what_a_local_run_reports(ray_head, tmp_path: Path) -> None:
    address, env = ray_head
    write_project(tmp_path, PROJECT)
    local, local_json, local_xml = campaign(tmp_path, "local", env=env)
    remote, remote_json, remote_xml = campaign(tmp_path, "remote", "--cluster", address, env=env)
    assert local.returncode == remote.returncode == 1, local.stdout + local.stderr + remote.stdout + remote.stderr
    assert remote_json == local_json.replace(b"local.json", b"remote.json")
    assert remote_xml == local_xml.replace(b"local.json", b"remote.json")
    assert TIMINGS.sub("T", remote.stdout.replace("remote.", "local.")) == TIMINGS.sub("T", local.stdout)
    assert f"cluster {address} · 2 lanes on 1 node" in remote.stderr
    assert "invoice-naive" in remote.stdout and '"downstream_deliveries": 4' in remote_json.decode()
    # and `auto` joins the cluster of this machine (the head above)
    auto, auto_json, _ = campaign(tmp_path, "auto", "--cluster", "auto", env=env)
    assert auto.returncode == 1 and auto_json == local_json.replace(b"local.json", b"auto.json"), auto.stderr
    assert "cluster auto (" in auto.stderr


def test_a_bad_address_says_what_is_accepted(tmp_path: Path) -> None:
    write_project(tmp_path, PROJECT)
    result = run_cli("chaos", "events.jsonl", "--cluster", "http://example:1", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--cluster http://example:1: not a Ray cluster address; accepted: ray://HOST:PORT" in result.stderr


def test_without_ray_the_error_says_what_to_install(tmp_path: Path) -> None:
    write_project(tmp_path, {**PROJECT, "shadow/ray/__init__.py": "raise ImportError('no ray here')\n"})
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "shadow")}
    result = run_cli("chaos", "events.jsonl", "--cluster", "auto", cwd=tmp_path, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "--cluster auto needs Ray, which is not installed: pip install 'faasemu[cluster]'" in result.stderr
