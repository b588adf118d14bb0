"""The 3factor app of the trigger tests: an order placed over HTTP, paid on its insert, shipped on the
status update the payment writes. Runs on SQLite ($FAASEMU_STATE) or PostgreSQL ($DATABASE_URL)."""

import json
import os
import sqlite3


def db():
    url = os.environ.get("DATABASE_URL")
    if url:
        import psycopg

        return psycopg.connect(url), "%s"
    return sqlite3.connect(os.environ["FAASEMU_STATE"], timeout=30), "?"


def run(sql, *params):
    connection, mark = db()
    try:
        connection.execute(sql.replace("?", mark), params)
        connection.commit()
    finally:
        connection.close()


def record(name, payload):
    with open(f"{name}.jsonl", "a") as file:
        file.write(json.dumps(payload) + "\n")


def place(event, context):
    order = json.loads(event["body"])
    run("INSERT INTO orders (id, status) VALUES (?, 'placed')", order["id"])
    return {"statusCode": 201, "body": json.dumps({"id": order["id"]})}


def charge(event, context):
    payload = json.loads(event["body"])
    record("charge", payload)
    order = payload["event"]["data"]["new"]
    if order["id"].startswith("flaky") and payload["delivery_info"]["current_retry"] == 0:
        return {"statusCode": 503, "body": "try again"}
    if order["id"].startswith("broken"):
        return {"statusCode": 500, "body": "card declined"}
    run("INSERT INTO payments (order_id) VALUES (?)", order["id"])
    run("UPDATE orders SET status = 'paid' WHERE id = ?", order["id"])
    return {"statusCode": 200, "body": "ok"}


def ship(event, context):
    payload = json.loads(event["body"])
    record("ship", payload)
    run("INSERT INTO shipments (order_id) VALUES (?)", payload["event"]["data"]["new"]["id"])
    return {"statusCode": 200}
