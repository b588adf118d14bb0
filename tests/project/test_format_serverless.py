"""Serverless Framework services read as they are: `load_manifest` in a folder with `serverless.yml`
and no faasemu.yaml, variables resolved offline, errors on serverless.yml's own lines."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
from conftest import write_project

from faasemu.project.errors import ManifestError
from faasemu.project.formats import manifest_text
from faasemu.project.manifest import load_manifest

HANDLER = """\
    def hello(event, context):
        return {"statusCode": 200, "body": "hi"}


    def worker(event, context):
        return None
"""

SERVICE = """\
    service: orders-api
    frameworkVersion: '3'

    custom:
      tableName: orders-${sls:stage}

    provider:
      name: aws
      runtime: python3.12
      stage: ${opt:stage, 'dev'}
      region: ${opt:region, 'eu-west-1'}
      timeout: 10
      environment:
        TABLE: ${self:custom.tableName}
        API_KEY: ${env:API_KEY, 'none'}
        REGION: ${aws:region}
        PRICE: "5$"

    functions:
      hello:
        handler: handler.hello
        events:
          - httpApi: 'GET /hello/{name}'
      createOrder:
        handler: src/orders.create
        memorySize: 256
        environment:
          TABLE: own
        events:
          - httpApi:
              method: post
              path: /orders
      worker:
        handler: handler.worker
        events:
          - sqs:
              arn: !GetAtt OrdersQueue.Arn
              batchSize: 5
              functionResponseType: ReportBatchItemFailures
      placed:
        handler: handler.worker
        events:
          - eventBridge:
              pattern:
                source: [shop]
                detail-type: [OrderPlaced]
          - schedule:
              rate: rate(1 day)
              name: nightly
      streams:
        handler: handler.worker
        events:
          - stream:
              type: dynamodb
              arn: arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2024-01-01T00:00:00.000
    resources:
      Resources:
        OrdersQueue:
          Type: AWS::SQS::Queue
