# A module-level handle: func-python wraps it in its default Function.
import logging


async def handle(scope, receive, send):
    """Log a confirmed order and accept the event (202: nothing to reply)."""
    event = scope["event"]
    data = event.get_data()
    logging.info("receipt for order %s: total %s (event %s)", data["order"], data["total"], event.get_id())
    await send.http({"type": "http.response.start", "status": 202, "headers": []})
    await send.http({"type": "http.response.body", "body": b""})
