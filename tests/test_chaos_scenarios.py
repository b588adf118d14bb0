"""Real `faasemu chaos` campaigns on a corpus of scenario apps (tests/scenarios/), each with a known verdict.

Every scenario folder is a project as a user writes it (`faasemu.yaml`, plain Lambda handlers using
only the standard library, `schema.sql`, `events.jsonl`). It is copied into a temporary folder
(campaigns write `.faasemu/`) and checked with `faasemu chaos events.jsonl --seed S --runs 10`; the
tests assert on the JSON report (docs/verification.md#reports), the JUnit file, the console and the
counterexample files. Campaigns are cached per (scenario, seed, options, copy) so tests share one run.

    counter      credit on every delivery                 not idempotent (accounts[id=alice].balance [20, 40])
    dedup        credit once per event id                 idempotent and order-tolerant under 3 seeds
    lww          last delivery wins / highest version     not order-tolerant / passes
    cart         add and remove in two functions          order violation, attributed (docs/verification.md#attribution)
    email        email on every delivery / once per user  not idempotent (sink email [N, N+1]) / passes
    nondet       uuid4 + time.time() beside keyed data    passes, those columns nondeterministic /
                 a new row with a random id per delivery  not idempotent (the extra row is caught)
    sqs_attempt  dedup on receiptHandle / aws_request_id  not idempotent (per-attempt ids); on messageId: passes
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from conftest import run_cli

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
SEED = 11
RUNS = 10
CAMPAIGN_TIMEOUT = 180.0


@dataclass
class Campaign:
    scenario: str
    seed: int
    root: Path
    proc: subprocess.CompletedProcess[str]
    report: dict[str, Any]

    @property
    def out(self) -> str:
        return self.proc.stdout + self.proc.stderr

    def fn(self, name: str) -> dict[str, Any]:
        return self.report["functions"][name]

    def violation(self, name: str, kind: str) -> dict[str, Any]:
        found = [v for v in self.fn(name)["violations"] if v["kind"] == kind]
        assert len(found) == 1, f"{name}: expected one {kind} violation, got {self.fn(name)['violations']}\n{self.out}"
        return found[0]

    def junit(self) -> ElementTree.Element:
        return ElementTree.parse(self.root / "junit.xml").getroot()


_CACHE: dict[tuple[Any, ...], Campaign] = {}


def copy_scenario(scenario: str, dest: Path) -> Path:
    shutil.copytree(SCENARIOS / scenario, dest, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", ".faasemu", "report.json", "junit.xml"))
    return dest


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory):
    """`campaign(scenario, seed=11, *extra, copy=0)`: the campaign run once per key, in a fresh copy."""

    def run(scenario: str, seed: int = SEED, *extra: str, copy: int = 0) -> Campaign:
        key = (scenario, seed, extra, copy)
        if key not in _CACHE:
            root = copy_scenario(scenario, tmp_path_factory.mktemp(f"{scenario}-{seed}"))
            proc = run_cli("chaos", "events.jsonl", "--seed", str(seed), "--runs", str(RUNS), "--json", "report.json",
                           "--junit", "junit.xml", *extra, cwd=root, timeout=CAMPAIGN_TIMEOUT)
            assert proc.returncode in (0, 1), f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            report_path = root / "report.json"
            assert report_path.exists(), f"--json report.json not written\n{proc.stdout}\n{proc.stderr}"
            _CACHE[key] = Campaign(scenario, seed, root, proc, json.loads(report_path.read_text()))
        return _CACHE[key]

    return run


def schedule(violation: dict[str, Any]) -> list[tuple[str, str]]:
    return [(step["event"], step["function"]) for step in violation["schedule"]]


def tags(violation: dict[str, Any]) -> list[list[str]]:
    return [step.get("tags", []) for step in violation["schedule"]]


def check_reproduce(command: str, seed: int, function: str) -> None:
    """`faasemu chaos events.jsonl ... --seed S --only FN` with the campaign's non-default --runs."""
    parts = shlex.split(command)
    assert parts[:3] == ["faasemu", "chaos", "events.jsonl"], command
    assert parts[-4:] == ["--seed", str(seed), "--only", function], command
    assert parts[parts.index("--runs") + 1] == str(RUNS), command


