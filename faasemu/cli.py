"""The `faasemu` command: parse flags, call one run_*() each, turn FaasemuError into an exit code.

Imports are lazy so that `faasemu invoke` costs little more than starting Python.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from faasemu import __version__

MANIFEST_HELP = "The manifest to use."


def manifest_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-f", "--manifest", default="faasemu.yaml", show_default=True, type=click.Path(dir_okay=False),
        help=MANIFEST_HELP,
    )(command)


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """The one place a FaasemuError becomes `Error: ...` on stderr and its exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from faasemu.errors import FaasemuError

        try:
            return command(*args, **kwargs)
        except FaasemuError as exc:
            error = click.ClickException(str(exc))
            error.exit_code = exc.exit_code
            raise error from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="faasemu")
def main() -> None:
    """Run serverless functions locally, and find the handlers that are not idempotent or not order-tolerant."""


@main.command()
@manifest_option
@click.option("--host", help="Address to bind (default: the manifest's host, else 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port to bind (default: the manifest's port, else 8080).")
@click.option("--warm", is_flag=True, help="Start every function's workers now instead of on first use.")
@click.option("--no-reload", is_flag=True, help="Do not watch the project for changes.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Per-invocation lines as text or as JSON objects.")
@click.option("--quiet", is_flag=True, help="No per-invocation lines.")
@reports_errors
def up(manifest: str, host: str | None, port: int | None, warm: bool, no_reload: bool, log_format: str,
       quiet: bool) -> None:
    """Serve every function of the manifest over HTTP, with hot reload."""
    from faasemu.up import UpOptions, run_up

    run_up(UpOptions(manifest, host, port, warm, not no_reload, log_format, quiet))  # type: ignore[arg-type]


@main.command()
@click.argument("function")
@manifest_option
@click.option("--data", help="The event as JSON, or @FILE to read it from a file.")
@click.option("--event", "event_type", metavar="TYPE", help="Deliver --data as the data of a CloudEvent of this type.")
@click.option("--http", nargs=2, metavar="METHOD PATH", help="Send an HTTP request to the function (--data is the body).")
@reports_errors
def invoke(function: str, manifest: str, data: str | None, event_type: str | None,
           http: tuple[str, str] | None) -> None:
    """Invoke one function once, without a server, and print its result."""
    from faasemu.invoke import InvokeOptions, run_invoke

    raise SystemExit(run_invoke(InvokeOptions(manifest, function, data, event_type, http)))


@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@reports_errors
def init(directory: str) -> None:
    """Scaffold a manifest, a sample handler and an events file in DIRECTORY."""
    from faasemu.scaffold import run_init

    run_init(directory)


if __name__ == "__main__":  # pragma: no cover
    main()
