"""A damaged `.faasemu/events.db` or state database: every command that opens one names the file,
says what is wrong, what to do and what that loses, and exits 2 (never a raw sqlite3 traceback)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import free_port, run_cli, write_project

PROJECT = {
    "faasemu.yaml": """\
        name: damaged
        state:
          sqlite: .faasemu/state.db
          schema: schema.sql
        functions:
          count:
            handler: count.py:handler
            events: [thing.made]
            http: {path: /count}
    """,
    "schema.sql": "CREATE TABLE IF NOT EXISTS hits (id TEXT PRIMARY KEY);\n",
    "count.py": """\
        import os
        import sqlite3


        def handler(event, context):
            with sqlite3.connect(os.environ["FAASEMU_STATE"]) as db:
                db.execute("INSERT OR IGNORE INTO hits VALUES (?)", (str(event.get("id", "http")),))
            return {"statusCode": 200, "body": "ok"}
    """,
    "events.jsonl": '{"type": "thing.made", "source": "test", "data": {}}\n',
}


def not_sqlite(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this was never a database\n" * 200)


def damaged_pages(path: Path) -> None:
    """A real SQLite file (its header intact) whose schema page is overwritten: 'malformed'."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=DELETE")
        for number in range(20):
            db.execute(f"CREATE TABLE t{number} (id INTEGER PRIMARY KEY, body TEXT)")
            db.execute(f"INSERT INTO t{number} (body) VALUES (?)", ("x" * 3000,))
    db.close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)
    path.write_bytes(bytes(data))


def assert_reported(result, shown: str, holds: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "sqlite3." not in result.stderr
    message = " ".join(result.stderr.split())
    assert message.startswith(f"Error: {shown} is not a usable SQLite database (")
    assert holds in message
    assert f"move it aside (mv {shown} {shown}.broken) or delete it" in message


EVENT_LOG = ".faasemu/events.db"
LOG_HOLDS = "It holds the events `faasemu up` accepted"
STATE = ".faasemu/state.db"
STATE_HOLDS = "It holds what your handlers stored (state.sqlite in faasemu.yaml)"


@pytest.mark.parametrize("damage", [not_sqlite, damaged_pages], ids=["not-sqlite", "malformed"])
@pytest.mark.parametrize("command", [
    ("events",), ("events", "--dead"), ("events", "--redrive", "all"), ("chaos", "--runs", "0"),
    ("up", "--port", "PORT"),
], ids=" ".join)
def test_a_damaged_event_log(tmp_path: Path, damage, command: tuple[str, ...]) -> None:
    write_project(tmp_path, PROJECT)
    damage(tmp_path / EVENT_LOG)
    args = [str(free_port()) if arg == "PORT" else arg for arg in command]
    result = run_cli(*args, cwd=tmp_path, timeout=60)
    assert_reported(result, EVENT_LOG, LOG_HOLDS)
    assert "the recorded events, their pending deliveries and dead letters are lost" in result.stderr.replace("\n", " ")


@pytest.mark.parametrize("damage", [not_sqlite, damaged_pages], ids=["not-sqlite", "malformed"])
@pytest.mark.parametrize("command", [
    ("invoke", "count", "--data", "{}"), ("replay", "events.jsonl"), ("up", "--port", "PORT"),
], ids=" ".join)
def test_a_damaged_state_database(tmp_path: Path, damage, command: tuple[str, ...]) -> None:
    write_project(tmp_path, PROJECT)
    damage(tmp_path / STATE)
    args = [str(free_port()) if arg == "PORT" else arg for arg in command]
    result = run_cli(*args, cwd=tmp_path, timeout=60)
    assert_reported(result, STATE, STATE_HOLDS)
    assert "rebuilt from state.schema (schema.sql), and the rows in it are lost" in " ".join(result.stderr.split())


def test_after_moving_it_aside_the_command_works(tmp_path: Path) -> None:
    write_project(tmp_path, PROJECT)
    not_sqlite(tmp_path / STATE)
    assert run_cli("invoke", "count", "--data", "{}", cwd=tmp_path).returncode == 2
    (tmp_path / STATE).rename(tmp_path / (STATE + ".broken"))
    result = run_cli("invoke", "count", "--data", "{}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
