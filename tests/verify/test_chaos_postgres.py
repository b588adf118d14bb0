"""`faasemu chaos` on `state: {postgres: auto}`: real campaigns on a real server (issue 11).

Handlers written for psycopg read $DATABASE_URL, as they would on a hosting platform; each run gets a
fresh copy of the template database (faasemu/verify/stores/postgres.py). The campaign must reach the
verdicts it reaches on SQLite, mask what a sequence or now() fills, show every type readably in a diff,
and leave no database of its own behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import run_cli, wait_for, write_project

SCHEMA = """\
CREATE TABLE accounts (id text PRIMARY KEY, balance numeric NOT NULL DEFAULT 0);
INSERT INTO accounts (id) VALUES ('alice');
CREATE TABLE seen (n serial PRIMARY KEY, event_id text UNIQUE NOT NULL, at timestamptz NOT NULL DEFAULT now());
CREATE TABLE kinds (id int PRIMARY KEY, amount numeric, doc jsonb, tags int[], raw bytea, day timestamptz);
INSERT INTO kinds VALUES (1, 0, '{"n": 0}', '{}', '', '2026-01-01T00:00:00Z');
"""
HANDLERS = """\
import os

import psycopg


def _run(sql, *args):
    with psycopg.connect(os.environ["DATABASE_URL"]) as connection:
        connection.execute(sql, args)


def credit(event, context):  # not idempotent: a duplicate credits twice
    _run("UPDATE accounts SET balance = balance + %s WHERE id = 'alice'", event["detail"]["amount"])


def record(event, context):  # idempotent: one row per event id, whatever its serial and time
    _run("INSERT INTO seen (event_id) VALUES (%s) ON CONFLICT (event_id) DO NOTHING", event["id"])


def kinds(event, context):  # not idempotent, in every type at once
    _run("UPDATE kinds SET amount = amount + 1.5, doc = jsonb_set(doc, '{n}', to_jsonb((doc->>'n')::int + 1)),"
         " tags = tags || 7, raw = raw || '\\\\x01'::bytea, day = day + interval '1 day' WHERE id = 1")
"""
MANIFEST = """\
state: {postgres: auto, schema: schema.sql}
functions:
  credit: {handler: h.py:credit, events: [paid]}
  record: {handler: h.py:record, events: [paid]}
  kinds: {handler: h.py:kinds, events: [typed]}
