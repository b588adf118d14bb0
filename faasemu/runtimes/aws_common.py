"""PURE: what every AWS module here shares: the fake account and region, the runtime's own fault type, and
how a CloudEvent's payload reads (`event_payload`, `order_value`).

Its own module because the Lambda runtime (aws_lambda.py), API Gateway's events (aws_apigw.py), SQS's
records (aws_sqs.py) and the other event sources (aws_sources.py) all need these and aws_lambda.py
imports the others: kept here, none of them imports aws_lambda.py back. Runs inside workers, so
standard library only.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from faasemu.project.spec import FunctionSpec

ACCOUNT = "000000000000"  # a fixed fake account id, as in AWS's documentation examples
DEFAULT_REGION = "us-east-1"
JSON_KINDS = {str: "string", list: "list", int: "number", float: "number", bool: "boolean"}  # for error messages


class LambdaFault(Exception):
    """An error the runtime itself reports (awslambdaric's FaultException): its type is not a class name."""

    error_type = "Runtime.Unknown"


def region(spec: FunctionSpec) -> str:
    """The function's AWS_REGION (its manifest `env`), else us-east-1."""
    return spec.env.get("AWS_REGION") or DEFAULT_REGION


def event_payload(event: dict[str, Any]) -> tuple[Any, str]:
    """(data as a JSON value, its text as a sender would have written it) for a CloudEvent.

    `data_base64` is decoded: its text is the message; its value is that text parsed as JSON when
    it parses, else the text. A str `data` that is not declared JSON is sent as is, not quoted.
    """
    if "data_base64" in event:
        text = base64.b64decode(event["data_base64"]).decode("utf-8", errors="replace")
        try:
            return json.loads(text), text
        except ValueError:
            return text, text
    data = event.get("data")
    mime = str(event.get("datacontenttype") or "application/json")
    if isinstance(data, str) and "json" not in mime:
        return data, data
    return data, json.dumps(data)


def order_value(event: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (`data.order`) of a CloudEvent, or None where there is none.
    `data` is the decoded payload (also for `data_base64`). Written here, not taken from
    chaos/model.py, because runtimes sit below chaos (docs/architecture.md#layers)."""
    value: Any = {**event, "data": event_payload(event)[0]} if "data" in event or "data_base64" in event else event
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value

