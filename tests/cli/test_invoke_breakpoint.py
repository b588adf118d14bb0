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
