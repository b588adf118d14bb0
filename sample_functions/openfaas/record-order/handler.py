"""Records placed orders: invoked by a connector for each `order.placed` message, or through
/async-function/record-order. Both can deliver the same order twice. A connector's every call gets a
new X-Call-Id from the gateway, so the call id cannot tell a repeat: the order's own id (a business
key) is stored with the revenue, in one transaction, so a repeat changes nothing."""

import json
import os
import sqlite3


def handle(event, context):
    order = json.loads(event.body)
    db = sqlite3.connect(os.environ.get("FAASEMU_STATE", "orders.db"))
    try:
        with db:
            first = db.execute("INSERT OR IGNORE INTO orders (id) VALUES (?)", (order["order"],)).rowcount
            if first:
                db.execute("INSERT INTO revenue (day, total) VALUES (?, ?) "
                           "ON CONFLICT (day) DO UPDATE SET total = total + excluded.total",
                           (order.get("day", "today"), order["total"]))
    finally:
        db.close()
    return {"statusCode": 202, "body": {"recorded": bool(first)}}
