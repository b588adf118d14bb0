"""A queue consumer: each message is a POST to /api/payments, the CloudEvent in binary mode.

Delivery is at least once, so the same message can arrive twice: the `ce-id` header is recorded in
the same transaction as the payment, and a message seen before changes nothing. Answering non-2xx
makes the queue deliver the message again.
"""

import json
import os
import sqlite3
from http.server import BaseHTTPRequestHandler


class handler(BaseHTTPRequestHandler):
    def do_POST(self):
        payment = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        db = sqlite3.connect(os.environ.get("FAASEMU_STATE", "payments.db"))
        try:
            with db:
                first = db.execute("INSERT OR IGNORE INTO seen_messages (id) VALUES (?)",
                                   (self.headers["ce-id"],)).rowcount
                if first:
                    db.execute("INSERT INTO payments (order_id, paid) VALUES (?, ?) "
                               "ON CONFLICT (order_id) DO UPDATE SET paid = paid + excluded.paid",
                               (payment["order"], payment["amount"]))
        finally:
            db.close()
        self.send_response(204)
        self.end_headers()
