"""The manifest: every error names file:line, the key and what is allowed; valid manifests get defaults."""

from __future__ import annotations

import dataclasses
import os
import textwrap
from pathlib import Path

import pytest

from faasemu.project.errors import ManifestError
from faasemu.project.manifest import load_manifest, parse_duration, parse_manifest
from faasemu.runtimes import RUNTIMES
from faasemu.project.spec import HttpTrigger, Manifest, StateSpec

ORDERS = """\
import os

def create_order(event, context):
    return {"statusCode": 201}

async def list_orders(event, context):
    return []

def _private():
    pass

class Repository:
    pass
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder as cwd, with sample_functions/orders.py, so errors read `faasemu.yaml:N:`."""
    (tmp_path / "sample_functions").mkdir()
    (tmp_path / "sample_functions" / "orders.py").write_text(ORDERS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def all_runtimes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend every runtime is implemented, to test their defaults and options."""
    for name, info in RUNTIMES.items():
        monkeypatch.setitem(RUNTIMES, name, dataclasses.replace(info, available=True))


def load(text: str) -> Manifest:
    Path("faasemu.yaml").write_text(textwrap.dedent(text))
    return load_manifest("faasemu.yaml")


def error(text: str) -> str:
    with pytest.raises(ManifestError) as caught:
        load(text)
    return str(caught.value)


def function(body: str, name: str = "create-order") -> str:
    """A manifest with one function whose keys are `body` (indented to line 3 onwards)."""
    return f"functions:\n  {name}:\n" + textwrap.indent(textwrap.dedent(body), "    ")


# --- valid manifests ------------------------------------------------------------------------------


def test_minimal_manifest_gets_every_default(project: Path) -> None:
    manifest = load(function("handler: sample_functions/orders.py:create_order\n"))
    assert manifest.path == str(project / "faasemu.yaml")
    assert manifest.root == str(project)
    assert (manifest.name, manifest.host, manifest.port, manifest.env) == (project.name, "127.0.0.1", 8080, {})
    assert manifest.state == StateSpec("sqlite", str(project / ".faasemu" / "state.db"))
    (spec,) = manifest.functions
    assert spec.name == "create-order" and spec.line == 2
    assert spec.runtime == "aws-lambda"
    assert spec.handler == "sample_functions/orders.py:create_order"
    assert spec.handler_file == str(project / "sample_functions" / "orders.py")
    assert (spec.handler_module, spec.handler_attr) == (None, "create_order")
    assert (spec.timeout, spec.retries, spec.memory, spec.concurrency) == (3.0, 2, 128, 1)
    assert (spec.http, spec.events, spec.env, spec.options) == ((), (), {}, {})


def test_every_key_set(project: Path) -> None:
    manifest = load("""\
        name: shop
        host: 0.0.0.0
        port: 0
        functions:
          create-order:
            handler: sample_functions/orders.py:create_order
            runtime: aws-lambda
            http: {path: /orders, methods: [post, Get]}
            events: [order.created, "order.*"]
            timeout: 1.5s
            memory: 1GB
            concurrency: 4
            retries: 0
            payload: v1
            event_source: sqs
    """)
    assert (manifest.name, manifest.host, manifest.port) == ("shop", "0.0.0.0", 0)
    spec = manifest.function("create-order")
    assert spec is not None
    assert spec.http == (HttpTrigger("/orders", ("POST", "GET")),)
    assert spec.events == ("order.created", "order.*")
    assert (spec.timeout, spec.memory, spec.concurrency, spec.retries) == (1.5, 1024, 4, 0)
    assert spec.options == {"payload": "v1", "event_source": "sqs"}


@pytest.mark.parametrize(
    ("written", "seconds"), [("500ms", 0.5), ("3s", 3.0), ("2m", 120.0), ("1.5s", 1.5), ("10", 10.0), ("0.25", 0.25)]
)
def test_timeout_forms(project: Path, written: str, seconds: float) -> None:
    spec = load(function(f"handler: sample_functions/orders.py:create_order\ntimeout: {written}\n")).functions[0]
    assert spec.timeout == seconds


def test_parse_duration_rejects_what_is_not_a_duration() -> None:
    assert parse_duration("3 sec") is None and parse_duration(True) is None and parse_duration("") is None


def test_env_is_merged_and_values_become_strings(project: Path) -> None:
    manifest = load("""\
        env: {STAGE: local, DEBUG: true, VERSION: 1.10, COUNT: 3}
        functions:
          create-order:
            handler: sample_functions/orders.py:create_order
            env: {STAGE: dev, TABLE: orders, VERBOSE: no}
    """)
    assert manifest.env == {"STAGE": "local", "DEBUG": "true", "VERSION": "1.10", "COUNT": "3"}
    assert manifest.functions[0].env == {
        "STAGE": "dev", "DEBUG": "true", "VERSION": "1.10", "COUNT": "3", "TABLE": "orders", "VERBOSE": "false"
    }


def test_http_list_forms_and_any(project: Path) -> None:
    spec = load(function("""\
        handler: sample_functions/orders.py:create_order
        http:
          - path: /orders
            methods: post
          - path: "/orders/{id}"
            methods: [GET, ANY]
          - {path: "/files/{key+}"}
    """)).functions[0]
    assert spec.http == (HttpTrigger("/orders", ("POST",)), HttpTrigger("/orders/{id}"), HttpTrigger("/files/{key+}"))


def test_same_path_with_other_methods_is_fine(project: Path) -> None:
    manifest = load("""\
        functions:
          create-order:
            handler: sample_functions/orders.py:create_order
            http: {path: "/orders/{id}", methods: POST}
          get-order:
            handler: sample_functions/orders.py:list_orders
            http: {path: "/orders/{order_id}", methods: GET}
    """)
    assert [spec.name for spec in manifest.functions] == ["create-order", "get-order"]


def test_module_handler_under_root_and_installed(project: Path) -> None:
    (project / "pkg").mkdir()
    (project / "pkg" / "__init__.py").write_text("")
    (project / "pkg" / "orders.py").write_text("from pkg import db as store\nhandler = store\n")
    manifest = load("""\
        functions:
          local:
            handler: pkg.orders:handler
          installed:
            handler: some_installed_package.api:main
    """)
    local, installed = manifest.functions
    assert (local.handler_file, local.handler_module, local.handler_attr) == (None, "pkg.orders", "handler")
    assert (installed.handler_module, installed.handler_attr) == ("some_installed_package.api", "main")


@pytest.mark.parametrize(
    "source",
    [
        "from helpers import *\n",
        "def __getattr__(name):\n    return print\n",
        "def broken(:\n",
        "try:\n    import ujson as handler\nexcept ImportError:\n    handler = None\n",
        "if True:\n    def handler(e, c): pass\n",
        "with open('x') as handler:\n    pass\n",
        "first, *handler = [1, 2]\n",
        "handler: object = print\n",
        "class handler:\n    pass\n",
    ],
    ids=["star-import", "module-getattr", "syntax-error", "try-import", "if-block", "with", "unpacking", "annotated",
         "class"],
)
def test_handler_check_accepts_what_python_could_find(project: Path, source: str) -> None:
    (project / "app.py").write_text(source)
    assert load(function("handler: app.py:handler\n")).functions[0].handler_attr == "handler"


def test_file_only_handlers_for_vercel_and_knative(project: Path, all_runtimes: None) -> None:
    (project / "api").mkdir()
    (project / "api" / "users.py").write_text("class handler: pass\n")
    manifest = load("""\
        functions:
          users:
            handler: api/users.py
            runtime: vercel
          knative-fn:
            handler: api/users.py
            runtime: knative
            signature: cloudevent
    """)
    users, knative = manifest.functions
    assert (users.handler_file, users.handler_attr) == (str(project / "api" / "users.py"), None)
    assert (users.timeout, users.retries, users.memory) == (300.0, 0, 2048)
    assert knative.options == {"signature": "cloudevent"}


@pytest.mark.parametrize(
    ("runtime", "defaults"),
    [("gcf", (60.0, 0, 256)), ("azure", (300.0, 4, 1536)), ("openfaas", (30.0, 0, 128)),
     ("kubeless", (180.0, 0, 128)), ("netlify", (60.0, 0, 1024))],
)
def test_defaults_per_runtime(project: Path, all_runtimes: None, runtime: str, defaults: tuple) -> None:
    spec = load(function(f"handler: sample_functions/orders.py:create_order\nruntime: {runtime}\n")).functions[0]
    assert (spec.timeout, spec.retries, spec.memory, spec.concurrency) == (*defaults, 1)


def test_netlify_background_functions(project: Path, all_runtimes: None) -> None:
    manifest = load("""\
        functions:
          sync-background:
            handler: sample_functions/orders.py:create_order
            runtime: netlify
          set-background:
            handler: sample_functions/orders.py:create_order
            runtime: netlify
            timeout: 30s
            retries: 1
    """)
    default, chosen = manifest.functions
    assert (default.timeout, default.retries) == (900.0, 2)
    assert (chosen.timeout, chosen.retries) == (30.0, 1)


def test_state_forms(project: Path) -> None:
    (project / "schema.sql").write_text("create table orders (id text);\n")
    (project / "state_hooks.py").write_text("def reset(): pass\ndef snapshot(): pass\n")
    functions = "functions:\n  a: {handler: sample_functions/orders.py:create_order}\n"
    sqlite = load("state:\n  sqlite: data/shop.db\n  schema: schema.sql\n  ignore: [orders.updated_at]\n" + functions)
    assert sqlite.state == StateSpec(
        "sqlite", str(project / "data" / "shop.db"), str(project / "schema.sql"), ("orders.updated_at",)
    )
    assert load("state: {dir: ./files}\n" + functions).state == StateSpec("dir", str(project / "files"))
    hooks = load("state:\n  hooks: {reset: 'state_hooks:reset', snapshot: 'state_hooks:snapshot'}\n" + functions)
    assert hooks.state == StateSpec("hooks", None, None, (), "state_hooks:reset", "state_hooks:snapshot")
    empty = load("state:\n  sqlite:\n  schema: schema.sql\n  ignore: orders.updated_at\n" + functions)
    assert empty.state.path == str(project / ".faasemu" / "state.db")
    assert empty.state.ignore == ("orders.updated_at",)


def test_merge_keys_give_shared_settings(project: Path) -> None:
    manifest = load("""\
        functions:
          create-order: &defaults
            handler: sample_functions/orders.py:create_order
            timeout: 10s
          list-orders:
            <<: *defaults
            handler: sample_functions/orders.py:list_orders
    """)
    assert manifest.functions[1].handler_attr == "list_orders" and manifest.functions[1].timeout == 10.0


def test_parse_manifest_resolves_from_the_given_path(project: Path) -> None:
    (project / "sub").mkdir()
    (project / "sub" / "app.py").write_text("def main(e, c): pass\n")
    manifest = parse_manifest("functions:\n  a: {handler: app.py:main}\n", os.path.join("sub", "faasemu.yaml"))
    assert manifest.root == str(project / "sub") and manifest.name == "sub"
    assert manifest.functions[0].handler_file == str(project / "sub" / "app.py")


# --- errors: reading and YAML ---------------------------------------------------------------------


def test_missing_file(project: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest("faasemu.yaml")
    assert str(caught.value) == "faasemu.yaml: no such file; run 'faasemu init' to create a manifest"


def test_yaml_syntax_error(project: Path) -> None:
    assert error("functions:\n  a:\n    handler: x\n   runtime: y\n") == (
        "faasemu.yaml:4: not valid YAML: expected <block end>, but found '<block mapping start>' "
        "(while parsing a block mapping)"
    )


def test_unquoted_braces_in_a_flow_mapping(project: Path) -> None:
    assert error(function("http: {path: /orders/{id}}\n")).endswith(
        "; quote templated paths: path: \"/orders/{id}\"")


def test_python_tags_are_refused(project: Path) -> None:
    assert error("name: !!python/object/apply:os.system [echo hi]\nfunctions: {}\n") == (
        "faasemu.yaml:1: tag '!!python/object/apply:os.system' is not allowed; faasemu reads YAML with a safe "
        "loader (plain values, lists and mappings only)"
    )


def test_custom_tags_are_refused(project: Path) -> None:
    assert error(function("handler: !Ref Handler\n")).startswith("faasemu.yaml:3: tag '!Ref' is not allowed")


def test_empty_manifest(project: Path) -> None:
    assert error("# nothing yet\n") == "faasemu.yaml: the manifest is empty; add at least a 'functions:' section"


def test_manifest_not_a_mapping(project: Path) -> None:
    assert error("- a\n- b\n") == (
        "faasemu.yaml:1: the manifest must be a mapping of name, host, port, allow_hosts, env_file, env, state, "
        "functions, triggers, queues, not a list"
    )


def test_duplicate_key(project: Path) -> None:
    assert error(function("handler: sample_functions/orders.py:create_order\ntimeout: 3\ntimeout: 4\n", "a")) == (
        "faasemu.yaml:5: duplicate key 'timeout' in functions.a (also on line 4)"
    )


def test_duplicate_function_name(project: Path) -> None:
    text = "functions:\n  a: {handler: sample_functions/orders.py:create_order}\n  a: {handler: x.py:y}\n"
    assert error(text) == "faasemu.yaml:3: duplicate key 'a' in functions (also on line 2)"


# --- errors: keys ---------------------------------------------------------------------------------


def test_unknown_key_with_suggestion(project: Path) -> None:
    assert error(function("hanlder: sample_functions/orders.py:create_order\n")) == (
        "faasemu.yaml:3: unknown key 'hanlder' in functions.create-order; did you mean 'handler'?"
    )


def test_unknown_key_lists_allowed_keys(project: Path) -> None:
    assert error(function("handler: sample_functions/orders.py:create_order\nzzz: 1\n")) == (
        "faasemu.yaml:4: unknown key 'zzz' in functions.create-order; allowed: handler, runtime, http, events, "
        "timeout, memory, concurrency, retries, env, order_key, batch_size, report_batch_item_failures, payload, "
        "event_source"
    )


def test_unknown_top_level_key(project: Path) -> None:
    assert error("fucntions: {}\n") == (
        "faasemu.yaml:1: unknown key 'fucntions' at the top level; did you mean 'functions'?"
    )


def test_unknown_key_in_http(project: Path) -> None:
    assert error(function("handler: sample_functions/orders.py:create_order\nhttp: {path: /a, method: GET}\n")) == (
        "faasemu.yaml:4: unknown key 'method' in functions.create-order.http; did you mean 'methods'?"
    )


def test_missing_functions(project: Path) -> None:
    assert error("name: shop\n") == (
        "faasemu.yaml: missing required key 'functions'; add at least one function under 'functions:'"
    )


def test_empty_functions(project: Path) -> None:
    assert error("name: shop\nfunctions:\n") == (
        "faasemu.yaml:2: functions: add at least one function (name: {handler: FILE.py:CALLABLE})"
    )


def test_invalid_function_name(project: Path) -> None:
    assert error(function("handler: sample_functions/orders.py:create_order\n", "CreateOrder")) == (
        "faasemu.yaml:2: functions.CreateOrder: 'CreateOrder' is not a function name; "
        "use lower-case letters, digits, '-' and '_'"
    )


def test_function_not_a_mapping(project: Path) -> None:
    assert error("functions:\n  a: sample_functions/orders.py:create_order\n") == (
        "faasemu.yaml:2: functions.a: must be a mapping with at least 'handler', like {handler: app.py:handler}"
    )


def test_missing_handler(project: Path) -> None:
    assert error(function("timeout: 3\n", "a")) == (
        "faasemu.yaml:2: functions.a: missing required key 'handler'; use FILE.py:CALLABLE or package.module:CALLABLE"
    )


# --- errors: handler ------------------------------------------------------------------------------


def test_handler_function_missing(project: Path) -> None:
    assert error(function("handler: sample_functions/orders.py:create_ordr\n")) == (
        "faasemu.yaml:3: functions.create-order.handler: sample_functions/orders.py has no function 'create_ordr'. "
        "Found: create_order, list_orders."
    )


def test_handler_file_with_nothing_callable(project: Path) -> None:
    (project / "empty.py").write_text("X = 1\n")
    assert error(function("handler: empty.py:main\n")) == (
        "faasemu.yaml:3: functions.create-order.handler: empty.py has no function 'main'. Found: nothing callable."
    )


def test_handler_file_missing(project: Path) -> None:
    assert error(function("handler: sample_functions/missing.py:main\n")) == (
        "faasemu.yaml:3: functions.create-order.handler: sample_functions/missing.py does not exist; "
        "paths are relative to the manifest's folder"
    )


def test_handler_module_under_root_checked(project: Path) -> None:
    assert error(function("handler: sample_functions.orders:create\n")) == (
        "faasemu.yaml:3: functions.create-order.handler: sample_functions/orders.py has no function 'create'. "
        "Found: create_order, list_orders."
    )


def test_handler_file_needs_a_callable_outside_vercel_and_knative(project: Path) -> None:
    assert error(function("handler: sample_functions/orders.py\n")) == (
        "faasemu.yaml:3: functions.create-order.handler: name the function to call, as in "
        "'sample_functions/orders.py:handler' (only vercel and knative find the entry point in a file)"
    )


def test_handler_in_sam_form_gets_a_suggestion(project: Path) -> None:
    assert error(function("handler: app.lambda_handler\n")) == (
        "faasemu.yaml:3: functions.create-order.handler: 'app.lambda_handler' has no ':' before the function; "
        "use FILE.py:CALLABLE or package.module:CALLABLE; did you mean 'app:lambda_handler'?"
    )


def test_handler_not_a_python_file(project: Path) -> None:
    assert error(function("handler: src/orders.js:main\n")) == (
        "faasemu.yaml:3: functions.create-order.handler: 'src/orders.js' is not a .py file; "
        "use FILE.py:CALLABLE or package.module:CALLABLE"
    )


def test_handler_callable_not_an_identifier(project: Path) -> None:
    assert error(function("handler: 'sample_functions/orders.py:create-order'\n")) == (
        "faasemu.yaml:3: functions.create-order.handler: 'create-order' is not a function name; "
        "use FILE.py:CALLABLE or package.module:CALLABLE"
    )


# --- errors: runtime and its options --------------------------------------------------------------


def test_unavailable_runtime(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from faasemu.runtimes import RUNTIMES

    for name, info in list(RUNTIMES.items()):
        if name != "aws-lambda":
            monkeypatch.setitem(RUNTIMES, name, dataclasses.replace(info, available=False))
    assert error(function("handler: sample_functions/orders.py:create_order\nruntime: gcf\n", "f")) == (
        "faasemu.yaml:4: functions.f.runtime: 'gcf' is not available in this version of faasemu "
        "(available: aws-lambda)"
    )


def test_unknown_runtime(project: Path) -> None:
    assert error(function("handler: sample_functions/orders.py:create_order\nruntime: aws-lamda\n", "f")) == (
        "faasemu.yaml:4: functions.f.runtime: unknown runtime 'aws-lamda'; did you mean 'aws-lambda'? "
        "(available: aws-lambda, gcf, azure, vercel, openfaas, kubeless, knative, netlify)"
    )


def test_option_value_not_allowed(project: Path) -> None:
    assert error(function("handler: sample_functions/orders.py:create_order\npayload: v3\n", "f")) == (
        "faasemu.yaml:4: functions.f.payload: 'v3' is not allowed for aws-lambda; use one of: v2, v1"
    )


def test_option_of_another_runtime(project: Path) -> None:
    assert error(function("handler: sample_functions/orders.py:create_order\nsignature: http\n", "f")) == (
        "faasemu.yaml:4: functions.f.signature: only for runtimes gcf and knative "
        "(this function's runtime is aws-lambda)"
    )


# --- errors: numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("timeout: 3 sec", "functions.create-order.timeout: '3 sec' is not a duration; "
                           'use a number of seconds, "500ms", "3s" or "2m"'),
        ("timeout: true", "functions.create-order.timeout: true is not a duration; "
                          'use a number of seconds, "500ms", "3s" or "2m"'),
        ("timeout: 0", "functions.create-order.timeout: must be more than 0 seconds, not 0"),
        ("memory: 8", "functions.create-order.memory: must be at least 16 MB, not 8"),
        ("memory: lots", 'functions.create-order.memory: \'lots\' is not a memory size; use a number of MB, '
                         '"256MB" or "1GB"'),
        ("concurrency: 0", "functions.create-order.concurrency: must be a whole number of at least 1, not 0"),
        ("concurrency: true", "functions.create-order.concurrency: must be a whole number of at least 1, not true"),
        ("retries: -1", "functions.create-order.retries: must be a whole number of at least 0, not -1"),
        ("retries: 1.5", "functions.create-order.retries: must be a whole number of at least 0, not 1.5"),
    ],
)
def test_number_errors(project: Path, line: str, message: str) -> None:
    assert error(function(f"handler: sample_functions/orders.py:create_order\n{line}\n")) == (
        f"faasemu.yaml:4: {message}"
    )


def test_port_out_of_range(project: Path) -> None:
    assert error("port: 70000\nfunctions: {}\n") == (
        "faasemu.yaml:1: port: must be a whole number from 0 to 65535, not 70000"
    )


# --- errors: env ----------------------------------------------------------------------------------


def test_env_null_value(project: Path) -> None:
    assert error("env:\n  STAGE:\nfunctions: {}\n") == (
        'faasemu.yaml:2: env.STAGE: has no value; write "" for an empty string'
    )


def test_env_bad_name(project: Path) -> None:
    assert error(function("handler: sample_functions/orders.py:create_order\nenv: {1TABLE: x}\n", "f")) == (
        "faasemu.yaml:4: functions.f.env: '1TABLE' is not a variable name; use letters, digits and '_', "
        "not starting with a digit"
    )


def test_env_nested_value(project: Path) -> None:
    assert error("env:\n  TABLES: [a, b]\nfunctions: {}\n") == (
        "faasemu.yaml:2: env.TABLES: must be a string, number or boolean, not a list"
    )


# --- errors: http and events ----------------------------------------------------------------------


def test_unquoted_templated_path(project: Path) -> None:
    assert error(function("handler: sample_functions/orders.py:create_order\nhttp:\n  path: {proxy+}\n", "f")) == (
        "faasemu.yaml:5: functions.f.http.path: YAML read the braces as a mapping; "
        'quote templated paths: path: "/orders/{id}"'
    )


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("orders", "'orders' must start with '/'"),
        ("/orders?x=1", "'/orders?x=1' must be a path only: no query string, fragment or spaces"),
        ("/files/{key+}/meta", "'{key+}' in '/files/{key+}/meta': a greedy {name+} must be the last segment"),
        ("/orders/id-{id}", "'id-{id}' in '/orders/id-{id}' is not a placeholder; a templated segment is a whole "
                            "{name} or {name+}, with a name of letters, digits and '_'"),
        ("/a/{id}/b/{id}", "'/a/{id}/b/{id}' uses the placeholder 'id' twice"),
        ("/a//b", "'/a//b' has an empty segment ('//')"),
    ],
)
def test_bad_paths(project: Path, path: str, problem: str) -> None:
    text = function(f"handler: sample_functions/orders.py:create_order\nhttp:\n  - path: \"{path}\"\n", "f")
    assert error(text) == f"faasemu.yaml:5: functions.f.http[0].path: {problem}"


def test_bad_method(project: Path) -> None:
    assert error(function("handler: sample_functions/orders.py:create_order\nhttp: {path: /a, methods: [FETCH]}\n",
                          "f")) == (
        "faasemu.yaml:4: functions.f.http.methods: 'FETCH' is not an HTTP method; "
        "use GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, ANY"
    )


def test_http_not_a_mapping(project: Path) -> None:
    assert error(function("handler: sample_functions/orders.py:create_order\nhttp: /orders\n", "f")) == (
        "faasemu.yaml:4: functions.f.http: must be a mapping like {path: /orders, methods: [POST]} "
        "(or a list of them), not '/orders'"
    )


def test_route_claimed_twice(project: Path) -> None:
    assert error("""\
        functions:
          get-order:
            handler: sample_functions/orders.py:list_orders
            http: {path: "/orders/{order_id}"}
          create-order:
            handler: sample_functions/orders.py:create_order
            http: {path: "/orders/{id}/", methods: POST}
    """) == (
        "faasemu.yaml:7: functions.create-order.http: POST /orders/{id}/ is also routed to function 'get-order' "
        "(line 4: /orders/{order_id}); a path and method may belong to one trigger only"
    )


def test_route_claimed_twice_by_one_function(project: Path) -> None:
    text = function("handler: sample_functions/orders.py:create_order\n"
                    "http:\n  - {path: /a, methods: [GET, POST]}\n  - {path: /a, methods: [POST]}\n", "f")
    assert error(text) == (
        "faasemu.yaml:6: functions.f.http: POST /a is also routed to function 'f' (line 5: /a); "
        "a path and method may belong to one trigger only"
    )


def test_empty_event_type(project: Path) -> None:
    assert error(function("handler: sample_functions/orders.py:create_order\nevents: [order.created, '']\n", "f")) == (
        "faasemu.yaml:4: functions.f.events: must be an event type, not ''"
    )


# --- errors: state --------------------------------------------------------------------------------


def test_state_with_two_kinds(project: Path) -> None:
    assert error("state:\n  sqlite: a.db\n  dir: files\nfunctions: {}\n") == (
        "faasemu.yaml:3: state: choose one of sqlite, postgres, dir or hooks, not sqlite and dir"
    )


def test_state_schema_missing(project: Path) -> None:
    assert error("state:\n  schema: schema.sql\nfunctions: {}\n") == (
        "faasemu.yaml:2: state.schema: schema.sql does not exist; paths are relative to the manifest's folder"
    )


def test_state_schema_needs_sqlite(project: Path) -> None:
    assert error("state:\n  dir: files\n  schema: schema.sql\nfunctions: {}\n") == (
        "faasemu.yaml:3: state.schema: only with state.sqlite or state.postgres (SQL applied to every fresh "
        "database), not with state.dir"
    )


def test_state_ignore_form(project: Path) -> None:
    assert error("state:\n  ignore: [updated_at]\nfunctions: {}\n") == (
        "faasemu.yaml:2: state.ignore: 'updated_at' is not table.column, as in orders.updated_at"
    )


def test_state_hooks_need_both(project: Path) -> None:
    assert error("state:\n  hooks: {reset: 'state_hooks:reset'}\nfunctions: {}\n") == (
        "faasemu.yaml:2: state.hooks: missing required key 'snapshot' (module:function)"
    )


def test_state_hook_form(project: Path) -> None:
    assert error("state:\n  hooks:\n    reset: state_hooks.py\n    snapshot: 'h:s'\nfunctions: {}\n") == (
        "faasemu.yaml:3: state.hooks.reset: 'state_hooks.py' is not module:function, as in state_hooks:reset"
    )


def test_option_value_must_be_one_of_the_names(project: Path) -> None:
    assert error(function("handler: sample_functions/orders.py:create_order\npayload: 2\n", "f")) == (
        "faasemu.yaml:4: functions.f.payload: 2 is not allowed for aws-lambda; use one of: v2, v1"
    )


def test_manifest_not_utf8(project: Path) -> None:
    Path("faasemu.yaml").write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest("faasemu.yaml")
    assert str(caught.value) == "faasemu.yaml: not UTF-8 text (invalid continuation byte)"


def test_env_values_keep_their_written_form(project: Path) -> None:
    manifest = load("env: {SINCE: 2024-01-01, ZIP: 02134, EMPTY: ''}\nfunctions:\n  a: {handler: app:main}\n")
    assert manifest.env == {"SINCE": "2024-01-01", "ZIP": "02134", "EMPTY": ""}


def test_queues_map_queue_names_to_event_types(tmp_path: Path) -> None:
    """`queues:` (docs/delivery.md#sqs-sends-become-events): validated names, a located error otherwise."""
    base = "functions:\n  f: {handler: app.py:handler}\n"
    (tmp_path / "app.py").write_text("def handler(event, context):\n    return None\n")
    path = tmp_path / "faasemu.yaml"
    path.write_text(base + "queues:\n  orders: sqs.Orders\n  pay.fifo: sqs.Pay\n")
    assert load_manifest(path, {}).queues == {"orders": "sqs.Orders", "pay.fifo": "sqs.Pay"}
    path.write_text(base)
    assert load_manifest(path, {}).queues == {}
    for text, line, expected in [
        ("queues:\n  'my queue': sqs.Orders\n", 4, "queues: 'my queue' is not an SQS queue name"),
        ("queues:\n  orders: [a]\n", 4, "queues.orders: must be the event type its messages become"),
        ("queues: [orders]\n", 3, "queues: must be a mapping like {orders: sqs.OrdersQueue}"),
    ]:
        path.write_text(base + text)
        with pytest.raises(ManifestError) as raised:
            load_manifest(path, {})
        assert raised.value.line == line and expected in str(raised.value), str(raised.value)
