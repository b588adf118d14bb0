"""PURE: existing project files (AWS SAM `template.yaml`, Serverless Framework `serverless.yml`), read as they are.

Why translate into text rather than build a `Manifest` directly: the manifest's own parser then
validates a SAM or Serverless project with the very rules it applies to `faasemu.yaml` (one set
of rules, one set of messages), and `faasemu manifest` prints exactly what was validated. Each
reader (`sam.py`, `serverless.py`; `openfaas.py`, `knative.py`, `azure.py`, `netlify.py` and
`vercel.py` likewise) walks the original file's nodes, so every emitted line remembers the original
line and key (and file, for Azure's function.json) it came from, and `load` puts an error back
there. The only I/O is reading the project's files; `discover.py` says which file a folder holds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from faasemu.project.errors import ManifestError
from faasemu.project.spec import Manifest

_T = "tag:yaml.org,2002:"
_PLAIN = {_T + name for name in ("str", "null", "bool", "int", "float", "timestamp")}
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


@dataclass(slots=True)
class Item:
    """One YAML value with its line. `value` is a dict of Items, a list of Items or a plain value;
    `tag` is a CloudFormation short form (`!Ref`, `!Sub` ...) or None. `keys` holds each key's line."""

    value: Any
    line: int
    tag: str | None = None
    keys: dict[str, int] = field(default_factory=dict)

    def get(self, name: str) -> Item | None:
        return self.value.get(name) if isinstance(self.value, dict) else None


class Reader:
    """What both readers share: the file shown in errors, and failing at a line."""

    def __init__(self, path: str) -> None:
        self.file = path
        self.root = os.path.dirname(os.path.abspath(path))

    def fail(self, line: int | None, message: str) -> NoReturn:
        raise ManifestError(self.file, line, message)

    def tree(self, text: str, empty: str) -> Item:
        """The document as Items; YAML errors and duplicate keys located as the manifest's are."""
        try:
            document = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            self.fail(mark.line + 1 if mark else None, f"not valid YAML: {exc.problem or 'invalid'}")
        except yaml.YAMLError as exc:
            self.fail(None, f"not valid YAML: {exc}")
        if document is None:
            self.fail(None, empty)
        return self.item(document, set())

    def item(self, node: Node, seen: set[int]) -> Item:
        line = node.start_mark.line + 1
        if id(node) in seen:
            self.fail(line, "a YAML alias refers to itself; write the value out")
        tag = None if node.tag.startswith(_T) else node.tag
        if isinstance(node, ScalarNode):
            if tag is None and node.tag not in _PLAIN:
                self.fail(line, f"tag '{node.tag.replace(_T, '!!')}' is not allowed (plain values only)")
            value = node.value if tag is not None else yaml.SafeLoader("").construct_object(node)
            if hasattr(value, "isoformat"):
                value = node.value  # a date stays as written
            return Item(value, line, tag)
        inner = seen | {id(node)}
        if isinstance(node, SequenceNode):
            return Item([self.item(child, inner) for child in node.value], line, tag)
        assert isinstance(node, MappingNode)
        values: dict[str, Item] = {}
        keys: dict[str, int] = {}
        written: dict[str, int] = {}  # keys written here, not merged: only these may not repeat
        for key, child in node.value:
            if key.tag == _T + "merge":
                merged = self.item(child, inner)
                for source in merged.value if isinstance(merged.value, list) else [merged]:
                    for name, value in (source.value.items() if isinstance(source.value, dict) else ()):
                        values.setdefault(name, value)
                        keys.setdefault(name, source.keys.get(name, value.line))
                continue
            if not isinstance(key, ScalarNode):
                self.fail(key.start_mark.line + 1, "keys must be plain names")
            if key.value in written:
                self.fail(key.start_mark.line + 1, f"duplicate key '{key.value}' (also on line {written[key.value]})")
            values[key.value] = self.item(child, inner)
            keys[key.value] = written[key.value] = key.start_mark.line + 1
        return Item(values, line, tag, keys)

    def settle(self, fn: Function, shapes: list[tuple[str, int, str]], payloads: list[tuple[str, int, str]]) -> None:
        """One event_source and one payload per function, as faasemu's manifest has them."""
        for found, what in ((shapes, "event_source"), (payloads, "payload")):
            kinds = list(dict.fromkeys(kind for kind, _, _ in found))
            if len(kinds) > 1:
                first = next(entry for entry in found if entry[0] == kinds[0])
                other = next(entry for entry in found if entry[0] == kinds[1])
                self.fail(other[1], f"{other[2]} and {first[2]} (line {first[1]}) need different {what}s "
                                    f"({kinds[1]}, {kinds[0]}); faasemu gives a function one {what}: split it into "
                                    "two functions with the same handler")
            if kinds and (what == "payload" or kinds[0] != "eventbridge"):
                setattr(fn, what, (kinds[0], found[0][1], found[0][2]))


