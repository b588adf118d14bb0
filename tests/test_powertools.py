"""Handlers that validate their event with AWS Lambda Powertools' strict Pydantic models (issue 8):
every shape `faasemu up` delivers (EventBridge, SQS, SNS, HTTP API v2, REST API v1) must pass them.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, write_project

pytest.importorskip("aws_lambda_powertools.utilities.parser", reason="needs aws-lambda-powertools[parser]")
pytest.importorskip("pydantic", reason="needs aws-lambda-powertools[parser]")

HANDLERS = '''\
import json

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventModel,
    APIGatewayProxyEventV2Model,
    EventBridgeModel,
    SnsModel,
    SqsModel,
)


def _record(context, what):
    with open(f"parsed-{context.function_name}.jsonl", "a") as out:
        out.write(json.dumps(what) + "\\n")


def bridge(event, context):
    model = parse(event=event, model=EventBridgeModel)
    _record(context, {"id": model.id, "detail_type": model.detail_type, "detail": model.detail,
                      "source": model.source, "account": model.account})


def queue(event, context):
    [record] = parse(event=event, model=SqsModel).Records
    _record(context, {"id": record.messageId, "body": record.body,
                      "receive_count": record.attributes.ApproximateReceiveCount})


def topic(event, context):
    [record] = parse(event=event, model=SnsModel).Records
    _record(context, {"id": record.Sns.MessageId, "message": record.Sns.Message, "topic": record.Sns.TopicArn})


def http_v2(event, context):
    model = parse(event=event, model=APIGatewayProxyEventV2Model)
    return {"statusCode": 200, "body": json.dumps({
        "path": model.rawPath, "method": model.requestContext.http.method, "query": model.queryStringParameters,
        "cookies": model.cookies, "params": model.pathParameters, "body": model.body,
        "base64": model.isBase64Encoded})}


def http_v1(event, context):
    model = parse(event=event, model=APIGatewayProxyEventModel)
    return {"statusCode": 200, "body": json.dumps({
        "path": model.path, "method": model.httpMethod, "resource": model.resource,
        "query": model.queryStringParameters, "params": model.pathParameters, "body": model.body})}
'''

MANIFEST = """\
functions:
  bridge:
    handler: models.py:bridge
    events: ["pt.*"]
    retries: 0
    timeout: 30  # a cold worker imports pydantic: time enough on a busy machine
  queue:
    handler: models.py:queue
    event_source: sqs
    events: ["pt.*"]
    retries: 0
    timeout: 30  # a cold worker imports pydantic: time enough on a busy machine
  topic:
    handler: models.py:topic
    event_source: sns
    events: ["pt.*"]
    retries: 0
    timeout: 30  # a cold worker imports pydantic: time enough on a busy machine
  http-v2:
    handler: models.py:http_v2
    http:
      - {path: "/v2/orders/{id}", methods: [GET, POST]}
    timeout: 30
  http-v1:
    handler: models.py:http_v1
    payload: v1
    http:
      - {path: "/v1/orders/{id}", methods: [GET, POST]}
    timeout: 30
"""


@pytest.fixture
def server(tmp_path: Path, run_server) -> Server:
    return run_server(write_project(tmp_path, {"faasemu.yaml": MANIFEST, "models.py": HANDLERS}))


def parsed(root: Path, fn: str, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    path = root / f"parsed-{fn}.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{fn} parsed {count} events? none yet")


def test_bus_deliveries_pass_eventbridge_sqs_and_sns_models(server: Server, tmp_path: Path) -> None:
    ids = [f"pt-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    events = [{"type": "pt.order.created", "id": ids[0], "source": "shop", "data": {"order": 1, "items": ["a"]}},
              {"type": "pt.ping", "id": ids[1]}]  # no data: detail {}
    response = httpx.post(f"{server.url}/_faasemu/events", content=json.dumps(events).encode(), timeout=20,
                          headers={"content-type": "application/cloudevents-batch+json"})
    assert response.status_code == 202, response.text
    bridge = parsed(tmp_path, "bridge", 2)
    queue = parsed(tmp_path, "queue", 2)
    topic = parsed(tmp_path, "topic", 2)
    by_id = {b["id"]: b for b in bridge}
    assert by_id[ids[0]] == {"id": ids[0], "detail_type": "pt.order.created", "detail": {"order": 1, "items": ["a"]},
                             "source": "shop", "account": "000000000000"}
    assert by_id[ids[1]]["detail"] == {}
    assert {q["id"] for q in queue} == set(ids) and all(q["receive_count"] == "1" for q in queue)
    assert json.loads(next(q["body"] for q in queue if q["id"] == ids[0])) == {"order": 1, "items": ["a"]}
    assert {t["id"] for t in topic} == set(ids) and all(t["topic"].startswith("arn:aws:sns:") for t in topic)
    assert "ValidationError" not in server.output()


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_http_events_pass_the_api_gateway_models(server: Server, version: str) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        got = client.get(f"/{version}/orders/42", params={"a": "1"}, headers={"cookie": "s=1; theme=dark"})
        posted = client.post(f"/{version}/orders/7", content=b'{"qty": 2}',
                             headers={"content-type": "application/json"})
        bare = client.get(f"/{version}/orders/0")  # no query, no cookie, no body: what the models allow as absent
    for response in (got, posted, bare):
        assert response.status_code == 200, (response.status_code, response.text, server.output()[-3000:])
    got_body, posted_body = got.json(), posted.json()
    assert got_body["params"] == {"id": "42"} and got_body["query"] == {"a": "1"}
    assert posted_body["method"] == "POST" and json.loads(posted_body["body"]) == {"qty": 2}
    if version == "v2":
        assert got_body["cookies"] == ["s=1", "theme=dark"] and got_body["base64"] is False
    else:
        assert got_body["resource"] == "/v1/orders/{id}"
