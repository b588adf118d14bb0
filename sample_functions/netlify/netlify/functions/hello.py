"""GET /.netlify/functions/hello?name=Ada: a greeting, answered as a Lambda-style dict."""

import json


def handler(event, context):
    name = (event["queryStringParameters"] or {}).get("name", "world")
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"greeting": f"hello, {name}", "method": event["httpMethod"]}),
    }
