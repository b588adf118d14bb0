"""The worker-error record: one typed value on both sides of the wire, one plain-text form."""

from __future__ import annotations

import marshal
import os
from pathlib import Path

from faasemu.project.failures import WorkerError, format_error
from faasemu.workers.entry import describe_error


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:  # the traceback is what describe_error reads
        return caught


def test_the_record_survives_the_wire_as_marshal_carries_it() -> None:
    error = WorkerError("ValueError", "bad [input]", where="app.py:3",
                        frames=(("/p/app.py", 3, "handler", "raise ValueError('bad')"),), text="Traceback ...",
                        retryable=False)
    wire = error.to_wire()
    assert WorkerError.from_wire(marshal.loads(marshal.dumps(wire))) == error


def test_the_wire_form_is_the_dict_workers_always_sent() -> None:
    error = WorkerError("KeyError", "'id'", where="app.py:9", frames=(("/p/app.py", 9, "h", "x['id']"),), text="T")
    assert error.to_wire() == {"type": "KeyError", "message": "'id'", "frames": [["/p/app.py", 9, "h", "x['id']"]],
                               "where": "app.py:9", "text": "T"}  # `retryable` only when False
    assert WorkerError("E", "m", retryable=False).to_wire()["retryable"] is False


def test_missing_keys_take_defaults() -> None:
    assert WorkerError.from_wire({}) == WorkerError("Error", "")
    assert WorkerError.from_wire({"type": "Shutdown", "message": "stopping"}) == WorkerError("Shutdown", "stopping")
    assert WorkerError.from_wire({"type": "E", "message": "m", "retryable": None}).retryable  # only False is final


def test_format_error_is_type_message_and_place() -> None:
    assert format_error(WorkerError("ValueError", "bad", where="app.py:3")) == "ValueError: bad (app.py:3)"
    assert format_error(WorkerError("ValueError", "bad")) == "ValueError: bad"
    assert format_error(WorkerError("ValueError", "bad", where="app.py:3"), where=False) == "ValueError: bad"
    assert WorkerError("ValueError", "bad", where="app.py:3").headline == "ValueError: bad"


def test_describe_error_names_the_project_line_and_keeps_the_users_frames(tmp_path: Path) -> None:
    root = os.path.realpath(tmp_path)
    source = Path(root, "app.py")
    source.write_text("def handler():\n    raise ValueError('no [id]')\n")
    namespace: dict[str, object] = {}
    exec(compile(source.read_text(), str(source), "exec"), namespace)
    try:
        namespace["handler"]()  # type: ignore[operator]  # exec's namespace is untyped: this is the function
    except ValueError as exc:
        error = describe_error(exc, root)
    assert (error.type, error.message, error.where) == ("ValueError", "no [id]", "app.py:2")
    assert error.frames[-1] == (str(source), 2, "handler", "raise ValueError('no [id]')")
    assert "ValueError: no [id]" in error.text
    assert error.retryable


def test_an_exception_marked_not_retryable_says_so(tmp_path: Path) -> None:
    class Final(Exception):
        retryable = False

    error = describe_error(raised(Final("give up")), str(tmp_path))
    assert not error.retryable
    assert error.to_wire()["retryable"] is False


def test_a_syntax_error_points_at_its_line(tmp_path: Path) -> None:
    root = os.path.realpath(tmp_path)
    path = os.path.join(root, "broken.py")
    try:
        compile("def f(:\n", path, "exec")
    except SyntaxError as exc:
        error = describe_error(exc, root)
    assert error.type == "SyntaxError" and error.where == "broken.py:1"
    assert error.frames == ((path, 1, "<module>", "def f(:"),)


def test_only_an_explicit_false_makes_an_exception_final() -> None:
    from faasemu.project.failures import is_retryable

    class Final(Exception):
        retryable = False

    class Odd(Exception):
        retryable = 0  # falsy but not False: the convention is the literal False

    assert not is_retryable(Final())
    assert is_retryable(ValueError()) and is_retryable(Odd())
