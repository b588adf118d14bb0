"""`.faasemu/` is the user's alone: the folder 0700 and every file faasemu writes there 0600 (the
event log and its -wal/-shm, the state, up.json, the lock, counterexamples, reports put there)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
from conftest import run_cli, write_project

PROJECT = {
    "faasemu.yaml": """\
        name: private
        state:
          sqlite: .faasemu/state.db
          schema: schema.sql
        functions:
          tally:
            handler: tally.py:handler
            events: [sale.made]
    """,
    "schema.sql": "CREATE TABLE IF NOT EXISTS sales (sku TEXT PRIMARY KEY, sold INTEGER NOT NULL);\n",
    "tally.py": """\
        import os
        import sqlite3


        def handler(event, context):  # not idempotent: `chaos` finds it and writes a counterexample
            with sqlite3.connect(os.environ["FAASEMU_STATE"]) as db:
                db.execute("INSERT INTO sales VALUES ('a1', 1) ON CONFLICT (sku) DO UPDATE SET sold = sold + 1")
    """,
    "events.jsonl": '{"type": "sale.made", "source": "test", "data": {"sku": "a1"}}\n',
}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): mode(path) for path in folder.rglob("*")}


def test_up_keeps_its_files_private(tmp_path: Path, run_server) -> None:
    write_project(tmp_path, PROJECT)
    server = run_server(tmp_path / "faasemu.yaml")
    response = httpx.post(f"{server.url}/_faasemu/events", timeout=10,
                          json={"type": "sale.made", "source": "test", "data": {"sku": "a1"}})
    assert response.status_code == 202, response.text
    folder = tmp_path / ".faasemu"
    server.wait_for_output("event sale.made")
    found = modes(folder)
    for name in ("events.db", "events.db-wal", "events.db-shm", "state.db", "up.json"):
        assert name in found, sorted(found)
    assert mode(folder) == 0o700
    assert {name: m for name, m in found.items() if m != 0o600} == {}


def test_files_an_older_faasemu_left_readable_are_tightened(tmp_path: Path, run_server) -> None:
    write_project(tmp_path, PROJECT)
    folder = tmp_path / ".faasemu"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    (folder / "events.db").touch()
    os.chmod(folder / "events.db", 0o644)
    run_server(tmp_path / "faasemu.yaml")
    assert mode(folder) == 0o700
    assert mode(folder / "events.db") == 0o600


def test_chaos_keeps_counterexamples_and_reports_there_private(tmp_path: Path) -> None:
    write_project(tmp_path, PROJECT)
    result = run_cli("chaos", "events.jsonl", "--runs", "2", "--seed", "3", "--json", ".faasemu/report.json",
                     "--junit", ".faasemu/report.xml", cwd=tmp_path, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr  # tally is not idempotent
    folder = tmp_path / ".faasemu"
    found = modes(folder)
    assert "cex/tally-idempotency.json" in found, sorted(found)
    assert "report.json" in found and "report.xml" in found
    assert mode(folder) == 0o700 and mode(folder / "cex") == 0o700
    assert {name: m for name, m in found.items() if m != 0o600 and not (folder / name).is_dir()} == {}
