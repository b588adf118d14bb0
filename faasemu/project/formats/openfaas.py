"""PURE: an OpenFaaS `stack.yml` -> faasemu.yaml text (formats/__init__.py says why text).

Read, as `faas-cli up` reads them: `provider.name: openfaas`, `functions.<name>` with `lang`
(a Python template: python3-http, python3-flask, python3 and their `-debian` builds), `handler`
(the folder holding `handler.py`), `environment`, `environment_file` (YAML files with an
`environment:` mapping, later files winning, `environment` over them all), `limits.memory`, the
watchdog's `exec_timeout` (else `write_timeout`) in `environment` as the timeout, and the
`topic` annotation a connector subscribes the function with (comma-separated) as its event types.
faas-cli substitutes `${VAR}` and `${VAR:-default}` from the shell before it parses; here they
stay references in environment values (so `faasemu manifest` prints no secret) and are
substituted elsewhere, an unset one empty, as faas-cli's envsubst does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from faasemu.project.formats import Function, Item, Reader, Translation, emit

KIND = "OpenFaaS"
TEMPLATES = {"python3-http": "python3-http", "python3-http-debian": "python3-http",
             "python3-flask": "python3-flask", "python3-flask-debian": "python3-flask",
             "python3": "python3", "python3-debian": "python3"}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_QUANTITY = re.compile(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|K|M|G|T)?")
_UNITS = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def read_openfaas(text: str, path: str, environ: Mapping[str, str]) -> Translation:
    return _Stack(path, environ).translate(text)


def seconds(text: str) -> float | None:
    """A Go duration (`10s`, `1m30s`, `500ms`) in seconds, or None when it is not one."""
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    total = sum(float(number) * _SECONDS[unit] for number, unit in parts)
    return int(total) if total == int(total) else total


def megabytes(text: str) -> int | None:
    """A Kubernetes quantity (`128Mi`, `1Gi`, `256M`) in MB (MiB, as Lambda counts), or None."""
    found = _QUANTITY.fullmatch(text)
    if found is None:
        return None
    return max(1, round(float(found.group(1)) * _UNITS[found.group(2) or ""] / 2**20))


def env_text(value: str) -> str:
    """An environment value as manifest text: `${VAR}` and `${VAR:-x}` stay references, other `$` are `$$`."""
    out, last = [], 0
    for found in _VARIABLE.finditer(value):
        out.append(value[last:found.start()].replace("$", "$$"))
        name, default = found.group(1), found.group(2)
        out.append(f"${{{name}:-{default}}}" if default is not None else f"${{{name}}}")
        last = found.end()
    return "".join(out) + value[last:].replace("$", "$$")


class _Stack(Reader):
    def __init__(self, path: str, environ: Mapping[str, str]) -> None:
        super().__init__(path)
        self.environ = environ
        self.shown = os.path.basename(path)

    def translate(self, text: str) -> Translation:
        doc = self.tree(text, f"{self.shown} is empty; add provider: {{name: openfaas}} and functions")
        if not isinstance(doc.value, dict):
            self.fail(doc.line, f"{self.shown} must be a mapping (version, provider, functions)")
        provider = self.mapping(doc.get("provider"), "provider", None, "provider: {name: openfaas}")
        cloud = provider.get("name")
        if cloud is None or self.text(cloud, "provider.name") != "openfaas":
            self.fail((cloud or provider).line, "provider.name: must be openfaas (provider: {name: openfaas})")
        functions_item = self.mapping(doc.get("functions"), "functions", None,
                                      "functions: {hello: {lang: python3-http, handler: ./hello}}")
        if not functions_item.value:
            self.fail(functions_item.line, "functions: add at least one function")
        functions = [self.function(key, functions_item.keys.get(key, item.line), item)
                     for key, item in functions_item.value.items()]
        return emit(KIND, self.file, os.path.basename(self.root) or "openfaas", functions, env_file=False)

    def function(self, key: str, line: int, item: Item) -> Function:
        where = f"functions.{key}"
        item = self.mapping(item, where, line, "{lang: python3-http, handler: ./" + key + "}")
        lang_item = item.get("lang")
        if lang_item is None:
            self.fail(line, f"{where}: no lang; write lang: python3-http (faas-cli new --lang python3-http)")
        lang = self.text(lang_item, f"{where}.lang")
        if lang not in TEMPLATES:
            self.fail(lang_item.line, f"{where}.lang: {lang}: faasemu runs the Python templates only "
                                      f"({', '.join(TEMPLATES)}), so function {key} cannot run here")
        handler_item = item.get("handler")
        if handler_item is None:
            self.fail(line, f"{where}: no handler; write handler: ./{key} (the folder holding handler.py)")
        folder = os.path.normpath(self.text(handler_item, f"{where}.handler").replace("\\", "/")).replace("\\", "/")
        if folder.startswith("../") or os.path.isabs(folder):
            self.fail(handler_item.line, f"{where}.handler: {folder} is outside the folder of {self.shown}")
        file = "handler.py" if folder == "." else f"{folder}/handler.py"
        fn = Function(key, line, where, (f"{file}:handle", handler_item.line, f"{where}.handler"), runtime="openfaas")
        fn.template = (TEMPLATES[lang], lang_item.line, f"{where}.lang")
        env: dict[str, tuple[str, int, str]] = {}
        files = item.get("environment_file")
        if files is not None:
            if not isinstance(files.value, list):
                self.fail(files.line, f"{where}.environment_file: must be a list of files, as [env.yml]")
            for entry in files.value:
                env.update(self.env_file(self.text(entry, f"{where}.environment_file"), entry.line, where))
        environment = item.get("environment")
        if environment is not None:
            environment = self.mapping(environment, f"{where}.environment", None, "{KEY: value}")
            for name, value in environment.value.items():
                env[name] = (self.value(value, f"{where}.environment.{name}"),
                             environment.keys.get(name, value.line), f"{where}.environment.{name}")
        fn.env = [(name, env_text(value), at, path) for name, (value, at, path) in env.items()]
        for name in ("exec_timeout", "write_timeout"):
            if name in env:
                value, at, path = env[name]
                found = seconds(self.substitute(value))
                if found is None or found <= 0:
                    self.fail(at, f"{path}: '{value}' is not a duration; write 10s, 1m30s or 500ms")
                fn.timeout = (found, at, path)
                break
        limits = item.get("limits")
        if limits is not None:
            limits = self.mapping(limits, f"{where}.limits", None, "{memory: 128Mi}")
            memory = limits.get("memory")
            if memory is not None:
                written = self.substitute(self.text(memory, f"{where}.limits.memory"))
                size = megabytes(written)
                if size is None:
                    self.fail(memory.line, f"{where}.limits.memory: '{written}' is not a quantity; write 128Mi or 1Gi")
                fn.memory = (size, memory.line, f"{where}.limits.memory")
        annotations = item.get("annotations")
        if annotations is not None:
            annotations = self.mapping(annotations, f"{where}.annotations", None, "{topic: order.placed}")
            topic = annotations.get("topic")
            if topic is not None:
                for name in self.substitute(self.text(topic, f"{where}.annotations.topic")).split(","):
                    if name.strip():
                        fn.events.append((name.strip(), topic.line, f"{where}.annotations.topic"))
        return fn

    def env_file(self, name: str, line: int, where: str) -> dict[str, tuple[str, int, str]]:
        """An `environment_file`: a YAML file with an `environment:` mapping, beside stack.yml."""
        path = os.path.join(self.root, self.substitute(name))
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
        except OSError as exc:
            self.fail(line, f"{where}.environment_file: cannot read {name} ({exc.strerror or exc})")
        inner = _Stack(path, self.environ)
        doc = inner.tree(text, "is empty; write environment: {KEY: value}")
        environment = doc.get("environment")
        if not isinstance(doc.value, dict) or environment is None:
            inner.fail(doc.line, "an environment_file holds environment: {KEY: value}")
        environment = inner.mapping(environment, "environment", None, "{KEY: value}")
        return {key: (inner.value(value, f"environment.{key}"), environment.keys.get(key, value.line),
                      f"{name}: environment.{key}") for key, value in environment.value.items()}

    # --- values ----------------------------------------------------------------------------------

    def mapping(self, item: Item | None, where: str, line: int | None, example: str) -> Item:
        if item is None:
            self.fail(line, f"no '{where}:'; add {example}")
        if not isinstance(item.value, dict):
            self.fail(item.line, f"{where}: must be a mapping, as {example}")
        return item

    def text(self, item: Item, where: str) -> str:
        value = item.value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
            self.fail(item.line, f"{where}: must be a string")
        return str(value).strip()

    def value(self, item: Item, where: str) -> str:
        """An environment value as the container sees it: YAML's true is `true`, a number as written."""
        if isinstance(item.value, bool):
            return "true" if item.value else "false"
        if item.value is None:
            return ""
        if not isinstance(item.value, (str, int, float)):
            self.fail(item.line, f"{where}: must be a string, number or boolean")
        return str(item.value)

    def substitute(self, text: str) -> str:
        """faas-cli's envsubst: `${VAR}` from the shell, `${VAR:-default}` when unset or empty, else ''."""
        return _VARIABLE.sub(lambda found: self.environ.get(found.group(1)) or (found.group(2) or ""), text)
