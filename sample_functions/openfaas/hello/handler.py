"""The python3-http template's handler: GET /function/hello?name=Ada or POST {"name": "Ada"}."""

import json


def handle(event, context):
    body = json.loads(event.body) if event.body else {}
    name = event.query.get("name") or body.get("name") or "world"
    return {
        "statusCode": 200,
        "body": {"greeting": f"hello, {name}", "served_by": context.hostname},
    }
