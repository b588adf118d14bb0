"""What a handler's environment holds (faasemu/project/environment.py): not the shell, but the platform's
variables, `.env`, the manifest's `env` with `${VAR}` references, and FAASEMU_*."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import Server, write_project

from faasemu.project.environment import handler_base_env, interpolate, parse_env_file
from faasemu.project.errors import ManifestError
from faasemu.project.manifest import parse_manifest

SECRET = "leaky-7f3a"

HANDLER = '''\
import json
import os

SEEN = ("SHELL_SECRET", "PATH", "HOME", "STAGE", "PASSED", "FROM_DOTENV", "QUOTED", "PRICE", "FALLBACK",
        "OWN", "FAASEMU_STATE", "AWS_LAMBDA_FUNCTION_NAME")


def seen():
    return {name: os.environ.get(name) for name in SEEN}


def http(event, context):
    return {"statusCode": 200, "body": json.dumps(seen())}


def plain(event, context):
    return seen()


def on_event(event, context):
    with open(os.path.join(os.getcwd(), "seen.json"), "w") as out:  # the manifest's folder
        json.dump(seen(), out)
'''

MANIFEST = """\
env:
  STAGE: local
  PASSED: ${SHELL_SECRET}
  PRICE: "costs $$5"
  FALLBACK: ${NOT_SET_ANYWHERE:-the-default}
functions:
  show:
    handler: app.py:http
    http: {path: /env, methods: [GET]}
    env: {OWN: "mine"}
  plain:
    handler: app.py:plain
  consumer:
    handler: app.py:on_event
    events: [env.check]
