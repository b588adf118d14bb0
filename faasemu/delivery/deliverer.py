"""What the bus needs from the process that owns the workers: a small protocol, so that `delivery/`
never imports `server/` (a higher layer). `server.supervisor.Supervisor` satisfies it structurally.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from faasemu.project.console import Console
from faasemu.workers.pool import FunctionPool, Outcome


class Deliverer(Protocol):
    """The functions' worker pools by name, and where a delivery's outcome is reported."""

    @property
    def pools(self) -> Mapping[str, FunctionPool]:
        """The current functions (a live manifest edit changes them), by name."""
        ...

    @property
    def console(self) -> Console:
        ...

    def report(self, name: str, trigger: str, status: str | int, outcome: Outcome, note: str = "") -> None:
        """One console line for an invocation whose handler ran (with its error, if it raised)."""
        ...
