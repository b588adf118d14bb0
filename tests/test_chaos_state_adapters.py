"""`faasemu chaos` with `state.dir` and `state.hooks` (the corpus in test_chaos_scenarios uses SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli, write_project

DIR_PROJECT = {
    "faasemu.yaml": """\
        state:
          dir: .faasemu/files
        functions:
          append:
            handler: h.py:append
            events: [note.added]
          once:
            handler: h.py:once
            events: [note.added]
        """,
    "h.py": """\
        import os


        def append(event, context):  # not idempotent: a line per delivery
            with open(os.path.join(os.environ["FAASEMU_STATE"], "log.txt"), "a") as f:
                f.write(event["detail"]["text"] + "\\n")


        def once(event, context):  # idempotent: one file per event id
            with open(os.path.join(os.environ["FAASEMU_STATE"], "note-" + event["id"]), "w") as f:
                f.write(event["detail"]["text"])
        """,
    "events.jsonl": '{"type": "note.added", "data": {"text": "a"}}\n{"type": "note.added", "data": {"text": "b"}}\n',
}

HOOKS_PROJECT = {
    "faasemu.yaml": """\
        state:
          hooks: {reset: store:reset, snapshot: store:snapshot}
        functions:
          bump:
            handler: h.py:bump
            events: [tick]
          mark:
            handler: h.py:mark
            events: [tick]
        """,
    "store.py": """\
        import json
        import os

        PATH = os.environ.get("FAASEMU_STATE", "state") + ".json"


        def reset():
            with open(PATH, "w") as f:
                json.dump({"count": 0, "seen": []}, f)


        def snapshot():
            with open(PATH) as f:
                data = json.load(f)
            return {"counters": [{"count": data["count"]}], "seen": [{"id": i} for i in sorted(set(data["seen"]))]}
        """,
    "h.py": """\
        import json
        import os


        def _update(change):
            path = os.environ["FAASEMU_STATE"] + ".json"
            with open(path) as f:
                data = json.load(f)
            change(data)
            with open(path, "w") as f:
                json.dump(data, f)


        def bump(event, context):  # not idempotent
            _update(lambda data: data.update(count=data["count"] + 1))


        def mark(event, context):  # idempotent: a set of ids
            _update(lambda data: data["seen"].append(event["id"]))
        """,
    "events.jsonl": '{"type": "tick"}\n{"type": "tick"}\n',
}


def campaign(tmp_path: Path, files: dict[str, str]) -> tuple[int, dict, str]:
    write_project(tmp_path, files)
    result = run_cli("chaos", "events.jsonl", "--runs", "5", "--seed", "3", "--json", "report.json", cwd=tmp_path)
    return result.returncode, json.loads((tmp_path / "report.json").read_text()), result.stdout


def test_a_state_dir_is_compared_file_by_file(tmp_path: Path) -> None:
    code, report, out = campaign(tmp_path, DIR_PROJECT)
    assert code == 1
    append, once = report["functions"]["append"], report["functions"]["once"]
    assert append["idempotent"] is False
    violation = next(v for v in append["violations"] if v["kind"] == "idempotency")
    assert violation["diff"] == {"files[path=log.txt].content": ["a\n", "a\na\n"]}
    assert once["idempotent"] is True and once["order_tolerant"] is True
    assert "files[path=log.txt].content" in out


def test_state_hooks_reset_and_snapshot_the_users_own_store(tmp_path: Path) -> None:
    code, report, _ = campaign(tmp_path, HOOKS_PROJECT)
    assert code == 1
    bump, mark = report["functions"]["bump"], report["functions"]["mark"]
    assert bump["idempotent"] is False
    assert [step["event"] for step in bump["violations"][0]["schedule"]] == ["events-1", "events-1"]
    assert mark["idempotent"] is True and mark["order_tolerant"] is True
