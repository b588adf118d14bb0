"""PURE: an Azure Functions app (`host.json` and its functions) -> faasemu.yaml text (formats/__init__.py says why).

The app's folder holds `host.json` and either a v2 `function_app.py` (functions decorated on a
`func.FunctionApp` or `func.Blueprint`, read with `ast`, never imported) or v1 folders with a
`function.json` each (`scriptFile`, default `__init__.py`; `entryPoint`, default `main`). Triggers:
HTTP (`route`, default the function's name; `methods`; `{id:int}` is `{id}`, `{*rest}` `{rest+}`),
queue (event type `queue.<queueName>`, delivered as a `QueueMessage`) and Event Grid (event type
`eventgrid.<function>`: the subscription's filters live in Azure, not in the app). Other triggers
are errors naming their line. Functions keep Azure's names (`count_sale` is `count-sale`); routes
go under host.json's `routePrefix` and `local.settings.json` `Values` reach every function, as
under `func start`: the runtime reads both itself (faasemu/runtimes/azure.py), so `faasemu manifest`
prints no connection string. JSON is read as the host's Newtonsoft reader reads it: comments,
trailing commas and single quotes are accepted.
"""

from __future__ import annotations

import ast
import glob
import json
import os
import re
from collections.abc import Mapping
from typing import Any, NoReturn

from faasemu.project.errors import ManifestError
from faasemu.project.formats import Function, Item, Reader, Translation, emit, function_name

KIND = "Azure Functions"
APP_FILE = "function_app.py"
_HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_TRIGGERS = "HTTP (route), queue (queue_trigger) and Event Grid (event_grid_trigger)"
_CONSTRAINT = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)\??(?::[^{}]*)?\}")


def read_azure(text: str, path: str, environ: Mapping[str, str]) -> Translation:
    return _App(path).translate(text)


def json_tree(text: str, file: str) -> Item:
    """JSON as Items with their lines, read as Newtonsoft reads it (comments, trailing commas, 'quotes').
    An error names `file` and its line."""
    return _Json(text, file).document()


class _Json:
    def __init__(self, text: str, file: str) -> None:
        self.text, self.file, self.at = text.lstrip("\ufeff"), file, 0

    def fail(self, message: str) -> NoReturn:
        raise ManifestError(self.file, self.text.count("\n", 0, self.at) + 1, f"not valid JSON: {message}")

    def line(self) -> int:
        return self.text.count("\n", 0, self.at) + 1

    def skip(self) -> None:
        text = self.text
        while self.at < len(text):
            if text[self.at] in " \t\r\n":
                self.at += 1
            elif text.startswith("//", self.at):
                end = text.find("\n", self.at)
                self.at = len(text) if end < 0 else end
            elif text.startswith("/*", self.at):
                end = text.find("*/", self.at + 2)
                if end < 0:
                    self.fail("a /* comment is not closed")
                self.at = end + 2
            else:
                return

    def document(self) -> Item:
        self.skip()
        if self.at >= len(self.text):
            self.fail("the file is empty")
        value = self.value()
        self.skip()
        if self.at < len(self.text):
            self.fail(f"unexpected {self.text[self.at]!r} after the value")
        return value

    def value(self) -> Item:
        self.skip()
        line, char = self.line(), self.text[self.at:self.at + 1]
        if char == "{":
            return self.members(line)
        if char == "[":
            self.at += 1
            items: list[Item] = []
            while True:
                self.skip()
                if self.text.startswith("]", self.at):
                    self.at += 1
                    return Item(items, line)
                items.append(self.value())
                self.separator("]")
        if char in "\"'":
            return Item(self.string(), line)
        found = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null").match(self.text, self.at)
        if found is None:
            self.fail(f"unexpected {char!r}" if char else "the file ends inside a value")
        self.at = found.end()
        return Item(json.loads(found.group()), line)

    def members(self, line: int) -> Item:
        self.at += 1
        values: dict[str, Item] = {}
        keys: dict[str, int] = {}
        while True:
            self.skip()
            if self.text.startswith("}", self.at):
                self.at += 1
                return Item(values, line, None, keys)
            key_line = self.line()
            if self.text[self.at:self.at + 1] not in ("\"", "'"):
                self.fail("a key must be a quoted string")
            key = self.string()
            self.skip()
            if not self.text.startswith(":", self.at):
                self.fail(f"':' expected after the key \"{key}\"")
            self.at += 1
            values[key], keys[key] = self.value(), key_line  # a repeated key: the last wins, as in Newtonsoft
            self.separator("}")

    def separator(self, close: str) -> None:
        self.skip()
        if self.text.startswith(",", self.at):
            self.at += 1
        elif not self.text.startswith(close, self.at):
            self.fail(f"',' or '{close}' expected")

    def string(self) -> str:
        text, quote, start = self.text, self.text[self.at], self.at
        end = start + 1
        while end < len(text) and text[end] not in (quote, "\n"):
            end += 2 if text[end] == "\\" else 1
        if end >= len(text) or text[end] != quote:
            self.fail("a string is not closed on its line")
        body = text[start + 1:end]
        if quote == "'":
            body = body.replace("\\'", "'").replace('"', '\\"')
        try:
            value = json.loads(f'"{body}"')
        except ValueError:
            self.fail("a string has an invalid escape")
        self.at = end + 1
        return str(value)


