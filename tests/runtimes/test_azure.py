"""The Azure runtime's conversions, tested directly: routes under routePrefix, the host's RpcHttp
request, how the host reads a returned str or HttpResponse, queue and Event Grid trigger data, the
worker's context and binding checks. Most tests need no SDK; those marked `azure` bind real
`azure.functions` objects in-process (CI runs them in the azure virtualenv).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import textwrap
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

from faasemu.runtimes import azure
from faasemu.runtimes.base import Delivery, EntryPointError, HttpRequest, Invocation, MissingSDK
from faasemu.project.spec import FunctionSpec, HttpTrigger


def spec_for(tmp_path: Path, *, http: tuple[HttpTrigger, ...] = (), events: tuple[str, ...] = (),
             handler: str = "function_app.py:fn", options: dict[str, str] | None = None,
             name: str = "fn") -> FunctionSpec:
    file, _, attr = handler.partition(":")
    return FunctionSpec(name=name, handler=handler, runtime="azure", handler_file=str(tmp_path / file),
                        handler_attr=attr, http=http, events=events, timeout=300, memory=1536, retries=4,
                        options=options or {})


# -- routes and environment -------------------------------------------------------------------


def test_routes_live_under_the_api_prefix(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, http=(HttpTrigger("/orders/{id}", ("GET",)), HttpTrigger("/", ()),
                                    HttpTrigger("/api/already", ())))
    assert [(t.path, t.methods) for t in azure.http_routes(spec)] == [
        ("/api/orders/{id}", ("GET",)), ("/api", ()), ("/api/already", ())]


@pytest.mark.parametrize(("prefix", "expected"),
                         [("", "/orders"), ("v1/shop", "/v1/shop/orders"), ("/x/", "/x/orders")])
def test_host_json_route_prefix_is_honoured(tmp_path: Path, prefix: str, expected: str) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": prefix}}}))
    spec = spec_for(tmp_path, http=(HttpTrigger("/orders"),))
    assert azure.http_routes(spec)[0].path == expected


def test_a_v1_function_folder_finds_host_json_one_level_up(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text('{"extensions": {"http": {"routePrefix": "fn"}}}')
    spec = spec_for(tmp_path, handler="Greet/__init__.py:main", http=(HttpTrigger("/greet"),))
    assert azure.http_routes(spec)[0].path == "/fn/greet"


def test_environment_is_the_hosts_plus_local_settings_values(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text(json.dumps(
        {"IsEncrypted": False, "Values": {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "RETRIES": 3}}))
    env = azure.environment(spec_for(tmp_path), str(tmp_path))
    assert env["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert env["FUNCTIONS_EXTENSION_VERSION"] == "~4"
    assert env["AzureWebJobsScriptRoot"] == str(tmp_path)
    assert env["AzureWebJobsStorage"] == "UseDevelopmentStorage=true" and env["RETRIES"] == "3"
    assert env["FUNCTIONS_WORKER_RUNTIME_VERSION"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert env["WEBSITE_SITE_NAME"] == tmp_path.name and env["TZ"] == "UTC"


def test_a_broken_local_settings_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text("{not json")
    assert azure.environment(spec_for(tmp_path), str(tmp_path))["FUNCTIONS_WORKER_RUNTIME"] == "python"


# -- function.json, host.json as the host reads them (Newtonsoft) -----------------------------


def test_json_with_comments_and_trailing_commas_reads_as_the_host_reads_it() -> None:
    text = """{
      // the trigger
      "bindings": [
        {"type": "httpTrigger", "direction": "in", "name": 'req', /* GET only */ "methods": ["get",],},
        {"type": "http", "direction": "out", "name": "$return",},
      ],
    }"""
    assert azure.newtonsoft_json(text, "F/function.json") == {"bindings": [
        {"type": "httpTrigger", "direction": "in", "name": "req", "methods": ["get"]},
        {"type": "http", "direction": "out", "name": "$return"}]}
    assert azure.newtonsoft_json('{"url": "http://x/*y*/", "s": "a,]"}', "f") == {"url": "http://x/*y*/", "s": "a,]"}


def test_a_function_json_the_host_cannot_read_fails_naming_the_file_and_line(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "Broken").mkdir()
    broken = '{\n  "bindings": [\n    {"type": "httpTrigger" "name": "req"}\n]}'
    (tmp_path / "Broken" / "function.json").write_text(broken)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EntryPointError, match=r"Broken/function.json line 3: Expecting ',' delimiter"):
        azure.function_json(str(tmp_path / "Broken"))
    (tmp_path / "Broken" / "function.json").write_text('["httpTrigger"]')
    with pytest.raises(EntryPointError, match=r"Broken/function.json: expected a JSON object"):
        azure.function_json(str(tmp_path / "Broken"))
    assert azure.function_json(str(tmp_path)) == {}  # none at all: the bindings come from the manifest


def test_host_json_with_trailing_commas_is_honoured(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text('{"version": "2.0", "extensions": {"http": {"routePrefix": "v1",},},}')
    assert azure.http_routes(spec_for(tmp_path, http=(HttpTrigger("/orders"),)))[0].path == "/v1/orders"


# -- what the host answers itself ---------------------------------------------------------------


def test_the_host_answers_its_home_page_and_ping(tmp_path: Path) -> None:
    (home, page), (ping, pong) = azure.host_routes(spec_for(tmp_path))
    assert (home.path, home.methods, page.status, page.header("content-type")) == ("/", (), 200, "text/html")
    assert b"<title>Your Azure Function App is up and running.</title>" in page.body
    assert (ping.path, ping.methods, pong.status, pong.body) == ("/admin/host/ping", ("GET", "POST"), 200, b"")
    assert pong.header("cache-control") == "no-store,no-cache" and pong.header("pragma") == "no-cache"


def test_a_disabled_home_page_is_a_204(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text("{}")
    (tmp_path / "local.settings.json").write_text('{"Values": {"AzureWebJobsDisableHomepage": "true"}}')
    (_, page), _ = azure.host_routes(spec_for(tmp_path))
    assert (page.status, page.body) == (204, b"")


# -- the HTTP request the host sends ----------------------------------------------------------


def test_http_data_is_the_hosts_rpc_http() -> None:
    request = HttpRequest(
        "POST", "/api/orders/o 1", query="a=1&a=2&empty=&flag&q=x+y",
        headers=[("host", "localhost:7071"), ("x-many", "1"), ("x-many", "2"), ("x-empty", "")],
        body=b"\x00\xff", path_params={"id": "o 1"})
    kind, value = azure.http_data(request)
    assert kind == "http"
    assert value["method"] == ("string", "POST")
    assert value["url"] == ("string", "http://localhost:7071/api/orders/o%201?a=1&a=2&empty=&flag&q=x+y")
    assert value["headers"] == {"host": ("string", "localhost:7071"), "x-many": ("string", "1,2"),
                                "x-empty": ("string", "")}
    # ASP.NET joins repeated values with ','; the host drops keys whose value is empty
    assert value["query"] == {"a": ("string", "1,2"), "q": ("string", "x y")}
    assert value["params"] == {"id": ("string", "o 1")}
    assert value["body"] == ("bytes", b"\x00\xff")


def test_http_data_without_a_query_has_a_bare_url() -> None:
    assert azure.http_data(HttpRequest("GET", "/api/x", host="h:1"))[1]["url"] == ("string", "http://h:1/api/x")


# -- how the host reads the answer ------------------------------------------------------------


def test_a_plain_string_is_a_200_text_plain() -> None:
    response = azure.string_result("hello, ü")
    assert (response.status, response.header("content-type"), response.body) == (
        200, "text/plain; charset=utf-8", "hello, ü".encode())


def test_a_json_string_is_reprinted_by_the_host() -> None:
    response = azure.string_result(json.dumps({"a": 1, "b": [1, 2], "c": "é"}))
    assert response.header("content-type") == "text/plain; charset=utf-8"
    assert response.body.decode() == '{\n  "a": 1,\n  "b": [\n    1,\n    2\n  ],\n  "c": "é"\n}'


@pytest.mark.parametrize(("text", "body"), [("true", "True"), ("null", ""), ("   ", ""), ("12", "12"),
                                            ("1.0", "1"), ('"quoted"', "quoted"), ("[1,2]", "[\n  1,\n  2\n]")])
def test_other_json_strings_print_as_dotnet_values(text: str, body: str) -> None:
    assert azure.string_result(text).body.decode() == body


def test_a_json_string_with_a_body_key_is_a_response_object() -> None:
    response = azure.string_result(json.dumps(
        {"Status": "201", "headers": {"Content-Type": "application/json", "X-A": 1}, "body": {"ok": True}}))
    assert response.status == 201
    assert response.headers == [("Content-Type", "application/json; charset=utf-8"), ("X-A", "1")]
    assert response.body == b'{"ok":true}'
    assert azure.string_result('{"body": "hi", "statusCode": 404}').status == 404


def test_http_response_keeps_the_content_type_and_formats_cookies() -> None:
    cookies = [SimpleCookie("session=abc; Path=/app; HttpOnly; Secure; SameSite=Lax"), SimpleCookie("plain=1")]
    response = azure.http_response("202", {"X-A": "1", "x-a": "dup", "content-type": "application/json"}, cookies,
                                   b"{}")
    assert response.status == 202 and response.body == b"{}"
    assert response.headers == [
        ("Content-Type", "application/json"), ("X-A", "1"),
        ("Set-Cookie", "session=abc; domain=; path=/app; secure; samesite=lax; httponly"),
        ("Set-Cookie", "plain=1; domain=; path="),
    ]


def _cookie(text: str) -> str:
    return "; ".join(azure.cookie_header(name, morsel) for name, morsel in SimpleCookie(text).items())


@pytest.fixture(params=["dateutil", "stdlib"])
def date_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The worker parses `expires` with dateutil; without it installed, faasemu reads the usual forms."""
    if request.param == "stdlib":
        monkeypatch.setitem(sys.modules, "dateutil", None)
    else:
        pytest.importorskip("dateutil")
    return request.param


