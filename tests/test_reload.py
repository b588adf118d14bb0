"""Hot reload in `faasemu up`, with real edits to real files while the server runs.

The servers run without PYTHONDONTWRITEBYTECODE, as users run them: bytecode caches are then
possible, and faasemu must still never serve stale code.
"""

from __future__ import annotations

import os
import py_compile
import re
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import Server, write_project


@pytest.fixture(autouse=True)
def bytecode_as_users_have_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)


TWO_FUNCTIONS = {
    "faasemu.yaml": """\
        name: reloads
        functions:
          a:
            handler: a.py:handler
            http: {path: /a, methods: [GET]}
          b:
            handler: b.py:handler
            http: {path: /b, methods: [GET]}
    """,
    "a.py": """\
        import os

        import common


        def handler(event, context):
            nap(event)
            return {"body": "a-v1", "pid": os.getpid(), "common": common.VALUE}


        def nap(event):
            import time

            time.sleep(float((event.get("queryStringParameters") or {}).get("sleep", "0")))
    """,
    "b.py": """\
        import os

        import common


        def handler(event, context):
            return {"body": "b-v1", "pid": os.getpid(), "common": common.VALUE}
    """,
    "common.py": "VALUE = 'common-v1'\n",
}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def reload_lines(server: Server) -> list[str]:
    return [line for line in server.output().splitlines() if re.search(r"\breload\s+\S.* changed -> ", line)]