def function_name(logical: str) -> str:
    """A faasemu function name for a SAM logical id or a Serverless key: `HelloWorldFunction` ->
    `hello-world-function`, `createUser` -> `create-user`, `send_email` stays."""
    parts = [word.lower() for chunk in re.split(r"[^A-Za-z0-9]+", logical) for word in _WORDS.findall(chunk)]
    return "-".join(parts) or logical.lower()


Field = tuple[Any, int, str]  # (value, original line, original key path)


@dataclass
class Function:
    """One function as both readers gather it, before it is written as faasemu.yaml text."""

    name: str
    line: int
    where: str
    handler: Field
    timeout: Field | None = None
    memory: Field | None = None
    concurrency: Field | None = None
    retries: Field | None = None
    payload: Field | None = None
    event_source: Field | None = None
    batch_size: Field | None = None
    report_batch_item_failures: Field | None = None
    http: list[tuple[str, tuple[str, ...], int, str]] = field(default_factory=list)
    events: list[Field] = field(default_factory=list)
    env: list[tuple[str, str, int, str]] = field(default_factory=list)  # (name, faasemu text, line, where)
    runtime: str = "aws-lambda"  # the faasemu runtime the platform's files are written for
    template: Field | None = None  # openfaas: python3-http, python3-flask or python3
    order_key: Field | None = None  # a FIFO queue's consumer: `sqsgroup`, the MessageGroupId a send carried
    file: str | None = None  # the file its lines are in, when not the translated one (Azure's function.json)


@dataclass(frozen=True)
class Translation:
    """A project file as faasemu.yaml text. `lines`: a line of `text` -> (original line, original key)."""

    kind: str
    source: str
    text: str
    lines: dict[int, tuple[int, str]]
    function_lines: dict[str, int]
    files: dict[int, str] = field(default_factory=dict)  # a line of `text` -> its original file, if not `source`


def render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def escape(text: str) -> str:
    """A literal env value as the manifest reads it: `$` is `$$` (docs: README, `.env` and `${VAR}`)."""
    return text.replace("$", "$$")


def emit(kind: str, source: str, name: str, functions: list[Function], *, env_file: bool,
         queues: Mapping[str, Field] | None = None) -> Translation:
    """The faasemu.yaml text of `functions`, with the map from its lines back to the original's.
    `queues`: SQS queue name -> (the event type its messages become, line, key), for `queues:`."""
    out = [f"# faasemu.yaml for {os.path.basename(source)} ({kind}), as `faasemu manifest` prints it.",
           "# Save it as faasemu.yaml beside the original to add faasemu's own keys (state, order_key ...).",
           f"name: {render(name)}"]
    lines: dict[int, tuple[int, str]] = {}
    files: dict[int, str] = {}
    current: list[str | None] = [None]

    def put(text: str, line: int | None = None, where: str = "") -> None:
        out.append(text)
        if line is not None:
            lines[len(out)] = (line, where)
            if current[0] is not None:
                files[len(out)] = current[0]

    if not env_file:
        put("env_file: false  # the original does not add a .env file's variables to every function")
    put("functions:")
    for fn in functions:
        current[0] = fn.file
        shown = f"{os.path.relpath(fn.file, os.path.dirname(os.path.abspath(source)))} " if fn.file else ""
        put(f"  {fn.name}:  # {shown}{fn.where}, line {fn.line}", fn.line, fn.where)
        value, line, where = fn.handler
        put(f"    handler: {render(value)}", line, where)
        put(f"    runtime: {fn.runtime}", line, where)
        for key in ("timeout", "memory", "concurrency", "retries", "payload", "event_source", "template",
                    "order_key"):
            found: Field | None = getattr(fn, key)
            if found is not None:
                put(f"    {key}: {render(found[0])}", found[1], found[2])
        if fn.http:
            put("    http:", fn.http[0][2], fn.http[0][3])
            for path, methods, line, where in fn.http:
                shown = f", methods: [{', '.join(methods)}]" if methods else ""
                put(f"      - {{path: {render(path)}{shown}}}", line, where)
        if fn.events:
            put("    events:", fn.events[0][1], fn.events[0][2])
            for value, line, where in {event[0]: event for event in fn.events}.values():
                put(f"      - {render(value)}", line, where)
        for key in ("batch_size", "report_batch_item_failures"):
            found = getattr(fn, key)
            if found is not None:
                put(f"    {key}: {render(found[0])}", found[1], found[2])
        if fn.env:
            put("    env:", fn.env[0][2], fn.env[0][3])
            for variable, text, line, where in fn.env:
                put(f"      {variable}: {render(text)}", line, where)
    if queues:
        current[0] = None
        put("queues:  # SQS queues: a message a handler sends to one becomes this event (docs/delivery.md)")
        for queue, (event_type, line, where) in queues.items():
            put(f"  {render(queue)}: {render(event_type)}", line, where)
    return Translation(kind, source, "\n".join(out) + "\n", lines, {fn.name: fn.line for fn in functions}, files)