"""
EVENTS = ('{"type": "paid", "data": {"amount": 10}}\n{"type": "paid", "data": {"amount": 5}}\n'
          '{"type": "typed", "data": {}}\n')


def campaign_databases(server) -> list[str]:
    from faasemu.project.postgres_sql import connect

    with connect(server.admin_url) as connection:
        return [row[0] for row in connection.execute("SELECT datname FROM pg_database WHERE datname LIKE 'faasemu_chaos%'")]


def test_a_campaign_on_postgres_finds_what_it_finds_on_sqlite(postgres_project: Path, postgres_server, postgres_env) -> None:
    write_project(postgres_project, {"faasemu.yaml": MANIFEST, "schema.sql": SCHEMA, "h.py": HANDLERS,
                                     "events.jsonl": EVENTS})
    result = run_cli("chaos", "events.jsonl", "--runs", "2", "--seed", "7", "--json", "report.json",
                     cwd=postgres_project, env=postgres_env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "state postgres (private server)" in result.stdout
    report = json.loads((postgres_project / "report.json").read_text())
    functions = report["functions"]
    assert functions["record"]["idempotent"] is True and functions["record"]["order_tolerant"] is True, functions["record"]
    assert {"seen.n", "seen.at"} <= set(report["nondeterministic"])
    credit = next(v for v in functions["credit"]["violations"] if v["kind"] == "idempotency")
    assert credit["diff"] == {"accounts[id=alice].balance": [10, 20]}  # shrunk to the first event, twice
    typed = next(v for v in functions["kinds"]["violations"] if v["kind"] == "idempotency")
    assert typed["diff"] == {
        "kinds[id=1].amount": [1.5, 3.0],
        "kinds[id=1].day": ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"],
        "kinds[id=1].doc": ['{"n":1}', '{"n":2}'],
        "kinds[id=1].raw": ["x'01'", "x'0101'"],
        "kinds[id=1].tags": [[7], [7, 7]],
    }
    assert "kinds[id=1].raw" in result.stdout and "x'0101'" in result.stdout
    assert campaign_databases(postgres_server) == []

    # the printed command reproduces it, on fresh databases again
    replayed = run_cli("chaos", "--replay-cex", credit["counterexample"], cwd=postgres_project, env=postgres_env)
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr
    assert "accounts[id=alice].balance" in replayed.stdout
    assert campaign_databases(postgres_server) == []


def test_an_interrupted_campaign_leaves_no_database(postgres_project: Path, postgres_server, postgres_env) -> None:
    slow = HANDLERS + "\n\ndef nap(event, context):\n    import time\n    time.sleep(0.5)\n"
    manifest = MANIFEST + "  nap: {handler: h.py:nap, events: [paid]}\n"
    write_project(postgres_project, {"faasemu.yaml": manifest, "schema.sql": SCHEMA, "h.py": slow,
                                     "events.jsonl": EVENTS})
    process = subprocess.Popen([sys.executable, "-m", "faasemu", "chaos", "events.jsonl", "--runs", "50"],
                               cwd=postgres_project, env=postgres_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: len(campaign_databases(postgres_server)) >= 2, 60)
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0, output
    assert campaign_databases(postgres_server) == [], output.decode()


def test_a_server_that_refuses_create_database_is_named_with_the_right_to_grant(
        postgres_project: Path, postgres_server, postgres_env) -> None:
    from faasemu.project.postgres_sql import connect, ensure_database

    ensure_database(postgres_server, "shop")
    with connect(postgres_server.admin_url, autocommit=True) as connection:
        connection.execute("CREATE ROLE clerk LOGIN NOCREATEDB")
        connection.execute("GRANT ALL ON DATABASE shop TO clerk")
    url = postgres_server.url("shop").replace("//faasemu@", "//clerk@", 1)
    assert "//clerk@" in url, url
    manifest = MANIFEST.replace("postgres: auto", f"postgres: '{url}'")
    write_project(postgres_project, {"faasemu.yaml": manifest, "schema.sql": SCHEMA, "h.py": HANDLERS,
                                     "events.jsonl": EVENTS})
    env = {key: value for key, value in postgres_env.items() if not key.startswith("PG")}
    result = run_cli("chaos", "events.jsonl", "--runs", "2", cwd=postgres_project, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    said = " ".join((result.stdout + result.stderr).split())
    assert "state.postgres" in said and "CREATEDB" in said, said
    assert os.path.basename(str(postgres_project / "faasemu.yaml")) in said


CRASH_HANDLERS = """\
import os

import psycopg


def credit(event, context):  # safe against duplicates, not against a crash between its two commits
    with psycopg.connect(os.environ["DATABASE_URL"]) as connection:
        if connection.execute("SELECT 1 FROM seen WHERE event_id = %s", (event["id"],)).fetchone():
            return
        connection.execute("UPDATE accounts SET balance = balance + 10 WHERE id = 'alice'")
        connection.commit()
        connection.execute("INSERT INTO seen (event_id) VALUES (%s)", (event["id"],))
"""


def test_a_crash_between_two_psycopg_commits_is_found(postgres_project: Path, postgres_server, postgres_env) -> None:
    """The worker numbers psycopg's commits as it numbers sqlite3's (workers/steps.py): the crash probe
    kills the handler right after its first commit, and the retry credits again."""
    manifest = "state: {postgres: auto, schema: schema.sql}\nfunctions:\n  credit: {handler: h.py:credit, events: [paid], concurrency: 1}\n"
    write_project(postgres_project, {"faasemu.yaml": manifest, "schema.sql": SCHEMA, "h.py": CRASH_HANDLERS,
                                     "events.jsonl": '{"type": "paid", "data": {}}\n'})
    result = run_cli("chaos", "events.jsonl", "--runs", "2", "--seed", "5", "--json", "report.json",
                     cwd=postgres_project, env=postgres_env)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((postgres_project / "report.json").read_text())
    credit = report["functions"]["credit"]
    kinds = {v["kind"] for v in credit["violations"]}
    assert "crash" in kinds, credit
    crash = next(v for v in credit["violations"] if v["kind"] == "crash")
    assert crash["diff"] == {"accounts[id=alice].balance": [10, 20]}
    assert "Killed after the 1st write to accounts" in result.stdout, result.stdout
