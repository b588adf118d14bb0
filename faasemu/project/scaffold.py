"""`faasemu init DIR`: a manifest, a sample handler, an events file and a .gitignore entry.

Existing files are never overwritten: a second `init` in the same folder names what is there.
Everything it does is said: each folder and file created, a .gitignore appended to, and the
commands to try next, which work as printed (the test suite runs them).
"""

from __future__ import annotations

import os
import shlex

from faasemu.project.errors import UsageError

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

import base64
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
        body = event.get("body") or "{}"
        if event.get("isBase64Encoded"):  # API Gateway base64-encodes form posts, which is what `curl -d` sends
            body = base64.b64decode(body).decode("utf-8")
        user = json.loads(body).get("user")
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
PORT = 8080  # the manifest's default port

# What to try once `faasemu up` runs: the README shows the same lines.
TRY = (
    "curl -s 'localhost:{port}/hello?name=ada'",
    """curl -s -X POST localhost:{port}/signups -d '{{"user": "ada"}}'""",
)


def try_commands(port: int = PORT) -> list[str]:
    return [line.format(port=port) for line in TRY]


def _missing_folders(directory: str) -> list[str]:
    """The folders `os.makedirs(directory)` would create, outermost first."""
    missing = []
    path = os.path.normpath(directory)
    while path and path not in (os.curdir, os.sep) and not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing[::-1]


def run_init(directory: str) -> list[str]:
    """Write the scaffold; returns the files written. Refuses to overwrite any of them."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError(f"{directory} exists and is not a folder; faasemu init DIR scaffolds a project in folder DIR")
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
    folders = _missing_folders(directory)
    os.makedirs(directory, exist_ok=True)
    for folder in folders:
        print(f"created {folder}{os.sep}")
    written = []
    for filename, text in files.items():
        path = os.path.join(directory, filename)
        with open(path, "x", encoding="utf-8") as file:
            file.write(text)
        written.append(path)
        print(f"created {os.path.normpath(path)}")
    gitignore = os.path.join(directory, ".gitignore")
    existed = os.path.exists(gitignore)
    current = open(gitignore, encoding="utf-8").read() if existed else ""
    if GITIGNORE_ENTRY not in current.split():
        with open(gitignore, "a", encoding="utf-8") as file:
            file.write(("" if not current or current.endswith("\n") else "\n") + GITIGNORE_ENTRY + "\n")
        written.append(gitignore)
        print(f"{'appended ' + GITIGNORE_ENTRY + ' to' if existed else 'created'} {os.path.normpath(gitignore)}")
    here = os.path.realpath(directory) == os.path.realpath(os.curdir)
    print(f"\nnext: {'' if here else f'cd {shlex.quote(directory)} && '}faasemu up")
    print("then, in another terminal:")
    for line in try_commands():
        print(f"  {line}")
    return written