def translate(path: str, text: str, environ: Mapping[str, str]) -> Translation | None:
    """The translation of a platform's project file, or None when `text` is a faasemu manifest."""
    from faasemu.project.formats.discover import detect

    kind = detect(text, path)
    if kind == "openfaas":
        from faasemu.project.formats.openfaas import read_openfaas

        return read_openfaas(text, path, environ)
    if kind == "knative":
        from faasemu.project.formats.knative import read_knative

        return read_knative(text, path, environ)
    if kind == "azure":
        from faasemu.project.formats.azure import read_azure

        return read_azure(text, path, environ)
    if kind == "netlify":
        from faasemu.project.formats.netlify import read_netlify

        return read_netlify(text, path, environ)
    if kind == "vercel":
        from faasemu.project.formats.vercel import read_vercel

        return read_vercel(text, path, environ)
    if kind == "sam":
        from faasemu.project.formats.sam import read_sam

        return read_sam(text, path)
    if kind == "serverless":
        from faasemu.project.formats.serverless import read_serverless

        return read_serverless(text, path, environ)
    return None


def load(translation: Translation, environ: Mapping[str, str] | None = None) -> Manifest:
    """Validate a translation with the manifest's parser; errors land on the original file and line."""
    from faasemu.project.manifest import parse_manifest

    try:
        manifest = parse_manifest(translation.text, translation.source, environ)
    except ManifestError as exc:
        if exc.file != translation.source:
            raise  # a .env file's error names that file already
        line, where = translation.lines.get(exc.line or 0, (None, ""))
        detail = exc.detail
        shown = re.match(r"functions\.[a-z0-9_-]+(?:\.[A-Za-z_]+)?(?:\[\d+\])?(?:\.\w+)?", detail)
        if shown and where and where != shown.group():
            detail = f"{where}: {detail[shown.end():].lstrip(': ')} (faasemu's {shown.group()})"
        raise ManifestError(translation.files.get(exc.line or 0, exc.file), line, detail) from None
    functions = tuple(dataclasses.replace(spec, line=translation.function_lines.get(spec.name, spec.line))
                      for spec in manifest.functions)
    return dataclasses.replace(manifest, functions=functions)


def manifest_text(path: str, environ: Mapping[str, str] | None = None) -> str:
    """`faasemu manifest`: the faasemu.yaml equivalent of the project file at `path`, validated first.

    A faasemu.yaml is printed as it is; a SAM template or serverless.yml as its translation.
    """
    from faasemu.project.formats.discover import project_file
    from faasemu.project.manifest import load_manifest

    shown = path if os.path.exists(path) else project_file(path) or path
    load_manifest(shown, environ)  # every error, located, before anything is printed
    try:
        with open(shown, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:  # a zero-config Vercel project (formats/discover.py): its defaults
        text = "{}"
    translation = translate(shown, text, os.environ if environ is None else environ)
    return text if translation is None else translation.text
