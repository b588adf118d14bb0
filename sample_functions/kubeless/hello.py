"""An HTTP function: GET /hello?name=Ada, or POST {"name": "Ada"} as application/json."""


def handler(event, context):
    request = event["extensions"]["request"]
    data = event["data"] if isinstance(event["data"], dict) else {}
    name = request.query.name or data.get("name") or "world"
    return {"greeting": f"hello, {name}", "function": context["function-name"]}
