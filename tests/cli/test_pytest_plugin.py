"""The pytest plugin, as a team's own test suite uses it (pytester runs a real pytest in a subprocess,
with the plugin loaded from its `pytest11` entry point; the fixture starts a real `faasemu up`)."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

MANIFEST = """\
    name: plugin-test
    state:
      sqlite: .faasemu/state.db
      schema: schema.sql
    functions:
      record:
        handler: app.py:record
        events: [order.placed]
      hello:
        handler: app.py:hello
        http: {path: /hello, methods: [GET]}
    """

APP = '''\
    import json, os, sqlite3, urllib.request

    def record(event, context):
        db = sqlite3.connect(os.environ["FAASEMU_STATE"])
        with db:
            db.execute("INSERT INTO orders (id) VALUES (?)", (event["detail"]["order"],))
        db.close()
        body = json.dumps({"order": event["detail"]["order"]}).encode()
        request = urllib.request.Request(os.environ["FAASEMU_SINK_URL"] + "/email", body,
                                         {"content-type": "application/json"}, method="POST")
        urllib.request.urlopen(request, timeout=5).close()

    def hello(event, context):
        return {"statusCode": 200, "body": "hi " + (event.get("queryStringParameters") or {}).get("name", "")}
    '''

TESTS = '''\
    import json, sqlite3, urllib.request
    import pytest

    def count(root):
        db = sqlite3.connect(root / ".faasemu" / "state.db")
        try:
            return db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
        finally:
            db.close()

    def test_an_event_reaches_its_handler(faasemu_up, pytestconfig):
        faasemu_up.post_event("order.placed", {"order": "o-1"})
        faasemu_up.wait_idle()
        assert [c["body"] for c in faasemu_up.sink_calls()] == [{"order": "o-1"}]
        assert [e["deliveries"][0]["status"] for e in faasemu_up.events()] == ["done"]

    def test_the_state_is_kept_between_tests(faasemu_up, pytestconfig):
        assert count(pytestconfig.rootpath) == 1

    @pytest.mark.faasemu_reset
    def test_a_reset_test_starts_clean(faasemu_up, pytestconfig):
        assert faasemu_up.events() == [] and faasemu_up.sink_calls() == []
        faasemu_up.post_event("order.placed", {"order": "o-2"}, id="fixed-id")
        faasemu_up.wait_idle()
        assert count(pytestconfig.rootpath) == 1

    def test_invoke_and_http(faasemu_up):
        assert faasemu_up.invoke("record", {"detail": {"order": "o-3"}}) is None
        with urllib.request.urlopen(faasemu_up.url + "/hello?name=ada", timeout=10) as answer:
            assert answer.read() == b"hi ada"
    '''


def test_the_faasemu_up_fixture_serves_the_project_for_a_whole_session(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", faasemu=textwrap.dedent(MANIFEST))
    pytester.makefile(".sql", schema="CREATE TABLE orders (id TEXT PRIMARY KEY);\n")
    pytester.makepyfile(app=textwrap.dedent(APP), test_orders=textwrap.dedent(TESTS))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_orders.py", timeout=180)
    result.assert_outcomes(passed=4)


def test_a_failing_handler_is_a_failing_test_with_its_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", faasemu=textwrap.dedent("""\
        functions:
          broken:
            handler: app.py:broken
        """))
    pytester.makepyfile(app="def broken(event, context):\n    raise ValueError('no stock for sku-1')\n",
                        test_broken="def test_it(faasemu_up):\n    faasemu_up.invoke('broken', {})\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_broken.py", timeout=180)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FaasemuError: broken failed*no stock for sku-1*"])


def test_the_readme_example_passes_against_the_sample_project(pytester: pytest.Pytester) -> None:
    """The README's pytest example, as written there, run beside a copy of the sample project."""
    import re
    import shutil
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    readme = (repo / "README.md").read_text()
    section = readme[readme.index("## Testing with pytest"):readme.index("## Runtimes")]
    example = re.search(r"```python\n(.*?)```", section, re.S)
    assert example is not None, "the README's pytest section has no python example"
    shutil.copy(repo / "faasemu.yaml", pytester.path / "faasemu.yaml")
    shutil.copytree(repo / "sample_functions", pytester.path / "sample_functions",
                    ignore=shutil.ignore_patterns("__pycache__", ".faasemu"))
    pytester.makepyfile(test_shop=example.group(1))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_shop.py", timeout=180)
    result.assert_outcomes(passed=2)


CHAOS_MANIFEST = """\
    name: chaos-plugin-test
    state:
      schema: schema.sql
    functions:
      credit:
        handler: bank.py:credit
        events: [account.credited]
      record:
        handler: bank.py:record
        events: [account.credited]
"""
BANK = '''\
import os, sqlite3


def credit(event, context):
    """Adds the amount on every delivery: a duplicate credits twice."""
    d = event["detail"]
    with sqlite3.connect(os.environ["FAASEMU_STATE"]) as db:
        db.execute("INSERT INTO balances VALUES (?, ?) ON CONFLICT (account) DO UPDATE SET amount = amount + "
                   "excluded.amount", (d["account"], d["amount"]))


def record(event, context):
    """Keyed by the event id: a duplicate changes nothing."""
    with sqlite3.connect(os.environ["FAASEMU_STATE"]) as db:
        db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (event["id"],))
'''
CHAOS_EVENTS = "".join(
    f'{{"type": "account.credited", "id": "c{n}", "data": {{"account": "{a}", "amount": {n + 1}}}}}\n'
    for n, a in enumerate(["alice", "bob", "alice"]))


def chaos_project(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", faasemu=textwrap.dedent(CHAOS_MANIFEST))
    pytester.makefile(".sql", schema="CREATE TABLE balances (account TEXT PRIMARY KEY, amount INTEGER);\n"
                                     "CREATE TABLE seen (id TEXT PRIMARY KEY);\n")
    pytester.makepyfile(bank=BANK)
    pytester.makefile(".jsonl", events=CHAOS_EVENTS)


def test_faasemu_chaos_option_turns_verdicts_into_test_items(pytester: pytest.Pytester) -> None:
    chaos_project(pytester)
    pytester.makepyfile(test_nothing="def test_own():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_nothing.py", "--faasemu-chaos",
                                           "events.jsonl", "--faasemu-chaos-runs", "3", "--faasemu-seed", "7",
                                           "-rA", timeout=300)
    result.assert_outcomes(passed=4, failed=1)  # the team's own test, record x2, credit order-tolerant; credit idempotent
    out = result.stdout.str()
    assert "FAILED" in out and "faasemu-chaos[credit-idempotent]" in out, out
    assert "credit is not idempotent" in out and "reproduce: faasemu chaos" in out and "--seed 7" in out, out
    assert "PASSED" in out and "faasemu-chaos[record-idempotent]" in out, out


def test_faasemu_chaos_fixture_runs_a_campaign_from_a_test(pytester: pytest.Pytester) -> None:
    chaos_project(pytester)
    pytester.makepyfile(test_bank=textwrap.dedent("""\
        import pytest

        def test_record_survives_duplicates(faasemu_chaos):
            faasemu_chaos("events.jsonl", runs=0, seed=3, only=("record",)).assert_ok("record")

        def test_credit_does_not(faasemu_chaos):
            with pytest.raises(AssertionError, match="credit is not idempotent"):
                faasemu_chaos("events.jsonl", runs=0, seed=3, only=("credit",)).assert_ok("credit")
    """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_bank.py", timeout=300)
    result.assert_outcomes(passed=2)
