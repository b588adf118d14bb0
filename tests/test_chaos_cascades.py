"""Real `faasemu chaos` campaigns on the cascade scenario (issue 10 item 5, docs/verification.md#cascades).

Producers emit `invoice.requested` (POST to $FAASEMU_EVENTS_URL) on `order.placed`, and the campaign
delivers it onward to the consumers within every run, perturbed like any delivery:

    place-order          deterministic ids ("invoice-" + input id)     passes: a re-emission is the same event
    place-order-random   no id: the broker gives one per attempt        idempotency, its own duplicate
    invoice-dedup        dedup on (source, id) in one statement         passes, although its producer emits twice
    invoice-naive        an invoice row per delivery                    idempotency, named by its path

Verdicts are the same for several seeds and with `--runs 0`; counterexamples name downstream
deliveries by path, and `--replay-cex` finds them again.
"""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import run_cli
from scenario_campaigns import CAMPAIGN_TIMEOUT, campaigns, verdicts

EXPECTED: dict[str, tuple[bool, bool | None, list[str]]] = {
    # function: (idempotent, order_tolerant, violation kinds)
    "place-order": (True, True, []),
    "place-order-random": (False, True, ["idempotency"]),
    "invoice-dedup": (True, True, []),
    "invoice-naive": (False, True, ["idempotency"]),
}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory):
    run = campaigns(tmp_path_factory)
    return lambda seed, *extra, copy=0: run("cascade", seed, *extra, copy=copy)


# A second seed and the probes alone are checked on the v2 scenarios (tests/test_chaos_v2_scenarios.py),
# within CI's time.
@pytest.mark.parametrize("seed, extra", [(11, ())], ids=["seed11"])
def test_verdicts_are_the_expected_ones_for_several_seeds_and_probes_alone(campaign, seed, extra) -> None:
    c = campaign(seed, *extra)
    assert verdicts(c) == EXPECTED, c.out
    assert c.proc.returncode == 1, c.out


def test_the_report_counts_the_downstream_deliveries(campaign) -> None:
    c = campaign(11)
    # 3 orders to 2 producers; each of the 6 emits one invoice request, delivered to 2 consumers
    assert (c.report["events"], c.report["deliveries"], c.report["downstream_deliveries"]) == (3, 18, 12)
    assert {name: entry["deliveries"] for name, entry in c.report["functions"].items()} == {
        "place-order": 3, "place-order-random": 3, "invoice-dedup": 6, "invoice-naive": 6}
    assert "cascade_limit" not in c.report


def test_a_producer_that_relies_on_broker_ids_is_caught_by_its_own_duplicate(campaign) -> None:
    c = campaign(11)
    found = c.violation("place-order-random", "idempotency")
    steps = found["schedule"]
    assert [s["function"] for s in steps] == ["place-order-random"] * 2, steps
    assert steps[0]["event"] == steps[1]["event"] and steps[1]["tags"] == ["duplicate"]
    assert found["diff"]["emitted invoice.requested"] == [1, 2]  # a second, different invoice request
    # the deduplicating consumer inserted a second invoice: that is its producer's fault, not its own
    assert any(key.startswith("invoices_dedup[") for key in found["diff"]), found["diff"]
    assert "deterministic id" in found["hint"]


def test_a_naive_consumer_answers_for_its_own_duplicate_named_by_its_path(campaign) -> None:
    c = campaign(11)
    found = c.violation("invoice-naive", "idempotency")
    steps = found["schedule"]
    consumer = [s for s in steps if s["function"] == "invoice-naive"]
    assert len(consumer) == 2 and consumer[1]["tags"] == ["duplicate"], steps
    parent, _, number = consumer[0]["event"].rpartition(">")
    assert number == "0" and parent.split(":")[0].startswith("order-"), consumer  # e.g. order-1:place-order>0
    producer = parent.split(":")[1]
    assert [s for s in steps if s["function"] != "invoice-naive"] == [
        {"event": parent.split(":")[0], "function": producer}]  # the parent, kept: its child needs it
    order = parent.split(":")[0][-1]
    source = "orders" if producer == "place-order" else "orders-random"
    amount = {"1": 20, "2": 5, "3": 12}[order]
    assert found["diff"] == {f"invoices_naive[source={source},order_id=o-{order},amount={amount}]": [1, 2]}
    assert f"{consumer[0]['event']}  invoice.requested" in c.proc.stdout  # the console names the path too


def test_the_counterexample_replays_by_path_and_passes_once_the_consumer_deduplicates(campaign, tmp_path) -> None:
    c = campaign(11)
    cex = c.violation("invoice-naive", "idempotency")["counterexample"]
    again = run_cli("chaos", "--replay-cex", cex, cwd=c.root, timeout=CAMPAIGN_TIMEOUT)
    assert again.returncode == 1, again.stdout + again.stderr
    assert ">0 -> invoice-naive  [duplicate]" in again.stdout

    fixed = tmp_path / "fixed"
    shutil.copytree(c.root, fixed)
    manifest = (fixed / "faasemu.yaml").read_text()
    (fixed / "faasemu.yaml").write_text(manifest.replace("handler: invoice.py:naive", "handler: invoice.py:dedup"))
    replay = run_cli("chaos", "--replay-cex", cex, cwd=fixed, timeout=CAMPAIGN_TIMEOUT)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "no longer reproduces" in replay.stdout


def test_the_same_seed_gives_the_same_report(campaign) -> None:
    first, again = campaign(11), campaign(11, copy=1)
    assert json.dumps(first.report, sort_keys=True) == json.dumps(again.report, sort_keys=True)


def test_only_a_consumer_reached_by_emitted_events_alone_is_checked_as_in_the_full_campaign(campaign) -> None:
    full, only = campaign(11), campaign(11, "--only", "invoice-naive")
    assert list(only.report["functions"]) == ["invoice-naive"], only.out
    assert only.violation("invoice-naive", "idempotency")["schedule"] == \
        full.violation("invoice-naive", "idempotency")["schedule"]
