"""The chaos benchmark's app: two Lambda functions subscribed to `order.changed` (EventBridge).

- `upsert_order`: upserts the order row keyed by the order id in the event's data, keeping the
  highest `version` (a version check): idempotent and order-tolerant.
- `count_order`: records the event id in a dedup table and increments a per-SKU counter in the
  same transaction: idempotent and order-tolerant.
- `count_order_naive` (the buggy variant, bench/chaos_project/faasemu-buggy.yaml): increments the
  counter on every delivery, so a duplicate delivery counts twice.

Each handler commits once per event. The connection is opened on first use and reused while the
worker stays warm, as a deployed Lambda would; it is reopened when $FAASEMU_STATE changes (the
benchmark's in-process floor points it at a fresh database).
"""

import os
import sqlite3

_db = None
_path = None


def db():
    global _db, _path
    path = os.environ["FAASEMU_STATE"]
    if _db is None or _path != path:
        if _db is not None:
            _db.close()
        _db = sqlite3.connect(path)
        _path = path
    return _db


def upsert_order(event, context):
    order = event["detail"]
    conn = db()
    conn.execute(
        "INSERT INTO orders (id, version, sku, quantity, status) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET version = excluded.version, sku = excluded.sku,"
        " quantity = excluded.quantity, status = excluded.status WHERE excluded.version > orders.version",
        (order["order_id"], order["version"], order["sku"], order["quantity"], order["status"]),
    )
    conn.commit()


def count_order(event, context):
    conn = db()
    first = conn.execute("INSERT OR IGNORE INTO processed (event_id) VALUES (?)", (event["id"],)).rowcount
    if first:
        conn.execute("INSERT INTO sku_events (sku, n) VALUES (?, 1) ON CONFLICT (sku) DO UPDATE SET n = n + 1",
                     (event["detail"]["sku"],))
    conn.commit()


def count_order_naive(event, context):
    conn = db()
    conn.execute("INSERT INTO sku_events (sku, n) VALUES (?, 1) ON CONFLICT (sku) DO UPDATE SET n = n + 1",
                 (event["detail"]["sku"],))
    conn.commit()