# --- 1. counter: credit on every delivery -----------------------------------------------------------


def test_counter_is_not_idempotent_with_a_minimal_duplicate(campaign) -> None:
    c = campaign("counter")
    assert c.proc.returncode == 1, c.out
    assert (c.report["seed"], c.report["runs"], c.report["events"]) == (SEED, RUNS, 4)
    assert c.report["nondeterministic"] == []
    credit = c.fn("credit")
    assert (credit["idempotent"], credit["order_tolerant"], credit["nondeterministic_outcome"]) == (False, True, False)
    assert [v["kind"] for v in credit["violations"]] == ["idempotency"]
    found = c.violation("credit", "idempotency")
    assert schedule(found) == [("events-1", "credit"), ("events-1", "credit")]
    assert tags(found)[0] == [] and "duplicate" in tags(found)[1]
    assert found["diff"] == {"accounts[id=alice].balance": [20, 40]}
    check_reproduce(found["reproduce"], SEED, "credit")


def test_a_function_no_event_reaches_is_not_exercised(campaign) -> None:
    c = campaign("counter")
    debit = c.fn("debit")
    assert (debit["idempotent"], debit["order_tolerant"], debit["violations"]) == (None, None, [])
    row = r"^debit\s+– not exercised\s+– not exercised\s+0\s+no event reaches it"
    assert re.search(row, c.proc.stdout, re.M), c.out
    cases = {(case.get("classname"), case.get("name")): case for case in c.junit().iter("testcase")}
    assert cases[("faasemu.debit", "idempotent")].find("skipped") is not None
    assert cases[("faasemu.debit", "order_tolerant")].find("skipped") is not None


def test_counter_console_shows_verdicts_counterexample_diff_and_reproduce_line(campaign) -> None:
    c = campaign("counter")
    out = c.proc.stdout
    assert f"seed {SEED}" in out.splitlines()[0]
    assert re.search(r"^function\s+idempotent\s+order-tolerant\s+deliveries", out, re.M), out
    assert re.search(r"^credit\s+✗ no\s+✓ yes\s+4\b", out, re.M), out
    assert "✗ credit is not idempotent" in out
    assert "Minimal counterexample (2 deliveries" in out
    assert re.search(r'1\. events-1  account\.credited \{"account": "alice", "amount": 20\}\s+-> credit', out), out
    assert re.search(r"2\. events-1  \(again, duplicate\)\s+-> credit", out), out
    assert re.search(r"accounts\[id=alice\]\.balance\s+20 -> 40", out), out
    reproduce = re.search(r"Reproduce: (faasemu chaos .*)$", out, re.M)
    assert reproduce, out
    check_reproduce(reproduce.group(1).strip(), SEED, "credit")
    assert "faasemu chaos --replay-cex .faasemu/cex/credit-idempotency.json" in out
    assert "exit 1" in out
    cex = json.loads((c.root / ".faasemu" / "cex" / "credit-idempotency.json").read_text())
    assert (cex["function"], cex["kind"], cex["seed"]) == ("credit", "idempotency", SEED)
    assert cex["diff"] == {"accounts[id=alice].balance": [20, 40]}


FIXED_CREDIT = '''
import os
import sqlite3


def handler(event, context):
    detail = event["detail"]
    db = sqlite3.connect(os.environ["FAASEMU_STATE"])
    try:
        db.execute("CREATE TABLE IF NOT EXISTS processed (event_id TEXT PRIMARY KEY)")
        with db:
            if db.execute("INSERT OR IGNORE INTO processed VALUES (?)", (event["id"],)).rowcount:
                db.execute(
                    "INSERT INTO accounts (id, balance) VALUES (?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET balance = balance + excluded.balance",
                    (detail["account"], detail["amount"]),
                )
    finally:
        db.close()


def debit(event, context):
    raise NotImplementedError
'''