def test_cookie_expires_is_rewritten_in_rfc1123_form_with_the_right_weekday(date_parser: str) -> None:
    """The worker's multiple_set_cookie_resp_headers: 12 Jan 2018 was a Friday, and the host says so."""
    header = _cookie("foo3=43; Domain=example.com; Expires=Thu, 12-Jan-2018 13:55:08 GMT; Path=/; "
                     "Max-Age=10000000; Secure; HttpOnly")
    assert header == ("foo3=43; expires=Fri, 12 Jan 2018 13:55:08 GMT; max-age=10000000; domain=example.com; "
                      "path=/; secure; httponly")
    assert _cookie("a=1; Expires=2017-01-12T13:55:08") == "a=1; expires=Thu, 12 Jan 2017 13:55:08 GMT; domain=; path="


def test_empty_domain_and_path_are_sent_as_the_worker_sends_them() -> None:
    """set_cookie_resp_header_default_values: the worker passes the morsel's empty strings, ASP.NET writes them."""
    assert _cookie("foo=bar") == "foo=bar; domain=; path="


def test_an_unparseable_expires_or_max_age_is_the_workers_error(date_parser: str) -> None:
    """response_cookie_header_nullable_timestamp_err answers 500 on the host: the worker raised."""
    with pytest.raises(ValueError, match="Can not parse value Dummy of expires in the cookie"):
        _cookie("foo=bar; Domain=123; Expires=Dummy")
    with pytest.raises(TypeError, match="Cannot parse value soon of 'cookie.maxAge' to float"):
        _cookie("foo=bar; Max-Age=soon")


