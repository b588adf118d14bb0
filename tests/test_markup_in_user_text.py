"""Text from users is printed as written, never parsed as rich console markup (issue 8, reliability 1).

A handler raising `ValueError("no route for [/orders]")` once made rich raise `MarkupError` on every
path that printed the message: the route answered a bare 500, the Lambda Invoke API a 500, `invoke`
a traceback, `replay` and `faasemu events` crashed, and the bus's delivery loop of that function
died so later events were never attempted. `[gcf]` in the missing-SDK hint, `[id]` in a Vercel file
name and `[dev]` in a project name were eaten. Each test drives one path through real processes.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from conftest import Server, run_cli, write_project

MESSAGE = "no route for [/orders]"

HANDLERS = '''\
import os
import sqlite3


def picky(event, context):
    """Raises a message holding markup-like brackets when asked to; records the event otherwise."""
    data = event.get("detail") if isinstance(event.get("detail"), dict) else event
    if event.get("body") is not None or data.get("fail"):
        raise ValueError("no route for [/orders]")
    with sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=30) as db:
        db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT)")
        db.execute("INSERT INTO seen VALUES (?)", (event.get("id"),))
    return {"ok": True}
'''

VERCEL = '''\
from http.server import BaseHTTPRequestHandler


class handler(BaseHTTPRequestHandler):
    def do_GET(self):
        raise ValueError("no route for [/orders]")
'''

GCF = '''\
import functions_framework


@functions_framework.http
def hello(request):
    return "hello"
'''

MANIFEST = """\
    name: shop
    functions:
      picky:
        handler: handlers.py:picky
        http: {path: /orders, methods: [POST]}
        events: [order.*]
        retries: 0
      order:
        handler: "api/orders/[id].py"
        runtime: vercel
"""

WITH_GCF = """\
      needs-sdk:
        handler: gcf_main.py:hello
        runtime: gcf
        http: {path: /hello}
