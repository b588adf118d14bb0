"""OpenFaaS stacks read as they are: `load_manifest` in a folder with `stack.yml` and no faasemu.yaml,
templates, environment, limits and the connector's `topic` annotation carried over, errors on
stack.yml's own lines."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
from conftest import write_project

from faasemu.project.errors import ManifestError
from faasemu.project.formats import manifest_text
from faasemu.project.manifest import load_manifest

HANDLER = """\
    def handle(event, context):
        return {"statusCode": 200, "body": "hi"}
"""

STACK = """\
    version: 1.0
    provider:
      name: openfaas
      gateway: http://127.0.0.1:8080
    functions:
      hello:
        lang: python3-http
        handler: ./hello
        image: ${REGISTRY:-docker.io/me}/hello:latest
        environment:
          write_timeout: 10s
          exec_timeout: 1m30s
          API_KEY: ${API_KEY:-none}
          PRICE: "5$"
        environment_file:
          - env.yml
      record-order:
        lang: python3-flask-debian
        handler: ./record-order
        limits:
          memory: 256Mi
        annotations:
          topic: order.placed, order.paid
      classic:
        lang: python3
        handler: ./classic
"""

ENV_FILE = """\
    environment:
      SHARED: from-file
      API_KEY: overridden
"""


def project(root: Path, stack: str = STACK) -> Path:
    write_project(root, {"stack.yml": stack, "env.yml": ENV_FILE, "hello/handler.py": HANDLER,
                         "record-order/handler.py": HANDLER,
                         "classic/handler.py": "def handle(req):\n    return req\n"})
    return root / "faasemu.yaml"


def test_a_stack_loads_without_a_faasemu_yaml(tmp_path: Path) -> None:
    manifest = load_manifest(project(tmp_path), {"API_KEY": "k-1"})
    assert manifest.path.endswith("stack.yml")
    hello = manifest.function("hello")
    assert hello is not None and hello.runtime == "openfaas" and hello.handler == "hello/handler.py:handle"
    assert hello.options["template"] == "python3-http" and hello.timeout == 90.0
    assert hello.env == {"SHARED": "from-file", "API_KEY": "k-1", "PRICE": "5$", "write_timeout": "10s",
                         "exec_timeout": "1m30s"}
    order = manifest.function("record-order")
    assert order is not None and order.options["template"] == "python3-flask" and order.memory == 256
    assert order.events == ("order.placed", "order.paid") and order.timeout == 30.0  # the platform's default
    classic = manifest.function("classic")
    assert classic is not None and classic.options["template"] == "python3"


def test_environment_references_stay_references_in_the_printed_manifest(tmp_path: Path) -> None:
    project(tmp_path)
    text = manifest_text(str(tmp_path / "faasemu.yaml"), {"API_KEY": "secret-value"})
    assert "${API_KEY:-none}" in text and "secret-value" not in text and '"5$$"' in text


def test_printed_manifest_round_trips(tmp_path: Path) -> None:
    project(tmp_path)
    original = load_manifest(tmp_path / "faasemu.yaml", {})
    (tmp_path / "faasemu.yaml").write_text(manifest_text(str(tmp_path / "faasemu.yaml"), {}))
    again = load_manifest(tmp_path / "faasemu.yaml", {})
    assert [dataclasses.replace(s, line=0) for s in again.functions] == \
        [dataclasses.replace(s, line=0) for s in original.functions]


def test_stack_yaml_is_found_and_detected_by_content_under_another_name(tmp_path: Path) -> None:
    project(tmp_path)
    (tmp_path / "stack.yml").rename(tmp_path / "functions.yml")
    manifest = load_manifest(tmp_path / "functions.yml", {})
    assert [spec.name for spec in manifest.functions] == ["hello", "record-order", "classic"]


def test_a_folder_with_two_formats_asks_which(tmp_path: Path) -> None:
    project(tmp_path)
    (tmp_path / "func.yaml").write_text("specVersion: 0.36.0\nname: x\nruntime: python\n")
    with pytest.raises(ManifestError, match=r"holds both stack\.yml \(OpenFaaS\) and func\.yaml .*-f stack\.yml"):
        load_manifest(tmp_path / "faasemu.yaml", {})


@pytest.mark.parametrize(("change", "at", "expected"), [
    (("lang: python3-flask-debian", "lang: node18"), "node18", "Python templates only"),
    (("handler: ./record-order", "handler: ./missing"), "./missing", "missing/handler.py"),
    (("memory: 256Mi", "memory: lots"), "lots", "not a quantity"),
    (("exec_timeout: 1m30s", "exec_timeout: soon"), "soon", "not a duration"),
    (("name: openfaas", "name: faasd-ish"), "faasd-ish", "must be openfaas"),
    (("API_KEY: ${API_KEY:-none}", "API_KEY: ${API_KEY}"), "API_KEY: ${API_KEY}", "is not set"),
])
def test_errors_name_the_stack_line(tmp_path: Path, change: tuple[str, str], at: str, expected: str) -> None:
    assert change[0] in STACK
    stack = STACK.replace(change[0], change[1], 1)
    line = next(number for number, text in enumerate(textwrap.dedent(stack).splitlines(), 1) if at in text)
    with pytest.raises(ManifestError) as caught:
        load_manifest(project(tmp_path, stack), {})
    assert caught.value.file.endswith("stack.yml"), str(caught.value)
    assert caught.value.line == line, str(caught.value)
    assert expected in caught.value.detail, str(caught.value)


def test_an_environment_file_error_names_that_file(tmp_path: Path) -> None:
    project(tmp_path)
    (tmp_path / "env.yml").write_text("environment:\n  A: 1\n  A: 2\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "faasemu.yaml", {})
    assert caught.value.file.endswith("env.yml") and caught.value.line == 3, str(caught.value)
