"""The oracle's comparison, on hand-built runs: calibration, masking, multisets, diff keys."""

from __future__ import annotations

import json
from typing import Any

from faasemu.verify.compare import Comparator, format_diff, nondeterministic_columns, render_key, unstable_parts
from faasemu.verify.model import EmittedEffect, Effects, RunResult, SinkEffect, Snapshot, Table

ACCOUNTS = ("accounts", ("id", "balance"), ("id",))
ORDERS = ("orders", ("id", "sku", "created_at"), ("id",))
EMAILS = ("emails", ("to", "subject"), ())


def table(shape: tuple[str, tuple[str, ...], tuple[str, ...]], *rows: tuple[Any, ...]) -> Table:
    name, columns, key = shape
    return Table(name, columns, key, tuple(rows))


def run(*tables: Table, sink: tuple[SinkEffect, ...] = (), emitted: tuple[EmittedEffect, ...] = ()) -> RunResult:
    return RunResult(Snapshot(tables), Effects(tuple(sorted(sink, key=str)), tuple(sorted(emitted, key=str))))


def email(to: str, method: str = "POST", **extra: Any) -> SinkEffect:
    return SinkEffect("email", method, json.dumps({"to": to, **extra}, sort_keys=True))


def paid(order: str, source: str = "/payments") -> EmittedEffect:
    return EmittedEffect("order.paid", source, json.dumps({"order": order}))


def test_identical_runs_do_not_differ() -> None:
    a = run(table(ACCOUNTS, ("alice", 20)), sink=(email("a"),), emitted=(paid("o1"),))
    b = run(table(ACCOUNTS, ("alice", 20)), sink=(email("a"),), emitted=(paid("o1"),))
    comparator = Comparator(nondeterministic_columns(a, b), ())
    assert comparator.nondeterministic == frozenset()
    assert not comparator.differs(a, b)
    assert comparator.diff(a, b) == {}
    assert unstable_parts(a, b, comparator) == frozenset()


def test_empty_table_equals_missing_table() -> None:
    assert not Comparator().differs(run(table(ACCOUNTS)), run())


def test_changed_value_is_keyed_by_primary_key() -> None:
    a = run(table(ACCOUNTS, ("alice", 20), ("bob", 5)))
    b = run(table(ACCOUNTS, ("alice", 40), ("bob", 5)))
    assert Comparator().differs(a, b)
    assert Comparator().diff(a, b) == {"accounts[id=alice].balance": [20, 40]}


def test_row_on_one_side_only() -> None:
    a = run(table(ACCOUNTS, ("alice", 20)))
    b = run(table(ACCOUNTS, ("alice", 20), ("bob", 5)))
    assert Comparator().diff(a, b) == {"accounts[id=bob]": [None, {"id": "bob", "balance": 5}]}
    assert Comparator().diff(b, a) == {"accounts[id=bob]": [{"id": "bob", "balance": 5}, None]}


def test_extra_row_with_random_key_is_caught_by_remaining_content() -> None:
    first = run(table(ORDERS, ("u-1", "book", "t1")))
    second = run(table(ORDERS, ("u-2", "book", "t2")))
    nondeterministic = nondeterministic_columns(first, second)
    assert nondeterministic == {"orders.id", "orders.created_at"}  # not orders.sku
    comparator = Comparator(nondeterministic, ())
    assert not comparator.differs(first, second)
    assert unstable_parts(first, second, comparator) == frozenset()
    duplicated = run(table(ORDERS, ("u-3", "book", "t3"), ("u-4", "book", "t4")))
    assert comparator.differs(first, duplicated)
    assert comparator.diff(first, duplicated) == {"orders[sku=book]": [1, 2]}


def test_ignore_list_masks_columns() -> None:
    a = run(table(ACCOUNTS, ("alice", 20)))
    b = run(table(ACCOUNTS, ("alice", 40)))
    comparator = Comparator(frozenset(), ["accounts.balance"])
    assert not comparator.differs(a, b)
    assert comparator.diff(a, b) == {}
    assert comparator.differs(a, run(table(ACCOUNTS, ("alice", 20), ("bob", 5))))


def test_tables_without_primary_key_compare_multiset_counts() -> None:
    a = run(table(EMAILS, ("a@x", "hi"), ("b@x", "hi")))
    b = run(table(EMAILS, ("a@x", "hi"), ("a@x", "hi"), ("b@x", "hi")))
    c = run(table(EMAILS, ("b@x", "hi"), ("a@x", "hi")))
    assert not Comparator().differs(a, c)
    assert Comparator().diff(a, b) == {"emails[to=a@x,subject=hi]": [1, 2]}


def test_composite_keys() -> None:
    shape = ("t", ("a", "b", "col"), ("a", "b"))
    a = run(table(shape, (1, "x", 10), (1, "y", 20)))
    b = run(table(shape, (1, "x", 11), (1, "y", 20), (2, "x", 30)))
    assert Comparator().diff(a, b) == {"t[a=1,b=x].col": [10, 11], "t[a=2,b=x]": [None, {"a": 2, "b": "x", "col": 30}]}


def test_key_values_are_unambiguous() -> None:
    assert render_key("t", ("id",), ("w-17",)) == "t[id=w-17]"
    assert render_key("t", ("id",), ("1",)) == 't[id="1"]'
    assert render_key("t", ("id",), (1,)) == "t[id=1]"
    assert render_key("t", ("a", "b"), ("x,b=y", None)) == 't[a="x,b=y",b=null]'
    assert render_key("t", ("id",), (b"\x00\xff",)) == "t[id=x'00ff']"


