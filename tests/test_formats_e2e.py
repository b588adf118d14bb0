"""A SAM project and a Serverless service, in their docs' layouts, served by a real `faasemu up` with
no faasemu.yaml: routes answer, posted events reach their handlers, `faasemu chaos` checks them."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from conftest import arrivals, run_cli, wait_for, write_project

SAM = {
    "template.yaml": """\
        AWSTemplateFormatVersion: '2010-09-09'
        Transform: AWS::Serverless-2016-10-31
        Description: sam-app
        Globals:
          Function:
            Timeout: 3
            Runtime: python3.12
        Resources:
          HelloWorldFunction:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: hello_world/
              Handler: app.lambda_handler
              Environment:
                Variables:
                  GREETING: !Sub "hello from ${AWS::StackName}"
              Events:
                HelloWorld:
                  Type: Api
                  Properties:
                    Path: /hello/{name}
                    Method: get
          OrderWorker:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: hello_world/
              Handler: app.worker
              Events:
                Orders:
                  Type: SQS
                  Properties:
                    Queue: !GetAtt OrdersQueue.Arn
                    BatchSize: 1
          OrdersQueue:
            Type: AWS::SQS::Queue
    """,
    "hello_world/__init__.py": "",
    "hello_world/app.py": """\
        import json
        import os


        def lambda_handler(event, context):
            name = event["pathParameters"]["name"]
            return {"statusCode": 200, "body": json.dumps({"message": f"{os.environ['GREETING']}, {name}"})}


        def worker(event, context):
            with open("arrivals.txt", "a") as file:
                for record in event["Records"]:
                    file.write(json.loads(record["body"])["order"] + "\\n")
    """,
}

SERVERLESS = {
    "serverless.yml": """\
        service: shop
        provider:
          name: aws
          runtime: python3.12
          environment:
            STAGE: ${sls:stage}
        functions:
          hello:
            handler: handler.hello
            events:
              - httpApi: 'GET /hello'
          placed:
            handler: handler.placed
            events:
              - eventBridge:
                  pattern:
                    detail-type: [OrderPlaced]
    """,
    "handler.py": """\
        import os


        def hello(event, context):
            return {"stage": os.environ["STAGE"], "path": event["rawPath"]}


        def placed(event, context):
            with open("arrivals.txt", "a") as file:
                file.write(event["detail-type"] + ":" + event["detail"]["order"] + "\\n")
    """,
}


def post_event(url: str, event: dict) -> httpx.Response:
    return httpx.post(f"{url}/_faasemu/events", json=event, timeout=30)


def test_a_sam_project_serves_its_api_and_its_queue(tmp_path: Path, run_server) -> None:
    root = tmp_path / "sam-app"
    server = run_server(write_project(root, SAM))
    answer = httpx.get(f"{server.url}/hello/ada", timeout=30)
    assert answer.status_code == 200 and answer.json() == {"message": "hello from sam-app, ada"}
    accepted = post_event(server.url, {"type": "sqs.OrdersQueue", "source": "test", "data": {"order": "o-1"}})
    assert accepted.status_code == 202, accepted.text
    assert wait_for(lambda: arrivals(root) == ["o-1"])


def test_a_serverless_service_serves_its_http_api_and_eventbridge_rule(tmp_path: Path, run_server) -> None:
    root = tmp_path / "shop"
    server = run_server(write_project(root, SERVERLESS))
    answer = httpx.get(f"{server.url}/hello", timeout=30)
    assert answer.status_code == 200 and answer.json() == {"stage": "dev", "path": "/hello"}
    accepted = post_event(server.url, {"type": "OrderPlaced", "source": "shop", "data": {"order": "o-2"}})
    assert accepted.status_code == 202, accepted.text
    assert wait_for(lambda: arrivals(root) == ["OrderPlaced:o-2"])


def test_chaos_runs_on_a_serverless_service(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    files = {**SERVERLESS, "handler.py": """\
        def hello(event, context):
            return {}


        def placed(event, context):
            return None
    """}
    write_project(root, files)
    (root / "events.jsonl").write_text(
        "".join(json.dumps({"type": "OrderPlaced", "source": "shop", "data": {"order": f"o-{n}"}}) + "\n"
                for n in range(3)))
    result = run_cli("chaos", "events.jsonl", "--runs", "2", "--seed", "7", cwd=root, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr


def test_chaos_finds_a_sam_queue_worker_that_is_not_idempotent(tmp_path: Path) -> None:
    """The SAM project as it is, its SQS worker recording each message in the state database: a duplicated
    SQS message (at-least-once) records it twice."""
    root = tmp_path / "sam-app"
    worker = """\
        import json
        import os
        import sqlite3


        def lambda_handler(event, context):
            return {"statusCode": 200, "body": "{}"}


        def worker(event, context):
            db = sqlite3.connect(os.environ["FAASEMU_STATE"])
            with db:
                db.execute("CREATE TABLE IF NOT EXISTS received (body TEXT)")
                for record in event["Records"]:
                    db.execute("INSERT INTO received VALUES (?)", (record["body"],))
            db.close()
    """
    write_project(root, {**SAM, "hello_world/app.py": worker})
    (root / "events.jsonl").write_text(json.dumps({"type": "sqs.OrdersQueue", "data": {"order": "o-1"}}) + "\n")
    result = run_cli("chaos", "events.jsonl", "--runs", "2", "--seed", "7", "--json", "report.json", cwd=root,
                     timeout=180)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((root / "report.json").read_text())
    assert report["functions"]["order-worker"]["idempotent"] is False, report["functions"]


def test_manifest_prints_the_equivalent_and_a_bad_template_is_one_located_line(tmp_path: Path) -> None:
    root = tmp_path / "sam-app"
    write_project(root, SAM)
    printed = run_cli("manifest", cwd=root)
    assert printed.returncode == 0, printed.stderr
    assert "hello-world-function:" in printed.stdout and '"sqs.OrdersQueue"' in printed.stdout
    bad = SAM["template.yaml"].replace("Runtime: python3.12", "Runtime: nodejs20.x")
    write_project(root, {"template.yaml": bad})
    result = run_cli("up", "--port", "0", cwd=root)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: template.yaml:7: "), result.stderr
    assert "only Python runtimes (python3.x) run in faasemu" in lines[0]
