"""`faasemu events`: what the event log of `faasemu up` holds, and redriving dead letters."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

from rich.table import Table

from faasemu.delivery.eventlog import DeliveryRow, EventLog, events_json
from faasemu.delivery.webhooks import change_summary
from faasemu.project.console import plain, rich_console
from faasemu.project.errors import UsageError
from faasemu.project.manifest import load_manifest
from faasemu.project.ownership import running_server_url
from faasemu.project.paths import ProjectPaths


def run_events(manifest_path: str, *, dead: bool, redrive: str | None, limit: int, as_json: bool) -> None:
    manifest = load_manifest(manifest_path)
    path = ProjectPaths(manifest.root).events_db
    if not os.path.exists(path):
        raise UsageError(f"no event log at {os.path.relpath(path)} yet: `faasemu up` creates it when it starts")
    log = EventLog(path)
    console = rich_console()
    try:
        if redrive is not None:
            count = log.redrive(None if redrive == "all" else redrive)
            if count == 0:
                what = "no dead letters" if redrive == "all" else f"no dead letter of event '{redrive}'"
                raise UsageError(f"{what} in {os.path.relpath(path)}; `faasemu events --dead` lists them")
            woke = _wake(running_server_url(manifest) or f"http://{manifest.host}:{manifest.port}")
            where = "by the running faasemu up" if woke else "when faasemu up next starts"
            console.print(plain(f"{count} dead-lettered deliveries are pending again; they are delivered {where}"))
            return
        found = log.recent(limit, dead_only=dead)
    finally:
        log.close()
    if as_json:
        print(json.dumps(events_json(found), indent=2))
        return
    table = Table(title="dead letters" if dead else f"the last {limit} events", box=None, header_style="bold")
    for column in ("received", "event id", "type", "origin", "function", "status", "attempts", "last error"):
        table.add_column(column, overflow="fold")
    for stored, rows in found:
        received = time.strftime("%H:%M:%S", time.localtime(stored.received_at))
        first = True
        shown: list[DeliveryRow | None] = [*rows] if rows else [None]
        for row in shown:
            # Every cell is a Text: ids, types, origins and handler errors are user text, never markup.
            kind = change_summary(stored.event) if stored.origin == "trigger" else stored.event["type"]
            cells = [received, stored.event["id"], kind, stored.origin] if first else ["", "", "", ""]
            texts = [plain(cell) for cell in cells]
            if row is None:
                texts += [plain("(no subscriber)"), plain(""), plain(""), plain("")]
            else:
                style = {"done": "green", "dead": "red"}.get(row.status, "yellow")
                name = row.function + (" (duplicate)" if row.copy else "")
                texts += [plain(name), plain(row.status if row.status in ("done", "dead") else "pending", style),
                          plain(row.attempts), plain(row.last_error or "")]
            table.add_row(*texts)
            first = False
    console.print(table)
    if dead and found:
        console.print("redrive with: faasemu events --redrive ID  (or --redrive all)")


def _wake(base_url: str) -> bool:
    """Tell a running `faasemu up` to pick the redriven deliveries up; False when none answers."""
    base_url = base_url.replace("//0.0.0.0:", "//127.0.0.1:")
    try:
        request = urllib.request.Request(f"{base_url}/_faasemu/bus/wake", data=b"{}", method="POST",
                                         headers={"content-type": "application/json"})  # faasemu/project/hosts.py
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False
