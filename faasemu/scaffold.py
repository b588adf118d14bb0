"""`faasemu init DIR`: a manifest, a sample handler, an events file and a .gitignore entry.

Existing files are never overwritten: a second `init` in the same folder names what is there.
"""

from __future__ import annotations

import os

from faasemu.errors import UsageError

MANIFEST = """\
# faasemu manifest (the faasemu README lists every key)
name: {name}
state:
  sqlite: .faasemu/state.db
  schema: schema.sql
functions:
  hello:
    handler: handler.py:hello
    http: {{path: /hello, methods: [GET]}}
  signup:
    handler: handler.py:on_signup
    http: {{path: /signups, methods: [POST]}}
    events: [user.signed_up]
"""

HANDLER = '''\
"""Sample AWS Lambda handlers. faasemu runs them unchanged; no faasemu import is needed."""

import json
import os
import sqlite3


def hello(event, context):
    """GET /hello?name=you"""
    name = (event.get("queryStringParameters") or {}).get("name", "world")
    return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": f"hello, {name}\\n"}


def on_signup(event, context):
    """POST /signups {"user": "ada"}, or an EventBridge event of type user.signed_up.

    Idempotent: the user is the primary key, so a second delivery changes nothing.
    """
    if "requestContext" in event:  # an HTTP request
        user = json.loads(event.get("body") or "{}").get("user")
    else:  # an EventBridge event
        user = event["detail"]["user"]
    with sqlite3.connect(os.environ["FAASEMU_STATE"]) as db:
        db.execute("INSERT OR IGNORE INTO users (name) VALUES (?)", (user,))
    return {"statusCode": 201, "body": json.dumps({"user": user})}
'''

SCHEMA = """\
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY);
"""

EVENTS = """\
{"type": "user.signed_up", "data": {"user": "ada"}}
{"type": "user.signed_up", "data": {"user": "grace"}}
"""

GITIGNORE_ENTRY = ".faasemu/"


def run_init(directory: str) -> list[str]:
    """Write the scaffold; returns the files written. Refuses to overwrite any of them."""
    os.makedirs(directory, exist_ok=True)
    name = os.path.basename(os.path.abspath(directory)).lower().replace(" ", "-") or "app"
    files = {
        "faasemu.yaml": MANIFEST.format(name=name),
        "handler.py": HANDLER,
        "schema.sql": SCHEMA,
        "events.jsonl": EVENTS,
    }
    existing = [f for f in files if os.path.exists(os.path.join(directory, f))]
    if existing:
        raise UsageError(
            f"{os.path.join(directory, existing[0])} already exists; faasemu init never overwrites files "
            "(choose an empty folder)"
        )
    written = []
    for filename, text in files.items():
        path = os.path.join(directory, filename)
        with open(path, "x", encoding="utf-8") as file:
            file.write(text)
        written.append(path)
    gitignore = os.path.join(directory, ".gitignore")
    current = open(gitignore, encoding="utf-8").read() if os.path.exists(gitignore) else ""
    if GITIGNORE_ENTRY not in current.split():
        with open(gitignore, "a", encoding="utf-8") as file:
            file.write(("" if not current or current.endswith("\n") else "\n") + GITIGNORE_ENTRY + "\n")
        written.append(gitignore)
    for path in written:
        print(f"created {path}")
    print(f"\nnext: cd {directory} && faasemu up")
    return written
