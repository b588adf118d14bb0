"""Records placed orders: invoked by a connector for each `order.placed` message, or through
/async-function/record-order. Both can deliver the same message twice, with the same X-Call-Id:
the call id is stored with the order, in one transaction, so a repeat changes nothing."""

import json
import os
import sqlite3


def handle(event, context):
    order = json.loads(event.body)
    call_id = event.headers.get("X-Call-Id")
    db = sqlite3.connect(os.environ.get("FAASEMU_STATE", "orders.db"))
    try:
        with db:
            first = db.execute("INSERT OR IGNORE INTO calls (id) VALUES (?)", (call_id,)).rowcount
            if first:
                db.execute("INSERT INTO revenue (day, total) VALUES (?, ?) "
                           "ON CONFLICT (day) DO UPDATE SET total = total + excluded.total",
                           (order.get("day", "today"), order["total"]))
    finally:
        db.close()
    return {"statusCode": 202, "body": {"recorded": bool(first)}}
