"""A webhook receiver: each signup arrives as a POST whose `ce-id` header identifies the event.
Webhooks are delivered at least once; a repeated id changes nothing."""

import json
import os
import sqlite3


def handler(event, context):
    if event["httpMethod"] != "POST":
        return {"statusCode": 405, "body": "POST only"}
    signup = json.loads(event["body"])
    db = sqlite3.connect(os.environ.get("FAASEMU_STATE", "signups.db"))
    try:
        with db:
            first = db.execute("INSERT OR IGNORE INTO seen_webhooks (id) VALUES (?)",
                               (event["headers"]["ce-id"],)).rowcount
            if first:
                db.execute("INSERT INTO signups (plan, count) VALUES (?, 1) "
                           "ON CONFLICT (plan) DO UPDATE SET count = count + 1", (signup["plan"],))
    finally:
        db.close()
    return {"statusCode": 204}
