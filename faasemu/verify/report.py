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

from faasemu.chaos.model import CAMPAIGN_DEFAULTS, ChaosOptions, Duplicate, Fail, LostAck, Move, Perturbation
from faasemu.project.failures import WorkerError, format_error
from faasemu.project.paths import ProjectPaths
from faasemu.verify.campaign import CampaignResult, FunctionVerdict, steps_json
from faasemu.verify.classify import Violation
from faasemu.verify.compare import format_diff

WHY = {
    "idempotency": "a second delivery of the same event changed the outcome; real brokers deliver at least once.",
    "order": "the outcome depends on the order deliveries arrive in; brokers do not guarantee order.",
}
FIX = {
    "idempotency": "record the event id in a table with a unique key in the same transaction as the update (or "
                   "before the call to the outside service), and skip the work when the id is already there.",
    "order": "compare a version or timestamp carried by the event before overwriting, instead of trusting "
             "arrival order (last write by event time wins, not by arrival).",
}


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
    if violation.kind == "idempotency" and steps and len({s.ref.index for s in steps}) == 1 and any(
        s.inject == "fail" for s in steps
    ):
        return RETRY_HINT
    return FIX[violation.kind]


def result_runtimes(result: CampaignResult) -> list[tuple[str, str]]:
    return list(result.runtimes.items())


def perturbation_json(item: Perturbation) -> dict[str, Any]:
    if isinstance(item, Move):
        return {"kind": "move", "delivery": item.ref_index, "to": item.to}
    if isinstance(item, Duplicate):
        return {"kind": "duplicate", "delivery": item.ref_index, "at": item.at}
    if isinstance(item, Fail):
        return {"kind": "fail", "delivery": item.ref_index, "redeliver_at": item.redeliver_at}
    assert isinstance(item, LostAck)
    return {"kind": "lost-ack", "delivery": item.ref_index, "redeliver_at": item.redeliver_at}


def perturbation_from_json(data: dict[str, Any]) -> Perturbation:
    kind, index = data["kind"], int(data["delivery"])
    if kind == "move":
        return Move(index, float(data["to"]))
    if kind == "duplicate":
        return Duplicate(index, data.get("at"))
    if kind == "fail":
        return Fail(index, data.get("redeliver_at"))
    if kind == "lost-ack":
        return LostAck(index, data.get("redeliver_at"))
    raise ValueError(f"unknown perturbation kind {kind!r}")


def violation_json(result: CampaignResult, violation: Violation, invocation: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": violation.kind,
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
        if verdict.load_error:
            error = verdict.load_error
            entry["load_error"] = {"type": error.type, "message": error.message, "where": error.where}
        functions[name] = entry
    return {
        "seed": result.seed,
        "runs": result.runs,
        "events": len(result.events),
        "deliveries": len(result.refs),
        "nondeterministic": result.nondeterministic,
        "functions": functions,
    }


def write_json(path: str, report: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(report, file, indent=2, sort_keys=False)
        file.write("\n")


def write_junit(path: str, result: CampaignResult, report: dict[str, Any]) -> None:
    """One test case per function and property; a found violation is a failure, `null` a skip."""
    suite = ElementTree.Element("testsuite", name="faasemu chaos", tests="0", failures="0", skipped="0")
    tests = failures = skipped = errors = 0
    for name, entry in report["functions"].items():
        for prop, kind in (("idempotent", "idempotency"), ("order_tolerant", "order")):
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
                found = next(v for v in entry["violations"] if v["kind"] == kind)
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
    what = "idempotent" if found["kind"] == "idempotency" else "order-tolerant"
    schedule = found["schedule"]
    console.print()
    console.print(Text(f"✗ {name} is not {what}", style="bold red"))
    removing = "removing any of them makes it pass" if len(schedule) > 1 else "it alone breaks it"
    console.print(Text(f"  Minimal counterexample ({len(schedule)} deliveries; {removing}):"))
    events = {event["id"]: event for event in result.events}
    seen: set[tuple[str, str]] = set()
    for number, step in enumerate(schedule, 1):
        key = (step["event"], step["function"])
        event = events.get(step["event"], {})
        if key in seen:
            label = f"{step['event']}  (again{', ' + ', '.join(step.get('tags', [])) if step.get('tags') else ''})"
        else:
            data = json.dumps(event.get("data"))
            data = data if len(data) <= 60 else data[:57] + "..."
            label = f"{step['event']}  {event.get('type', '')} {data}"
            tags = [t for t in step.get("tags", []) if t != "duplicate"]
            if tags:
                label += f"  [{', '.join(tags)}]"
        seen.add(key)
        console.print(Text(f"    {number}. {label}  -> {step['function']}"))
    console.print("  State and effects after, compared with in-order once-only delivery:")
    other = "with the duplicate" if found["kind"] == "idempotency" else "in this order"
    for line in format_diff(found["diff"], other=other) or ["(no difference left after masking)"]:
        console.print(Text(f"    {line}"))
    console.print(Text(f"  Why: {WHY[found['kind']]}"))
    console.print(Text(f"  Fix: {found['hint']}"))
    console.print(Text(f"  Reproduce: {found['reproduce']}"))
    console.print(Text(f"             faasemu chaos --replay-cex {found['counterexample']}"))
