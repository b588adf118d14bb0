"""Manifest keys of chaos v2 (issue 10): concurrency_set, order_key, batch_size, report_batch_item_failures.

Through the real loader: a faasemu.yaml in a project folder, errors read `faasemu.yaml:LINE: ...`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from faasemu.project.errors import ManifestError
from faasemu.project.manifest import load_manifest
from faasemu.project.spec import FunctionSpec


@pytest.fixture(autouse=True)
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "app.py").write_text("def handler(event, context):\n    return None\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load(body: str, runtime: str = "aws-lambda") -> FunctionSpec:
    """One function `f` (runtime on line 4) whose extra keys `body` start on line 5."""
    text = f"functions:\n  f:\n    handler: app.py:handler\n    runtime: {runtime}\n" + textwrap.indent(
        textwrap.dedent(body), "    ")
    Path("faasemu.yaml").write_text(text)
    (spec,) = load_manifest("faasemu.yaml").functions
    return spec


def error(body: str, runtime: str = "aws-lambda") -> str:
    with pytest.raises(ManifestError) as caught:
        load(body, runtime)
    return str(caught.value)


def test_defaults_without_the_new_keys() -> None:
    spec = load("events: [order.created]\n")
    assert (spec.concurrency, spec.concurrency_set, spec.order_key) == (1, False, None)
    assert (spec.batch_size, spec.report_batch_item_failures) == (1, False)


@pytest.mark.parametrize("written", ["1", "3"])
def test_concurrency_written_is_marked_set(written: str) -> None:
    spec = load(f"concurrency: {written}\n")
    assert (spec.concurrency, spec.concurrency_set) == (int(written), True)


@pytest.mark.parametrize("path", ["data.order", "subject", "data.customer_id", "data.order-id", "_x.y_2"])
def test_order_key_accepts_dotted_paths(path: str) -> None:
    assert load(f"order_key: {path}\n").order_key == path


@pytest.mark.parametrize(
    ("written", "shown"),
    [('""', "''"), ("data..x", "'data..x'"), ("data.", "'data.'"), (".data", "'.data'"), ("12", "12"),
     ("[data, order]", "a list"), ("{data: order}", "a mapping"), ("data.1st", "'data.1st'"),
     ("data order", "'data order'"), ("", "nothing"), ("true", "true")],
)
def test_order_key_that_is_not_a_dotted_path(written: str, shown: str) -> None:
    assert error(f"order_key: {written}\n") == (
        f"faasemu.yaml:5: functions.f.order_key: {shown} is not a dotted path; use a dotted path into the "
        "CloudEvent, such as data.order or subject: field names joined by '.', each a letter or '_' followed by "
        "letters, digits, '_' or '-'"
    )


def test_order_key_works_on_every_runtime() -> None:
    assert load("events: [order.*]\norder_key: data.order\n", runtime="gcf").order_key == "data.order"


def test_batch_size_for_sqs() -> None:
    spec = load("event_source: sqs\nbatch_size: 10\n")
    assert (spec.batch_size, spec.options) == (10, {"event_source": "sqs"})
    assert load("event_source: sqs\nbatch_size: 10000\n").batch_size == 10000


@pytest.mark.parametrize(("written", "shown"), [("0", "0"), ("10001", "10001"), ("-1", "-1"), ("2.5", "2.5"),
                                                ("ten", "'ten'"), ("true", "true")])
def test_batch_size_outside_lambdas_range(written: str, shown: str) -> None:
    assert error(f"event_source: sqs\nbatch_size: {written}\n") == (
        f"faasemu.yaml:6: functions.f.batch_size: must be a whole number from 1 to 10000, not {shown}"
    )


def test_batch_size_of_a_fifo_queue_is_at_most_ten() -> None:
    assert load("event_source: sqs\norder_key: data.order\nbatch_size: 10\n").batch_size == 10
    assert error("event_source: sqs\norder_key: data.order\nbatch_size: 11\n") == (
        "faasemu.yaml:7: functions.f.batch_size: must be from 1 to 10 with an order_key "
        "(a FIFO queue, as Lambda allows), not 11"
    )


@pytest.mark.parametrize(
    ("body", "runtime", "has"),
    [("batch_size: 5\n", "aws-lambda", "event_source: eventbridge"),
     ("event_source: sns\nbatch_size: 5\n", "aws-lambda", "event_source: sns"),
     ("batch_size: 5\n", "gcf", "runtime gcf")],
)
def test_batch_size_only_for_lambda_with_sqs(body: str, runtime: str, has: str) -> None:
    line = 4 + body.count("\n")
    assert error(body, runtime) == (
        f"faasemu.yaml:{line}: functions.f.batch_size: batch_size applies to aws-lambda functions with "
        f"event_source: sqs (function 'f' has {has})"
    )


def test_report_batch_item_failures() -> None:
    spec = load("event_source: sqs\nbatch_size: 10\nreport_batch_item_failures: true\n")
    assert (spec.batch_size, spec.report_batch_item_failures) == (10, True)
    assert load("event_source: sqs\nreport_batch_item_failures: false\n").report_batch_item_failures is False
    assert load("report_batch_item_failures: false\n", runtime="gcf").report_batch_item_failures is False


def test_report_batch_item_failures_true_only_for_lambda_with_sqs() -> None:
    assert error("event_source: raw\nreport_batch_item_failures: true\n") == (
        "faasemu.yaml:6: functions.f.report_batch_item_failures: report_batch_item_failures (partial batch "
        "responses) applies to aws-lambda functions with event_source: sqs (function 'f' has event_source: raw)"
    )
    assert "(function 'f' has runtime azure)" in error("report_batch_item_failures: true\n", runtime="azure")


@pytest.mark.parametrize(("written", "shown"), [("1", "1"), ("'yes'", "'yes'"), ("", "nothing")])
def test_report_batch_item_failures_must_be_a_boolean(written: str, shown: str) -> None:
    assert error(f"event_source: sqs\nreport_batch_item_failures: {written}\n") == (
        f"faasemu.yaml:6: functions.f.report_batch_item_failures: must be true or false, not {shown}"
    )


def test_misspelt_new_key_is_suggested() -> None:
    assert error("order_keys: data.order\n") == (
        "faasemu.yaml:5: unknown key 'order_keys' in functions.f; did you mean 'order_key'?"
    )


def test_new_fields_survive_the_wire() -> None:
    spec = load("event_source: sqs\nconcurrency: 1\norder_key: data.order\nbatch_size: 4\n"
                "report_batch_item_failures: true\n")
    assert FunctionSpec.from_wire(spec.to_wire()) == spec
