"""Two EventBridge-triggered Lambdas that send a welcome email through the email API (faasemu's
effect sink stands in for it: POST $FAASEMU_SINK_URL/email)."""

import json
import os
import sqlite3
import urllib.request


def _send(to, template, key=None):
    body = json.dumps({"to": to, "template": template}).encode()
    headers = {"content-type": "application/json", **({"Idempotency-Key": key} if key else {})}
    request = urllib.request.Request(os.environ["FAASEMU_SINK_URL"] + "/email", body, headers, method="POST")
    urllib.request.urlopen(request, timeout=5).close()


def send_every_time(event, context):
    """Sends on every delivery: a duplicate delivery emails the user twice."""
    _send(event["detail"]["email"], "welcome")


def send_once(event, context):
    """Records the user in the transaction that decides to send, and sends before it commits with the
    user id as the Idempotency-Key: one email per user, even when killed between the send and the
    commit (the retry's send is answered with the first one). Sending after the commit would lose
    the email when killed in between."""
    detail = event["detail"]
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    try:
        with db:
            first = db.execute("INSERT OR IGNORE INTO welcomed (user_id) VALUES (?)", (detail["user"],)).rowcount
            if first:
                _send(detail["email"], "welcome-once", key=f"welcome-{detail['user']}")
    finally:
        db.close()
