"""The private PostgreSQL server (project/postgres.py) against a real server: socket only, shared through
leases, reused after a kill -9; its databases (project/postgres_sql.py): the schema applied once, bad
schemas located; the binaries' search (project/postgres_binaries.py)."""

from __future__ import annotations

import dataclasses
import os
import pwd
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from faasemu.project import postgres
from faasemu.project.errors import LocatedError, PostgresError, PostgresMissing
from faasemu.project.postgres import PgServer, PrivateCluster, private_server
from faasemu.project.postgres_binaries import PgBinaries, find_binaries
from faasemu.project.postgres_sql import (
    clone_database,
    connect,
    database_exists,
    database_url,
    drop_database,
    ensure_database,
)

ROOT = os.geteuid() == 0

# A faasemu process holding a lease until its stdin closes: prints the postmaster's pid once it holds it.
HOLDER = """
import sys
from faasemu.project.postgres import private_server
with private_server(sys.argv[1], cache_dir=sys.argv[2]) as server:
    print(server.pid, flush=True)
    sys.stdin.read()
"""


def mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def sql(server: PgServer | str, query: str, database: str = "postgres") -> str:
    url = server.url(database) if isinstance(server, PgServer) else server
    with psycopg.connect(url, autocommit=True) as connection:
        cursor = connection.execute(query)
        rows = cursor.fetchall() if cursor.description else []
    return "\n".join("|".join(str(value) for value in row) for row in rows)