"""

HAS_FLASK = importlib.util.find_spec("flask") is not None


def project(root: Path, with_gcf: bool = False, name: str = "shop") -> Path:
    return write_project(root, {
        "faasemu.yaml": MANIFEST.replace("name: shop", f"name: {name}") + (WITH_GCF if with_gcf else ""),
        "handlers.py": HANDLERS,
        "api/orders/[id].py": VERCEL,
        "gcf_main.py": GCF,
    })


def seen(root: Path) -> list[str]:
    path = root / ".faasemu" / "state.db"
    try:
        with sqlite3.connect(path, timeout=30) as db:
            return [row[0] for row in db.execute("SELECT id FROM seen")]
    except sqlite3.OperationalError:  # the table is created by the first successful delivery
        return []


def no_markup_crash(output: str) -> None:
    assert "MarkupError" not in output and "Traceback (most recent call last)" not in output.split("ValueError")[0], \
        output


@pytest.fixture
def server(run_server, tmp_path: Path) -> Server:
    return run_server(project(tmp_path), "--retry-delay", "0.05")


def test_startup_table_prints_the_project_name_as_written(run_server, tmp_path: Path) -> None:
    server = run_server(project(tmp_path, name='"shop [dev]"'))
    assert "· shop [dev] ·" in server.output(), server.output()


def test_http_route_answers_the_runtimes_error_and_logs_the_message(server: Server) -> None:
    response = httpx.post(f"{server.url}/orders", json={"sku": "a1"}, timeout=30)
    # The runtime's own error answer (JSON), not uvicorn's bare text/plain 500 after a crash in faasemu.
    assert response.status_code in (500, 502), response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    output = server.wait_for_output(f"ValueError: {MESSAGE}")
    no_markup_crash(output)


def test_lambda_invoke_api_answers_the_function_error(server: Server) -> None:
    response = httpx.post(f"{server.url}/2015-03-31/functions/picky/invocations", json={"fail": True}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["x-amz-function-error"] == "Unhandled"
    assert response.json()["errorMessage"] == MESSAGE
    server.wait_for_output(f"ValueError: {MESSAGE}")


def test_a_vercel_file_with_brackets_is_named_as_written(server: Server) -> None:
    response = httpx.get(f"{server.url}/api/orders/7", timeout=30)
    assert response.status_code == 500
    assert response.headers.get("x-vercel-error") == "FUNCTION_INVOCATION_FAILED"
    output = server.wait_for_output("api/orders/[id].py:")
    assert f"ValueError: {MESSAGE}" in output, output


def test_the_delivery_loop_survives_and_events_lists_the_error(server: Server, tmp_path: Path) -> None:
    first = httpx.post(f"{server.url}/_faasemu/events", json={"type": "order.created", "data": {"fail": True}},
                       timeout=30)
    assert first.status_code == 202, first.text
    bad_id = first.json()["ids"][0]
    server.wait_for_output("dead letter")
    # Later events to the same function are still delivered: the loop did not die on the message.
    second = httpx.post(f"{server.url}/_faasemu/events", json={"type": "order.created", "data": {"fail": False}},
                        timeout=30)
    good_id = second.json()["ids"][0]
    deadline = time.monotonic() + 30
    while good_id not in seen(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen(tmp_path) == [good_id], server.output()

    for args in ([], ["--dead"]):
        listed = run_cli("events", *args, cwd=tmp_path)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert bad_id in listed.stdout and f"ValueError: {MESSAGE}" in listed.stdout, listed.stdout
    as_json = json.loads(run_cli("events", "--json", cwd=tmp_path).stdout)
    errors = [d["last_error"] for e in as_json for d in e["deliveries"] if d.get("last_error")]
    assert errors == [f"ValueError: {MESSAGE}"]


def test_invoke_prints_the_error_without_a_traceback_of_its_own(tmp_path: Path) -> None:
    project(tmp_path)
    result = run_cli("invoke", "picky", "--data", '{"fail": true}', cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert json.loads(result.stdout)["errorMessage"] == MESSAGE
    assert f"ValueError: {MESSAGE}" in result.stderr, result.stderr
    assert "MarkupError" not in result.stderr and "rich" not in result.stderr, result.stderr


def test_replay_prints_its_table_with_the_error(tmp_path: Path) -> None:
    project(tmp_path)
    (tmp_path / "events.jsonl").write_text('{"type": "order.created", "data": {"fail": true}}\n'
                                           '{"type": "order.created", "data": {}}\n')
    result = run_cli("replay", "events.jsonl", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr  # a dead-lettered delivery
    assert MESSAGE in result.stdout and "1 ok, 1 dead-lettered" in result.stdout, result.stdout + result.stderr
    assert "MarkupError" not in result.stderr, result.stderr


def test_chaos_report_prints_a_load_error_as_written(tmp_path: Path) -> None:
    write_project(tmp_path, {
        "faasemu.yaml": """\
            functions:
              broken:
                handler: broken.py:main
                events: [order.*]
        """,
        "broken.py": 'def main(event, context):\n    return None\n\n\nraise ImportError("cannot import [/orders] from [gcf]")\n',
        "events.jsonl": '{"type": "order.created", "data": {"n": 1}}\n',
    })
    result = run_cli("chaos", "events.jsonl", "--runs", "0", "--seed", "1", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert "MarkupError" not in output, output
    assert "cannot import [/orders] from [gcf]" in output, output


@pytest.mark.skipif(HAS_FLASK, reason="needs an environment without the gcf extra (flask, functions-framework)")
def test_the_missing_sdk_hint_keeps_its_brackets(run_server, tmp_path: Path) -> None:
    server = run_server(project(tmp_path, with_gcf=True))
    response = httpx.get(f"{server.url}/hello", timeout=30)
    assert response.status_code == 503, response.text
    assert "pip install 'faasemu[gcf]'" in response.text
    server.wait_for_output("pip install 'faasemu[gcf]'")
