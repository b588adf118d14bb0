"""PURE: which requests `faasemu up` answers at all, and which may change its state.

Two attacks reach a server on localhost through the developer's own browser:

- DNS rebinding: a page at `http://evil.example:8080` has its name re-resolved to 127.0.0.1, and
  from then on its scripts talk to `up` as a same-origin site, reading answers too. The browser
  still sends `Host: evil.example:8080`, so `up` answers only the names it is known by, as
  webpack-dev-server and Vite do: `localhost`, `*.localhost`, any IP address (rebinding needs a
  name), the address it is bound to, and the `--allow-host` / `allow_hosts:` names.
- Cross-site "simple" requests: any page may POST `text/plain`, a form or a body without a
  content type to `http://127.0.0.1:8080/...` without asking first (no CORS preflight); it cannot
  read the answer, but the event is stored. So faasemu's own endpoints refuse requests whose
  `Origin` is not local, and state-changing ones require a JSON or CloudEvents content type, or a
  header that a page can only send after a preflight, which `up` never approves: `ce-*` (binary
  CloudEvents), `Authorization` / `X-Amz-*` / `amz-sdk-*` (boto3 and the AWS CLI sign every
  request, and send the Invoke payload without a Content-Type).

User function routes are the user's app and only get the Host check.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

ALLOW_ALL = "all"
# An `--allow-host` / `allow_hosts:` entry: `tunnel.example.com`, `.example.com` (it and its subdomains), `[::1]`.
_ENTRY = re.compile(r"\.?[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\]")
ENTRY_FORMS = "use a name such as tunnel.example.com, .example.com for it and its subdomains, or all (no check)"
# Media types a page cannot POST cross-site without a preflight (Fetch: CORS-safelisted are only
# text/plain, application/x-www-form-urlencoded and multipart/form-data).
JSON_TYPES = ("application/json", "application/cloudevents+json", "application/cloudevents-batch+json")
# Request headers outside the CORS safelist that faasemu's real clients send: their presence
# proves the request was not a simple cross-site one.
PREFLIGHT_HEADER_PREFIXES = (b"ce-", b"x-amz-", b"amz-sdk-")
PREFLIGHT_HEADERS = frozenset({b"authorization"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_REMEMBERED = 512  # decisions cached per raw Host value; a flood of made-up names only costs a parse


def split_host(value: str) -> str:
    """The host name of a Host header or an Origin's authority: no port, no brackets, lower case.

    >>> split_host("LocalHost:8080"), split_host("[::1]:80"), split_host("example.test."), split_host("::1")
    ('localhost', '::1', 'example.test', '::1')
    """
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def entry_problem(entry: str) -> str | None:
    """What is wrong with an allow-list entry, or None."""
    if entry == ALLOW_ALL or _ENTRY.fullmatch(entry):
        return None
    return f"'{entry}' is not a host name; {ENTRY_FORMS}"


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


class HostGuard:
    """The allow-list of one `up`: `bound` is the address it listens on, `extra` the allowed names.

    An `extra` entry is a name (`tunnel.example.com`), `.example.com` for that name and all its
    subdomains, or `all` to answer any Host (as webpack-dev-server's `allowedHosts: 'all'`).
    """

    def __init__(self, bound: str, extra: Iterable[str] = ()) -> None:
        names = {"localhost"}
        suffixes = [".localhost"]
        self.allow_all = False
        for entry in extra:
            entry = entry.strip().lower()
            if entry == ALLOW_ALL:
                self.allow_all = True
            elif entry.startswith("."):
                suffixes.append(entry)
                names.add(entry[1:])
            elif entry:
                names.add(split_host(entry))
        bound_name = split_host(bound)
        bound_ip = _ip(bound_name)
        wildcard = bound_ip is not None and bound_ip.is_unspecified
        if not wildcard:
            names.add(bound_name)
        self.names = frozenset(names)
        self.suffixes = tuple(suffixes)
        self.shown = ", ".join(["localhost", "*.localhost", "IP addresses",
                                *sorted(n for n in names if n != "localhost"),
                                *(f"*{s}" for s in suffixes[1:])])
        self._hosts: dict[bytes, bool] = {}

    def _named(self, name: str) -> bool:
        return name in self.names or name.endswith(self.suffixes)

    def allows_host(self, raw: bytes) -> bool:
        """Whether to answer a request with this raw Host header value (the hot path: one dict lookup)."""
        decision = self._hosts.get(raw)
        if decision is None:
            name = split_host(raw.decode("latin-1"))
            decision = self.allow_all or self._named(name) or _ip(name) is not None
            if len(self._hosts) < _MAX_REMEMBERED:
                self._hosts[raw] = decision
        return decision

    def is_local_origin(self, origin: str) -> bool:
        """An `Origin` this machine's own pages send: loopback, *.localhost, the bound or allowed names.

        Unlike the Host check, an IP address is not enough: a page at http://203.0.113.9 is a
        foreign site. `null` (sandboxed frames, file: pages) is not local either.
        """
        scheme, sep, authority = origin.strip().partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            return False
        name = split_host(authority)
        address = _ip(name)
        if address is not None:
            return address.is_loopback or name in self.names
        return self._named(name)

    def cross_site_problem(self, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, str] | None:
        """(status, why) when a request to faasemu's own endpoints may come from a foreign web page, else None.

        `headers` are ASGI's (lower-case names). The effect sink takes any content type, since
        handlers post to it as they would to a real API, with no Origin.
        """
        origin = content_type = None
        preflighted = browser = False
        for name, value in headers:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name in PREFLIGHT_HEADERS or name.startswith(PREFLIGHT_HEADER_PREFIXES):
                preflighted = True
            elif name.startswith(b"sec-fetch-"):
                browser = True
        if origin is not None and not self.is_local_origin(origin):
            return 403, (f"requests from the web page at Origin '{origin}' are refused: only pages on this machine "
                         f"({self.shown}) may call faasemu's own endpoints")
        if method in SAFE_METHODS or preflighted or path.startswith("/_faasemu/sink/"):
            return None
        if content_type is None and origin is None and not browser:
            # A body without a Content-Type and without the headers every browser sends on a POST
            # (Origin, Sec-Fetch-*): a script or a handler (`requests.post(url, data=text)`), read as JSON.
            return None
        media = (content_type or "").partition(";")[0].strip().lower()
        if media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json")):
            return None
        shown = f"Content-Type '{content_type}'" if content_type else "no Content-Type"
        return 415, (f"a {method} to {path} with {shown} is refused, as any web page could send it: send "
                     f"Content-Type: application/json (or {JSON_TYPES[1]}, {JSON_TYPES[2]}, or a binary-mode "
                     "CloudEvent with ce-* headers)")
