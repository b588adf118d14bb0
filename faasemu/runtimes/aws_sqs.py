"""PURE: SQS for AWS Lambda: the records of an SQS event source mapping (standard and FIFO queues, the
attributes and MD5s a SendMessage carried) and Lambda's reading of a partial batch response.

Split from aws_lambda.py (whose `build_event` and Adapter call `sqs_record` and `batch_failures`)
so that the SQS API (delivery/sqs_api.py) shares the record's facts without the runtime.
docs/delivery.md#batches-sqs and #sqs-sends-become-events describe the behaviour. Runs inside
workers, so standard library only; hashlib is imported where used (see aws_lambda.py).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from faasemu.events.model import event_time
from faasemu.project.spec import FunctionSpec
from faasemu.runtimes.aws_common import ACCOUNT, JSON_KINDS, LambdaFault, event_payload, order_value, region
from faasemu.runtimes.base import Delivery

FIFO_SEQUENCE_BASE = 10**19  # SequenceNumber: 20 decimal digits, increasing with the position


def message_group_id(event: dict[str, Any], path: str) -> str:
    """A FIFO record's MessageGroupId: the order key's value as text (a string as is, anything else as
    JSON). A FIFO queue refuses a message without a group id, so an event with no value at the path
    is its own group: its id (it is then ordered with nothing else, as the chaos model treats it)."""
    value = order_value(event, path)
    if value is None:
        return str(event["id"])
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


# CloudEvent extension attributes an SQS send carries to its consumer's records (delivery/sqs_api.py
# writes them; docs/delivery.md#sqs-sends-become-events): the queue's name, the sender's message
# attributes (their JSON, as SendMessage's request had them), MessageGroupId and MessageDeduplicationId.
SQS_QUEUE, SQS_ATTRIBUTES, SQS_GROUP, SQS_DEDUP = "sqsqueue", "sqsattributes", "sqsgroup", "sqsdedup"


def message_attributes_md5(attributes: dict[str, Any]) -> str:
    """MD5OfMessageAttributes, by the algorithm the SQS developer guide documents ("Calculating the MD5
    message digest for message attributes"): attributes sorted by name; each is its name, its data
    type (each a 4-byte big-endian length and UTF-8 bytes), a transport byte (1 for String and
    Number, 2 for Binary) and its value (length and bytes). `attributes` are in SendMessage's form
    (`{"DataType": ..., "StringValue" | "BinaryValue": ...}`), a BinaryValue base64 text as in JSON."""
    import hashlib

    digest = hashlib.md5(usedforsecurity=False)

    def put(data: bytes) -> None:
        digest.update(len(data).to_bytes(4, "big") + data)

    for name in sorted(attributes):
        value = attributes[name]
        kind = str(value.get("DataType", ""))
        put(name.encode())
        put(kind.encode())
        if kind.startswith("Binary"):
            digest.update(b"\x02")
            put(base64.b64decode(value.get("BinaryValue") or ""))
        else:
            digest.update(b"\x01")
            put(str(value.get("StringValue", "")).encode())
    return digest.hexdigest()


def record_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """SendMessage's MessageAttributes as a Lambda SQS record writes them (camelCase, empty lists)."""
    shown: dict[str, Any] = {}
    for name, value in attributes.items():
        entry: dict[str, Any] = {}
        if "StringValue" in value:
            entry["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            entry["binaryValue"] = value["BinaryValue"]
        shown[name] = {**entry, "stringListValues": [], "binaryListValues": [], "dataType": value.get("DataType")}
    return shown


def sqs_record(delivery: Delivery, spec: FunctionSpec, sequence: int | None = None) -> dict[str, Any]:
    """One SQS record: messageId is the event id, receiptHandle new on every receive, the receive count
    the attempt. A function with `order_key` reads a FIFO queue (`<name>.fifo`): its records also carry
    MessageGroupId, SequenceNumber (from `sequence`, the event's position; 1 when unknown, as in
    `faasemu invoke`) and MessageDeduplicationId (the event id), as SQS FIFO gives them. An event a
    handler sent with SendMessage (the `sqs*` extensions above) names its queue, and carries the
    sender's message attributes, group id and deduplication id, as the queue would have kept them."""
    import hashlib

    ce = delivery.event
    _, text = event_payload(ce)
    aws_region = region(spec)
    per_attempt = delivery.attempt_id or f"{ce['id']}/{delivery.attempt}"
    digest = hashlib.sha256(f"{per_attempt}\0{ce['id']}".encode()).digest()
    sent = str(int(event_time(ce).timestamp() * 1000))
    attributes = {"ApproximateReceiveCount": str(delivery.attempt), "SentTimestamp": sent}
    queue = str(ce.get(SQS_QUEUE) or spec.name)
    if spec.order_key:
        queue += "" if queue.endswith(".fifo") else ".fifo"
        attributes["SequenceNumber"] = str(FIFO_SEQUENCE_BASE + (1 if sequence is None else sequence))
        attributes["MessageGroupId"] = message_group_id(ce, spec.order_key)
    attributes["SenderId"] = "AIDAFAASEMUSENDER0000"
    if spec.order_key:
        attributes["MessageDeduplicationId"] = str(ce.get(SQS_DEDUP) or ce["id"])
    attributes["ApproximateFirstReceiveTimestamp"] = sent
    sent_attributes = _sent_attributes(ce)
    record: dict[str, Any] = {
        "messageId": ce["id"],
        "receiptHandle": "AQEB" + base64.b64encode(digest * 3).decode(),  # new on every receive
        "body": text,
        "attributes": attributes,
        "messageAttributes": record_attributes(sent_attributes),
        "md5OfBody": hashlib.md5(text.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{aws_region}:{ACCOUNT}:{queue}",
        "awsRegion": aws_region,
    }
    if sent_attributes:
        record["md5OfMessageAttributes"] = message_attributes_md5(sent_attributes)
    return record


def _sent_attributes(event: dict[str, Any]) -> dict[str, Any]:
    """The message attributes an SQS send carried (the `sqsattributes` extension's JSON), else none."""
    try:
        value = json.loads(str(event.get(SQS_ATTRIBUTES) or "{}"))
    except ValueError:
        return {}
    return {name: entry for name, entry in value.items() if isinstance(entry, dict)} if isinstance(value, dict) else {}


class InvalidBatchResponse(LambdaFault):
    """A `batchItemFailures` answer Lambda cannot read: it then treats the whole batch as failed."""

    error_type = "InvalidBatchResponse"


def batch_failures(result: Any, message_ids: Sequence[str]) -> list[int]:
    """The positions of the records a ReportBatchItemFailures answer names as failed.

    AWS's rules (Lambda developer guide, "Handling errors for an SQS event source", success and
    failure conditions): None, `{}`, an object without `batchItemFailures`, a null or empty list mean
    every record succeeded; the whole batch failed (InvalidBatchResponse) when the answer is not a
    JSON object, `batchItemFailures` is not a list, or an entry lacks a non-empty string
    `itemIdentifier` or names a messageId that is not in the batch.
    """
    failing = "Lambda treats the whole batch as failed"
    if result is None:
        return []
    if not isinstance(result, dict):
        raise InvalidBatchResponse(
            f"the handler returned {_json_kind(result)}, not an object like "
            f'{{"batchItemFailures": [{{"itemIdentifier": "<messageId>"}}]}} (report_batch_item_failures is on); '
            f"{failing}")
    failures = result.get("batchItemFailures")
    if failures is None:
        return []
    if not isinstance(failures, list):
        raise InvalidBatchResponse(f"batchItemFailures is {_json_kind(failures)}, not a list of "
                                   f'{{"itemIdentifier": "<messageId>"}}; {failing}')
    positions: list[int] = []
    for number, entry in enumerate(failures):
        where = f"batchItemFailures[{number}]"
        if not isinstance(entry, dict) or "itemIdentifier" not in entry:
            found = f"keys {', '.join(map(str, entry))}" if isinstance(entry, dict) and entry else _json_kind(entry)
            raise InvalidBatchResponse(f"{where} has no itemIdentifier (found {found}); {failing}")
        identifier = entry["itemIdentifier"]
        if not isinstance(identifier, str) or not identifier:
            raise InvalidBatchResponse(f"{where}.itemIdentifier is {_json_kind(identifier)}, not a messageId of the "
                                       f"batch; {failing}")
        if identifier not in message_ids:
            raise InvalidBatchResponse(f"{where}.itemIdentifier {identifier!r} is not a messageId of this batch "
                                       f"({', '.join(message_ids)}); {failing}")
        position = list(message_ids).index(identifier)
        if position not in positions:
            positions.append(position)
    return sorted(positions)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return "an empty string" if not value else f"a string ({value[:40]!r})"
    if isinstance(value, dict):
        return "a JSON object"
    return f"a JSON {JSON_KINDS.get(type(value), type(value).__name__)}"


def delivers_batches(spec: FunctionSpec) -> bool:
    """Whether the bus and `replay` deliver this function's events as SQS batches (the worker's
    `records` operation): an SQS event source with a batch size above 1, partial batch responses,
    or a FIFO queue (`order_key`, whose records carry positions). Otherwise one record per
    invocation, exactly as before batches existed."""
    return spec.options.get("event_source", "eventbridge") == "sqs" and (
        spec.batch_size > 1 or spec.report_batch_item_failures or spec.order_key is not None)
