# Function
import json
import logging


def new():
    """New is the only method that must be implemented by a Function."""
    return Function()


class Function:
    def __init__(self):
        self.greeting = "Hello"

    def start(self, cfg):
        """Called once when an instance starts, with the environment as a dict."""
        self.greeting = cfg.get("GREETING", "Hello")
        logging.info("Function starting")

    async def handle(self, scope, receive, send):
        """Greet whoever the query string names; echo a JSON body back on POST."""
        body = b""
        more_body = True
        while more_body:
            message = await receive()
            body += message.get("body", b"")
            more_body = message.get("more_body", False)

        query = dict(pair.split("=", 1) for pair in scope["query_string"].decode().split("&") if "=" in pair)
        payload = {
            "message": f"{self.greeting}, {query.get('name', 'world')}!",
            "method": scope["method"],
            "path": scope["path"],
        }
        if body:
            payload["echo"] = json.loads(body)
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [[b"content-type", b"application/json"]],
        })
        await send({"type": "http.response.body", "body": json.dumps(payload).encode()})

    def alive(self):
        return True, "Alive"

    def ready(self):
        return True, "Ready"
