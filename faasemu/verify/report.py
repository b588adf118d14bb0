"""Rendering a campaign's results: the console report, the JSON report, JUnit XML, counterexamples.

Rendering only: every figure comes from `CampaignResult`. The JSON report holds no timings, so the
same seed gives the same report byte for byte.
"""

from __future__ import annotations

import json
import os
import shlex
from typing import Any
from xml.etree import ElementTree

from rich.console import Console
from rich.table import Table
from rich.text import Text

from faasemu.chaos.model import (
    APPLY_CHANGE,
    CAMPAIGN_DEFAULTS,
    Batched,
    ChaosOptions,
    Crash,
    Duplicate,
    Fail,
    LostAck,
    Move,
    Overlap,
    Perturbation,
)
from faasemu.project.failures import WorkerError, format_error
from faasemu.project.paths import ProjectPaths
from faasemu.project.private import write_private_text
from faasemu.verify.campaign import CampaignResult, FunctionVerdict, steps_json
from faasemu.verify.classify import NOT_IDEMPOTENT, Violation
from faasemu.verify.compare import format_diff
from faasemu.verify.triggers import summary

WHY = {
    "idempotency": "a second delivery of the same event changed the outcome; real brokers deliver at least once.",
    "order": "the outcome depends on the order deliveries arrive in; brokers do not guarantee order.",
    "instance": "a second delivery of the same event, on another instance of the function, changed the outcome; "
                "platforms spread deliveries over instances and start new ones, so memory is not shared.",
    "overlap": "a delivery and its duplicate ran at the same time on two instances and both did the work; SQS, "
               "Pub/Sub and Event Grid deliver duplicates concurrently when a function scales out.",
    "crash": "the invocation was killed part-way (timeout, out of memory, lost instance) after some of its "
             "effects, and its retry did them again or left them half done.",
    "batch": "a failed batch was retried whole, and records that had succeeded were processed again.",
}
FIX = {
    "idempotency": "record the event id in a table with a unique key in the same transaction as the update (or "
                   "before the call to the outside service), and skip the work when the id is already there.",
    "order": "compare a version or timestamp carried by the event before overwriting, instead of trusting "
             "arrival order (last write by event time wins, not by arrival), or declare an `order_key` where "
             "the platform delivers in order per key (SQS FIFO group, Pub/Sub ordering key, Kafka partition).",
    "instance": "keep the seen ids in the database (a table with a unique key on the event id), not in memory: "
                "a module-level set only knows what its own instance saw.",
    "overlap": "claim the event id atomically before doing the work: INSERT ... ON CONFLICT DO NOTHING of the "
               "event id in the same transaction as the update, and skip when no row was inserted (a SELECT "
               "first is passed by both copies).",
    "crash": "do the state change and the record of the event id in one transaction, and send an "
             "Idempotency-Key (the event id) on every call to an outside service, so a retry after a crash "
             "neither repeats the call nor leaves the work half done.",
    "batch": "set `report_batch_item_failures: true` and return {\"batchItemFailures\": [{\"itemIdentifier\": "
             "messageId}]} for the records that failed (Powertools' BatchProcessor does), so only those are "
             "retried; and make each record's processing idempotent.",
}
PROPERTY = {kind: ("order-tolerant" if kind == "order" else "idempotent") for kind in WHY}


def reproduce_command(result: CampaignResult, function: str, invocation: dict[str, Any]) -> str:
    """The exact `faasemu chaos` command that reproduces a function's report."""
    parts = ["faasemu", "chaos"]
    if invocation.get("events_file"):
        parts.append(invocation["events_file"])
    if invocation.get("manifest", "faasemu.yaml") != "faasemu.yaml":
        parts += ["-f", invocation["manifest"]]
    options: ChaosOptions = invocation["options"]
    parts += options.flags(CAMPAIGN_DEFAULTS)
    if result.runs != 100:
        parts += ["--runs", str(result.runs)]
    return shlex.join([*parts, "--seed", str(result.seed), "--only", function])


EMIT_HINT = ("give each emitted event a deterministic id derived from its input (e.g. \"invoice-\" + the event id) "
             "and a fixed source: an event emitted without an id gets a new one from the broker on every call "
             "(EventBridge PutEvents), so a retry emits a second event, which consumers that deduplicate on "
             "(source, id) cannot recognise. A message sent to an SQS queue has no id of its own "
             "(docs/delivery.md#sqs-sends-become-events): send to a FIFO queue with a MessageDeduplicationId "
             "derived from the input, or have the consumer deduplicate on a business key in the body.")
