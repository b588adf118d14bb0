"""OpenFaaS (python3-http): skips payment ids this instance has seen (a business key, as every
connector call gets a new X-Call-Id), but only in memory."""

import json
import os
import sqlite3

SEEN = set()


def handle(event, context):
    payment = json.loads(event.body)
    if payment["payment_id"] in SEEN:
        return {"statusCode": 200, "body": "already recorded"}
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    try:
        with db:
            db.execute("INSERT INTO openfaas_balances (account, amount) VALUES (?, ?) "
                       "ON CONFLICT (account) DO UPDATE SET amount = amount + excluded.amount",
                       (payment["account"], payment["amount"]))
    finally:
        db.close()
    SEEN.add(payment["payment_id"])
    return {"statusCode": 200, "body": "recorded"}
