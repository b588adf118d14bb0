"""Netlify sites read as they are: `load_manifest` in a folder with `netlify.toml` and no faasemu.yaml,
the functions folder found as `netlify dev` finds it, errors on netlify.toml's lines."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest
from conftest import write_project

from faasemu.project.errors import ManifestError
from faasemu.project.formats import manifest_text
from faasemu.project.manifest import load_manifest

HANDLER = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'hi'}\n"

TOML = """\
    [build]
      command = "npm run build"
      publish = "dist"

    [build.environment]
      PRICE = "5$"
      MODE = "build"

    [context.dev.environment]
      MODE = "dev"

    [functions]
      directory = "functions"
      node_bundler = "esbuild"

    [functions."report-background"]
      schedule = "@daily"
"""


def project(root: Path, toml: str = TOML) -> Path:
    write_project(root, {"netlify.toml": toml, "functions/hello.py": HANDLER,
                         "functions/report-background.py": HANDLER, "functions/submission-created.py": HANDLER,
                         "functions/orders/orders.py": HANDLER, "functions/_shared.txt": "",
                         "netlify/functions/elsewhere.py": HANDLER})
    return root / "faasemu.yaml"


def test_a_site_loads_without_a_faasemu_yaml(tmp_path: Path) -> None:
    manifest = load_manifest(project(tmp_path), {})
    assert manifest.path.endswith("netlify.toml")
    assert [spec.name for spec in manifest.functions] == ["hello", "orders", "report-background",
                                                          "submission-created"]
    hello = manifest.function("hello")
    assert hello is not None and hello.runtime == "netlify" and hello.handler == "functions/hello.py:handler"
    assert hello.env == {"PRICE": "5$", "MODE": "dev"} and hello.events == ()
    orders = manifest.function("orders")
    assert orders is not None and orders.handler == "functions/orders/orders.py:handler"
    background = manifest.function("report-background")
    assert background is not None and background.events == ("schedule.report-background",)
    assert background.timeout == 900.0  # a background function's 15 minutes
    created = manifest.function("submission-created")
    assert created is not None and created.events == ("submission-created",)


def test_the_default_folder_is_netlify_functions(tmp_path: Path) -> None:
    project(tmp_path, '[build]\n  publish = "dist"\n')
    (spec,) = load_manifest(tmp_path / "faasemu.yaml", {}).functions
    assert spec.name == "elsewhere" and spec.handler == "netlify/functions/elsewhere.py:handler"


def test_printed_manifest_round_trips(tmp_path: Path) -> None:
    project(tmp_path)
    original = load_manifest(tmp_path / "faasemu.yaml", {})
    text = manifest_text(str(tmp_path / "faasemu.yaml"), {})
    assert '"5$$"' in text
    (tmp_path / "faasemu.yaml").write_text(text)
    again = load_manifest(tmp_path / "faasemu.yaml", {})
    assert [dataclasses.replace(s, line=0) for s in again.functions] == \
        [dataclasses.replace(s, line=0) for s in original.functions]


@pytest.mark.parametrize(("change", "at", "expected"), [
    (('directory = "functions"', 'directory = "missing"'), "missing", "no functions folder missing/"),
    (('MODE = "dev"', "MODE = [1]"), "MODE = [1]", "must be a string"),
    (('publish = "dist"', 'publish = "dist'), 'publish = "dist', "not valid TOML"),
])
def test_errors_name_the_toml_line(tmp_path: Path, change: tuple[str, str], at: str, expected: str) -> None:
    assert change[0] in TOML
    toml = TOML.replace(change[0], change[1], 1)
    line = next(number for number, text in enumerate(textwrap.dedent(toml).splitlines(), 1) if at in text)
    with pytest.raises(ManifestError) as caught:
        load_manifest(project(tmp_path, toml), {})
    assert caught.value.file.endswith("netlify.toml"), str(caught.value)
    assert caught.value.line == line, str(caught.value)
    assert expected in caught.value.detail, str(caught.value)


def test_a_handler_problem_is_located_on_the_directory_line(tmp_path: Path) -> None:
    project(tmp_path)
    (tmp_path / "functions" / "hello.py").write_text("def other(event, context):\n    return None\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "faasemu.yaml", {})
    assert caught.value.line == 13 and "has no function 'handler'" in caught.value.detail, str(caught.value)
