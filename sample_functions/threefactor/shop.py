"""A 3factor app (https://3factor.app): orders are rows, and every step after one is an event trigger on a table.

An outside client (the app's GraphQL API) inserts an order; the `order-placed` trigger POSTs it to `pay`,
which records the payment and marks the order paid; that update fires `order-paid`, which POSTs it to `ship`,
which books a shipment and emails the customer. The webhooks receive Hasura's event-trigger payload in an
API Gateway request, as a Lambda behind a function URL would. The code runs on SQLite ($FAASEMU_STATE) and on
PostgreSQL ($DATABASE_URL, through psycopg), unchanged.

`pay` is idempotent: a payment is keyed by its order, and the status moves only from placed to paid.
`ship` is not: each delivery of the same trigger event books another shipment and sends another email.
`faasemu chaos changes.jsonl` finds it with a duplicated `order-paid` delivery.
"""

import json
import os
import sqlite3
import urllib.request


def connect():
    url = os.environ.get("DATABASE_URL")
    if url:
        import psycopg

        return psycopg.connect(url), "%s"
    return sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=30), "?"


def payload(event):
    """Hasura's payload: {"event": {"op", "data": {"old", "new"}, ...}, "trigger": {"name"}, "id", ...}."""
    return json.loads(event["body"])


def pay(event, context):
    change = payload(event)["event"]
    order = change["data"]["new"]
    connection, mark = connect()
    try:
        connection.execute(f"INSERT INTO payments (order_id, amount) VALUES ({mark}, {mark}) "
                           "ON CONFLICT (order_id) DO NOTHING", (order["id"], order["total"]))
        connection.execute(f"UPDATE orders SET status = 'paid' WHERE id = {mark} AND status = 'placed'",
                           (order["id"],))
        connection.commit()
    finally:
        connection.close()
    return {"statusCode": 200, "body": "paid"}


def ship(event, context):
    change = payload(event)["event"]
    old, new = change["data"]["old"], change["data"]["new"]
    if old["status"] == new["status"] or new["status"] != "paid":
        return {"statusCode": 200, "body": "nothing to ship"}
    connection, mark = connect()
    try:
        # Not idempotent: a second delivery of this event books a second shipment and sends a second email.
        # The fix: key shipments by order_id (PRIMARY KEY, ON CONFLICT DO NOTHING) and email only when inserted.
        connection.execute(f"INSERT INTO shipments (order_id, address) VALUES ({mark}, {mark})",
                           (new["id"], "1 Main St"))
        connection.commit()
    finally:
        connection.close()
    body = json.dumps({"to": "customer@example.com", "subject": f"order {new['id']} shipped"}).encode()
    request = urllib.request.Request(os.environ["FAASEMU_SINK_URL"] + "/email", body,
                                     {"content-type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=5).close()
    return {"statusCode": 200, "body": "shipped"}
