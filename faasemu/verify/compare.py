"""PURE: the oracle's comparison: calibrate nondeterminism, mask it, compare, diff (docs/verification.md#oracle).

Two runs are compared as multisets: per table, the rows left once masked columns are removed
(`state.ignore` and the calibrated nondeterministic `table.column`s), then the sink calls and
emitted events. A masked `sink.<name>` / `emitted.<type>` drops the body / data, so calls that
carry a uuid or a time are judged by how many were made. Diff keys, as in the JSON report:

    accounts[id=alice].balance   [20, 40]         a column of a row matched by its primary key
    accounts[id=bob]             [null, {...}]    a keyed row on one side only
    emails[to=a@x,subject=hi]    [1, 2]           how often a row occurs, keyed by its content
    sink email / sink email PUT  [4, 5]           calls per sink name (and method, when not POST)
    sink email {"to": "a"}       [1, 0]           equal counts, different bodies: one per body
    emitted order.paid           [1, 2]           events per type; then `emitted <type> <source> id=<id> <data>`
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from faasemu.verify.model import Effects, Row, RunResult, Snapshot, Table

Diff = dict[str, list[Any]]
_PLAIN = re.compile(r"[\w.@:/+-]+")  # strings shown bare in keys; anything else is JSON-quoted
_MISSING = object()  # a column one run's table lacks: its rows hold this instead of a value


def nondeterministic_columns(a: RunResult, b: RunResult) -> frozenset[str]:
    """What differs between two baseline runs: `table.column`s whose multiset of values differs,
    and `sink.<name>` / `emitted.<type>` whose bodies differ while their counts agree."""
    found: set[str] = set()
    for ta, tb in _table_pairs(a.snapshot, b.snapshot):
        for column in dict.fromkeys(ta.columns + tb.columns):
            if _values(ta, column) != _values(tb, column):
                found.add(f"{ta.name}.{column}")
    fx_a, fx_b = _effects(a.effects, frozenset()), _effects(b.effects, frozenset())
    for group in {fx[0] for fx in fx_a + fx_b}:
        counts_equal = _count(fx_a, group, 1) == _count(fx_b, group, 1)
        if counts_equal and _count(fx_a, group, 2) != _count(fx_b, group, 2):
            found.add(group)
    return frozenset(found)


class Comparator:
    """Compares runs with `masked` = nondeterministic | ignore left out of every row and effect."""

    __slots__ = ("ignore", "masked", "nondeterministic")

    def __init__(self, nondeterministic: Iterable[str] = frozenset(), ignore: Iterable[str] = ()) -> None:
        self.nondeterministic = frozenset(nondeterministic)
        self.ignore = frozenset(ignore)
        self.masked = self.nondeterministic | self.ignore

    def extended(self, nondeterministic: Iterable[str]) -> Comparator:
        """A comparator with more nondeterministic fields (the re-run baseline found them)."""
        return Comparator(self.nondeterministic | frozenset(nondeterministic), self.ignore)

    def comparable(self, result: RunResult) -> Hashable:
        """A canonical form: equal exactly when the two runs count as the same outcome. An empty
        table and a missing one are the same (no rows either way)."""
        tables = tuple((t.name, self.form(t)) for t in sorted(result.snapshot.tables, key=lambda t: t.name) if t.rows)
        return tables, tuple(sorted(fx[2] for fx in _effects(result.effects, self.masked)))

    def differs(self, baseline: RunResult, other: RunResult) -> bool:
        return self.comparable(baseline) != self.comparable(other)

    def diff(self, baseline: RunResult, other: RunResult) -> Diff:
        """The JSON report's `diff`: key -> [baseline, other], keys sorted, values JSON-able."""
        out: Diff = {}
        for ta, tb in _table_pairs(baseline.snapshot, other.snapshot):
            self._diff_table(ta, tb, out)
        fx_a, fx_b = _effects(baseline.effects, self.masked), _effects(other.effects, self.masked)
        counts_a, counts_b = Counter(fx[1] for fx in fx_a), Counter(fx[1] for fx in fx_b)
        for count in counts_a.keys() | counts_b.keys():
            if counts_a[count] != counts_b[count]:
                out[count] = [counts_a[count], counts_b[count]]
        items_a, items_b = Counter(fx[2] for fx in fx_a), Counter(fx[2] for fx in fx_b)
        count_of = {fx[2]: fx[1] for fx in fx_a + fx_b}
        for item in items_a.keys() | items_b.keys():
            # Only where the counts agree: a count entry already says "one call too many".
            if items_a[item] != items_b[item] and count_of[item] not in out:
                out[item] = [items_a[item], items_b[item]]
        return dict(sorted(out.items()))

    def form(self, table: Table) -> tuple[tuple[str, ...], tuple[Row, ...]]:
        """Kept column names and the sorted multiset of rows without the masked columns: what the
        comparison sees of a table, so two tables are alike exactly when their forms are equal."""
        keep = [i for i, column in enumerate(table.columns) if f"{table.name}.{column}" not in self.masked]
        rows = sorted((tuple(row[i] for i in keep) for row in table.rows), key=_row_order)
        return tuple(table.columns[i] for i in keep), tuple(rows)

    def _diff_table(self, ta: Table, tb: Table, out: Diff) -> None:
        (columns, rows_a), (columns_b, rows_b) = self.form(ta), self.form(tb)
        if ta.rows and tb.rows and columns != columns_b:  # a hooks snapshot may change shape
            out[ta.name] = [list(columns), list(columns_b)]
            return
        columns = columns if ta.rows else columns_b
        key = ta.key if ta.key == tb.key and set(ta.key) <= set(columns) else ()
        at = [columns.index(k) for k in key]
        by_a = {tuple(row[i] for i in at): row for row in rows_a}
        by_b = {tuple(row[i] for i in at): row for row in rows_b}
        if not key or len(by_a) != len(rows_a) or len(by_b) != len(rows_b):
            # No usable key (none, masked as nondeterministic, or not unique): rows by content.
            count_a, count_b = Counter(rows_a), Counter(rows_b)
            for row in count_a.keys() | count_b.keys():
                if count_a[row] != count_b[row]:
                    out[render_key(ta.name, columns, row)] = [count_a[row], count_b[row]]
            return
        for k in by_a.keys() | by_b.keys():
            label = render_key(ta.name, key, k)
            row_a, row_b = by_a.get(k), by_b.get(k)
            if row_a is None or row_b is None:
                out[label] = [_row_json(columns, row_a), _row_json(columns, row_b)]
                continue
            for column, va, vb in zip(columns, row_a, row_b):
                if va != vb:
                    out[f"{label}.{column}"] = [_jsonable(va), _jsonable(vb)]


