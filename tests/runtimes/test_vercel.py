"""The vercel runtime: pure conversions, and the Adapter driving small handler modules in memory."""

from __future__ import annotations

import json
import textwrap
import types
from typing import Any

import pytest

from faasemu.runtimes import vercel
from faasemu.runtimes.base import FAILURE_KINDS, Delivery, DeliveryFailed, EntryPointError, HttpRequest, Invocation
from faasemu.project.spec import FunctionSpec, HttpTrigger


def make_spec(handler: str = "api/users.py", http: tuple[HttpTrigger, ...] = ()) -> FunctionSpec:
    return FunctionSpec(name="users", handler=handler, runtime="vercel", handler_file=f"/proj/{handler}", http=http)


def module_from(source: str, name: str = "api.users") -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(textwrap.dedent(source), f"/proj/{name.replace('.', '/')}.py", "exec"), module.__dict__)
    return module


OPEN: list[vercel.Adapter] = []


@pytest.fixture(autouse=True)
def _close_adapters() -> Any:
    yield
    while OPEN:
        OPEN.pop().close()  # ASGI adapters hold an event loop


def adapter_for(source: str, spec: FunctionSpec | None = None) -> vercel.Adapter:
    adapter = vercel.Adapter(spec or make_spec())
    adapter.bind(module_from(source))
    OPEN.append(adapter)
    return adapter


def inv(request_id: str = "req-1") -> Invocation:
    return Invocation(request_id, 0.0)


def request(**kw: Any) -> HttpRequest:
    defaults: dict[str, Any] = {
        "method": "GET", "path": "/api/users", "query": "a=1&a=2",
        "headers": [("host", "example.test"), ("x-tag", "one"), ("x-tag", "two"), ("x-forwarded-for", "6.6.6.6")],
        "route": "/api/users", "source_ip": "10.0.0.9",
    }
    return HttpRequest(**{**defaults, **kw})


ECHO_HANDLER = """
    import json
    from http.server import BaseHTTPRequestHandler

    class handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.reply(b"")

        def do_POST(self):
            self.reply(self.rfile.read(int(self.headers["content-length"])))

        def reply(self, body):
            out = json.dumps({"path": self.path, "client": self.client_address[0], "body": body.hex(),
                              "headers": self.headers.items()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Twice", "1")
            self.send_header("X-Twice", "2")
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args):
            pass
"""


# -- routes, environment, ids ---------------------------------------------------------------------


@pytest.mark.parametrize("handler, route", [
    ("api/users.py", "/api/users"), ("api/index.py", "/api"), ("index.py", "/"), ("./api/v1/items.py", "/api/v1/items"),
    ("api/users/[id].py", "/api/users/{id}"), ("api/files/[...path].py", "/api/files/{path+}"),
    ("api/users.py:app", "/api/users"),
])
def test_the_default_route_is_the_file_path(handler: str, route: str) -> None:
    assert vercel.default_route(handler) == route


@pytest.mark.parametrize("handler, routes", [
    ("api/python.py", ("/api/python", "/api/python.py")),
    ("api/index.py", ("/api", "/api/index", "/api/index.py")),
    ("./api/v1/items.py:app", ("/api/v1/items", "/api/v1/items.py")),
    ("api/users/[id].py", ("/api/users/{id}",)),
])
def test_a_file_is_served_at_its_clean_route_and_at_its_own_path(handler: str, routes: tuple[str, ...]) -> None:
    """Vercel answers `/api/python.py` as well as `/api/python` (its own fixtures' probes request the first)."""
    assert vercel.file_routes(handler) == routes


def test_declared_routes_override_the_file_route() -> None:
    assert vercel.http_routes(make_spec()) == (HttpTrigger("/api/users"), HttpTrigger("/api/users.py"))
    declared = (HttpTrigger("/users", ("GET",)),)
    assert vercel.http_routes(make_spec(http=declared)) == declared


def test_environment_and_vercel_ids() -> None:
    env = vercel.environment(make_spec(), "/proj")
    assert env["VERCEL"] == "1" and env["VERCEL_ENV"] == "development"
    ident = vercel.vercel_id("req-1")
    assert ident.startswith("dev1::") and ident == vercel.vercel_id("req-1") != vercel.vercel_id("req-2")
    assert [len(part) for part in ident[len("dev1::"):].split("-")] == [5, 13, 12]


