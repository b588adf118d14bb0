"""An EventBridge-triggered Lambda that emails a confirmation once per order event.

Idempotent: the event id is recorded in the same transaction that decides to send, so a
redelivery of the same event (same EventBridge `id`) sends nothing the second time.
"""

import json
import os
import sqlite3
import urllib.request


def send_confirmation(event, context):
    order = event["detail"]
    with sqlite3.connect(os.environ["FAASEMU_STATE"]) as db:
        inserted = db.execute(
            "INSERT OR IGNORE INTO confirmations (event_id, order_id) VALUES (?, ?)", (event["id"], order["id"])
        ).rowcount
    if inserted:
        # The email API; faasemu's effect sink stands in for it and records the call.
        body = json.dumps({"to": "customer@example.com", "order": order["id"]}).encode()
        request = urllib.request.Request(
            os.environ["FAASEMU_SINK_URL"] + "/email", body, {"content-type": "application/json"}, method="POST"
        )
        urllib.request.urlopen(request, timeout=5).close()