def test_replay_cex_fails_while_the_bug_is_there_and_passes_once_fixed(campaign, tmp_path: Path) -> None:
    c = campaign("counter")
    project = tmp_path / "counter"
    shutil.copytree(c.root, project)
    cex = ".faasemu/cex/credit-idempotency.json"
    broken = run_cli("chaos", "--replay-cex", cex, cwd=project)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "the violation reproduces" in broken.stdout
    assert re.search(r"accounts\[id=alice\]\.balance\s+20 -> 40", broken.stdout), broken.stdout
    # The usual fix: the event id recorded in the same transaction as the credit (its table created
    # by the handler, so the schema, and with it the counterexample's baseline, stays as it was).
    (project / "credit.py").write_text(FIXED_CREDIT)
    # The fixed handler really works (a crashing handler would also leave equal, empty states).
    invoked = run_cli("invoke", "credit", "--data", json.dumps({"id": "e-1", "detail": {"account": "a", "amount": 3}}),
                      cwd=project)
    assert invoked.returncode == 0, invoked.stdout + invoked.stderr
    fixed = run_cli("chaos", "--replay-cex", cex, cwd=project)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "no longer reproduces" in fixed.stdout


# --- 2. dedup: the counter with a processed-events table ------------------------------------------


@pytest.mark.parametrize("seed", [SEED, 12, 13])
def test_dedup_counter_passes_under_several_seeds(campaign, seed: int) -> None:
    c = campaign("dedup", seed)
    assert c.proc.returncode == 0, c.out
    # Line 5 repeats line 1's id and source: the same event again, one more delivery (docs/delivery.md#attempt-numbers).
    assert (c.report["seed"], c.report["events"], c.report["deliveries"]) == (seed, 5, 5)
    credit = c.fn("credit")
    assert (credit["idempotent"], credit["order_tolerant"], credit["violations"]) == (True, True, []), c.out
    assert re.search(r"^credit\s+✓ yes\s+✓ yes\s+5\b", c.proc.stdout, re.M), c.out
    assert "no violation found" in c.proc.stdout and "exit 0" in c.proc.stdout
    cex = c.root / ".faasemu" / "cex"
    assert not cex.exists() or not any(cex.iterdir())
    suite = c.junit()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "0", "0")


# --- 3. last writer wins: by arrival vs by version ------------------------------------------------


def test_last_delivery_wins_is_not_order_tolerant_but_a_version_check_is(campaign) -> None:
    c = campaign("lww")
    assert c.proc.returncode == 1, c.out
    arrival = c.fn("profile-arrival")
    assert (arrival["idempotent"], arrival["order_tolerant"], arrival["nondeterministic_outcome"]) == \
        (True, False, False)
    found = c.violation("profile-arrival", "order")
    # Two deliveries, the newer update first: nothing duplicated, nothing of profile-version.
    assert schedule(found) == [("events-3", "profile-arrival"), ("events-1", "profile-arrival")], found
    assert all("duplicate" not in t and "redelivery" not in t for t in tags(found))
    assert found["diff"] == {"profiles_by_arrival[user_id=u1].email": ["ann@new.example", "ann@old.example"]}
    check_reproduce(found["reproduce"], SEED, "profile-arrival")
    version = c.fn("profile-version")
    assert (version["idempotent"], version["order_tolerant"], version["violations"]) == (True, True, [])
    assert re.search(r"^profile-arrival\s+✓ yes\s+✗ no\s+3\b", c.proc.stdout, re.M), c.out
    assert re.search(r"^profile-version\s+✓ yes\s+✓ yes\s+3\b", c.proc.stdout, re.M), c.out
    assert "✗ profile-arrival is not order-tolerant" in c.proc.stdout


# --- 4. add and remove across two functions -------------------------------------------------------


ADD, REMOVE = ("events-1", "cart-add"), ("events-3", "cart-remove")


