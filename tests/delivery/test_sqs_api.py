"""The SQS stand-in (delivery/sqs_api.py, docs/delivery.md#sqs-sends-become-events): real boto3 clients
against a real LocalEffectServer, the MD5s against the values AWS publishes for its own examples, and
the consumer's record (runtimes/aws_sqs.py `sqs_record`) read back by Powertools' SQS model."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator

import boto3
import botocore.exceptions
import httpx
import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel

from faasemu.delivery.effects import LocalEffectServer
from faasemu.delivery.sqs_api import SqsApi, event_data
from faasemu.events.model import normalize
from faasemu.project.spec import FunctionSpec
from faasemu.runtimes.aws_lambda import build_event
from faasemu.runtimes.aws_sqs import message_attributes_md5
from faasemu.runtimes.base import Delivery

QUEUES = {"orders": "sqs.OrdersQueue", "payments.fifo": "sqs.PaymentsQueue"}
# The AWS CLI's own examples (awscli/examples/sqs/send-message-batch.rst): these attributes and bodies,
# and the first and last 8 hex digits of the MD5s SQS answered for them.
AWS_EXAMPLE = [
    ("Fuel report for account 0001 on 2015-09-16 at 02:07:31 PM.",
     {"SellerName": "Example Store", "City": "Any City", "Region": "WA", "PostalCode": "99065",
      "PricePerGallon": ("Number", "1.99")}, "203c4a38", "7943237e", "10809b55", "baf283ef"),
    ("Fuel report for account 0002 on 2015-09-16 at 02:09:30 PM.",
     {"SellerName": "Example Fuels", "City": "North Town", "Region": "WA", "PostalCode": "99123",
      "PricePerGallon": ("Number", "1.87")}, "2cf0159a", "c1980595", "55623928", "ae354a25"),
]


def _attributes(values: dict[str, str | tuple[str, str]]) -> dict[str, dict[str, str]]:
    return {name: {"DataType": value[0], "StringValue": value[1]} if isinstance(value, tuple)
            else {"DataType": "String", "StringValue": value} for name, value in values.items()}


@pytest.fixture
def server() -> Iterator[LocalEffectServer]:
    with LocalEffectServer(QUEUES) as effects:
        yield effects


def client(url: str):  # type: ignore[no-untyped-def]
    return boto3.client("sqs", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


@pytest.mark.parametrize("body, values, body_head, body_tail, head, tail", AWS_EXAMPLE)
def test_md5s_are_the_ones_sqs_answers_for_aws_own_examples(server: LocalEffectServer, body: str, values: dict,
                                                           body_head: str, body_tail: str, head: str,
                                                           tail: str) -> None:
    attributes = _attributes(values)
    answer = client(f"{server.base_url}/sqs").send_message(
        QueueUrl="https://sqs.us-east-1.amazonaws.com/123456789012/orders", MessageBody=body,
        MessageAttributes=attributes)
    assert answer["MD5OfMessageBody"][:8] == body_head and answer["MD5OfMessageBody"][-8:] == body_tail
    assert answer["MD5OfMessageAttributes"][:8] == head and answer["MD5OfMessageAttributes"][-8:] == tail
    assert message_attributes_md5(attributes) == answer["MD5OfMessageAttributes"]


def test_binary_attributes_hash_their_bytes_with_transport_type_two() -> None:
    text = {"Greeting": {"DataType": "String", "StringValue": "Hello, World!"}}
    binary = {"Greeting": {"DataType": "Binary", "BinaryValue": base64.b64encode(b"Hello, World!").decode()}}
    expected = hashlib.md5(b"".join([
        (8).to_bytes(4, "big"), b"Greeting", (6).to_bytes(4, "big"), b"Binary", b"\x02",
        (13).to_bytes(4, "big"), b"Hello, World!"]), usedforsecurity=False).hexdigest()
    assert message_attributes_md5(binary) == expected != message_attributes_md5(text)


def test_a_sent_message_is_an_emitted_event_of_its_queues_type(server: LocalEffectServer) -> None:
    sqs = client(f"{server.base_url}/sqs")
    url = sqs.get_queue_url(QueueName="orders")["QueueUrl"]
    assert url == f"{server.base_url}/sqs/000000000000/orders"
    body = json.dumps({"order": "o-1", "total": 12.5})
    answer = sqs.send_message(QueueUrl=url, MessageBody=body)
    assert answer["MD5OfMessageBody"] == hashlib.md5(body.encode()).hexdigest()
    assert len(answer["MessageId"]) == 36 and "MD5OfMessageAttributes" not in answer
    [event] = server.log.emitted
    assert event["type"] == "sqs.OrdersQueue" and event["sqsqueue"] == "orders"
    assert event["data"] == {"order": "o-1", "total": 12.5} and "id" not in event  # the broker names it
    listed = sqs.list_queues(QueueNamePrefix="pay")["QueueUrls"]
    assert listed == [f"{server.base_url}/sqs/000000000000/payments.fifo"]


def test_a_batch_is_one_event_per_entry_and_refuses_more_than_ten(server: LocalEffectServer) -> None:
    sqs = client(f"{server.base_url}/sqs")
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/orders"
    answer = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "MessageBody": "first"}, {"Id": "b", "MessageBody": "second"}])
    assert [entry["Id"] for entry in answer["Successful"]] == ["a", "b"] and not answer.get("Failed")
    assert [event["data"] for event in server.log.emitted] == ["first", "second"]
    assert server.log.emitted[0]["datacontenttype"] == "text/plain"
    with pytest.raises(sqs.exceptions.TooManyEntriesInBatchRequest) as raised:
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": "x"} for n in range(11)])
    assert "You have sent 11" in str(raised.value)
    with pytest.raises(sqs.exceptions.BatchEntryIdsNotDistinct):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "x"}] * 2)
    assert len(server.log.emitted) == 2  # a refused batch sends nothing


def test_an_unknown_queue_is_queue_does_not_exist_naming_the_known_ones(server: LocalEffectServer) -> None:
    sqs = client(f"{server.base_url}/sqs")
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as raised:
        sqs.send_message(QueueUrl="https://sqs.us-east-1.amazonaws.com/123456789012/invoices", MessageBody="x")
    message = raised.value.response["Error"]["Message"]
    assert "'invoices'" in message and "orders, payments.fifo" in message, message
    assert raised.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName="invoices")
    assert server.log.emitted == []


def test_a_missing_body_and_the_query_protocol_are_errors_in_sqs_shape(server: LocalEffectServer) -> None:
    headers = {"x-amz-target": "AmazonSQS.SendMessage", "content-type": "application/x-amz-json-1.0"}
    answer = httpx.post(f"{server.base_url}/sqs", headers=headers, content=json.dumps({"QueueUrl": "orders"}))
    assert answer.status_code == 400 and answer.json()["__type"].endswith("#MissingParameter")
    assert "MessageBody" in answer.json()["message"]
    form = httpx.post(f"{server.base_url}/sqs", data={"Action": "SendMessage", "QueueUrl": "orders"})
    assert form.status_code == 400 and "JSON protocol" in form.json()["message"]
    unknown = client(f"{server.base_url}/sqs")
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        unknown.receive_message(QueueUrl="orders")
    assert "serves SendMessage, SendMessageBatch, GetQueueUrl, ListQueues" in str(raised.value)


def test_lanes_have_their_own_stand_in(server: LocalEffectServer) -> None:
    server.add_lane("lane1")
    sqs = client(f"{server.base_url}/lane1/sqs")
    assert sqs.get_queue_url(QueueName="orders")["QueueUrl"] == f"{server.base_url}/lane1/sqs/000000000000/orders"
    sqs.send_message(QueueUrl="orders", MessageBody="in a lane")
    assert server.log.emitted == [] and server.logs["lane1"].emitted[0]["data"] == "in a lane"


def test_fifo_messages_carry_group_and_dedup_ids_and_a_sequence_number(server: LocalEffectServer) -> None:
    sqs = client(f"{server.base_url}/sqs")
    url = sqs.get_queue_url(QueueName="payments.fifo")["QueueUrl"]
    first = sqs.send_message(QueueUrl=url, MessageBody="p-1", MessageGroupId="acct-1", MessageDeduplicationId="d1")
    second = sqs.send_message(QueueUrl=url, MessageBody="p-2", MessageGroupId="acct-1")
    assert len(first["SequenceNumber"]) == 20 and int(second["SequenceNumber"]) > int(first["SequenceNumber"])
    events = server.log.emitted
    assert events[0]["id"] == "payments.fifo/d1" and events[0]["sqsgroup"] == "acct-1"
    assert events[1]["sqsdedup"] == hashlib.sha256(b"p-2").hexdigest()  # content-based deduplication
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        sqs.send_message(QueueUrl=url, MessageBody="p-3")
    assert "MessageGroupId" in str(raised.value)


@pytest.mark.parametrize("body", ['{"order": "o-1"}', '{"order":"o-1"}', "plain text", '"quoted"', "1e3", " [1] "])
def test_the_consumer_receives_exactly_the_body_sent(body: str) -> None:
    api = SqsApi(QUEUES, "http://127.0.0.1:1/sqs")
    attributes = _attributes({"kind": "order"})
    request = {"QueueUrl": "orders", "MessageBody": body, "MessageAttributes": attributes}
    answer = api.handle("AmazonSQS.SendMessage", "application/x-amz-json-1.0", json.dumps(request).encode())
    event = normalize(answer.events[0], default_id=answer.message_ids[0], default_time="2024-05-01T00:00:00Z")
    spec = FunctionSpec("consumer", "app.py:handler", "aws-lambda", options={"event_source": "sqs"})
    lambda_event = build_event("sqs", Delivery(event, 1), spec)
    [record] = SqsModel.model_validate(lambda_event).Records
    assert record.body == body and record.md5OfBody == answer.payload["MD5OfMessageBody"]
    assert record.messageId == answer.payload["MessageId"] and record.eventSourceARN.endswith(":orders")
    assert record.messageAttributes["kind"].stringValue == "order"
    assert record.md5OfMessageAttributes == answer.payload["MD5OfMessageAttributes"]


def test_json_data_only_when_it_writes_back_the_same() -> None:
    assert event_data('{"a": 1}') == {"datacontenttype": "application/json", "data": {"a": 1}}
    assert event_data('{"a":1}')["datacontenttype"] == "text/plain"
