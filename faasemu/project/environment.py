"""PURE: the environment a handler starts with, `.env` files, and `${VAR}` references.

Real platforms give a function only the platform's variables and its configuration, never the
shell of whoever deployed it. faasemu does the same: a handler gets `handler_base_env()` (what an
interpreter and ordinary libraries need to run on this machine), the platform's variables, the
`.env` file and the manifest's `env`, and faasemu's own `FAASEMU_*`. Anything else from the shell
reaches a handler only when the manifest asks for it: `env: {API_KEY: ${API_KEY}}`.

Standard library only: worker-side and supervisor-side code both import it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

# What a process needs to run like any other on this machine, and nothing that is usually a
# secret. Proxy variables are left out on purpose: they often carry credentials
# (http://user:password@proxy); pass them with `env: {HTTPS_PROXY: ${HTTPS_PROXY}}`.
BASE_NAMES = frozenset({
    # POSIX basics: finding programs, the user's home (~/.aws, ~/.config), locale, time zone, temp files
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
    # native libraries of an interpreter built outside the system paths (pyenv, conda, Nix)
    "LD_LIBRARY_PATH",
    # TLS trust: a corporate CA must keep working for any HTTPS call; these are paths, not secrets
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    # Windows: without SYSTEMROOT Python cannot even seed `random` or open a socket
    "SYSTEMROOT", "WINDIR", "COMSPEC", "PATHEXT", "USERPROFILE", "APPDATA", "LOCALAPPDATA",
    # The virtualenv faasemu runs in: PATH already points into it; tools a handler runs check this name
    "VIRTUAL_ENV",
    # The interpreter's own settings (docs.python.org/3/using/cmdline.html#environment-variables).
    # PYTHONPATH matters most: when faasemu itself or the project's dependencies are found through
    # it, a worker without it cannot import them (Lambda, too, sets PYTHONPATH for its runtime).
    "PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONPLATLIBDIR", "PYTHONNOUSERSITE", "PYTHONUSERBASE",
    "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "PYTHONUNBUFFERED", "PYTHONIOENCODING", "PYTHONUTF8",
    "PYTHONHASHSEED", "PYTHONWARNINGS", "PYTHONDEVMODE", "PYTHONFAULTHANDLER", "PYTHONTRACEMALLOC",
    "PYTHONASYNCIODEBUG", "PYTHONMALLOC", "PYTHONOPTIMIZE", "PYTHONBREAKPOINT", "PYTHONINTMAXSTRDIGITS",
    "PYTHONCOERCECLOCALE", "PYTHONWARNDEFAULTENCODING", "PYTHONNODEBUGRANGES",
    # coverage.py's subprocess measurement (CI measures workers too)
    "COVERAGE_PROCESS_START",
})
# LC_*: the locale categories; FAASEMU_*: faasemu's own settings; COV_CORE_*: pytest-cov's subprocess hook.
BASE_PREFIXES = ("LC_", "FAASEMU_", "COV_CORE_")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
REFERENCE_FORMS = "use ${NAME} or ${NAME:-default}, and $$ for a literal $"


def handler_base_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of faasemu's own environment that every handler (and state hook) starts with.

    >>> handler_base_env({"PATH": "/bin", "SHELL_SECRET": "leaky", "LC_ALL": "C"})
    {'PATH': '/bin', 'LC_ALL': 'C'}
    """
    return {name: value for name, value in environ.items() if name in BASE_NAMES or name.startswith(BASE_PREFIXES)}


# What faasemu sets so that boto3 in a handler talks to faasemu's SQS stand-in (delivery/sqs_api.py,
# docs/delivery.md#sqs-sends-become-events): defaults under the platform's variables and the manifest's,
# not over them as FAASEMU_* are, so a project may point boto3 elsewhere or use its own credentials.
AWS_DEFAULTS = ("AWS_ENDPOINT_URL_SQS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE")


def handler_environment(
    platform_env: Mapping[str, str], spec_env: Mapping[str, str], faasemu_env: Mapping[str, str],
) -> dict[str, str]:
    """What `load` sets in a worker on top of `handler_base_env`: the layering every command shares.

    The platform's variables first, then the manifest's `env` (so a user may override what the
    platform would set, as real platforms let configuration do), then faasemu's own `FAASEMU_*`
    last, so no configuration can point a handler at another project's state or sink. faasemu's
    AWS_DEFAULTS come first of all; its dummy credentials go whole when the manifest names any
    credentials of its own (a key, a secret or AWS_PROFILE), since boto3 prefers keys to a profile.

    >>> handler_environment({"A": "platform", "B": "platform"}, {"B": "manifest"}, {"FAASEMU_STATE": "/s"})
    {'A': 'platform', 'B': 'manifest', 'FAASEMU_STATE': '/s'}
    >>> handler_environment({}, {"AWS_PROFILE": "dev"}, {"AWS_ACCESS_KEY_ID": "testing"})
    {'AWS_PROFILE': 'dev'}
    """
    own_credentials = any(name in spec_env for name in _CREDENTIALS)
    defaults = {name: value for name, value in faasemu_env.items() if name in AWS_DEFAULTS
                and not (own_credentials and name in _CREDENTIALS)}
    faasemu = {name: value for name, value in faasemu_env.items() if name not in AWS_DEFAULTS}
    return {**defaults, **platform_env, **spec_env, **faasemu}


