"""`faasemu chaos [EVENTS.jsonl]`: run the verification campaign and report every violation.

Exit 0 when every function that events reach was exercised and no violation was found, 1 when one
was (or a replayed counterexample still fails), 2 when the campaign could not check what it was
asked to: bad or empty input, events that reach no function, a function that does not load. CI
reads 1 as "violations found", so nothing that merely went wrong may exit 1, and nothing that left
a reached function unchecked may exit 0. `--json` and `--junit` are written whatever the exit code.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from faasemu.chaos.model import APPLY_CHANGE, CAMPAIGN_DEFAULTS, ChaosOptions, DeliveryRef, canonical, new_seed
from faasemu.delivery.admission import check_events_file
from faasemu.delivery.eventlog import EventLog
from faasemu.events.files import is_change, read_events_file
from faasemu.project.console import rich_console
from faasemu.project.errors import InputFileError, UsageError
from faasemu.project.failures import format_error
from faasemu.project.manifest import load_manifest
from faasemu.project.paths import ProjectPaths
from faasemu.project.private import private_folder, tighten
from faasemu.project.spec import Manifest
from faasemu.verify.campaign import Campaign, steps_json
from faasemu.verify.compare import Comparator, format_diff, nondeterministic_columns
from faasemu.verify.model import Candidate
from faasemu.verify.runner import Runner

if TYPE_CHECKING:
    from faasemu.verify.cluster import ClusterRunner

PHASES = ("calibrate", "probes", "random", "shrink")


@dataclass(frozen=True)
class ChaosCommandOptions:
    manifest: str = "faasemu.yaml"
    events_file: str | None = None
    runs: int = 100
    only: tuple[str, ...] = ()
    json_path: str | None = None
    junit_path: str | None = None
    replay_cex: str | None = None
    chaos: ChaosOptions = field(default_factory=lambda: CAMPAIGN_DEFAULTS)
    seed: int | None = None
    cluster: str | None = None  # a Ray cluster's address, or "auto" (cluster.py)


def load_events(manifest: Manifest, events_file: str | None) -> tuple[list[dict[str, Any]], str]:
    """Events from the file, or else those `faasemu up` recorded in the event log."""
    if events_file:
        return read_events_file(events_file), events_file
    path = ProjectPaths(manifest.root).events_db
    if not os.path.exists(path):
        raise UsageError("no events to check: pass an events file (faasemu chaos events.jsonl), or run "
                         "`faasemu up` and post events so that its event log holds some")
    log = EventLog(path)
    try:
        events = log.events()
    finally:
        log.close()
    if not events:
        raise UsageError(f"the event log {os.path.relpath(path)} holds no events yet; pass an events file")
    return events, os.path.relpath(path)


def _check_only(manifest: Manifest, only: tuple[str, ...]) -> None:
    names = [spec.name for spec in manifest.functions]
    for name in only:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; functions: {', '.join(names)}"
            raise UsageError(f"--only {name}: no such function in {manifest.path}{hint}")


def _state_label(manifest: Manifest) -> str:
    state = manifest.state
    if state.kind == "sqlite":
        schema = f" ({os.path.relpath(state.schema, manifest.root)})" if state.schema else ""
        return f"sqlite{schema}"
    if state.kind == "postgres":
        from faasemu.project.postgres_sql import redacted

        target = state.postgres or ""
        return "postgres (private server)" if target == "auto" else f"postgres {redacted(target)}"
    return state.kind


def run_chaos(options: ChaosCommandOptions) -> int:
    if options.cluster is not None:
        from faasemu.verify.cluster import parse_address

        parse_address(options.cluster)  # a bad address is refused before anything runs
        if options.replay_cex:
            raise UsageError("--cluster runs a campaign's lanes on a cluster; --replay-cex re-runs one schedule "
                             "here: drop --cluster")
    if options.replay_cex:
        return replay_counterexample(options.replay_cex, options.manifest)
    manifest = load_manifest(options.manifest)
    _check_only(manifest, options.only)
    events, source = load_events(manifest, options.events_file)
    # events the platform would refuse (admission.py); lines only for a JSON Lines file, not the event log
    check_events_file(source, events, manifest.functions, lines=options.events_file is not None)
    refs = canonical(events, manifest.functions)
    console = rich_console()
    if not events:
        raise InputFileError(source, None, "holds no events (it is empty, or blank lines only): nothing to check. "
                                           "Write one event per line, e.g. "
                                           '{"type": "order.created", "data": {"id": "o-1"}}')
    if not refs:
        raise InputFileError(source, None, _reaches_nothing(events, manifest))
    subscribed = any(spec.events for spec in manifest.functions if spec.name in options.only) or \
        any(trigger.webhook in options.only for trigger in manifest.triggers)  # a change may reach it
    if options.only and not any(ref.function in options.only for ref in refs) and not subscribed:
        # What was asked: check FN against these events. None of them reaches FN, so there is
        # truly nothing to check; saying so and exiting 0 is the honest answer (see README).
        # (A function with subscriptions may still be reached by emitted events: the campaign's
        # traced baseline tells, docs/verification.md#cascades.)
        return _nothing_to_check(console, source, refs, manifest, options.only)
    seed = options.seed if options.seed is not None else new_seed()
    changes = sum(1 for event in events if is_change(event))
    counted = f"{len(events) - changes} events" + (f" · {changes} table changes" if changes else "")
    deliveries = f"{sum(1 for ref in refs if ref.function != APPLY_CHANGE)} deliveries" + (
        " and those their triggers fire" if changes else "")
    console.print(f"faasemu chaos · {counted} · {deliveries} · {len(manifest.functions)} functions"
                  f" · seed {seed} · state {_state_label(manifest)}", highlight=False, markup=False)
    started = time.perf_counter()
    with Progress(TextColumn("{task.description:<9}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        tasks = {phase: progress.add_task(phase, total=None, visible=False) for phase in PHASES}

        def report_progress(phase: str, done: int, total: int) -> None:
            progress.update(tasks[phase], completed=done, total=total, visible=True)

        campaign = Campaign(manifest, events, refs, seed=seed, runs=options.runs, options=options.chaos,
                            only=options.only, progress=report_progress,
                            runner=_cluster_runner(options.cluster, manifest, events, refs, seed))
        try:
            result = asyncio.run(campaign.run())
        finally:
            campaign.runner.discard()  # lanes on /dev/shm are removed even after Ctrl+C
    elapsed = time.perf_counter() - started
    if options.only and not any(ref.function in options.only for ref in result.refs):
        return _nothing_to_check(console, source, refs, manifest, options.only)  # not even by a cascade
    from faasemu.verify.report import (
        print_report,
        report_json,
        write_counterexamples,
        write_json,
        write_junit,
        write_last_campaign,
    )

    invocation = {"events_file": options.events_file, "manifest": options.manifest, "options": options.chaos,
                  "root": manifest.root}
    if result.violations:
        ProjectPaths(manifest.root).cex_folder()
    for path in write_counterexamples(result, invocation):
        tighten(path)
    violations = result.violations
    # A function that events reach but that did not load was not checked at all: the campaign
    # cannot vouch for it, so it is not allowed to end green (exit 2, before any exit 1).
    unloaded = [v for v in result.functions.values() if v.deliveries and v.load_error]
    code = 2 if unloaded else 1 if violations else 0
    report = report_json(result, invocation)
    report["exit_code"] = code
    report["not_checked"] = {v.name: format_error(v.load_error) for v in unloaded if v.load_error}
    write_last_campaign(manifest.root, report)  # .faasemu/last-campaign.json: the dashboard's Campaign view
    for target, write in ((options.json_path, lambda p: write_json(p, report)),
                          (options.junit_path, lambda p: write_junit(p, result, report))):
        if target:
            private = ProjectPaths(manifest.root).holds(target)
            if private:
                private_folder(os.path.dirname(os.path.abspath(target)))
            write(target)
            if private:
                tighten(target)
    print_report(console, result, report, invocation)
    functions = {v.function for v in violations}
    written = [p for p in (options.json_path, options.junit_path) if p]
    for verdict in unloaded:
        console.print(Text.assemble(("✗ ", "bold red"), f"{verdict.name} was not checked: it did not load: ",
                                    format_error(verdict.load_error) if verdict.load_error else ""))
    summary = Text()
    if unloaded:
        count = len(unloaded)
        summary.append(f"{count} function{'s' if count != 1 else ''} that events reach could not be loaded "
                       f"({', '.join(v.name for v in unloaded)}): the campaign is incomplete", style="bold red")
        if violations:
            summary.append(f" · {len(violations)} violation{'s' if len(violations) != 1 else ''} in the others",
                           style="bold red")
    elif violations:
        summary.append(f"{len(violations)} violation{'s' if len(violations) != 1 else ''} in {len(functions)} "
                       f"function{'s' if len(functions) != 1 else ''}", style="bold red")
    else:
        summary.append("no violation found", style="green")
    summary.append(f" · {result.stats['runs_executed']} runs, {result.stats['deliveries_executed']} deliveries in "
                   f"{elapsed:.1f} s" + (f" · report: {', '.join(written)}" if written else "") + f" · exit {code}")
    console.print(summary)
    console.print(Text(f"events from {source}; same seed, same report: --seed {seed}", style="dim"))
    return code


def _cluster_runner(address: str | None, manifest: Manifest, events: list[dict[str, Any]], refs: list[DeliveryRef],
                    seed: int) -> ClusterRunner | None:
    """The cluster's runner for --cluster (Ray imported only then), else None: the local lanes.
    Where the lanes run goes to stderr, so that stdout is the report a local run prints."""
    if address is None:
        return None
    from faasemu.verify.cluster import ClusterRunner

    errors = rich_console(sys.stderr)
    return ClusterRunner(manifest, events, refs, seed, address=address,
                         on_start=lambda line: errors.print(Text(line, style="dim")))


def _nothing_to_check(console: Console, source: str, refs: list[DeliveryRef], manifest: Manifest,
                      only: tuple[str, ...]) -> int:
    names, patterns = ", ".join(only), _subscriptions(manifest, only)
    console.print(f"nothing to check: no event of {source} reaches {names} ({patterns}"
                  f"); its events go to {', '.join(_reached(refs))} "
                  f"({_plural(len(refs), 'delivery', 'deliveries')}) · exit 0",
                  markup=False, highlight=False)
    return 0


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _reached(refs: list[DeliveryRef]) -> list[str]:
    return list(dict.fromkeys(ref.function for ref in refs))


def _subscriptions(manifest: Manifest, names: tuple[str, ...] | list[str] | None = None) -> str:
    """`a: order.created; b: no events` for the named functions (all of them by default)."""
    specs = [s for s in manifest.functions if names is None or s.name in names]
    return "; ".join(f"{s.name}: {', '.join(s.events) or 'no events'}" for s in specs) or "no functions"


def _reaches_nothing(events: list[dict[str, Any]], manifest: Manifest) -> str:
    types = list(dict.fromkeys(str(event.get("type")) for event in events))
    shown = ", ".join(types[:5]) + (f" and {len(types) - 5} more" if len(types) > 5 else "")
    which = "its one event reaches" if len(events) == 1 else f"none of its {len(events)} events reaches"
    return (f"{which} no function, so there is nothing to check. Event types: "
            f"{shown}; the functions of {os.path.basename(manifest.path)} subscribe to: {_subscriptions(manifest)}")


def replay_counterexample(path: str, manifest_path: str) -> int:
    """Re-run exactly the schedule a counterexample file holds, against its baseline."""
    from faasemu.verify.report import perturbation_from_json

    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
        manifest = load_manifest(data.get("manifest") if manifest_path == "faasemu.yaml" and data.get("manifest")
                                 else manifest_path)
        events = data["events"]
        perturbations = tuple(perturbation_from_json(p) for p in data["perturbations"])
        deliveries = None if data["deliveries"] is None else frozenset(int(i) for i in data["deliveries"])
        seed = int(data["seed"])
    except OSError as exc:
        raise UsageError(f"--replay-cex {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputFileError(path, None, f"not a faasemu counterexample ({exc})") from None
    refs = canonical(events, manifest.functions)
    candidate = Candidate(deliveries, perturbations)
    runner = Runner(manifest, events, refs, seed)

    async def run() -> tuple[Any, Any, Any, list[Any]] | None:
        async with runner:
            # downstream deliveries are found again as the campaign found them, so their paths and
            # indices name the same deliveries (docs/verification.md#cascades)
            await runner.discover()
            if any(i >= len(runner.refs) for i in deliveries or ()):
                return None
            steps = runner.steps_of(candidate)
            if steps_json(steps) != data.get("schedule", steps_json(steps)):
                return None
            first, second, perturbed = await runner.run_many([candidate.baseline(), candidate.baseline(), candidate])
            return first, second, perturbed, steps

    outcome = asyncio.run(run())
    if outcome is None:
        raise InputFileError(path, None, "its schedule no longer matches the manifest's functions and events "
                                         "(or the events the handlers emit)")
    first, second, perturbed, steps = outcome
    comparator = Comparator(nondeterministic_columns(first, second), manifest.state.ignore)
    console: Console = rich_console()
    what = f"{data.get('function')} ({data.get('kind')})"
    console.print(f"replaying {path}: {what}, {len(steps)} deliveries, seed {seed}", markup=False, highlight=False)
    for number, step in enumerate(steps, 1):
        tags = f"  [{', '.join(step.tags)}]" if step.tags else ""
        console.print(f"  {number}. {step.ref.event_id} -> {step.ref.function}{tags}", markup=False, highlight=False)
    if comparator.differs(first, perturbed):
        for line in format_diff(comparator.diff(first, perturbed)):
            console.print(f"  {line}", markup=False, highlight=False)
        console.print("[bold red]the violation reproduces[/] · exit 1")
        return 1
    console.print("[green]the violation no longer reproduces: the outcome matches in-order delivery[/] · exit 0")
    return 0
