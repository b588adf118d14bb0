"""Each record alone: Powertools' BatchProcessor reports the ones that failed (ReportBatchItemFailures),
each record is claimed in its own transaction, and the charge carries the message id as its
Idempotency-Key, so a retry (of the record, or after a crash) never charges twice."""

import json
import os
import sqlite3

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from pay import charge, first_try_fails

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record):
    payment = json.loads(record.body)
    first_try_fails(record.raw_event, payment)
    db = sqlite3.connect(os.environ["FAASEMU_STATE"], isolation_level=None, timeout=10)
    try:
        db.execute("BEGIN IMMEDIATE")
        claimed = db.execute("INSERT OR IGNORE INTO partial_processed (message_id) VALUES (?)",
                             (record.message_id,)).rowcount
        if claimed:
            charge("payment-partial", payment, key=record.message_id)
        db.execute("COMMIT")
    finally:
        db.close()


def handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
