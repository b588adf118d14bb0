"""PURE: matching a method and path to a function's HTTP trigger.

Paths use `{name}` for one segment and `{name+}` for the rest of the path (API Gateway's greedy
form). Static routes win over templated ones, and among templated ones the more literal segments
win, as API Gateway resolves overlaps.

A platform's host may answer some paths itself (Azure's `GET /` home page and its
`/admin/host/ping` health check): those are *host routes* with a fixed answer, consulted only when
no function's route takes the request, so a user's own route on the same path wins (as the Azure
host shows its home page only when no function ran).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from faasemu.project.spec import FunctionSpec, HttpTrigger
from faasemu.runtimes.base import HttpResponse

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\+?)\}")


@dataclass(frozen=True, slots=True)
class Route:
    function: str
    path: str
    methods: tuple[str, ...]  # empty: any method
    regex: re.Pattern[str] | None = None  # None for a static path
    literal_segments: int = 0
    mode: str = "sync"  # "async": answered 202 and delivered through the bus; "host": `response` as is
    response: HttpResponse | None = field(default=None, compare=False)  # the fixed answer of a host route

    def allows(self, method: str) -> bool:
        return not self.methods or method in self.methods or (method == "HEAD" and "GET" in self.methods)


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    params: dict[str, str]


class MethodNotAllowed(Exception):
    def __init__(self, allowed: list[str]) -> None:
        self.allowed = allowed
        super().__init__(", ".join(allowed))


def compile_path(path: str) -> re.Pattern[str] | None:
    """`/orders/{id}` -> `^/orders/(?P<id>[^/]+)$`; None when the path has no parameter.

    >>> compile_path("/files/{key+}").match("/files/a/b.txt").group("key")
    'a/b.txt'
    """
    if "{" not in path:
        return None
    pattern, last = "^", 0
    for found in _PARAM.finditer(path):
        pattern += re.escape(path[last : found.start()])
        pattern += f"(?P<{found.group(1)}>.+)" if found.group(2) else f"(?P<{found.group(1)}>[^/]+)"
        last = found.end()
    return re.compile(pattern + re.escape(path[last:]) + "$")


@dataclass
class Router:
    """All routes of the manifest, built once per configuration."""

    routes: list[Route] = field(default_factory=list)
    _static: dict[str, list[Route]] = field(default_factory=dict)
    _templated: list[Route] = field(default_factory=list)
    _host: dict[str, Route] = field(default_factory=dict)

    @classmethod
    def build(
        cls, triggers: Sequence[tuple[FunctionSpec, tuple[HttpTrigger, ...]]],
        async_triggers: Sequence[tuple[FunctionSpec, tuple[HttpTrigger, ...]]] = (),
        host_routes: Sequence[tuple[FunctionSpec, tuple[tuple[HttpTrigger, HttpResponse], ...]]] = (),
    ) -> Router:
        """`host_routes` are static paths the platform's host answers itself (one answer per path: the
        first function declaring it gives it); a function's own route on the same path wins."""
        router = cls()
        for spec, answers in host_routes:
            for trigger, response in answers:
                key = trigger.path.rstrip("/") or "/"
                router._host.setdefault(key, Route(spec.name, trigger.path, trigger.methods, mode="host",
                                                   response=response))
        every = [(spec, t, "sync") for spec, ts in triggers for t in ts]
        every += [(spec, t, "async") for spec, ts in async_triggers for t in ts]
        for spec, trigger, mode in every:
            regex = compile_path(trigger.path)
            literal = sum(1 for seg in trigger.path.split("/") if seg and "{" not in seg)
            route = Route(spec.name, trigger.path, trigger.methods, regex, literal, mode)
            router.routes.append(route)
            if regex is None:
                router._static.setdefault(trigger.path.rstrip("/") or "/", []).append(route)
            else:
                router._templated.append(route)
        router._templated.sort(key=lambda r: (-r.literal_segments, r.path.count("+}"), -len(r.path)))
        return router

    def match(self, method: str, path: str) -> Match | None:
        """The route for a request; raises MethodNotAllowed when only the method is wrong."""
        allowed: list[str] = []
        for route in self._static.get(path.rstrip("/") or "/", ()):
            if route.allows(method):
                return Match(route, {})
            allowed.extend(route.methods)
        for route in self._templated:
            assert route.regex is not None
            found = route.regex.match(path)
            if found is None:
                continue
            if route.allows(method):
                return Match(route, found.groupdict())
            allowed.extend(route.methods)
        host = self._host.get(path.rstrip("/") or "/")
        if host is not None:  # no function took it: the host answers (or says which methods it takes)
            if host.allows(method):
                return Match(host, {})
            allowed.extend(host.methods)
        if allowed:
            raise MethodNotAllowed(sorted(set(allowed)))
        return None

    def describe(self) -> list[str]:
        """`POST /orders -> create-order` lines, for the 404 page."""
        return [f"{' '.join(r.methods) or 'ANY'} {r.path} -> {r.function}" for r in self.routes]
