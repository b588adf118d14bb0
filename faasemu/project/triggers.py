"""PURE: the `triggers:` section of faasemu.yaml: Hasura-style event triggers on state tables.

```yaml
triggers:
  order-placed:              # the trigger's name, as Hasura names it
    table: orders            # [schema.]table in the state database
    on: [insert, update]     # insert | update | delete
    columns: [status]        # optional: an update fires only when one of these changes
    webhook: process-order   # the function that receives it
    retries: 3               # Hasura's retry_conf.num_retries (default 0)
    interval: 10s            # Hasura's retry_conf.interval_sec (default 10)
```

What can be checked from the manifest alone is checked here (names, keys, operations, that the
webhook is a function, that the state is a database). Whether the table and columns exist is known
only once the database is open: the capture installer checks that, located by `TriggerSpec.line`.
"""

from __future__ import annotations

import re
from typing import NoReturn, Protocol

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from faasemu.project.spec import StateSpec, TriggerOp, TriggerSpec

TRIGGER_KEYS = ("table", "on", "columns", "webhook", "retries", "interval")
OPERATIONS: tuple[TriggerOp, ...] = ("insert", "update", "delete")
HASURA_RETRIES, HASURA_INTERVAL = 0, 10.0  # retry_conf defaults: num_retries 0, interval_sec 10
MAX_NAME = 42  # Hasura's limit on a trigger's name (it names SQL triggers after it)

_TRIGGER_NAME = re.compile(r"[A-Za-z0-9_-]+")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Reader(Protocol):
    """What this module needs of the manifest parser (project/manifest.py `_Parser`)."""

    def fail(self, at: Node | None, message: str) -> NoReturn: ...
    def pairs(self, node: MappingNode, where: str) -> dict[str, tuple[Node, Node]]: ...
    def keys(self, node: MappingNode, where: str, allowed: tuple[str, ...]) -> dict[str, tuple[Node, Node]]: ...
    def mapping(self, node: Node, where: str, example: str) -> MappingNode: ...
    def string(self, node: Node, where: str, what: str = "a string") -> str: ...
    def strings(self, node: Node, where: str, what: str) -> list[str]: ...
    def integer(self, node: Node, where: str, low: int, high: int | None = None) -> int: ...
    def duration(self, node: Node, where: str) -> float: ...


def parse_triggers(reader: Reader, key: Node, node: Node, functions: tuple[str, ...],
                   state: StateSpec) -> tuple[TriggerSpec, ...]:
    """Every trigger of the section, in manifest order. `functions`: the function names (webhooks)."""
    if isinstance(node, ScalarNode) and node.tag.endswith(":null"):
        return ()
    section = reader.mapping(node, "triggers", "{order-placed: {table: orders, on: [insert], webhook: FUNCTION}}")
    found = reader.pairs(section, "triggers")
    if found and state.kind not in ("sqlite", "postgres"):
        reader.fail(key, f"triggers: capture changes to tables of the state database, so they need "
                         f"state.sqlite or state.postgres, not state.{state.kind}")
    return tuple(_trigger(reader, name, name_key, value, functions) for name, (name_key, value) in found.items())


def _trigger(reader: Reader, name: str, key: Node, node: Node, functions: tuple[str, ...]) -> TriggerSpec:
    where = f"triggers.{name}"
    if not _TRIGGER_NAME.fullmatch(name) or len(name) > MAX_NAME:
        reader.fail(key, f"{where}: '{name}' is not a trigger name; use letters, digits, '-' and '_', "
                         f"at most {MAX_NAME} characters (Hasura's rule)")
    example = "{table: orders, on: [insert], webhook: FUNCTION}"
    found = reader.keys(reader.mapping(node, where, example), where, TRIGGER_KEYS)
    for required in ("table", "on", "webhook"):
        if required not in found:
            reader.fail(key, f"{where}: missing required key '{required}'; a trigger is {example}")
    table_node = found["table"][1]
    schema, table = _table(reader, table_node, reader.string(table_node, f"{where}.table", "[schema.]table"),
                           f"{where}.table")
    on = _operations(reader, found["on"][1], f"{where}.on")
    columns: list[str] = []
    if "columns" in found:
        columns_node = found["columns"][1]
        if "update" not in on:
            reader.fail(found["columns"][0], f"{where}.columns: limits which updates fire, so it needs 'update' "
                                             f"in {where}.on (it has {', '.join(on)})")
        columns = reader.strings(columns_node, f"{where}.columns", "a column name")
        for column in columns:
            if not _IDENTIFIER.fullmatch(column):
                reader.fail(columns_node, f"{where}.columns: '{column}' is not a column name "
                                          "(letters, digits and '_', not starting with a digit)")
    webhook_node = found["webhook"][1]
    webhook = reader.string(webhook_node, f"{where}.webhook", "the name of a function")
    if webhook not in functions:
        shown = ", ".join(functions) or "none"
        reader.fail(webhook_node, f"{where}.webhook: '{webhook}' is not a function of this manifest; "
                                  f"the functions are: {shown}")
    retries = reader.integer(found["retries"][1], f"{where}.retries", 0, 100) if "retries" in found \
        else HASURA_RETRIES
    interval = reader.duration(found["interval"][1], f"{where}.interval") if "interval" in found \
        else HASURA_INTERVAL
    return TriggerSpec(name=name, table=table, webhook=webhook, on=on, columns=tuple(dict.fromkeys(columns)),
                       schema=schema, retries=retries, interval=interval, line=_line(key))


def _table(reader: Reader, node: Node, text: str, where: str) -> tuple[str | None, str]:
    parts = text.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(part) for part in parts):
        reader.fail(node, f"{where}: '{text}' is not [schema.]table, as in orders or public.orders")
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def _operations(reader: Reader, node: Node, where: str) -> tuple[TriggerOp, ...]:
    items = node.value if isinstance(node, SequenceNode) else [node]
    if not items:
        reader.fail(node, f"{where}: name at least one of {', '.join(OPERATIONS)}")
    seen: list[TriggerOp] = []
    for item in items:
        text = reader.string(item, where, "insert, update or delete").lower()
        if text not in OPERATIONS:
            reader.fail(item, f"{where}: '{text}' is not an operation; use insert, update or delete")
        if text not in seen:
            seen.append(text)
    return tuple(seen)


def _line(node: Node) -> int:
    return node.start_mark.line + 1