def test_the_edge_replaces_forwarding_headers_a_client_sent() -> None:
    headers = dict(vercel.request_headers(request(), "req-1"))
    assert headers["x-forwarded-for"] == headers["x-real-ip"] == "10.0.0.9"
    assert headers["x-forwarded-host"] == "example.test" and headers["x-forwarded-proto"] == "http"
    assert headers["x-vercel-id"] == vercel.vercel_id("req-1")


def test_dynamic_segments_of_the_file_route_join_the_query() -> None:
    spec = make_spec("api/users/[id].py")
    req = request(path="/api/users/7", route="/api/users/{id}", path_params={"id": "7"}, query="x=1")
    assert vercel.route_query(spec, req) == "x=1&id=7"
    assert vercel.route_query(make_spec(http=(HttpTrigger("/u/{id}"),)), req) == "x=1"


# -- responses and errors -------------------------------------------------------------------------


def test_a_written_response_is_parsed_like_a_socket_read() -> None:
    raw = b"HTTP/1.0 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabcdef"
    response = vercel.parse_response(raw, "GET")
    assert (response.status, response.body) == (201, b"abc")  # cut at Content-Length
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    assert vercel.parse_response(chunked, "GET").body == b"abcde"
    for bad in (b"", b"garbage\r\n\r\n"):
        with pytest.raises(vercel.NoResponse):
            vercel.parse_response(bad, "GET")


def test_the_edge_drops_framing_and_signs_the_response() -> None:
    response = vercel.edge_response(vercel.HttpResponse(200, [("Date", "x"), ("Server", "BaseHTTP"),
                                                              ("Content-Length", "9"), ("X-A", "1")], b"hi"), "r")
    assert response.headers == [("X-A", "1"), ("server", "Vercel"), ("x-vercel-id", vercel.vercel_id("r")),
                                ("x-vercel-cache", "MISS")]


@pytest.mark.parametrize("kind, status, code", [
    ("timeout", 504, "FUNCTION_INVOCATION_TIMEOUT"), ("crash", 500, "FUNCTION_INVOCATION_FAILED"),
    ("oom", 500, "FUNCTION_INVOCATION_FAILED"), ("unavailable", 503, "FUNCTION_INVOCATION_FAILED"),
])
def test_failures_answer_vercels_error_pages(kind: str, status: int, code: str) -> None:
    assert kind in FAILURE_KINDS
    response = vercel.failure_response(kind, "ImportError: no module named x", "req-9")
    assert response.status == status and response.header("x-vercel-error") == code
    lines = response.body.decode().splitlines()
    assert lines[2] == code and lines[4] == vercel.vercel_id("req-9") == response.header("x-vercel-id")
    title = "An error occurred with your deployment" if kind == "timeout" else "A server error has occurred"
    assert lines[0] == title
    assert ("ImportError: no module named x" in lines) == (kind == "unavailable")


# -- finding the entry point ---------------------------------------------------------------------


def test_entry_points_are_found_as_vercel_finds_them() -> None:
    assert adapter_for(ECHO_HANDLER).kind == "handler"
    assert adapter_for("def app(environ, start_response): pass").kind == "wsgi"
    assert adapter_for("async def application(scope, receive, send): pass").kind == "asgi"
    callable_class = "class App:\n    async def __call__(self, scope, receive, send): pass\napp = App()"
    assert adapter_for(callable_class).kind == "asgi"
    assert adapter_for("class F:\n    def asgi(self, s, r, x): pass\napp = F()").kind == "asgi"
    # first in definition order wins
    assert adapter_for("def app(environ, start_response): pass\n" + textwrap.dedent(ECHO_HANDLER)).kind == "wsgi"


@pytest.mark.parametrize("source, message", [
    ("def handler(request):\n    return 'hi'", "'handler' is a function"),
    ("x = 1", 'Could not find a top-level "app", "application", or "handler"'),
    ("def app(a, b, c): pass", "Could not determine the application interface"),
])
def test_a_missing_or_wrong_entry_point_is_named(source: str, message: str) -> None:
    with pytest.raises(EntryPointError, match=message):
        adapter_for(source)


