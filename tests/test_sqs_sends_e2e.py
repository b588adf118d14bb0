"""A SAM project whose handler sends to its own queue with boto3 (`!Ref OrdersQueue`), run as it is: under
`faasemu up` the message reaches the queue's consumer; `faasemu chaos` follows the same send as a cascade
(docs/delivery.md#sqs-sends-become-events)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
from conftest import run_cli, wait_for, write_project

SHOP = {
    "template.yaml": """\
        AWSTemplateFormatVersion: '2010-09-09'
        Transform: AWS::Serverless-2016-10-31
        Globals:
          Function:
            Runtime: python3.12
            Timeout: 10
        Resources:
          PlaceOrderFunction:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.place_order
              Environment:
                Variables:
                  QUEUE_URL: !Ref OrdersQueue
              Events:
                Post:
                  Type: Api
                  Properties:
                    Path: /orders
                    Method: post
                Placed:
                  Type: EventBridgeRule
                  Properties:
                    Pattern:
                      detail-type: [OrderPlaced]
          FulfilFunction:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.fulfil
              Events:
                Orders:
                  Type: SQS
                  Properties:
                    Queue: !GetAtt OrdersQueue.Arn
                    BatchSize: 1
          OrdersQueue:
            Type: AWS::SQS::Queue
    """,
    "src/app.py": """\
        import json
        import os
        import sqlite3

        import boto3

        sqs = boto3.client("sqs")


        def place_order(event, context):
            order = event["detail"] if "detail" in event else json.loads(event["body"])
            url = os.environ["QUEUE_URL"]
            if order.get("queue"):
                url = url.rsplit("/", 1)[0] + "/" + order["queue"]
            try:
                sent = sqs.send_message(QueueUrl=url, MessageBody=json.dumps(order),
                                        MessageAttributes={"kind": {"DataType": "String", "StringValue": "order"}})
            except sqs.exceptions.QueueDoesNotExist as exc:
                return {"statusCode": 404, "body": json.dumps({"error": type(exc).__name__, "message": str(exc)})}
            return {"statusCode": 202, "body": json.dumps({"id": sent["MessageId"]})}


        def fulfil(event, context):
            db = sqlite3.connect(os.environ["FAASEMU_STATE"])
            with db:
                db.execute("CREATE TABLE IF NOT EXISTS fulfilled (body TEXT, kind TEXT, message_id TEXT)")
                for record in event["Records"]:
                    db.execute("INSERT INTO fulfilled VALUES (?, ?, ?)", (
                        record["body"], record["messageAttributes"]["kind"]["stringValue"], record["messageId"]))
            db.close()
    """,
}


def fulfilled(root: Path) -> list[tuple[str, str, str]]:
    path = root / ".faasemu" / "state.db"
    if not path.exists():
        return []
    db = sqlite3.connect(path, timeout=5)
    try:
        return list(db.execute("SELECT body, kind, message_id FROM fulfilled"))
    except sqlite3.OperationalError:  # the consumer has not created its table yet
        return []
    finally:
        db.close()


def test_a_message_sent_to_ref_orders_queue_reaches_its_consumer_under_up(tmp_path: Path, run_server) -> None:
    root = tmp_path / "shop"
    server = run_server(write_project(root, SHOP))
    answer = httpx.post(f"{server.url}/orders", json={"order": "o-1"}, timeout=30)
    assert answer.status_code == 202, answer.text + server.output()
    message_id = answer.json()["id"]
    assert wait_for(lambda: fulfilled(root) == [('{"order": "o-1"}', "order", message_id)]), (
        fulfilled(root), server.output())
    events = httpx.get(f"{server.url}/_faasemu/events", timeout=30).json()["events"]
    assert any(event.get("type") == "sqs.OrdersQueue" for event in json.loads(json.dumps(events))), events


def test_an_unknown_queue_is_queue_does_not_exist_in_the_handler(tmp_path: Path, run_server) -> None:
    root = tmp_path / "shop"
    server = run_server(write_project(root, SHOP))
    answer = httpx.post(f"{server.url}/orders", json={"order": "o-2", "queue": "invoices"}, timeout=30)
    assert answer.status_code == 404, answer.text + server.output()
    error = answer.json()
    assert error["error"] == "QueueDoesNotExist", error
    assert "'invoices'" in error["message"] and "shop-OrdersQueue" in error["message"], error


def test_chaos_follows_the_send_to_the_consumer_as_a_cascade(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    write_project(root, SHOP)
    (root / "events.jsonl").write_text(
        json.dumps({"type": "OrderPlaced", "id": "place-1", "source": "shop", "data": {"order": "o-1"}}) + "\n")
    result = run_cli("chaos", "events.jsonl", "--runs", "2", "--seed", "7", "--json", "report.json", cwd=root,
                     timeout=240)
    report = json.loads((root / "report.json").read_text())
    assert report["downstream_deliveries"] == 1, result.stdout + result.stderr
    # the consumer inserts a row per delivery: a duplicated SQS message (at-least-once) is seen twice
    assert report["functions"]["fulfil-function"]["idempotent"] is False, report["functions"]
    assert result.returncode == 1, result.stdout + result.stderr


def test_invoke_records_a_send_as_an_emitted_event(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    write_project(root, SHOP)
    result = run_cli("invoke", "place-order-function", "--data", json.dumps({"detail": {"order": "o-3"}}), cwd=root)
    assert result.returncode == 0, result.stdout + result.stderr
    emitted = [json.loads(line.split("  ", 1)[1]) for line in (result.stdout + result.stderr).splitlines()
               if line.startswith("emitted  ")]
    assert [(event["type"], event["data"], event["sqsqueue"]) for event in emitted] == [
        ("sqs.OrdersQueue", {"order": "o-3"}, "shop-OrdersQueue")], result.stdout + result.stderr
