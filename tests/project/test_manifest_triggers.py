"""`triggers:` and `state.postgres` in faasemu.yaml: defaults as Hasura's, every error located."""

from __future__ import annotations

from pathlib import Path

import pytest

from faasemu.project.errors import ManifestError
from faasemu.project.manifest import load_manifest
from faasemu.project.spec import Manifest, TriggerSpec

HEAD = """\
state: {sqlite: .faasemu/state.db}
functions:
  pay: {handler: h.py:pay}
  ship: {handler: h.py:pay}
triggers:
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "h.py").write_text("def pay(event, context):\n    return {'statusCode': 200}\n")
    (tmp_path / "schema.sql").write_text("CREATE TABLE orders (id TEXT PRIMARY KEY, status TEXT);\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load(text: str) -> Manifest:
    Path("faasemu.yaml").write_text(text)
    return load_manifest("faasemu.yaml")


def error(text: str) -> str:
    with pytest.raises(ManifestError) as caught:
        load(text)
    return str(caught.value)


def test_a_trigger_with_hasura_defaults(project: Path) -> None:
    manifest = load(HEAD + "  order-placed: {table: orders, on: insert, webhook: pay}\n")
    assert manifest.triggers == (TriggerSpec("order-placed", "orders", "pay", ("insert",), (), None, 0, 10.0, 6),)


def test_every_key(project: Path) -> None:
    manifest = load(HEAD + "  paid:\n    table: public.orders\n    on: [update, INSERT, update]\n"
                           "    columns: [status]\n    webhook: ship\n    retries: 3\n    interval: 500ms\n")
    assert manifest.triggers == (
        TriggerSpec("paid", "orders", "ship", ("update", "insert"), ("status",), "public", 3, 0.5, 6),)


@pytest.mark.parametrize(("body", "message"), [
    ("  t: {table: orders, on: insert, webhook: pai}\n",
     "faasemu.yaml:6: triggers.t.webhook: 'pai' is not a function of this manifest; the functions are: pay, ship"),
    ("  t: {table: orders, on: upsert, webhook: pay}\n",
     "faasemu.yaml:6: triggers.t.on: 'upsert' is not an operation; use insert, update or delete"),
    ("  t: {table: orders, webhook: pay}\n",
     "faasemu.yaml:6: triggers.t: missing required key 'on'; a trigger is {table: orders, on: [insert], "
     "webhook: FUNCTION}"),
    ("  t: {table: orders, on: [insert], columns: [status], webhook: pay}\n",
     "faasemu.yaml:6: triggers.t.columns: limits which updates fire, so it needs 'update' in triggers.t.on "
     "(it has insert)"),
    ("  t: {table: a.b.c, on: insert, webhook: pay}\n",
     "faasemu.yaml:6: triggers.t.table: 'a.b.c' is not [schema.]table, as in orders or public.orders"),
    ("  t: {table: orders, on: insert, webhook: pay, retry: 2}\n",
     "faasemu.yaml:6: unknown key 'retry' in triggers.t; did you mean 'retries'?"),
    ("  has space: {table: orders, on: insert, webhook: pay}\n",
     "faasemu.yaml:6: triggers.has space: 'has space' is not a trigger name; use letters, digits, '-' and '_', "
     "at most 42 characters (Hasura's rule)"),
])
def test_located_errors(project: Path, body: str, message: str) -> None:
    assert error(HEAD + body) == message


def test_triggers_need_a_database(project: Path) -> None:
    text = HEAD.replace("{sqlite: .faasemu/state.db}", "{dir: files}") + \
        "  t: {table: orders, on: insert, webhook: pay}\n"
    assert error(text) == ("faasemu.yaml:5: triggers: capture changes to tables of the state database, so they "
                           "need state.sqlite or state.postgres, not state.dir")


def test_state_postgres_is_auto_or_a_url(project: Path) -> None:
    (project / "schema.sql").write_text("CREATE TABLE orders (id text PRIMARY KEY);\n")
    auto = load("state: {postgres: auto, schema: schema.sql}\nfunctions: {pay: {handler: h.py:pay}}\n")
    assert (auto.state.kind, auto.state.postgres, auto.state.path) == ("postgres", "auto", None)
    assert auto.state.schema is not None and auto.state.schema.endswith("schema.sql")
    url = "postgresql://shop@localhost:5432/app"
    assert load(f"state: {{postgres: '{url}'}}\nfunctions: {{pay: {{handler: h.py:pay}}}}\n").state.postgres == url


def test_state_postgres_errors(project: Path) -> None:
    assert error("state: {postgres: mysql://x}\nfunctions: {pay: {handler: h.py:pay}}\n") == (
        "faasemu.yaml:1: state.postgres: 'mysql://x' is neither auto nor a PostgreSQL URL; use auto (faasemu runs "
        'a private server) or a URL such as "postgresql://user@localhost:5432/app"')
    assert error("state: {postgres: auto, sqlite: a.db}\nfunctions: {pay: {handler: h.py:pay}}\n") == (
        "faasemu.yaml:1: state: choose one of sqlite, postgres, dir or hooks, not sqlite and postgres")
