"""PURE: a Knative Functions `func.yaml` -> faasemu.yaml text (formats/__init__.py says why text).

One `func.yaml` is one function in its own folder, as `func create -l python` writes it. Read:
`name`, `runtime: python`, `run.envs` (older files: top-level `envs`) with `{{ env:X }}` kept as
the reference `${X}` (so `faasemu manifest` prints no secret), `deploy.options.resources.limits.memory`
(older: `options...`), and `deploy.subscriptions` (`func subscribe --filter type=...`): each
subscription's `type` filter is an event type the function takes. The function owns its service,
as under `func run`: it answers at `/` and every path below. The handler is `function/func.py`
(func's current scaffolding, imported as `function.func`), else the older top-level `func.py`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from faasemu.project.formats import Function, Item, Reader, Translation, emit, escape
from faasemu.project.formats.openfaas import megabytes

KIND = "Knative Functions"
_TEMPLATE = re.compile(r"\{\{\s*(\w+)\s*:\s*([^}]*?)\s*\}\}")


def read_knative(text: str, path: str, environ: Mapping[str, str]) -> Translation:
    return _Func(path).translate(text)


class _Func(Reader):
    def translate(self, text: str) -> Translation:
        doc = self.tree(text, "func.yaml is empty; add name: and runtime: python (func create -l python)")
        if not isinstance(doc.value, dict):
            self.fail(doc.line, "func.yaml must be a mapping (specVersion, name, runtime ...)")
        name_item = doc.get("name")
        name = self.text(name_item, "name") if name_item is not None else os.path.basename(self.root)
        line = doc.keys.get("name", 1)
        runtime = doc.get("runtime")
        if runtime is None:
            self.fail(None, "no 'runtime:'; write runtime: python")
        language = self.text(runtime, "runtime")
        if language != "python":
            self.fail(runtime.line, f"runtime: {language}: faasemu runs Python functions only (runtime: python), "
                                    f"so function {name} cannot run here")
        nested = os.path.join(self.root, "function", "func.py")
        handler = "function/func.py" if os.path.isfile(nested) or not os.path.isfile(
            os.path.join(self.root, "func.py")) else "func.py"
        fn = Function(name, line, "name", (handler, runtime.line, "runtime"), runtime="knative")
        fn.http = [("/", (), line, "name"), ("/{path+}", (), line, "name")]
        run, deploy = self.section(doc, "run"), self.section(doc, "deploy")
        envs = (run.get("envs") if run is not None else None) or doc.get("envs")
        if envs is not None:
            where = "run.envs" if run is not None and run.get("envs") is envs else "envs"
            fn.env = self.envs(envs, where)
        options = (deploy.get("options") if deploy is not None else None) or doc.get("options")
        if options is not None:
            where = "deploy.options" if deploy is not None and deploy.get("options") is options else "options"
            memory = self.dig(options, ("resources", "limits", "memory"))
            if memory is not None:
                written = self.text(memory, f"{where}.resources.limits.memory")
                size = megabytes(written)
                if size is None:
                    self.fail(memory.line, f"{where}.resources.limits.memory: '{written}' is not a quantity; "
                                           "write 256Mi or 1Gi")
                fn.memory = (size, memory.line, f"{where}.resources.limits.memory")
        subscriptions = deploy.get("subscriptions") if deploy is not None else None
        if subscriptions is not None:
            if not isinstance(subscriptions.value, list):
                self.fail(subscriptions.line, "deploy.subscriptions: must be a list, as func subscribe writes it")
            for index, entry in enumerate(subscriptions.value):
                at = f"deploy.subscriptions[{index}]"
                filters = entry.get("filters")
                kind = filters.get("type") if filters is not None else None
                if kind is None:
                    self.fail(entry.line, f"{at}: no type filter; faasemu routes events by type: "
                                          "func subscribe --filter type=order.placed")
                fn.events.append((self.text(kind, f"{at}.filters.type"), kind.line, f"{at}.filters.type"))
        return emit(KIND, self.file, name, [fn], env_file=False)

    def envs(self, envs: Item, where: str) -> list[tuple[str, str, int, str]]:
        if not isinstance(envs.value, list):
            self.fail(envs.line, f"{where}: must be a list of {{name, value}}")
        out = []
        for index, entry in enumerate(envs.value):
            at = f"{where}[{index}]"
            name, value = entry.get("name"), entry.get("value")
            if name is None:
                self.fail(entry.line, f"{at}: no name; a whole Secret or ConfigMap is not available locally: "
                                      "write each variable as {name: X, value: ...}")
            text = "" if value is None or value.value is None else str(value.value)
            if isinstance(value.value if value is not None else None, bool):
                text = "true" if value and value.value else "false"
            line = value.line if value is not None else entry.line
            out.append((self.text(name, f"{at}.name"), self.env_value(text, line, at), line, f"{at}.value"))
        return out

    def env_value(self, text: str, line: int, where: str) -> str:
        """`{{ env:X }}` is the reference `${X}`; a Secret or ConfigMap is not there locally: an error."""
        out, last = [], 0
        for found in _TEMPLATE.finditer(text):
            out.append(escape(text[last:found.start()]))
            source, name = found.group(1), found.group(2)
            if source != "env" or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                self.fail(line, f"{where}.value: '{found.group()}' is not available locally (a Kubernetes "
                                f"{source}); write the value, or '{{{{ env:NAME }}}}' for a shell variable")
            out.append(f"${{{name}}}")
            last = found.end()
        return "".join(out) + escape(text[last:])

    def section(self, doc: Item, name: str) -> Item | None:
        found = doc.get(name)
        if found is not None and found.value is not None and not isinstance(found.value, dict):
            self.fail(found.line, f"{name}: must be a mapping")
        return found if found is not None and isinstance(found.value, dict) else None

    def dig(self, item: Item, names: tuple[str, ...]) -> Item | None:
        for name in names:
            found = item.get(name)
            if found is None:
                return None
            item = found
        return item

    def text(self, item: Item, where: str) -> str:
        value = item.value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
            self.fail(item.line, f"{where}: must be a string")
        return str(value).strip()
