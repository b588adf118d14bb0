"""EventBridge-triggered Lambda: add the event's amount to the account's balance.

Not idempotent: a second delivery of the same event adds the amount again.
"""

import os
import sqlite3


def handler(event, context):
    detail = event["detail"]
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    try:
        with db:
            db.execute(
                "INSERT INTO accounts (id, balance) VALUES (?, ?) "
                "ON CONFLICT (id) DO UPDATE SET balance = balance + excluded.balance",
                (detail["account"], detail["amount"]),
            )
    finally:
        db.close()
