"""An Azure Functions app in the Python v2 programming model, exactly as `func azure functionapp publish` deploys it.

`hello` and `sales` answer HTTP under /api/. `count_sale` takes storage-queue messages and counts
each order once, deduplicating on the message id (a queue delivers at least once: a message whose
processing failed comes back with a higher dequeue_count). `audit` records Event Grid events.
"""

import json
import logging
import os
import sqlite3

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _db() -> sqlite3.Connection:
    return sqlite3.connect(os.environ.get("FAASEMU_STATE", "shop.db"))


@app.route(route="hello", methods=["GET", "POST"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/hello?name=Ada or POST {"name": "Ada"}: a greeting, as JSON."""
    name = req.params.get("name")
    if not name:
        try:
            name = req.get_json().get("name")
        except ValueError:
            pass
    if not name:
        return func.HttpResponse("Pass a name in the query string or in a JSON body.", status_code=400)
    return func.HttpResponse(json.dumps({"greeting": f"Hello, {name}!"}), mimetype="application/json")


@app.route(route="sales/{sku}", methods=["GET"])
def sales(req: func.HttpRequest) -> func.HttpResponse:
    """GET /api/sales/a1: units sold of one SKU."""
    sku = req.route_params["sku"]
    db = _db()
    try:
        row = db.execute("SELECT sold FROM sales WHERE sku = ?", (sku,)).fetchone()
    finally:
        db.close()
    return func.HttpResponse(json.dumps({"sku": sku, "sold": row[0] if row else 0}), mimetype="application/json")


@app.queue_trigger(arg_name="msg", queue_name="orders", connection="AzureWebJobsStorage")
def count_sale(msg: func.QueueMessage, context: func.Context) -> None:
    """Adds an order's quantity to its SKU once per message, whatever the number of deliveries."""
    order = msg.get_json()
    db = _db()
    try:
        with db:
            first = db.execute("INSERT OR IGNORE INTO processed (message_id) VALUES (?)", (msg.id,)).rowcount
            if first:
                db.execute("INSERT INTO sales (sku, sold) VALUES (?, ?) "
                           "ON CONFLICT (sku) DO UPDATE SET sold = sold + excluded.sold",
                           (order["sku"], order["quantity"]))
    finally:
        db.close()
    logging.info("message %s (dequeue %s, invocation %s)", msg.id, msg.dequeue_count, context.invocation_id)


@app.event_grid_trigger(arg_name="event")
def audit(event: func.EventGridEvent) -> None:
    """Keeps one audit row per Event Grid event id."""
    db = _db()
    try:
        with db:
            db.execute("INSERT OR IGNORE INTO audit (event_id, event_type, subject, order_id) VALUES (?, ?, ?, ?)",
                       (event.id, event.event_type, event.subject, event.get_json().get("id")))
    finally:
        db.close()
