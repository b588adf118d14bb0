"""functions-framework's ASGI mode: @functions_framework.aio.* functions get a Starlette Request."""

import asyncio
import json
import os

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

import functions_framework.aio


@functions_framework.aio.http
async def web(request):
    kind = request.url.path.strip("/").split("/")[0]
    if kind == "echo":
        body = await request.body()
        return {"class": type(request).__module__ + "." + type(request).__name__, "method": request.method,
                "path": request.url.path, "query": dict(request.query_params), "body": body.decode(),
                "has_execution_id": bool(request.headers.get("function-execution-id")),
                "is_starlette": isinstance(request, Request)}
    if kind == "text":
        await asyncio.sleep(0)
        return "plain text"
    if kind == "tuple":
        return "created", 201
    if kind == "dict-tuple":
        return {"made": True}, 202
    if kind == "response":
        return PlainTextResponse("made by hand", status_code=203, headers={"X-Custom": "yes"})
    if kind == "none":
        return None
    if kind == "http-error":
        raise HTTPException(status_code=409, detail="conflict here")
    raise ValueError(f"aio crash: {kind}")


@functions_framework.aio.http
def sync_web(request):
    return {"sync": True, "class": type(request).__name__}


@functions_framework.aio.cloud_event
async def on_event(cloud_event):
    with open(os.environ["RECORD_FILE"], "a") as out:
        out.write(json.dumps({"id": cloud_event["id"], "type": cloud_event["type"], "data": cloud_event.data,
                              "class": type(cloud_event).__module__ + "." + type(cloud_event).__name__}) + "\n")
    if cloud_event.data == {"fail": True}:
        raise RuntimeError("aio event failed")
