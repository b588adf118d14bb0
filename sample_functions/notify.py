"""An EventBridge-triggered Lambda that emails a confirmation once per order event.

Idempotent, also when killed part-way: the event id is recorded in the transaction that decides
to send, and the email goes out before that transaction commits, with the event id as its
`Idempotency-Key`. A redelivery of the same event (same EventBridge `id`) sends nothing the second
time; a retry after a crash between the send and the commit sends again with the same key, and the
email API answers with the first send instead of sending twice. (Sending after the commit would
lose the email when killed in between: `faasemu chaos` reports that as a crash violation.)
"""

import json
import os
import sqlite3
import urllib.request


def send_confirmation(event, context):
    order = event["detail"]
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    try:
        with db:
            inserted = db.execute(
                "INSERT OR IGNORE INTO confirmations (event_id, order_id) VALUES (?, ?)", (event["id"], order["id"])
            ).rowcount
            if inserted:
                # The email API; faasemu's effect sink stands in for it and records the call.
                body = json.dumps({"to": "customer@example.com", "order": order["id"]}).encode()
                headers = {"content-type": "application/json", "Idempotency-Key": event["id"]}
                request = urllib.request.Request(os.environ["FAASEMU_SINK_URL"] + "/email", body, headers,
                                                 method="POST")
                urllib.request.urlopen(request, timeout=5).close()
    finally:
        db.close()
