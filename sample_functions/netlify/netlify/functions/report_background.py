"""POST /.netlify/functions/report-background {"title": ...}: answered 202 at once, run afterwards
(and retried if it raises). Its return value goes nowhere."""

import json
import os
import sqlite3


def handler(event, context):
    title = json.loads(event["body"] or "{}").get("title", "untitled")
    db = sqlite3.connect(os.environ.get("FAASEMU_STATE", "reports.db"))
    try:
        with db:
            db.execute("INSERT INTO reports (title) VALUES (?)", (title,))
    finally:
        db.close()
