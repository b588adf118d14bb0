"""`faasemu chaos --cluster`: the campaign's lanes on Ray workers (docs/verification.md#on-a-cluster).

A campaign's runs are independent and seeded, so nothing but the runner has to move: `ClusterRunner`
offers the campaign what `Runner` does (`discover`, `run_many`, the counters) and hands chunks of
candidates to Ray actors, each of which owns an ordinary local `Runner` with one lane. The project
travels as the Ray job's working directory (runtime_env `working_dir`, without `.faasemu/`, `.git/`,
bytecode caches and virtual environments); the manifest is the one this machine loaded (its `${VAR}`s
resolved from this shell, as a local run resolves them), its paths moved to where the job's copy is.

The traced baseline runs once, on the first actor: which downstream deliveries exist, their paths and
the events they deliver are state it adds to its runner (docs/verification.md#cascades). A handler
may emit events whose ids or number vary, so a second discovery elsewhere is not guaranteed to find
the same deliveries; the other actors adopt the first one's (`Discovery`) instead of discovering
again. Results come back in the candidates' order, so the report is the one a local run writes.

Ray is an optional extra (`pip install 'faasemu[cluster]'`), imported only when --cluster is given.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from faasemu.chaos.model import DeliveryRef
from faasemu.project.errors import FaasemuError, UsageError
from faasemu.project.spec import Manifest
from faasemu.verify.lanes import LoadProblem
from faasemu.verify.model import Candidate, RunResult
from faasemu.verify.runner import Runner

T = TypeVar("T")
AUTO = "auto"
ADDRESS = re.compile(r"^ray://(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$")
ACCEPTED = ("ray://HOST:PORT (a Ray Client server: `ray start --head` listens on port 10001), "
            "or auto (the Ray cluster of this machine, started if there is none; RAY_ADDRESS if set)")
INSTALL = "pip install 'faasemu[cluster]'"
START_TIMEOUT = 300.0  # seconds for the actors to start: a node may have to unpack the project first
CHUNKS_PER_ACTOR = 2  # a run_many call is split into about this many chunks per actor: balance vs. round trips
# What never travels with the project: faasemu's own folder, version control, bytecode, environments.
EXCLUDES = (".faasemu/", ".git/", "__pycache__/", "*.pyc", ".venv/", "venv/", ".tox/", ".mypy_cache/",
            ".ruff_cache/", ".pytest_cache/")


def parse_address(text: str) -> str:
    """The --cluster value, checked before anything starts: `auto` or `ray://HOST:PORT`."""
    value = text.strip()
    if value == AUTO:
        return value
    match = ADDRESS.match(value)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise UsageError(f"--cluster {text}: not a Ray cluster address; accepted: {ACCEPTED}")
    return value


def excludes(root: str) -> list[str]:
    """runtime_env `excludes` for the project at `root`: EXCLUDES, and every folder holding a
    `pyvenv.cfg` (a virtual environment, whatever its name), anchored at the project root."""
    found = list(EXCLUDES)
    skip = {name.rstrip("/") for name in EXCLUDES if name.endswith("/")}
    for folder, subfolders, files in os.walk(root):
        if "pyvenv.cfg" in files and folder != root:
            found.append("/" + os.path.relpath(folder, root).replace(os.sep, "/") + "/")
            subfolders.clear()
            continue
        subfolders[:] = [name for name in subfolders if name not in skip and not name.startswith(".git")]
    return found


def moved(value: Any, old: str, new: str) -> Any:
    """`value` with every string path under `old` (a project root) moved under `new`: the fields of
    (frozen) dataclasses, tuples, lists and dict values, recursively. A manifest's paths are absolute."""
    if isinstance(value, str):
        return new if value == old else value.replace(old + os.sep, new + os.sep)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: moved(getattr(value, f.name), old, new) for f in dataclasses.fields(value)}
        return dataclasses.replace(value, **changes)
    if isinstance(value, tuple):
        return tuple(moved(item, old, new) for item in value)
    if isinstance(value, list):
        return [moved(item, old, new) for item in value]
    if isinstance(value, dict):
        return {key: moved(item, old, new) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class Discovery:
    """What the traced baseline adds to a runner (runner.py `_join`, `_attribute`, the end of `run`):
    the downstream deliveries and the events they deliver, their paths and depths, the baseline's
    emission counts, and why discovery stopped early, if it did."""

    refs: tuple[DeliveryRef, ...]
    events: tuple[dict[str, Any], ...]
    paths: tuple[str, ...]
    depth: tuple[int, ...]
    emissions: dict[int, int]
    cascades: bool
    used_functions: tuple[str, ...]
    limit: str | None

    @classmethod
    def of(cls, runner: Runner) -> Discovery:
        return cls(tuple(runner.refs), tuple(runner.events), tuple(runner.paths), tuple(runner.depth),
                   dict(runner.emissions), runner.cascades, tuple(runner.used_functions), runner.limit)

    def apply(self, runner: Runner) -> None:
        runner.refs, runner.events = list(self.refs), list(self.events)
        runner.paths, runner.depth, runner.emissions = list(self.paths), list(self.depth), dict(self.emissions)
        runner.cascades, runner.used_functions, runner.limit = self.cascades, list(self.used_functions), self.limit
        runner.discovered = True


@dataclass(frozen=True)
class Tally:
    """An actor's counters so far, for the report's totals and its functions that did not load."""

    runs: int
    deliveries: int
    load_problems: dict[str, LoadProblem]


class RelayedError(FaasemuError):
    """A faasemu error an actor raised, as its message and exit code: picklable whatever its class
    (a LocatedError's constructor takes other arguments than it stores)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message, exit_code)
        self.exit_code = exit_code

    def __str__(self) -> str:
        return str(self.args[0])


class LaneHost:
    """The Ray actor (made one by `ray.remote` at run time): a local `Runner` in the job's working
    directory, which is the project's copy. Paths it reports are moved back to the driver's root."""

    def __init__(self, manifest: Manifest, events: list[dict[str, Any]], refs: list[DeliveryRef], seed: int,
                 lanes: int) -> None:
        self.here = os.getcwd()
        self.there = manifest.root
        local = moved(manifest, self.there, self.here)
        if not os.path.exists(local.path):
            shown = os.path.relpath(manifest.path, manifest.root)
            raise UsageError(f"the Ray job's working directory {self.here} holds no {shown}: "
                             "the project did not travel with the job")
        self.runner = Runner(local, events, refs, seed, lanes=lanes)

    async def start(self) -> dict[str, Any]:
        import faasemu

        await self.relayed(self.runner.start())
        return {"version": faasemu.__version__, "node": socket.gethostname(), "generated": self.runner.generated}

    async def discover(self) -> tuple[RunResult, Discovery, Tally]:
        result = await self.relayed(self.runner.discover())
        return result, Discovery.of(self.runner), self.tally()

    async def adopt(self, discovery: Discovery) -> None:
        discovery.apply(self.runner)

    async def run_many(self, candidates: list[Candidate]) -> tuple[list[RunResult], Tally]:
        return await self.relayed(self.runner.run_many(candidates)), self.tally()

    async def close(self) -> None:
        await self.runner.close()

    async def relayed(self, work: Awaitable[T]) -> T:
        """`work`, a faasemu error it raises relayed to the driver (naming this machine's files as the
        driver's: the user's own paths)."""
        try:
            return await work
        except FaasemuError as exc:
            raise RelayedError(moved(str(exc), self.here, self.there), exc.exit_code) from None

    def tally(self) -> Tally:
        problems = {name: moved(problem, self.here, self.there) for name, problem in self.runner.load_problems.items()}
        return Tally(self.runner.runs, self.runner.deliveries, problems)


class ClusterRunner:
    """What the campaign asks of a `Runner`, with the lanes on a Ray cluster's actors, one lane each."""

    def __init__(self, manifest: Manifest, events: Sequence[dict[str, Any]], refs: Sequence[DeliveryRef], seed: int,
                 *, address: str, lanes: int | None = None, on_start: Callable[[str], None] | None = None) -> None:
        self.manifest = manifest
        self.events = list(events)
        self.refs = list(refs)
        self.canonical = len(self.refs)
        self.seed = seed
        self.address = parse_address(address)
        self.wanted = lanes
        self.lane_count = max(1, lanes or 1)  # the cluster's CPUs once connected
        self.on_start = on_start or (lambda line: None)
        self.limit: str | None = None
        self.generated: frozenset[str] = frozenset()
        self.load_problems: dict[str, LoadProblem] = {}
        self.runs = 0
        self.deliveries = 0
        self.output: list[str] = []
        self._ray: Any = None
        self._actors: list[Any] = []
        self._tallies: dict[int, Tally] = {}

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> ClusterRunner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        try:
            import ray
        except ImportError:
            raise UsageError(f"--cluster {self.address} needs Ray, which is not installed: {INSTALL}") from None
        self._ray = ray
        runtime_env = {"working_dir": self.manifest.root, "excludes": excludes(self.manifest.root)}
        try:
            ray.init(None if self.address == AUTO else self.address, runtime_env=runtime_env, log_to_driver=False,
                     logging_level=logging.WARNING, include_dashboard=False if self.address == AUTO else None)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise UsageError(f"--cluster {self.address}: cannot connect to the Ray cluster: {exc}") from None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = max(1, self.wanted or cpus)
        host = ray.remote(num_cpus=1, max_restarts=0)(LaneHost)
        self._actors = [host.remote(self.manifest, self.events, self.refs, self.seed, 1) for _ in range(count)]
        self.lane_count = count
        infos = await self._get([actor.start.remote() for actor in self._actors], START_TIMEOUT)
        import faasemu

        versions = {info["version"] for info in infos}
        if versions != {faasemu.__version__}:
            raise UsageError(f"--cluster {self.address}: the cluster runs faasemu {', '.join(sorted(versions))} and "
                             f"this machine {faasemu.__version__}: install the same version on every node ({INSTALL})")
        self.generated = infos[0]["generated"]
        nodes = len({info["node"] for info in infos})
        where = f"auto ({ray.get_runtime_context().gcs_address})" if self.address == AUTO else self.address
        self.on_start(f"cluster {where} · {count} lane{'s' if count != 1 else ''} on "
                      f"{nodes} node{'s' if nodes != 1 else ''} (Ray {ray.__version__})")

    async def close(self) -> None:
        if self._ray is None:
            return
        try:
            await self._get([actor.close.remote() for actor in self._actors], 60.0)
        finally:
            self.discard()

    def discard(self) -> None:
        """End the actors (their runners' workers die with them) and leave the cluster."""
        ray, self._ray = self._ray, None
        if ray is None:
            return
        for actor in self._actors:
            try:
                ray.kill(actor)
            except Exception:  # already gone with its node: nothing left to end
                pass
        self._actors = []
        ray.shutdown()

    # -- running ---------------------------------------------------------------------------------

    async def discover(self) -> RunResult:
        """The traced baseline on the first actor; the others adopt what it discovered."""
        result, discovery, tally = (await self._get([self._actors[0].discover.remote()]))[0]
        self._count(0, tally)
        self.refs, self.events, self.limit = list(discovery.refs), list(discovery.events), discovery.limit
        await self._get([actor.adopt.remote(discovery) for actor in self._actors[1:]])
        assert isinstance(result, RunResult)
        return result

    async def run_many(self, candidates: Sequence[Candidate]) -> list[RunResult]:
        """Chunks of candidates to whichever actor is free; results in the candidates' order."""
        if not candidates:
            return []
        size = max(1, -(-len(candidates) // (len(self._actors) * CHUNKS_PER_ACTOR)))
        chunks = [list(candidates[start:start + size]) for start in range(0, len(candidates), size)]
        return await asyncio.to_thread(self._run_chunks, chunks)

    def _run_chunks(self, chunks: list[list[Candidate]]) -> list[RunResult]:
        ray = self._ray
        done: list[list[RunResult]] = [[] for _ in chunks]
        free = list(range(len(self._actors)))
        pending: dict[Any, tuple[int, int]] = {}
        following = 0
        while following < len(chunks) or pending:
            while free and following < len(chunks):
                number = free.pop(0)
                pending[self._actors[number].run_many.remote(chunks[following])] = (following, number)
                following += 1
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                chunk, number = pending.pop(ref)
                results, tally = self._unwrap(partial(ray.get, ref))
                done[chunk] = results
                self._count(number, tally)
                free.append(number)
        return [result for chunk in done for result in chunk]

    def _count(self, number: int, tally: Tally) -> None:
        self._tallies[number] = tally
        self.runs = sum(t.runs for t in self._tallies.values())
        self.deliveries = sum(t.deliveries for t in self._tallies.values())
        for t in self._tallies.values():
            for name, problem in t.load_problems.items():
                self.load_problems.setdefault(name, problem)

    async def _get(self, refs: list[Any], timeout: float | None = None) -> list[Any]:
        ray = self._ray
        return await asyncio.to_thread(self._unwrap, partial(ray.get, refs, timeout=timeout))

    def _unwrap(self, call: Callable[[], Any]) -> Any:
        """Ray's answer, or faasemu's own error as an actor raised it (a bad events file, a state hook's
        failure: the same message and exit code as locally), or a UsageError saying what Ray reported."""
        ray = self._ray
        try:
            return call()
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, RelayedError):
                raise exc.cause from None
            raise UsageError(f"--cluster {self.address}: a lane failed on the cluster: {exc}") from None
        except ray.exceptions.GetTimeoutError:
            raise UsageError(f"--cluster {self.address}: the cluster did not start {len(self._actors)} lanes within "
                             f"{START_TIMEOUT:.0f} s (each needs 1 CPU; see `ray status`)") from None
        except ray.exceptions.RayError as exc:
            raise UsageError(f"--cluster {self.address}: the cluster failed: {exc}") from None
