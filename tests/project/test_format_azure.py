"""Azure Functions apps read as they are: `load_manifest` in a folder with `host.json` and no
faasemu.yaml, v2 decorators (read, never imported) and v1 function.json folders translated, errors
on the file and line at fault (function_app.py, function.json or host.json)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from conftest import write_project

from faasemu.project.errors import ManifestError
from faasemu.project.formats import manifest_text
from faasemu.project.manifest import load_manifest

HOST = """\
    {
      // as `func init --python` writes it, with a comment and a trailing comma the host accepts
      "version": "2.0",
      "extensions": {"http": {"routePrefix": "api"},},
    }
"""

APP = """\
    import azure.functions as func

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


    @app.route(route="hello", methods=[func.HttpMethod.GET, "post"])
    def hello(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("hi")


    @app.function_name(name="OrderById")
    @app.route(route="orders/{id:int}/{*rest}")
    def order(req):
        return "order"


    @app.queue_trigger(arg_name="msg", queue_name="orders", connection="AzureWebJobsStorage")
    def count_sale(msg: func.QueueMessage) -> None:
        pass


    @app.event_grid_trigger(arg_name="event")
    async def audit(event: func.EventGridEvent) -> None:
        pass


    def helper():
        return 1
"""

V1_JSON = """\
    {
      "scriptFile": "__init__.py",
      "bindings": [
        {"authLevel": "anonymous", "type": "httpTrigger", "direction": "in", "name": "req",
         "methods": ["get"]},
        {"type": "http", "direction": "out", "name": "$return"}
      ]
    }
"""


def project(root: Path, app: str = APP, v1: str = V1_JSON, host: str = HOST) -> Path:
    write_project(root, {"host.json": host, "function_app.py": app, "Greet/function.json": v1,
                         "Greet/__init__.py": "def main(req):\n    return 'hi'\n",
                         "local.settings.json": '{"Values": {"SECRET": "s-1"}}'})
    return root / "faasemu.yaml"


def test_an_app_loads_without_a_faasemu_yaml(tmp_path: Path) -> None:
    manifest = load_manifest(project(tmp_path), {})
    assert manifest.path.endswith("host.json")
    assert [spec.name for spec in manifest.functions] == ["hello", "order-by-id", "count-sale", "audit", "greet"]
    hello = manifest.function("hello")
    assert hello is not None and hello.runtime == "azure" and hello.handler == "function_app.py:hello"
    assert [(t.path, t.methods) for t in hello.http] == [("/hello", ("GET", "POST"))]
    order = manifest.function("order-by-id")
    assert order is not None and order.handler == "function_app.py:order"
    assert [t.path for t in order.http] == ["/orders/{id}/{rest+}"]
    count = manifest.function("count-sale")
    assert count is not None and count.events == ("queue.orders",) and count.options["event_source"] == "queue"
    audit = manifest.function("audit")
    assert audit is not None and audit.events == ("eventgrid.audit",) and audit.timeout == 300.0
    greet = manifest.function("greet")
    assert greet is not None and greet.handler == "Greet/__init__.py:main"
    assert [(t.path, t.methods) for t in greet.http] == [("/Greet", ("GET",))]  # the folder name, as the host


def test_settings_are_not_printed(tmp_path: Path) -> None:
    project(tmp_path)
    text = manifest_text(str(tmp_path / "faasemu.yaml"), {})
    assert "s-1" not in text and "SECRET" not in text  # the runtime reads local.settings.json itself


def test_printed_manifest_round_trips(tmp_path: Path) -> None:
    project(tmp_path)
    original = load_manifest(tmp_path / "faasemu.yaml", {})
    (tmp_path / "faasemu.yaml").write_text(manifest_text(str(tmp_path / "faasemu.yaml"), {}))
    again = load_manifest(tmp_path / "faasemu.yaml", {})
    assert [dataclasses.replace(s, line=0) for s in again.functions] == \
        [dataclasses.replace(s, line=0) for s in original.functions]


def test_a_v1_only_app_loads(tmp_path: Path) -> None:
    routed = V1_JSON.replace('"get"]}', '"get"],\n         "route": "hi/{name}"}')
    write_project(tmp_path, {"host.json": HOST, "Greet/function.json": routed,
                             "Greet/__init__.py": "def main(req):\n    return 'hi'\n"})
    (greet,) = load_manifest(tmp_path / "faasemu.yaml", {}).functions
    assert [t.path for t in greet.http] == ["/hi/{name}"]


@pytest.mark.parametrize(("file", "change", "line", "expected"), [
    ("function_app.py", ('@app.event_grid_trigger(arg_name="event")', '@app.timer_trigger(schedule="0 * * * * *", '
                                                                      'arg_name="t")'), 22, "@timer_trigger"),
    ("function_app.py", ('queue_name="orders"', "queue_name=QUEUE"), 17, "write a literal"),
    ("function_app.py", ("def helper():", "def helper(:"), 27, "not valid Python"),
    ("Greet/function.json", ('"httpTrigger"', '"blobTrigger"'), 4, "blobTrigger"),
    ("Greet/function.json", ('"scriptFile": "__init__.py",', '"scriptFile": "__init__.py"'), 3, "not valid JSON"),
    ("host.json", ('"version": "2.0"', '"version": "1.0"'), 3, "Functions 2.0+"),
    ("host.json", ('"version": "2.0",', '"version": "2.0"'), 4, "not valid JSON"),
])
def test_errors_name_the_file_and_line(tmp_path: Path, file: str, change: tuple[str, str], line: int,
                                       expected: str) -> None:
    texts = {"function_app.py": APP, "Greet/function.json": V1_JSON, "host.json": HOST}
    assert change[0] in texts[file]
    texts[file] = texts[file].replace(change[0], change[1], 1)
    with pytest.raises(ManifestError) as caught:
        load_manifest(project(tmp_path, texts["function_app.py"], texts["Greet/function.json"], texts["host.json"]),
                      {})
    assert caught.value.file.endswith(file), str(caught.value)
    assert caught.value.line == line, str(caught.value)
    assert expected in caught.value.detail, str(caught.value)


def test_a_handler_problem_names_function_app_py(tmp_path: Path) -> None:
    project(tmp_path)
    (tmp_path / "Greet" / "__init__.py").write_text("def other(req):\n    return 'hi'\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "faasemu.yaml", {})
    assert caught.value.file.endswith("function.json") and "main" in caught.value.detail, str(caught.value)
