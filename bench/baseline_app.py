"""The baseline of bench/bench_up.py: a bare uvicorn + Starlette app calling the handler in-process.

    python bench/baseline_app.py --port 8000

uvloop + httptools, no access log, log level warning: the fastest ordinary way to put the same
handler behind HTTP in Python, and what PEERS.md calls "bare starlette + uvicorn".
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

HANDLER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "project", "handler.py")


def load_handler(path: str = HANDLER_FILE):
    sys.dont_write_bytecode = True  # leave no __pycache__ in bench/project
    spec = importlib.util.spec_from_file_location("bench_handler", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module.handler


handler = load_handler()


async def ok(request: Request) -> PlainTextResponse:
    event = {
        "version": "2.0",
        "routeKey": "GET /ok",
        "rawPath": request.url.path,
        "rawQueryString": request.url.query,
        "headers": dict(request.headers),
        "requestContext": {"http": {"method": request.method, "path": request.url.path}},
        "isBase64Encoded": False,
    }
    result = handler(event, None)
    return PlainTextResponse(result["body"], status_code=result["statusCode"])


app = Starlette(routes=[Route("/ok", ok, methods=["GET"])])

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning")
