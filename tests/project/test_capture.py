"""capture.py (pure): Hasura's payload and body, the CloudEvent, manual and outside changes, the checks
of a trigger's table and columns, and the SQL text."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from faasemu.project.capture import (
    ADMIN_SESSION,
    CapturedChange,
    ChangeError,
    NoMatchingRow,
    TableChange,
    Target,
    captured,
    change_event,
    change_sql,
    check_change,
    event_data,
    hasura_time,
    manual_change,
    parse_change,
    pg_trigger_name,
    pg_trigger_sql,
    resolve_target,
    sqlite_trigger_sql,
    trace_context,
    webhook_body,
)
from faasemu.project.errors import ManifestError, UsageError
from faasemu.project.spec import TriggerSpec

TRIGGER = TriggerSpec(name="order-placed", table="orders", webhook="pay", on=("insert", "update"),
                      columns=("status",), retries=3, line=12)
CATALOG = {("main", "orders"): ["id", "status", "total"], ("main", "payments"): ["id", "order_id"]}


def change(**overrides: object) -> CapturedChange:
    fields: dict[str, object] = dict(
        seq=7, id="85558393-c75d-4d2f-9c15-e80591b83894", trigger="order-placed", schema="public", table="orders",
        op="UPDATE", old={"id": "o-1", "status": "placed"}, new={"id": "o-1", "status": "paid"},
        created_at="2018-09-05T07:14:21.601701Z", session_variables=None)
    fields.update(overrides)
    return CapturedChange(**fields)  # type: ignore[arg-type]


# --- created_at ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("moment", "text"), [
    (datetime(2018, 9, 5, 7, 14, 21, 601701, tzinfo=UTC), "2018-09-05T07:14:21.601701Z"),
    (datetime(2018, 9, 5, 7, 14, 21, 601700, tzinfo=UTC), "2018-09-05T07:14:21.6017Z"),  # aeson drops trailing 0s
    (datetime(2018, 9, 5, 7, 14, 21, 500000, tzinfo=UTC), "2018-09-05T07:14:21.5Z"),
    (datetime(2018, 9, 5, 7, 14, 21, tzinfo=UTC), "2018-09-05T07:14:21Z"),  # and the fraction when it is 0
    (datetime(2018, 9, 5, 7, 14, 21, 1000), "2018-09-05T07:14:21.001Z"),  # naive: UTC (SQLite's 'now')
    (datetime(2018, 9, 5, 9, 14, 21, tzinfo=timezone(timedelta(hours=2))), "2018-09-05T07:14:21Z"),
])
def test_created_at_is_written_as_hasura_writes_it(moment: datetime, text: str) -> None:
    assert hasura_time(moment) == text


# --- the payload, the body and the CloudEvent ------------------------------------------------------


def test_event_data_has_hasura_fields_and_shapes() -> None:
    data = event_data(change())
    assert data == {
        "event": {"session_variables": None, "op": "UPDATE",
                  "data": {"old": {"id": "o-1", "status": "placed"}, "new": {"id": "o-1", "status": "paid"}},
                  "trace_context": None},
        "created_at": "2018-09-05T07:14:21.601701Z",
        "id": "85558393-c75d-4d2f-9c15-e80591b83894",
        "trigger": {"name": "order-placed"},
        "table": {"schema": "public", "name": "orders"},
    }
    assert "delivery_info" not in data  # it differs per attempt: added by webhook_body


def test_trace_context_is_null_for_a_plain_client_and_hex_ids_through_hasura() -> None:
    assert trace_context(change()) is None
    context = trace_context(change(session_variables=dict(ADMIN_SESSION)))
    assert context is not None and set(context) == {"trace_id", "span_id"}
    assert re.fullmatch(r"[0-9a-f]{32}", context["trace_id"]) and re.fullmatch(r"[0-9a-f]{16}", context["span_id"])
    assert context == trace_context(change(session_variables={"x-hasura-role": "user"}))  # from the id: repeatable


def test_webhook_body_sorts_keys_as_aeson_and_adds_delivery_info() -> None:
    body = webhook_body(event_data(change(new={"status": "payé", "id": "o-1"})), 2, 3)
    assert body.startswith(b'{"created_at":"2018-09-05T07:14:21.601701Z","delivery_info":{"current_retry":2,'
                           b'"max_retries":3},"event":{"data":{"new":{"id":"o-1","status":"pay\xc3\xa9"},')
    parsed = json.loads(body)
    assert list(parsed) == ["created_at", "delivery_info", "event", "id", "table", "trigger"]
    assert list(parsed["event"]) == ["data", "op", "session_variables", "trace_context"]
    assert list(parsed["table"]) == ["name", "schema"]
    assert b" " not in body.replace(b"pay\xc3\xa9", b"")


def test_webhook_body_counts_retries_from_zero_with_the_same_id() -> None:
    data = event_data(change())
    first, second = json.loads(webhook_body(data, 0, 2)), json.loads(webhook_body(data, 1, 2))
    assert first["delivery_info"] == {"max_retries": 2, "current_retry": 0}
    assert second["delivery_info"]["current_retry"] == 1 and first["id"] == second["id"]


def test_change_event_is_a_cloudevent_carrying_the_payload() -> None:
    event = change_event(change(), "pay")
    assert event["id"] == "85558393-c75d-4d2f-9c15-e80591b83894"
    assert event["source"] == "faasemu/triggers/order-placed" and event["type"] == "trigger.order-placed"
    assert event["time"] == "2018-09-05T07:14:21.601701Z" and event["specversion"] == "1.0"
    assert event["data"] == event_data(change())
    assert event["faasemutrigger"] == "order-placed" and event["faasemuwebhook"] == "pay"
    for name in event:  # CloudEvents attribute names: lowercase a-z0-9, at most 20 characters
        assert name == "data" or re.fullmatch(r"[a-z0-9]{1,20}", name), name
    assert json.loads(json.dumps(event)) == event


# --- manual changes (invoke --trigger) -------------------------------------------------------------

NOW = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)


@pytest.mark.parametrize(("data", "op"), [
    ({"new": {"id": "o-1"}}, "INSERT"),
    ({"old": {"id": "o-1"}, "new": {"id": "o-1"}}, "UPDATE"),
    ({"old": {"id": "o-1"}}, "DELETE"),
    ({"old": None, "new": {"id": "o-1"}}, "INSERT"),
])
def test_manual_change_infers_the_op_from_old_and_new(data: dict, op: str) -> None:
    made = manual_change(TRIGGER, data, None, NOW, event_id="e-1")
    assert made.op == op and made.id == "e-1" and made.created_at == "2024-05-01T12:00:00.25Z"
    assert made.old == data.get("old") and made.new == data.get("new")
    assert made.session_variables == {"x-hasura-role": "admin"} and made.trigger == "order-placed"


def test_manual_change_op_given_wins_and_manual_is_allowed() -> None:
    assert manual_change(TRIGGER, {"new": {"id": "o-1"}}, "manual", NOW).op == "MANUAL"
    assert manual_change(TRIGGER, {"new": {"id": "o-1"}}, "UPDATE", NOW).op == "UPDATE"


def test_manual_change_defaults_the_schema_as_the_database_does() -> None:
    assert manual_change(TRIGGER, {"new": {}}, None, NOW).schema == "main"
    assert manual_change(TRIGGER, {"new": {}}, None, NOW, kind="postgres").schema == "public"
    qualified = TriggerSpec(name="t", table="orders", webhook="pay", schema="shop")
    assert manual_change(qualified, {"new": {}}, None, NOW, kind="postgres").schema == "shop"


def test_manual_change_ids_are_uuids_when_not_given() -> None:
    first = manual_change(TRIGGER, {"new": {}}, None, NOW).id
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", first)
    assert first != manual_change(TRIGGER, {"new": {}}, None, NOW).id


@pytest.mark.parametrize(("data", "op", "message"), [
    ([1], None, "--data: a trigger's data is a JSON object"),
    ({"row": {}}, None, "--data: unknown key 'row'"),
    ({"new": [1]}, None, "--data: 'new' is a row, a JSON object of column: value, not a list"),
    ({}, None, '--data: give the row in "new"'),
    ({"new": {}}, "upsert", "--op: 'UPSERT' is not an operation; use one of INSERT, UPDATE, DELETE, MANUAL"),
])
def test_manual_change_errors_name_the_flag(data: object, op: str | None, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        manual_change(TRIGGER, data, op, NOW)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)


# --- outside changes (events files) ----------------------------------------------------------------


def test_parse_change_reads_insert_update_and_delete() -> None:
    assert parse_change({"change": {"table": "orders", "insert": {"id": "o-1", "status": "placed"}}}) == \
        TableChange("orders", "insert", values={"id": "o-1", "status": "placed"})
    update = {"where": {"id": "o-1"}, "set": {"status": "paid"}}
    assert parse_change({"change": {"table": "orders", "update": update}}) == \
        TableChange("orders", "update", values={"status": "paid"}, where={"id": "o-1"})
    assert parse_change({"change": {"table": "shop.orders", "delete": {"where": {"id": "o-1"}}}}) == \
        TableChange("orders", "delete", where={"id": "o-1"}, schema="shop")


@pytest.mark.parametrize(("line", "message"), [
    ({"change": "orders"}, "change: a change is an object, as"),
    ({"change": {"table": "orders"}}, "change: give exactly one of insert, update, delete (found none)"),
    ({"change": {"table": "orders", "insert": {"id": 1}, "delete": {"where": {"id": 1}}}},
     "change: give exactly one of insert, update, delete (found insert and delete)"),
    ({"change": {"insert": {"id": 1}}},
     'change.table: the table\'s name, as "orders" or "public.orders"; found nothing'),
    ({"change": {"table": "a.b.c", "insert": {"id": 1}}}, "change.table: 'a.b.c' is not [schema.]table"),
    ({"change": {"table": "orders", "upsert": {}}}, "change: unknown key 'upsert'"),
    ({"change": {"table": "orders", "insert": {}}}, "change.insert: a non-empty object of column: value"),
    ({"change": {"table": "orders", "insert": [1]}}, "change.insert: a non-empty object of column: value, "
                                                     'as {"id": "o-1", "status": "placed"}; found a list'),
    ({"change": {"table": "orders", "update": {"where": {"id": 1}}}}, "change.update.set: a non-empty object"),
    ({"change": {"table": "orders", "update": {"set": {"id": 1}}}}, "change.update.where: a non-empty object"),
    ({"change": {"table": "orders", "update": {"where": {"id": 1}, "set": {"a": 1}, "limit": 1}}},
     "change.update: unknown key 'limit'; update takes where and set"),
    ({"change": {"table": "orders", "delete": {"where": {}}}}, "change.delete.where: a non-empty object"),
    ({"change": {"table": "orders", "delete": {"id": 1}}}, "change.delete: unknown key 'id'; delete takes where"),
])
def test_parse_change_errors_name_the_field_and_what_is_accepted(line: dict, message: str) -> None:
    with pytest.raises(ChangeError) as caught:
        parse_change(line)
    assert str(caught.value).startswith(message), str(caught.value)


def test_parse_change_prefixes_the_callers_where() -> None:
    with pytest.raises(ChangeError, match=r"^line 3\.table"):
        parse_change({"change": {"insert": {"id": 1}}}, "line 3")


def test_no_matching_row_names_the_table_and_the_where() -> None:
    error = NoMatchingRow(TableChange("orders", "update", values={"status": "x"}, where={"id": "o-9"}))
    assert str(error) == 'update of orders: where {"id": "o-9"} matches no row'
    assert isinstance(error, ValueError)


# --- checking a trigger's table and columns --------------------------------------------------------


def test_unknown_table_is_located_and_lists_what_the_database_has() -> None:
    wrong = TriggerSpec(name="order-placed", table="ordrs", webhook="pay", line=9)
    with pytest.raises(ManifestError) as caught:
        resolve_target(wrong, CATALOG, "faasemu.yaml", schema="main")
    assert str(caught.value) == ("faasemu.yaml:9: triggers.order-placed.table: no table 'ordrs' in the state "
                                 "database; it has: orders, payments")


def test_unknown_column_is_located_and_lists_the_tables_columns() -> None:
    wrong = TriggerSpec(name="order-placed", table="orders", webhook="pay", columns=("stauts",), line=9)
    with pytest.raises(ManifestError) as caught:
        resolve_target(wrong, CATALOG, "faasemu.yaml", schema="main")
    assert str(caught.value) == ("faasemu.yaml:9: triggers.order-placed.columns: no column 'stauts' in table "
                                 "orders; it has: id, status, total")


def test_other_schemas_are_listed_qualified_and_views_refused() -> None:
    catalog = {("public", "orders"): ["id"], ("audit", "log"): ["id"]}
    with pytest.raises(ManifestError, match=r"it has: audit\.log, orders$"):
        resolve_target(TriggerSpec(name="t", table="x", webhook="pay"), catalog, "m.yaml", schema="public")
    with pytest.raises(ManifestError, match=r"'open_orders' is a view"):
        resolve_target(TriggerSpec(name="t", table="open_orders", webhook="pay"), catalog, "m.yaml", schema="public",
                       views=[("public", "open_orders")])
    with pytest.raises(ManifestError, match=r"it has no tables \(is state.schema applied\?\)"):
        resolve_target(TriggerSpec(name="t", table="x", webhook="pay"), {}, "m.yaml", schema="public")


def test_resolve_target_gives_the_databases_names() -> None:
    target = resolve_target(TriggerSpec(name="t", table="ORDERS", webhook="pay", columns=("Status",)), CATALOG,
                            "m.yaml", schema="main", fold_case=True)
    assert target == Target("main", "orders", ("id", "status", "total"), ("status",))
    with pytest.raises(ManifestError):  # PostgreSQL's names are exact once quoted
        resolve_target(TriggerSpec(name="t", table="ORDERS", webhook="pay"), CATALOG, "m.yaml", schema="main")


def test_check_change_names_unknown_tables_and_columns() -> None:
    with pytest.raises(ChangeError, match=r"^change.table: no table 'ordrs' in the state database; it has: orders"):
        check_change(TableChange("ordrs", "insert", values={"id": 1}), CATALOG, schema="main")
    with pytest.raises(ChangeError, match=r"^change.update.where: no column 'uid' in table orders; it has: id, "):
        check_change(TableChange("orders", "update", values={"status": 1}, where={"uid": 1}), CATALOG, schema="main")
    with pytest.raises(ChangeError, match=r"^change.insert: no column 'st'"):
        check_change(TableChange("orders", "insert", values={"st": 1}), CATALOG, schema="main")


# --- SQL text --------------------------------------------------------------------------------------


def test_change_sql_binds_values_and_quotes_identifiers() -> None:
    sql, params = change_sql(TableChange('we"ird', "insert", values={"id": "o-1", "a b": 2}), '"we""ird"')
    assert sql == 'INSERT INTO "we""ird" ("id", "a b") VALUES (?, ?)' and params == ["o-1", 2]
    sql, params = change_sql(TableChange("t", "update", values={"s": "paid"}, where={"id": "o-1", "gone": None}), '"t"')
    assert sql == 'UPDATE "t" SET "s" = ? WHERE "id" = ? AND "gone" IS NULL' and params == ["paid", "o-1"]
    sql, params = change_sql(TableChange("t", "delete", where={"id": 3}), '"t"')
    assert sql == 'DELETE FROM "t" WHERE "id" = ?' and params == [3]


def test_change_sql_for_psycopg_doubles_percent_signs_and_casts() -> None:
    sql, params = change_sql(TableChange("t", "update", values={"50%": 1}, where={"id": 2}), '"t%"', "%s",
                             cast={"50%": "numeric", "id": "integer"})
    assert sql == 'UPDATE "t%%" SET "50%%" = CAST(%s AS numeric) WHERE "id" = CAST(%s AS integer)'
    assert params == [1, 2]


def test_sqlite_update_trigger_compares_values_not_the_set_list() -> None:
    target = Target("main", "orders", ("id", "status", "total"), ("status",))
    sql = sqlite_trigger_sql(TRIGGER, "update", target)
    assert 'AFTER UPDATE ON "orders" FOR EACH ROW WHEN OLD."status" IS NOT NEW."status"' in sql
    assert "UPDATE OF" not in sql
    every = sqlite_trigger_sql(TRIGGER, "update", Target("main", "orders", ("id", "status")))
    assert 'WHEN OLD."id" IS NOT NEW."id" OR OLD."status" IS NOT NEW."status"' in every
    assert "FOR EACH ROW\nBEGIN" in sqlite_trigger_sql(TRIGGER, "insert", target)  # no WHEN: every insert


def test_pg_trigger_sql_uses_one_function_with_the_trigger_as_argument() -> None:
    target = Target("public", "orders", ("id", "status"), ("status",))
    sql = pg_trigger_sql(TRIGGER, "update", target)
    assert sql == ('CREATE TRIGGER "faasemu_order-placed_update" AFTER UPDATE ON "public"."orders" FOR EACH ROW '
                   'WHEN (jsonb_build_array(OLD."status") IS DISTINCT FROM jsonb_build_array(NEW."status")) '
                   "EXECUTE FUNCTION faasemu.capture('order-placed')")
    assert "WHEN (to_jsonb(OLD) IS DISTINCT FROM to_jsonb(NEW))" in pg_trigger_sql(
        TRIGGER, "update", Target("public", "orders", ("id",)))
    assert len(pg_trigger_name("x" * 42, "insert")) <= 63


def test_captured_reads_rows_of_either_database() -> None:
    text_row = (3, "e", "t", "main", "orders", "INSERT", None, '{"id": 1}', "2024-05-01T12:00:00.120Z", None)
    assert captured(text_row) == CapturedChange(3, "e", "t", "main", "orders", "INSERT", None, {"id": 1},
                                                "2024-05-01T12:00:00.12Z", None)
    pg_row = (4, "e", "t", "public", "orders", "DELETE", {"id": 1}, None,
              datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))), {"x-hasura-role": "admin"})
    assert captured(pg_row).created_at == "2024-05-01T12:00:00Z"
    assert captured(pg_row).session_variables == {"x-hasura-role": "admin"}
