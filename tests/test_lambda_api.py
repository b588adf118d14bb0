"""The Lambda API beyond Invoke's basics, driven by real boto3 and AWS CLI v1 clients (issue 8).

`LogType: Tail`, `ClientContext`, a payload that is not JSON, ListFunctions / GetFunction /
GetFunctionConfiguration from the manifest, a clear error for every other operation, and a
function whose runtime has no raw invocation.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
from conftest import Server, write_project

HANDLERS = '''\
import logging
import sys

logging.basicConfig(level=logging.INFO)  # a StreamHandler made at import time, on stderr
log = logging.getLogger("orders")


def echo(event, context):
    return {"got": event, "request_id": context.aws_request_id}


def chatty(event, context):
    print("printed for", event.get("who"))
    log.info("logged for %s", event.get("who"))
    sys.stderr.write("stderr for " + str(event.get("who")) + "\\n")
    for n in range(event.get("lines", 0)):
        print(f"line {n:05d} " + "x" * 60)
    return "said it"


def boom(event, context):
    print("about to fail")
    raise KeyError("no such order")


def client_context(event, context):
    cc = context.client_context
    if cc is None:
        return None
    return {"custom": cc.custom, "env": cc.env, "app_title": cc.client.app_title,
            "installation_id": cc.client.installation_id}
'''

MANIFEST = """\
functions:
  echo:
    handler: handlers.py:echo
    timeout: 7
    memory: 256
    env:
      TABLE: orders
  chatty:
    handler: handlers.py:chatty
  boom:
    handler: handlers.py:boom
  client-context:
    handler: handlers.py:client_context
  not-lambda:
    runtime: kubeless
    handler: handlers.py:echo
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("lambda-api")
    manifest = write_project(root, {"faasemu.yaml": MANIFEST, "handlers.py": HANDLERS})
    server = Server(manifest).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Any:
    return boto3.client("lambda", endpoint_url=server.url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")


def tail_of(response: dict[str, Any]) -> str:
    return base64.b64decode(response["LogResult"]).decode()


# -- LogType: Tail ------------------------------------------------------------------------------


def test_log_tail_holds_this_invocations_output_between_start_and_report(client: Any) -> None:
    response = client.invoke(FunctionName="chatty", LogType="Tail", Payload=b'{"who": "ada"}')
    assert json.loads(response["Payload"].read()) == "said it"
    log = tail_of(response)
    request_id = response["ResponseMetadata"]["RequestId"]
    lines = log.splitlines()
    assert lines[0] == f"START RequestId: {request_id} Version: $LATEST"
    assert "printed for ada" in lines and "stderr for ada" in lines
    assert any("logged for ada" in line for line in lines), log  # logging's handler, made at import, is seen
    assert f"END RequestId: {request_id}" in lines
    assert lines[-1].startswith(f"REPORT RequestId: {request_id}\tDuration: ") and "Memory Size: 128 MB" in lines[-1]
    # another invocation's output is not in it
    again = tail_of(client.invoke(FunctionName="chatty", LogType="Tail", Payload=b'{"who": "bob"}'))
    assert "printed for bob" in again and "ada" not in again


def test_log_tail_is_the_last_4_kb(client: Any) -> None:
    response = client.invoke(FunctionName="chatty", LogType="Tail", Payload=b'{"who": "eve", "lines": 200}')
    raw = base64.b64decode(response["LogResult"])
    assert len(raw) == 4096
    assert raw.rstrip(b"\t\n").split(b"\n")[-1].startswith(b"REPORT RequestId: ")
    assert b"line 00199 " in raw and b"line 00100 " not in raw and b"START RequestId" not in raw


def test_log_tail_of_a_failing_invocation_has_the_error(client: Any) -> None:
    response = client.invoke(FunctionName="boom", LogType="Tail", Payload=b"{}")
    assert response["FunctionError"] == "Unhandled"
    log = tail_of(response)
    assert "about to fail" in log and "[ERROR] KeyError: 'no such order'" in log
    assert "Traceback (most recent call last):" in log and "handlers.py" in log


def test_no_log_result_unless_asked(client: Any) -> None:
    assert "LogResult" not in client.invoke(FunctionName="chatty", Payload=b"{}")


# -- ClientContext ------------------------------------------------------------------------------


def test_client_context_reaches_the_handler(client: Any) -> None:
    given = {"client": {"app_title": "Orders", "app_version_code": "42"}, "custom": {"tenant": "acme"},
             "env": {"platform": "Android"}}
    encoded = base64.b64encode(json.dumps(given).encode()).decode()
    response = client.invoke(FunctionName="client-context", ClientContext=encoded, Payload=b"{}")
    assert json.loads(response["Payload"].read()) == {
        "custom": {"tenant": "acme"}, "env": {"platform": "Android"}, "app_title": "Orders", "installation_id": None}
    assert json.loads(client.invoke(FunctionName="client-context", Payload=b"{}")["Payload"].read()) is None


@pytest.mark.parametrize("context", ["not base64!", base64.b64encode(b"[1, 2]").decode(),
                                     base64.b64encode(b"{nope").decode()])
def test_a_client_context_that_is_not_base64_json_is_refused(client: Any, context: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.invoke(FunctionName="client-context", ClientContext=context, Payload=b"{}")
    assert info.value.response["Error"]["Code"] == "InvalidRequestContentException"
    assert "Client context must" in info.value.response["Error"]["Message"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# -- payloads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["RequestResponse", "Event"])
def test_a_payload_that_is_not_json_is_invalid_request_content(client: Any, kind: str) -> None:
    with pytest.raises(client.exceptions.InvalidRequestContentException) as info:
        client.invoke(FunctionName="echo", InvocationType=kind, Payload=b"order=42")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "not JSON" in info.value.response["Error"]["Message"]


def test_a_runtime_without_raw_invocation_is_named(client: Any) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.invoke(FunctionName="not-lambda", Payload=b"{}")
    error = info.value.response["Error"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Code"] == "InvalidParameterValueException"
    assert "runtime kubeless" in error["Message"] and "not-lambda" in error["Message"]


# -- functions from the manifest -----------------------------------------------------------------


def test_list_functions_answers_the_lambda_functions_of_the_manifest(client: Any) -> None:
    functions = client.list_functions()["Functions"]
    assert [f["FunctionName"] for f in functions] == ["echo", "chatty", "boom", "client-context"]  # not kubeless
    echo = functions[0]
    assert echo["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:echo"
    assert echo["Runtime"] == f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert echo["Handler"] == "handlers.echo"
    assert (echo["Timeout"], echo["MemorySize"]) == (7, 256)
    # the names, never the values: they may be secrets from .env or ${VAR}, and this API has no auth
    assert echo["Environment"]["Variables"]["TABLE"] == "(hidden by faasemu: see the manifest)"
    assert echo["Version"] == "$LATEST" and echo["PackageType"] == "Zip" and echo["State"] == "Active"


def test_get_function_and_its_configuration(client: Any, server: Server) -> None:
    configuration = client.get_function_configuration(FunctionName="echo")
    assert configuration["FunctionName"] == "echo" and configuration["Handler"] == "handlers.echo"
    code = (server.manifest.parent / "handlers.py").read_bytes()
    assert configuration["CodeSize"] == len(code)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", configuration["LastModified"])
    whole = client.get_function(FunctionName="arn:aws:lambda:us-east-1:000000000000:function:echo")
    assert whole["Configuration"]["FunctionArn"] == configuration["FunctionArn"]
    assert whole["Code"]["RepositoryType"] == "S3"
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function(FunctionName="no-such-function")
    with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
        client.get_function_configuration(FunctionName="not-lambda")
    assert "kubeless" in info.value.response["Error"]["Message"]


@pytest.mark.parametrize("call", [
    lambda c: c.list_aliases(FunctionName="echo"),
    lambda c: c.update_function_configuration(FunctionName="echo", Timeout=9),
    lambda c: c.get_account_settings(),  # another API version's path: /2016-08-19/
    lambda c: c.list_tags(Resource="arn:aws:lambda:us-east-1:000000000000:function:echo"),  # /2017-03-31/
    lambda c: c.get_function_url_config(FunctionName="echo"),  # /2021-10-31/
])
def test_any_other_operation_says_what_faasemu_implements(client: Any, call: Any) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call(client)
    assert info.value.response["Error"]["Code"] == "NotImplementedException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    message = info.value.response["Error"]["Message"]
    assert "implements only Invoke, ListFunctions, GetFunction and GetFunctionConfiguration" in message


# -- the AWS CLI v1 ------------------------------------------------------------------------------


def aws_cli(server: Server, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_PAGER": ""}
    return subprocess.run([sys.executable, "-m", "awscli", "lambda", *args, "--endpoint-url", server.url,
                           "--output", "json"], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


needs_cli = pytest.mark.skipif(importlib.util.find_spec("awscli") is None,
                               reason="the AWS CLI v1 (pip install 'faasemu[test]') is not installed")


@needs_cli
def test_aws_cli_invoke_with_log_tail(server: Server, tmp_path: Path) -> None:
    result = aws_cli(server, "invoke", "--function-name", "chatty", "--payload", '{"who": "cli"}',
                     "--log-type", "Tail", "out.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["StatusCode"] == 200 and answer["ExecutedVersion"] == "$LATEST"
    assert "printed for cli" in base64.b64decode(answer["LogResult"]).decode()
    assert json.loads((tmp_path / "out.json").read_text()) == "said it"


@needs_cli
def test_aws_cli_function_listing_and_configuration(server: Server, tmp_path: Path) -> None:
    listed = aws_cli(server, "list-functions", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "echo" in [f["FunctionName"] for f in json.loads(listed.stdout)["Functions"]]
    configuration = aws_cli(server, "get-function-configuration", "--function-name", "echo", cwd=tmp_path)
    assert configuration.returncode == 0, configuration.stderr
    assert json.loads(configuration.stdout)["Handler"] == "handlers.echo"


@needs_cli
def test_aws_cli_on_an_unimplemented_operation(server: Server, tmp_path: Path) -> None:
    result = aws_cli(server, "list-aliases", "--function-name", "echo", cwd=tmp_path)
    assert result.returncode != 0
    assert "NotImplementedException" in result.stderr and "implements only" in result.stderr