"""

DOTENV = """\
# comments and `export` as python-dotenv reads them
export FROM_DOTENV=dotenv-value  # trailing comment
QUOTED="two\\nlines"
"""


def shell_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "SHELL_SECRET": SECRET, "COLUMNS": "200", **extra}


def faasemu(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faasemu", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_project(tmp_path, {"faasemu.yaml": MANIFEST, "app.py": HANDLER, ".env": DOTENV})
    return tmp_path


def check_seen(seen: dict[str, str | None]) -> None:
    assert seen["SHELL_SECRET"] is None  # the shell does not leak ...
    assert seen["PASSED"] == SECRET  # ... unless the manifest passes it on purpose
    assert seen["PATH"] == os.environ["PATH"] and seen["HOME"] == os.environ["HOME"]
    assert seen["STAGE"] == "local" and seen["PRICE"] == "costs $5" and seen["FALLBACK"] == "the-default"
    assert seen["FROM_DOTENV"] == "dotenv-value" and seen["QUOTED"] == "two\nlines"
    assert seen["FAASEMU_STATE"]


def test_up_gives_handlers_the_manifest_env_not_the_shell(project: Path) -> None:
    with Server(project / "faasemu.yaml", env=shell_env()) as server:
        seen = httpx.get(server.url + "/env", timeout=30).json()
        check_seen(seen)
        assert seen["OWN"] == "mine" and seen["AWS_LAMBDA_FUNCTION_NAME"] == "show"  # the platform's variables
        out = server.output()
    assert SECRET not in out and "dotenv-value" not in out  # resolved values are never printed


def test_invoke_gives_handlers_the_manifest_env_not_the_shell(project: Path) -> None:
    done = faasemu("invoke", "plain", "--data", "{}", cwd=project, env=shell_env())
    assert done.returncode == 0, done.stderr
    check_seen(json.loads(done.stdout))
    assert SECRET not in done.stderr


def test_chaos_workers_get_the_manifest_env_not_the_shell(project: Path) -> None:
    (project / "events.jsonl").write_text('{"type": "env.check", "data": {}}\n')
    done = faasemu("chaos", "events.jsonl", "--runs", "0", "--seed", "1", cwd=project, env=shell_env())
    assert done.returncode in (0, 1), done.stdout + done.stderr
    check_seen(json.loads((project / "seen.json").read_text()))
    assert SECRET not in done.stdout + done.stderr


def test_state_hooks_get_the_project_env_not_the_shell(tmp_path: Path) -> None:
    write_project(tmp_path, {
        "faasemu.yaml": """\
            env: {STORE: "${STORE_DIR}"}
            state:
              hooks: {reset: hooks:reset, snapshot: hooks:snapshot}
            functions:
              consumer:
                handler: app.py:on_event
                events: [env.check]
            """,
        "app.py": HANDLER,
        "hooks.py": """\
            import json, os

            def reset():
                pass

            def snapshot():
                with open(os.path.join(os.environ["STORE"], "hook.json"), "w") as out:
                    json.dump({"secret": os.environ.get("SHELL_SECRET")}, out)
                return {}
            """,
        "events.jsonl": '{"type": "env.check", "data": {}}\n',
    })
    done = faasemu("chaos", "events.jsonl", "--runs", "0", "--seed", "1", cwd=tmp_path,
                   env=shell_env(STORE_DIR=str(tmp_path)))
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert json.loads((tmp_path / "hook.json").read_text()) == {"secret": None}


def test_an_unset_variable_is_a_manifest_error_naming_file_line_key_and_variable(project: Path) -> None:
    env = {k: v for k, v in shell_env().items() if k != "SHELL_SECRET"}
    done = faasemu("invoke", "plain", "--data", "{}", cwd=project, env=env)
    assert done.returncode == 2
    assert "faasemu.yaml:3: env.PASSED: ${SHELL_SECRET} is not set in .env or the environment" in done.stderr
    assert "${SHELL_SECRET:-default}" in done.stderr


def test_a_missing_explicit_env_file_is_a_manifest_error_naming_the_line(tmp_path: Path) -> None:
    write_project(tmp_path, {"faasemu.yaml": "name: x\nenv_file: .env.local\nfunctions:\n  plain:\n"
                                             "    handler: app.py:plain\n", "app.py": HANDLER})
    done = faasemu("invoke", "plain", cwd=tmp_path, env=shell_env())
    assert done.returncode == 2
    assert "faasemu.yaml:2: env_file: .env.local does not exist" in done.stderr


def test_an_unreadable_env_file_line_is_located_in_that_file(tmp_path: Path) -> None:
    write_project(tmp_path, {"faasemu.yaml": "functions:\n  plain:\n    handler: app.py:plain\n",
                             "app.py": HANDLER, ".env": "GOOD=1\nAPI_KEY sk-live-123\n1KEY=sk-live-456\n"})
    done = faasemu("invoke", "plain", cwd=tmp_path, env=shell_env())
    assert done.returncode == 2
    assert ".env:2: 'API_KEY' is followed by something other than '='; write API_KEY=value" in done.stderr
    (tmp_path / ".env").write_text("GOOD=1\n1KEY=sk-live-456\n")
    done = faasemu("invoke", "plain", cwd=tmp_path, env=shell_env())
    assert ".env:2: '1KEY' is not a variable name" in done.stderr
    assert "sk-live" not in done.stderr  # a malformed line may hold a secret: never echoed


# --- pure: the manifest's env, .env files, the base environment -----------------------------------

def parse(text: str, root: Path, environ: dict[str, str] | None = None):  # noqa: ANN201
    path = root / "faasemu.yaml"
    (root / "app.py").write_text("def h(event, context):\n    return 1\n")
    return parse_manifest(text, str(path), environ or {})


FUNCTIONS = "functions:\n  f:\n    handler: app.py:h\n"


def test_env_file_names_a_file_and_the_function_env_wins(tmp_path: Path) -> None:
    (tmp_path / "local.env").write_text("A=from-file\nB=from-file\nC=${SHELLVAR}-x\n")
    manifest = parse("env_file: local.env\nenv: {B: top}\nfunctions:\n  f:\n    handler: app.py:h\n"
                     "    env: {A: own, D: '${C}'}\n", tmp_path, {"SHELLVAR": "sh"})
    assert manifest.env_file == str(tmp_path / "local.env")
    assert manifest.env == {"A": "from-file", "B": "top", "C": "sh-x"}
    assert manifest.functions[0].env == {"A": "own", "B": "top", "C": "sh-x", "D": "sh-x"}


def test_the_env_file_comes_before_the_shell(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TOKEN=file\n")
    manifest = parse("env: {T: '${TOKEN}'}\n" + FUNCTIONS, tmp_path, {"TOKEN": "shell"})
    assert manifest.functions[0].env["T"] == "file"


def test_env_file_false_reads_no_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TOKEN=file\n")
    manifest = parse("env_file: false\n" + FUNCTIONS, tmp_path)
    assert manifest.env_file is None and manifest.env == {}


@pytest.mark.parametrize(("value", "problem"), [
    ("'${UNSET}'", "env.X: ${UNSET} is not set"),
    ("'${bad-name}'", "env.X: a '${...}' holds no variable name"),
    ("'${OPEN'", "env.X: a '${' has no closing '}'"),
])
def test_bad_references_are_located(tmp_path: Path, value: str, problem: str) -> None:
    with pytest.raises(ManifestError) as raised:
        parse(f"name: x\nenv:\n  X: {value}\n" + FUNCTIONS, tmp_path)
    assert str(raised.value).startswith(f"{tmp_path / 'faasemu.yaml'}:3: {problem}")


def test_errors_never_show_resolved_values(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("API_KEY=sk-live-123\n")
    with pytest.raises(ManifestError) as raised:
        parse("env: {A: '${API_KEY}', B: '${MISSING}'}\n" + FUNCTIONS, tmp_path)
    assert "sk-live-123" not in str(raised.value)
    assert "${MISSING}" in str(raised.value)


def test_allow_hosts_is_validated(tmp_path: Path) -> None:
    manifest = parse("allow_hosts: [Tunnel.Example.test, .dev.test, all]\n" + FUNCTIONS, tmp_path)
    assert manifest.allow_hosts == ("tunnel.example.test", ".dev.test", "all")
    with pytest.raises(ManifestError, match="faasemu.yaml:2: allow_hosts: 'http://x' is not a host name"):
        parse("allow_hosts:\n  - 'http://x'\n" + FUNCTIONS, tmp_path)


def test_interpolate_defaults_and_escapes() -> None:
    lookup = {"SET": "v", "EMPTY": ""}.get
    assert interpolate("${SET}/${EMPTY:-e}/${UNSET:-u}/$$SET/pa$word/$", lookup) == "v/e/u/$SET/pa$word/$"


def test_the_base_environment_keeps_what_python_needs_and_drops_the_rest() -> None:
    shell = {"PATH": "/bin", "HOME": "/home/a", "LANG": "C.UTF-8", "LC_ALL": "C", "TZ": "UTC", "TMPDIR": "/t",
             "PYTHONPATH": "/src", "VIRTUAL_ENV": "/venv", "FAASEMU_X": "1",
             "SHELL_SECRET": "leaky", "AWS_SECRET_ACCESS_KEY": "s", "GITHUB_TOKEN": "t", "HTTPS_PROXY": "http://u:p@p"}
    assert handler_base_env(shell) == {k: v for k, v in shell.items()
                                       if k not in ("SHELL_SECRET", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN",
                                                    "HTTPS_PROXY")}


DOTENV_CASES = [
    "A=1\n", "export A=1\n", "A = 1 \n", "A=1 # comment\n", "A=1#not-a-comment\n", "A='x y' # c\n",
    'A="a\\nb\\tc"\n', 'A="multi\nline"\nB=2\n', "A='it\\'s'\n", "A=\n", "A= # only a comment\n",
    "# only\n\nA=1\r\nB=2\r\n", "A=1\nB=${A}x\n", "B=${NOPE:-d}\n", 'A="q \\" q"\n', "A=1\nA=2\n",
    "KEY\nA=1\n", 'A="x" # c\n', "\ufeffA=1", "A=https://x.test/?a=b&c=d\n", 'A="${UNSET_ANYWHERE}"\n',
    "A=1\n  B=2\n",
]


@pytest.mark.parametrize("text", DOTENV_CASES)
def test_env_files_read_as_python_dotenv_reads_them(text: str) -> None:
    dotenv = pytest.importorskip("dotenv")  # uvicorn[standard] installs it; faasemu does not depend on it
    theirs = {k: v for k, v in dotenv.dotenv_values(stream=io.StringIO(text)).items() if v is not None}
    assert parse_env_file(text, {}) == theirs


# --- the layering every command shares: platform, then the manifest's env, then FAASEMU_* ------------

def test_handler_environment_layers_platform_then_manifest_then_faasemu() -> None:
    from faasemu.project.environment import handler_environment

    platform = {"AWS_REGION": "us-east-1", "TZ": ":UTC", "FAASEMU_STATE": "platform"}
    manifest = {"AWS_REGION": "eu-west-1", "API_KEY": "k", "FAASEMU_STATE": "manifest"}
    ours = {"FAASEMU_STATE": "/p/.faasemu/state.db", "FAASEMU_SINK_URL": "s", "FAASEMU_EVENTS_URL": "e"}
    assert handler_environment(platform, manifest, ours) == {
        "AWS_REGION": "eu-west-1", "TZ": ":UTC", "API_KEY": "k",  # the manifest overrides the platform
        "FAASEMU_STATE": "/p/.faasemu/state.db", "FAASEMU_SINK_URL": "s", "FAASEMU_EVENTS_URL": "e",  # ours win
    }
    assert platform["AWS_REGION"] == "us-east-1"  # the inputs are left as they were


def test_faasemu_env_names_state_sink_and_events_below_one_effect_server() -> None:
    from faasemu.project.environment import effect_urls, faasemu_env

    assert effect_urls("http://127.0.0.1:8080/_faasemu") == ("http://127.0.0.1:8080/_faasemu/sink",
                                                             "http://127.0.0.1:8080/_faasemu/events")
    assert faasemu_env("/s", *effect_urls("http://h/lane0")) == {
        "FAASEMU_STATE": "/s", "FAASEMU_SINK_URL": "http://h/lane0/sink", "FAASEMU_EVENTS_URL": "http://h/lane0/events",
    }


def test_up_gives_handlers_its_own_sink_and_ingress(tmp_path: Path) -> None:
    from faasemu.project.paths import ProjectPaths
    from faasemu.server.up import project_env

    manifest = parse(FUNCTIONS, tmp_path)
    assert project_env(manifest, "http://127.0.0.1:8080") == {
        "FAASEMU_STATE": ProjectPaths(str(tmp_path)).state_db,
        "FAASEMU_SINK_URL": "http://127.0.0.1:8080/_faasemu/sink",
        "FAASEMU_EVENTS_URL": "http://127.0.0.1:8080/_faasemu/events",
    }


def test_a_pool_loads_its_workers_with_the_shared_layering(tmp_path: Path) -> None:
    from faasemu.workers.pool import FunctionPool, Watchdog

    text = FUNCTIONS + "    env:\n      AWS_REGION: eu-central-1\n      FAASEMU_SINK_URL: mine\n      X: y\n"
    spec = parse(text, tmp_path).functions[0]

    class Quiet:
        def worker_output(self, function: str, line: str) -> None: ...
        def load_failed(self, function: str, error: object) -> None: ...
        def load_recovered(self, function: str, ms: float) -> None: ...

    ours = {"FAASEMU_STATE": "/s", "FAASEMU_SINK_URL": "sink", "FAASEMU_EVENTS_URL": "events"}
    env = FunctionPool(spec, str(tmp_path), ours, Quiet(), Watchdog()).environment()
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "f"  # the platform's
    assert env["AWS_REGION"] == "eu-central-1" and env["X"] == "y"  # the manifest's, over the platform's
    assert {k: env[k] for k in ours} == ours  # faasemu's, over the manifest's


def test_an_env_file_value_with_a_stray_reference_is_kept_as_written_and_never_shown(tmp_path: Path) -> None:
    """A `.env` kept for other tools (python-dotenv keeps `${` that is no reference): no error that
    would print part of a password, and an unset reference is empty, as python-dotenv makes it."""
    (tmp_path / ".env").write_text("DB_PASSWORD=hunter2${Zq9!tail\nNAME=${app.name}\nEMPTY=${NOT_SET_ANYWHERE}\n")
    manifest = parse("env: {P: '${DB_PASSWORD}', N: '${NAME}', E: 'x${EMPTY}'}\n" + FUNCTIONS, tmp_path)
    assert (manifest.env["P"], manifest.env["N"], manifest.env["E"]) == ("hunter2${Zq9!tail", "${app.name}", "x")


AWS_HANDLER = '''\
import os

NAMES = ("AWS_ENDPOINT_URL_SQS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_PROFILE")


def handler(event, context):
    return {name: os.environ.get(name) for name in NAMES}
'''


@pytest.mark.parametrize("extra, expected", [
    ("", None),  # no queues: boto3 goes where it would anyway, with whatever credentials it finds
    ("queues: {orders: sqs.Orders}\n", "testing"),
    ("queues: {orders: sqs.Orders}\nenv: {AWS_PROFILE: dev}\n", None),  # the project's own credentials
])
def test_handlers_get_the_sqs_stand_in_only_with_queues(tmp_path: Path, extra: str, expected: str | None) -> None:
    """docs/delivery.md#sqs-sends-become-events: AWS_ENDPOINT_URL_SQS and dummy credentials are defaults."""
    write_project(tmp_path, {"faasemu.yaml": "functions:\n  f: {handler: app.py:handler}\n" + extra,
                             "app.py": AWS_HANDLER})
    done = faasemu("invoke", "f", "--data", "{}", cwd=tmp_path, env=shell_env(AWS_ACCESS_KEY_ID="from-shell"))
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["AWS_ACCESS_KEY_ID"] == expected and seen["AWS_SECRET_ACCESS_KEY"] == expected
    endpoint = seen["AWS_ENDPOINT_URL_SQS"]
    assert (endpoint is None) == (not extra), seen
    if extra:
        assert endpoint.startswith("http://127.0.0.1:") and endpoint.endswith("/sqs")
        assert seen["AWS_DEFAULT_REGION"] == "us-east-1"  # the Lambda platform's, from AWS_REGION
