"""Vercel projects read as they are: `load_manifest` in a folder with `vercel.json` and no faasemu.yaml,
every `api/**/*.py` a function, `functions` globs applied, errors on vercel.json's lines."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from conftest import write_project

from faasemu.project.errors import ManifestError
from faasemu.project.formats import manifest_text
from faasemu.project.formats.vercel import glob_pattern
from faasemu.project.manifest import load_manifest

HANDLER = """\
    from http.server import BaseHTTPRequestHandler


    class handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
"""

CONFIG = """\
    {
      "$schema": "https://openapi.vercel.sh/vercel.json",
      "functions": {
        "api/**/*.py": {"maxDuration": 30},
        "api/payments.py": {
          "memory": 1024,
          "experimentalTriggers": [{"type": "queue/v1beta", "topic": "payment.received"}]
        }
      },
      "env": {"PRICE": "5$"},
      "cleanUrls": true
    }
"""


def project(root: Path, config: str = CONFIG) -> Path:
    write_project(root, {"vercel.json": config, "api/hello.py": HANDLER, "api/orders/[id].py": HANDLER,
                         "api/payments.py": HANDLER, "api/_util.py": "X = 1\n", "api/.hidden.py": "",
                         "api/_lib/db.py": "X = 1\n"})
    return root / "faasemu.yaml"


def test_a_project_loads_without_a_faasemu_yaml(tmp_path: Path) -> None:
    manifest = load_manifest(project(tmp_path), {})
    assert manifest.path.endswith("vercel.json")
    assert [spec.name for spec in manifest.functions] == ["hello", "orders-id", "payments"]
    hello = manifest.function("hello")
    assert hello is not None and hello.runtime == "vercel" and hello.handler == "api/hello.py"
    assert hello.timeout == 30.0 and hello.memory == 2048 and hello.env == {"PRICE": "5$"}
    payments = manifest.function("payments")
    assert payments is not None and payments.memory == 1024 and payments.events == ("payment.received",)
    order = manifest.function("orders-id")
    assert order is not None and order.handler == "api/orders/[id].py"


def test_printed_manifest_round_trips(tmp_path: Path) -> None:
    project(tmp_path)
    original = load_manifest(tmp_path / "faasemu.yaml", {})
    (tmp_path / "faasemu.yaml").write_text(manifest_text(str(tmp_path / "faasemu.yaml"), {}))
    again = load_manifest(tmp_path / "faasemu.yaml", {})
    assert [dataclasses.replace(s, line=0) for s in again.functions] == \
        [dataclasses.replace(s, line=0) for s in original.functions]


def test_globs_match_as_vercel_matches_them() -> None:
    assert glob_pattern("api/**/*.py").fullmatch("api/hello.py")
    assert glob_pattern("api/**/*.py").fullmatch("api/orders/[id].py")
    assert not glob_pattern("api/*.py").fullmatch("api/orders/[id].py")
    assert glob_pattern("api/{hello,payments}.py").fullmatch("api/payments.py")


@pytest.mark.parametrize(("change", "line", "expected"), [
    (('"api/payments.py": {', '"api/nothing.py": {'), 5, "matches no function"),
    (('"maxDuration": 30', '"maxDuration": "long"'), 4, "timeout"),
    (('"env": {"PRICE": "5$"},', '"env": {"PRICE": 5},'), 10, "must be a string"),
    (('"cleanUrls": true', '"cleanUrls": true,,'), 11, "not valid JSON"),
])
def test_errors_name_the_vercel_json_line(tmp_path: Path, change: tuple[str, str], line: int, expected: str) -> None:
    assert change[0] in CONFIG
    with pytest.raises(ManifestError) as caught:
        load_manifest(project(tmp_path, CONFIG.replace(change[0], change[1], 1)), {})
    assert caught.value.file.endswith("vercel.json"), str(caught.value)
    assert caught.value.line == line, str(caught.value)
    assert expected in caught.value.detail, str(caught.value)
