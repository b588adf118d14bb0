"""Two EventBridge-triggered Lambdas sharing one table: `add` puts an item in a cart, `remove`
takes it out. Each alone is idempotent; together they depend on the add arriving first."""

import os
import sqlite3


def _run(sql, detail):
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    try:
        with db:
            db.execute(sql, (detail["cart"], detail["item"]))
    finally:
        db.close()


def add(event, context):
    _run("INSERT OR IGNORE INTO cart_items (cart, item) VALUES (?, ?)", event["detail"])


def remove(event, context):
    _run("DELETE FROM cart_items WHERE cart = ? AND item = ?", event["detail"])
