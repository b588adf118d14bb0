"""PURE: a Netlify site (`netlify.toml` and its functions folder) -> faasemu.yaml text (formats/__init__.py says why).

The functions folder is `[functions] directory`, else the older `[build] functions`, else
`netlify/functions`, as `netlify dev` looks for it. Each `<name>.py` there, or `<name>/<name>.py`
or `<name>/index.py`, is the function `<name>` with its `handler`, answering at
`/.netlify/functions/<name>` (a name ending in `-background` is a background function: Netlify's
rule is on the name, so `report_background.py` is not one). A function named after a Netlify
event (`submission-created`, `identity-signup`, `deploy-succeeded` ...) takes that event type, and
`[functions."<name>"] schedule` makes it take `schedule.<name>`. `[build.environment]` and
`[context.dev.environment]` (which wins, as under `netlify dev`) reach every function, as does the
site's `.env` file. TOML carries no lines, so a line is the line of its key in netlify.toml.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from typing import Any

from faasemu.project.formats import Function, Reader, Translation, emit, escape

KIND = "Netlify"
DEFAULT_DIRECTORY = "netlify/functions"
# Netlify's event-triggered functions: a function with one of these names receives that event.
EVENTS = ("deploy-building", "deploy-succeeded", "deploy-failed", "deploy-deleted", "deploy-locked",
          "deploy-unlocked", "split-test-activated", "split-test-deactivated", "split-test-modified",
          "submission-created", "identity-validate", "identity-signup", "identity-login")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_TOML_LINE = re.compile(r"at line (\d+)")


def read_netlify(text: str, path: str, environ: Mapping[str, str]) -> Translation:
    return _Site(path, text).translate()


def key_line(text: str, table: str, key: str) -> int | None:
    """The line of `key = ...` in `[table]` (or written dotted, `table.key = ...`, at the top), or None."""
    current = ""
    names = {key, f'"{key}"', f"'{key}'"}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        header = re.fullmatch(r"\[\[?\s*([^\]]+?)\s*\]\]?(?:\s*#.*)?", line)
        if header:
            current = re.sub(r"\s*\.\s*", ".", header.group(1))
            continue
        name = re.match(r"([^=]+?)\s*=", line)
        if name is None:
            continue
        written = re.sub(r"\s*\.\s*", ".", name.group(1))
        full = f"{current}.{written}" if current else written
        if full in {f"{table}.{n}" if table else n for n in names}:
            return number
    return None


class _Site(Reader):
    def __init__(self, path: str, text: str) -> None:
        super().__init__(path)
        self.text = text

    def line(self, table: str, key: str) -> int | None:
        return key_line(self.text, table, key)

    def translate(self) -> Translation:
        try:
            config = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            found = _TOML_LINE.search(str(exc))
            self.fail(int(found.group(1)) if found else None, f"not valid TOML: {str(exc).split(' (at ')[0]}")
        functions_table = self.table(config, "functions")
        build = self.table(config, "build")
        if "directory" in functions_table:
            directory, where = functions_table["directory"], ("functions", "directory")
        elif "functions" in build:
            directory, where = build["functions"], ("build", "functions")
        else:
            directory, where = DEFAULT_DIRECTORY, ("", "")
        at = self.line(*where) if where[0] else None
        if not isinstance(directory, str) or not directory.strip():
            self.fail(at, f"{'.'.join(where)}: must be a folder, as \"{DEFAULT_DIRECTORY}\"")
        directory = os.path.normpath(directory.strip().replace("\\", "/")).replace("\\", "/")
        folder = os.path.join(self.root, directory)
        if not os.path.isdir(folder):
            self.fail(at, f"no functions folder {directory}/ beside netlify.toml; create it, or set "
                          '[functions] directory = "netlify/functions"')
        env = self.environment(config)
        functions: list[Function] = []
        for name, file in self.files(folder, directory):
            line = at or 1
            fn = Function(name, line, ".".join(where) or "functions", (f"{file}:handler", line, ".".join(where)),
                          runtime="netlify")
            if name in EVENTS:
                fn.events.append((name, line, ".".join(where)))
            own = functions_table.get(name)
            if isinstance(own, dict) and "schedule" in own:
                fn.events.append((f"schedule.{name}", self.line(f'functions."{name}"', "schedule")
                                  or self.line(f"functions.{name}", "schedule") or line, f"functions.{name}.schedule"))
            fn.env = list(env)
            functions.append(fn)
        if not functions:
            self.fail(at, f"no Python functions in {directory}/ (a hello.py with def handler(event, context))")
        return emit(KIND, self.file, os.path.basename(self.root) or "netlify-site", functions, env_file=True)

    def files(self, folder: str, directory: str) -> list[tuple[str, str]]:
        """(function name, handler file) for each function in the folder, as Netlify finds them."""
        found: list[tuple[str, str]] = []
        for entry in sorted(os.listdir(folder)):
            path = os.path.join(folder, entry)
            stem, extension = os.path.splitext(entry)
            if os.path.isfile(path) and extension == ".py":
                found.append((stem, f"{directory}/{entry}"))
            elif os.path.isdir(path) and not entry.startswith((".", "_")):
                inner = next((name for name in (f"{entry}.py", "index.py")
                              if os.path.isfile(os.path.join(path, name))), None)
                if inner is not None:
                    found.append((entry, f"{directory}/{entry}/{inner}"))
        for name, file in found:
            if not _NAME.fullmatch(name):
                self.fail(None, f"{file}: '{name}' is not a function name Netlify or faasemu accepts "
                                "(lower-case letters, digits, '-' and '_'); rename the file")
        return found

    def environment(self, config: dict[str, Any]) -> list[tuple[str, str, int, str]]:
        merged: dict[str, tuple[str, int, str]] = {}
        for table, values in (("build.environment", self.table(self.table(config, "build"), "environment")),
                              ("context.dev.environment", self.table(self.table(self.table(config, "context"),
                                                                                "dev"), "environment"))):
            for name, value in values.items():
                line = self.line(table, name) or 1
                if isinstance(value, bool):
                    value = "true" if value else "false"
                if not isinstance(value, (str, int, float)):
                    self.fail(line, f"{table}.{name}: must be a string")
                merged[name] = (escape(str(value)), line, f"{table}.{name}")
        return [(name, text, line, where) for name, (text, line, where) in merged.items()]

    def table(self, parent: dict[str, Any], name: str) -> dict[str, Any]:
        value = parent.get(name, {})
        if not isinstance(value, dict):
            self.fail(self.line("", name), f"{name}: must be a table ([{name}])")
        return value