@pytest.mark.parametrize("kind", ["timeout", "crash", "oom"])
def test_a_stopped_invocation_is_an_empty_500(kind: str) -> None:
    response = azure.failure_response(kind, "Task timed out after 1.00 seconds", "rid")
    assert (response.status, response.body) == (500, b"")


def test_an_unavailable_function_answers_503_with_the_reason() -> None:
    message = "MissingSDK: runtime azure needs the package 'azure-functions' ... pip install 'faasemu[azure]'"
    response = azure.failure_response("unavailable", message, "rid")
    assert response.status == 503 and b"faasemu[azure]" in response.body


def test_an_unhandled_exception_is_an_empty_500() -> None:
    response = azure.error_response(ValueError("boom"), Invocation("rid", 0.0))
    assert (response.status, response.body) == (500, b"")


# -- events ----------------------------------------------------------------------------------


EVENT = {"specversion": "1.0", "id": "evt-1", "source": "/shop/orders", "type": "order.created",
         "subject": "orders/o-1", "time": "2024-05-01T12:00:00Z", "datacontenttype": "application/json",
         "data": {"id": "o-1", "qty": 2}}


def test_queue_data_keeps_the_id_and_counts_dequeues() -> None:
    first, meta1 = azure.queue_data(Delivery(EVENT, 1, "aaaa"), now=0.0)
    again, meta1b = azure.queue_data(Delivery(EVENT, 1, "aaaa"), now=0.0)
    _, meta3 = azure.queue_data(Delivery(EVENT, 3, "cccc"), now=0.0)
    assert first == ("string", '{"id":"o-1","qty":2}') and meta1 == meta1b
    assert meta1["Id"] == meta3["Id"] == ("string", "evt-1")
    assert (meta1["DequeueCount"], meta3["DequeueCount"]) == (("json", "1"), ("json", "3"))
    assert meta1["PopReceipt"] != meta3["PopReceipt"]
    assert meta1["InsertionTime"] == ("json", '"2024-05-01T12:00:00+00:00"')
    assert meta1["ExpirationTime"] == ("json", '"2024-05-08T12:00:00+00:00"')
    assert meta1["NextVisibleTime"] == ("json", '"1970-01-01T00:10:00+00:00"')


