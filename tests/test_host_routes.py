"""Host routes in the router (pure): paths a platform's host answers itself, such as Azure's home page
and `/admin/host/ping`, are served only when no function's route takes the request."""

from __future__ import annotations

import pytest

from faasemu.server.router import MethodNotAllowed, Router
from faasemu.runtimes.base import HttpResponse
from faasemu.project.spec import FunctionSpec, HttpTrigger

APP = FunctionSpec(name="app", handler="function_app.py:app", runtime="azure")
HOME = HttpResponse(200, [("Content-Type", "text/html")], b"home")
PING = HttpResponse(200, [], b"")
HOST = ((HttpTrigger("/", ()), HOME), (HttpTrigger("/admin/host/ping", ("GET", "POST")), PING))


def router(*routes: HttpTrigger) -> Router:
    user = FunctionSpec(name="user", handler="function_app.py:user", runtime="azure")
    return Router.build([(user, routes)], [], [(APP, HOST), (user, HOST)])


def test_host_routes_answer_when_no_function_is_on_the_path() -> None:
    found = router(HttpTrigger("/api/orders")).match("GET", "/")
    assert found is not None and found.route.mode == "host" and found.route.response is HOME
    assert router().match("POST", "/admin/host/ping").route.response is PING  # type: ignore[union-attr]
    with pytest.raises(MethodNotAllowed) as caught:
        router().match("PUT", "/admin/host/ping")
    assert caught.value.allowed == ["GET", "POST"]


def test_a_users_own_route_on_the_path_wins() -> None:
    """As the Azure host, which shows its home page only when no function ran for `/`."""
    own = router(HttpTrigger("/", ("GET",)), HttpTrigger("/{path+}", ("POST",)))
    assert own.match("GET", "/").route.function == "user"  # type: ignore[union-attr]
    assert own.match("POST", "/admin/host/ping").route.function == "user"  # type: ignore[union-attr]
    assert own.match("DELETE", "/").route.mode == "host"  # type: ignore[union-attr]


def test_host_routes_are_not_listed_as_functions_routes() -> None:
    assert router(HttpTrigger("/api/orders")).describe() == ["ANY /api/orders -> user"]
