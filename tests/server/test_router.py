"""The router (faasemu/server/router.py) on its own: no server, no worker."""

from __future__ import annotations

import pytest

from faasemu.project.spec import FunctionSpec, HttpTrigger
from faasemu.runtimes.base import HttpResponse
from faasemu.server.router import MethodNotAllowed, Router, compile_path


def spec(name: str) -> FunctionSpec:
    return FunctionSpec(name=name, handler=f"{name}.py:handler", runtime="aws-lambda")


def router() -> Router:
    return Router.build(
        [
            (spec("list-orders"), (HttpTrigger("/orders", ("GET",)),)),
            (spec("create-order"), (HttpTrigger("/orders", ("POST",)),)),
            (spec("get-order"), (HttpTrigger("/orders/{id}", ("GET",)),)),
            (spec("latest"), (HttpTrigger("/orders/latest", ("GET",)),)),
            (spec("item"), (HttpTrigger("/orders/{id}/items/{item}", ()),)),
            (spec("files"), (HttpTrigger("/files/{key+}", ("GET", "PUT")),)),
        ],
        async_triggers=[(spec("ingest"), (HttpTrigger("/ingest", ("POST",)),))],
        host_routes=[(spec("list-orders"), ((HttpTrigger("/", ("GET",)), HttpResponse(200, [], b"home")),))],
    )


@pytest.mark.parametrize(("method", "path", "function", "params"), [
    ("GET", "/orders", "list-orders", {}),
    ("POST", "/orders", "create-order", {}),
    ("GET", "/orders/", "list-orders", {}),  # a trailing slash matches the static route
    ("HEAD", "/orders", "list-orders", {}),  # HEAD is served by the GET route
    ("GET", "/orders/o-1", "get-order", {"id": "o-1"}),
    ("GET", "/orders/latest", "latest", {}),  # static wins over templated
    ("DELETE", "/orders/o-1/items/3", "item", {"id": "o-1", "item": "3"}),  # no methods: any method
    ("PUT", "/files/a/b/c.txt", "files", {"key": "a/b/c.txt"}),  # {key+} takes the rest of the path
    ("POST", "/ingest", "ingest", {}),
])
def test_matching(method: str, path: str, function: str, params: dict[str, str]) -> None:
    match = router().match(method, path)
    assert match is not None and match.route.function == function and match.params == params


def test_templated_paths_prefer_more_literal_segments() -> None:
    routes = Router.build([
        (spec("any"), (HttpTrigger("/{a}/{b}"),)),
        (spec("users"), (HttpTrigger("/users/{id}"),)),
    ])
    found = routes.match("GET", "/users/7")
    assert found is not None and found.route.function == "users"
    other = routes.match("GET", "/teams/7")
    assert other is not None and other.route.function == "any" and other.params == {"a": "teams", "b": "7"}


def test_a_wrong_method_raises_with_the_allowed_methods() -> None:
    with pytest.raises(MethodNotAllowed) as raised:
        router().match("DELETE", "/orders")
    assert raised.value.allowed == ["GET", "POST"]
    with pytest.raises(MethodNotAllowed) as templated:
        router().match("POST", "/orders/o-1")
    assert templated.value.allowed == ["GET"]


def test_an_unknown_path_matches_nothing() -> None:
    assert router().match("GET", "/nope") is None
    assert router().match("GET", "/orders/o-1/extra") is None  # {id} is one segment


def test_modes_and_host_routes() -> None:
    r = router()
    ingest = r.match("POST", "/ingest")
    assert ingest is not None and ingest.route.mode == "async"
    home = r.match("GET", "/")
    assert home is not None and home.route.mode == "host" and home.route.response == HttpResponse(200, [], b"home")
    with pytest.raises(MethodNotAllowed) as raised:
        r.match("POST", "/")
    assert raised.value.allowed == ["GET"]


def test_a_functions_own_route_wins_over_the_hosts() -> None:
    r = Router.build([(spec("mine"), (HttpTrigger("/"),))],
                     host_routes=[(spec("mine"), ((HttpTrigger("/", ("GET",)), HttpResponse(200)),))])
    found = r.match("GET", "/")
    assert found is not None and found.route.function == "mine" and found.route.mode == "sync"


def test_describe_lists_every_function_route() -> None:
    assert router().describe() == [
        "GET /orders -> list-orders", "POST /orders -> create-order", "GET /orders/{id} -> get-order",
        "GET /orders/latest -> latest", "ANY /orders/{id}/items/{item} -> item", "GET PUT /files/{key+} -> files",
        "POST /ingest -> ingest",
    ]


def test_compile_path() -> None:
    assert compile_path("/static") is None
    pattern = compile_path("/a.b/{x}")
    assert pattern is not None and pattern.match("/a.b/1") and not pattern.match("/aXb/1")  # literals are escaped
