"""GET /api/orders/<id>: what was paid for one order. A WSGI app: Vercel passes the dynamic
segment `[id]` as the query parameter `id`."""

import json
import os
import sqlite3
from urllib.parse import parse_qs


def app(environ, start_response):
    order = parse_qs(environ["QUERY_STRING"]).get("id", [""])[0]
    db = sqlite3.connect(os.environ.get("FAASEMU_STATE", "orders.db"))
    try:
        row = db.execute("SELECT paid FROM payments WHERE order_id = ?", (order,)).fetchone()
    finally:
        db.close()
    if row is None:
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [json.dumps({"order": order, "error": "no payment yet"}).encode()]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"order": order, "paid": row[0]}).encode()]
