"""Lambda's SQS batches: the multi-record event, FIFO attributes, and reading batchItemFailures
(docs/delivery.md#batches-sqs). Pure conversions and the Adapter with small handler modules."""

from __future__ import annotations

import types
from typing import Any

import pytest

from faasemu.project.spec import FunctionSpec
from faasemu.runtimes import aws_lambda as aws
from faasemu.runtimes import aws_sqs as sqs
from faasemu.runtimes.adapter import NoBatchDelivery
from faasemu.runtimes.base import Delivery, Invocation
from faasemu.runtimes.contract import load_runtime

NOW = 1_700_000_000.0


def spec(**fields: Any) -> FunctionSpec:
    options = fields.pop("options", {"event_source": "sqs"})
    return FunctionSpec(name="jobs", handler="jobs.py:handle", runtime="aws-lambda", handler_file="/proj/jobs.py",
                        handler_attr="handle", options=options, **fields)


def event(event_id: str, order: Any = None, **extra: Any) -> dict[str, Any]:
    data = {"n": event_id} if order is None else {"n": event_id, "order": order}
    return {"specversion": "1.0", "id": event_id, "source": "test", "type": "job.created",
            "time": "2024-01-01T00:00:00Z", "datacontenttype": "application/json", "data": data, **extra}


def deliveries(*ids: str, attempt: int = 1) -> list[Delivery]:
    return [Delivery(event(i), attempt, f"{i}-att{attempt}") for i in ids]


def adapter(handler: Any, **fields: Any) -> aws.Adapter:
    module = types.ModuleType("jobs")
    handler.__module__ = "jobs"
    module.handle = handler  # type: ignore[attr-defined]
    instance = aws.Adapter(spec(**fields), clock=lambda: NOW, capture_output=False)
    instance.bind(module)
    return instance


def inv() -> Invocation:
    return Invocation("req-1", NOW + 3, 1)


# -- the event ----------------------------------------------------------------------------------


def test_one_record_event_is_unchanged_by_the_list_form() -> None:
    single = aws.build_event("sqs", Delivery(event("a"), 2, "x"), spec())
    listed = aws.build_event("sqs", [Delivery(event("a"), 2, "x")], spec())
    assert single == listed
    record = single["Records"][0]
    assert list(record["attributes"]) == ["ApproximateReceiveCount", "SentTimestamp", "SenderId",
                                          "ApproximateFirstReceiveTimestamp"]
    assert record["eventSourceARN"].endswith(":jobs")


def test_a_batch_has_one_record_per_delivery_each_with_its_own_attempt() -> None:
    batch = [Delivery(event("a"), 1, "a1"), Delivery(event("b"), 3, "b3"), Delivery(event("c"), 1, "c1")]
    records = aws.build_event("sqs", batch, spec())["Records"]
    assert [r["messageId"] for r in records] == ["a", "b", "c"]
    assert [r["attributes"]["ApproximateReceiveCount"] for r in records] == ["1", "3", "1"]
    assert len({r["receiptHandle"] for r in records}) == 3
    # each record is exactly what a one-record event of that delivery holds
    assert records[1] == aws.build_event("sqs", batch[1], spec())["Records"][0]


def test_only_sqs_builds_several_records() -> None:
    with pytest.raises(ValueError, match="only event_source: sqs"):
        aws.build_event("sns", deliveries("a", "b"), spec())


def test_fifo_records_carry_group_sequence_and_deduplication_ids() -> None:
    fifo = spec(order_key="data.order")
    batch = [Delivery(event("a", order="o-1"), 1, "a"), Delivery(event("b", order=7), 1, "b"),
             Delivery(event("c"), 1, "c")]
    records = aws.build_event("sqs", batch, fifo, [4, 5, 12])["Records"]
    attributes = [r["attributes"] for r in records]
    assert [a["MessageGroupId"] for a in attributes] == ["o-1", "7", "c"]  # no value at the path: its own group
    assert [a["MessageDeduplicationId"] for a in attributes] == ["a", "b", "c"]
    numbers = [a["SequenceNumber"] for a in attributes]
    assert all(len(n) == 20 and n.isdigit() for n in numbers)
    assert numbers == sorted(numbers) and [int(n) for n in numbers] == sorted(int(n) for n in numbers)
    assert len(set(numbers)) == 3
    assert records[0]["eventSourceARN"].endswith(":jobs.fifo")


def test_fifo_group_id_reads_base64_data_and_nested_paths() -> None:
    import base64
    import json

    encoded = {**event("z"), "data_base64": base64.b64encode(json.dumps({"k": {"g": "deep"}}).encode()).decode()}
    del encoded["data"]
    assert sqs.message_group_id(encoded, "data.k.g") == "deep"
    assert sqs.message_group_id(event("y", order={"b": 1, "a": 2}), "data.order") == '{"a": 2, "b": 1}'
    assert sqs.message_group_id(event("x"), "source") == "test"