def wait_for_reloads(server: Server, count: int, timeout: float = 10.0) -> list[str]:
    """Wait until the output holds `count` "reload ... changed -> ..." lines."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = reload_lines(server)
        if len(lines) >= count:
            return lines
        time.sleep(0.02)
    raise AssertionError(f"expected {count} reload notices:\n{server.output()}")


def wait_for_count(server: Server, text: str, count: int, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = server.output()
        if output.count(text) >= count:
            return output
        time.sleep(0.02)
    raise AssertionError(f"{text!r} did not appear {count} times:\n{server.output()}")


def invocation_lines(server: Server, function: str, trigger: str, count: int, timeout: float = 5.0) -> list[str]:
    """The per-invocation lines of `function`, once there are `count` of them."""
    pattern = re.compile(rf"^\d\d:\d\d:\d\d\.\d+\s+{re.escape(function)}\s+{re.escape(trigger)}\s")
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in server.output().splitlines() if pattern.match(line)]
        if len(lines) >= count or time.monotonic() > deadline:
            assert len(lines) == count, lines
            return lines
        time.sleep(0.02)


def poll(client: httpx.Client, path: str, want_status: int, contains: str = "",
         timeout: float = 10.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(path)
        if response.status_code == want_status and contains in response.text:
            return response
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} kept answering {response.status_code} {response.text}")
        time.sleep(0.05)


def test_edit_is_served_by_the_next_request(tmp_path: Path, run_server) -> None:
    server = run_server(write_project(tmp_path, TWO_FUNCTIONS))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/a").json()["body"] == "a-v1"
        edit(tmp_path / "a.py", '"a-v1"', '"a-v2 (edited)"')
        wait_for_reloads(server, 1)
        response = client.get("/a")  # right after the notice: waits for the new worker, never fails
        assert response.status_code == 200
        assert response.json()["body"] == "a-v2 (edited)"
    assert not list(tmp_path.rglob("__pycache__"))  # workers write no bytecode cache for project files


def test_in_flight_request_finishes_on_the_old_code(tmp_path: Path, run_server) -> None:
    server = run_server(write_project(tmp_path, TWO_FUNCTIONS))
    result: list[httpx.Response | BaseException] = []

    def slow_request() -> None:
        try:
            result.append(httpx.get(f"{server.url}/a?sleep=1.5", timeout=10))
        except BaseException as exc:  # reported below
            result.append(exc)

    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/a").json()["body"] == "a-v1"
        thread = threading.Thread(target=slow_request)
        thread.start()
        try:
            deadline = time.monotonic() + 5
            while client.get("/_faasemu/functions").json()["functions"][0]["workers"]["busy"] == 0:
                assert time.monotonic() < deadline, "the slow request never started"
                time.sleep(0.02)
            edit(tmp_path / "a.py", '"a-v1"', '"a-v2"')
            wait_for_reloads(server, 1)
            fresh = client.get("/a")  # does not wait behind the old worker's request
            assert fresh.status_code == 200 and fresh.json()["body"] == "a-v2"
        finally:
            thread.join()
    assert isinstance(result[0], httpx.Response), result
    assert result[0].status_code == 200
    assert result[0].json()["body"] == "a-v1"


def test_a_folder_created_while_up_runs_is_watched(tmp_path: Path, run_server) -> None:
    server = run_server(write_project(tmp_path, TWO_FUNCTIONS))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/a").status_code == 200
        write_project(tmp_path, {"lib/__init__.py": "", "lib/helpers.py": "VALUE = 'lib-v1'\n"})
        edit(tmp_path / "a.py", "import common\n", "import common\nfrom lib import helpers\n")
        edit(tmp_path / "a.py", '"a-v1"', "helpers.VALUE")
        assert poll(client, "/a", 200, "lib-v1").json()["body"] == "lib-v1"
        reloads = len(reload_lines(server))
        edit(tmp_path / "lib" / "helpers.py", "lib-v1", "lib-v2")  # a module the worker imported
        wait_for_reloads(server, reloads + 1, timeout=5)
        assert client.get("/a").json()["body"] == "lib-v2"


def test_same_size_edit_within_the_same_second_is_seen(tmp_path: Path, run_server) -> None:
    write_project(tmp_path, TWO_FUNCTIONS)
    source = tmp_path / "a.py"
    py_compile.compile(str(source), doraise=True)  # a cache a user's tools may well have written
    cached = os.stat(source)
    server = run_server(tmp_path / "faasemu.yaml")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/a").json()["body"] == "a-v1"
        edit(source, '"a-v1"', '"a-v2"')
        os.utime(source, ns=(cached.st_atime_ns, cached.st_mtime_ns))  # same size, same second
        assert os.stat(source).st_size == cached.st_size
        wait_for_reloads(server, 1)
        assert client.get("/a").json()["body"] == "a-v2"
        edit(source, '"a-v2"', '"a-v3"')  # and once more, on top of a reload
        os.utime(source, ns=(cached.st_atime_ns, cached.st_mtime_ns))
        wait_for_reloads(server, 2)
        assert client.get("/a").json()["body"] == "a-v3"


def test_no_request_fails_during_reloads(tmp_path: Path, run_server) -> None:
    server = run_server(write_project(tmp_path, TWO_FUNCTIONS))
    source = tmp_path / "a.py"
    failures: list[str] = []
    bodies: list[str] = []
    stop = threading.Event()

    def stream() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.get("/a")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
                else:
                    bodies.append(response.json()["body"])

    thread = threading.Thread(target=stream)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not bodies and not failures and time.monotonic() < deadline:
            time.sleep(0.02)
        for version in range(2, 6):
            if version % 2:  # as many editors save: write a temporary file, rename it over the source
                temporary = tmp_path / "a.py.tmp"
                temporary.write_text(source.read_text().replace(f'"a-v{version - 1}"', f'"a-v{version}"'))
                os.replace(temporary, source)
            else:
                edit(source, f'"a-v{version - 1}"', f'"a-v{version}"')
            wait_for_reloads(server, version - 1)
            deadline = time.monotonic() + 10
            while f"a-v{version}" not in bodies[-3:] and time.monotonic() < deadline:
                time.sleep(0.02)
            assert f"a-v{version}" in bodies, f"a-v{version} never served"
    finally:
        stop.set()
        thread.join()
    assert failures == []
    assert len(bodies) > 20
    assert bodies[-1] == "a-v5"
    served = [body for i, body in enumerate(bodies) if i == 0 or body != bodies[i - 1]]
    assert served == ["a-v1", "a-v2", "a-v3", "a-v4", "a-v5"]  # never back to old code


def test_syntax_error_answers_503_and_recovers_when_fixed(tmp_path: Path, run_server) -> None:
    server = run_server(write_project(tmp_path, TWO_FUNCTIONS))
    source = tmp_path / "a.py"
    good = source.read_text()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/a").status_code == 200
        assert client.get("/b").status_code == 200
        lines = good.splitlines()
        lines[5] = "def handler(event, context)"  # line 6: the colon is missing
        source.write_text("\n".join(lines) + "\n")
        response = poll(client, "/a", 503)
        assert "a.py" in response.text and re.search(r"a\.py\D{0,12}6\b", response.text), response.text
        assert "SyntaxError" in response.text or "Syntax" in response.json().get("errorType", ""), response.text
        output = server.wait_for_output("a.py:6")  # shown with file and line
        assert "SyntaxError" in output
        assert client.get("/b").json()["body"] == "b-v1"  # another function keeps answering
        assert client.get("/a").status_code == 503  # until the file is fixed
        source.write_text(good.replace('"a-v1"', '"a-fixed"'))
        response = poll(client, "/a", 200, "a-fixed")  # recovery is automatic
        assert response.json()["body"] == "a-fixed"


def test_import_error_answers_503_and_recovers_when_fixed(tmp_path: Path, run_server) -> None:
    server = run_server(write_project(tmp_path, TWO_FUNCTIONS))
    source = tmp_path / "a.py"
    good = source.read_text()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/a").status_code == 200
        source.write_text(good.replace("import common\n", "import common\nimport no_such_module_here\n"))
        response = poll(client, "/a", 503)
        assert "no_such_module_here" in response.text, response.text
        assert re.search(r"a\.py\D{0,12}4\b", response.text), response.text
        output = server.wait_for_output("no_such_module_here")
        assert "a.py:4" in output
        assert client.get("/b").status_code == 200
        source.write_text(good.replace('"a-v1"', '"a-fixed"'))
        assert poll(client, "/a", 200, "a-fixed").json()["body"] == "a-fixed"


def test_only_the_affected_functions_restart(tmp_path: Path, run_server) -> None:
    server = run_server(write_project(tmp_path, TWO_FUNCTIONS))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        a_pid = client.get("/a").json()["pid"]
        b_pid = client.get("/b").json()["pid"]
        edit(tmp_path / "a.py", '"a-v1"', '"a-v2"')
        lines = wait_for_reloads(server, 1)
        assert re.search(r"reload\s+a\.py changed -> a\s*$", lines[0]), lines
        assert client.get("/a").json()["pid"] != a_pid
        assert client.get("/b").json()["pid"] == b_pid  # untouched: same worker, no cold start
        b_lines = invocation_lines(server, "b", "GET /b", 2)
        assert "cold" in b_lines[0] and all("cold" not in line for line in b_lines[1:]), b_lines
        # a module both import: both restart
        edit(tmp_path / "common.py", "common-v1", "common-v2")
        lines = wait_for_reloads(server, 2)
        assert re.search(r"reload\s+common\.py changed -> a, b\s*$", lines[1]), lines
        assert client.get("/a").json()["common"] == "common-v2"
        b = client.get("/b").json()
        assert b["common"] == "common-v2" and b["pid"] != b_pid


def test_manifest_edits_apply_live(tmp_path: Path, run_server) -> None:
    manifest = write_project(tmp_path, TWO_FUNCTIONS)
    write_project(tmp_path, {"c.py": "def handler(event, context):\n    return {'body': 'c'}\n"})
    server = run_server(manifest)
    original = manifest.read_text()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/c").status_code == 404
        # add a function
        manifest.write_text(original + "  c:\n    handler: c.py:handler\n    http: {path: /c, methods: [GET]}\n")
        wait_for_count(server, "applied", 1)
        assert client.get("/c").json() == {"body": "c"}
        # remove one
        manifest.write_text(manifest.read_text().replace(
            "  b:\n    handler: b.py:handler\n    http: {path: /b, methods: [GET]}\n", ""))
        wait_for_count(server, "applied", 2)
        assert client.get("/b").status_code == 404
        assert client.get("/a").status_code == 200
        # change a route's path
        manifest.write_text(manifest.read_text().replace("path: /a,", "path: /renamed-a,"))
        wait_for_count(server, "applied", 3)
        assert client.get("/a").status_code == 404
        assert client.get("/renamed-a").json()["body"] == "a-v1"
        names = {f["name"] for f in client.get("/_faasemu/functions").json()["functions"]}
        assert names == {"a", "c"}


def test_invalid_manifest_edit_is_reported_and_the_old_one_keeps_serving(tmp_path: Path, run_server) -> None:
    manifest = write_project(tmp_path, TWO_FUNCTIONS)
    server = run_server(manifest)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/a").status_code == 200
        manifest.write_text(manifest.read_text().replace("handler: b.py:handler", "hanlder: b.py:handler")
                            .replace("path: /a,", "path: /moved,"))
        output = server.wait_for_output("unknown key 'hanlder'")
        assert "did you mean 'handler'?" in output
        assert re.search(r"faasemu\.yaml:\d+", output), output
        assert client.get("/a").status_code == 200  # the previous configuration keeps serving
        assert client.get("/b").status_code == 200
        assert client.get("/moved").status_code == 404
        manifest.write_text(manifest.read_text().replace("hanlder:", "handler:"))  # fixed: applied
        wait_for_count(server, "applied", 1)
        assert client.get("/moved").status_code == 200


def test_edits_outside_project_sources_trigger_nothing(tmp_path: Path, run_server) -> None:
    files = dict(TWO_FUNCTIONS)
    files["faasemu.yaml"] = textwrap.dedent(files["faasemu.yaml"]) + (
        "  broken:\n    handler: broken.py:handler\n    http: {path: /broken, methods: [GET]}\n")
    # a broken function restarts on any reported change (the change may be its fix): a detector
    files["broken.py"] = "import not_installed_anywhere\n\n\ndef handler(event, context):\n    return 'x'\n"
    files["myenv/pyvenv.cfg"] = "home = /usr/bin\n"  # a virtual environment, whatever its name
    files["myenv/lib/python3.11/site-packages/dep.py"] = "x = 1\n"
    server = run_server(write_project(tmp_path, files))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        a_pid = client.get("/a").json()["pid"]
        assert client.get("/broken").status_code == 503
        server.wait_for_output("not_installed_anywhere")
        (tmp_path / ".faasemu" / "scratch.py").write_text("x = 1\n")
        (tmp_path / "notes.txt").write_text("not python\n")
        (tmp_path / "settings.json").write_text("{}\n")
        (tmp_path / "__pycache__").mkdir(exist_ok=True)
        (tmp_path / "__pycache__" / "stray.py").write_text("x = 1\n")
        (tmp_path / "myenv" / "lib" / "python3.11" / "site-packages" / "dep.py").write_text("x = 2\n")
        (tmp_path / "a.py").read_text()  # merely opened
        time.sleep(1.0)  # past the watcher's debounce: nothing may have happened
        assert reload_lines(server) == []
        assert client.get("/a").json()["pid"] == a_pid
        # the detector works: a real source file does trigger
        (tmp_path / "unrelated.py").write_text("y = 2\n")
        lines = wait_for_reloads(server, 1)
        assert re.search(r"reload\s+unrelated\.py changed -> broken\s*$", lines[0]), lines
        assert client.get("/a").json()["pid"] == a_pid
