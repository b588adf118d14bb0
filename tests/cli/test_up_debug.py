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
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/_faasemu/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
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