def effect_urls(prefix: str) -> tuple[str, str]:
    """The (sink URL, events URL) below an effect server's `prefix`, as every effect server serves them."""
    return f"{prefix}/sink", f"{prefix}/events"


def sqs_url(events_url: str) -> str:
    """The SQS stand-in's URL beside an events URL: every effect server serves `<prefix>/sqs`."""
    return events_url.rpartition("/")[0] + "/sqs"


def faasemu_env(state: str, sink_url: str, events_url: str, *, queues: bool = False) -> dict[str, str]:
    """faasemu's own variables: where handlers keep state, record effects, and post follow-up events.

    `queues` (the project has SQS queues, `Manifest.queues`): boto3's SQS endpoint is faasemu's
    stand-in, with dummy credentials and region (boto3 signs every request, so it needs some).
    Only then: a project without queues sends no message faasemu could deliver, and its handlers'
    other AWS calls keep the credentials they would find anyway (~/.aws).

    >>> faasemu_env("/p/.faasemu/state.db", *effect_urls("http://127.0.0.1:8000/_faasemu"))["FAASEMU_SINK_URL"]
    'http://127.0.0.1:8000/_faasemu/sink'
    >>> faasemu_env("/s", *effect_urls("http://127.0.0.1:8000/_faasemu"), queues=True)["AWS_ENDPOINT_URL_SQS"]
    'http://127.0.0.1:8000/_faasemu/sqs'
    """
    env = {"FAASEMU_STATE": state, "FAASEMU_SINK_URL": sink_url, "FAASEMU_EVENTS_URL": events_url}
    if state.startswith(("postgresql://", "postgres://")):
        env["DATABASE_URL"] = state  # what psycopg, SQLAlchemy, Django and hosting platforms read
    if queues:
        env.update({"AWS_ENDPOINT_URL_SQS": sqs_url(events_url), "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})
    return env


class ReferenceProblem(ValueError):
    """A `${...}` that cannot be resolved or is malformed. `variable` is None when malformed.

    The message never holds a resolved value: only names and what was written.
    """

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.variable = variable


def interpolate(value: str, lookup: Callable[[str], str | None], *, dollar_escape: bool = True,
                strict: bool = True) -> str:
    """Replace `${NAME}` and `${NAME:-default}` in `value`; `$$` is a literal `$` when `dollar_escape`.

    `lookup` answers None for an unset variable. `${NAME:-default}` takes the default when NAME is
    unset or empty, as POSIX shells and docker compose do. A `$` followed by anything else stays as
    written, so `pa$word` needs no escaping. When `strict` (the manifest), an unset NAME without a
    default or a malformed `${` raises ReferenceProblem; otherwise (a `.env` file, read as
    python-dotenv reads it) an unset NAME is empty and a malformed `${` stays as written. Messages
    never quote the value's text: it may be a secret.

    >>> interpolate("${HOST:-localhost}:${PORT}/$$x", {"PORT": "80"}.get)
    'localhost:80/$x'
    """
    if "$" not in value:
        return value
    parts: list[str] = []
    index = 0
    while (start := value.find("$", index)) >= 0:
        parts.append(value[index:start])
        following = value[start + 1:start + 2]
        if following == "$" and dollar_escape:
            parts.append("$")
            index = start + 2
            continue
        if following != "{":
            parts.append("$")
            index = start + 1
            continue
        end = value.find("}", start + 2)
        body = value[start + 2:end] if end >= 0 else ""
        name, has_default, default = body.partition(":-")
        if end < 0 or not _NAME.fullmatch(name):
            if not strict:
                parts.append("$")
                index = start + 1
                continue
            problem = "a '${' has no closing '}'" if end < 0 else "a '${...}' holds no variable name"
            raise ReferenceProblem(f"{problem}; {REFERENCE_FORMS}")
        found = lookup(name)
        if has_default and not found:
            found = default
        elif found is None:
            if not strict:
                found = ""
            else:
                raise ReferenceProblem(f"${{{name}}} is not set", name)
        parts.append(found)
        index = end + 1
    parts.append(value[index:])
    return "".join(parts)


# --- .env files -------------------------------------------------------------------------------

class EnvFileProblem(ValueError):
    """A line of a `.env` file that cannot be read; `line` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


_ASSIGNMENT = re.compile(r"[ \t]*(?:export[ \t]+)?([^=#\s]+)[ \t]*(=?)[ \t]*")
_DOUBLE_ESCAPES = re.compile(r"\\([\\'\"abfnrtv])")
_SINGLE_ESCAPES = re.compile(r"\\([\\'])")
_ESCAPED = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def parse_env_file(text: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of a `.env` file, with python-dotenv's rules for the part everyone uses.

    `KEY=value`, an optional `export ` before it, `# comments` on their own line or after an
    unquoted value (preceded by a space), 'single quotes' taken literally, "double quotes" with
    backslash escapes (\\n, \\t, \\", \\\\), both allowed to span lines. `${NAME}` and
    `${NAME:-default}` in unquoted and double-quoted values are resolved from the file's earlier
    lines, then `environ`; an unset name without a default is empty, as python-dotenv makes it.
    A bare `KEY` line (no `=`) sets nothing, as with python-dotenv's load_dotenv.

    >>> parse_env_file('export A=1 # one\\nB="${A}\\\\n2"\\nC=\\'${A}\\'\\n', {})
    {'A': '1', 'B': '1\\n2', 'C': '${A}'}
    """
    text = text.removeprefix("\ufeff")
    values: dict[str, str] = {}
    position, line = 0, 1

    def lookup(name: str) -> str | None:
        return values[name] if name in values else environ.get(name, "")

    while position < len(text):
        end_of_line = text.find("\n", position)
        end_of_line = len(text) if end_of_line < 0 else end_of_line
        current = text[position:end_of_line].rstrip("\r")
        stripped = current.strip()
        if not stripped or stripped.startswith("#"):
            position, line = end_of_line + 1, line + 1
            continue
        found = _ASSIGNMENT.match(text, position)
        # Messages show names only, never what follows them: a malformed line may well hold a secret.
        if not found or found.end() > end_of_line or not _NAME.fullmatch(found.group(1)):
            key = stripped.partition("=")[0].strip() if "=" in stripped else ""
            shown = f"'{key[:40]}' is not a variable name" if key else "not NAME=value"
            raise EnvFileProblem(line, f"{shown}; write NAME=value, with a NAME of letters, digits and '_' "
                                       "not starting with a digit")
        name, equals = found.group(1), found.group(2)
        cursor = found.end()
        if not equals:  # `KEY` alone, or `KEY # comment`
            rest = text[cursor:end_of_line].strip()
            if rest and not rest.startswith("#"):
                raise EnvFileProblem(line, f"'{name}' is followed by something other than '='; write {name}=value")
            position, line = end_of_line + 1, line + 1
            continue
        quote = text[cursor:cursor + 1]
        start_line = line
        if quote in ("'", '"'):
            closing = _closing_quote(text, cursor + 1, quote)
            if closing < 0:
                raise EnvFileProblem(start_line, f"{name}: the {'single' if quote == chr(39) else 'double'} "
                                                 f"quote opened here is never closed")
            raw = text[cursor + 1:closing]
            line += raw.count("\n")
            after_end = text.find("\n", closing)
            after_end = len(text) if after_end < 0 else after_end
            after = text[closing + 1:after_end].strip()
            if after and not after.startswith("#"):
                raise EnvFileProblem(line, f"{name}: text after the closing quote; put comments after '#'")
            if quote == "'":
                value = _SINGLE_ESCAPES.sub(r"\1", raw)  # literal: no ${...}, as in a shell
            else:
                value = _interpolate_line(_DOUBLE_ESCAPES.sub(lambda m: _ESCAPED.get(m[1], m[1]), raw),
                                          lookup, start_line)
            end_of_line = after_end
        else:
            raw = text[cursor:end_of_line].rstrip("\r")
            if cursor > found.start(2) + 1 and raw.startswith("#"):  # `KEY= # comment`: empty
                raw = ""
            value = _interpolate_line(re.sub(r"\s+#.*", "", raw).rstrip(), lookup, start_line)
        values[name] = value
        position, line = end_of_line + 1, line + 1
    return values


def _closing_quote(text: str, start: int, quote: str) -> int:
    index = start
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == quote:
            return index
        index += 1
    return -1


def _interpolate_line(value: str, lookup: Callable[[str], str | None], line: int) -> str:
    try:
        return interpolate(value, lookup, dollar_escape=False, strict=False)  # as python-dotenv: no `$$`
    except ReferenceProblem as exc:
        raise EnvFileProblem(line, exc.message) from None
