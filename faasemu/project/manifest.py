"""PURE: `faasemu.yaml` text -> the dataclasses of `spec.py`, every error located to a line.

Why `yaml.compose` rather than `yaml.safe_load`: a loaded value forgets where it came from, and
YAML keeps the last of two duplicate keys without a word. Walking the node tree keeps the line of
every key and value for the message, lets us refuse duplicates, and only ever runs the safe
scalar constructors. The only I/O is reading the manifest, its `.env` file and the handler files
it names; the shell environment that `${VAR}` references read is passed in.
"""

from __future__ import annotations

import ast
import difflib
import math
import os
import re
from collections.abc import Mapping
from typing import NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from faasemu.project.environment import EnvFileProblem, ReferenceProblem, interpolate, parse_env_file
from faasemu.project.errors import ManifestError
from faasemu.project.hosts import entry_problem
from faasemu.project.paths import ProjectPaths
from faasemu.project.platforms import DEFAULT_RUNTIME, available_runtimes, is_background
from faasemu.project.platforms import PLATFORMS as RUNTIMES
from faasemu.project.spec import FunctionSpec, HttpTrigger, Manifest, StateSpec, TriggerSpec
from faasemu.project.triggers import parse_triggers

TOP_KEYS = ("name", "host", "port", "allow_hosts", "env_file", "env", "state", "functions", "triggers", "queues")
# SQS's rule for a queue name: 1 to 80 letters, digits, '-' and '_', and `.fifo` at the end of a FIFO queue's.
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,75}\.fifo|[A-Za-z0-9_-]{1,80}")
FUNCTION_KEYS = ("handler", "runtime", "http", "events", "timeout", "memory", "concurrency", "retries", "env",
                 "order_key", "batch_size", "report_batch_item_failures")
HTTP_KEYS = ("path", "methods")
STATE_KEYS = ("sqlite", "postgres", "dir", "hooks", "schema", "ignore")
HOOK_KEYS = ("reset", "snapshot")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY")
# Platforms that find the entry point in a file themselves (docs/runtime-contract.md): `handler: api/users.py`.
FILE_ONLY_RUNTIMES = ("vercel", "knative")
HANDLER_FORMS = "use FILE.py:CALLABLE or package.module:CALLABLE"
DURATION_FORMS = 'use a number of seconds, "500ms", "3s" or "2m"'
ORDER_KEY_FORMS = ("use a dotted path into the CloudEvent, such as data.order or subject: field names joined by '.', "
                   "each a letter or '_' followed by letters, digits, '_' or '-'")
# Lambda's SQS event source mapping (docs/delivery.md): BatchSize 1-10,000 for a standard queue, 10 for FIFO.
MAX_BATCH_SIZE, MAX_FIFO_BATCH_SIZE = 10_000, 10

_T = "tag:yaml.org,2002:"
_STR, _NULL, _BOOL, _INT, _FLOAT, _MERGE = (_T + t for t in ("str", "null", "bool", "int", "float", "merge"))
# Plain values, lists and mappings: nothing a constructor could turn into an object.
_SAFE_TAGS = frozenset(_T + t for t in ("str", "null", "bool", "int", "float", "timestamp", "map", "seq", "merge"))

_FUNCTION_NAME = re.compile(r"[a-z0-9_-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODULE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\+?)\}")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?")
_MEMORY = re.compile(r"(\d+)\s*(mb|gb)?", re.IGNORECASE)
_COLUMN = re.compile(r"[A-Za-z_]\w*\.[A-Za-z_]\w*")
_ORDER_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*")

Pairs = dict[str, tuple[Node, Node]]
Triggers = list[tuple[HttpTrigger, Node]]  # each with the node of its path, for conflict messages


