"""`breakpoint()` in a handler run by `faasemu invoke` stops in pdb on the terminal (stdin and stderr),
and the function's timeout does not kill it while it is paused (docs/runtime-contract.md#debugging).
A real `faasemu invoke` process; the "terminal" is a pipe the test types into after a pause longer
than the timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import write_project

HANDLER = '''\
def handler(event, context):
    x = event["x"]
    print("before the breakpoint")
    breakpoint()
    return {"y": x + 1}
'''


def test_breakpoint_in_invoke_gives_pdb_and_no_timeout_while_paused(tmp_path: Path) -> None:
    write_project(tmp_path, {"faasemu.yaml": """\
        functions:
          calc:
            handler: app.py:handler
            timeout: 1
    """, "app.py": HANDLER})
    process = subprocess.Popen(
        [sys.executable, "-m", "faasemu", "invoke", "calc", "--data", '{"x": 41}'], cwd=tmp_path,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "200"})
    time.sleep(2.0)  # paused at the breakpoint for twice the function's timeout
    out, err = process.communicate(b"p x * 2\nc\n", timeout=60)
    assert process.returncode == 0, err.decode()
    assert json.loads(out) == {"y": 42}  # stdout holds only the result: pdb talks on stderr
    text = err.decode()
    assert "before the breakpoint" in text and "(Pdb)" in text and "app.py(5)handler()" in text, text
    assert "\n82\n" in text.replace("(Pdb) ", "\n"), text  # what `p x * 2` printed
    assert "timed out" not in text, text


def test_a_pdb_session_on_a_real_terminal(tmp_path: Path) -> None:
    """The same through a pseudo-terminal, as a developer runs it: pdb's prompt appears on the terminal,
    commands typed there reach it (`n` steps a line, `p` prints), and `c` lets the handler answer."""
    import pty
    import select

    write_project(tmp_path, {"faasemu.yaml": """\
        functions:
          calc:
            handler: app.py:handler
    """, "app.py": HANDLER})
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "faasemu", "invoke", "calc", "--data", '{"x": 1}'], cwd=tmp_path,
        stdin=follower, stdout=follower, stderr=follower, env={**os.environ, "COLUMNS": "200", "TERM": "dumb"},
        start_new_session=True)
    os.close(follower)
    seen = b""

    def read_until(marker: bytes, timeout: float = 60) -> bytes:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(leader, 4096)
                except OSError:  # the process closed the terminal
                    break
        return seen

    try:
        assert b"(Pdb)" in read_until(b"(Pdb)"), seen
        seen = b""
        os.write(leader, b"n\n")
        assert b"(Pdb)" in read_until(b"(Pdb)"), seen  # stepped to `return`
        seen = b""
        os.write(leader, b"p x + 100\n")
        assert b"101" in read_until(b"101"), seen
        os.write(leader, b"c\n")
        read_until(b'"y": 2')
        assert process.wait(timeout=60) == 0, seen
        assert b'"y": 2' in seen, seen
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