def test_queue_data_of_binary_data_is_bytes() -> None:
    event = {**{k: v for k, v in EVENT.items() if k != "data"}, "data_base64": "AP8=",
             "datacontenttype": "application/octet-stream"}
    assert azure.queue_data(Delivery(event, 1, "a"), 0.0)[0] == ("bytes", b"\x00\xff")


def test_event_grid_data_is_the_event_grid_schema() -> None:
    kind, text = azure.event_grid_data(EVENT)
    assert kind == "json"
    assert json.loads(text) == {"id": "evt-1", "topic": "/shop/orders", "subject": "orders/o-1",
                                "eventType": "order.created", "eventTime": "2024-05-01T12:00:00Z",
                                "data": {"id": "o-1", "qty": 2}, "dataVersion": "", "metadataVersion": "1"}


def test_event_grid_data_in_the_cloudevents_schema() -> None:
    body = json.loads(azure.event_grid_data(EVENT, cloud_events=True)[1])
    assert body["specversion"] == "1.0" and body["id"] == "evt-1" and body["data"] == {"id": "o-1", "qty": 2}


# -- context ----------------------------------------------------------------------------------


def test_invocation_ids_are_guids() -> None:
    rid = "3f0c9a70-1b2c-4d5e-8f90-123456789abc"
    assert azure.invocation_id(rid) == rid
    derived = azure.invocation_id("0123456789abcdef")
    assert derived == azure.invocation_id("0123456789abcdef") != azure.invocation_id("fedcba9876543210")
    assert azure._UUID.match(derived) and derived[14] == "4"


def _plan(**kw: object) -> azure.Plan:
    return azure.Plan(**{"name": "count", "directory": "/app", "trigger": "msg", "trigger_type": "queueTrigger", **kw})


def test_context_without_a_retry_policy() -> None:
    context = azure.build_context(_plan(), Invocation("0123456789abcdef", 0.0, 3), attempt=3)
    assert context.function_name == "count" and context.function_directory == "/app"
    assert context.invocation_id == azure.invocation_id("0123456789abcdef")
    assert context.thread_local_storage.invocation_id == context.invocation_id
    # the worker passes the host's RetryContext: (0, 0) when no retry policy drives the attempts
    assert (context.retry_context.retry_count, context.retry_context.max_retry_count) == (0, 0)
    assert context.trace_context.trace_parent.startswith("00-")


def test_the_trace_context_has_the_workers_names_too() -> None:
    """The worker's own return_context test function reads `Traceparent` and `Tracestate`."""
    trace = azure.build_context(_plan(), Invocation("0123456789abcdef", 0.0)).trace_context
    assert trace.Traceparent == trace.trace_parent and trace.Tracestate == trace.trace_state == ""
    assert trace.Attributes == trace.attributes == {}
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-00", trace.Traceparent)
    with pytest.raises(AttributeError):
        trace.Traceparent = "other"  # type: ignore[misc]


def test_a_callers_traceparent_is_continued_with_a_new_span() -> None:
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    request = HttpRequest("GET", "/api/x", headers=[("traceparent", caller), ("tracestate", "vendor=abc")])
    trace = azure.build_context(_plan(), Invocation("0123456789abcdef", 0.0), request=request).trace_context
    assert trace.Traceparent.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-") and trace.Traceparent.endswith("-01")
    assert trace.Traceparent != caller and trace.Tracestate == "vendor=abc"
    bad = HttpRequest("GET", "/api/x", headers=[("traceparent", "00-" + "0" * 32 + "-00f067aa0ba902b7-01")])
    assert "0" * 32 not in azure.build_context(_plan(), Invocation("x", 0.0), request=bad).trace_context.Traceparent