def load_manifest(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Manifest:
    """Read and validate the manifest at `path`; errors name the path as given.

    `${VAR}` references resolve from the `.env` file, then `environ` (default: this process's environment).
    """
    from faasemu.project.formats import load, translate  # imports this module: not at the top
    from faasemu.project.formats.discover import ZERO_CONFIG, project_file, vercel_zero_config

    shown = os.fspath(path)
    try:
        with open(shown, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        if os.path.basename(shown) == ZERO_CONFIG and vercel_zero_config(os.path.dirname(shown)):
            translation = translate(shown, "{}", os.environ if environ is None else environ)  # Vercel's defaults
            assert translation is not None
            return load(translation, environ)
        existing = project_file(shown)  # a SAM template or serverless.yml serves as it is (README)
        if existing is not None:
            return load_manifest(existing, environ)
        raise ManifestError(shown, None, "no such file; run 'faasemu init' to create a manifest") from None
    except IsADirectoryError:
        raise ManifestError(shown, None, "is a folder; name the manifest file (faasemu.yaml)") from None
    except UnicodeDecodeError as exc:
        raise ManifestError(shown, None, f"not UTF-8 text ({exc.reason})") from None
    translation = translate(shown, text, os.environ if environ is None else environ)
    if translation is not None:
        return load(translation, environ)
    return parse_manifest(text, shown, environ)


def parse_manifest(text: str, path: str, environ: Mapping[str, str] | None = None) -> Manifest:
    """Validate manifest `text`; `path` is shown in errors and locates the root folder (and `.env`)."""
    return _Parser(path, os.environ if environ is None else environ).manifest(text)


def parse_duration(value: str | int | float) -> float | None:
    """Seconds in `value`, or None when it is not a duration.

    >>> parse_duration("500ms"), parse_duration("1.5s"), parse_duration("2m"), parse_duration(3)
    (0.5, 1.5, 120.0, 3.0)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    found = _DURATION.fullmatch(value.strip())
    if not found:
        return None
    return float(found.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[found.group(2)]


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _show(node: Node) -> str:
    """How a value reads in an error: strings quoted, other scalars as written."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "nothing"
    return f"'{node.value}'" if node.tag == _STR else str(node.value)


def _in(where: str) -> str:
    return f"in {where}" if where else "at the top level"


def _is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == _NULL)


class _Parser:
    """One manifest's validation: the shown file name and root folder every message needs."""

    def __init__(self, path: str, environ: Mapping[str, str]) -> None:
        self.file = path
        self.path = os.path.abspath(path)
        self.root = os.path.dirname(self.path)
        self.loader = yaml.SafeLoader("")  # only its safe scalar constructors are used
        self.environ = environ
        self.dotenv: dict[str, str] = {}
        self.dotenv_shown = ".env"

    def fail(self, at: Node | None, message: str) -> NoReturn:
        raise ManifestError(self.file, _line(at) if at is not None else None, message)

    # --- the document -------------------------------------------------------------------------

    def manifest(self, text: str) -> Manifest:
        try:
            document = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            reason = exc.problem or "invalid"
            if exc.context:
                reason += f" ({exc.context})"
            if "got '{'" in reason:
                reason += '; quote templated paths: path: "/orders/{id}"'
            raise ManifestError(self.file, mark.line + 1 if mark else None, f"not valid YAML: {reason}") from None
        except yaml.YAMLError as exc:
            raise ManifestError(self.file, None, f"not valid YAML: {exc}") from None
        if document is None or _is_null(document):  # `is None` spelled out so mypy narrows `document`
            self.fail(None, "the manifest is empty; add at least a 'functions:' section")
        self.check_tags(document)
        if not isinstance(document, MappingNode):
            self.fail(document, f"the manifest must be a mapping of {', '.join(TOP_KEYS)}, not {_show(document)}")
        keys = self.keys(document, "", TOP_KEYS)
        name = self.string(keys["name"][1], "name") if "name" in keys else os.path.basename(self.root)
        host = self.string(keys["host"][1], "host") if "host" in keys else "127.0.0.1"
        port = self.integer(keys["port"][1], "port", 0, 65535) if "port" in keys else 8080
        allow_hosts = self.allow_hosts(keys["allow_hosts"][1]) if "allow_hosts" in keys else ()
        env_file = self.env_file(keys["env_file"][1] if "env_file" in keys else None)
        env = self.dotenv | (self.env(keys["env"][1], "env") if "env" in keys else {})
        state = self.state(keys["state"][1] if "state" in keys else None)
        if "functions" not in keys:
            self.fail(None, "missing required key 'functions'; add at least one function under 'functions:'")
        functions_key, functions_node = keys["functions"]
        if _is_null(functions_node) or (isinstance(functions_node, MappingNode) and not functions_node.value):
            self.fail(functions_key, "functions: add at least one function (name: {handler: FILE.py:CALLABLE})")
        if not isinstance(functions_node, MappingNode):
            self.fail(functions_node, f"functions: must be a mapping of function names, not {_show(functions_node)}")
        found = self.pairs(functions_node, "functions")
        functions = [self.function(name, key, node, env) for name, (key, node) in found.items()]
        self.check_routes(functions)
        triggers: tuple[TriggerSpec, ...] = ()
        if "triggers" in keys:
            triggers = parse_triggers(self, *keys["triggers"], tuple(spec.name for spec, _ in functions), state)
        queues = self.queues(keys["queues"][1]) if "queues" in keys else {}
        return Manifest(self.path, self.root, name, host, port, env, state, tuple(spec for spec, _ in functions),
                        allow_hosts, env_file, triggers, queues)

    def check_tags(self, document: Node) -> None:
        """Refuse `!!python/...` and custom tags (`!Ref`) up front, wherever they are."""
        seen: set[int] = set()
        stack = [document]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node.tag not in _SAFE_TAGS:
                tag = node.tag.replace(_T, "!!")
                self.fail(node, f"tag '{tag}' is not allowed; faasemu reads YAML with a safe loader "
                                "(plain values, lists and mappings only)")
            if isinstance(node, MappingNode):
                stack.extend(item for pair in reversed(node.value) for item in reversed(pair))
            elif isinstance(node, SequenceNode):
                stack.extend(reversed(node.value))

    # --- mappings and plain values ------------------------------------------------------------

    def pairs(self, node: MappingNode, where: str) -> Pairs:
        """The mapping's keys in order, refusing duplicates; `<<: *alias` merges as YAML says."""
        own: Pairs = {}
        merged: Pairs = {}
        for key, value in node.value:
            if key.tag == _MERGE:
                for source in value.value if isinstance(value, SequenceNode) else [value]:
                    if not isinstance(source, MappingNode):
                        self.fail(value, f"'<<' {_in(where)} must merge a mapping (an alias such as *defaults)")
                    for name, pair in self.pairs(source, where).items():
                        merged.setdefault(name, pair)  # the first merged mapping wins, as in YAML
                continue
            if not isinstance(key, ScalarNode):
                self.fail(key, f"keys {_in(where)} must be plain names, not {_show(key)}")
            if key.value in own:
                self.fail(key, f"duplicate key '{key.value}' {_in(where)} (also on line {_line(own[key.value][0])})")
            own[key.value] = (key, value)
        return merged | own

    def keys(self, node: MappingNode, where: str, allowed: tuple[str, ...]) -> Pairs:
        found = self.pairs(node, where)
        for name, (key, _) in found.items():
            if name not in allowed:
                self.unknown(key, name, where, allowed)
        return found

    def unknown(self, key: Node, name: str, where: str, allowed: tuple[str, ...]) -> NoReturn:
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(allowed)
        self.fail(key, f"unknown key '{name}' {_in(where)}; {hint}")

    def mapping(self, node: Node, where: str, example: str) -> MappingNode:
        if not isinstance(node, MappingNode):
            self.fail(node, f"{where}: must be a mapping like {example}, not {_show(node)}")
        return node

    def string(self, node: Node, where: str, what: str = "a string") -> str:
        if isinstance(node, ScalarNode) and node.tag == _STR and node.value.strip():
            return node.value.strip()
        self.fail(node, f"{where}: must be {what}, not {_show(node)}")

    def strings(self, node: Node, where: str, what: str) -> list[str]:
        """A list of strings, or one string standing for a list of one."""
        items = node.value if isinstance(node, SequenceNode) else [node]
        return [self.string(item, where, what) for item in items]

    def integer(self, node: Node, where: str, low: int, high: int | None = None) -> int:
        """A whole number in range; YAML's `true` is a bool here, never 1."""
        if isinstance(node, ScalarNode) and node.tag == _INT:
            value = self.loader.construct_object(node)
            if value >= low and (high is None or value <= high):
                return value
        allowed = f"from {low} to {high}" if high is not None else f"of at least {low}"
        self.fail(node, f"{where}: must be a whole number {allowed}, not {_show(node)}")

    def duration(self, node: Node, where: str) -> float:
        seconds = None
        if isinstance(node, ScalarNode) and node.tag in (_INT, _FLOAT, _STR):
            raw = node.value if node.tag == _STR else self.loader.construct_object(node)
            seconds = parse_duration(raw)
        if seconds is None or not math.isfinite(seconds):
            self.fail(node, f"{where}: {_show(node)} is not a duration; {DURATION_FORMS}")
        if seconds <= 0:
            self.fail(node, f"{where}: must be more than 0 seconds, not {_show(node)}")
        return seconds

    def memory(self, node: Node, where: str) -> int:
        found = _MEMORY.fullmatch(node.value.strip()) if isinstance(node, ScalarNode) and node.tag != _BOOL else None
        if not found:
            self.fail(node, f'{where}: {_show(node)} is not a memory size; use a number of MB, "256MB" or "1GB"')
        megabytes = int(found.group(1)) * (1024 if (found.group(2) or "").lower() == "gb" else 1)
        if megabytes < 16:
            self.fail(node, f"{where}: must be at least 16 MB, not {_show(node)}")
        return megabytes

    def env(self, node: Node, where: str) -> dict[str, str]:
        """Variable names to strings. Numbers keep their written form ("1.10" stays "1.10")."""
        if _is_null(node):
            return {}
        env: dict[str, str] = {}
        for name, (key, value) in self.pairs(self.mapping(node, where, "{STAGE: local}"), where).items():
            if not _ENV_NAME.fullmatch(name):
                self.fail(key, f"{where}: '{name}' is not a variable name; use letters, digits and '_', "
                               "not starting with a digit")
            if not isinstance(value, ScalarNode):
                self.fail(value, f"{where}.{name}: must be a string, number or boolean, not {_show(value)}")
            if value.tag == _NULL:
                self.fail(value, f"{where}.{name}: has no value; write \"\" for an empty string")
            if value.tag == _BOOL:
                env[name] = "true" if self.loader.construct_object(value) else "false"
            else:
                env[name] = self.resolve(value, f"{where}.{name}")
        return env

    def resolve(self, node: ScalarNode, where: str) -> str:
        """`${VAR}` and `${VAR:-default}` from the `.env` file, then the shell; `$$` is a `$`.

        An unset VAR without a default is an error rather than an empty string (docker compose only
        warns): a handler that starts with an empty API_KEY fails far from the cause. Messages
        name variables, never the values found.
        """
        def lookup(variable: str) -> str | None:
            return self.dotenv[variable] if variable in self.dotenv else self.environ.get(variable)

        try:
            return interpolate(node.value, lookup)
        except ReferenceProblem as exc:
            if exc.variable is None:
                self.fail(node, f"{where}: {exc.message}")
            self.fail(node, f"{where}: {exc.message} in {self.dotenv_shown} or the environment; set it, or "
                            f"give a default: ${{{exc.variable}:-default}} (write $$ for a literal $)")

    def env_file(self, node: Node | None) -> str | None:
        """`env_file:` (default: `.env` beside the manifest, when there is one); fills `self.dotenv`."""
        if node is not None and (_is_null(node) or (node.tag == _BOOL and not self.loader.construct_object(node))):
            return None  # `env_file: false` turns the default off
        if node is None:
            relative = ".env"
            path = os.path.join(self.root, relative)
            if not os.path.isfile(path):
                return None
        else:
            relative = self.string(node, "env_file", "a path such as .env, or false")
            path = os.path.normpath(os.path.join(self.root, relative))
            if not os.path.isfile(path):
                self.fail(node, f"env_file: {relative} does not exist; paths are relative to the manifest's folder "
                                "(write env_file: false to read no file)")
        shown = os.path.join(os.path.dirname(self.file), relative)
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except UnicodeDecodeError as exc:
            raise ManifestError(shown, None, f"not UTF-8 text ({exc.reason})") from None
        except OSError as exc:
            self.fail(node, f"env_file: cannot read {relative} ({exc.strerror})")
        try:
            self.dotenv = parse_env_file(text, self.environ)
        except EnvFileProblem as exc:
            raise ManifestError(shown, exc.line, exc.message) from None
        self.dotenv_shown = relative
        return path

    def allow_hosts(self, node: Node) -> tuple[str, ...]:
        """`allow_hosts:` names `up` answers besides loopback and its own address (see `--allow-host`)."""
        if _is_null(node):
            return ()
        hosts = []
        for item in node.value if isinstance(node, SequenceNode) else [node]:
            host = self.string(item, "allow_hosts", "a host name such as tunnel.example.com")
            problem = entry_problem(host)
            if problem:
                self.fail(item, f"allow_hosts: {problem}")
            hosts.append(host.lower())
        return tuple(dict.fromkeys(hosts))

    def queues(self, node: Node) -> dict[str, str]:
        """`queues:` SQS queue name -> the event type a message a handler sends to it becomes
        (docs/delivery.md#sqs-sends-become-events)."""
        if _is_null(node):
            return {}
        example = "{orders: sqs.OrdersQueue} (queue name: event type)"
        queues: dict[str, str] = {}
        for name, (key, value) in self.pairs(self.mapping(node, "queues", example), "queues").items():
            if not _QUEUE_NAME.fullmatch(name):
                self.fail(key, f"queues: '{name}' is not an SQS queue name: 1 to 80 letters, digits, '-' and '_' "
                               "(a FIFO queue's ends in .fifo)")
            queues[name] = self.string(value, f"queues.{name}",
                                       "the event type its messages become, such as sqs.Orders")
        return queues

    # --- files ---------------------------------------------------------------------------------

    def relative_path(self, node: Node, where: str) -> str:
        return os.path.normpath(os.path.join(self.root, self.string(node, where, "a path")))

    def existing_file(self, node: Node, where: str, relative: str) -> str:
        path = os.path.normpath(os.path.join(self.root, relative))
        if not os.path.isfile(path):
            self.fail(node, f"{where}: {relative} does not exist; paths are relative to the manifest's folder")
        return path

    def check_callable(self, node: Node, where: str, path: str, shown: str, attr: str) -> None:
        """Fail when the file surely lacks `attr`; say nothing when Python could still find it."""
        try:
            with open(path, "rb") as file:
                tree = ast.parse(file.read(), path)
        except (SyntaxError, ValueError, OSError, RecursionError):
            return  # the worker reports the real error, with its traceback, when it imports the file
        found = _top_level(tree)
        if found is None or attr in found[0]:
            return
        functions = ", ".join(found[1]) or "nothing callable"
        self.fail(node, f"{where}: {shown} has no function '{attr}'. Found: {functions}.")

    def check_module(self, node: Node, where: str, module: str, attr: str) -> None:
        """Check `package.module:attr` statically when the module lives under the root."""
        relative = module.replace(".", "/")
        for candidate in (relative + ".py", relative + "/__init__.py"):
            path = os.path.join(self.root, candidate)
            if os.path.isfile(path):
                self.check_callable(node, where, path, candidate, attr)
                return
        # Not under the root: it may be an installed package; the worker's import will tell.

    # --- functions -----------------------------------------------------------------------------

    def function(self, name: str, key: Node, node: Node, top_env: dict[str, str]) -> tuple[FunctionSpec, Triggers]:
        where = f"functions.{name}"
        if not _FUNCTION_NAME.fullmatch(name):
            self.fail(key, f"{where}: '{name}' is not a function name; use lower-case letters, digits, '-' and '_'")
        if not isinstance(node, MappingNode):
            self.fail(node if not _is_null(node) else key,
                      f"{where}: must be a mapping with at least 'handler', like {{handler: app.py:handler}}")
        found = self.pairs(node, where)
        runtime = self.runtime(found["runtime"][1], where) if "runtime" in found else DEFAULT_RUNTIME
        info = RUNTIMES[runtime]
        options: dict[str, str] = {}
        for option, (option_key, value) in found.items():
            takers = [r for r, other in RUNTIMES.items() if option in other.options]
            if option in info.options:
                if not (isinstance(value, ScalarNode) and value.value in info.options[option]):
                    self.fail(value, f"{where}.{option}: {_show(value)} is not allowed for {runtime}; "
                                     f"use one of: {', '.join(info.options[option])}")
                options[option] = value.value
            elif takers:
                plural = "s" if len(takers) > 1 else ""
                self.fail(option_key, f"{where}.{option}: only for runtime{plural} {' and '.join(takers)} "
                                      f"(this function's runtime is {runtime})")
            elif option not in FUNCTION_KEYS:
                self.unknown(option_key, option, where, FUNCTION_KEYS + tuple(info.options))
        if "handler" not in found:
            self.fail(key, f"{where}: missing required key 'handler'; {HANDLER_FORMS}")
        handler_node = found["handler"][1]
        handler = self.string(handler_node, f"{where}.handler", "FILE.py:CALLABLE or package.module:CALLABLE")
        handler_file, handler_module, handler_attr = self.handler(handler_node, f"{where}.handler", handler, runtime)
        triggers = self.http(found["http"][1], f"{where}.http") if "http" in found else []
        events = self.strings(found["events"][1], f"{where}.events", "an event type") if "events" in found else []
        background = is_background(runtime, name)

        def number(field: str, low: int, default: int) -> int:
            return self.integer(found[field][1], f"{where}.{field}", low) if field in found else default

        order_key = self.order_key(found["order_key"][1], f"{where}.order_key") if "order_key" in found else None
        if order_key is None and runtime == "aws-lambda" and options.get("event_source") == "dynamodb":
            order_key = "data.keys"  # DynamoDB Streams: records of one item in order (runtimes/aws_sources.py)
        batch_size = 1
        if "batch_size" in found:
            batch_size = self.batch_size(found["batch_size"], where, runtime, options, order_key is not None)
        partial = False
        if "report_batch_item_failures" in found:
            partial = self.partial_batches(found["report_batch_item_failures"], where, runtime, options)

        spec = FunctionSpec(
            name=name,
            handler=handler,
            runtime=runtime,
            handler_file=handler_file,
            handler_module=handler_module,
            handler_attr=handler_attr,
            http=tuple(trigger for trigger, _ in triggers),
            events=tuple(dict.fromkeys(events)),
            timeout=self.duration(found["timeout"][1], f"{where}.timeout") if "timeout" in found
            else 900.0 if background else info.timeout,
            memory=self.memory(found["memory"][1], f"{where}.memory") if "memory" in found else info.memory,
            concurrency=number("concurrency", 1, 1),
            retries=number("retries", 0, 2 if background else info.retries),
            env=top_env | (self.env(found["env"][1], f"{where}.env") if "env" in found else {}),
            options=options,
            line=_line(key),
            concurrency_set="concurrency" in found,
            order_key=order_key,
            batch_size=batch_size,
            report_batch_item_failures=partial,
        )
        return spec, triggers

    def order_key(self, node: Node, where: str) -> str:
        """A dotted path into the CloudEvent (docs/verification.md#order-keys): `data.order`, `subject`."""
        if isinstance(node, ScalarNode) and node.tag == _STR and _ORDER_KEY.fullmatch(node.value.strip()):
            return node.value.strip()
        self.fail(node, f"{where}: {_show(node)} is not a dotted path; {ORDER_KEY_FORMS}")

    def sqs_only(self, key: Node, where: str, what: str, runtime: str, options: Mapping[str, str]) -> None:
        """Lambda's event source mapping settings exist only where Lambda polls an SQS queue."""
        source = options.get("event_source", "eventbridge")
        if runtime == "aws-lambda" and source == "sqs":
            return
        this = f"runtime {runtime}" if runtime != "aws-lambda" else f"event_source: {source}"
        self.fail(key, f"{where}.{key.value}: {what} applies to aws-lambda functions with event_source: sqs "
                       f"(function '{where.removeprefix('functions.')}' has {this})")

    def batch_size(self, pair: tuple[Node, Node], where: str, runtime: str, options: Mapping[str, str],
                   fifo: bool) -> int:
        """Records per invocation; with an order_key the queue is FIFO, where Lambda allows 10 at most."""
        key, node = pair
        self.sqs_only(key, where, "batch_size", runtime, options)
        size = self.integer(node, f"{where}.batch_size", 1, MAX_BATCH_SIZE)
        if fifo and size > MAX_FIFO_BATCH_SIZE:
            self.fail(node, f"{where}.batch_size: must be from 1 to {MAX_FIFO_BATCH_SIZE} with an order_key "
                            f"(a FIFO queue, as Lambda allows), not {size}")
        return size

    def partial_batches(self, pair: tuple[Node, Node], where: str, runtime: str, options: Mapping[str, str]) -> bool:
        """`report_batch_item_failures: true`: Lambda's ReportBatchItemFailures (retry only the failed records)."""
        key, node = pair
        if not (isinstance(node, ScalarNode) and node.tag == _BOOL):
            self.fail(node, f"{where}.report_batch_item_failures: must be true or false, not {_show(node)}")
        value = bool(self.loader.construct_object(node))
        if value:
            self.sqs_only(key, where, "report_batch_item_failures (partial batch responses)", runtime, options)
        return value

    def runtime(self, node: Node, where: str) -> str:
        runtime = self.string(node, f"{where}.runtime")
        available = ", ".join(available_runtimes())
        if runtime not in RUNTIMES:
            close = difflib.get_close_matches(runtime, list(RUNTIMES), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            self.fail(node, f"{where}.runtime: unknown runtime '{runtime}'; {hint}(available: {available})")
        if not RUNTIMES[runtime].available:
            self.fail(node, f"{where}.runtime: '{runtime}' is not available in this version of faasemu "
                            f"(available: {available})")
        return runtime

    def handler(self, node: Node, where: str, text: str, runtime: str) -> tuple[str | None, str | None, str | None]:
        """(handler_file, handler_module, handler_attr) of `FILE.py:CALLABLE`, `pkg.mod:CALLABLE` or a file."""
        target, colon, attr = text.rpartition(":")
        if not colon:
            target, attr = text, ""
        target, attr = target.strip(), attr.strip()
        if colon and not attr.isidentifier():
            self.fail(node, f"{where}: '{attr}' is not a function name; {HANDLER_FORMS}")
        if target.endswith(".py") or "/" in target or "\\" in target:
            if not target.endswith(".py"):
                self.fail(node, f"{where}: '{target}' is not a .py file; {HANDLER_FORMS}")
            if not colon and runtime not in FILE_ONLY_RUNTIMES:
                self.fail(node, f"{where}: name the function to call, as in '{target}:handler' "
                                f"(only {' and '.join(FILE_ONLY_RUNTIMES)} find the entry point in a file)")
            path = self.existing_file(node, where, target)
            if colon:
                self.check_callable(node, where, path, target, attr)
            return path, None, attr or None
        if not colon:
            module, _, function = text.rpartition(".")
            hint = f"; did you mean '{module}:{function}'?" if _MODULE.fullmatch(text) and module else ""
            self.fail(node, f"{where}: '{text}' has no ':' before the function; {HANDLER_FORMS}{hint}")
        if not _MODULE.fullmatch(target):
            self.fail(node, f"{where}: '{target}' is neither a .py file nor a dotted module name; {HANDLER_FORMS}")
        self.check_module(node, where, target, attr)
        return None, target, attr

    def http(self, node: Node, where: str) -> Triggers:
        example = "{path: /orders, methods: [POST]}"
        items = [(f"{where}[{i}]", item) for i, item in enumerate(node.value)] if isinstance(node, SequenceNode) \
            else [(where, node)]
        triggers: Triggers = []
        for item_where, item in items:
            keys = self.keys(self.mapping(item, item_where, f"{example} (or a list of them)"), item_where, HTTP_KEYS)
            if "path" not in keys:
                self.fail(item, f"{item_where}: missing required key 'path', as in {example}")
            path_node = keys["path"][1]
            if isinstance(path_node, MappingNode):
                self.fail(path_node, f'{item_where}.path: YAML read the braces as a mapping; '
                                     'quote templated paths: path: "/orders/{id}"')
            path = self.string(path_node, f"{item_where}.path", "a path such as /orders")
            problem = _path_problem(path)
            if problem:
                self.fail(path_node, f"{item_where}.path: {problem}")
            methods = self.methods(keys["methods"][1], f"{item_where}.methods") if "methods" in keys else ()
            triggers.append((HttpTrigger(path, methods), path_node))
        return triggers

    def methods(self, node: Node, where: str) -> tuple[str, ...]:
        """Upper-cased methods; empty (every method) for ANY, as API Gateway's `ANY`."""
        if isinstance(node, SequenceNode) and not node.value:
            self.fail(node, f"{where}: empty; list methods, or leave 'methods' out for every method")
        methods = []
        for item in node.value if isinstance(node, SequenceNode) else [node]:
            method = self.string(item, where, "an HTTP method").upper()
            if method not in HTTP_METHODS:
                self.fail(item, f"{where}: {_show(item)} is not an HTTP method; use {', '.join(HTTP_METHODS)}")
            methods.append(method)
        return () if "ANY" in methods else tuple(dict.fromkeys(methods))

    def check_routes(self, functions: list[tuple[FunctionSpec, Triggers]]) -> None:
        """Refuse a path and method claimed twice: which function would answer is a guess."""
        claimed: list[tuple[str, str, HttpTrigger, Node]] = []
        for spec, triggers in functions:
            for trigger, node in triggers:
                pattern = _normalise(trigger.path)
                for name, other_pattern, other, other_node in claimed:
                    shared = _shared_methods(trigger.methods, other.methods)
                    if other_pattern == pattern and shared:
                        self.fail(node, f"functions.{spec.name}.http: {shared} {trigger.path} is also routed to "
                                        f"function '{name}' (line {_line(other_node)}: {other.path}); "
                                        "a path and method may belong to one trigger only")
                claimed.append((spec.name, pattern, trigger, node))

    # --- state ---------------------------------------------------------------------------------

    def state(self, node: Node | None) -> StateSpec:
        default_db = ProjectPaths(self.root).state_db
        if node is None or _is_null(node):
            return StateSpec("sqlite", default_db)
        keys = self.keys(self.mapping(node, "state", "{sqlite: .faasemu/state.db}"), "state", STATE_KEYS)
        kinds = [kind for kind in ("sqlite", "postgres", "dir", "hooks") if kind in keys]
        if len(kinds) > 1:
            self.fail(keys[kinds[1]][0],
                      f"state: choose one of sqlite, postgres, dir or hooks, not {' and '.join(kinds)}")
        kind = kinds[0] if kinds else "sqlite"
        path, reset, snapshot, postgres = None, None, None, None
        if kind == "postgres":
            postgres = self.postgres(keys["postgres"][1])
        elif kind == "sqlite":  # `sqlite:` left empty means the default file
            given = keys["sqlite"][1] if "sqlite" in keys else None
            path = default_db if given is None or _is_null(given) else self.relative_path(given, "state.sqlite")
        elif kind == "dir":
            path = self.relative_path(keys["dir"][1], "state.dir")
        else:
            hooks_key, hooks_node = keys["hooks"]
            example = "{reset: state_hooks:reset, snapshot: state_hooks:snapshot}"
            hooks = self.keys(self.mapping(hooks_node, "state.hooks", example), "state.hooks", HOOK_KEYS)
            reset, snapshot = (self.hook(hooks, hook, hooks_key) for hook in HOOK_KEYS)
        schema = None
        if "schema" in keys:
            schema_key, schema_node = keys["schema"]
            if kind not in ("sqlite", "postgres"):
                self.fail(schema_key, f"state.schema: only with state.sqlite or state.postgres (SQL applied to "
                                      f"every fresh database), not with state.{kind}")
            schema = self.existing_file(schema_node, "state.schema", self.string(schema_node, "state.schema", "a path"))
        ignore = self.strings(keys["ignore"][1], "state.ignore", "table.column") if "ignore" in keys else []
        for column in ignore:
            if not _COLUMN.fullmatch(column):
                self.fail(keys["ignore"][1], f"state.ignore: '{column}' is not table.column, as in orders.updated_at")
        return StateSpec(kind, path, schema, tuple(ignore), reset, snapshot, postgres)

    def postgres(self, node: Node) -> str:
        """`auto` (a private server under .faasemu/postgres/) or the URL of the user's own server."""
        where = "state.postgres"
        text = self.string(node, where, 'auto or a URL such as "postgresql://user@localhost:5432/app"')
        if text == "auto":
            return text
        scheme, sep, rest = text.partition("://")
        if not sep or scheme not in ("postgresql", "postgres") or not rest:
            self.fail(node, f"{where}: {_show(node)} is neither auto nor a PostgreSQL URL; use auto (faasemu runs "
                            'a private server) or a URL such as "postgresql://user@localhost:5432/app"')
        return text

    def hook(self, hooks: Pairs, name: str, parent: Node) -> str:
        where = f"state.hooks.{name}"
        if name not in hooks:
            self.fail(parent, f"state.hooks: missing required key '{name}' (module:function)")
        node = hooks[name][1]
        text = self.string(node, where, "module:function")
        module, colon, function = text.partition(":")
        if not colon or not _MODULE.fullmatch(module) or not function.isidentifier():
            self.fail(node, f"{where}: '{text}' is not module:function, as in state_hooks:{name}")
        self.check_module(node, where, module, function)
        return text


def _top_level(tree: ast.Module) -> tuple[set[str], list[str]] | None:
    """(names the module binds at top level, its public functions in order), or None when unknowable.

    Unknowable: `from x import *` and a module `__getattr__` can provide any name. Names bound in
    top-level `if`/`try`/`with`/`for` blocks count; function and class bodies do not. Counting a
    few names too many (comprehension variables) only ever lets a manifest through.
    """
    names: set[str] = set()
    functions: list[str] = []
    stack: list[ast.AST] = list(reversed(tree.body))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == "__getattr__" and not isinstance(node, ast.ClassDef):
                return None
            names.add(node.name)
            if not isinstance(node, ast.ClassDef) and not node.name.startswith("_") and node.name not in functions:
                functions.append(node.name)
            continue
        if isinstance(node, ast.alias):
            if node.name == "*":
                return None
            names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        stack.extend(reversed(list(ast.iter_child_nodes(node))))
    return names, functions


def _path_problem(path: str) -> str | None:
    """What is wrong with an HTTP path, or None. Placeholders are whole segments, as in API Gateway."""
    if not path.startswith("/"):
        return f"'{path}' must start with '/'"
    if any(char in path for char in "?# \t"):
        return f"'{path}' must be a path only: no query string, fragment or spaces"
    segments = path.split("/")[1:]
    seen: set[str] = set()
    for index, segment in enumerate(segments):
        if not segment and index < len(segments) - 1:
            return f"'{path}' has an empty segment ('//')"
        if "{" not in segment and "}" not in segment:
            continue
        found = _PLACEHOLDER.fullmatch(segment)
        if not found:
            return (f"'{segment}' in '{path}' is not a placeholder; a templated segment is a whole "
                    "{name} or {name+}, with a name of letters, digits and '_'")
        if found.group(2) and index != len(segments) - 1:
            return f"'{segment}' in '{path}': a greedy {{name+}} must be the last segment"
        if found.group(1) in seen:
            return f"'{path}' uses the placeholder '{found.group(1)}' twice"
        seen.add(found.group(1))
    return None


def _normalise(path: str) -> str:
    """`/orders/{id}/` and `/orders/{order_id}` route the same requests: `/orders/{}`."""
    return _PLACEHOLDER.sub(lambda m: "{+}" if m.group(2) else "{}", path).rstrip("/") or "/"


def _shared_methods(first: tuple[str, ...], second: tuple[str, ...]) -> str:
    """The methods both triggers answer, as shown in errors ('' when none)."""
    if not first and not second:
        return "ANY"
    if not first or not second:
        return ",".join(first or second)
    return ",".join(method for method in first if method in second)
