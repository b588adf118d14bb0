"""Real `faasemu chaos` campaigns on the chaos v2 scenario apps (issue 10, docs/verification.md#kinds).

Each scenario has faulty handlers and a correct twin that must pass, on more than one runtime:

    payments      SELECT, charge, INSERT (racy)                  overlap: both copies charge
                  one transaction, charge without a key          crash: killed after the charge, charged again
                  one transaction + Idempotency-Key              passes
    memory_dedup  a module-level set of seen ids (aws-lambda,    instance: the copy on another instance
                  openfaas) / the id in a table (kubeless)       passes
    status        last write wins, no order key                  order
                  the same with `order_key: data.order`          passes (aws-lambda and kubeless)

The verdicts must be the same for several seeds and with `--runs 0` (probes alone), and the same
seed must give the same report (the overlap reproduction counts aside).
"""

from __future__ import annotations

import json

import pytest
from scenario_campaigns import Campaign, campaigns, verdicts

EXPECTED: dict[str, dict[str, tuple[bool, bool | None, list[str]]]] = {
    # function: (idempotent, order_tolerant, violation kinds)
    "payments": {
        "charge-racy": (False, True, ["overlap"]),
        "record-last": (False, True, ["crash"]),
        "charge-once": (True, True, []),
    },
    "memory_dedup": {
        "credit-memory": (False, True, ["instance"]),
        "credit-memory-openfaas": (False, True, ["instance"]),
        "credit-table": (True, True, []),
    },
    "status": {
        "status": (True, False, ["order"]),
        "status-keyed": (True, True, []),
        "status-kubeless": (True, True, []),
    },
}


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory):
    return campaigns(tmp_path_factory)


# Every scenario with random runs; a second seed and the probes alone where the random runs decide
# most (memory_dedup: redeliveries on another instance; the batch scenario below too), within CI's
# 15 minutes: a campaign here costs 10-20 s, mostly probes and shrinking.
RUNS_OF = [(scenario, 11, ()) for scenario in sorted(EXPECTED)] + [
    ("memory_dedup", 11, ("--runs", "0")), ("memory_dedup", 4, ())]


@pytest.mark.parametrize("scenario, seed, extra", RUNS_OF,
                         ids=[f"{s}-seed{n}{'-probes-only' if e else ''}" for s, n, e in RUNS_OF])
def test_verdicts_are_the_expected_ones_for_several_seeds_and_probes_alone(campaign, scenario, seed, extra) -> None:
    c = campaign(scenario, seed, *extra)
    assert verdicts(c) == EXPECTED[scenario], c.out
    assert c.proc.returncode == 1, c.out


def test_an_overlap_race_is_two_deliveries_started_together_and_confirmed(campaign) -> None:
    c = campaign("payments", 11)
    found = c.violation("charge-racy", "overlap")
    steps = found["schedule"]
    assert [(s["event"], s["function"]) for s in steps] == [(steps[0]["event"], "charge-racy")] * 2
    assert "overlap" in steps[0]["tags"] and "overlap" in steps[1]["tags"]
    failed, _, reruns = found["reproduced"].partition(" of ")
    assert int(failed) >= 1 and reruns.startswith("5"), found["reproduced"]
    assert found["diff"] == {"sink payment-racy": [1, 2]}
    assert "ON CONFLICT DO NOTHING" in found["hint"]
    assert "overlapping duplicates" in c.proc.stdout


def test_a_crash_after_the_charge_is_reported_with_the_step_it_hit(campaign) -> None:
    c = campaign("payments", 11)
    found = c.violation("record-last", "crash")
    assert found["interrupted"] == "after the call to sink payment-last", found
    steps = found["schedule"]
    assert len(steps) == 2 and steps[0]["event"] == steps[1]["event"]
    assert any(t.startswith("crash after step 1") for t in steps[0]["tags"]), steps
    assert "redelivery" in steps[1]["tags"]
    assert found["diff"] == {"sink payment-last": [1, 2]}
    assert "Idempotency-Key" in found["hint"]
    assert "Killed after the call to sink payment-last" in c.proc.stdout


def test_in_memory_dedup_fails_with_the_copy_on_another_instance(campaign) -> None:
    c = campaign("memory_dedup", 11)
    for name in ("credit-memory", "credit-memory-openfaas"):
        found = c.violation(name, "instance")
        steps = found["schedule"]
        assert len(steps) == 2 and "other instance" in steps[1]["tags"], steps
        assert "not in memory" in found["hint"]


def test_an_order_key_is_reported_with_its_unordered_events(campaign) -> None:
    c = campaign("status", 11)
    keyed = c.report["functions"]["status-keyed"]
    assert keyed["order_key"] == "data.order"
    assert keyed["unordered_events"] == 1  # s-6 has no data.order
    assert "order_key" not in c.report["functions"]["status"]


def test_the_same_seed_gives_the_same_report_overlap_counts_aside(campaign) -> None:
    def without_counts(c: Campaign) -> str:
        report = json.loads(json.dumps(c.report))
        for entry in report["functions"].values():
            for violation in entry["violations"]:
                violation.pop("reproduced", None)
        return json.dumps(report, sort_keys=True)

    first, again = campaign("payments", 11), campaign("payments", 11, copy=1)
    assert without_counts(first) == without_counts(again)


# --- batches (SQS): tests/scenarios/batch ----------------------------------------------------------

BATCH = {"charge-batch": (False, True, ["crash", "batch"]), "charge-partial": (True, True, [])}


@pytest.mark.parametrize("extra", [(), ("--runs", "0")], ids=["seed11", "probes-only"])
def test_a_batch_retry_that_charges_again_is_a_batch_violation_and_partial_responses_pass(campaign, extra) -> None:
    """charge-batch commits a whole batch at once: a record that fails on its first try fails the
    invocation, and the retried batch charges the records before it again. charge-partial uses
    Powertools' BatchProcessor with ReportBatchItemFailures and per-record keys: it passes."""
    c = campaign("batch", 11, *extra)
    assert verdicts(c) == BATCH, c.out
    found = c.violation("charge-batch", "batch")
    steps = found["schedule"]
    assert len(steps) == 2 and "batched" in steps[1]["tags"], steps
    assert found["diff"] == {"sink payment-batch": [2, 3]}, found["diff"]
    assert "batchItemFailures" in found["hint"]
