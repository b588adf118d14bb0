"""Knative Functions read as they are: `load_manifest` in a function's folder with `func.yaml` and no
faasemu.yaml, its envs, memory limit and `func subscribe` filters carried over, errors on func.yaml's
own lines."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
from conftest import write_project

from faasemu.project.errors import ManifestError
from faasemu.project.formats import manifest_text
from faasemu.project.manifest import load_manifest

FUNC = """\
    def new():
        return Function()


    class Function:
        async def handle(self, scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
"""

FUNC_YAML = """\
    specVersion: 0.36.0
    name: confirm
    runtime: python
    registry: ""
    image: ""
    created: 2024-05-01T10:00:00.000000+00:00
    invoke: cloudevent
    build:
      builder: s2i
    run:
      envs:
      - name: GREETING
        value: hello $5
      - name: TOKEN
        value: '{{ env:TOKEN }}'
    deploy:
      namespace: shop
      options:
        resources:
          limits:
            memory: 512Mi
      subscriptions:
      - source: default
        filters:
          type: order.placed
      - source: default
        filters:
          type: order.cancelled
"""


def project(root: Path, func_yaml: str = FUNC_YAML, layout: str = "function/func.py") -> Path:
    write_project(root, {"func.yaml": func_yaml, layout: FUNC, "pyproject.toml": "[project]\nname = 'function'\n"})
    return root / "faasemu.yaml"


def test_a_function_folder_loads_without_a_faasemu_yaml(tmp_path: Path) -> None:
    manifest = load_manifest(project(tmp_path), {"TOKEN": "t-1"})
    assert manifest.path.endswith("func.yaml") and manifest.name == "confirm"
    (confirm,) = manifest.functions
    assert confirm.name == "confirm" and confirm.runtime == "knative" and confirm.handler == "function/func.py"
    assert [t.path for t in confirm.http] == ["/", "/{path+}"]  # the function owns its service, as under func run
    assert confirm.events == ("order.placed", "order.cancelled") and confirm.memory == 512
    assert confirm.env == {"GREETING": "hello $5", "TOKEN": "t-1"} and confirm.timeout == 300.0


def test_the_older_layout_and_top_level_envs(tmp_path: Path) -> None:
    older = "name: receipts\nruntime: python\nenvs:\n- name: MODE\n  value: 'on'\n"
    manifest = load_manifest(project(tmp_path, older, layout="func.py"), {})
    (receipts,) = manifest.functions
    assert receipts.handler == "func.py" and receipts.env == {"MODE": "on"} and receipts.events == ()


def test_secrets_stay_references_in_the_printed_manifest(tmp_path: Path) -> None:
    project(tmp_path)
    text = manifest_text(str(tmp_path / "faasemu.yaml"), {"TOKEN": "secret-value"})
    assert "${TOKEN}" in text and "secret-value" not in text and '"hello $$5"' in text


def test_printed_manifest_round_trips(tmp_path: Path) -> None:
    project(tmp_path)
    original = load_manifest(tmp_path / "faasemu.yaml", {"TOKEN": "t"})
    (tmp_path / "faasemu.yaml").write_text(manifest_text(str(tmp_path / "faasemu.yaml"), {"TOKEN": "t"}))
    again = load_manifest(tmp_path / "faasemu.yaml", {"TOKEN": "t"})
    assert [dataclasses.replace(s, line=0) for s in again.functions] == \
        [dataclasses.replace(s, line=0) for s in original.functions]


@pytest.mark.parametrize(("change", "at", "expected"), [
    (("runtime: python", "runtime: go"), "runtime: go", "Python functions only"),
    (("'{{ env:TOKEN }}'", "'{{ secret:shop:token }}'"), "secret:shop", "not available locally"),
    (("memory: 512Mi", "memory: big"), "big", "not a quantity"),
    (("type: order.cancelled", "source: shop"), "source: shop", "no type filter"),
    (("value: '{{ env:TOKEN }}'", "value: '{{ env:UNSET_TOKEN }}'"), "UNSET_TOKEN", "is not set"),
])
def test_errors_name_the_func_yaml_line(tmp_path: Path, change: tuple[str, str], at: str, expected: str) -> None:
    assert change[0] in FUNC_YAML
    func_yaml = FUNC_YAML.replace(change[0], change[1], 1)
    lines = textwrap.dedent(func_yaml).splitlines()
    line = next(number for number, text in enumerate(lines, 1) if at in text)
    if at == "source: shop":
        line -= 2  # the subscription's own line: `- source: default`
    with pytest.raises(ManifestError) as caught:
        load_manifest(project(tmp_path, func_yaml), {})
    assert caught.value.file.endswith("func.yaml"), str(caught.value)
    assert caught.value.line == line, str(caught.value)
    assert expected in caught.value.detail, str(caught.value)


def test_a_missing_handler_names_the_file_it_looked_for(tmp_path: Path) -> None:
    write_project(tmp_path, {"func.yaml": FUNC_YAML})
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "faasemu.yaml", {"TOKEN": "t"})
    assert caught.value.file.endswith("func.yaml") and "function/func.py" in caught.value.detail, str(caught.value)