def azure_route(route: str) -> str:
    """An Azure route template as a faasemu path: `orders/{id:int}` -> `/orders/{id}`, `{*rest}` -> `{rest+}`."""
    path = _CONSTRAINT.sub(lambda m: "{" + m.group(2) + ("+}" if m.group(1) else "}"), route.strip().strip("/"))
    return "/" + path


class _App(Reader):
    def translate(self, text: str) -> Translation:
        host = json_tree(text, self.file)
        if not isinstance(host.value, dict):
            self.fail(host.line, 'host.json must be an object, as {"version": "2.0"}')
        version = host.get("version")
        if version is not None and str(version.value) != "2.0":
            self.fail(version.line, f"version: {version.value}: faasemu reads Functions 2.0+ apps "
                                    '(host.json "version": "2.0")')
        functions: list[Function] = []
        base = os.path.dirname(self.file)  # files shown as the host.json given is: relative stays relative
        app = os.path.join(base, APP_FILE)
        if os.path.isfile(app):
            functions.extend(_Decorated(app).functions())
        for config in sorted(glob.glob(os.path.join(glob.escape(self.root), "*", "function.json"))):
            functions.append(self.v1(os.path.join(base, os.path.basename(os.path.dirname(config)), "function.json")))
        if not functions:
            self.fail(None, f"no functions: add {APP_FILE} (decorated functions, the v2 model) or a folder "
                            "with function.json and __init__.py (v1) beside host.json")
        seen: dict[str, Function] = {}
        for fn in functions:
            if fn.name in seen:
                other = seen[fn.name]
                raise ManifestError(fn.file or self.file, fn.line,
                                    f"{fn.where} and {other.where} ({other.file}, line {other.line}) both become "
                                    f"the faasemu function '{fn.name}'; rename one")
            seen[fn.name] = fn
        return emit(KIND, self.file, os.path.basename(self.root) or "azure-app", functions, env_file=False)

    def v1(self, config: str) -> Function:
        """A v1 function: its folder's function.json and script."""
        with open(config, encoding="utf-8-sig") as file:
            text = file.read()
        tree = json_tree(text, config)
        folder = os.path.basename(os.path.dirname(config))

        def fail(item: Item | None, message: str) -> NoReturn:
            raise ManifestError(config, item.line if item is not None else None, message)

        if not isinstance(tree.value, dict):
            fail(tree, 'function.json must be an object, as {"bindings": [...]}')
        script, entry = tree.get("scriptFile"), tree.get("entryPoint")
        script_name = str(script.value) if script is not None else "__init__.py"
        entry_name = str(entry.value) if entry is not None else "main"
        script_path = os.path.normpath(os.path.join(folder, script_name)).replace("\\", "/")
        first = tree.keys.get("bindings", tree.line)
        fn = Function(function_name(folder), first, "bindings",
                      (f"{script_path}:{entry_name}", (script or entry or tree).line, "scriptFile"),
                      runtime="azure", file=config)
        bindings = tree.get("bindings")
        if bindings is None or not isinstance(bindings.value, list):
            fail(bindings or tree, 'no "bindings" list; add an httpTrigger, queueTrigger or eventGridTrigger')
        triggers = [b for b in bindings.value if isinstance(b.value, dict) and b.get("type") is not None
                    and str(b.value["type"].value).lower().endswith("trigger")]
        if len(triggers) != 1:
            fail(bindings, f"a function has one trigger binding, found {len(triggers)}")
        (trigger,) = triggers
        kind = str(trigger.value["type"].value)
        at = f"bindings[{bindings.value.index(trigger)}]"
        if kind == "httpTrigger":
            route = trigger.get("route")
            methods = trigger.get("methods")
            listed = tuple(str(m.value).upper() for m in methods.value) if methods and isinstance(
                methods.value, list) else ()
            fn.http = [(azure_route(str(route.value) if route is not None else folder), listed,
                        (route or trigger).line, f"{at}.route")]
        elif kind == "queueTrigger":
            queue = trigger.get("queueName")
            if queue is None:
                fail(trigger, f'{at}: a queueTrigger names its queue: "queueName": "orders"')
            fn.events = [(f"queue.{queue.value}", queue.line, f"{at}.queueName")]
            fn.event_source = ("queue", queue.line, f"{at}.queueName")
        elif kind == "eventGridTrigger":
            fn.events = [(f"eventgrid.{function_name(folder)}", trigger.line, at)]
        else:
            fail(trigger.value["type"], f"{at}: {kind}: faasemu's azure runtime has {_TRIGGERS} triggers")
        return fn


