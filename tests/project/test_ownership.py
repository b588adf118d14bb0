"""The `up.lock` one `faasemu up` holds, and the `up.json` marker other commands find it by."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from faasemu.project.ownership import (
    ProjectInUse,
    ProjectLock,
    remove_server_marker,
    running_server_url,
    write_server_marker,
)
from faasemu.project.paths import ProjectPaths
from faasemu.project.spec import Manifest


def manifest(root: Path) -> Manifest:
    return Manifest(path=str(root / "faasemu.yaml"), root=str(root), name="p", host="127.0.0.1", port=8080,
                    functions=())


@pytest.fixture
def project(tmp_path: Path) -> Manifest:
    return manifest(tmp_path)


@pytest.mark.skipif(os.name != "posix", reason="flock")
def test_a_second_lock_names_the_first_holder_and_its_url(project: Manifest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project.root)
    first = ProjectLock(project)
    try:
        first.write("http://127.0.0.1:8123")
        with pytest.raises(ProjectInUse) as raised:
            ProjectLock(project)  # flock conflicts between two open files, even in one process
        message = str(raised.value)
        assert f"pid {os.getpid()}" in message and "http://127.0.0.1:8123" in message
        assert os.path.join(".faasemu", "up.lock") in message
    finally:
        first.release()
    again = ProjectLock(project)  # released: the next `up` takes it
    again.release()


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_the_lock_lives_in_a_private_project_folder(project: Manifest) -> None:
    lock = ProjectLock(project)
    try:
        paths = ProjectPaths(project.root)
        assert lock.path == paths.up_lock
        assert stat.S_IMODE(os.stat(paths.base).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(paths.up_lock).st_mode) == 0o600
    finally:
        lock.release()


def test_the_marker_gives_the_url_of_a_live_up_and_is_removed_only_by_its_writer(project: Manifest) -> None:
    ProjectPaths(project.root).folder()
    assert running_server_url(project) is None
    path = write_server_marker(project, "http://127.0.0.1:9999")
    assert path == ProjectPaths(project.root).up_marker
    assert running_server_url(project) == "http://127.0.0.1:9999"
    if os.name == "posix":
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    Path(path).write_text(json.dumps({"url": "http://other", "pid": os.getpid() + 1_000_000}))
    remove_server_marker(path)  # another process's marker: left alone
    assert os.path.exists(path)
    assert running_server_url(project) is None  # its pid is not alive
    write_server_marker(project, "http://127.0.0.1:9999")
    remove_server_marker(path)
    assert not os.path.exists(path)


def test_a_garbled_marker_means_no_running_up(project: Manifest) -> None:
    ProjectPaths(project.root).folder()
    Path(ProjectPaths(project.root).up_marker).write_text("{not json")
    assert running_server_url(project) is None
    remove_server_marker(ProjectPaths(project.root).up_marker)  # no exception either