def test_context_with_a_retry_policy_counts_retries() -> None:
    context = azure.build_context(_plan(max_retry=4), Invocation("x", 0.0, 3), attempt=3)
    assert (context.retry_context.retry_count, context.retry_context.max_retry_count) == (2, 4)


def test_context_properties_are_read_only() -> None:
    context = azure.build_context(_plan(), Invocation("x", 0.0))
    with pytest.raises(AttributeError):
        context.invocation_id = "other"  # type: ignore[misc]


# -- the worker's binding checks ---------------------------------------------------------------

HTTP_BINDINGS = [{"name": "req", "type": "httpTrigger", "direction": "in"},
                 {"name": "$return", "type": "http", "direction": "out"}]


def test_plan_of_an_http_function_with_context() -> None:
    def main(req, context):
        return "ok"

    plan = azure.plan_function(main, "Greet", "/app/Greet", HTTP_BINDINGS)
    assert (plan.trigger, plan.kind, plan.http_out, plan.has_return, plan.requires_context, plan.is_async) == (
        "req", "http", "$return", True, True, False)


def test_plan_of_an_async_queue_function_with_an_output() -> None:
    async def main(msg, out):
        pass

    bindings = [{"name": "msg", "type": "queueTrigger", "direction": "in"},
                {"name": "out", "type": "queue", "direction": "out"}]
    plan = azure.plan_function(main, "q", "/app", bindings)
    assert (plan.kind, plan.outputs, plan.has_return, plan.is_async) == ("queue", ("out",), False, True)


def test_a_context_parameter_under_another_name_fails_to_load_as_in_the_worker() -> None:
    def main(req, ctx):
        pass

    with pytest.raises(EntryPointError, match=r"cannot load the Greet function: the following parameters are "
                                              r"declared in Python but not in function.json: \{'ctx'\}"):
        azure.plan_function(main, "Greet", "/app", HTTP_BINDINGS)


def test_a_binding_without_a_parameter_fails_to_load() -> None:
    def main():
        pass

    with pytest.raises(EntryPointError, match=r"declared in function.json but not in Python: \{'req'\}"):
        azure.plan_function(main, "Greet", "/app", HTTP_BINDINGS)


def test_a_wrongly_typed_context_fails_to_load() -> None:
    def main(req, context: int):
        pass

    with pytest.raises(EntryPointError, match='"context" parameter is expected to be of type azure.functions.Context'):
        azure.plan_function(main, "Greet", "/app", HTTP_BINDINGS)


def test_input_bindings_other_than_the_trigger_are_refused() -> None:
    def main(req, doc):
        pass

    bindings = [*HTTP_BINDINGS, {"name": "doc", "type": "blob", "direction": "in"}]
    with pytest.raises(EntryPointError, match=r"input bindings \['doc'\] are not emulated"):
        azure.plan_function(main, "Greet", "/app", bindings)


def test_annotations_are_checked_by_the_sdk_converters() -> None:
    def main(req: dict) -> str:
        pass

    seen: list[tuple[str, str, object]] = []

    def check(binding: str, direction: str, pytype: object) -> bool:
        seen.append((binding, direction, pytype))
        return pytype is str

    with pytest.raises(EntryPointError, match='type of req binding in function.json "httpTrigger" does not match '
                                              'its Python annotation "dict"'):
        azure.plan_function(main, "Greet", "/app", HTTP_BINDINGS, check)
    assert seen == [("httpTrigger", "in", dict)]


def test_a_str_annotation_on_the_trigger_is_the_generic_binding() -> None:
    def main(msg: str):
        pass

    plan = azure.plan_function(main, "q", "/app", [{"name": "msg", "type": "queueTrigger", "direction": "in"}],
                               lambda *a: False)
    assert plan.generic


def test_a_mismatched_return_annotation_fails_to_load() -> None:
    def main(req) -> dict:
        pass

    with pytest.raises(EntryPointError, match='Python return annotation "dict" does not match binding type "http"'):
        azure.plan_function(main, "Greet", "/app", HTTP_BINDINGS, lambda b, d, t: d == "in")


