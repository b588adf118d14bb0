"""The `faasemu` command: parse flags, call one run_*() each, turn FaasemuError into an exit code.

Imports are lazy so that `faasemu invoke` costs little more than starting Python.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import click

from faasemu import __version__

MANIFEST_HELP = "The manifest to use."
LOG_FORMATS = ("text", "json")  # project/console.py's LogFormat; kept here so `--help` imports no rich


def manifest_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-f", "--manifest", default="faasemu.yaml", show_default=True, type=click.Path(dir_okay=False),
        help=MANIFEST_HELP,
    )(command)


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """The one place a FaasemuError becomes `Error: ...` on stderr and its exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from faasemu.project.errors import FaasemuError

        try:
            return command(*args, **kwargs)
        except FaasemuError as exc:
            code = exc.exit_code

            class Failed(click.ClickException):
                exit_code = code  # a ClassVar in click: set per class, not on the instance

            raise Failed(str(exc)) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="faasemu")
def main() -> None:
    """Run serverless functions locally, and find the handlers that are not idempotent or not order-tolerant."""


def chaos_options(defaults: tuple[float, str, float, float], overlap: float = 0.0,
                  crash: float | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The chaos model's flags (docs/verification.md#chaos-model), with each command's defaults;
    `crash` adds `--crash` (its default), which only `chaos` models today."""
    duplicates, shuffle, lost_ack, fail = defaults

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option("--duplicates", type=click.FloatRange(0, 1), default=duplicates, show_default=True,
                         help="Probability that a delivery is delivered again, later, with the same event id."),
            click.option("--shuffle", default=shuffle, show_default=True, metavar="W|all",
                         help="How many positions a delivery may move ('all': any order)."),
            click.option("--lost-ack", type=click.FloatRange(0, 1), default=lost_ack, show_default=True,
                         help="Probability that a handler runs but its success is lost, so it is redelivered."),
            click.option("--fail", type=click.FloatRange(0, 1), default=fail, show_default=True,
                         help="Probability that a delivery fails before the handler runs, then is redelivered."),
            click.option("--overlap", type=click.FloatRange(0, 1), default=overlap, show_default=True,
                         help="Probability that a delivery's duplicate runs at the same time, on another "
                              "worker (scale-out duplicates)."),
            click.option("--seed", type=int, help="Seed of every random choice (printed; random when omitted)."),
        ]
        if crash is not None:
            options[5:5] = [
                click.option("--crash", type=click.FloatRange(0, 1), default=crash, show_default=True,
                             help="Probability that an invocation is killed after one of its steps (a commit, "
                                  "a sink call, an emitted event), then retried in a fresh instance."),
            ]
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def build_chaos(duplicates: float, shuffle: str, lost_ack: float, fail: float, overlap: float = 0.0,
                crash: float = 0.0) -> Any:
    from faasemu.chaos.model import ChaosOptions, parse_shuffle
    from faasemu.project.errors import UsageError

    try:
        return ChaosOptions(duplicates, parse_shuffle(str(shuffle)), lost_ack, fail, overlap=overlap, crash=crash)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


RETRY_DELAY = click.option("--retry-delay", type=click.FloatRange(0, 60), default=0.5, show_default=True,
                           help="Seconds before the first retry of a failed delivery; doubles with each retry.")


@main.command()
@manifest_option
@click.option("--host", help="Address to bind (default: the manifest's host, else 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port to bind (default: the manifest's port, else 8080).")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="Also answer requests for this Host name (repeatable; .example.com: it and its subdomains; "
                   "all: any). localhost, *.localhost, IP addresses and the bound address are always answered.")
@click.option("--warm", is_flag=True, help="Start every function's workers now instead of on first use.")
@click.option("--no-reload", is_flag=True, help="Do not watch the project for changes.")
@click.option("--no-ui", is_flag=True, help="Do not serve the dashboard at /_faasemu/.")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), default="text", show_default=True,
              help="Per-invocation lines as text or as JSON objects.")
@click.option("--quiet", is_flag=True, help="No per-invocation lines.")
@click.option("--debug", metavar="FN", help="Give FN one worker attached to this terminal: breakpoint() stops in pdb.")
@click.option("--debugpy", type=click.IntRange(1, 65535), metavar="PORT",
              help="With --debug FN: FN's worker waits on 127.0.0.1:PORT for an editor's debugger (debugpy) to "
                   "attach; breakpoint() and the editor's breakpoints stop there. Needs faasemu[debug].")
@chaos_options((0.0, "0", 0.0, 0.0))
@RETRY_DELAY
@reports_errors
def up(manifest: str, host: str | None, port: int | None, allow_hosts: tuple[str, ...], warm: bool, no_reload: bool,
       no_ui: bool, log_format: str, quiet: bool, debug: str | None, debugpy: int | None, duplicates: float,
       shuffle: str, lost_ack: float, fail: float, overlap: float, seed: int | None, retry_delay: float) -> None:
    """Serve every function: HTTP routes, the event bus, hot reload, optional live chaos."""
    from faasemu.project.console import parse_log_format
    from faasemu.project.errors import UsageError
    from faasemu.project.hosts import entry_problem
    from faasemu.server.up import UpOptions, run_up

    for entry in allow_hosts:
        if problem := entry_problem(entry):
            raise UsageError(f"--allow-host: {problem}")
    if debugpy is not None and debug is None:
        raise UsageError("--debugpy PORT: name the function to debug with --debug FN")
    chaos = build_chaos(duplicates, shuffle, lost_ack, fail, overlap)
    run_up(UpOptions(manifest, host, port, warm, not no_reload, parse_log_format(log_format), quiet,
                     chaos, seed, retry_delay, allow_hosts=allow_hosts, debug=debug, debugpy=debugpy,
                     ui=not no_ui))


@main.command()
@click.argument("events_file", metavar="EVENTS.jsonl", type=click.Path(dir_okay=False))
@manifest_option
@click.option("--target", metavar="URL", help="Post the events to a running `faasemu up` at URL instead.")
@chaos_options((0.0, "0", 0.0, 0.0))
@RETRY_DELAY
@reports_errors
def replay(events_file: str, manifest: str, target: str | None, duplicates: float, shuffle: str, lost_ack: float,
           fail: float, overlap: float, seed: int | None, retry_delay: float) -> None:
    """Deliver a file of events to the subscribed functions, optionally perturbed."""
    from faasemu.delivery.replay import ReplayOptions, run_replay

    chaos = build_chaos(duplicates, shuffle, lost_ack, fail, overlap)
    raise SystemExit(run_replay(ReplayOptions(manifest, events_file, target, chaos, seed, retry_delay)))


@main.command()
@click.argument("events_file", metavar="[EVENTS.jsonl]", required=False, type=click.Path(dir_okay=False))
@manifest_option
@click.option("--runs", type=click.IntRange(0), default=100, show_default=True,
              help="Random schedules after the systematic probes (0: probes only).")
@click.option("--only", multiple=True, metavar="FN", help="Perturb and report only FN (repeatable).")
@click.option("--json", "json_path", metavar="FILE",
              help="Write the JSON report here (always, whatever the exit code).")
@click.option("--junit", "junit_path", metavar="FILE", help="Write JUnit XML here (always, whatever the exit code).")
@click.option("--replay-cex", metavar="FILE", help="Re-run exactly the schedule of a saved counterexample.")
@click.option("--cluster", metavar="ADDRESS",
              help="Run the lanes on a Ray cluster: ray://HOST:PORT (its Ray Client server), or auto (this "
                   "machine's cluster, started if none). Same seed, same report. Needs faasemu[cluster].")
@chaos_options((0.1, "5", 0.05, 0.05), overlap=0.05, crash=0.05)
@reports_errors
def chaos(events_file: str | None, manifest: str, runs: int, only: tuple[str, ...], json_path: str | None,
          junit_path: str | None, replay_cex: str | None, cluster: str | None, duplicates: float, shuffle: str,
          lost_ack: float, fail: float, overlap: float, crash: float, seed: int | None) -> None:
    """Find the handlers that are not idempotent or not order-tolerant (exit 1), with minimal counterexamples."""
    from faasemu.verify.command import ChaosCommandOptions, run_chaos

    options = ChaosCommandOptions(manifest, events_file, runs, only, json_path, junit_path, replay_cex,
                                  build_chaos(duplicates, shuffle, lost_ack, fail, overlap, crash), seed, cluster)
    raise SystemExit(run_chaos(options))


@main.group(invoke_without_command=True)
@manifest_option
@click.option("--dead", is_flag=True, help="Only dead letters.")
@click.option("--redrive", metavar="ID|all", help="Deliver the dead letters of event ID (or all of them) again.")
@click.option("--limit", type=click.IntRange(1), default=30, show_default=True, help="How many recent events.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
@reports_errors
def events(ctx: click.Context, manifest: str, dead: bool, redrive: str | None, limit: int, as_json: bool) -> None:
    """List recent events and their deliveries, dead letters; redrive them. `events new TYPE` prints a sample event."""
    if ctx.invoked_subcommand is not None:
        return
    from faasemu.delivery.inspect import run_events

    run_events(manifest, dead=dead, redrive=redrive, limit=limit, as_json=as_json)


@events.command("new")
@click.argument("kind", metavar="TYPE", required=False)
@click.option("--data", help="The message body, detail or request body as JSON, or @FILE.")
@click.option("--function", "function", default="my-function", show_default=True,
              help="Names the queue, topic, rule or trigger.")
@click.option("--type", "event_type", default="com.example.order.created", show_default=True,
              help="The CloudEvent type (EventBridge's detail-type).")
@click.option("--source", default="com.example.shop", show_default=True, help="The CloudEvent source.")
@click.option("--bucket", default="my-bucket", show_default=True, help="s3: the bucket.")
@click.option("--key", default="uploads/photo.jpg", show_default=True, help="s3: the object key.")
@click.option("--size", type=click.IntRange(0), default=1024, show_default=True, help="s3: the object size.")
@click.option("--method", default="POST", show_default=True, help="apigw-*: the HTTP method.")
@click.option("--path", default="/orders", show_default=True, help="apigw-*: the path, with ?query if any.")
@click.option("--region", default="us-east-1", show_default=True, help="The AWS region in ARNs.")
@click.option("--document", default="users/ada", show_default=True, help="firestore: the document's path.")
@click.option("--protobuf", is_flag=True,
              help="firestore: the data as Firestore sends it by default (application/protobuf), not JSON.")
@click.option("--jsonl", "jsonl", metavar="FILE",
              help="Append the CloudEvent that faasemu delivers as this event to an events file instead.")
@reports_errors
def events_new(kind: str | None, data: str | None, function: str, event_type: str, source: str, bucket: str,
               key: str, size: int, method: str, path: str, region: str, document: str, protobuf: bool,
               jsonl: str | None) -> None:
    """Print a realistic platform event (as `sam local generate-event` does); no TYPE lists them."""
    from faasemu.project.errors import UsageError
    from faasemu.runtimes.sample_events import GENERATORS, EventOptions, generate
    from faasemu.server.invoke import parse_json, read_data

    if kind is None:
        for name, (_, what) in GENERATORS.items():
            click.echo(f"{name:12} {what}")
        return
    if kind not in GENERATORS:
        raise UsageError(f"events new {kind}: no such event type; one of: {', '.join(GENERATORS)}")
    value = None
    if data is not None:
        raw, origin = read_data(data)
        value = parse_json(raw, origin)
    from faasemu.runtimes.google_sources import FirestoreInputError

    options = EventOptions(value, function, event_type, source, bucket, key, size, method, path, region,
                           document=document, protobuf=protobuf)
    try:
        made = generate(kind, options)
    except FirestoreInputError as exc:
        raise UsageError(f"events new {kind}: {exc}") from None
    if jsonl is None:
        click.echo(json.dumps(made.event, indent=2))
        return
    if made.cloudevent is None:
        raise UsageError(f"events new {kind} --jsonl: faasemu does not deliver {kind} events from an events file "
                         "(an HTTP request, not an event): --jsonl works for every event type")
    with open(jsonl, "a", encoding="utf-8") as file:
        file.write(json.dumps(made.cloudevent) + "\n")
    click.echo(f"appended event {made.cloudevent['id']} ({made.cloudevent['type']}) to {jsonl}", err=True)


@main.command()
@click.argument("function")
@manifest_option
@click.option("--data", help="The event as JSON, or @FILE to read it from a file.")
@click.option("--event", "event_type", metavar="TYPE", help="Deliver --data as the data of a CloudEvent of this type.")
@click.option("--http", nargs=2, metavar="METHOD PATH",
              help="Send an HTTP request to the function (--data is the body).")
@click.option("--trigger", metavar="NAME",
              help='POST the Hasura payload of trigger NAME, as its webhook gets it (--data \'{"new": {...}}\').')
@click.option("--op", type=click.Choice(["INSERT", "UPDATE", "DELETE", "MANUAL"], case_sensitive=False),
              help="The op of a --trigger payload (default: from --data's old and new rows).")
@reports_errors
def invoke(function: str, manifest: str, data: str | None, event_type: str | None,
           http: tuple[str, str] | None, trigger: str | None, op: str | None) -> None:
    """Invoke one function once, without a server, and print its result."""
    from faasemu.server.invoke import InvokeOptions, run_invoke

    raise SystemExit(run_invoke(InvokeOptions(manifest, function, data, event_type, http, trigger, op)))


@main.command("manifest")
@manifest_option
@reports_errors
def manifest_command(manifest: str) -> None:
    """Print the faasemu.yaml equivalent of the project (a SAM template or serverless.yml is translated)."""
    from faasemu.project.formats import manifest_text

    click.echo(manifest_text(manifest), nl=False)


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@reports_errors
def init(directory: str) -> None:
    """Scaffold a manifest, a sample handler and an events file in DIRECTORY."""
    from faasemu.project.scaffold import run_init

    run_init(directory)


if __name__ == "__main__":  # pragma: no cover
    main()