def test_add_remove_across_two_functions_is_an_attributed_order_violation(campaign) -> None:
    c = campaign("cart")
    assert c.proc.returncode == 1, c.out
    blamed = [name for name in ("cart-add", "cart-remove") if c.fn(name)["violations"]]
    assert blamed, c.out
    for name in ("cart-add", "cart-remove"):
        entry = c.fn(name)
        assert entry["idempotent"] is True, (name, entry)  # INSERT OR IGNORE and DELETE: duplicates are harmless
        assert entry["order_tolerant"] is (name not in blamed), (name, entry)
    for name in blamed:
        found = c.violation(name, "order")
        assert [v["kind"] for v in c.fn(name)["violations"]] == ["order"]
        # The remove of the book before its add, nothing else; the book stays in the cart.
        assert schedule(found) == [REMOVE, ADD], found
        assert found["diff"] == {"cart_items[cart=c1,item=book]": [None, {"cart": "c1", "item": "book"}]}
        moved = {step["function"] for step in found["schedule"] if "moved" in step.get("tags", [])}
        # Never blamed only because its deliveries moved: the blamed function's own delivery is perturbed ...
        assert name in moved, found
        # ... and when both functions' deliveries had to move, neither alone suffices: both are to blame.
        if moved == {"cart-add", "cart-remove"}:
            assert set(blamed) == {"cart-add", "cart-remove"}, c.out
        check_reproduce(found["reproduce"], SEED, name)
        assert (c.root / found["counterexample"]).exists()
        assert f"✗ {name} is not order-tolerant" in c.proc.stdout


@pytest.mark.parametrize(("scenario", "cex"), [("cart", "cart-add-order.json"), ("cart", "cart-remove-order.json"),
                                              ("lww", "profile-arrival-order.json")])