def test_which_functions_take_batches() -> None:
    assert not sqs.delivers_batches(spec())  # batch_size 1 and nothing else: one record per invocation
    assert sqs.delivers_batches(spec(batch_size=3))
    assert sqs.delivers_batches(spec(report_batch_item_failures=True))
    assert sqs.delivers_batches(spec(order_key="data.order"))
    assert not sqs.delivers_batches(spec(batch_size=3, options={"event_source": "eventbridge"}))
    assert load_runtime("aws-lambda").delivers_batches(spec(batch_size=2))
    assert not load_runtime("gcf").delivers_batches(spec(batch_size=2, options={}))


# -- reading the answer --------------------------------------------------------------------------

IDS = ["a", "b", "c"]


@pytest.mark.parametrize("answer", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None},
                                    {"statusCode": 200}])
def test_answers_that_mean_every_record_succeeded(answer: Any) -> None:
    assert sqs.batch_failures(answer, IDS) == []


def test_named_records_failed_in_batch_order() -> None:
    answer = {"batchItemFailures": [{"itemIdentifier": "c"}, {"itemIdentifier": "a"}, {"itemIdentifier": "c"}]}
    assert sqs.batch_failures(answer, IDS) == [0, 2]


@pytest.mark.parametrize(("answer", "says"), [
    ("ok", r"returned a string \('ok'\), not an object"),
    ([{"itemIdentifier": "a"}], "returned a JSON list"),
    ({"batchItemFailures": {"itemIdentifier": "a"}}, "batchItemFailures is a JSON object, not a list"),
    ({"batchItemFailures": ["a"]}, r"batchItemFailures\[0\] has no itemIdentifier \(found a string"),
    ({"batchItemFailures": [{"itemId": "a"}]}, r"batchItemFailures\[0\] has no itemIdentifier \(found keys itemId"),
    ({"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": None}]},
     r"batchItemFailures\[1\].itemIdentifier is null"),
    ({"batchItemFailures": [{"itemIdentifier": ""}]}, "itemIdentifier is an empty string"),
    ({"batchItemFailures": [{"itemIdentifier": 2}]}, "itemIdentifier is a JSON number"),
    ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, r"'zzz' is not a messageId of this batch \(a, b, c\)"),
])
def test_malformed_answers_fail_the_whole_batch_and_say_why(answer: Any, says: str) -> None:
    with pytest.raises(sqs.InvalidBatchResponse, match=says) as caught:
        sqs.batch_failures(answer, IDS)
    assert "Lambda treats the whole batch as failed" in str(caught.value)


# -- the adapter --------------------------------------------------------------------------------


def test_deliver_batch_gives_the_handler_every_record_in_one_call() -> None:
    calls: list[list[str]] = []

    def handle(evt: dict[str, Any], context: Any) -> Any:
        calls.append([r["messageId"] for r in evt["Records"]])
        return {"batchItemFailures": [{"itemIdentifier": "b"}]}  # ignored: partial responses are off

    assert adapter(handle, batch_size=3).deliver_batch(deliveries("a", "b", "c"), inv()) == []
    assert calls == [["a", "b", "c"]]


def test_deliver_batch_reads_batch_item_failures_when_enabled() -> None:
    def handle(evt: dict[str, Any], context: Any) -> Any:
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in evt["Records"]
                                      if r["body"] and r["messageId"] != "a"]}

    assert adapter(handle, batch_size=3, report_batch_item_failures=True).deliver_batch(
        deliveries("a", "b", "c"), inv()) == [1, 2]


def test_deliver_batch_raises_what_the_handler_raised_and_malformed_answers() -> None:
    def boom(evt: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("poison")

    with pytest.raises(RuntimeError, match="poison"):
        adapter(boom, batch_size=2).deliver_batch(deliveries("a", "b"), inv())
    with pytest.raises(sqs.InvalidBatchResponse, match="not a messageId"):
        adapter(lambda evt, ctx: {"batchItemFailures": [{"itemIdentifier": "x"}]}, batch_size=2,
                report_batch_item_failures=True).deliver_batch(deliveries("a", "b"), inv())


def test_deliver_batch_passes_positions_to_fifo_records() -> None:
    seen: list[str] = []

    def handle(evt: dict[str, Any], context: Any) -> None:
        seen.extend(r["attributes"]["SequenceNumber"] for r in evt["Records"])

    adapter(handle, order_key="data.order").deliver_batch(deliveries("a", "b"), inv(), [3, 9])
    assert [int(n) - sqs.FIFO_SEQUENCE_BASE for n in seen] == [3, 9]


def test_platforms_without_batches_say_so() -> None:
    with pytest.raises(NoBatchDelivery, match="only aws-lambda with event_source: sqs"):
        adapter(lambda evt, ctx: None, options={"event_source": "eventbridge"}).deliver_batch(
            deliveries("a"), inv())