def test_the_adapter_names_the_extra_when_the_sdk_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "azure.functions", None)
    with pytest.raises(MissingSDK, match=r"azure-functions.*pip install 'faasemu\[azure\]'"):
        azure.Adapter(spec_for(tmp_path))


# -- with the SDK: binding real modules in-process --------------------------------------------


def load(tmp_path: Path, name: str, source: str, files: dict[str, str] | None = None):
    for path, text in (files or {}).items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    module_spec = importlib.util.spec_from_file_location(f"azmod_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


V2_APP = '''
import azure.functions as func

app = func.FunctionApp()

@app.route(route="items/{id}")
def item(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.route_params["id"] + ":" + req.get_body().decode(), status_code=201,
                             headers={"X-Seen": req.headers.get("X-Thing", "")})

@app.function_name("Counter")
@app.queue_trigger(arg_name="msg", queue_name="q", connection="AzureWebJobsStorage")
async def counter(msg: func.QueueMessage, context) -> None:
    SEEN.append((msg.id, msg.dequeue_count, msg.get_json(), context.function_name, context.invocation_id))

SEEN = []
'''


@pytest.mark.azure
def test_v2_decorated_function_serves_http(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, handler="function_app.py:item", http=(HttpTrigger("/items/{id}"),))
    adapter = azure.Adapter(spec)
    adapter.bind(load(tmp_path, "function_app.py", V2_APP))
    response = adapter.invoke_http(HttpRequest("POST", "/api/items/7", headers=[("x-thing", "t")], body=b"hi",
                                               path_params={"id": "7"}), Invocation("r", 0.0))
    assert (response.status, response.body) == (201, b"7:hi")
    assert response.header("x-seen") == "t" and response.header("content-type") == "text/plain; charset=utf-8"


@pytest.mark.azure
def test_the_app_object_picks_the_function_named_like_the_manifests(tmp_path: Path) -> None:
    module = load(tmp_path, "function_app.py", V2_APP)
    adapter = azure.Adapter(spec_for(tmp_path, handler="function_app.py:app", name="Counter", events=("o.*",)))
    adapter.bind(module)
    assert adapter.plan is not None and adapter.plan.name == "Counter" and adapter.plan.is_async
    adapter.deliver(Delivery(EVENT, 2, "abcd"), Invocation("abcd", 0.0, 2))
    adapter.loop.close()  # the worker keeps one event loop for its lifetime; the test ends it
    msg_id, dequeues, data, name, iid = module.SEEN[0]
    assert (msg_id, dequeues, data, name) == ("evt-1", 2, {"id": "o-1", "qty": 2}, "Counter")
    assert iid == azure.invocation_id("abcd")


@pytest.mark.azure
def test_an_app_with_several_functions_needs_a_name(tmp_path: Path) -> None:
    adapter = azure.Adapter(spec_for(tmp_path, handler="function_app.py:app", name="other", events=("o.*",)))
    with pytest.raises(EntryPointError, match="holds item, Counter"):
        adapter.bind(load(tmp_path, "function_app.py", V2_APP))


@pytest.mark.azure
def test_a_queue_function_cannot_serve_http(tmp_path: Path) -> None:
    adapter = azure.Adapter(spec_for(tmp_path, handler="function_app.py:counter", http=(HttpTrigger("/x"),)))
    with pytest.raises(EntryPointError, match="the trigger of Counter is queueTrigger: only an httpTrigger serves"):
        adapter.bind(load(tmp_path, "function_app.py", V2_APP))


@pytest.mark.azure
def test_a_conflicting_event_source_is_refused(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, handler="function_app.py:counter", events=("o.*",), options={"event_source": "eventgrid"})
    with pytest.raises(EntryPointError, match="is queueTrigger but the manifest says event_source: eventgrid"):
        azure.Adapter(spec).bind(load(tmp_path, "function_app.py", V2_APP))


@pytest.mark.azure
def test_v1_function_json_names_the_bindings(tmp_path: Path) -> None:
    function_json = json.dumps({"bindings": [
        {"type": "queueTrigger", "direction": "in", "name": "item", "queueName": "q"},
        {"type": "queue", "direction": "out", "name": "out", "queueName": "done"}]})
    module = load(tmp_path, "Work/__init__.py", '''
        import azure.functions as func
        GOT = []
        def main(item: func.QueueMessage, out: func.Out[str]) -> None:
            GOT.append(item.get_body())
            out.set("done")
        ''', {"Work/function.json": function_json})
    adapter = azure.Adapter(spec_for(tmp_path, handler="Work/__init__.py:main", events=("o.*",)))
    adapter.bind(module)
    adapter.deliver(Delivery(EVENT, 1, "a"), Invocation("a", 0.0))
    assert module.GOT == [b'{"id":"o-1","qty":2}'] and adapter.plan.name == "Work"


@pytest.mark.azure
def test_returning_a_value_without_a_return_binding_fails(tmp_path: Path) -> None:
    module = load(tmp_path, "f.py", '''
        def main(event):
            return "done"
        ''')
    adapter = azure.Adapter(spec_for(tmp_path, handler="f.py:main", events=("o.*",)))
    adapter.bind(module)
    with pytest.raises(RuntimeError, match="without a \\$return binding returned a non-None value"):
        adapter.deliver(Delivery(EVENT, 1, "a"), Invocation("a", 0.0))


@pytest.mark.azure
def test_returning_none_from_http_is_the_workers_type_error(tmp_path: Path) -> None:
    module = load(tmp_path, "f.py", '''
        def main(req):
            return None
        ''')
    adapter = azure.Adapter(spec_for(tmp_path, handler="f.py:main", http=(HttpTrigger("/x"),)))
    adapter.bind(module)
    with pytest.raises(TypeError, match='unable to encode outgoing TypedData: .* for Python type "NoneType"'):
        adapter.invoke_http(HttpRequest("GET", "/api/x"), Invocation("r", 0.0))


@pytest.mark.azure
def test_a_cloud_event_annotation_gets_the_cloudevents_schema(tmp_path: Path) -> None:
    module = load(tmp_path, "f.py", '''
        import azure.functions as func
        GOT = []
        def main(event: func.CloudEvent):
            GOT.append((type(event).__name__, event.id, event.source, event.get_json()))
        ''')
    adapter = azure.Adapter(spec_for(tmp_path, handler="f.py:main", events=("o.*",)))
    adapter.bind(module)
    adapter.deliver(Delivery(EVENT, 1, "a"), Invocation("a", 0.0))
    assert module.GOT == [("CloudEvent", "evt-1", "/shop/orders", {"id": "o-1", "qty": 2})]


@pytest.mark.azure
@pytest.mark.parametrize("outputs", [[], [{"type": "http", "direction": "out", "name": "res"}]])
def test_no_http_output_or_an_unset_one_answers_the_hosts_204(tmp_path: Path, outputs: list[dict[str, str]]) -> None:
    """The worker sends no response; the host's answer is 204 No Content (Functions 2.x and later)."""
    function_json = json.dumps({"bindings": [{"type": "httpTrigger", "direction": "in", "name": "req"}, *outputs]})
    params = "req, res" if outputs else "req"
    module = load(tmp_path, "Fn/__init__.py", f'''
        def main({params}):
            pass
        ''', {"Fn/function.json": function_json})
    adapter = azure.Adapter(spec_for(tmp_path, handler="Fn/__init__.py:main", http=(HttpTrigger("/x"),)))
    adapter.bind(module)
    response = adapter.invoke_http(HttpRequest("GET", "/api/x"), Invocation("r", 0.0))
    assert (response.status, response.body) == (204, b"")


@pytest.mark.azure
def test_a_function_json_with_trailing_commas_names_the_bindings(tmp_path: Path) -> None:
    module = load(tmp_path, "Fn/__init__.py", '''
        import azure.functions as func
        def main(req, res: func.Out[func.HttpResponse]) -> None:
            res.set(func.HttpResponse("set", status_code=202))
        ''', {"Fn/function.json": '{"bindings": [{"type": "httpTrigger", "direction": "in", "name": "req",},\n'
                                  '  {"type": "http", "direction": "out", "name": "res",}, // named\n]}'})
    adapter = azure.Adapter(spec_for(tmp_path, handler="Fn/__init__.py:main", http=(HttpTrigger("/x"),)))
    adapter.bind(module)
    assert adapter.plan is not None and adapter.plan.http_out == "res" and adapter.plan.name == "Fn"
    response = adapter.invoke_http(HttpRequest("GET", "/api/x"), Invocation("r", 0.0))
    assert (response.status, response.body) == (202, b"set")
