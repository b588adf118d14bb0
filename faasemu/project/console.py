"""Everything `faasemu up` prints, through one object.

Per-invocation lines are pre-formatted plain text, buffered and written in one `write` per tick:
a rich-rendered line costs ~0.2 ms, more than a whole invocation. rich renders what is rare and
worth it: the startup table, notices, tracebacks. rich decides colour (NO_COLOR, non-TTY).

Every method takes plain text and never parses it as rich markup: the text carries error messages,
paths and event types written by users (`no route for [/orders]`, `api/orders/[id].py`,
`pip install 'faasemu[gcf]'`), which markup would eat or choke on (`MarkupError`). Styles are
applied with `Text` spans instead, so a caller cannot forget to escape.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, Literal, TextIO, get_args

from rich.console import Console as RichConsole
from rich.table import Table
from rich.text import Text
from rich.traceback import Frame, Stack, Trace, Traceback

from faasemu.project.failures import WorkerError

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)


def parse_log_format(name: str) -> LogFormat:
    """`--log-format`'s value as the Literal: click hands the command a plain str."""
    if name not in LOG_FORMATS:  # mypy narrows `name` to the Literal past this test: no cast needed
        raise ValueError(f"log format {name!r}: choose one of {', '.join(LOG_FORMATS)}")
    return name


def rich_console(file: TextIO | None = None) -> RichConsole:
    """A rich console; when not writing to a terminal (a log file, CI, a pipe) it does not wrap at
    80 columns, which would break every table row in two."""
    file = file or sys.stdout
    width = None if file.isatty() or os.environ.get("COLUMNS") else 200
    return RichConsole(file=file, highlight=False, soft_wrap=False, width=width)


def plain(value: Any, style: str = "") -> Text:
    """User- or file-derived text as a rich renderable that is never parsed as markup or emoji codes."""
    return Text(str(value), style=style)


_second: list[Any] = [-1, ""]


def clock(now: float) -> str:
    """`12:00:01.231` in local time (the seconds part formatted once per second: this is per request)."""
    whole = int(now)
    if whole != _second[0]:
        _second[0], _second[1] = whole, time.strftime("%H:%M:%S", time.localtime(whole))
    return f"{_second[1]}.{int(now * 1000) % 1000:03d}"


class Console:
    """The console of a running command. Safe to call from the event loop only."""

    def __init__(self, log_format: LogFormat = "text", quiet: bool = False, file: TextIO | None = None) -> None:
        self.log_format = log_format
        self.quiet = quiet
        self.file = file or sys.stdout
        self.rich = rich_console(self.file)
        self._lines: list[str] = []
        self._flush_pending = False
        # Called with each invocation and notice as fields (the dashboard's live stream): structured,
        # so that no reader parses the text lines, and called even when quiet.
        self.observers: list[Callable[[dict[str, Any]], None]] = []

    def observe(self, **fields: Any) -> None:
        for observer in self.observers:
            observer(fields)

    # -- plain lines, batched ------------------------------------------------------------------

    def line(self, text: str) -> None:
        self._lines.append(text)
        if self._flush_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_pending = True
        loop.call_later(0.02, self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        if self._lines:
            lines, self._lines = self._lines, []
            self.file.write("\n".join(lines) + "\n")
            self.file.flush()

    def record(self, **fields: Any) -> None:
        """A machine-readable line (`--log-format json`)."""
        self.line(json.dumps(fields, separators=(",", ":"), default=str))

    # -- what happens ----------------------------------------------------------------------------

    def invocation(
        self,
        function: str,
        trigger: str,
        status: str | int,
        ms: float,
        cold_ms: float | None = None,
        note: str = "",
    ) -> None:
        now = time.time()
        if self.observers:
            self.observe(time=now, event="invocation", function=function, trigger=trigger, status=status,
                         ms=round(ms, 3), cold_ms=None if cold_ms is None else round(cold_ms, 1), note=note)
        if self.quiet:
            return
        if self.log_format == "json":
            self.record(time=now, event="invocation", function=function, trigger=trigger, status=status,
                        ms=round(ms, 3), cold_ms=None if cold_ms is None else round(cold_ms, 1), note=note or None)
            return
        cold = f"  cold {cold_ms:.0f} ms" if cold_ms is not None else ""
        tail = f"  {note}" if note else ""
        self.line(f"{clock(now)}  {function:<14} {trigger:<24} {status!s:<5} {ms:7.1f} ms{cold}{tail}")

    def worker_output(self, function: str, line: str) -> None:
        if self.observers:
            self.observe(time=time.time(), event="output", function=function, line=line)
        if self.log_format == "json":
            self.record(time=time.time(), event="output", function=function, line=line)
        else:
            self.line(f"{'':12}  {function:<14} | {line}")

    def notice(self, text: str, style: str = "cyan") -> None:
        if self.observers:
            self.observe(time=time.time(), event="notice", message=str(text))
        if self.log_format == "json":
            self.record(time=time.time(), event="notice", message=text)
            return
        self.flush()
        self.rich.print(Text.assemble((clock(time.time()), "dim"), "  ", (str(text), style)))

    def warning(self, text: str) -> None:
        if self.log_format == "json":
            self.record(time=time.time(), event="warning", message=text)
            return
        self.flush()
        self.rich.print(Text.assemble(("warning:", "bold yellow"), " ", str(text)))

    def internal_error(self, text: str) -> None:
        """A fault in faasemu's own code, written as plain text without rich: the path that reports
        a failure must not be able to fail the same way (the bus's delivery loops rely on it)."""
        try:
            if self.log_format == "json":
                self.record(time=time.time(), event="internal_error", message=text)
                self.flush()
                return
            self.flush()
            self.file.write(f"{clock(time.time())}  faasemu internal error: {text}\n")
            self.file.flush()
        except Exception:  # last resort: the caller goes on whatever the console does
            pass

    def error(self, function: str, error: WorkerError, context: str = "") -> None:
        """A handler's exception, with its traceback highlighted (every part of it plain text, never markup)."""
        if self.observers:
            self.observe(time=time.time(), event="error", function=function, context=context or None,
                         type=error.type, message=error.message, where=error.where or None,
                         traceback=error.text or None)
        if self.log_format == "json":
            # null, not "", for what the worker did not know (a timeout has no line and no traceback)
            self.record(time=time.time(), event="error", function=function, context=context or None,
                        type=error.type, message=error.message, where=error.where or None,
                        traceback=error.text or None)
            return
        self.flush()
        where = f"  ({error.where})" if error.where else ""
        prefix = f"{context}: " if context else ""
        self.rich.print(Text.assemble((str(function), "bold red"), "  ", prefix, (error.headline, "red"), where))
        if error.frames:
            stack = Stack(
                exc_type=error.type,
                exc_value=error.message,
                frames=[Frame(filename=f, lineno=n, name=name, line=code) for f, n, name, code in error.frames],
            )
            self.rich.print(Traceback(Trace(stacks=[stack]), width=min(self.rich.width, 120), extra_lines=1))

    # -- start-up --------------------------------------------------------------------------------

    def startup(self, title: str, rows: list[tuple[str, str, str, str]], footer: str) -> None:
        if self.log_format == "json":
            self.record(time=time.time(), event="startup", title=title,
                        functions=[{"function": r[0], "runtime": r[1], "triggers": r[2], "route": r[3]} for r in rows])
            return
        self.rich.print(plain(title, "bold"))
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("function", "runtime", "triggers", "route"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(plain(cell) for cell in row))
        self.rich.print(table)
        self.rich.print(plain(footer))
        self.rich.print()


def relative(path: str, root: str) -> str:
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return path
