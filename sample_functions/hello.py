"""The smallest Lambda handler behind an HTTP route."""


def hello(event, context):
    name = (event.get("queryStringParameters") or {}).get("name", "world")
    return {
        "statusCode": 200,
        "headers": {"content-type": "text/plain"},
        "body": f"hello, {name} (from {context.function_name})\n",
    }
