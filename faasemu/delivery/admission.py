"""Events a platform would refuse before any function sees them, refused where they enter faasemu.

A runtime may give `Runtime.refuse_event(spec, event) -> str | None` (aws-lambda: EventBridge's
`detail` must be a JSON object). The ingress answers 400 naming the event and the function;
`replay` and `chaos` stop on the file's line with exit 2, so no campaign passes on events the
platform would never have delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faasemu.events.subscriptions import subscribers
from faasemu.project.errors import InputFileError
from faasemu.project.platforms import PLATFORMS
from faasemu.project.spec import FunctionSpec
from faasemu.runtimes.contract import load_runtime


def refusal(event: dict[str, Any], functions: Sequence[FunctionSpec], target: str | None = None) -> str | None:
    """Why a function this event reaches (its subscribers, or `target`) would refuse it, or None."""
    ruled = [(spec, load_runtime(spec.runtime).refuse_event) for spec in functions
             if PLATFORMS[spec.runtime].capabilities.refuses_events]
    if not ruled:  # no runtime with a rule: the ingress's hot path pays nothing more
        return None
    names = {target} if target else set(subscribers(str(event.get("type")), [spec for spec, _ in ruled]))
    for spec, rule in ruled:
        reason = rule(spec, event) if spec.name in names else None
        if reason:
            return reason
    return None


def check_events_file(path: str, events: list[dict[str, Any]], functions: Sequence[FunctionSpec], *,
                      lines: bool = True) -> None:
    """Raise InputFileError on the first event of `path` a function would refuse, with its line
    (`lines`: `path` is the JSON Lines file the events were read from)."""
    for index, event in enumerate(events):
        reason = refusal(event, functions)
        if reason:
            raise InputFileError(path, _line_of(path, index) if lines else None, reason)


def _line_of(path: str, index: int) -> int | None:
    """The line of the index-th event: read_events_file skips blank lines and splits on '\\n' only."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    seen = -1
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            seen += 1
            if seen == index:
                return number
    return None
