"""The AWS Lambda API of `faasemu up`, so boto3, the AWS CLI and the AWS Toolkit work with `endpoint_url`.

Implemented: Invoke (`RequestResponse`, `Event`, `DryRun`; `LogType: Tail`; `ClientContext`),
ListFunctions, GetFunction and GetFunctionConfiguration, the last three answered from the
manifest. Every other operation, under any of the API versions Lambda's paths use, answers 501
with an `x-amzn-ErrorType` saying what faasemu implements, instead of a 404 a client cannot read.
Errors are shaped as Lambda's REST-JSON errors: the code in `x-amzn-ErrorType`, `{"Type", "message"}`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import platform
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from faasemu.project.spec import FunctionSpec
from faasemu.runtimes import aws_common, aws_lambda
from faasemu.runtimes.base import Invocation, new_request_id

if TYPE_CHECKING:
    from faasemu.server.gateway import Gateway

# Every API version that appears in the paths of Lambda's operations (botocore's lambda model).
API_VERSIONS = ("2014-11-13", "2015-03-31", "2016-08-19", "2017-03-31", "2017-10-31", "2018-10-31", "2019-09-25",
                "2019-09-30", "2020-04-22", "2020-06-30", "2021-07-20", "2021-10-31", "2021-11-15", "2024-08-31",
                "2025-11-30", "2025-12-01", "2026-07-09")
HIDDEN_VALUE = "(hidden by faasemu: see the manifest)"
PREFIXES = tuple(f"/{version}/" for version in API_VERSIONS)
IMPLEMENTED = "Invoke, ListFunctions, GetFunction and GetFunctionConfiguration"
LOG_TAIL_BYTES = 4096  # Lambda returns the last 4 KB of the invocation's log
CLIENT_CONTEXT_LIMIT = 3583  # bytes of the decoded ClientContext JSON Lambda accepts
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Lambda's error shape: botocore reads the code from `x-amzn-ErrorType` and `message` from the body."""
    kind = "User" if status < 500 else "Service"
    return JSONResponse({"Type": kind, "message": message}, status_code=status,
                        headers={"x-amzn-ErrorType": code, **(headers or {})})


def function_name(given: str) -> str:
    """`name`, `name:qualifier` or `arn:aws:lambda:region:account:function:name[:qualifier]` -> name."""
    if given.startswith("arn:"):
        parts = given.split(":")
        return parts[6] if len(parts) > 6 else given
    return given.split(":", 1)[0]


