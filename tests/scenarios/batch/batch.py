"""All of a batch in one transaction, marked processed at its end: a record that fails rolls the
marks back, and the retried batch charges the records before it again."""

import json
import os
import sqlite3

from pay import charge, first_try_fails


def handler(event, context):
    db = sqlite3.connect(os.environ["FAASEMU_STATE"], isolation_level=None, timeout=10)
    try:
        db.execute("BEGIN IMMEDIATE")
        for record in event["Records"]:
            payment = json.loads(record["body"])
            if db.execute("SELECT 1 FROM batch_processed WHERE message_id = ?", (record["messageId"],)).fetchone():
                continue
            first_try_fails(record, payment)
            charge("payment-batch", payment)
            db.execute("INSERT INTO batch_processed (message_id) VALUES (?)", (record["messageId"],))
        db.execute("COMMIT")
    finally:
        db.close()