class _Decorated:
    """The v2 model: functions decorated on a FunctionApp (or Blueprint) in function_app.py, read with ast."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, line: int | None, message: str) -> NoReturn:
        raise ManifestError(self.path, line, message)

    def functions(self) -> list[Function]:
        with open(self.path, encoding="utf-8") as file:
            source = file.read()
        try:
            module = ast.parse(source, self.path)
        except SyntaxError as exc:
            self.fail(exc.lineno, f"not valid Python: {exc.msg}")
        apps = {target.id for node in module.body if isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Call) and _callee(node.value.func) in ("FunctionApp", "Blueprint",
                                                                                         "AsgiFunctionApp", "DFApp")
                for target in node.targets if isinstance(target, ast.Name)}
        found: list[Function] = []
        for node in module.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                fn = self.function(node, apps)
                if fn is not None:
                    found.append(fn)
        return found

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, apps: set[str]) -> Function | None:
        name = node.name
        calls = [d for d in node.decorator_list if isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute)
                 and isinstance(d.func.value, ast.Name) and d.func.value.id in apps]
        if not calls:
            return None
        for call in calls:
            if call.func.attr == "function_name":  # type: ignore[attr-defined]
                name = str(self.argument(call, "name", 0) or name)
        first = min(call.lineno for call in calls)
        fn = Function(function_name(name), first, node.name,
                      (f"{APP_FILE}:{node.name}", node.lineno, f"def {node.name}"), runtime="azure", file=self.path)
        triggers = [call for call in calls if call.func.attr == "route"  # type: ignore[attr-defined]
                    or call.func.attr.endswith("_trigger") or call.func.attr == "schedule"]  # type: ignore[attr-defined]
        if len(triggers) != 1:
            self.fail(first, f"{node.name}: a function has one trigger decorator, found {len(triggers)}")
        (trigger,) = triggers
        kind: str = trigger.func.attr  # type: ignore[attr-defined]
        where = f"@{kind}"
        if kind in ("route", "http_trigger"):
            route = self.argument(trigger, "route", 0)
            methods = self.argument(trigger, "methods", 1)
            listed = tuple(str(m).upper() for m in methods) if isinstance(methods, list) else ()
            fn.http = [(azure_route(str(route) if route is not None else name), listed, trigger.lineno, where)]
        elif kind == "queue_trigger":
            queue = self.argument(trigger, "queue_name", 1)
            if queue is None:
                self.fail(trigger.lineno, f"{node.name}: @{kind} names its queue: queue_name=\"orders\"")
            fn.events = [(f"queue.{queue}", trigger.lineno, where)]
            fn.event_source = ("queue", trigger.lineno, where)
        elif kind == "event_grid_trigger":
            fn.events = [(f"eventgrid.{function_name(name)}", trigger.lineno, where)]
        else:
            self.fail(trigger.lineno, f"{node.name}: @{kind}: faasemu's azure runtime has {_TRIGGERS} triggers")
        return fn

    def argument(self, call: ast.Call, name: str, position: int) -> Any:
        """A decorator argument's literal value (`func.HttpMethod.GET` is "GET"), or None when absent."""
        node: ast.expr | None = next((k.value for k in call.keywords if k.arg == name), None)
        if node is None and position < len(call.args):
            node = call.args[position]
        if node is None:
            return None
        return self.literal(node, name)

    def literal(self, node: ast.expr, name: str) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Attribute):  # func.HttpMethod.GET, func.AuthLevel.ANONYMOUS
            return node.attr
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.literal(element, name) for element in node.elts]
        self.fail(node.lineno, f"{name}=: write a literal (a string, or a list of them); faasemu reads "
                               f"{APP_FILE} without running it")


def _callee(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
