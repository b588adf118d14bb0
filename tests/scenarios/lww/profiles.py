"""Two EventBridge-triggered Lambdas that keep a user's email address.

`by_arrival` overwrites whatever is there: idempotent, but the last *delivery* wins, so an old
update delivered late overwrites a newer one. `by_version` overwrites only an older version
(`UPDATE ... WHERE version < ?`), so the highest version wins whatever the order.
"""

import os
import sqlite3


def _connect():
    return sqlite3.connect(os.environ["FAASEMU_STATE"])


def by_arrival(event, context):
    detail = event["detail"]
    db = _connect()
    try:
        with db:
            db.execute(
                "INSERT INTO profiles_by_arrival (user_id, email) VALUES (?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET email = excluded.email",
                (detail["user"], detail["email"]),
            )
    finally:
        db.close()


def by_version(event, context):
    detail = event["detail"]
    db = _connect()
    try:
        with db:
            db.execute(
                "INSERT OR IGNORE INTO profiles (user_id, email, version) VALUES (?, ?, ?)",
                (detail["user"], detail["email"], detail["version"]),
            )
            db.execute(
                "UPDATE profiles SET email = ?, version = ? WHERE user_id = ? AND version < ?",
                (detail["email"], detail["version"], detail["user"], detail["version"]),
            )
    finally:
        db.close()
