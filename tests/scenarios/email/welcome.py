"""Two EventBridge-triggered Lambdas that send a welcome email through the email API (faasemu's
effect sink stands in for it: POST $FAASEMU_SINK_URL/email)."""

import json
import os
import sqlite3
import urllib.request


def _send(to, template):
    body = json.dumps({"to": to, "template": template}).encode()
    request = urllib.request.Request(
        os.environ["FAASEMU_SINK_URL"] + "/email", body, {"content-type": "application/json"}, method="POST"
    )
    urllib.request.urlopen(request, timeout=5).close()


def send_every_time(event, context):
    """Sends on every delivery: a duplicate delivery emails the user twice."""
    _send(event["detail"]["email"], "welcome")


def send_once(event, context):
    """Records the user in the same transaction that decides to send: one email per user."""
    detail = event["detail"]
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    try:
        with db:
            first = db.execute("INSERT OR IGNORE INTO welcomed (user_id) VALUES (?)", (detail["user"],)).rowcount
    finally:
        db.close()
    if first:
        _send(detail["email"], "welcome-once")
