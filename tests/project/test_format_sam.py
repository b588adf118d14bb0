"""AWS SAM templates read as they are: `load_manifest` in a folder with `template.yaml` and no
faasemu.yaml, with errors on the template's own lines (README "Existing projects")."""

from __future__ import annotations

import dataclasses
import re
import textwrap
from pathlib import Path

import pytest
from conftest import write_project

from faasemu.project.errors import ManifestError
from faasemu.project.formats import manifest_text
from faasemu.project.manifest import load_manifest

APP = """\
    import json


    def lambda_handler(event, context):
        return {"statusCode": 200, "body": json.dumps({"message": "hello world"})}


    def worker(event, context):
        return {"batchItemFailures": []}
"""

# The layout `sam init` writes (hello_world/app.py + template.yaml), with a queue, rules and a table.
TEMPLATE = """\
    AWSTemplateFormatVersion: '2010-09-09'
    Transform: AWS::Serverless-2016-10-31
    Description: sam-app
    Parameters:
      Stage:
        Type: String
        Default: dev
    Globals:
      Function:
        Timeout: 5
        MemorySize: 256
        Runtime: python3.12
        Environment:
          Variables:
            STAGE: !Ref Stage
            SHARED: from-globals
    Resources:
      HelloWorldFunction:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: hello_world/
          Handler: app.lambda_handler
          Policies:
            - SQSSendMessagePolicy:
                QueueName: !If [IsProd, a, b]
          Environment:
            Variables:
              SHARED: own
              QUEUE_URL: !Ref OrdersQueue
              QUEUE_ARN: !GetAtt OrdersQueue.Arn
              WHERE: !Sub "${AWS::StackName}-${AWS::Region}-${Stage}-${AWS::AccountId}"
              PRICE: "5$"
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
          Timeout: 30
          Events:
            Orders:
              Type: SQS
              Properties:
                Queue: !GetAtt OrdersQueue.Arn
                BatchSize: 5
                FunctionResponseTypes: [ReportBatchItemFailures]
      Rules:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: hello_world/
          Handler: app.worker
          Events:
            Placed:
              Type: EventBridgeRule
              Properties:
                Pattern:
                  source: [shop]
                  detail-type: [OrderPlaced, {prefix: Refund}]
            Nightly:
              Type: Schedule
              Properties:
                Schedule: rate(1 day)
      Uploads:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: hello_world/
          Handler: app.worker
          Events:
            Put:
              Type: S3
              Properties:
                Bucket: !Ref UploadBucket
                Events: s3:ObjectCreated:*
      OrdersQueue:
        Type: AWS::SQS::Queue
        Properties:
          QueueName: orders
      UploadBucket:
        Type: AWS::S3::Bucket
    Outputs:
      HelloWorldApi:
        Value: !Sub "https://${ServerlessRestApi}.execute-api.${AWS::Region}.amazonaws.com/Prod/hello/"
"""


def project(root: Path, template: str = TEMPLATE, name: str = "template.yaml") -> Path:
    write_project(root, {name: template, "hello_world/app.py": APP, "hello_world/__init__.py": ""})
    return root / "faasemu.yaml"


def test_a_sam_project_loads_without_a_faasemu_yaml(tmp_path: Path) -> None:
    manifest = load_manifest(project(tmp_path / "sam-app"), {})
    assert manifest.path.endswith("template.yaml") and manifest.name == "sam-app"
    hello = manifest.function("hello-world-function")
    assert hello is not None
    assert hello.handler == "hello_world/app.py:lambda_handler"
    assert hello.handler_file == str(tmp_path / "sam-app" / "hello_world" / "app.py")
    assert [(t.path, t.methods) for t in hello.http] == [("/hello/{name}", ("GET",))]
    assert hello.options["payload"] == "v1" and hello.timeout == 5.0 and hello.memory == 256
    assert hello.env == {"STAGE": "dev", "SHARED": "own", "PRICE": "5$",
                         "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/orders",
                         "QUEUE_ARN": "arn:aws:sqs:us-east-1:123456789012:orders",
                         "WHERE": "sam-app-us-east-1-dev-123456789012"}
    assert hello.line == 18  # the template's line of HelloWorldFunction


