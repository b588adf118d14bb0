"""`faasemu replay` says how far it got: progress while it runs, and what was delivered when it is cut
short by Ctrl+C or by losing its `--target` (issue 8, reliability 10). Real CLI processes and a real `up`.
"""

from __future__ import annotations

import os
import pty
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from conftest import Server, arrivals, wait_for, write_project

HANDLERS = '''\
import time


def record(event, context):
    time.sleep(float(event["detail"].get("sleep", 0)))
    with open("arrivals.txt", "a") as file:
        file.write(event["id"] + "\\n")
'''


def project(root: Path, events: int, sleep: float = 0.0) -> Path:
    lines = "".join(f'{{"id": "e{n}", "type": "order.created", "data": {{"sleep": {sleep}}}}}\n' for n in range(events))
    return write_project(root, {
        "faasemu.yaml": """\
            functions:
              rec:
                handler: handlers.py:record
                events: [order.*]
        """,
        "handlers.py": HANDLERS,
        "events.jsonl": lines,
    })



def start_replay(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "faasemu", "replay", "events.jsonl", *args], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})



def test_progress_goes_to_stderr_as_plain_lines_off_a_terminal(tmp_path: Path) -> None:
    project(tmp_path, 20)
    replay = start_replay(tmp_path)
    out, err = replay.communicate(timeout=120)
    assert replay.returncode == 0, out + err
    assert "replay: 2/20 deliveries" in err and "replay: 20/20 deliveries" in err, err
    assert "replay:" not in out  # stdout keeps only the table and the summary


def test_ctrl_c_says_how_many_deliveries_were_done(tmp_path: Path) -> None:
    project(tmp_path, 40, sleep=0.2)
    replay = start_replay(tmp_path)
    assert wait_for(lambda: len(arrivals(tmp_path)) >= 3), replay.communicate(timeout=5)
    replay.send_signal(signal.SIGINT)
    out, err = replay.communicate(timeout=60)
    assert replay.returncode == 130, out + err
    assert "Traceback" not in err, err
    found = re.search(r"interrupted after (\d+) of 40 deliveries \((\d+) ok\)", out)
    assert found, out + err
    done = int(found.group(1))
    ran = len(arrivals(tmp_path))
    assert 3 <= done < 40 and done <= ran <= done + 1, (done, ran, out)  # the one running may have finished
    assert f"e{done - 1}" in out  # the table lists what was delivered


def test_a_lost_target_says_how_many_events_it_had_accepted(tmp_path: Path) -> None:
    manifest = project(tmp_path, 3000)
    server = Server(manifest).start()
    assert server.process is not None
    try:
        replay = start_replay(tmp_path, "--target", server.url)
        assert wait_for(lambda: len(arrivals(tmp_path)) >= 5), server.output()
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
        out, err = replay.communicate(timeout=120)
    finally:
        server.stop()
    assert replay.returncode == 2, out + err
    assert "Traceback" not in err, err
    found = re.search(rf"--target {re.escape(server.url)}: lost faasemu up after it accepted (\d+) of 3000 events", err)
    assert found, err
    accepted = int(found.group(1))
    with sqlite3.connect(tmp_path / ".faasemu" / "events.db") as db:
        stored = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    assert 5 <= accepted < 3000 and accepted <= stored <= accepted + 1, (accepted, stored)


def test_ctrl_c_of_a_target_replay_says_how_many_events_were_accepted(tmp_path: Path) -> None:
    manifest = project(tmp_path, 3000)
    with Server(manifest) as server:
        replay = start_replay(tmp_path, "--target", server.url)
        assert wait_for(lambda: len(arrivals(tmp_path)) >= 5), server.output()
        replay.send_signal(signal.SIGINT)
        out, err = replay.communicate(timeout=60)
        assert replay.returncode == 130, out + err
        assert "Traceback" not in err, err
        found = re.search(r"interrupted: (\d+) of 3000 events were accepted by ", out)
        assert found, out + err
        accepted = int(found.group(1))
        with sqlite3.connect(tmp_path / ".faasemu" / "events.db") as db:
            stored = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        assert 5 <= accepted < 3000 and accepted <= stored <= accepted + 1, (accepted, stored)

def test_progress_is_a_bar_on_a_terminal(tmp_path: Path) -> None:
    project(tmp_path, 20)
    controller, terminal = pty.openpty()
    replay = subprocess.Popen([sys.executable, "-m", "faasemu", "replay", "events.jsonl"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=terminal, text=True,
                              env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
    os.close(terminal)
    seen = bytearray()
    reader = threading.Thread(target=_drain, args=(controller, seen), daemon=True)
    reader.start()
    out, _ = replay.communicate(timeout=120)
    reader.join(timeout=30)
    os.close(controller)
    assert replay.returncode == 0, out
    text = seen.decode(errors="replace")
    assert "━" in text and "20/20" in text and "deliveries" in text, text
    assert "replay: 2/20" not in text  # not the plain lines


def _drain(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the terminal closed: the replay is gone
            return
        if not chunk:
            return
        into.extend(chunk)
