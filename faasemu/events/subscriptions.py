"""PURE: which functions an event goes to: `events:` patterns matched against its type."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from faasemu.project.spec import FunctionSpec

# An events file's table change (events/files.py change_line): applied to the state, delivered to nobody,
# not even to `*`; the trigger events its change fires go to the triggers' webhooks.
CHANGE_TYPE = "faasemu.change"


def matches(pattern: str, event_type: str) -> bool:
    """Glob match of an `events:` pattern against a type, case-sensitive (`fnmatch.fnmatchcase`).

    `*` matches any characters, dots included: `order.*` matches `order.item.added`, and `*`
    alone matches every type. `?` and `[abc]` work as in shell globs.
    """
    return fnmatchcase(event_type, pattern)


def subscribers(event_type: str, functions: Sequence[FunctionSpec]) -> list[str]:
    """Names of the functions subscribed to `event_type`, in manifest order (the canonical order of
    docs/verification.md#chaos-model)."""
    if event_type == CHANGE_TYPE:
        return []
    return [spec.name for spec in functions if any(matches(pattern, event_type) for pattern in spec.events)]