def test_sqs_rules_schedules_and_s3_become_event_types(tmp_path: Path) -> None:
    manifest = load_manifest(project(tmp_path / "sam-app"), {})
    worker = manifest.function("order-worker")
    assert worker is not None and worker.events == ("sqs.OrdersQueue",)
    assert worker.options["event_source"] == "sqs" and worker.batch_size == 5 and worker.report_batch_item_failures
    assert worker.timeout == 30.0
    rules = manifest.function("rules")
    assert rules is not None and rules.events == ("OrderPlaced", "Refund*", "schedule.Nightly")
    assert rules.options.get("event_source", "eventbridge") == "eventbridge"
    uploads = manifest.function("uploads")
    assert uploads is not None and uploads.events == ("s3.UploadBucket",)
    assert uploads.options["event_source"] in ("raw", "s3")


def test_sqs_without_batch_size_gets_lambdas_default_of_ten(tmp_path: Path) -> None:
    template = re.sub(r"\n *(BatchSize: 5|FunctionResponseTypes: .*)(?=\n)", "", TEMPLATE)
    worker = load_manifest(project(tmp_path / "app", template), {}).function("order-worker")
    assert worker is not None and worker.batch_size == 10 and not worker.report_batch_item_failures


def test_http_api_is_payload_2_and_no_path_is_the_catch_all(tmp_path: Path) -> None:
    template = TEMPLATE.replace("""              Type: Api
              Properties:
                Path: /hello/{name}
                Method: get""", """              Type: HttpApi""")
    hello = load_manifest(project(tmp_path / "app", template), {}).function("hello-world-function")
    assert hello is not None and hello.options["payload"] == "v2"
    assert [(t.path, t.methods) for t in hello.http] == [("/{proxy+}", ())]


def test_the_printed_manifest_loads_to_the_same_functions(tmp_path: Path) -> None:
    root = tmp_path / "sam-app"
    original = load_manifest(project(root), {})
    text = manifest_text(str(root / "faasemu.yaml"), {})
    (root / "faasemu.yaml").write_text(text)
    again = load_manifest(root / "faasemu.yaml", {})

    def same(manifest):  # the line differs by nature: the template's, then the printed file's
        return [dataclasses.replace(spec, line=0) for spec in manifest.functions]

    assert same(again) == same(original) and again.name == original.name and again.env_file is None


@pytest.mark.parametrize(("change", "at", "expected"), [
    (("Runtime: python3.12", "Runtime: nodejs20.x"), "nodejs20.x",
     "Globals.Function.Runtime: Runtime nodejs20.x: only Python runtimes (python3.x) run in faasemu"),
    (("SHARED: own", "SHARED: !If [IsProd, a, b]"), "SHARED: !If", "!If is not resolved locally"),
    (("Default: dev", "Description: no default"), "STAGE: !Ref Stage",
     "!Ref Stage: the parameter (line 6) has no Default"),
    (("QUEUE_URL: !Ref OrdersQueue", "QUEUE_URL: !Ref UploadBucket"), "!Ref UploadBucket",
     "!Ref UploadBucket (AWS::S3::Bucket) is named by CloudFormation when it deploys"),
    (("Handler: app.lambda_handler", "Handler: app.missing"), "app.missing",
     "Resources.HelloWorldFunction.Properties.Handler: hello_world/app.py has no function 'missing'"),
    (("CodeUri: hello_world/", "CodeUri: nowhere/"), "app.lambda_handler", "nowhere/app.py does not exist"),
    (("Path: /hello/{name}", "Path: hello"), "Path: hello", "'hello' must start with '/'"),
    (("Type: S3", "Type: AlexaSkill"), "AlexaSkill", "AlexaSkill events are not translated"),
])
def test_errors_name_the_template_line(tmp_path: Path, change: tuple[str, str], at: str, expected: str) -> None:
    assert change[0] in TEMPLATE
    template = TEMPLATE.replace(change[0], change[1], 1)
    line = next(number for number, text in enumerate(textwrap.dedent(template).splitlines(), 1) if at in text)
    with pytest.raises(ManifestError) as caught:
        load_manifest(project(tmp_path / "app", template), {})
    assert caught.value.file.endswith("template.yaml")
    assert caught.value.line == line, str(caught.value)
    assert expected in caught.value.detail, str(caught.value)


