"""Two Cloud Run functions, exactly as deployed with `gcloud functions deploy`.

`hello` answers HTTP; `count_signup` takes CloudEvents (Eventarc) and counts each signup once,
deduplicating on the CloudEvent id: delivery is at least once, so the same event can come twice.
"""

import os
import sqlite3

import functions_framework


@functions_framework.http
def hello(request):
    """GET /hello?name=Ada or POST {"name": "Ada"}: a greeting, as JSON."""
    body = request.get_json(silent=True) or {}
    name = request.args.get("name") or body.get("name") or "world"
    return {"greeting": f"hello, {name}", "service": os.environ.get("K_SERVICE")}


@functions_framework.cloud_event
def count_signup(cloud_event):
    """Counts signups per plan; a redelivered event (same id) changes nothing."""
    plan = cloud_event.data["plan"]
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])  # the app's database; faasemu gives each run its own
    try:
        with db:
            first = db.execute("INSERT OR IGNORE INTO seen_events (id) VALUES (?)", (cloud_event["id"],)).rowcount
            if first:
                db.execute("INSERT INTO signups (plan, count) VALUES (?, 1) "
                           "ON CONFLICT (plan) DO UPDATE SET count = count + 1", (plan,))
    finally:
        db.close()
