"""An SQS-triggered Lambda that counts units sold per SKU.

Not idempotent, on purpose: every delivery adds the quantity again, so a duplicate SQS message
(same `messageId`) counts the sale twice. `faasemu replay --duplicates 0.5` shows it.
"""

import json
import os
import sqlite3


def count_sale(event, context):
    for record in event["Records"]:
        order = json.loads(record["body"])
        with sqlite3.connect(os.environ["FAASEMU_STATE"]) as db:
            db.execute(
                "INSERT INTO sales (sku, sold) VALUES (?, ?) ON CONFLICT (sku) DO UPDATE SET sold = sold + ?",
                (order["sku"], order["quantity"], order["quantity"]),
            )