RETRY_HINT = ("the outcome changed with the attempt that succeeded: a value that is new on every attempt (SQS "
              "receiptHandle, a request or invocation id) reached the state. Deduplicate on the event's stable id "
              "(EventBridge id, SQS messageId, CloudEvent id) instead.")


def hint(result: CampaignResult, violation: Violation) -> str:
    runtime = next((spec_runtime for name, spec_runtime in result_runtimes(result) if name == violation.function), "")
    if runtime == "kubeless" and violation.kind == "idempotency":
        return ("Kubeless generates a new event-id on every send, so deduplicating on it does not work there: "
                "deduplicate on a business key carried in the event data instead.")
    if runtime == "openfaas" and violation.kind == "idempotency":
        return ("OpenFaaS's gateway gives every call from a connector a new X-Call-Id, so deduplicating on it does "
                "not work there: deduplicate on a business key carried in the event data instead.")
    steps = violation.steps
    changed = result.diff(violation)
    if violation.kind != "order" and any(key.startswith("emitted ") for key in changed) and not any(
        key.startswith("sink ") for key in changed
    ):
        return EMIT_HINT  # docs/verification.md#cascades: the producer's emitted set changed
    if violation.kind == "idempotency" and steps and len({s.ref.index for s in steps}) == 1 and any(
        s.inject == "fail" for s in steps
    ):
        return RETRY_HINT
    return FIX[violation.kind]


def result_runtimes(result: CampaignResult) -> list[tuple[str, str]]:
    return list(result.runtimes.items())


def perturbation_json(item: Perturbation) -> dict[str, Any]:
    other = {"other_instance": True} if getattr(item, "other", False) else {}
    if isinstance(item, Move):
        return {"kind": "move", "delivery": item.ref_index, "to": item.to}
    if isinstance(item, Duplicate):
        return {"kind": "duplicate", "delivery": item.ref_index, "at": item.at, **other}
    if isinstance(item, Fail):
        return {"kind": "fail", "delivery": item.ref_index, "redeliver_at": item.redeliver_at, **other}
    if isinstance(item, Overlap):
        return {"kind": "overlap", "delivery": item.ref_index}
    if isinstance(item, Batched):
        return {"kind": "batched", "delivery": item.ref_index}
    if isinstance(item, Crash):
        return {"kind": "crash", "delivery": item.ref_index, "after": item.after, "redeliver_at": item.redeliver_at}
    assert isinstance(item, LostAck)
    return {"kind": "lost-ack", "delivery": item.ref_index, "redeliver_at": item.redeliver_at, **other}


def perturbation_from_json(data: dict[str, Any]) -> Perturbation:
    kind, index = data["kind"], int(data["delivery"])
    other = bool(data.get("other_instance", False))
    if kind == "move":
        return Move(index, float(data["to"]))
    if kind == "duplicate":
        return Duplicate(index, data.get("at"), other=other)
    if kind == "fail":
        return Fail(index, data.get("redeliver_at"), other=other)
    if kind == "lost-ack":
        return LostAck(index, data.get("redeliver_at"), other=other)
    if kind == "overlap":
        return Overlap(index)
    if kind == "batched":
        return Batched(index)
    if kind == "crash":
        return Crash(index, int(data["after"]), data.get("redeliver_at"))
    raise ValueError(f"unknown perturbation kind {kind!r}: "
                     "one of move, duplicate, fail, lost-ack, overlap, crash, batched")


ORDINALS = {1: "1st", 2: "2nd", 3: "3rd"}


def interrupted(steps: tuple[str, ...], k: int) -> str:
    """Where a crash hit, in words: "after the 1st write to orders and the call to sink payment"."""
    parts: list[str] = []
    writes: dict[str, int] = {}
    for name in steps[:k]:
        kind, _, what = name.partition(" ")
        if kind == "commit":
            writes[what] = writes.get(what, 0) + 1
            number = writes[what]
            target = f" to {what}" if what else ""
            parts.append(f"the {ORDINALS.get(number, f'{number}th')} write{target}")
        elif kind == "sink":
            parts.append(f"the call to sink {what}")
        else:
            parts.append(f"the event {what} it emitted" if what else "an event it emitted")
    if not parts:
        return f"after step {k}"
    return "after " + (parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1])


