"""DNS rebinding and cross-site requests: which requests a real `faasemu up` answers (faasemu/project/hosts.py)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import httpx
import pytest
from conftest import Server, run_cli, write_project

from faasemu.project.hosts import HostGuard

HANDLERS = '''\
import json
import os
import sqlite3
import urllib.request


def _save(kind, value):
    with sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=30) as db:
        db.execute("INSERT INTO calls (kind, value) VALUES (?, ?)", (kind, json.dumps(value)))


def hello(event, context):
    return {"statusCode": 200, "body": "hello"}


def echo(event, context):
    _save("invoke", event)
    return {"got": event}


def consume(event, context):
    _save("event", event["Records"][0]["messageId"])


def post_form_to_sink(event, context):
    # urllib's default for a POST with data: application/x-www-form-urlencoded, and no Origin
    urllib.request.urlopen(os.environ["FAASEMU_SINK_URL"] + "/webhook", data=b"a=1&b=2", timeout=5).close()
    return {"statusCode": 200, "body": "posted"}
'''

SCHEMA = "CREATE TABLE calls (n INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT, value TEXT);\n"

MANIFEST = """\
allow_hosts: [from-manifest.test]
state:
  schema: schema.sql
functions:
  hello:
    handler: handlers.py:hello
    http: {path: /hello, methods: [GET, POST]}
  echo:
    handler: handlers.py:echo
  consumer:
    handler: handlers.py:consume
    events: [guard.*]
    event_source: sqs            # any data, binary-mode text included; the event id is the messageId
  poster:
    handler: handlers.py:post_form_to_sink
    http: {path: /post, methods: [GET]}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("hosts")
    manifest = write_project(root, {"faasemu.yaml": MANIFEST, "handlers.py": HANDLERS, "schema.sql": SCHEMA})
    server = Server(manifest, "--allow-host", "tunnel.example.test", "--allow-host", ".dev.example.test").start()
    try:
        yield server
    finally:
        server.stop()


def calls(server: Server, kind: str) -> list[Any]:
    db = sqlite3.connect(server.manifest.parent / ".faasemu" / "state.db", timeout=10)
    try:
        return [json.loads(v) for (v,) in db.execute("SELECT value FROM calls WHERE kind = ? ORDER BY n", (kind,))]
    finally:
        db.close()


def stored_ids(server: Server) -> list[str]:
    events = httpx.get(f"{server.url}/_faasemu/events", params={"limit": 100000}, timeout=10).json()["events"]
    return [e["id"] for e in events]


# --- the Host check: every request ----------------------------------------------------------------

@pytest.mark.parametrize("path", ["/hello", "/_faasemu/health", "/_faasemu/events",
                                  "/2015-03-31/functions/echo/invocations"])
def test_a_foreign_host_is_refused_everywhere_with_a_message_naming_the_flag(server: Server, path: str) -> None:
    method = "POST" if path.endswith("invocations") else "GET"
    response = httpx.request(method, server.url + path, headers={"host": f"evil.example.com:{server.port}"},
                             content=b"{}", timeout=10)
    assert response.status_code == 403, response.text
    message = response.json()["message"]
    assert "Host 'evil.example.com:" in message
    assert "--allow-host evil.example.com" in message and "allow_hosts:" in message
    assert "DNS rebinding" in message
    if path.startswith("/2015-03-31/"):
        assert response.headers["x-amzn-errortype"] == "AccessDeniedException"


def test_a_refused_host_is_logged_once(server: Server) -> None:
    for _ in range(3):
        httpx.get(server.url + "/hello", headers={"host": "once.example.com"}, timeout=10)
    out = server.wait_for_output("Host 'once.example.com' is not served")
    assert out.count("Host 'once.example.com' is not served") == 1


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "app.localhost", "LOCALHOST", "192.0.2.7",
                                  "tunnel.example.test", "a.dev.example.test", "dev.example.test",
                                  "from-manifest.test"])
