"""SQS-triggered Lambdas counting units sold per SKU, each deduplicating on a different id."""

import json
import os
import sqlite3


def _tally(counter, dedup_key, record):
    order = json.loads(record["body"])
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    try:
        with db:
            first = db.execute("INSERT OR IGNORE INTO seen (counter, dedup_key) VALUES (?, ?)",
                               (counter, dedup_key)).rowcount
            if first:
                db.execute(
                    "INSERT INTO sold (counter, sku, quantity) VALUES (?, ?, ?) "
                    "ON CONFLICT (counter, sku) DO UPDATE SET quantity = quantity + excluded.quantity",
                    (counter, order["sku"], order["quantity"]),
                )
    finally:
        db.close()


def by_receipt_handle(event, context):
    """Wrong: SQS gives every receive of a message a new receiptHandle."""
    for record in event["Records"]:
        _tally("receipt-handle", record["receiptHandle"], record)


def by_request_id(event, context):
    """Wrong: Lambda gives every invocation, retries included, a new aws_request_id."""
    for record in event["Records"]:
        _tally("request-id", context.aws_request_id, record)


def by_message_id(event, context):
    """Right: the messageId is the same on every receive of a message."""
    for record in event["Records"]:
        _tally("message-id", record["messageId"], record)