def violation_json(result: CampaignResult, violation: Violation, invocation: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    crash = next((s for s in violation.steps if s.inject == "crash"), None)
    if violation.kind == "crash" and crash is not None:
        traced = result.steps[crash.ref.index] if crash.ref.index < len(result.steps) else ()
        extra["interrupted"] = interrupted(traced, crash.crash_after)
    if violation.candidate in result.reproduced:
        failed, reruns = result.reproduced[violation.candidate]
        extra["reproduced"] = f"{failed} of {reruns} re-runs"
    return {
        "kind": violation.kind,
        **extra,
        "schedule": steps_json(violation.steps),
        "diff": result.diff(violation),
        "reproduce": reproduce_command(result, violation.function, invocation),
        "hint": hint(result, violation),
        "counterexample": cex_path(invocation["root"], violation, relative=True),
    }


def report_json(result: CampaignResult, invocation: dict[str, Any]) -> dict[str, Any]:
    functions = {}
    for name, verdict in result.functions.items():
        entry: dict[str, Any] = {
            "idempotent": verdict.idempotent,
            "order_tolerant": verdict.order_tolerant,
            "nondeterministic_outcome": verdict.nondeterministic_outcome,
            "deliveries": verdict.deliveries,
            "violations": [violation_json(result, v, invocation) for v in verdict.violations],
        }
        if name in result.order_keys:  # events with no value at the key path are unordered (docs/verification.md)
            entry["order_key"] = result.order_keys[name]
            entry["unordered_events"] = sum(1 for ref in result.refs if ref.function == name and ref.order is None)
        if verdict.load_error:
            error = verdict.load_error
            entry["load_error"] = {"type": error.type, "message": error.message, "where": error.where}
        functions[name] = entry
    cascades: dict[str, Any] = {}
    if len(result.refs) > result.canonical:  # docs/verification.md#cascades: deliveries of emitted events
        cascades["downstream_deliveries"] = len(result.refs) - result.canonical
    if result.cascade_limit:
        cascades["cascade_limit"] = result.cascade_limit
    return {
        "seed": result.seed,
        "runs": result.runs,
        "events": len(result.events),
        "deliveries": len(result.refs),
        **cascades,
        "nondeterministic": result.nondeterministic,
        "functions": functions,
    }


def write_json(path: str, report: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(report, file, indent=2, sort_keys=False)
        file.write("\n")


LAST_CAMPAIGN = "last-campaign.json"  # in .faasemu/: what the dashboard of `faasemu up` shows


def write_last_campaign(root: str, report: dict[str, Any]) -> str:
    """The whole report where the dashboard finds it (`/_faasemu/api/campaign`), written whole then renamed,
    so that a page reading it never sees half a file."""
    folder = ProjectPaths(root).folder()
    path = os.path.join(folder, LAST_CAMPAIGN)
    partial = path + ".partial"
    write_private_text(partial, json.dumps(report, indent=2, default=str) + "\n")  # 0600, as .faasemu/ keeps all
    os.replace(partial, path)
    return path


def write_junit(path: str, result: CampaignResult, report: dict[str, Any]) -> None:
    """One test case per function and property; a found violation is a failure, `null` a skip."""
    suite = ElementTree.Element("testsuite", name="faasemu chaos", tests="0", failures="0", skipped="0")
    tests = failures = skipped = errors = 0
    for name, entry in report["functions"].items():
        for prop, kinds in (("idempotent", NOT_IDEMPOTENT), ("order_tolerant", frozenset({"order"}))):
            tests += 1
            case = ElementTree.SubElement(suite, "testcase", classname=f"faasemu.{name}", name=prop)
            value = entry[prop]
            if entry.get("load_error"):  # reached by events but never run: an error, never a quiet skip
                errors += 1
                error = entry["load_error"]
                shown = format_error(WorkerError.from_wire(error), where=False)
                ElementTree.SubElement(case, "error", message=f"{name} did not load: {shown}")
            elif value is None:
                skipped += 1
                reason = "nondeterministic outcome" if entry["nondeterministic_outcome"] else "not exercised"
                ElementTree.SubElement(case, "skipped", message=reason)
            elif value is False:
                failures += 1
                found = next(v for v in entry["violations"] if v["kind"] in kinds)
                failure = ElementTree.SubElement(case, "failure", message=f"{name} is not {prop.replace('_', '-')}")
                failure.text = json.dumps({"schedule": found["schedule"], "diff": found["diff"],
                                           "reproduce": found["reproduce"]}, indent=2)
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    suite.set("errors", str(errors))
    ElementTree.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def cex_path(root: str, violation: Violation, relative: bool = False) -> str:
    return ProjectPaths(root).cex_file(violation.function, violation.kind, relative=relative)


def write_counterexamples(result: CampaignResult, invocation: dict[str, Any]) -> list[str]:
    """Each violation as a self-contained file that `faasemu chaos --replay-cex FILE` re-runs."""
    written = []
    for violation in result.violations:
        path = cex_path(invocation["root"], violation)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        candidate = violation.candidate
        data = {
            "version": 1,
            "function": violation.function,
            "kind": violation.kind,
            "seed": result.seed,
            "manifest": invocation["manifest"],
            "events": result.events,
            "deliveries": None if candidate.deliveries is None else sorted(candidate.deliveries),
            "perturbations": [perturbation_json(p) for p in candidate.perturbations],
            "schedule": steps_json(violation.steps),
            "diff": result.diff(violation),
        }
        with open(path, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2)
            file.write("\n")
        written.append(path)
    return written


# -- console -------------------------------------------------------------------------------------


# Everything below prints Text, never markup strings: function names, event ids and types, data,
# diffs, load errors and paths come from users, and `[...]` in them would be eaten or crash rich.


def _mark(value: bool | None, verdict: FunctionVerdict) -> Text:
    if verdict.nondeterministic_outcome:
        return Text("? nondeterministic", style="yellow")
    if value is None:
        return Text("– not exercised", style="dim")
    return Text("✓ yes", style="green") if value else Text("✗ no", style="bold red")


def print_report(console: Console, result: CampaignResult, report: dict[str, Any], invocation: dict[str, Any]) -> None:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("function", "idempotent", "order-tolerant", "deliveries", "note"):
        table.add_column(column)
    for name, verdict in result.functions.items():
        note = ""
        if verdict.load_error:
            note = f"cannot load: {format_error(verdict.load_error, where=False)}"
        elif verdict.deliveries == 0:
            note = "no event reaches it"
        table.add_row(Text(name), _mark(verdict.idempotent, verdict), _mark(verdict.order_tolerant, verdict),
                      str(verdict.deliveries), Text(note))
    console.print()
    console.print(table)
    for name, entry in report["functions"].items():
        for found in entry["violations"]:
            _print_violation(console, name, found, result)
    console.print()
    nd = ", ".join(result.nondeterministic) or "none"
    console.print(Text(f"nondeterministic columns left out of comparisons: {nd}"))


def _print_violation(console: Console, name: str, found: dict[str, Any], result: CampaignResult) -> None:
    what = PROPERTY[found["kind"]]
    schedule = found["schedule"]
    console.print()
    detail = {"instance": " (a duplicate on another instance)", "overlap": " (overlapping duplicates)",
              "crash": " (a crash part-way, then the retry)", "batch": " (a batch retry)"}.get(found["kind"], "")
    console.print(Text(f"✗ {name} is not {what}{detail}", style="bold red"))
    if found.get("interrupted"):
        console.print(Text(f"  Killed {found['interrupted']}, then retried in a fresh instance."))
    if found.get("reproduced"):
        console.print(Text(f"  A race: it reproduced in {found['reproduced']} of the same schedule."))
    removing = "removing any of them makes it pass" if len(schedule) > 1 else "it alone breaks it"
    console.print(Text(f"  Minimal counterexample ({len(schedule)} deliveries; {removing}):"))
    # a downstream delivery's event is named by its path (`pay-1>0`), the event as the baseline saw it
    events = {**{event["id"]: event for event in result.events}, **result.emitted}
    seen: set[tuple[str, str]] = set()
    for number, step in enumerate(schedule, 1):
        key = (step["event"], step["function"])
        event = events.get(step["event"], {})
        if key in seen:
            label = f"{step['event']}  (again{', ' + ', '.join(step.get('tags', [])) if step.get('tags') else ''})"
        else:
            label = f"{step['event']}  {summary(event, 72)}"
            tags = [t for t in step.get("tags", []) if t != "duplicate"]
            if tags:
                label += f"  [{', '.join(tags)}]"
        seen.add(key)
        target = "(an outside client's write)" if step["function"] == APPLY_CHANGE else f"-> {step['function']}"
        console.print(Text(f"    {number}. {label}  {target}"))
    console.print("  State and effects after, compared with in-order once-only delivery:")
    other = "in this order" if found["kind"] == "order" else (
        "with the retry" if found["kind"] in ("crash", "batch") else "with the duplicate")
    for line in format_diff(found["diff"], other=other) or ["(no difference left after masking)"]:
        console.print(Text(f"    {line}"))
    console.print(Text(f"  Why: {WHY[found['kind']]}"))
    console.print(Text(f"  Fix: {found['hint']}"))
    console.print(Text(f"  Reproduce: {found['reproduce']}"))
    console.print(Text(f"             faasemu chaos --replay-cex {found['counterexample']}"))