# -- the three kinds of entry point --------------------------------------------------------------


def test_a_handler_class_reads_the_request_and_its_writes_are_the_response() -> None:
    adapter = adapter_for(ECHO_HANDLER)
    response = adapter.invoke_http(request(method="POST", body=b"\x00\xffdata", query="q=a%20b",
                                           path="/api/users/caf\u00e9"), inv())
    assert response.status == 200
    assert [v for k, v in response.headers if k == "X-Twice"] == ["1", "2"]
    seen = json.loads(response.body)
    assert seen["path"] == "/api/users/caf%C3%A9?q=a%20b"
    assert bytes.fromhex(seen["body"]) == b"\x00\xffdata"
    assert seen["client"] == "127.0.0.1"  # the platform's proxy is the peer; the client is in x-forwarded-for
    headers = seen["headers"]
    assert ["x-tag", "one"] in headers and ["x-tag", "two"] in headers
    assert ["x-forwarded-for", "10.0.0.9"] in headers and ["x-forwarded-for", "6.6.6.6"] not in headers


def test_a_handler_without_the_method_answers_501() -> None:
    response = adapter_for(ECHO_HANDLER).invoke_http(request(method="DELETE"), inv())
    assert response.status == 501 and b"Unsupported method ('DELETE')" in response.body


def test_a_handler_that_writes_nothing_is_no_response_from_function() -> None:
    adapter = adapter_for("""
        from http.server import BaseHTTPRequestHandler
        class handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)  # never end_headers(): nothing reaches the socket
    """)
    with pytest.raises(vercel.NoResponse) as caught:
        adapter.invoke_http(request(), inv())
    response = adapter.error_response(caught.value, inv())
    assert response.status == 502 and response.header("x-vercel-error") == "NO_RESPONSE_FROM_FUNCTION"


def test_an_exception_answers_function_invocation_failed_unless_the_response_was_sent() -> None:
    adapter = adapter_for("""
        from http.server import BaseHTTPRequestHandler
        class handler(BaseHTTPRequestHandler):
            def do_GET(self):
                raise ValueError("before")
            def do_POST(self):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"half")
                raise ValueError("after")
    """)
    for method, status, body in (("GET", 500, b"FUNCTION_INVOCATION_FAILED"), ("POST", 200, b"half")):
        with pytest.raises(ValueError) as caught:
            adapter.invoke_http(request(method=method), inv())
        response = adapter.error_response(caught.value, inv())
        assert response.status == status and body in response.body


def test_a_wsgi_app_gets_vercels_environ() -> None:
    adapter = adapter_for("""
        import json
        def app(environ, start_response):
            start_response("201 Made Up", [("X-N", 5)])
            keys = {k: v for k, v in environ.items() if isinstance(v, str)}
            return [json.dumps(keys).encode(), environ["wsgi.input"].read()]
    """)
    response = adapter.invoke_http(request(method="PUT", body=b"raw", path="/api/users/caf\u00e9"), inv())
    assert response.status == 201 and response.headers[0] == ("X-N", "5")
    text, _, rest = response.body.partition(b"}")
    environ = json.loads(text + b"}")
    assert rest == b"raw"
    assert environ["PATH_INFO"] == "/api/users/caf%C3%A9"  # still percent-encoded, as vc_init passes it
    assert environ["QUERY_STRING"] == "a=1&a=2" and environ["REQUEST_METHOD"] == "PUT"
    assert environ["REMOTE_ADDR"] == "10.0.0.9" and environ["SERVER_NAME"] == "example.test"
    assert environ["HTTP_X_TAG"] == "two" and environ["CONTENT_LENGTH"] == "3"
    assert "PATH" not in environ  # no process environment, unlike wsgiref's CGI handlers


def test_a_wsgi_app_that_raises_after_start_response_sends_what_it_had() -> None:
    adapter = adapter_for("""
        def app(environ, start_response):
            start_response("200 OK", [])
            yield b"part"
            raise RuntimeError("boom")
    """)
    with pytest.raises(RuntimeError) as caught:
        adapter.invoke_http(request(), inv())
    assert adapter.error_response(caught.value, inv()).body == b"part"


