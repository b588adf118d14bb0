"""PURE: a Vercel project (`vercel.json` and its `api/` folder) -> faasemu.yaml text (formats/__init__.py says why).

Every `api/**/*.py` is a function, as Vercel builds them (files and folders starting with `_` or
`.` are not), served at its own path by the vercel runtime; its name is its path under `api/`
(`api/orders/[id].py` is `orders-id`). `vercel.json` `functions` globs set `maxDuration` (the
timeout) and `memory` of the files they match (a glob matching none is an error, as Vercel's);
an `experimentalTriggers` entry with a `topic` (Vercel Queues) makes that topic an event type
the function takes. The older top-level `env` reaches every function, as does `.env`. Routing
keys (`rewrites`, `redirects`, `cleanUrls` ...) are not read: the routes are the files'.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from faasemu.project.formats import Function, Item, Reader, Translation, emit, escape, function_name
from faasemu.project.formats.azure import json_tree

KIND = "Vercel"
API = "api"


def read_vercel(text: str, path: str, environ: Mapping[str, str]) -> Translation:
    return _Project(path).translate(text)


def glob_pattern(pattern: str) -> re.Pattern[str]:
    """A Vercel `functions` glob as a regex: `**` any folders, `*` and `?` within one name, `{a,b}` either."""
    out, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        if char == "{" and "}" in pattern[index:]:
            end = pattern.index("}", index)
            out.append("(?:" + "|".join(re.escape(part) for part in pattern[index + 1:end].split(",")) + ")")
            index = end + 1
            continue
        out.append("[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char))
        index += 1
    return re.compile("".join(out))


def api_files(root: str) -> list[str]:
    """The `api/` folder's Python files, relative to `root`, as Vercel builds them."""
    found: list[str] = []
    for folder, dirs, files in os.walk(os.path.join(root, API)):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        relative = os.path.relpath(folder, root).replace(os.sep, "/")
        found.extend(f"{relative}/{name}" for name in sorted(files)
                     if name.endswith(".py") and not name.startswith((".", "_")))
    return sorted(found)


class _Project(Reader):
    def translate(self, text: str) -> Translation:
        config = json_tree(text, self.file)
        if not isinstance(config.value, dict):
            self.fail(config.line, 'vercel.json must be an object, as {"functions": {...}}')
        files = api_files(self.root)
        if not files:
            self.fail(None, f"no Python functions in {API}/ beside vercel.json (an {API}/hello.py with a "
                            "handler class or an app)")
        functions: dict[str, Function] = {}
        for file in files:
            inner = file[len(API) + 1:-len(".py")]
            name = function_name(re.sub(r"\[+\.*([^\]]*)\]+", r"\1", inner))
            if name in functions:
                self.fail(None, f"{file} and {functions[name].handler[0]} both become the faasemu function "
                                f"'{name}'; rename one")
            functions[name] = Function(name, 1, file, (file, 1, file), runtime="vercel")
        settings = config.get("functions")
        if settings is not None:
            if not isinstance(settings.value, dict):
                self.fail(settings.line, 'functions: must be an object, as {"api/*.py": {"maxDuration": 30}}')
            for pattern, item in settings.value.items():
                self.apply(pattern, settings.keys.get(pattern, item.line), item, functions)
        env = config.get("env")
        if env is not None:
            if not isinstance(env.value, dict):
                self.fail(env.line, 'env: must be an object, as {"KEY": "value"}')
            listed = []
            for key, value in env.value.items():
                if not isinstance(value.value, str):
                    self.fail(value.line, f"env.{key}: must be a string")
                listed.append((key, escape(value.value), env.keys.get(key, value.line), f"env.{key}"))
            for fn in functions.values():
                fn.env = list(listed)
        return emit(KIND, self.file, os.path.basename(self.root) or "vercel-project", list(functions.values()),
                    env_file=True)

    def apply(self, pattern: str, line: int, item: Item, functions: dict[str, Function]) -> None:
        where = f"functions.{pattern}"
        if not isinstance(item.value, dict):
            self.fail(item.line, f'{where}: must be an object, as {{"maxDuration": 30, "memory": 1024}}')
        matcher = glob_pattern(pattern.lstrip("/"))
        matched = [fn for fn in functions.values() if matcher.fullmatch(fn.handler[0])]
        if not matched:
            self.fail(line, f"{where}: the pattern matches no function in {API}/ (as Vercel says: it "
                            "doesn't match any Serverless Functions)")
        for key, value in item.value.items():
            at = item.keys.get(key, value.line)
            for fn in matched:
                if key == "maxDuration":
                    fn.timeout = (value.value, at, f"{where}.maxDuration")
                elif key == "memory":
                    fn.memory = (value.value, at, f"{where}.memory")
                elif key == "experimentalTriggers":
                    if not isinstance(value.value, list):
                        self.fail(at, f"{where}.experimentalTriggers: must be a list")
                    for trigger in value.value:
                        topic = trigger.get("topic")
                        if topic is None or not isinstance(topic.value, str):
                            self.fail(trigger.line, f'{where}.experimentalTriggers: a trigger names its '
                                                    '"topic": "orders"')
                        fn.events.append((topic.value, topic.line, f"{where}.experimentalTriggers.topic"))