def test_local_names_ip_addresses_and_allowed_hosts_are_answered(server: Server, host: str) -> None:
    response = httpx.get(server.url + "/hello", headers={"host": f"{host}:{server.port}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.text == "hello"


def test_a_subdomain_of_an_exact_allowed_name_is_not_answered(server: Server) -> None:
    response = httpx.get(server.url + "/hello", headers={"host": "x.tunnel.example.test"}, timeout=10)
    assert response.status_code == 403


def test_without_the_flag_a_tunnel_name_is_refused_and_with_it_answered(tmp_path: Path) -> None:
    manifest = write_project(tmp_path, {"faasemu.yaml": "functions:\n  hello:\n    handler: handlers.py:hello\n"
                                                        "    http: {path: /hello}\n",
                                        "handlers.py": HANDLERS})
    with Server(manifest) as plain:
        assert httpx.get(plain.url + "/hello", headers={"host": "abc.ngrok.test"}, timeout=10).status_code == 403
    with Server(manifest, "--allow-host", "abc.ngrok.test") as allowed:
        assert httpx.get(allowed.url + "/hello", headers={"host": "abc.ngrok.test"}, timeout=10).text == "hello"


# --- cross-site POSTs to faasemu's own endpoints --------------------------------------------------

# A browser's POST without a Content-Type (a Blob body) still carries Sec-Fetch-* (and an Origin).
@pytest.mark.parametrize("headers", [{"content-type": "text/plain"}, {"sec-fetch-site": "cross-site"},
                                     {"content-type": "application/x-www-form-urlencoded"},
                                     {"content-type": "multipart/form-data; boundary=x"}],
                         ids=["text-plain", "no-content-type", "form", "multipart"])
def test_a_simple_cross_site_post_to_the_ingress_is_refused_and_nothing_is_stored(
    server: Server, headers: dict[str, str]
) -> None:
    event_id = f"simple-{time.time_ns()}"
    body = json.dumps({"type": "guard.simple", "id": event_id, "data": {}}).encode()
    response = httpx.post(f"{server.url}/_faasemu/events", content=body, headers=headers, timeout=10)
    assert response.status_code == 415, response.text
    assert "Content-Type: application/json" in response.json()["message"]
    assert event_id not in stored_ids(server)


def test_a_script_posting_json_without_a_content_type_is_accepted(server: Server) -> None:
    """`requests.post(url, data=json.dumps(event))` sends no Content-Type, and neither Origin nor
    Sec-Fetch-*: not a browser, so the body is read as JSON, as before the cross-site guard."""
    event_id = f"script-{time.time_ns()}"
    body = json.dumps({"type": "guard.script", "id": event_id, "data": {}}).encode()
    response = httpx.post(f"{server.url}/_faasemu/events", content=body, timeout=10)
    assert response.status_code == 202, response.text
    assert event_id in stored_ids(server)


def test_a_foreign_origin_is_refused_even_with_json_and_nothing_is_stored(server: Server) -> None:
    event_id = f"origin-{time.time_ns()}"
    response = httpx.post(f"{server.url}/_faasemu/events", json={"type": "guard.origin", "id": event_id},
                          headers={"origin": "https://evil.example.com"}, timeout=10)
    assert response.status_code == 403, response.text
    assert "Origin 'https://evil.example.com'" in response.json()["message"]
    for origin in ("null", "http://192.0.2.7"):  # a sandboxed frame; a page served from some IP address
        answer = httpx.post(f"{server.url}/_faasemu/events", json={"type": "guard.origin", "id": event_id},
                            headers={"origin": origin}, timeout=10)
        assert answer.status_code == 403, origin
    assert event_id not in stored_ids(server)


def test_json_cloudevents_and_local_origins_are_accepted(server: Server) -> None:
    ids = [f"ok-{i}-{time.time_ns()}" for i in range(4)]
    requests = [
        ({"content-type": "application/json"}, {"type": "guard.ok", "id": ids[0]}),
        ({"content-type": "application/cloudevents+json; charset=utf-8"},
         {"specversion": "1.0", "type": "guard.ok", "id": ids[1], "source": "t"}),
        ({"content-type": "application/json", "origin": f"http://localhost:{server.port}"},
         {"type": "guard.ok", "id": ids[2]}),
    ]
    for headers, event in requests:
        response = httpx.post(f"{server.url}/_faasemu/events", content=json.dumps(event), headers=headers, timeout=10)
        assert response.status_code == 202, response.text
    # binary mode: the ce-* headers cannot be sent cross-site without a preflight, so any data content type
    binary = {"ce-specversion": "1.0", "ce-id": ids[3], "ce-source": "t", "ce-type": "guard.ok",
              "content-type": "text/plain"}
    response = httpx.post(f"{server.url}/_faasemu/events", content=b"plain words", headers=binary, timeout=10)
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 30
    while set(ids) - set(calls(server, "event")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(ids) <= set(calls(server, "event"))


def test_wake_refuses_a_form_post(server: Server) -> None:
    response = httpx.post(f"{server.url}/_faasemu/bus/wake", content=b"",
                          headers={"content-type": "application/x-www-form-urlencoded"}, timeout=10)
    assert response.status_code == 415
    assert httpx.post(f"{server.url}/_faasemu/bus/wake", json={}, timeout=10).status_code == 200


def test_handlers_post_to_the_sink_with_any_content_type_but_foreign_pages_cannot(server: Server) -> None:
    assert httpx.get(server.url + "/post", timeout=30).text == "posted"
    recorded = httpx.get(f"{server.url}/_faasemu/sink", timeout=10).json()["calls"]
    assert [c["name"] for c in recorded].count("webhook") >= 1
    before = len(recorded)
    response = httpx.post(f"{server.url}/_faasemu/sink/webhook", content=b"a=1",
                          headers={"content-type": "application/x-www-form-urlencoded",
                                   "origin": "https://evil.example.com"}, timeout=10)
    assert response.status_code == 403
    assert len(httpx.get(f"{server.url}/_faasemu/sink", timeout=10).json()["calls"]) == before


# --- the Lambda Invoke API ------------------------------------------------------------------------

def test_boto3_invoke_still_works(server: Server) -> None:
    client = boto3.client("lambda", endpoint_url=server.url, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    response = client.invoke(FunctionName="echo", Payload=b'{"from": "boto3"}')
    assert json.loads(response["Payload"].read()) == {"got": {"from": "boto3"}}


def test_a_browser_style_post_to_the_invoke_api_is_refused_and_the_handler_does_not_run(server: Server) -> None:
    marker = f"text-{time.time_ns()}"
    url = f"{server.url}/2015-03-31/functions/echo/invocations"
    for headers in ({"content-type": "text/plain"}, {"sec-fetch-mode": "no-cors"},
                    {"content-type": "application/x-www-form-urlencoded"}):
        response = httpx.post(url, content=json.dumps({"marker": marker}), headers=headers, timeout=10)
        assert response.status_code == 415, response.text
        assert response.headers["x-amzn-errortype"] == "UnsupportedMediaTypeException"
    foreign = httpx.post(url, json={"marker": marker}, headers={"origin": "https://evil.example.com"}, timeout=10)
    assert foreign.status_code == 403
    # curl with a JSON content type is fine
    ok = httpx.post(url, json={"marker": marker + "-json"}, timeout=10)
    assert ok.status_code == 200, ok.text
    seen = [c.get("marker") for c in calls(server, "invoke")]
    assert marker not in seen and marker + "-json" in seen


def test_a_signed_request_for_a_foreign_host_is_refused_too(server: Server) -> None:
    """The preflight-forcing headers let a request past the content-type rule, never past the Host check."""
    response = httpx.post(f"{server.url}/2015-03-31/functions/echo/invocations", content=b"{}",
                          headers={"host": "rebound.example.com", "authorization": "AWS4-HMAC-SHA256 x"}, timeout=10)
    assert response.status_code == 403
    assert response.headers["x-amzn-errortype"] == "AccessDeniedException"


def test_aws_cli_style_unsigned_invoke_is_accepted(server: Server) -> None:
    """`aws --no-sign-request lambda invoke`: no Authorization, but botocore's amz-sdk-* headers."""
    script = textwrap.dedent(f"""
        import boto3, json
        from botocore import UNSIGNED
        from botocore.config import Config
        client = boto3.client("lambda", endpoint_url="{server.url}", region_name="us-east-1",
                              config=Config(signature_version=UNSIGNED))
        print(json.loads(client.invoke(FunctionName="echo", Payload=b'{{"unsigned": 1}}')["Payload"].read()))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "{'got': {'unsigned': 1}}" in done.stdout


def test_botocore_error_for_unsupported_media_type_names_the_fix(server: Server) -> None:
    client = boto3.client("lambda", endpoint_url=server.url, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.invoke(FunctionName="does-not-exist", Payload=b"{}")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"  # the guard let it through


# --- the pure guard -------------------------------------------------------------------------------

def test_guard_bound_address_and_wildcards() -> None:
    lan = HostGuard("192.168.1.20", ["box.lan"])
    assert lan.allows_host(b"192.168.1.20:8080") and lan.allows_host(b"box.lan")
    assert not lan.allows_host(b"other.lan")
    assert lan.is_local_origin("http://192.168.1.20:8080") and lan.is_local_origin("http://box.lan")
    assert not lan.is_local_origin("http://192.168.1.21")
    anything = HostGuard("127.0.0.1", ["all"])
    assert anything.allows_host(b"whatever.example")
    assert not anything.is_local_origin("https://whatever.example")  # `all` is about Host only
    wildcard = HostGuard("0.0.0.0")
    assert "0.0.0.0" not in wildcard.names  # an Origin of 0.0.0.0 is no page of this machine's


def test_guard_decides_posts_by_content_type_origin_and_preflight_headers() -> None:
    guard = HostGuard("127.0.0.1")

    def problem(method: str, path: str, **headers: str) -> int | None:
        found = guard.cross_site_problem(method, path, [(k.replace("_", "-").encode(), v.encode())
                                                        for k, v in headers.items()])
        return None if found is None else found[0]

    assert problem("POST", "/_faasemu/events", content_type="text/plain") == 415
    assert problem("POST", "/_faasemu/events", content_type="Application/JSON; charset=utf-8") is None
    assert problem("POST", "/_faasemu/events", content_type="application/cloudevents-batch+json") is None
    assert problem("POST", "/_faasemu/events", ce_specversion="1.0", content_type="text/plain") is None
    assert problem("POST", "/2015-03-31/functions/f/invocations", authorization="AWS4-HMAC-SHA256 ...") is None
    assert problem("POST", "/2015-03-31/functions/f/invocations", amz_sdk_invocation_id="1") is None
    assert problem("POST", "/_faasemu/sink/email", content_type="text/plain") is None
    assert problem("POST", "/_faasemu/sink/email", origin="https://evil.example") == 403
    assert problem("GET", "/_faasemu/events") is None
    assert problem("GET", "/_faasemu/events", origin="https://evil.example") == 403
    assert problem("POST", "/_faasemu/events", content_type="application/json", origin="http://app.localhost:3000") \
        is None


def test_a_malformed_allow_host_is_a_usage_error(tmp_path: Path) -> None:
    manifest = write_project(tmp_path, {"faasemu.yaml": "functions:\n  hello:\n    handler: handlers.py:hello\n",
                                        "handlers.py": HANDLERS})
    done = run_cli("up", "-f", str(manifest), "--allow-host", "http://tunnel.example.test/", cwd=tmp_path)
    assert done.returncode == 2
    assert "--allow-host: 'http://tunnel.example.test/' is not a host name" in done.stderr