def test_replay_cex_reproduces_order_violations(campaign, scenario: str, cex: str) -> None:
    c = campaign(scenario)
    proc = run_cli("chaos", "--replay-cex", f".faasemu/cex/{cex}", cwd=c.root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "the violation reproduces" in proc.stdout
    found = json.loads((c.root / ".faasemu" / "cex" / cex).read_text())
    for key in found["diff"]:
        assert key in proc.stdout, (key, proc.stdout)


def test_only_reports_only_that_function_with_the_full_campaigns_verdicts(campaign) -> None:
    full = campaign("cart")
    only = campaign("cart", SEED, "--only", "cart-remove")
    assert list(only.report["functions"]) == ["cart-remove"], only.report
    assert only.proc.returncode == 1, only.out
    mine, theirs = only.fn("cart-remove"), full.fn("cart-remove")
    for key in ("idempotent", "order_tolerant", "nondeterministic_outcome", "deliveries"):
        assert mine[key] == theirs[key], (key, mine, theirs)
    assert not re.search(r"^cart-add\s", only.proc.stdout, re.M), only.out
    assert "cart-add is not" not in only.proc.stdout
    assert {case.get("classname") for case in only.junit().iter("testcase")} == {"faasemu.cart-remove"}
    for found in mine["violations"]:
        check_reproduce(found["reproduce"], SEED, "cart-remove")


def test_only_gives_the_full_campaigns_counterexamples(campaign) -> None:
    """docs/verification.md#the-campaign: `--only FN` ... "so its verdicts and counterexamples are those of
the full campaign".

    The `Reproduce:` line of the full report is exactly this `--only` command, so what it prints must be
    the counterexample the full report showed (schedule with its tags, diff).
    """
    full = campaign("cart")
    only = campaign("cart", SEED, "--only", "cart-remove")
    strip = lambda entry: [(v["kind"], v["schedule"], v["diff"]) for v in entry["violations"]]  # noqa: E731
    assert strip(only.fn("cart-remove")) == strip(full.fn("cart-remove")), (only.out, full.out)


# --- 5. effects: emails through the sink ----------------------------------------------------------


def test_an_email_on_every_delivery_is_not_idempotent_once_per_user_is(campaign) -> None:
    c = campaign("email")
    assert c.proc.returncode == 1, c.out
    every = c.fn("welcome-email")
    assert (every["idempotent"], every["order_tolerant"]) == (False, True), c.out
    found = c.violation("welcome-email", "idempotency")
    assert schedule(found) == [("events-1", "welcome-email"), ("events-1", "welcome-email")]
    assert list(found["diff"]) == ["sink email"], found["diff"]
    before, after = found["diff"]["sink email"]
    assert after == before + 1, found["diff"]
    assert re.search(rf"sink email\s+{before} in order, {after} with the duplicate", c.proc.stdout), c.out
    once = c.fn("welcome-email-once")
    assert (once["idempotent"], once["order_tolerant"], once["violations"]) == (True, True, []), c.out
    assert c.report["nondeterministic"] == []


def test_only_a_correct_function_exits_0_though_another_one_is_not(campaign) -> None:
    c = campaign("email", SEED, "--only", "welcome-email-once")
    assert c.proc.returncode == 0, c.out
    assert list(c.report["functions"]) == ["welcome-email-once"]
    once = c.fn("welcome-email-once")
    assert (once["idempotent"], once["order_tolerant"], once["violations"]) == (True, True, []), c.out
    assert "no violation found" in c.proc.stdout and "exit 0" in c.proc.stdout
    assert not (c.root / ".faasemu" / "cex").exists()


def test_only_an_unknown_function_is_a_usage_error(tmp_path: Path) -> None:
    project = copy_scenario("email", tmp_path / "email")
    proc = run_cli("chaos", "events.jsonl", "--only", "welcome-emails", cwd=project)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--only welcome-emails" in proc.stderr and "did you mean 'welcome-email'" in proc.stderr


# --- 6. random ids and clocks ---------------------------------------------------------------------


def test_random_ids_and_clocks_are_masked_but_an_extra_random_row_is_caught(campaign) -> None:
    c = campaign("nondet")
    assert c.proc.returncode == 1, c.out
    assert c.report["nondeterministic"] == ["audit_log.id", "audit_log.logged_at", "users.created_at",
                                            "users.request_uuid"]
    register = c.fn("register")
    assert (register["idempotent"], register["order_tolerant"], register["nondeterministic_outcome"],
            register["violations"]) == (True, True, False, []), c.out
    audit = c.fn("audit")
    assert (audit["idempotent"], audit["nondeterministic_outcome"]) == (False, False), c.out
    assert audit["order_tolerant"] is True
    found = c.violation("audit", "idempotency")
    assert schedule(found) == [("events-1", "audit"), ("events-1", "audit")]
    # The id is random, so the rows are keyed by what is left of them.
    assert found["diff"] == {"audit_log[user_id=u1,action=registered]": [1, 2]}
    assert ("nondeterministic columns left out of comparisons: audit_log.id, audit_log.logged_at, users.created_at, "
            "users.request_uuid") in c.proc.stdout


# --- 7. deduplicating on per-attempt ids ----------------------------------------------------------


@pytest.mark.parametrize(("function", "counter"), [("by-receipt-handle", "receipt-handle"),
                                                   ("by-request-id", "request-id")])
def test_deduplicating_on_a_per_attempt_id_is_not_idempotent(campaign, function: str, counter: str) -> None:
    c = campaign("sqs_attempt")
    assert c.proc.returncode == 1, c.out
    # receiptHandle and aws_request_id are a pure function of (seed, function, event, attempt): the two
    # baselines agree, so nothing is masked and the stored dedup keys are compared too.
    assert c.report["nondeterministic"] == []
    entry = c.fn(function)
    assert (entry["idempotent"], entry["nondeterministic_outcome"]) == (False, False), c.out
    # A retry (injected failure, then redelivery) of one delivery changes the stored per-attempt id:
    # an at-least-once problem, never reported as an order violation (nothing was reordered).
    assert entry["order_tolerant"] is True, c.out
    found = c.violation(function, "idempotency")
    assert schedule(found) == [("events-1", function), ("events-1", function)]
    assert found["diff"][f"sold[counter={counter},sku=a1].quantity"] == [2, 4], found["diff"]


def test_deduplicating_on_the_sqs_message_id_passes(campaign) -> None:
    c = campaign("sqs_attempt")
    entry = c.fn("by-message-id")
    assert (entry["idempotent"], entry["order_tolerant"], entry["violations"]) == (True, True, []), c.out


# --- reports, determinism, exit codes -------------------------------------------------------------


VIOLATING = ["counter", "lww", "cart", "email", "nondet", "sqs_attempt"]


@pytest.mark.parametrize("scenario", VIOLATING)
def test_every_violation_is_on_the_console_with_its_diff_reproduce_line_and_cex_file(campaign, scenario: str) -> None:
    c = campaign(scenario)
    out = c.proc.stdout
    assert c.proc.returncode == 1 and "exit 1" in out, c.out
    marks = {True: "✓ yes", False: "✗ no", None: "– not exercised"}
    for name, entry in c.report["functions"].items():
        verdicts = rf"{marks[entry['idempotent']]}\s+{marks[entry['order_tolerant']]}"
        row = rf"^{re.escape(name)}\s+{verdicts}\s+{entry['deliveries']}\b"
        assert re.search(row, out, re.M), (row, out)
        for found in entry["violations"]:
            what = "idempotent" if found["kind"] == "idempotency" else "order-tolerant"
            assert f"✗ {name} is not {what}" in out
            assert f"Reproduce: {found['reproduce']}" in out
            check_reproduce(found["reproduce"], SEED, name)
            for key in found["diff"]:
                assert key in out, (key, out)
            path = c.root / ".faasemu" / "cex" / f"{name}-{found['kind']}.json"
            assert found["counterexample"] == f".faasemu/cex/{name}-{found['kind']}.json"
            assert path.exists(), path
            assert json.loads(path.read_text())["schedule"] == found["schedule"]
    assert any(entry["violations"] for entry in c.report["functions"].values())


@pytest.mark.parametrize("scenario", VIOLATING + ["dedup"])
def test_junit_has_one_testcase_per_function_and_property(campaign, scenario: str) -> None:
    c = campaign(scenario)
    suite = c.junit()
    cases = list(suite.iter("testcase"))
    expected = [(f"faasemu.{name}", prop) for name in c.report["functions"]
                for prop in ("idempotent", "order_tolerant")]
    assert [(case.get("classname"), case.get("name")) for case in cases] == expected
    failures = 0
    for case in cases:
        value = c.fn(case.get("classname").removeprefix("faasemu."))[case.get("name")]
        assert (case.find("failure") is not None) == (value is False), ElementTree.tostring(case)
        assert (case.find("skipped") is not None) == (value is None), ElementTree.tostring(case)
        failures += value is False
    assert (suite.get("tests"), suite.get("failures")) == (str(len(expected)), str(failures))


def test_same_seed_same_report(campaign) -> None:
    first = campaign("cart")
    again = campaign("cart", copy=1)
    assert again.root != first.root
    assert (again.root / "report.json").read_bytes() == (first.root / "report.json").read_bytes()
    assert (again.root / "junit.xml").read_bytes() == (first.root / "junit.xml").read_bytes()
    cex = sorted(p.name for p in (first.root / ".faasemu" / "cex").iterdir())
    assert cex and cex == sorted(p.name for p in (again.root / ".faasemu" / "cex").iterdir())
    for name in cex:
        cex_file = Path(".faasemu") / "cex" / name
        assert (again.root / cex_file).read_bytes() == (first.root / cex_file).read_bytes()


@pytest.mark.parametrize(("lines", "where", "reason"), [
    (['{"type": "account.credited", "data": {"account": "a", "amount": 1}}', "",
      '{"type": "account.credited", "data": {"account": "a"'], "events.jsonl:3", "not valid JSON"),
    (['{"type": "account.credited", "data": {"account": "a", "amount": 1}}', '{"data": {"account": "a"}}'],
     "events.jsonl:2", "missing required attribute 'type'"),
])
def test_a_malformed_events_file_exits_2_naming_file_and_line(tmp_path: Path, lines: list[str], where: str,
                                                              reason: str) -> None:
    project = copy_scenario("counter", tmp_path / "counter")
    (project / "events.jsonl").write_text("\n".join(lines) + "\n")
    proc = run_cli("chaos", "events.jsonl", "--seed", "1", "--runs", "1", "--json", "report.json", cwd=project)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{where}: {reason}" in proc.stdout + proc.stderr
    assert not (project / ".faasemu" / "cex").exists()  # stopped before any delivery
