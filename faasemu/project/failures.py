"""`WorkerError`: what a worker reports of a handler's exception (or of a failed load), as one typed record.

The worker describes the exception (workers/entry.py `describe_error`), the wire carries it as a
plain dict (marshal cannot carry dataclasses: `to_wire`/`from_wire`), and everything above reads
the fields of this record: the console prints it (project/console.py `Console.error`), every other
place prints `format_error` of it (replay, invoke, the chaos report, the bus's `last_error`).
It lives in project/ because the console does, and the console sits at the bottom layer.

Standard library only: the worker process imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# One frame of a traceback as the worker sends it: file, line, function, source line.
Frame = tuple[str, int, str, str]


@dataclass(frozen=True)
class WorkerError:
    """A handler's exception or a load failure.

    `where` is the project line at fault (`app.py:12`, or "" when no frame is the project's),
    `frames` the user's frames only, `text` the full formatted traceback (for `--log-format json`),
    `retryable` False when the handler said so (an exception with `retryable = False`), which
    sends the delivery to the dead letters without retrying.
    """

    type: str
    message: str
    where: str = ""
    frames: tuple[Frame, ...] = field(default=(), repr=False)
    text: str = field(default="", repr=False)
    retryable: bool = True

    def to_wire(self) -> dict[str, Any]:
        """A dict of plain values for the worker's wire (and JSON): `retryable` only when False, as it always was."""
        wire: dict[str, Any] = {"type": self.type, "message": self.message, "frames": [list(f) for f in self.frames],
                                "where": self.where, "text": self.text}
        if not self.retryable:
            wire["retryable"] = False
        return wire

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> WorkerError:
        """The record from a wire dict; missing keys take their defaults (older or hand-made replies)."""
        return cls(
            type=str(data.get("type") or "Error"),
            message=str(data.get("message") or ""),
            where=str(data.get("where") or ""),
            frames=tuple((str(f[0]), int(f[1]), str(f[2]), str(f[3])) for f in data.get("frames") or ()),
            text=str(data.get("text") or ""),
            retryable=data.get("retryable", True) is not False,
        )

    @property
    def headline(self) -> str:
        """`Type: message`, the first line of every rendering."""
        return f"{self.type}: {self.message}"


def is_retryable(exc: BaseException) -> bool:
    """False when the handler marked its exception final (`retryable = False` on it, the convention of
    docs/delivery.md): the delivery then goes to the dead letters without its retries."""
    return getattr(exc, "retryable", True) is not False


def format_error(error: WorkerError, *, where: bool = True) -> str:
    """The one plain-text form: `Type: message (file.py:12)`; the place left out when unknown or not wanted."""
    place = f" ({error.where})" if where and error.where else ""
    return f"{error.headline}{place}"
