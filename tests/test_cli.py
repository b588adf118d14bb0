"""The `faasemu` command as a user runs it: invoke, init, and the errors `up` reports before serving."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import httpx
from conftest import free_port, run_cli, write_project

PROJECT = {
    "faasemu.yaml": """\
        name: cli
        functions:
          greet:
            handler: handler.py:greet
          fail:
            handler: handler.py:fail
          crash:
            handler: handler.py:crash
          create-order:
            handler: handler.py:create_order
            http: {path: /orders, methods: [POST]}
    """,
    "handler.py": """\
        import json
        import os


        def greet(event, context):
            print("a line the handler printed")
            return {"got": event, "function": context.function_name, "cwd": os.getcwd()}


        def fail(event, context):
            raise KeyError("no-such-order")


        def crash(event, context):
            os._exit(3)


        def create_order(event, context):
            order = json.loads(event["body"])
            return {
                "statusCode": 201,
                "headers": {"content-type": "application/json"},
                "body": json.dumps({"created": order, "method": event["requestContext"]["http"]["method"],
                                    "path": event["rawPath"]}),
            }
    """,
}


def project(tmp_path: Path) -> Path:
    write_project(tmp_path, PROJECT)
    return tmp_path


# --- invoke ------------------------------------------------------------------------------------


def test_invoke_with_json_data(tmp_path: Path) -> None:
    result = run_cli("invoke", "greet", "--data", '{"name": "ada", "n": [1, 2]}', cwd=project(tmp_path))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)  # stdout holds the result only
    assert out["got"] == {"name": "ada", "n": [1, 2]}
    assert out["function"] == "greet"
    assert Path(out["cwd"]).resolve() == tmp_path.resolve()
    assert "a line the handler printed" in result.stderr
    assert "a line the handler printed" not in result.stdout


def test_invoke_with_data_from_a_file(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "event.json").write_text('{"from": "a file"}\n')
    result = run_cli("invoke", "greet", "--data", "@event.json", cwd=root)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["got"] == {"from": "a file"}


def test_invoke_with_another_manifest_path(tmp_path: Path) -> None:
    root = project(tmp_path / "app")
    result = run_cli("invoke", "greet", "-f", str(root / "faasemu.yaml"), "--data", "{}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert Path(json.loads(result.stdout)["cwd"]).resolve() == root.resolve()  # the manifest's folder


def test_invoke_a_handler_that_raises(tmp_path: Path) -> None:
    result = run_cli("invoke", "fail", "--data", "{}", cwd=project(tmp_path))
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["errorType"] == "KeyError"
    assert "no-such-order" in error["errorMessage"]
    assert error["requestId"]
    assert any("handler.py" in line for line in error["stackTrace"]), error
    assert "Traceback" in result.stderr
    assert "handler.py" in result.stderr and "no-such-order" in result.stderr


def test_invoke_a_handler_that_ends_its_interpreter(tmp_path: Path) -> None:
    result = run_cli("invoke", "crash", "--data", "{}", cwd=project(tmp_path))
    assert result.returncode == 1
    assert json.loads(result.stdout)["errorType"] == "Runtime.ExitError"


def test_invoke_an_unknown_function_suggests_one(tmp_path: Path) -> None:
    result = run_cli("invoke", "gret", cwd=project(tmp_path))
    assert result.returncode == 2
    assert "gret" in result.stderr
    assert "did you mean 'greet'?" in result.stderr
    assert result.stdout == ""


def test_invoke_with_bad_json_data(tmp_path: Path) -> None:
    result = run_cli("invoke", "greet", "--data", "{not json", cwd=project(tmp_path))
    assert result.returncode == 2
    assert "--data" in result.stderr and "JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_invoke_with_bad_json_in_a_data_file(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "bad.json").write_text('{"ok": 1}\n{oops\n')
    result = run_cli("invoke", "greet", "--data", "@bad.json", cwd=root)
    assert result.returncode == 2
    assert "bad.json" in result.stderr


def test_invoke_http_request(tmp_path: Path) -> None:
    result = run_cli("invoke", "create-order", "--http", "POST", "/orders", "--data", '{"sku": "a1"}',
                     cwd=project(tmp_path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"created": {"sku": "a1"}, "method": "POST", "path": "/orders"}
    assert "201" in result.stderr


# --- init --------------------------------------------------------------------------------------


def test_init_scaffolds_a_project_that_serves(tmp_path: Path, run_server) -> None:
    target = tmp_path / "shop"
    result = run_cli("init", str(target), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("faasemu.yaml", "handler.py", "events.jsonl", "schema.sql", ".gitignore"):
        assert (target / name).is_file(), name
    assert ".faasemu/" in (target / ".gitignore").read_text().split()
    server = run_server(target / "faasemu.yaml")
    response = httpx.get(f"{server.url}/hello", timeout=10)
    assert response.status_code == 200
    assert "hello" in response.text
    assert "without authentication" not in server.output()  # loopback: no exposure warning


def test_init_keeps_an_existing_gitignore(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("node_modules/\n")
    result = run_cli("init", ".", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".gitignore").read_text().split() == ["node_modules/", ".faasemu/"]


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    assert run_cli("init", "app", cwd=tmp_path).returncode == 0
    handler = tmp_path / "app" / "handler.py"
    handler.write_text("# mine\n")
    result = run_cli("init", "app", cwd=tmp_path)
    assert result.returncode == 2
    assert "already exists" in result.stderr
    assert handler.read_text() == "# mine\n"


# --- up: errors before serving -----------------------------------------------------------------


def test_up_with_a_misspelt_key(tmp_path: Path) -> None:
    write_project(tmp_path, {
        "faasemu.yaml": """\
            name: typo
            functions:
              create-order:
                hanlder: handler.py:greet
                http: {path: /orders, methods: [POST]}
        """,
        "handler.py": PROJECT["handler.py"],
    })
    result = run_cli("up", "--port", str(free_port()), cwd=tmp_path, timeout=20)
    assert result.returncode == 2
    assert re.search(r"faasemu\.yaml:4: unknown key 'hanlder' .*did you mean 'handler'\?", result.stderr), result.stderr
    assert "Traceback" not in result.stderr


def test_up_without_a_manifest(tmp_path: Path) -> None:
    result = run_cli("up", "--port", str(free_port()), cwd=tmp_path, timeout=20)
    assert result.returncode == 2
    assert "faasemu.yaml" in result.stderr
    assert "Traceback" not in result.stderr


def test_up_on_a_busy_port(tmp_path: Path) -> None:
    root = project(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_cli("up", "--port", str(port), cwd=root, timeout=20)
    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in result.stderr
    assert "--port" in result.stderr  # says what to do
    assert "Traceback" not in result.stderr


def test_up_beyond_loopback_warns(tmp_path: Path, run_server) -> None:
    server = run_server(project(tmp_path) / "faasemu.yaml", "--host", "0.0.0.0")
    output = server.wait_for_output("without authentication")
    assert re.search(r"warning.*0\.0\.0\.0.*open to the network without authentication", output), output
    response = httpx.post(f"{server.url}/orders", json={"sku": "b2"}, timeout=10)
    assert response.status_code == 201
