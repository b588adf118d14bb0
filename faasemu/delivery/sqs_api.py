"""PURE: a small stand-in for the SQS API, so a handler's `boto3.client("sqs").send_message(...)` becomes
an event of the project instead of a call to AWS (docs/delivery.md#sqs-sends-become-events).

Handlers find it through `AWS_ENDPOINT_URL_SQS` (project/environment.py), served at `<effects base>/sqs`
by `up`'s gateway (server/gateway.py) and by `LocalEffectServer` (delivery/effects.py, per lane too).
Both servers call `SqsApi.handle` and then emit the events it returns exactly as a POST to
`$FAASEMU_EVENTS_URL` would; this module does no I/O, so the two answer alike.

The protocol is the one botocore speaks to SQS today: AWS JSON 1.0 (`X-Amz-Target: AmazonSQS.<Action>`,
`application/x-amz-json-1.0`), with errors as `{"__type", "message"}` and the query error code in the
`x-amzn-query-error` header, which botocore maps to its modeled exceptions (`QueueDoesNotExist` ...).
Actions: SendMessage, SendMessageBatch, GetQueueUrl, ListQueues. The queues are the manifest's
`queues:` (a queue name -> the event type its consumer subscribes to).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from faasemu.runtimes.aws_common import ACCOUNT
from faasemu.runtimes.aws_sqs import (
    FIFO_SEQUENCE_BASE,
    SQS_ATTRIBUTES,
    SQS_DEDUP,
    SQS_GROUP,
    SQS_QUEUE,
    message_attributes_md5,
)

TARGET_PREFIX = "AmazonSQS."
JSON_TYPE = "application/x-amz-json-1.0"
ACTIONS = ("SendMessage", "SendMessageBatch", "GetQueueUrl", "ListQueues")
MAX_BATCH = 10  # SQS's limit on the entries of one SendMessageBatch


@dataclass(frozen=True, slots=True)
class SqsAnswer:
    """What to answer one request, and the events it sends (to emit before answering, in order).

    `events` are CloudEvents in JSON form without a `time`; one without an `id` is a message of a
    standard queue, whose id is then the broker's to give (`message_ids` holds the MessageId the
    sender was told, for a server that uses it as the id); a FIFO message's id is its deduplication
    id, so a resend within the same run is one event, as a FIFO queue keeps one message.
    """

    status: int
    payload: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)


class SqsError(Exception):
    """A request SQS refuses: `kind` is its shape name (`__type`), `code` its query error code."""

    def __init__(self, kind: str, code: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.code, self.message = kind, code, message


def error_answer(error: SqsError) -> SqsAnswer:
    """SQS's JSON error shape; the header is what makes boto3 raise e.g. `QueueDoesNotExist`."""
    return SqsAnswer(400, {"__type": f"com.amazonaws.sqs#{error.kind}", "message": error.message},
                     {"x-amzn-query-error": f"{error.code};Sender"})


def body_md5(body: str) -> str:
    """MD5OfMessageBody: the MD5 hex digest of the body's UTF-8 bytes."""
    return hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()


def event_data(body: str) -> dict[str, Any]:
    """The event's data for a message body: parsed JSON when the body is exactly what `json.dumps`
    writes for it (the usual `MessageBody=json.dumps(order)`), else the text as `text/plain`. Either
    way the consumer's `record["body"]` is the very string that was sent (runtimes/aws_common.py
    `event_payload` writes JSON data back with `json.dumps`, and text as it is)."""
    try:
        value = json.loads(body)
    except ValueError:
        value = None
    else:
        if json.dumps(value) == body:
            return {"datacontenttype": "application/json", "data": value}
    return {"datacontenttype": "text/plain", "data": body}


