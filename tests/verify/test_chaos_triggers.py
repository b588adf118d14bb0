"""Event triggers in a campaign (issue 11): an events file's table changes applied as an outside client,
their trigger deliveries and the ones handlers' writes fire (a cascade), perturbed like any delivery.

The 3factor sample (sample_functions/threefactor/) is the project: an order inserted by an outside
change is paid on its insert's trigger, shipped on the status update the payment writes; `ship` is not
idempotent, which only a duplicated trigger delivery shows. The same app on SQLite and on PostgreSQL must
give the same verdicts and the same counterexample.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from conftest import run_cli

SAMPLE = Path(__file__).parents[2] / "sample_functions" / "threefactor"


def copy_sample(root: Path) -> Path:
    for name in ("faasemu.yaml", "faasemu.postgres.yaml", "schema.sql", "shop.py", "changes.jsonl"):
        shutil.copy(SAMPLE / name, root / name)
    return root


def campaign(root: Path, manifest: str, env: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    result = run_cli("chaos", "-f", manifest, "changes.jsonl", "--runs", "3", "--seed", "11", "--json", "report.json",
                     cwd=root, env=env, timeout=240)  # ~20 s each alone; a loaded 2-core machine can triple it
    assert result.returncode == 1, result.stdout + result.stderr
    return json.loads((root / "report.json").read_text()), result.stdout


def verdicts(report: dict[str, Any]) -> dict[str, Any]:
    return {name: (found["idempotent"], found["order_tolerant"],
                   [(v["kind"], [(s["event"], s["function"]) for s in v["schedule"]], v["diff"])
                    for v in found["violations"]])
            for name, found in report["functions"].items()}


def test_the_3factor_sample_gives_the_same_verdicts_on_sqlite_and_postgres(postgres_project: Path, postgres_env) -> None:
    root = copy_sample(postgres_project)
    on_sqlite, out = campaign(root, "faasemu.yaml")
    assert "2 table changes" in out
    assert "changes-1  change insert orders" in out and "(an outside client's write)" in out
    assert "trigger order-paid UPDATE orders" in out
    found = verdicts(on_sqlite)
    assert found["pay"][:2] == (True, True), found["pay"]
    assert found["ship"][0] is False
    kind, schedule, diff = found["ship"][2][0]
    assert kind == "idempotency"
    assert schedule == [("changes-1", "(change)"), ("changes-1>0", "pay"), ("changes-1>0>0", "ship"),
                        ("changes-1>0>0", "ship")]
    assert diff == {'shipments[order_id=o-1,address="1 Main St"]': [1, 2], "sink email": [1, 2]}

    on_postgres, out = campaign(root, "faasemu.postgres.yaml", postgres_env)
    assert "state postgres (private server)" in out
    assert verdicts(on_postgres) == found


def test_a_change_line_at_fault_is_named_by_file_and_line(tmp_path: Path) -> None:
    root = copy_sample(tmp_path)
    (root / "changes.jsonl").write_text('{"change": {"table": "orders", "insert": {"id": "o-1", "status": "placed",'
                                        ' "total": 1}}}\n{"change": {"table": "orders"}}\n')
    result = run_cli("chaos", "changes.jsonl", "--runs", "1", cwd=root)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "changes.jsonl:2" in result.stderr and "exactly one of insert, update, delete" in result.stderr

    (root / "changes.jsonl").write_text('{"change": {"table": "orderz", "insert": {"id": "o-1"}}}\n')
    result = run_cli("chaos", "changes.jsonl", "--runs", "1", cwd=root)
    assert result.returncode == 2, result.stdout + result.stderr
    said = " ".join(result.stderr.split())
    assert "changes.jsonl:1" in said and "orderz" in said, said


def test_replay_writes_the_changes_and_leaves_their_events_for_up(tmp_path: Path) -> None:
    import sqlite3

    root = copy_sample(tmp_path)
    result = run_cli("replay", "changes.jsonl", cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 row written" in result.stdout and "for `faasemu up` to deliver" in result.stdout
    connection = sqlite3.connect(root / ".faasemu" / "state.db")
    try:
        assert connection.execute("SELECT id, status FROM orders ORDER BY id").fetchall() == [("o-1", "placed"),
                                                                                                ("o-2", "placed")]
        assert connection.execute("SELECT count(*) FROM _faasemu_changes").fetchone() == (2,)
    finally:
        connection.close()
    refused = run_cli("replay", "changes.jsonl", "--target", "http://127.0.0.1:9", cwd=root)
    assert refused.returncode == 2 and "changes.jsonl:1" in refused.stderr and "--target" in refused.stderr


def test_replay_writes_the_changes_to_postgres(postgres_project: Path, postgres_env, postgres_server) -> None:
    from faasemu.project.postgres_sql import connect

    root = copy_sample(postgres_project)
    result = run_cli("replay", "-f", "faasemu.postgres.yaml", "changes.jsonl", cwd=root, env=postgres_env)
    assert result.returncode == 0, result.stdout + result.stderr
    with connect(postgres_server.url("app")) as connection:
        assert connection.execute("SELECT id FROM orders ORDER BY id").fetchall() == [("o-1",), ("o-2",)]
        captured = connection.execute("SELECT count(*) FROM faasemu.event_log").fetchone()
    assert captured == (2,)  # the triggers' events, for `faasemu up` to deliver
