"""`faasemu chaos` exit codes as CI reads them: 1 only for violations found, 2 when the campaign could
not check what it was asked to, 0 only when every function that events reach was exercised (or, with
`--only`, when no event reaches the function asked about: nothing to check, said so)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from conftest import run_cli, write_project

PROJECT = {
    "faasemu.yaml": """\
        name: codes
        functions:
          counter:
            handler: counter.py:handler
            events: [thing.made]
          broken:
            handler: broken.py:handler
            events: [other.made]
          web:
            handler: counter.py:handler
            http: {path: /web}
    """,
    "counter.py": """\
        def handler(event, context):
            return None
    """,
    "broken.py": """\
        import a_module_nobody_installed


        def handler(event, context):
            return None
    """,
}
THING = '{"type": "thing.made", "source": "test", "data": {"n": 1}}\n'
OTHER = '{"type": "other.made", "source": "test", "data": {"n": 2}}\n'


def chaos(root: Path, *args: str):
    return run_cli("chaos", *args, "--runs", "2", "--seed", "7", cwd=root, timeout=120)


def test_an_empty_events_file_is_unusable_input(tmp_path: Path) -> None:
    write_project(tmp_path, {**PROJECT, "events.jsonl": ""})
    result = chaos(tmp_path, "events.jsonl")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "events.jsonl: holds no events (it is empty, or blank lines only)" in result.stderr


def test_blank_lines_only_are_unusable_input(tmp_path: Path) -> None:
    write_project(tmp_path, PROJECT)
    (tmp_path / "events.jsonl").write_text("\n   \n\t\n")
    result = chaos(tmp_path, "events.jsonl")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "holds no events" in result.stderr


def test_events_that_reach_no_function_are_unusable_input(tmp_path: Path) -> None:
    write_project(tmp_path, PROJECT)
    (tmp_path / "events.jsonl").write_text('{"type": "nobody.listens", "source": "test", "data": {}}\n')
    result = chaos(tmp_path, "events.jsonl")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "its one event reaches no function, so there is nothing to check" in result.stderr
    assert "nobody.listens" in result.stderr
    assert "counter: thing.made" in result.stderr and "web: no events" in result.stderr


def test_only_a_function_no_event_reaches_is_nothing_to_check(tmp_path: Path) -> None:
    write_project(tmp_path, PROJECT)
    (tmp_path / "events.jsonl").write_text(THING)
    result = chaos(tmp_path, "events.jsonl", "--only", "web")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing to check: no event of events.jsonl reaches web (web: no events)" in result.stdout
    assert "its events go to counter (1 delivery) · exit 0" in result.stdout


def test_a_function_that_does_not_load_makes_the_campaign_exit_2_with_reports(tmp_path: Path) -> None:
    write_project(tmp_path, PROJECT)
    (tmp_path / "events.jsonl").write_text(THING + OTHER)
    result = chaos(tmp_path, "events.jsonl", "--json", "report.json", "--junit", "report.xml")
    assert result.returncode == 2, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert "no violation found" not in out
    assert "broken was not checked: it did not load: ModuleNotFoundError: No module named " \
           "'a_module_nobody_installed' (broken.py:1)" in out
    assert "1 function that events reach could not be loaded (broken): the campaign is incomplete" in out
    assert out.endswith("--seed 7") and "exit 2" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["exit_code"] == 2
    assert report["functions"]["broken"]["load_error"]["type"] == "ModuleNotFoundError"
    assert report["functions"]["counter"]["idempotent"] is True
    suite = ElementTree.parse(tmp_path / "report.xml").getroot()
    assert suite.get("errors") == "2"
    errors = [case.get("classname") for case in suite.iter("testcase") if case.find("error") is not None]
    assert errors == ["faasemu.broken", "faasemu.broken"]


def test_every_function_loading_and_correct_still_exits_0(tmp_path: Path) -> None:
    write_project(tmp_path, PROJECT)
    (tmp_path / "events.jsonl").write_text(THING)
    result = chaos(tmp_path, "events.jsonl")  # `broken` is reached by no event: it was not asked about
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no violation found" in result.stdout
