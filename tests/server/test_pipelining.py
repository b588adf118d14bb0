"""Pipelining (faasemu/workers/pool.py `_share`, docs/architecture.md#pipelining) against a real `faasemu up`:
queued HTTP requests of a fast function share a worker, sent together and answered in order. Each
answer must still be its own request's, and a request that hangs, crashes or runs out of memory
costs only itself: the requests sent behind it on the same worker never began, and are served by
the next worker instead of failing.

The function has `concurrency: 1` so that every queued request waits for the one worker, and it is
made "fast" first (pipelining starts only after FAST_SAMPLES quick invocations).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from conftest import Server, write_project

from faasemu.workers.pool import FAST_SAMPLES

PROJECT = {
    "faasemu.yaml": """\
        name: pipelined
        functions:
          echo:
            handler: echo.py:handler
            http: {path: /echo, methods: [GET]}
            concurrency: 1
            timeout: 2
            memory: 128
    """,
    "echo.py": """\
        import os, time


        def handler(event, context):
            query = event.get("queryStringParameters") or {}
            what = query.get("do")
            if what == "hang":
                time.sleep(60)
            elif what == "crash":
                os._exit(3)
            elif what == "oom":
                hog = bytearray(400 * 1024 * 1024)
                hog[::4096] = b"x" * len(hog[::4096])
                time.sleep(5)
            remaining = context.get_remaining_time_in_millis()
            return {"statusCode": 200, "body": f"{query.get('n', '')} {remaining}"}
    """,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("pipelined")
    with Server(write_project(root, PROJECT)) as up:
        yield up


def pipelined(server: Server) -> int:
    functions = httpx.get(f"{server.url}/_faasemu/functions", timeout=10).json()["functions"]
    return next(row["pipelined"] for row in functions if row["name"] == "echo")


async def burst(server: Server, queries: list[dict[str, str]]) -> list[httpx.Response]:
    """All at once, as 32 wrk connections would: every request queued for the one worker."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30,
                                 limits=httpx.Limits(max_connections=len(queries))) as client:
        return await asyncio.gather(*(client.get("/echo", params=query) for query in queries))


def make_fast(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for n in range(FAST_SAMPLES + 4):
            assert client.get("/echo", params={"n": f"warm-{n}"}).status_code == 200


def test_queued_requests_share_the_worker_and_each_gets_its_own_answer(server: Server) -> None:
    make_fast(server)
    before = pipelined(server)
    responses = asyncio.run(burst(server, [{"n": str(n)} for n in range(64)]))
    assert [r.status_code for r in responses] == [200] * 64
    assert [r.text.split()[0] for r in responses] == [str(n) for n in range(64)]
    assert pipelined(server) > before, "64 requests queued for one fast worker, and none was pipelined"
    # each request's clock starts when the worker begins it, not when it was sent: never the whole
    # timeout spent while waiting behind the others
    assert all(0 < int(r.text.split()[1]) <= 2000 for r in responses)


@pytest.mark.parametrize("how, status", [("hang", 504), ("crash", 502), ("oom", 502)])
def test_a_request_that_fails_costs_only_itself_not_those_sent_behind_it(server: Server, how: str,
                                                                       status: int) -> None:
    make_fast(server)
    before = pipelined(server)
    # two failing requests deep in a burst: each is almost surely sent with others behind it (groups of 8)
    queries = [{"n": str(n)} for n in range(48)]
    queries.insert(16, {"n": f"{how}-1", "do": how})
    queries.insert(33, {"n": f"{how}-2", "do": how})
    responses = asyncio.run(burst(server, queries))
    by_n = {query["n"]: response for query, response in zip(queries, responses)}
    assert by_n[f"{how}-1"].status_code == status, by_n[f"{how}-1"].text
    if how != "hang":  # the second hang waits past its timeout behind the first one
        assert by_n[f"{how}-2"].status_code == status, by_n[f"{how}-2"].text
    others = {query["n"]: by_n[query["n"]] for query in queries if not query["n"].startswith(how)}
    served = {n: r.text.split()[0] for n, r in others.items() if r.status_code == 200}
    assert served == {n: n for n in served}, "an answer went to another request"
    unserved = {n: (r.status_code, r.text) for n, r in others.items() if r.status_code != 200}
    if how == "hang":
        # with one worker and a 2 s timeout, those queued behind a hang wait past their timeout, pipelined
        # or not; what they must not be told is that their handler ran and crashed
        assert all(code == 504 and "waiting for a worker" in text for code, text in unserved.values()), unserved
    else:
        assert not unserved, unserved
        assert pipelined(server) > before
    assert "Traceback" not in server.output()
