"""OpenFaaS and Knative projects, in their own tools' layouts, served by a real `faasemu up` with no
faasemu.yaml: routes answer, posted events reach the functions the project subscribes to them, and
`faasemu manifest` prints the translation."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from conftest import arrivals, run_cli, wait_for, write_project

# `faas-cli new --lang python3-http hello` and `faas-cli new --lang python3-http record-order --append stack.yml`
OPENFAAS = {
    "stack.yml": """\
        version: 1.0
        provider:
          name: openfaas
          gateway: http://127.0.0.1:8080
        functions:
          hello:
            lang: python3-http
            handler: ./hello
            image: hello:latest
            environment:
              GREETING: ${GREETING:-hello}
          record-order:
            lang: python3-http
            handler: ./record-order
            image: record-order:latest
            annotations:
              topic: order.placed
    """,
    "hello/handler.py": """\
        import os


        def handle(event, context):
            name = event.query.get("name") or "world"
            return {"statusCode": 200, "body": {"greeting": f"{os.environ['GREETING']}, {name}"}}
    """,
    "hello/requirements.txt": "",
    "record-order/handler.py": """\
        import json


        def handle(event, context):
            order = json.loads(event.body)["order"]
            with open("arrivals.txt", "a") as file:
                file.write(order + "\\n")
            return {"statusCode": 200, "body": "recorded"}
    """,
    "record-order/requirements.txt": "",
}

# `func create -l python -t cloudevents confirm` then `func subscribe --filter type=order.placed`
KNATIVE = {
    "func.yaml": """\
        specVersion: 0.36.0
        name: confirm
        runtime: python
        registry: ""
        image: ""
        created: 2024-05-01T10:00:00.000000+00:00
        invoke: cloudevent
        run:
          envs:
          - name: PREFIX
            value: seen
        deploy:
          subscriptions:
          - source: default
            filters:
              type: order.placed
    """,
    "pyproject.toml": """\
        [project]
        name = "function"
        version = "0.1.0"
        dependencies = []
    """,
    "function/__init__.py": "from .func import new\n",
    "function/func.py": """\
        import json
        import os


        def new():
            return Function()


        class Function:
            async def handle(self, scope, receive, send):
                event = scope.get("event")
                if event is not None:
                    with open("arrivals.txt", "a") as file:
                        file.write(os.environ["PREFIX"] + ":" + event.get_data()["order"] + "\\n")
                    body = b""
                else:
                    body = json.dumps({"path": scope["path"], "prefix": os.environ["PREFIX"]}).encode()
                await send({"type": "http.response.start", "status": 200,
                            "headers": [[b"content-type", b"application/json"]]})
                await send({"type": "http.response.body", "body": body})
    """,
}


def post_event(url: str, event: dict) -> httpx.Response:
    return httpx.post(f"{url}/_faasemu/events", json=event, timeout=30)


def test_an_openfaas_stack_serves_its_functions_and_its_connector_topic(tmp_path: Path, run_server) -> None:
    root = tmp_path / "shop"
    server = run_server(write_project(root, OPENFAAS))
    answer = httpx.get(f"{server.url}/function/hello", params={"name": "ada"}, timeout=30)
    assert answer.status_code == 200 and answer.json() == {"greeting": "hello, ada"}
    accepted = post_event(server.url, {"type": "order.placed", "source": "shop", "data": {"order": "o-1"}})
    assert accepted.status_code == 202, accepted.text
    assert wait_for(lambda: arrivals(root) == ["o-1"])


def test_manifest_prints_the_openfaas_translation(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    write_project(root, OPENFAAS)
    printed = run_cli("manifest", cwd=root)
    assert printed.returncode == 0, printed.stderr
    assert '"record-order/handler.py:handle"' in printed.stdout and "runtime: openfaas" in printed.stdout
    assert '"order.placed"' in printed.stdout and '"${GREETING:-hello}"' in printed.stdout
    (root / "stack.yml").write_text((root / "stack.yml").read_text().replace("python3-http\n", "golang-http\n", 1))
    failed = run_cli("manifest", cwd=root)
    assert failed.returncode != 0 and "stack.yml:7:" in failed.stderr and "golang-http" in failed.stderr


@pytest.mark.knative
def test_a_knative_function_serves_http_and_its_subscription(tmp_path: Path, run_server) -> None:
    root = tmp_path / "confirm"
    server = run_server(write_project(root, KNATIVE))
    answer = httpx.get(f"{server.url}/orders/1", timeout=30)
    assert answer.status_code == 200 and answer.json() == {"path": "/orders/1", "prefix": "seen"}
    accepted = post_event(server.url, {"type": "order.placed", "source": "shop", "data": {"order": "o-2"}})
    assert accepted.status_code == 202, accepted.text
    assert wait_for(lambda: arrivals(root) == ["seen:o-2"])


def test_manifest_prints_the_knative_translation(tmp_path: Path) -> None:
    root = tmp_path / "confirm"
    write_project(root, KNATIVE)
    printed = run_cli("manifest", cwd=root)
    assert printed.returncode == 0, printed.stderr
    assert '"function/func.py"' in printed.stdout and "runtime: knative" in printed.stdout
    assert '"order.placed"' in printed.stdout and '{path: "/{path+}"}' in printed.stdout


# `func init --python` (the v2 model) with an HTTP function and a queue trigger
AZURE = {
    "host.json": """\
        {
          "version": "2.0",
          "logging": {"applicationInsights": {"samplingSettings": {"isEnabled": true, "excludedTypes": "Request"}}},
          "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"}
        }
    """,
    "local.settings.json": """\
        {
          "IsEncrypted": false,
          "Values": {"FUNCTIONS_WORKER_RUNTIME": "python", "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                     "GREETING": "hello"}
        }
    """,
    "requirements.txt": "azure-functions\n",
    "function_app.py": """\
        import json
        import os

        import azure.functions as func

        app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


        @app.route(route="hello/{name}", methods=["GET"])
        def hello(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse(f"{os.environ['GREETING']}, {req.route_params['name']}")


        @app.queue_trigger(arg_name="msg", queue_name="orders", connection="AzureWebJobsStorage")
        def record_order(msg: func.QueueMessage) -> None:
            with open("arrivals.txt", "a") as file:
                file.write(json.loads(msg.get_body())["order"] + "\\n")
    """,
}


@pytest.mark.azure
def test_an_azure_app_serves_its_route_and_its_queue(tmp_path: Path, run_server) -> None:
    root = tmp_path / "app"
    server = run_server(write_project(root, AZURE))
    answer = httpx.get(f"{server.url}/api/hello/ada", timeout=30)
    assert answer.status_code == 200 and answer.text == "hello, ada"  # GREETING from local.settings.json
    accepted = post_event(server.url, {"type": "queue.orders", "source": "shop", "data": {"order": "o-3"}})
    assert accepted.status_code == 202, accepted.text
    assert wait_for(lambda: arrivals(root) == ["o-3"])


def test_manifest_prints_the_azure_translation(tmp_path: Path) -> None:
    root = tmp_path / "app"
    write_project(root, AZURE)
    printed = run_cli("manifest", cwd=root)
    assert printed.returncode == 0, printed.stderr
    assert '"function_app.py:record_order"' in printed.stdout and '"queue.orders"' in printed.stdout
    assert "UseDevelopmentStorage" not in printed.stdout


# a site with netlify.toml's default functions folder and an event-triggered function
NETLIFY = {
    "netlify.toml": """\
        [build]
          publish = "public"

        [build.environment]
          GREETING = "hello"
    """,
    "public/index.html": "<h1>site</h1>\n",
    "netlify/functions/hello.py": """\
        import json
        import os


        def handler(event, context):
            name = (event["queryStringParameters"] or {}).get("name", "world")
            return {"statusCode": 200, "body": json.dumps({"greeting": f"{os.environ['GREETING']}, {name}"})}
    """,
    "netlify/functions/submission-created.py": """\
        import json


        def handler(event, context):
            with open("arrivals.txt", "a") as file:
                file.write(json.loads(event["body"])["order"] + "\\n")
            return {"statusCode": 200, "body": ""}
    """,
}

# Vercel's Python runtime layout: api/*.py, with vercel.json settings and a Vercel Queues consumer
VERCEL = {
    "vercel.json": """\
        {
          "functions": {
            "api/**/*.py": {"maxDuration": 30},
            "api/record.py": {"experimentalTriggers": [{"type": "queue/v1beta", "topic": "order.placed"}]}
          }
        }
    """,
    "requirements.txt": "",
    "api/hello.py": """\
        import json
        from http.server import BaseHTTPRequestHandler


        class handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({"path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)
    """,
    "api/record.py": """\
        import json
        from http.server import BaseHTTPRequestHandler


        class handler(BaseHTTPRequestHandler):
            def do_POST(self):
                data = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with open("arrivals.txt", "a") as file:
                    file.write(data["order"] + "\\n")
                self.send_response(200)
                self.end_headers()
    """,
}


def test_a_netlify_site_serves_its_functions_and_an_event_function(tmp_path: Path, run_server) -> None:
    root = tmp_path / "site"
    server = run_server(write_project(root, NETLIFY))
    answer = httpx.get(f"{server.url}/.netlify/functions/hello", params={"name": "ada"}, timeout=30)
    assert answer.status_code == 200 and answer.json() == {"greeting": "hello, ada"}
    accepted = post_event(server.url, {"type": "submission-created", "source": "forms", "data": {"order": "o-4"}})
    assert accepted.status_code == 202, accepted.text
    assert wait_for(lambda: arrivals(root) == ["o-4"])


def test_a_vercel_project_serves_its_files_and_its_queue_topic(tmp_path: Path, run_server) -> None:
    root = tmp_path / "web"
    server = run_server(write_project(root, VERCEL))
    answer = httpx.get(f"{server.url}/api/hello", timeout=30)
    assert answer.status_code == 200 and answer.json() == {"path": "/api/hello"}
    accepted = post_event(server.url, {"type": "order.placed", "source": "shop", "data": {"order": "o-5"}})
    assert accepted.status_code == 202, accepted.text
    assert wait_for(lambda: arrivals(root) == ["o-5"])


@pytest.mark.parametrize(("files", "expected"), [
    (NETLIFY, ('"netlify/functions/submission-created.py:handler"', "runtime: netlify")),
    (VERCEL, ('"api/record.py"', "runtime: vercel", "timeout: 30")),
])
def test_manifest_prints_the_netlify_and_vercel_translations(tmp_path: Path, files: dict[str, str],
                                                              expected: tuple[str, ...]) -> None:
    root = tmp_path / "project"
    write_project(root, files)
    printed = run_cli("manifest", cwd=root)
    assert printed.returncode == 0, printed.stderr
    assert all(text in printed.stdout for text in expected), printed.stdout


def test_a_vercel_project_without_vercel_json_is_served_as_vercel_serves_it(tmp_path: Path, run_server) -> None:
    """Vercel's zero configuration: only api/*.py. `up` finds it without any project file, with Vercel's
    defaults, and `faasemu manifest` prints what it served."""
    root = tmp_path / "zero"
    files = {name: text for name, text in VERCEL.items() if name != "vercel.json"}
    server = run_server(write_project(root, files))
    answer = httpx.get(f"{server.url}/api/hello", timeout=30)
    assert answer.status_code == 200 and answer.json() == {"path": "/api/hello"}
    printed = run_cli("manifest", cwd=root)
    assert printed.returncode == 0 and '"api/hello.py"' in printed.stdout and "runtime: vercel" in printed.stdout, \
        printed.stdout + printed.stderr