def unstable_parts(a: RunResult, b: RunResult, comparator: Comparator) -> frozenset[str]:
    """What still differs between two baselines once masked: table names (e.g. a random number of
    rows) and `sink.<name>` / `emitted.<type>` (e.g. a random number of calls). Anything here means
    the outcome itself is nondeterministic: the campaign reports it so, never as a violation."""
    parts = {ta.name for ta, tb in _table_pairs(a.snapshot, b.snapshot)
             if (ta.rows or tb.rows) and comparator.form(ta) != comparator.form(tb)}
    fx_a, fx_b = _effects(a.effects, comparator.masked), _effects(b.effects, comparator.masked)
    parts.update(group for group in {fx[0] for fx in fx_a + fx_b} if _count(fx_a, group, 2) != _count(fx_b, group, 2))
    return frozenset(parts)


def render_key(table: str, columns: Sequence[str], values: Sequence[Any]) -> str:
    """`accounts[id=alice]`, `t[a=1,b=x]`: strings bare when unambiguous (`"1"` stays quoted, so
    it never reads as the number 1), blobs as `x'00ff'`. Distinct rows give distinct keys."""
    return f"{table}[{','.join(f'{c}={_atom(v)}' for c, v in zip(columns, values))}]"


def format_diff(diff: Diff, baseline: str = "in order", other: str = "perturbed") -> list[str]:
    """Console lines, `key   baseline -> other`, or `key   4 in order, 5 perturbed` for counts."""
    width = max(map(len, diff), default=0)
    lines = []
    for key, (a, b) in diff.items():
        counted = key.startswith(("sink ", "emitted ")) or key.endswith("]")
        if counted and all(isinstance(v, int) and not isinstance(v, bool) for v in (a, b)):
            text = f"{a} {baseline}, {b} {other}"
        else:
            text = f"{_show(a, b)} -> {_show(b, a)}"
        lines.append(f"{key:<{width}}   {text}")
    return lines