def holder(folder: str, cache: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", HOLDER, folder, str(cache / "faasemu")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def gone(pid: int, timeout: float = 10.0) -> bool:
    """The postmaster removes postmaster.pid (what `pg_ctl stop -w` waits for) a moment before it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


def write(path: Path, text: str) -> str:
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


PROGRAMS = ("initdb", "pg_ctl", "postgres", "psql")


def fake_install(bindir: Path, version: str, programs: tuple[str, ...] = PROGRAMS) -> None:
    """Scripts that answer `--version` as PostgreSQL's programs do."""
    bindir.mkdir(parents=True)
    for name in programs:
        script = bindir / name
        script.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n")
        script.chmod(0o755)


# -- The binaries -----------------------------------------------------------------------------------------------


def test_the_installed_binaries_are_found_with_their_version(postgres_binaries: PgBinaries) -> None:
    for program in (postgres_binaries.initdb, postgres_binaries.pg_ctl, postgres_binaries.postgres,
                    postgres_binaries.psql):
        assert os.access(program, os.X_OK), program
    assert postgres_binaries.major >= 13
    assert postgres_binaries.version in subprocess.run([postgres_binaries.psql, "--version"], capture_output=True,
                                                       text=True).stdout


def test_without_postgresql_the_error_says_how_to_install_it_or_give_a_url() -> None:
    with pytest.raises(PostgresMissing) as caught:
        find_binaries(environ={"PATH": ""}, folders=())
    message = str(caught.value)
    assert "looked on PATH, pg_config --bindir" in message
    assert "sudo apt-get install postgresql" in message and "brew install postgresql@16" in message
    assert 'state: {postgres: "postgresql://' in message


def test_install_folders_are_searched_highest_version_first(tmp_path: Path) -> None:
    for version in ("9.6.24", "16.2", "13.1"):
        fake_install(tmp_path / "lib" / version.split(".")[0] / "bin", version)
    found = find_binaries(environ={"PATH": ""}, folders=(str(tmp_path / "lib" / "*" / "bin"),))
    assert (found.version, found.bindir) == ("16.2", str(tmp_path / "lib" / "16" / "bin"))
    assert found.psql == str(tmp_path / "lib" / "16" / "bin" / "psql")


def test_a_path_entry_is_followed_to_its_install_and_a_client_alone_is_named(tmp_path: Path) -> None:
    fake_install(tmp_path / "opt" / "pg" / "bin", "15.4")
    (tmp_path / "bin").mkdir()
    for name in ("initdb", "pg_ctl", "postgres"):  # as /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb
        (tmp_path / "bin" / name).symlink_to(tmp_path / "opt" / "pg" / "bin" / name)
    found = find_binaries(environ={"PATH": str(tmp_path / "bin")}, folders=())
    assert found.bindir == str(tmp_path / "opt" / "pg" / "bin") and found.psql.endswith("/opt/pg/bin/psql")

    fake_install(tmp_path / "client", "15.4", programs=("psql",))
    with pytest.raises(PostgresMissing, match=r"Found .*/client/psql, a client without a server"):
        find_binaries(environ={"PATH": str(tmp_path / "client")}, folders=())


# -- The server -------------------------------------------------------------------------------------------------


def test_a_fresh_cluster_listens_on_its_private_socket_only(postgres_server: PgServer, postgres_project: Path) -> None:
    folder = postgres_project / ".faasemu" / "postgres"
    assert postgres_server.socket_dir == str(folder)
    assert postgres_server.url("app") == f"postgresql://faasemu@/app?host={folder}"
    assert sql(postgres_server, "SHOW listen_addresses") == ""  # no TCP at all
    assert sql(postgres_server, "SHOW unix_socket_directories") == str(folder)
    assert sql(postgres_server, "SHOW fsync") == "on"
    assert sql(postgres_server, "SELECT current_user, current_database()") == "faasemu|postgres"
    assert stat.S_ISSOCK(os.stat(folder / ".s.PGSQL.5432").st_mode)
    assert mode(folder / ".s.PGSQL.5432") == 0o700


def test_the_folders_are_private_and_run_as_root_the_server_is_not_root(postgres_server: PgServer,
                                                                       postgres_project: Path) -> None:
    base = postgres_project / ".faasemu"
    folder = base / "postgres"
    assert mode(folder) == 0o700 and mode(folder / "data") == 0o700
    server_user = pwd.getpwuid(os.stat(f"/proc/{postgres_server.pid}").st_uid).pw_name
    if ROOT:
        # .faasemu/ lets the server's account through (not list); the cluster is that account's alone.
        assert mode(base) == 0o711
        assert server_user in ("postgres", "nobody") and os.stat(folder).st_uid == os.stat(folder / "data").st_uid != 0
    else:
        assert mode(base) == 0o700 and server_user == pwd.getpwuid(os.geteuid()).pw_name
    # Root (or the user) connects through the 0700 socket, with the URL handlers get.
    with connect(postgres_server.url("postgres")) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.skipif(not ROOT, reason="only root runs the server as another account")
def test_as_root_a_folder_the_server_cannot_reach_is_refused_with_the_fix(postgres_project: Path, postgres_binaries,
                                                                          postgres_cache: Path) -> None:
    closed = postgres_project / "closed"
    closed.mkdir()
    closed.chmod(0o700)  # as root's home is
    folder = closed / "shop" / ".faasemu" / "postgres"
    with pytest.raises(PostgresError) as caught, \
            private_server(str(folder), postgres_binaries, cache_dir=str(postgres_cache / "faasemu")):
        pass
    message = str(caught.value)
    assert f"as the user '{pwd.getpwuid(os.stat(folder).st_uid).pw_name}', which cannot enter {closed} (drwx------" \
        in message
    assert f"`chmod o+x {closed}`" in message and "state.postgres" in message
    assert not (folder / "data").exists()


def test_a_long_project_path_puts_the_socket_in_a_short_private_folder(postgres_binaries, postgres_project: Path,
                                                                       postgres_cache: Path) -> None:
    root = postgres_project / ("a-project-folder-with-a-long-name-" * 3)
    root.mkdir()
    folder = str(root / ".faasemu" / "postgres")
    assert len(os.path.join(folder, ".s.PGSQL.5432")) > postgres.SOCKET_PATH_MAX
    cache_dir = str(postgres_cache / "faasemu")
    with private_server(folder, postgres_binaries, cache_dir=cache_dir) as server:
        socket_dir = server.socket_dir
        assert socket_dir.startswith("/tmp/faasemu-pg-") and mode(socket_dir) == 0o700
        assert os.stat(socket_dir).st_uid == os.stat(folder).st_uid
        assert Path(folder, "socket").read_text().strip() == socket_dir  # where a second faasemu finds it
        assert sql(server, "SELECT 1") == "1"
    with private_server(folder, postgres_binaries, cache_dir=cache_dir) as again:
        assert again.socket_dir == socket_dir
    os.rmdir(socket_dir)


# -- Sharing and reuse ------------------------------------------------------------------------------------------


def test_two_leases_share_one_server_and_the_first_to_end_does_not_stop_it(postgres_binaries, postgres_project: Path,
                                                                         postgres_cache: Path) -> None:
    folder = str(postgres_project / ".faasemu" / "postgres")
    cluster = PrivateCluster(folder, postgres_binaries)
    with holder(folder, postgres_cache) as other:  # `up`, serving
        assert other.stdout is not None and other.stdin is not None
        pid = int(other.stdout.readline())
        with private_server(folder, postgres_binaries, cache_dir=str(postgres_cache / "faasemu")) as server:
            assert server.pid == pid  # joined, not a second server
            assert len(os.listdir(os.path.join(folder, "leases"))) == 2
        running = cluster.running()  # an `invoke` ended while `up` still serves
        assert running is not None and running.pid == pid and sql(running, "SELECT 1") == "1"
        other.stdin.close()
        assert other.wait(timeout=30) == 0
    assert cluster.running() is None and not os.path.exists(os.path.join(folder, "data", "postmaster.pid"))
    assert os.listdir(os.path.join(folder, "leases")) == []


def test_nested_leases_in_one_process_count_apart(postgres_binaries, postgres_project: Path,
                                                  postgres_cache: Path) -> None:
    folder = str(postgres_project / ".faasemu" / "postgres")
    cache_dir = str(postgres_cache / "faasemu")
    cluster = PrivateCluster(folder, postgres_binaries)
    with private_server(folder, postgres_binaries, cache_dir=cache_dir) as outer:
        with private_server(folder, postgres_binaries, cache_dir=cache_dir) as inner:
            assert inner.pid == outer.pid
        assert cluster.running() is not None
    assert cluster.running() is None


def test_a_server_left_by_a_killed_faasemu_is_reused_then_stopped_by_the_last_lease(
        postgres_binaries, postgres_project: Path, postgres_cache: Path) -> None:
    folder = str(postgres_project / ".faasemu" / "postgres")
    cluster = PrivateCluster(folder, postgres_binaries)
    with holder(folder, postgres_cache) as killed:
        assert killed.stdout is not None
        pid = int(killed.stdout.readline())
        killed.kill()  # kill -9: its lease stays behind, and the server it started keeps running
        killed.wait(timeout=30)
    assert len(os.listdir(os.path.join(folder, "leases"))) == 1
    running = cluster.running()
    assert running is not None and running.pid == pid
    with private_server(folder, postgres_binaries, cache_dir=str(postgres_cache / "faasemu")) as server:
        assert server.pid == pid  # reused, not duplicated
        assert len(os.listdir(os.path.join(folder, "leases"))) == 1  # the dead one pruned, ours left
        assert sql(server, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'checkpointer'") == "1"
    assert cluster.running() is None
    assert gone(pid)


def test_a_half_built_cluster_is_never_used(postgres_binaries: PgBinaries, postgres_project: Path,
                                            postgres_cache: Path) -> None:
    folder = postgres_project / ".faasemu" / "postgres"
    failing = dataclasses.replace(postgres_binaries, initdb="/bin/false")
    with pytest.raises(PostgresError, match="initdb failed"), \
            private_server(str(folder), failing, cache_dir=str(postgres_cache / "faasemu"), pristine=False):
        pass
    assert not (folder / "data").exists() and not list(folder.glob("data.tmp-*"))
    (folder / "data.tmp-interrupted").mkdir()  # a copy cut short by a kill -9
    (folder / "data.tmp-interrupted" / "PG_VERSION").write_text("15\n")
    with private_server(str(folder), postgres_binaries, cache_dir=str(postgres_cache / "faasemu")) as server:
        assert sql(server, "SELECT 1") == "1"
    assert not list(folder.glob("data.tmp-*"))


def test_a_cluster_of_another_major_version_is_refused_not_touched(postgres_binaries: PgBinaries,
                                                                   postgres_project: Path) -> None:
    data = postgres_project / ".faasemu" / "postgres" / "data"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("9\n")
    with pytest.raises(PostgresError, match=r"made by PostgreSQL 9, and the server found is .*delete .*lost"), \
            private_server(str(data.parent), postgres_binaries):
        pass
    assert os.listdir(data) == ["PG_VERSION"]


# -- Databases --------------------------------------------------------------------------------------------------


def test_the_schema_is_applied_once_and_a_second_ensure_keeps_what_handlers_wrote(postgres_server: PgServer,
                                                                                  tmp_path: Path) -> None:
    schema = write(tmp_path / "schema.sql", """
        CREATE TABLE orders (id text PRIMARY KEY, status text NOT NULL);
        INSERT INTO orders VALUES ('seed', 'placed');
    """)
    assert ensure_database(postgres_server, "app", schema) is True
    with psycopg.connect(postgres_server.url("app")) as handler:  # a handler, through $DATABASE_URL
        handler.execute("INSERT INTO orders VALUES ('o-1', 'paid')")
    assert ensure_database(postgres_server, "app", schema) is False
    assert sql(postgres_server, "SELECT id, status FROM orders ORDER BY id", "app") == "o-1|paid\nseed|placed"


def test_a_bad_schema_is_located_to_its_line_and_leaves_no_database(postgres_server: PgServer,
                                                                    tmp_path: Path) -> None:
    schema = write(tmp_path / "schema.sql", """
        CREATE TABLE orders (id text PRIMARY KEY);

        CREATE TABLE payments (
            id text PRIMARY KEY,
            amount nosuchtype
        );
    """)
    with pytest.raises(LocatedError) as caught:
        ensure_database(postgres_server, "app", schema)
    assert (caught.value.file, caught.value.line) == (schema, 5)
    assert 'type "nosuchtype" does not exist' in str(caught.value)
    assert str(caught.value).startswith(f"{schema}:5: ")
    assert not database_exists(postgres_server, "app")
    assert sql(postgres_server, "SELECT count(*) FROM pg_database WHERE datname LIKE 'faasemu_new_%'") == "0"
    write(tmp_path / "schema.sql", "CREATE TABLE orders (id text PRIMARY KEY);\n")
    assert ensure_database(postgres_server, "app", schema) is True  # the fix applies: nothing counted as created


def test_chaos_clones_a_template_and_drops_the_copy(postgres_server: PgServer, tmp_path: Path) -> None:
    schema = write(tmp_path / "schema.sql", "CREATE TABLE t (n int); INSERT INTO t VALUES (7);\n")
    ensure_database(postgres_server, "template_run", schema)
    clone_database(postgres_server, "template_run", "run_1")
    assert sql(postgres_server, "SELECT n FROM t", "run_1") == "7"
    with psycopg.connect(postgres_server.url("run_1")):  # a lane's handler still connected
        drop_database(postgres_server, "run_1")
    assert not database_exists(postgres_server, "run_1") and database_exists(postgres_server, "template_run")


def test_a_url_of_ones_own_server_works_and_a_server_refusing_create_database_says_chaos_needs_it(
        postgres_server: PgServer, tmp_path: Path) -> None:
    url = postgres_server.url("postgres")  # as the user would give it in state.postgres
    assert database_url(url, "app") == postgres_server.url("app")
    assert database_url("postgresql://me:secret@db.example:5433/shop?sslmode=disable", "run_1") == \
        "postgresql://me:secret@db.example:5433/run_1?sslmode=disable"
    schema = write(tmp_path / "schema.sql", "CREATE TABLE t (n int);\n")
    assert ensure_database(url, "app", schema) is True and ensure_database(url, "app", schema) is False

    sql(postgres_server, "CREATE ROLE plain LOGIN")
    plain = f"postgresql://plain@/postgres?host={postgres_server.socket_dir}"
    with pytest.raises(PostgresError) as caught:
        ensure_database(plain, "other", schema)
    message = str(caught.value)
    assert "permission denied to create database" in message and "`chaos`" in message and "CREATEDB" in message
    with pytest.raises(PostgresError, match="CREATEDB"):
        clone_database(plain, "app", "run_1")


def test_connect_without_psycopg_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now raises ImportError
    with pytest.raises(PostgresError, match=r"pip install 'faasemu\[postgres\]'"):
        connect("postgresql://faasemu@/app?host=/nowhere")
