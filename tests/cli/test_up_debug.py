"""`faasemu up --debug FN`: FN gets one worker attached to the terminal, so a `breakpoint()` stops in
pdb there and its timeout does not run while it is paused; every other function serves as usual
meanwhile (docs/runtime-contract.md#debugging). A real `faasemu up`; the "terminal" is a pipe."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from conftest import free_port, run_cli, write_project

APP = '''\
def paused(event, context):
    total = 41
    breakpoint()
    return {"statusCode": 200, "body": str(total + 1)}


def other(event, context):
    return {"statusCode": 200, "body": "still serving"}
'''
MANIFEST = """\
    functions:
      calc:
        handler: app.py:paused
        http: {path: /calc, methods: [GET]}
        timeout: 1
      other:
        handler: app.py:other
        http: {path: /other, methods: [GET]}
"""


def wait_until_serving(url: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_faasemu/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)


def test_up_debug_pauses_one_function_in_pdb_while_the_others_serve(tmp_path: Path) -> None:
    manifest = write_project(tmp_path, {"faasemu.yaml": MANIFEST, "app.py": APP})
    port = free_port()
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "faasemu", "up", "-f", str(manifest), "--port", str(port), "--debug", "calc"],
            cwd=tmp_path, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})
    assert process.stdin is not None
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url)
        with httpx.Client(timeout=60) as client:
            answer: dict[str, httpx.Response] = {}
            paused = threading.Thread(target=lambda: answer.setdefault("calc", client.get(f"{url}/calc")))
            paused.start()
            deadline = time.monotonic() + 15
            while "(Pdb)" not in log.read_text(errors="replace") and time.monotonic() < deadline:
                time.sleep(0.05)
            assert client.get(f"{url}/other").text == "still serving"  # served while calc is paused
            time.sleep(1.5)  # longer than calc's timeout
            process.stdin.write(b"p total * 2\nc\n")
            process.stdin.flush()
            paused.join(30)
        assert answer["calc"].status_code == 200 and answer["calc"].text == "42", answer
        text = log.read_text(errors="replace")
        assert "debugging calc" in text and "\n82\n" in text.replace("(Pdb) ", "\n"), text
        assert "timed out" not in text, text
    finally:
        process.stdin.close()
        process.terminate()
        process.wait(10)


def test_up_debug_names_the_functions_when_it_does_not_know_the_one_given(tmp_path: Path) -> None:
    write_project(tmp_path, {"faasemu.yaml": MANIFEST, "app.py": APP})
    result = run_cli("up", "--debug", "nope", "--port", "0", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--debug nope" in result.stderr and "calc, other" in result.stderr, result.stderr


class DapClient:
    """The editor's side of the Debug Adapter Protocol (what VS Code speaks to debugpy), just enough to attach,
    set a breakpoint, read a value at it and go on: messages are JSON with a Content-Length header."""

    def __init__(self, port: int) -> None:
        import socket

        deadline = time.monotonic() + 30
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.buffer = b""
        self.seq = 0
        self.seen: list[dict] = []

    def send(self, command: str, **arguments: object) -> int:
        import json

        self.seq += 1
        body = json.dumps({"seq": self.seq, "type": "request", "command": command, "arguments": arguments}).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return self.seq

    def _next(self) -> dict:
        import json

        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(65536)
        header, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = int(header.split(b"Content-Length:")[1].strip().split()[0])
        while len(rest) < length:
            rest += self.sock.recv(65536)
        self.buffer = rest[length:]
        return json.loads(rest[:length])

    def wait(self, kind: str, name: str, request: int | None = None) -> dict:
        """The next event `name` (kind event) or the response to `request` (kind response)."""
        for found in self.seen:
            if found.get("type") == kind and (found.get("event") == name or found.get("command") == name) and (
                    request is None or found.get("request_seq") == request):
                self.seen.remove(found)
                return found
        while True:
            message = self._next()
            if message.get("type") == kind and (message.get("event") == name or message.get("command") == name) and (
                    request is None or message.get("request_seq") == request):
                return message
            self.seen.append(message)

    def call(self, command: str, **arguments: object) -> dict:
        response = self.wait("response", command, self.send(command, **arguments))
        assert response["success"], response
        return response["body"] if "body" in response else {}


def test_an_editor_attaches_with_debugpy_and_stops_at_its_breakpoint(tmp_path: Path) -> None:
    """`up --debug calc --debugpy PORT`: calc's worker waits for a debugger before it imports the module; an
    editor (a DAP client here) attaches, sets a breakpoint, reads a local at it and continues, and the
    request is answered; no timeout ran meanwhile."""
    import pytest

    pytest.importorskip("debugpy", reason="needs faasemu[debug]")
    app = ('def paused(event, context):\n    total = 41\n    return {"statusCode": 200, "body": str(total + 1)}\n\n\n'
           'def other(event, context):\n    return {"statusCode": 200, "body": "still serving"}\n')
    manifest = write_project(tmp_path, {"faasemu.yaml": MANIFEST, "app.py": app})
    port, debug_port = free_port(), free_port()
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "faasemu", "up", "-f", str(manifest), "--port", str(port), "--debug", "calc",
             "--debugpy", str(debug_port)],
            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url)
        with httpx.Client(timeout=120) as client:
            answer: dict[str, httpx.Response] = {}
            waiting = threading.Thread(target=lambda: answer.setdefault("calc", client.get(f"{url}/calc")))
            waiting.start()
            editor = DapClient(debug_port)
            editor.call("initialize", adapterID="python", clientID="faasemu-test", linesStartAt1=True,
                        columnsStartAt1=True, pathFormat="path")
            attach = editor.send("attach", justMyCode=True)
            editor.wait("event", "initialized")
            editor.call("setBreakpoints", source={"path": str(tmp_path / "app.py")}, breakpoints=[{"line": 3}])
            editor.call("configurationDone")
            editor.wait("response", "attach", attach)
            stopped = editor.wait("event", "stopped")
            time.sleep(1.5)  # stopped for longer than calc's timeout
            assert "calc" not in answer  # the request waits while the handler is stopped
            [frame, *_] = editor.call("stackTrace", threadId=stopped["body"]["threadId"])["stackFrames"]
            assert frame["line"] == 3 and frame["source"]["path"].endswith("app.py"), frame
            assert editor.call("evaluate", expression="total * 2", frameId=frame["id"])["result"] == "82"
            editor.call("continue", threadId=stopped["body"]["threadId"])
            waiting.join(60)
            editor.sock.close()
        assert answer["calc"].status_code == 200 and answer["calc"].text == "42", answer
        text = log.read_text(errors="replace")
        assert f"waiting for a debugger on 127.0.0.1:{debug_port}" in text and "timed out" not in text, text
    finally:
        process.terminate()
        process.wait(10)