class LambdaApi:
    """The routes; `gateway` gives the supervisor (functions, workers, console) and the bus."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def routes(self) -> list[Route]:
        routes = [
            Route("/2015-03-31/functions/{name}/invocations", self.invoke, methods=["POST"]),
            Route("/2015-03-31/functions", self.list_functions, methods=["GET"]),
            Route("/2015-03-31/functions/", self.list_functions, methods=["GET"]),
            Route("/2015-03-31/functions/{name}", self.get_function, methods=["GET"]),
            Route("/2015-03-31/functions/{name}/configuration", self.get_function_configuration, methods=["GET"]),
        ]
        routes.extend(Route(prefix + "{rest:path}", self.not_implemented, methods=ALL_METHODS) for prefix in PREFIXES)
        return routes

    # -- lookups ---------------------------------------------------------------------------------

    def _spec(self, given: str) -> tuple[FunctionSpec | None, JSONResponse | None]:
        """The Lambda function named in the path, or the error Lambda gives for it."""
        name = function_name(given)
        pool = self.gateway.supervisor.pools.get(name)
        arn = f"arn:aws:lambda:{aws_common.DEFAULT_REGION}:{aws_common.ACCOUNT}:function:{name}"
        if pool is None:
            return None, error(404, "ResourceNotFoundException", f"Function not found: {arn}")
        if pool.spec.runtime != "aws-lambda":
            return None, error(404, "ResourceNotFoundException",
                               f"Function not found: {arn} (faasemu serves {name} as a {pool.spec.runtime} function, "
                               "not an aws-lambda one)")
        return pool.spec, None

    # -- configuration ---------------------------------------------------------------------------

    def configuration(self, spec: FunctionSpec) -> dict[str, Any]:
        """FunctionConfiguration as Lambda shapes it, from the manifest and the handler file."""
        root = self.gateway.supervisor.manifest.root
        code = b""
        modified = time.time()
        if spec.handler_file:
            try:
                with open(spec.handler_file, "rb") as source:
                    code = source.read()
                modified = os.stat(spec.handler_file).st_mtime
            except OSError:
                pass
        digest = hashlib.sha256(code).digest()
        millis = int(modified * 1000) % 1000
        return {
            "FunctionName": spec.name,
            "FunctionArn": aws_lambda.function_arn(spec),
            "Runtime": f"python{sys.version_info.major}.{sys.version_info.minor}",
            "Role": f"arn:aws:iam::{aws_common.ACCOUNT}:role/faasemu",
            "Handler": aws_lambda.handler_setting(spec, root),
            "CodeSize": len(code),
            "Description": "",
            "Timeout": math.ceil(spec.timeout),
            "MemorySize": spec.memory,
            "LastModified": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(modified)) + f".{millis:03d}+0000",
            "CodeSha256": base64.b64encode(digest).decode(),
            "Version": "$LATEST",
            # Names only: the values may come from `.env` or `${VAR}` (secrets), and this API has no
            # authentication; AWS returns them to an authorised caller, faasemu to nobody.
            "Environment": {"Variables": {name: HIDDEN_VALUE for name in spec.env}},
            "TracingConfig": {"Mode": "PassThrough"},
            "RevisionId": str(uuid.UUID(bytes=digest[:16], version=4)),
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
            "Architectures": ["arm64" if platform.machine() in ("arm64", "aarch64") else "x86_64"],
            "EphemeralStorage": {"Size": 512},
            "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
            "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{spec.name}"},
        }

    async def list_functions(self, request: Request) -> Response:
        """Only aws-lambda functions: the others are not Lambda functions, and Invoke cannot call them."""
        specs = [pool.spec for pool in self.gateway.supervisor.pools.values() if pool.spec.runtime == "aws-lambda"]
        return JSONResponse({"Functions": [self.configuration(spec) for spec in specs]})

    async def get_function(self, request: Request) -> Response:
        spec, failure = self._spec(request.path_params["name"])
        if spec is None:
            return failure or error(404, "ResourceNotFoundException", "Function not found")
        location = "file://" + (spec.handler_file or self.gateway.supervisor.manifest.root)
        return JSONResponse({"Configuration": self.configuration(spec),
                             "Code": {"RepositoryType": "S3", "Location": location}, "Tags": {}})

    async def get_function_configuration(self, request: Request) -> Response:
        spec, failure = self._spec(request.path_params["name"])
        if spec is None:
            return failure or error(404, "ResourceNotFoundException", "Function not found")
        return JSONResponse(self.configuration(spec))

    async def not_implemented(self, request: Request) -> Response:
        return error(501, "NotImplementedException",
                     f"faasemu does not implement {request.method} {request.url.path} of the Lambda API: it implements "
                     f"only {IMPLEMENTED}, answered from the manifest")

    # -- Invoke ----------------------------------------------------------------------------------

    async def invoke(self, request: Request) -> Response:
        """Invoke: `RequestResponse` runs now and answers the result; `Event` is queued on the bus (202)."""
        name = function_name(request.path_params["name"])
        supervisor = self.gateway.supervisor
        pool = supervisor.pools.get(name)
        if pool is None:
            return error(404, "ResourceNotFoundException",
                         f"Function not found: arn:aws:lambda:{aws_common.DEFAULT_REGION}:{aws_common.ACCOUNT}"
                         f":function:{name}")
        if not pool.adapter_module.capabilities.raw_invocation:
            routes = ", ".join(t.path for t in pool.adapter_module.http_routes(pool.spec)) or "none"
            return error(400, "InvalidParameterValueException",
                         f"function {name} runs on runtime {pool.spec.runtime}, which has no raw invocation: the "
                         f"Lambda Invoke API calls aws-lambda functions only. Call its HTTP routes ({routes}) or POST "
                         "an event to /_faasemu/events")
        body = await self.gateway._body(request)
        if body is None:
            return error(413, "RequestTooLargeException", "Request must be smaller than 6291456 bytes for the "
                         "InvokeFunction operation")
        try:
            event = json.loads(body) if body.strip() else {}
        except ValueError as exc:
            return error(400, "InvalidRequestContentException",
                         f"Could not parse request body into json: the payload is not JSON ({exc})")
        kind = request.headers.get("x-amz-invocation-type", "RequestResponse")
        if kind not in ("RequestResponse", "Event", "DryRun"):
            return error(400, "InvalidParameterValueException",
                         f"Invalid invocation type {kind!r}: Lambda accepts RequestResponse, Event or DryRun")
        context = request.headers.get("x-amz-client-context", "")
        if context:
            problem = _client_context_problem(context)
            if problem:
                return error(400, "InvalidRequestContentException", f"Client context {problem}")
        if kind == "DryRun":
            return Response(status_code=204, headers={"x-amzn-RequestId": new_request_id()})
        if kind == "Event":
            request_id = new_request_id()
            queued = {"specversion": "1.0", "id": request_id, "source": aws_lambda.INVOKE_EVENT_TYPE,
                      "type": aws_lambda.INVOKE_EVENT_TYPE, "time": _now(), "datacontenttype": "application/json",
                      "data": event}
            await self.gateway.bus.publish([queued], "invoke-api", target=name, op="raw")
            return Response(status_code=202, headers={"x-amzn-RequestId": request_id})
        inv = Invocation(new_request_id(), 0.0, client_context=context)
        outcome = await pool.call({"op": "raw", "inv": inv.to_wire()}, body or b"{}")
        headers = {"x-amz-executed-version": "$LATEST", "x-amzn-RequestId": inv.request_id}
        supervisor.report(name, "invoke api", "ok" if outcome.ok else outcome.kind, outcome)
        if request.headers.get("x-amz-log-type", "None") == "Tail":
            log = _log_text(inv.request_id, outcome, pool.spec)
            headers["x-amz-log-result"] = base64.b64encode(log[-LOG_TAIL_BYTES:]).decode()
        if outcome.ok:
            return Response(outcome.body, headers={**headers, "content-type": "application/json"})
        payload = outcome.reply.get("payload")
        if payload is None:
            payload = aws_lambda.failure_payload(outcome.kind, outcome.message, inv.request_id)
        headers["x-amz-function-error"] = "Unhandled"
        return JSONResponse(payload, headers=headers)


def _client_context_problem(encoded: str) -> str:
    """Why an `X-Amz-Client-Context` is not what Lambda accepts (base64 of a JSON object), or ''."""
    try:
        decoded = base64.b64decode(encoded, validate=True)
    except ValueError:
        return "must be a valid Base64-encoded JSON object: it is not base64"
    if len(decoded) > CLIENT_CONTEXT_LIMIT:
        return f"must be at most {CLIENT_CONTEXT_LIMIT} bytes once decoded; it is {len(decoded)}"
    try:
        value = json.loads(decoded)
    except ValueError:
        return "must be a valid Base64-encoded JSON object: its text is not JSON"
    return "" if isinstance(value, dict) else "must be a valid Base64-encoded JSON object, not a JSON " + type(
        value).__name__


def _log_text(request_id: str, outcome: Any, spec: FunctionSpec) -> bytes:
    """The invocation's log as CloudWatch would hold it: START, the handler's output, END, REPORT."""
    output: bytes = outcome.reply.get("log") or b""
    if output and not output.endswith(b"\n"):
        output += b"\n"
    if outcome.kind == "timeout":
        output += f"{_now()} {request_id} {outcome.message}\n".encode()
    elif outcome.kind in ("crash", "oom", "unavailable"):
        output += f"{_now()} {request_id} Error: {outcome.message}\n".encode()
    duration = f"Duration: {outcome.ms:.2f} ms\tBilled Duration: {max(1, math.ceil(outcome.ms))} ms"
    init = f"\tInit Duration: {outcome.cold_ms:.2f} ms" if outcome.cold_ms is not None else ""
    return (f"START RequestId: {request_id} Version: $LATEST\n".encode() + output
            + f"END RequestId: {request_id}\n".encode()
            + f"REPORT RequestId: {request_id}\t{duration}\tMemory Size: {spec.memory} MB{init}\t\n".encode())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
