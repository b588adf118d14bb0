"""The console prints user text as written: never parsed as rich markup, in text and in JSON."""

from __future__ import annotations

import io
import json

import pytest

from faasemu.project.console import LOG_FORMATS, Console, parse_log_format
from faasemu.project.failures import WorkerError

# What users write and markup would eat or choke on: brackets, style tags, closing tags, emoji codes.
TRICKY = [
    "no route for [/orders]",
    "[bold]not bold[/bold]",
    "api/orders/[id].py",
    "pip install 'faasemu[gcf]'",
    "[/]",
    "[link=http://x]y[/link] :smile:",
]


def text_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out), out


def json_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console("json", file=out), out


def records(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("text", TRICKY)
def test_warnings_and_notices_print_brackets_as_written(text: str) -> None:
    console, out = text_console()
    console.warning(text)
    console.notice(text)
    printed = out.getvalue()
    assert printed.count(text) == 2, printed
    assert "\x1b[" not in printed  # not a terminal: no colour codes


@pytest.mark.parametrize("text", TRICKY)
def test_invocation_and_output_lines_print_brackets_as_written(text: str) -> None:
    console, out = text_console()
    console.invocation(text, f"GET {text}", 200, 1.5, note=text)
    console.worker_output(text, text)
    console.flush()
    printed = out.getvalue()
    assert printed.count(text) == 5, printed


@pytest.mark.parametrize("text", TRICKY)
def test_a_handler_error_prints_type_message_and_place_as_written(text: str) -> None:
    console, out = text_console()
    error = WorkerError("ValueError", text, where="api/orders/[id].py:3",
                        frames=(("/nowhere/api/orders/[id].py", 3, "handler", f"raise ValueError({text!r})"),))
    console.error("orders[v2]", error, context=text)
    printed = out.getvalue()
    assert "orders[v2]" in printed
    assert f"{text}: ValueError: {text}" in printed
    assert "(api/orders/[id].py:3)" in printed


def test_the_startup_table_prints_cells_as_written() -> None:
    console, out = text_console()
    console.startup("faasemu [dev] · [bold]p[/bold]", [("fn[1]", "aws-lambda", "GET /orders/[id]", "[link]")],
                    "post events to [here]")
    printed = out.getvalue()
    for text in ("faasemu [dev] · [bold]p[/bold]", "fn[1]", "GET /orders/[id]", "[link]", "post events to [here]"):
        assert text in printed, text


@pytest.mark.parametrize("text", TRICKY)
def test_json_lines_carry_user_text_unchanged(text: str) -> None:
    console, out = json_console()
    console.warning(text)
    console.notice(text)
    console.invocation(text, text, 500, 2.0, note=text)
    console.worker_output(text, text)
    console.error(text, WorkerError("KeyError", text, where=text, text=f"Traceback\n{text}"), context=text)
    console.flush()
    got = records(out)
    assert [r["event"] for r in got] == ["warning", "notice", "invocation", "output", "error"]
    assert got[0]["message"] == got[1]["message"] == text
    assert got[2]["function"] == got[2]["trigger"] == got[2]["note"] == text
    assert got[3]["line"] == text
    assert got[4] == {**got[4], "function": text, "context": text, "type": "KeyError", "message": text,
                      "where": text, "traceback": f"Traceback\n{text}"}


def test_json_error_says_null_for_what_the_worker_did_not_know() -> None:
    console, out = json_console()
    console.error("fn", WorkerError("timeout", "Task timed out after 3.00 seconds"))
    console.flush()
    (record,) = records(out)
    assert record["where"] is None and record["traceback"] is None and record["context"] is None


def test_log_formats_are_the_literals_and_the_cli_offers_the_same() -> None:
    from faasemu.cli import main

    assert LOG_FORMATS == ("text", "json")
    assert main.LOG_FORMATS == LOG_FORMATS
    assert [parse_log_format(name) for name in LOG_FORMATS] == ["text", "json"]
    with pytest.raises(ValueError, match="choose one of text, json"):
        parse_log_format("yaml")