def _table_pairs(a: Snapshot, b: Snapshot) -> list[tuple[Table, Table]]:
    """Tables by name; a table missing on one side is an empty one shaped like the other's."""
    pairs = []
    for name in sorted({t.name for t in a.tables + b.tables}):
        ta, tb = a.table(name), b.table(name)
        if ta is None and tb is not None:
            ta = Table(name, tb.columns, tb.key, ())
        elif tb is None and ta is not None:
            tb = Table(name, ta.columns, ta.key, ())
        if ta is not None and tb is not None:  # always: the name came from one of them
            pairs.append((ta, tb))
    return pairs


def _values(table: Table, column: str) -> Counter[Any]:
    if column not in table.columns:
        return Counter({_MISSING: len(table.rows)}) if table.rows else Counter()
    i = table.columns.index(column)
    return Counter(row[i] for row in table.rows)


def _effects(effects: Effects, masked: frozenset[str]) -> list[tuple[str, str, str]]:
    """Each effect as (group, count key, item key): the keys are the diff's labels, and identify
    the effect (names are quoted when not plain; bodies are canonical JSON text, so never bare words)."""
    out = []
    for call in effects.sink:
        group = f"sink.{call.name}"
        count = f"sink {_atom(call.name)}" + ("" if call.method == "POST" else f" {call.method}")
        out.append((group, count, count if group in masked else f"{count} {call.body or '(empty)'}"))
    for event in effects.emitted:
        group, count = f"emitted.{event.type}", f"emitted {_atom(event.type)}"
        # one effect per (source, id): the id tells two events apart, unless masked (random ids)
        named = f" id={_atom(event.id)}" if event.id else ""
        shown = "" if group in masked else f"{named} {event.data or '(empty)'}"
        item = f"{count} {_atom(event.source)}{shown}"
        out.append((group, count, item))
    return out


def _count(effects: list[tuple[str, str, str]], group: str, part: int) -> Counter[str]:
    return Counter(fx[part] for fx in effects if fx[0] == group)


def _atom(value: Any) -> str:
    if isinstance(value, str):
        literal = value in ("null", "true", "false") or _is_number(value)
        return value if _PLAIN.fullmatch(value) and not literal else json.dumps(value, ensure_ascii=False)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _jsonable(value)  # x'..': bare, as no bare string holds a quote
    return json.dumps(_jsonable(value), ensure_ascii=False)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _jsonable(value: Any) -> Any:
    """Values as they are (ints stay ints); blobs as SQLite hex literals, tuples as lists."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"x'{bytes(value).hex()}'"
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _row_json(columns: Sequence[str], row: Row | None) -> dict[str, Any] | None:
    return None if row is None else {c: _jsonable(v) for c, v in zip(columns, row)}


def _show(value: Any, other: Any) -> str:
    return "absent" if value is None and isinstance(other, dict) else json.dumps(value, ensure_ascii=False)


def _row_order(row: Row) -> tuple[tuple[int, Any], ...]:
    """Rows can mix NULL, numbers, text and blobs in one column: order by kind, then value."""
    return tuple(_order(value) for value in row)


def _order(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, (bool, int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, (bytes, bytearray)):
        return (3, bytes(value))
    if isinstance(value, (list, tuple)):
        return (4, tuple(_order(v) for v in value))
    return (5, repr(value))