"""


def project(root: Path, service: str = SERVICE) -> Path:
    write_project(root, {"serverless.yml": service, "handler.py": HANDLER,
                         "src/orders.py": "def create(event, context):\n    return {'statusCode': 201}\n"})
    return root / "faasemu.yaml"


def test_a_serverless_service_loads_without_a_faasemu_yaml(tmp_path: Path) -> None:
    manifest = load_manifest(project(tmp_path), {"API_KEY": "k-1"})
    assert manifest.path.endswith("serverless.yml") and manifest.name == "orders-api"
    hello = manifest.function("hello")
    assert hello is not None and hello.handler == "handler.py:hello"
    assert [(t.path, t.methods) for t in hello.http] == [("/hello/{name}", ("GET",))]
    assert hello.options["payload"] == "v2" and hello.timeout == 10.0 and hello.memory == 1024
    assert hello.env == {"TABLE": "orders-dev", "API_KEY": "k-1", "REGION": "eu-west-1", "PRICE": "5$"}
    create = manifest.function("create-order")
    assert create is not None and create.handler == "src/orders.py:create" and create.memory == 256
    assert create.env["TABLE"] == "own"


def test_env_variables_fall_back_and_stay_references_in_the_printed_manifest(tmp_path: Path) -> None:
    manifest = load_manifest(project(tmp_path), {})
    hello = manifest.function("hello")
    assert hello is not None and hello.env["API_KEY"] == "none"
    text = manifest_text(str(tmp_path / "faasemu.yaml"), {"API_KEY": "secret-value"})
    assert "${API_KEY:-none}" in text and "secret-value" not in text


def test_events_become_event_types(tmp_path: Path) -> None:
    manifest = load_manifest(project(tmp_path), {})
    worker = manifest.function("worker")
    assert worker is not None and worker.events == ("sqs.OrdersQueue",)
    assert worker.options["event_source"] == "sqs" and worker.batch_size == 5 and worker.report_batch_item_failures
    placed = manifest.function("placed")
    assert placed is not None and placed.events == ("OrderPlaced", "schedule.nightly")
    streams = manifest.function("streams")
    assert streams is not None and streams.events == ("dynamodb.Orders",)


def test_http_is_payload_1_and_mixing_it_with_http_api_is_refused(tmp_path: Path) -> None:
    legacy = ("              path: /orders\n          - http:\n"
              "              path: legacy/orders\n              method: any\n")
    service = SERVICE.replace("              path: /orders\n", legacy)
    with pytest.raises(ManifestError) as caught:
        load_manifest(project(tmp_path, service), {})  # createOrder has httpApi and http
    assert caught.value.line == textwrap.dedent(service).splitlines().index("      - http:") + 1
    assert "need different payloads" in caught.value.detail


def test_printed_manifest_round_trips(tmp_path: Path) -> None:
    project(tmp_path)
    original = load_manifest(tmp_path / "faasemu.yaml", {})
    (tmp_path / "faasemu.yaml").write_text(manifest_text(str(tmp_path / "faasemu.yaml"), {}))
    again = load_manifest(tmp_path / "faasemu.yaml", {})
    assert [dataclasses.replace(s, line=0) for s in again.functions] == \
        [dataclasses.replace(s, line=0) for s in original.functions]


@pytest.mark.parametrize(("change", "at", "expected"), [
    (("runtime: python3.12", "runtime: nodejs20.x"), "nodejs20.x", "only Python runtimes (python3.x) run"),
    (("handler: handler.hello", "handler: handler.nope"), "handler.nope", "handler.py has no function 'nope'"),
    (("TABLE: ${self:custom.tableName}", "TABLE: ${ssm:/orders/table}"), "ssm:", "is not resolved offline"),
    (("TABLE: ${self:custom.tableName}", "TABLE: ${opt:table}"), "opt:table", "has no value here"),
    (("- httpApi: 'GET /hello/{name}'", "- websocket: $connect"), "websocket", "websocket events are not translated"),
])
def test_errors_name_the_serverless_line(tmp_path: Path, change: tuple[str, str], at: str, expected: str) -> None:
    assert change[0] in SERVICE
    service = SERVICE.replace(change[0], change[1], 1)
    line = next(number for number, text in enumerate(textwrap.dedent(service).splitlines(), 1) if at in text)
    with pytest.raises(ManifestError) as caught:
        load_manifest(project(tmp_path, service), {})
    assert caught.value.file.endswith("serverless.yml")
    assert caught.value.line == line, str(caught.value)
    assert expected in caught.value.detail, str(caught.value)


def test_resource_queues_and_literal_arns_are_in_queues(tmp_path: Path) -> None:
    service = SERVICE.replace("""        OrdersQueue:
          Type: AWS::SQS::Queue
""", """        OrdersQueue:
          Type: AWS::SQS::Queue
        Named:
          Type: AWS::SQS::Queue
          Properties:
            QueueName: ${self:service}-named
""").replace("""      placed:
        handler: handler.worker
""", """      legacy:
        handler: handler.worker
        events:
          - sqs: arn:aws:sqs:us-east-1:123456789012:legacy
      payments:
        handler: handler.worker
        events:
          - sqs: arn:aws:sqs:us-east-1:123456789012:payments.fifo
      placed:
        handler: handler.worker
""")
    manifest = load_manifest(project(tmp_path, service), {})
    assert manifest.queues == {"orders-api-dev-OrdersQueue": "sqs.OrdersQueue", "orders-api-named": "sqs.Named",
                               "legacy": "sqs.legacy", "payments.fifo": "sqs.payments.fifo"}
    legacy, payments = manifest.function("legacy"), manifest.function("payments")
    assert legacy is not None and legacy.events == ("sqs.legacy",) and legacy.order_key is None
    assert payments is not None and payments.order_key == "sqsgroup"  # a FIFO queue: ordered per group