class SqsApi:
    """The SQS stand-in of one server. `endpoint` is its own URL (`<effects base>/sqs`), the base of
    the queue URLs GetQueueUrl answers. Stateful only in FIFO sequence numbers."""

    def __init__(self, queues: Mapping[str, str], endpoint: str, new_id: Callable[[], str] | None = None) -> None:
        self.queues = dict(queues)
        self.endpoint = endpoint.rstrip("/")
        self.new_id = new_id or (lambda: str(uuid.uuid4()))
        self._sequence = itertools.count(1)

    def handle(self, target: str | None, content_type: str | None, body: bytes) -> SqsAnswer:
        """One request to the stand-in, whatever it holds: errors are answers, never exceptions."""
        try:
            action = self._action(target, content_type)
            try:
                request = json.loads(body or b"{}")
            except ValueError:
                raise SqsError("InvalidParameterValue", "InvalidParameterValue",
                               f"the body of this {action} request is not JSON") from None
            if not isinstance(request, dict):
                raise SqsError("InvalidParameterValue", "InvalidParameterValue",
                               f"the body of this {action} request must be a JSON object")
            if action == "SendMessage":
                return self.send_message(request)
            if action == "SendMessageBatch":
                return self.send_message_batch(request)
            if action == "GetQueueUrl":
                return self.get_queue_url(request)
            return self.list_queues(request)
        except SqsError as error:
            return error_answer(error)

    def _action(self, target: str | None, content_type: str | None) -> str:
        if not target:
            if "x-www-form-urlencoded" in (content_type or ""):
                raise SqsError("InvalidAction", "InvalidAction",
                               "faasemu's SQS stand-in speaks the AWS JSON protocol (X-Amz-Target: AmazonSQS.<Action>) "
                               "that boto3 uses since late 2023, not the query protocol (Action=...); upgrade boto3")
            raise SqsError("InvalidAction", "InvalidAction",
                           "no X-Amz-Target header; send X-Amz-Target: AmazonSQS.SendMessage (as boto3 does)")
        action = target.removeprefix(TARGET_PREFIX)
        if not target.startswith(TARGET_PREFIX) or action not in ACTIONS:
            raise SqsError("UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation",
                           f"X-Amz-Target {target}: faasemu's SQS stand-in serves {', '.join(ACTIONS)} (handlers "
                           "send messages here; their consumers receive them as events)")
        return action

    # --- queues ----------------------------------------------------------------------------------

    def queue_url(self, name: str) -> str:
        return f"{self.endpoint}/{ACCOUNT}/{name}"

    def queue_name(self, request: dict[str, Any]) -> str:
        """The known queue a request's QueueUrl names: its last path segment, whatever the host, so
        `https://sqs.<region>.amazonaws.com/<account>/<name>` (what `!Ref Queue` gives) and this
        stand-in's `<endpoint>/<account>/<name>` both work."""
        url = request.get("QueueUrl")
        if not isinstance(url, str) or not url.strip():
            raise SqsError("MissingParameter", "MissingParameter",
                           "the request must contain the parameter QueueUrl")
        name = urlsplit(url.strip()).path.rstrip("/").rpartition("/")[2] or url.strip()
        return self.known(name, f"QueueUrl {url}")

    def known(self, name: str, shown: str) -> str:
        if name not in self.queues:
            known = ", ".join(sorted(self.queues)) or "none (add them under queues: in faasemu.yaml)"
            raise SqsError("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue",
                           f"The specified queue does not exist: {shown} names queue '{name}', which this project "
                           f"does not have; its queues: {known}")
        return name

    def get_queue_url(self, request: dict[str, Any]) -> SqsAnswer:
        name = request.get("QueueName")
        if not isinstance(name, str) or not name:
            raise SqsError("MissingParameter", "MissingParameter", "the request must contain the parameter QueueName")
        return SqsAnswer(200, {"QueueUrl": self.queue_url(self.known(name, f"QueueName {name}"))})

    def list_queues(self, request: dict[str, Any]) -> SqsAnswer:
        prefix = str(request.get("QueueNamePrefix") or "")
        return SqsAnswer(200, {"QueueUrls": [self.queue_url(name) for name in sorted(self.queues)
                                             if name.startswith(prefix)]})

    # --- sending ---------------------------------------------------------------------------------

    def send_message(self, request: dict[str, Any]) -> SqsAnswer:
        name = self.queue_name(request)
        event, result, message_id = self.message(name, request, "")
        return SqsAnswer(200, result, events=[event], message_ids=[message_id])

    def send_message_batch(self, request: dict[str, Any]) -> SqsAnswer:
        name = self.queue_name(request)
        entries = request.get("Entries")
        if not isinstance(entries, list) or not entries:
            raise SqsError("EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest",
                           "There should be at least one SendMessageBatchRequestEntry in the request.")
        if len(entries) > MAX_BATCH:
            raise SqsError("TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
                           f"Maximum number of entries per request are {MAX_BATCH}. You have sent {len(entries)}.")
        ids = [entry.get("Id") if isinstance(entry, dict) else None for entry in entries]
        repeated = next((i for n, i in enumerate(ids) if i is not None and i in ids[:n]), None)
        if repeated is not None:
            raise SqsError("BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                           f"Id {repeated} repeated.")
        answer = SqsAnswer(200, {"Successful": [], "Failed": []})
        for number, entry in enumerate(entries):
            entry_id = ids[number]
            if not isinstance(entry_id, str) or not entry_id:
                raise SqsError("InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId",
                               f"the entry at index {number} has no Id")
            try:
                event, result, message_id = self.message(name, entry, f"entry {entry_id}: ")
            except SqsError as error:
                answer.payload["Failed"].append({"Id": entry_id, "SenderFault": True, "Code": error.kind,
                                                 "Message": error.message})
                continue
            answer.payload["Successful"].append({"Id": entry_id, **result})
            answer.events.append(event)
            answer.message_ids.append(message_id)
        return answer

    def message(self, name: str, request: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any], str]:
        """(the event, the SendMessage result, the MessageId) of one message to queue `name`."""
        body = request.get("MessageBody")
        if not isinstance(body, str) or not body:
            raise SqsError("MissingParameter", "MissingParameter",
                           f"{where}the request must contain the parameter MessageBody (a non-empty string)")
        attributes = request.get("MessageAttributes") or {}
        if not isinstance(attributes, dict) or not all(
                isinstance(value, dict) and isinstance(value.get("DataType"), str) for value in attributes.values()):
            raise SqsError("InvalidParameterValue", "InvalidParameterValue",
                           f"{where}MessageAttributes must map each name to {{DataType, StringValue or BinaryValue}}")
        message_id = self.new_id()
        result: dict[str, Any] = {"MessageId": message_id, "MD5OfMessageBody": body_md5(body)}
        event: dict[str, Any] = {"specversion": "1.0", "type": self.queues[name], "source": f"faasemu/sqs/{name}",
                                 SQS_QUEUE: name}
        if attributes:
            result["MD5OfMessageAttributes"] = message_attributes_md5(attributes)
            event[SQS_ATTRIBUTES] = json.dumps(attributes, sort_keys=True, separators=(",", ":"))
        group = request.get("MessageGroupId")
        if group is not None:
            event[SQS_GROUP] = str(group)
        if name.endswith(".fifo"):
            if not isinstance(group, str) or not group:
                raise SqsError("MissingParameter", "MissingParameter",
                               f"{where}The request must contain the parameter MessageGroupId (queue {name} is FIFO).")
            # Without a MessageDeduplicationId, the body's SHA-256 (content-based deduplication).
            dedup = str(request.get("MessageDeduplicationId") or hashlib.sha256(body.encode()).hexdigest())
            event.update({"id": f"{name}/{dedup}", SQS_DEDUP: dedup})
            result["SequenceNumber"] = str(FIFO_SEQUENCE_BASE + next(self._sequence))
        event.update(event_data(body))
        return event, result, message_id