def test_two_event_shapes_on_one_function_are_refused(tmp_path: Path) -> None:
    template = TEMPLATE.replace("""            Nightly:
              Type: Schedule""", """            Queue:
              Type: SQS
              Properties:
                Queue: !GetAtt OrdersQueue.Arn
            Nightly:
              Type: Schedule""")
    with pytest.raises(ManifestError, match=r"need different event_sources .*split it into two functions"):
        load_manifest(project(tmp_path / "app", template), {})


def test_dash_f_names_a_template_by_its_content(tmp_path: Path) -> None:
    project(tmp_path / "app", name="infra.yaml")
    manifest = load_manifest(tmp_path / "app" / "infra.yaml", {})
    assert manifest.function("hello-world-function") is not None


def test_a_folder_with_both_formats_asks_which(tmp_path: Path) -> None:
    project(tmp_path / "app")
    (tmp_path / "app" / "serverless.yml").write_text("service: x\nprovider: {name: aws}\n")
    with pytest.raises(ManifestError, match=r"holds both template\.yaml .* and serverless.yml"):
        load_manifest(tmp_path / "app" / "faasemu.yaml", {})


def test_a_missing_custom_manifest_is_not_replaced_by_the_template(tmp_path: Path) -> None:
    project(tmp_path / "app")
    with pytest.raises(ManifestError, match="no such file"):
        load_manifest(tmp_path / "app" / "custom.yaml", {})


def test_every_queue_is_in_queues_and_the_printed_manifest(tmp_path: Path) -> None:
    """docs/delivery.md#sqs-sends-become-events: the name a send uses -> the type its reader subscribes to."""
    template = TEMPLATE.replace("""      UploadBucket:
        Type: AWS::S3::Bucket
""", """      UploadBucket:
        Type: AWS::S3::Bucket
      Unnamed:
        Type: AWS::SQS::Queue
      Payments:
        Type: AWS::SQS::Queue
        Properties:
          FifoQueue: true
      PaymentWorker:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: hello_world/
          Handler: app.worker
          Environment:
            Variables:
              UNNAMED_URL: !Ref Unnamed
          Events:
            Payments:
              Type: SQS
              Properties:
                Queue: !GetAtt Payments.Arn
            Legacy:
              Type: SQS
              Properties:
                Queue: arn:aws:sqs:us-east-1:123456789012:legacy
""")
    root = tmp_path / "sam-app"
    manifest = load_manifest(project(root, template), {})
    assert manifest.queues == {"orders": "sqs.OrdersQueue", "sam-app-Unnamed": "sqs.Unnamed",
                               "sam-app-Payments.fifo": "sqs.Payments", "legacy": "sqs.legacy"}
    payments = manifest.function("payment-worker")
    assert payments is not None and payments.order_key == "sqsgroup"  # a FIFO queue: ordered per group
    assert payments.env["UNNAMED_URL"] == "https://sqs.us-east-1.amazonaws.com/123456789012/sam-app-Unnamed"
    worker = manifest.function("order-worker")
    assert worker is not None and worker.order_key is None
    text = manifest_text(str(root / "faasemu.yaml"), {})
    assert '\nqueues:' in text and '\n  "sam-app-Payments.fifo": "sqs.Payments"' in text, text
    (root / "faasemu.yaml").write_text(text)  # the printed manifest is a faasemu.yaml with the same queues
    assert load_manifest(root / "faasemu.yaml", {}).queues == manifest.queues