def test_an_asgi_app_runs_its_lifespan_once_and_keeps_its_state() -> None:
    adapter = adapter_for("""
        calls = []
        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                message = await receive()
                scope["state"]["db"] = "open"
                await send({"type": "lifespan.startup.complete"})
                calls.append(await receive())
                await send({"type": "lifespan.shutdown.complete"})
                return
            calls.append(scope)
            body = (await receive())["body"]
            await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]})
            await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body", "body": b"!"})
    """)
    for _ in range(2):
        response = adapter.invoke_http(request(method="POST", body=b"hi", query="x=%20"), inv())
        assert (response.status, response.body, response.headers[0]) == (200, b"hi!", ("x-a", "1"))
    module_globals = adapter.app.__globals__
    scope = module_globals["calls"][-1]
    assert scope["state"] == {"db": "open"} and scope["client"] == ("10.0.0.9", 0)
    assert scope["query_string"] == b"x=%20" and scope["path"] == "/api/users"
    assert (b"x-forwarded-proto", b"http") in scope["headers"]
    adapter.close()
    assert module_globals["calls"][-1] == {"type": "lifespan.shutdown"}


def test_asgi_errors_are_uvicorns() -> None:
    adapter = adapter_for("""
        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                raise RuntimeError("no lifespan here")
            if scope["path"] == "/none":
                return
            if scope["path"] == "/body-first":
                await send({"type": "http.response.body", "body": b"x"})
            raise ValueError("boom")
    """)
    assert adapter.invoke_http(request(path="/none"), inv()).body == b"Internal Server Error"
    with pytest.raises(RuntimeError, match="Expected ASGI message 'http.response.start'"):
        adapter.invoke_http(request(path="/body-first"), inv())
    with pytest.raises(ValueError) as caught:
        adapter.invoke_http(request(), inv())
    response = adapter.error_response(caught.value, inv())
    assert (response.status, response.body) == (500, b"Internal Server Error")


def test_a_failed_asgi_lifespan_startup_stops_the_function_loading() -> None:
    with pytest.raises(RuntimeError, match="no database"):
        adapter_for("""
            async def app(scope, receive, send):
                await receive()
                await send({"type": "lifespan.startup.failed", "message": "no database"})
        """)


# -- events ----------------------------------------------------------------------------------------


def test_an_event_is_a_binary_cloudevent_post_to_the_route() -> None:
    event = {"specversion": "1.0", "id": "evt-1", "source": "shop", "type": "order.paid",
             "datacontenttype": "application/json", "data": {"total": 3}}
    req = vercel.event_request(Delivery(event, 2, "a2"), "/api/users")
    assert (req.method, req.path) == ("POST", "/api/users") and json.loads(req.body) == {"total": 3}
    assert req.header("ce-id") == "evt-1" and req.header("ce-type") == "order.paid"
    assert req.header("content-type") == "application/json"
    templated = vercel.event_request(Delivery(event), "/api/orders/{id}")
    assert (templated.path, templated.path_params) == ("/api/orders/evt-1", {"id": "evt-1"})


def test_a_non_2xx_answer_fails_the_delivery() -> None:
    adapter = adapter_for("""
        from http.server import BaseHTTPRequestHandler
        class handler(BaseHTTPRequestHandler):
            def do_POST(self):
                ok = self.headers["ce-id"] == "good"
                self.send_response(200 if ok else 503)
                self.end_headers()
            def log_message(self, *args):
                pass
    """)
    base = {"specversion": "1.0", "source": "s", "type": "t", "data": {}}
    adapter.deliver(Delivery({**base, "id": "good"}), inv())
    with pytest.raises(DeliveryFailed, match="answered 503"):
        adapter.deliver(Delivery({**base, "id": "bad"}), inv())


def test_a_wsgi_body_before_start_response_is_no_response() -> None:
    adapter = adapter_for("def app(environ, start_response):\n    return [b'early']")
    with pytest.raises(vercel.NoResponse, match="before calling start_response"):
        adapter.invoke_http(request(), inv())
