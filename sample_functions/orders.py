"""An HTTP API over a SQLite table, written for AWS Lambda (API Gateway HTTP API, payload 2.0).

Nothing here imports faasemu: the database path comes from $FAASEMU_STATE, as it would come
from an environment variable naming a real database in production.
"""

import base64
import json
import os
import sqlite3
import urllib.request
import uuid


def _db():
    connection = sqlite3.connect(os.environ["FAASEMU_STATE"])
    connection.row_factory = sqlite3.Row
    return connection


def _json(status, payload):
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(payload)}


def _body(event):
    body = event.get("body") or "{}"
    # API Gateway base64-encodes bodies that are not text (curl -d sends a form content type).
    return base64.b64decode(body) if event.get("isBase64Encoded") else body


def create_order(event, context):
    """POST /orders {"sku": "a1", "quantity": 2}. Also invocable directly with the order as the event."""
    if "requestContext" in event:
        try:
            order = json.loads(_body(event))
        except ValueError:
            return _json(400, {"message": "body must be JSON"})
    else:
        order = event
    if not isinstance(order, dict) or not order.get("sku"):
        return _json(400, {"message": "'sku' is required"})
    order_id = str(uuid.uuid4())
    with _db() as db:
        db.execute(
            "INSERT INTO orders (id, sku, quantity) VALUES (?, ?, ?)",
            (order_id, order["sku"], int(order.get("quantity", 1))),
        )
    created = {"id": order_id, "sku": order["sku"], "quantity": int(order.get("quantity", 1))}
    _emit("order.created", created)
    return _json(201, created)


def _emit(event_type, data):
    """Publish an event to the bus (EventBridge PutEvents in production; faasemu's ingress here)."""
    url = os.environ.get("FAASEMU_EVENTS_URL")
    if url:
        body = json.dumps({"type": event_type, "source": "shop.orders", "data": data}).encode()
        request = urllib.request.Request(url, body, {"content-type": "application/json"}, method="POST")
        urllib.request.urlopen(request, timeout=5).close()


def get_order(event, context):
    """GET /orders/{id}"""
    order_id = event["pathParameters"]["id"]
    with _db() as db:
        row = db.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        return _json(404, {"message": f"order {order_id} not found"})
    return _json(200, dict(row))


def list_orders(event, context):
    """GET /orders?sku=a1 — returns a plain list: Lambda answers it as JSON with status 200."""
    sku = (event.get("queryStringParameters") or {}).get("sku")
    with _db() as db:
        if sku:
            rows = db.execute("SELECT * FROM orders WHERE sku = ? ORDER BY rowid", (sku,)).fetchall()
        else:
            rows = db.execute("SELECT * FROM orders ORDER BY rowid").fetchall()
    return [dict(row) for row in rows]
