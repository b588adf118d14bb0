"""faasemu/workers/importer.py: how each platform's runtime imports a handler file.

Each case runs in a fresh interpreter (as a worker is one), with the source-only import hook installed
as the worker installs it, and reports what it imported; the hook's promise (no `__pycache__` in the
project) is checked on every case.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from faasemu.workers.importer import IMPORT_STYLES

PROBE = """\
import json, os, sys
from faasemu.workers import importer

root, handler, style = sys.argv[1:4]
os.chdir(root)
sys.path.insert(0, root)
importer.install_source_only_imports(root)
try:
    module = importer.import_handler_module(root, os.path.join(root, handler), None, style)
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}",
                      "left": sorted(name for name in sys.modules
                                     if name.partition(".")[0] in ("main", "func", "function"))}))
else:
    print(json.dumps({"name": module.__name__, "answer": module.answer() if hasattr(module, "answer") else None,
                      "file": os.path.relpath(module.__file__, root)}))
"""


def load(root: Path, handler: str, style: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", PROBE, str(root), handler, style], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert not list(root.rglob("__pycache__")), "project files must never be cached as bytecode"
    return json.loads(done.stdout)


def files(root: Path, tree: dict[str, str]) -> Path:
    for name, text in tree.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


RELATIVE_MAIN = {
    "main.py": """\
        from .helper import GREETING
        import plain

        def answer():
            return [GREETING, plain.VALUE, __name__, __package__]
        """,
    "helper.py": "GREETING = 'hi'\n",
    "plain.py": "VALUE = 'plain'\n",
}


def test_source_style_loads_main_py_as_a_package_over_its_folder(tmp_path: Path) -> None:
    # functions-framework's load_function_module: `from .test import foo` in main.py works
    got = load(files(tmp_path, RELATIVE_MAIN), "main.py", "source")
    assert got == {"name": "main", "answer": ["hi", "plain", "main", "main"], "file": "main.py"}


def test_source_style_in_a_subfolder_reaches_the_files_beside_it(tmp_path: Path) -> None:
    files(tmp_path, {f"fns/{name}": text for name, text in RELATIVE_MAIN.items()})
    got = load(tmp_path, "fns/main.py", "source")
    assert got["name"] == "main" and got["answer"] == ["hi", "plain", "main", "main"]


def test_dotted_style_keeps_lambdas_top_level_module(tmp_path: Path) -> None:
    # Lambda imports `main` as a top-level module: a relative import fails there, so it fails here
    got = load(files(tmp_path, RELATIVE_MAIN), "main.py", "dotted")
    assert got["error"] == "ImportError: attempted relative import with no known parent package"
    assert got["left"] == [], "a module that failed to load is not left in sys.modules"


KNATIVE = {
    "my-fn/function/__init__.py": "from .func import new\n",
    "my-fn/function/func.py": """\
        from .mylib import greet

        def new():
            return None

        def answer():
            return [greet("Ada"), __name__]
        """,
    "my-fn/function/mylib.py": "def greet(name):\n    return f'hello, {name}'\n",
}


@pytest.mark.parametrize("folder", ["my-fn", "my_fn", "2024-fn"])
def test_package_style_imports_the_function_package_whatever_the_folder_is_called(tmp_path: Path,
                                                                               folder: str) -> None:
    # func's scaffolding runs `from function import new` in the project folder (`func create my-fn`)
    files(tmp_path, {name.replace("my-fn", folder): text for name, text in KNATIVE.items()})
    got = load(tmp_path, f"{folder}/function/func.py", "package")
    assert got == {"name": "function.func", "answer": ["hello, Ada", "function.func"],
                   "file": f"{folder}/function/func.py"}


def test_package_style_without_a_package_is_a_top_level_module(tmp_path: Path) -> None:
    files(tmp_path, {"recorder/func.py": "import sibling\n\ndef answer():\n    return [sibling.X, __name__]\n",
                     "recorder/sibling.py": "X = 1\n"})
    assert load(tmp_path, "recorder/func.py", "package")["answer"] == [1, "func"]


def test_before_the_fix_a_hyphenated_folder_was_a_top_level_module(tmp_path: Path) -> None:
    # the dotted style (what knative used): `my-fn` is no identifier, so func.py loaded alone
    files(tmp_path, KNATIVE)
    assert load(tmp_path, "my-fn/function/func.py", "dotted")["error"].startswith("ImportError: attempted relative")


def test_the_styles_are_named() -> None:
    assert IMPORT_STYLES == ("dotted", "source", "package")


MODULES_PROBE = """\
import json, os, sys
from faasemu.workers import importer

root = sys.argv[1]
imported = importer.ProjectModules(root)  # as a worker makes it: before any user code
os.chdir(root)
sys.path.insert(0, root)
importer.install_source_only_imports(root)
import first
after_first = imported.current()
import second, decimal
print(json.dumps([after_first, imported.current()]))
"""


def test_project_modules_lists_the_project_files_imported_since_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "first.py").write_text("import second_helper\n")
    (tmp_path / "second_helper.py").write_text("")
    (tmp_path / "second.py").write_text("")
    probe = subprocess.run([sys.executable, "-c", MODULES_PROBE, str(tmp_path)], capture_output=True, text=True,
                           timeout=60)
    assert probe.returncode == 0, probe.stderr
    after_first, after_second = json.loads(probe.stdout)
    root = str(tmp_path.resolve())
    assert after_first == [f"{root}/first.py", f"{root}/second_helper.py"]
    assert after_second == [f"{root}/first.py", f"{root}/second.py", f"{root}/second_helper.py"]  # not decimal
