"""ProjectPaths names every `.faasemu/` path; the methods that create folders make them 0700."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from faasemu.project.manifest import parse_manifest
from faasemu.project.paths import ProjectPaths
from faasemu.project.private import FOLDER


def mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_every_path_is_inside_the_project_folder(tmp_path: Path) -> None:
    paths = ProjectPaths(str(tmp_path))
    base = tmp_path / ".faasemu"
    assert paths.base == str(base)
    assert {
        "events": paths.events_db, "state": paths.state_db, "dir": paths.state_dir, "marker": paths.up_marker,
        "lock": paths.up_lock, "cex": paths.cex, "chaos": paths.chaos,
    } == {
        "events": str(base / "events.db"), "state": str(base / "state.db"), "dir": str(base / "state"),
        "marker": str(base / "up.json"), "lock": str(base / "up.lock"), "cex": str(base / "cex"),
        "chaos": str(base / "chaos"),
    }


def test_naming_a_path_creates_nothing(tmp_path: Path) -> None:
    paths = ProjectPaths(str(tmp_path))
    _ = (paths.events_db, paths.state_db, paths.cex, paths.up_lock, paths.cex_file("fn", "order"))
    assert not (tmp_path / FOLDER).exists()


def test_a_counterexample_file_is_named_by_function_and_kind_absolute_or_relative(tmp_path: Path) -> None:
    paths = ProjectPaths(str(tmp_path))
    assert paths.cex_file("orders", "idempotency", relative=True) == os.path.join(".faasemu", "cex",
                                                                                   "orders-idempotency.json")
    assert paths.cex_file("orders", "idempotency") == str(tmp_path / ".faasemu" / "cex" / "orders-idempotency.json")


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_created_folders_are_the_users_alone(tmp_path: Path) -> None:
    paths = ProjectPaths(str(tmp_path))
    (tmp_path / ".faasemu").mkdir(mode=0o755)  # as an older faasemu made it
    os.chmod(tmp_path / ".faasemu", 0o755)
    assert paths.folder() == paths.base
    assert mode(paths.base) == 0o700
    assert paths.cex_folder() == paths.cex
    assert mode(paths.cex) == 0o700
    assert paths.chaos_folder() == paths.chaos and os.path.isdir(paths.chaos)


def test_chaos_folder_makes_the_project_folder_private_first(tmp_path: Path) -> None:
    paths = ProjectPaths(str(tmp_path))
    paths.chaos_folder()
    assert mode(paths.base) == 0o700


def test_holds_tells_paths_inside_the_project_folder_from_others(tmp_path: Path) -> None:
    paths = ProjectPaths(str(tmp_path))
    paths.folder()
    assert paths.holds(str(tmp_path / ".faasemu" / "report.json"))
    assert paths.holds(str(tmp_path / ".faasemu" / "deep" / "junit.xml"))
    assert not paths.holds(str(tmp_path / "report.json"))
    assert not paths.holds(paths.base)  # the folder itself is not inside itself
    assert not paths.holds(str(tmp_path / ".faasemu-other" / "x.json"))  # a prefix is not a parent


def test_holds_follows_symlinks(tmp_path: Path) -> None:
    paths = ProjectPaths(str(tmp_path))
    paths.folder()
    (tmp_path / "link").symlink_to(tmp_path / ".faasemu")
    assert paths.holds(str(tmp_path / "link" / "report.json"))


def test_the_manifests_default_state_file_is_the_projects_state_db(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("def handler(event, context):\n    return 1\n")
    manifest_path = tmp_path / "faasemu.yaml"
    manifest_path.write_text("functions:\n  fn:\n    handler: app.py:handler\n")
    manifest = parse_manifest(manifest_path.read_text(), str(manifest_path))
    assert manifest.state.path == ProjectPaths(manifest.root).state_db
