"""`state.hooks` in a campaign: the user's own `reset` and `snapshot` functions for any other store.

They are user code, so they run in a short-lived interpreter with the run's environment (never in
faasemu's own process, which imports no user module). `snapshot` returns JSON-able data: a dict of
lists of row dicts becomes one table per key; anything else becomes one table `hook(value)`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from faasemu.project.environment import handler_base_env
from faasemu.project.errors import FaasemuError
from faasemu.verify.model import Snapshot, Table

_CALL = """
import importlib, json, sys
module, _, name = sys.argv[1].partition(":")
result = getattr(importlib.import_module(module), name)()
sys.stdout.write(json.dumps(result, sort_keys=True, default=str) if sys.argv[2] == "snapshot" else "null")
"""


def call(hook: str, what: str, root: str, env: dict[str, str]) -> Any:
    completed = subprocess.run(
        [sys.executable, "-c", _CALL, hook, what], cwd=root,
        env={**handler_base_env(os.environ), **env, "PYTHONPATH": root},  # like a handler: not the whole shell
        capture_output=True, text=True, timeout=120,
    )
    if completed.returncode != 0:
        raise FaasemuError(f"state.hooks.{what} ({hook}) failed:\n{completed.stderr.strip()}")
    return json.loads(completed.stdout or "null")


def to_snapshot(value: Any) -> Snapshot:
    if isinstance(value, dict) and value and all(
        isinstance(rows, list) and all(isinstance(row, dict) for row in rows) for rows in value.values()
    ):
        tables = []
        for name in sorted(value):
            columns = tuple(sorted({key for row in value[name] for key in row}))
            rows = tuple(sorted(
                (tuple(json.dumps(row.get(c), sort_keys=True) for c in columns) for row in value[name]),
            ))
            tables.append(Table(name, columns, (), rows))
        return Snapshot(tuple(tables))
    return Snapshot((Table("hook", ("value",), (), ((json.dumps(value, sort_keys=True),),)),))
