"""`faasemu init` says what it did, and what it tells the user to run next works as printed."""

from __future__ import annotations

import shlex
from pathlib import Path

import httpx
from conftest import run_cli


def printed_commands(stdout: str) -> list[str]:
    """The command lines `init` prints under "then, in another terminal:"."""
    lines = stdout.splitlines()
    start = lines.index("then, in another terminal:") + 1
    return [line.strip() for line in lines[start:] if line.startswith("  ")]


def send_as_curl(command: str, base_url: str) -> httpx.Response:
    """Run a printed `curl -s [-X METHOD] URL [-d DATA]` with httpx, as curl sends it: `-d` posts
    the data with content-type application/x-www-form-urlencoded. The port is the test server's."""
    words = shlex.split(command)
    assert words[:2] == ["curl", "-s"], command
    method, data, url = "GET", None, None
    rest = iter(words[2:])
    for word in rest:
        if word == "-X":
            method = next(rest)
        elif word == "-d":
            data = next(rest)
            method = "POST" if method == "GET" else method
        else:
            url = word
    assert url is not None and url.startswith("localhost:8080"), command
    headers = {"content-type": "application/x-www-form-urlencoded"} if data is not None else {}
    return httpx.request(method, base_url + url.removeprefix("localhost:8080"), content=data, headers=headers,
                         timeout=30)


def test_the_commands_init_prints_work_against_up(tmp_path: Path, run_server) -> None:
    result = run_cli("init", "shop", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "next: cd shop && faasemu up" in result.stdout
    commands = printed_commands(result.stdout)
    assert any("-d '{\"user\": \"ada\"}'" in command for command in commands)  # the README's own curl
    server = run_server(tmp_path / "shop" / "faasemu.yaml")
    for command in commands:
        response = send_as_curl(command, server.url)
        assert response.status_code in (200, 201), (command, response.status_code, response.text)
    signup = send_as_curl(next(c for c in commands if "/signups" in c), server.url)
    assert signup.json() == {"user": "ada"}


def test_init_here_says_so_and_that_it_appended_to_the_gitignore(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("node_modules/\n")
    result = run_cli("init", ".", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "appended .faasemu/ to .gitignore" in result.stdout
    assert "created .gitignore" not in result.stdout
    assert "created faasemu.yaml" in result.stdout
    assert "next: faasemu up" in result.stdout
    assert "cd ." not in result.stdout


def test_init_names_the_folders_it_creates(tmp_path: Path) -> None:
    result = run_cli("init", "deep/er/app", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["created deep/", "created deep/er/", "created deep/er/app/"]
    assert "created deep/er/app/.gitignore" in lines
    assert "next: cd deep/er/app && faasemu up" in result.stdout


def test_init_quotes_a_folder_name_with_a_space(tmp_path: Path) -> None:
    result = run_cli("init", "my app", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "next: cd 'my app' && faasemu up" in result.stdout


def readme_quick_start_commands() -> list[str]:
    """The curl lines the README's Quick start gives for a project made by `faasemu init`."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("`faasemu init` lists each folder", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in section.splitlines() if line.startswith("curl")]


def test_the_readme_curl_signs_up_a_user_on_a_new_project(tmp_path: Path, run_server) -> None:
    assert run_cli("init", "shop", cwd=tmp_path).returncode == 0
    server = run_server(tmp_path / "shop" / "faasemu.yaml")
    commands = readme_quick_start_commands()
    assert any("/signups" in command for command in commands)
    for command in commands:
        response = send_as_curl(command, server.url)
        assert response.status_code in (200, 201), (command, response.status_code, response.text)
    signup = send_as_curl(next(c for c in commands if "/signups" in c), server.url)
    assert (signup.status_code, signup.json()) == (201, {"user": "ada"})
