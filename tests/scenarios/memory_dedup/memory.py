"""Skips event ids this instance has seen: a duplicate on another instance is credited again."""

import os
import sqlite3

SEEN = set()


def handler(event, context):
    if event["id"] in SEEN:
        return
    detail = event["detail"]
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    try:
        with db:
            db.execute("INSERT INTO memory_balances (account, amount) VALUES (?, ?) "
                       "ON CONFLICT (account) DO UPDATE SET amount = amount + excluded.amount",
                       (detail["account"], detail["amount"]))
    finally:
        db.close()
    SEEN.add(event["id"])
