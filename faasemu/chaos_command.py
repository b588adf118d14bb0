"""`faasemu chaos [EVENTS.jsonl]`: run the verification campaign and report every violation.

Exit 0 when no violation was found, 1 when one was (or a replayed counterexample still fails),
2 for bad input. `--json` and `--junit` are written whatever the exit code.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from faasemu.chaos import CAMPAIGN_DEFAULTS, ChaosOptions, canonical, new_seed
from faasemu.console import rich_console
from faasemu.errors import InputFileError, UsageError
from faasemu.eventlog import EventLog
from faasemu.events import read_events_file
from faasemu.manifest import load_manifest
from faasemu.spec import Manifest
from faasemu.verify.campaign import Campaign, steps_json
from faasemu.verify.compare import Comparator, format_diff, nondeterministic_columns
from faasemu.verify.model import Candidate
from faasemu.verify.runner import Runner

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


def load_events(manifest: Manifest, events_file: str | None) -> tuple[list[dict[str, Any]], str]:
    """Events from the file, or else those `faasemu up` recorded in the event log."""
    if events_file:
        return read_events_file(events_file), events_file
    path = os.path.join(manifest.root, ".faasemu", "events.db")
    if not os.path.exists(path):
        raise UsageError("no events to check: pass an events file (faasemu chaos events.jsonl), or run "
                         "`faasemu up` and post events so that its event log holds some")
    log = EventLog(path)
    try:
        events = [json.loads(body) for (body,) in log.db.execute("SELECT body FROM events ORDER BY seq")]
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
    return state.kind


def run_chaos(options: ChaosCommandOptions) -> int:
    if options.replay_cex:
        return replay_counterexample(options.replay_cex, options.manifest)
    manifest = load_manifest(options.manifest)
    _check_only(manifest, options.only)
    events, source = load_events(manifest, options.events_file)
    refs = canonical(events, manifest.functions)
    seed = options.seed if options.seed is not None else new_seed()
    console = rich_console()
    console.print(f"faasemu chaos · {len(events)} events · {len(refs)} deliveries · {len(manifest.functions)} functions"
                  f" · seed {seed} · state {_state_label(manifest)}", highlight=False)
    started = time.perf_counter()
    with Progress(TextColumn("{task.description:<9}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        tasks = {phase: progress.add_task(phase, total=None, visible=False) for phase in PHASES}

        def report_progress(phase: str, done: int, total: int) -> None:
            progress.update(tasks[phase], completed=done, total=total, visible=True)

        campaign = Campaign(manifest, events, refs, seed=seed, runs=options.runs, options=options.chaos,
                            only=options.only, progress=report_progress)
        try:
            result = asyncio.run(campaign.run())
        finally:
            campaign.runner.discard()  # lanes on /dev/shm are removed even after Ctrl+C
    elapsed = time.perf_counter() - started
    from faasemu.report import print_report, report_json, write_counterexamples, write_json, write_junit

    invocation = {"events_file": options.events_file, "manifest": options.manifest, "options": options.chaos,
                  "root": manifest.root}
    # Runtimes, for hints that depend on the platform (Kubeless regenerates event ids).
    result.runtimes = {spec.name: spec.runtime for spec in manifest.functions}  # type: ignore[attr-defined]
    write_counterexamples(result, invocation)
    report = report_json(result, invocation)
    if options.json_path:
        write_json(options.json_path, report)
    if options.junit_path:
        write_junit(options.junit_path, result, report)
    print_report(console, result, report, invocation)
    violations = result.violations
    functions = {v.function for v in violations}
    written = [p for p in (options.json_path, options.junit_path) if p]
    console.print(
        (f"[bold red]{len(violations)} violation{'s' if len(violations) != 1 else ''} in {len(functions)} "
         f"function{'s' if len(functions) != 1 else ''}[/]" if violations else "[green]no violation found[/]")
        + f" · {result.stats['runs_executed']} runs, {result.stats['deliveries_executed']} deliveries in {elapsed:.1f} s"
        + (f" · report: {', '.join(written)}" if written else "")
        + f" · exit {1 if violations else 0}"
    )
    console.print(f"[dim]events from {source}; same seed, same report: --seed {seed}[/]")
    return 1 if violations else 0


def replay_counterexample(path: str, manifest_path: str) -> int:
    """Re-run exactly the schedule a counterexample file holds, against its baseline."""
    from faasemu.report import perturbation_from_json

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
    steps = runner.steps_of(candidate)
    if steps_json(steps) != data.get("schedule", steps_json(steps)):
        raise InputFileError(path, None, "its schedule no longer matches the manifest's functions and events")

    async def run() -> tuple[Any, Any, Any]:
        async with runner:
            first, second, perturbed = await runner.run_many([candidate.baseline(), candidate.baseline(), candidate])
            return first, second, perturbed

    first, second, perturbed = asyncio.run(run())
    comparator = Comparator(nondeterministic_columns(first, second), manifest.state.ignore)
    console: Console = rich_console()
    console.print(f"replaying {path}: {data.get('function')} ({data.get('kind')}), {len(steps)} deliveries, seed {seed}")
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