def test_values_are_json_able() -> None:
    shape = ("files", ("path", "content"), ("path",))
    diff = Comparator().diff(run(table(shape, ("a.bin", b"\x01"))), run(table(shape, ("a.bin", b"\x02"))))
    assert diff == {"files[path=a.bin].content": ["x'01'", "x'02'"]}
    json.dumps(diff)


def test_effect_counts() -> None:
    a = run(sink=tuple(email(f"u{i}") for i in range(4)), emitted=(paid("o1"),))
    b = run(sink=(*(email(f"u{i}") for i in range(4)), email("u0")), emitted=(paid("o1"), paid("o1")))
    comparator = Comparator()
    assert comparator.differs(a, b)
    assert comparator.diff(a, b) == {"emitted order.paid": [1, 2], "sink email": [4, 5]}


def test_sink_method_shown_when_not_post() -> None:
    assert Comparator().diff(run(), run(sink=(email("a", "PUT"),))) == {"sink email PUT": [0, 1]}


def test_equal_counts_different_bodies_are_listed_per_body() -> None:
    a = run(sink=(email("a"), email("b")))
    b = run(sink=(email("a"), email("a")))
    assert Comparator().diff(a, b) == {'sink email {"to": "a"}': [1, 2], 'sink email {"to": "b"}': [1, 0]}


def test_nondeterministic_bodies_are_compared_by_count() -> None:
    first = run(sink=(email("a", id="uuid-1"),), emitted=(paid("r-1"),))
    second = run(sink=(email("a", id="uuid-2"),), emitted=(paid("r-2"),))
    nondeterministic = nondeterministic_columns(first, second)
    assert nondeterministic == {"sink.email", "emitted.order.paid"}
    comparator = Comparator(nondeterministic, ())
    assert not comparator.differs(first, second)
    twice = run(sink=(email("a", id="uuid-3"), email("a", id="uuid-4")), emitted=(paid("r-3"),))
    assert comparator.diff(first, twice) == {"sink email": [1, 2]}


def test_emitted_sources_differ_with_equal_counts() -> None:
    diff = Comparator().diff(run(emitted=(paid("o1", "/a"),)), run(emitted=(paid("o1", "/b"),)))
    assert diff == {'emitted order.paid /a {"order": "o1"}': [1, 0], 'emitted order.paid /b {"order": "o1"}': [0, 1]}


def test_unequal_effect_counts_are_not_calibrated_away_but_unstable() -> None:
    first = run(sink=(email("a"),))
    second = run(sink=(email("a"), email("a")))
    comparator = Comparator(nondeterministic_columns(first, second), ())
    assert comparator.nondeterministic == frozenset()
    assert unstable_parts(first, second, comparator) == {"sink.email"}


def test_random_row_count_is_unstable() -> None:
    first = run(table(ORDERS, ("u-1", "book", "t1")), table(ACCOUNTS, ("alice", 1)))
    second = run(table(ORDERS, ("u-2", "book", "t2"), ("u-3", "book", "t3")), table(ACCOUNTS, ("alice", 1)))
    comparator = Comparator(nondeterministic_columns(first, second), ())
    assert comparator.nondeterministic == {"orders.id", "orders.sku", "orders.created_at"}
    assert unstable_parts(first, second, comparator) == {"orders"}
    assert comparator.diff(first, second) == {"orders[]": [1, 2]}


def test_table_on_one_side_only_is_wholly_nondeterministic() -> None:
    first = run(table(ACCOUNTS, ("alice", 1)))
    assert nondeterministic_columns(first, run()) == {"accounts.id", "accounts.balance"}


def test_diff_keys_are_sorted_and_deterministic() -> None:
    a = run(table(ACCOUNTS, *((f"u{i}", i) for i in range(12))), sink=(email("a"),))
    b = run(table(ACCOUNTS, *((f"u{i}", i + 1) for i in reversed(range(12)))), emitted=(paid("o"),))
    diff = Comparator().diff(a, b)
    assert list(diff) == sorted(diff)
    assert json.dumps(Comparator().diff(a, b)) == json.dumps(diff)
    assert Comparator().comparable(a) == Comparator().comparable(run(*a.snapshot.tables[::-1], sink=(email("a"),)))


def test_mixed_types_in_one_column_sort() -> None:
    a = run(table(EMAILS, (None, "x"), (1, "x"), ("a", "x"), (b"a", "x")))
    b = run(table(EMAILS, (b"a", "x"), ("a", "x"), (1, "x"), (None, "x")))
    assert not Comparator().differs(a, b)


def test_format_diff_lines() -> None:
    diff = {
        "accounts[id=bob]": [None, {"id": "bob", "balance": 5}],
        "emails[to=a@x,subject=hi]": [1, 2],
        "sink email": [4, 5],
        "wallets[id=w-17].cents": [2800, 3500],
    }
    assert format_diff(diff) == [
        'accounts[id=bob]            absent -> {"id": "bob", "balance": 5}',
        "emails[to=a@x,subject=hi]   1 in order, 2 perturbed",
        "sink email                  4 in order, 5 perturbed",
        "wallets[id=w-17].cents      2800 -> 3500",
    ]
    assert format_diff({"sink email": [4, 5]}, other="with the duplicate") == [
        "sink email   4 in order, 5 with the duplicate"
    ]
    assert format_diff({"t[id=1].name": ["a", None]}) == ['t[id=1].name   "a" -> null']


def test_extended_comparator_keeps_ignore() -> None:
    comparator = Comparator({"orders.id"}, ["accounts.balance"]).extended({"orders.created_at"})
    assert comparator.masked == {"orders.id", "orders.created_at", "accounts.balance"}
