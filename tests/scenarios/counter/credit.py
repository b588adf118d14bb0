"""EventBridge-triggered Lambdas on account balances.

`handler` adds the event's amount to the balance on every delivery: not idempotent, a second
delivery of the same event adds the amount again.
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


def debit(event, context):
    """Never reached by the scenario's events (no account.debited in events.jsonl)."""
    detail = event["detail"]
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    try:
        with db:
            db.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?", (detail["amount"], detail["account"]))
    finally:
        db.close()
