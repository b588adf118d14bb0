"""The campaign (docs/verification.md#the-campaign): calibrate, probe, randomise, shrink, classify, attribute.

The algorithms are pure and synchronous (`probes`, `shrink`, `classify`); they ask a batch
predicate, `check`, whether candidates violate. Here `check` runs the candidates and their
baselines in the runner's parallel lanes, caches every result, and compares with the calibrated
comparator. The algorithms run in a thread; the runner stays on the event loop.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from faasemu.chaos.model import APPLY_CHANGE, ChaosOptions, DeliveryRef, Step, duplicate_at_end, generate, select
from faasemu.project.failures import WorkerError
from faasemu.project.spec import Manifest
from faasemu.runtimes.contract import load_runtime
from faasemu.verify import probes
from faasemu.verify.classify import NOT_IDEMPOTENT, Violation, attribute, best_per_kind, classify, family
from faasemu.verify.compare import Comparator, nondeterministic_columns, unstable_parts
from faasemu.verify.model import Candidate, RunResult
from faasemu.verify.runner import Runner
from faasemu.verify.shrink import Memo, memo_of, schedule_of, shrink

if TYPE_CHECKING:
    from faasemu.verify.cluster import ClusterRunner

MAX_SHRINKS = 12  # random failures shrunk at most; probes have usually found the culprits already
MAX_DISJOINT_GROUPS = 8  # per function: re-tests of members a passing "duplicated at the end" group cannot clear
CONFIRM_RUNS = 5  # an overlap violation is a race: its schedule runs this many more times before it is reported
CRASHES_PER_SHAPE = 4  # crash probe: deliveries per (function, k, sequence of steps); --crash reaches the rest

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass
class FunctionVerdict:
    name: str
    deliveries: int
    idempotent: bool | None = None
    order_tolerant: bool | None = None
    nondeterministic_outcome: bool = False
    load_error: WorkerError | None = None
    violations: list[Violation] = field(default_factory=list)


@dataclass
class CampaignResult:
    seed: int
    runs: int
    events: list[dict[str, Any]]
    refs: list[DeliveryRef]
    nondeterministic: list[str]
    functions: dict[str, FunctionVerdict]
    comparator: Comparator
    results: dict[Candidate, RunResult]
    stats: dict[str, int]
    # Each function's runtime, for hints that depend on the platform (Kubeless regenerates event ids).
    runtimes: dict[str, str] = field(default_factory=dict)
    # The traced baseline's steps per delivery (crash reports name them), and overlap reproductions.
    steps: tuple[tuple[str, ...], ...] = ()
    reproduced: dict[Candidate, tuple[int, int]] = field(default_factory=dict)
    order_keys: dict[str, str] = field(default_factory=dict)  # function -> its `order_key`, where it has one
    # Cascades (docs/verification.md#cascades): refs beyond the first `canonical` are downstream
    # deliveries; `emitted` maps each one's path (its `event_id`) to the event the baseline saw there.
    canonical: int = 0
    emitted: dict[str, dict[str, Any]] = field(default_factory=dict)
    cascade_limit: str | None = None

    def event_of(self, ref: DeliveryRef) -> dict[str, Any]:
        """The event a delivery delivers in the baseline (a downstream one's as it was emitted)."""
        if ref.parent is not None:
            return self.emitted.get(ref.event_id, {})
        return self.events[ref.event_index] if ref.event_index < len(self.events) else {}

    def diff(self, violation: Violation) -> dict[str, list[Any]]:
        candidate = violation.candidate
        return self.comparator.diff(self.results[candidate.baseline()], self.results[candidate])

    @property
    def violations(self) -> list[Violation]:
        return [v for verdict in self.functions.values() for v in verdict.violations]


class Campaign:
    """One `faasemu chaos` campaign over a list of events."""

    def __init__(
        self, manifest: Manifest, events: list[dict[str, Any]], refs: list[DeliveryRef], *, seed: int, runs: int,
        options: ChaosOptions, only: Sequence[str] = (), progress: Progress | None = None, lanes: int | None = None,
        runner: Runner | ClusterRunner | None = None,
    ) -> None:
        self.manifest = manifest
        self.events = events
        self.refs = refs
        self.n = len(refs)
        self.seed = seed
        self.runs = runs
        self.options = options
        self.only = list(only)
        self.progress = progress or (lambda phase, done, total: None)
        # the runner: local lanes, or a cluster's (`faasemu chaos --cluster`, cluster.py): the same interface
        self.runner = runner or Runner(manifest, events, refs, seed, lanes=lanes)
        self.results: dict[Candidate, RunResult] = {}
        self.comparator = Comparator((), manifest.state.ignore)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.memo: Memo | None = None
        self.steps: tuple[tuple[str, ...], ...] = ()  # each delivery's steps in the traced baseline
        self.reproduced: dict[Candidate, tuple[int, int]] = {}  # overlap violations: (failed, reruns)

    # -- running candidates ----------------------------------------------------------------------

    async def _ensure(self, candidates: Sequence[Candidate]) -> None:
        missing = list(dict.fromkeys(c for c in candidates if c not in self.results))
        for candidate, result in zip(missing, await self.runner.run_many(missing)):
            self.results[candidate] = result

    def check(self, candidates: Sequence[Candidate]) -> list[bool]:
        """The batch predicate the pure algorithms ask: does each candidate differ from its baseline?"""
        assert self.loop is not None
        wanted = [c for candidate in candidates for c in (candidate, candidate.baseline())]
        asyncio.run_coroutine_threadsafe(self._ensure(wanted), self.loop).result()
        return [self.comparator.differs(self.results[c.baseline()], self.results[c]) for c in candidates]

    # -- the campaign ----------------------------------------------------------------------------

    async def run(self) -> CampaignResult:
        self.loop = asyncio.get_running_loop()
        async with self.runner:
            self.progress("calibrate", 0, 2)
            first = await self.runner.discover()
            # docs/verification.md#cascades: the traced baseline found the downstream deliveries; from
            # here on they are deliveries like any other (indices n.., in the order they joined)
            self.refs = list(self.runner.refs)
            self.n = len(self.refs)
            self.results[Candidate()] = first
            self.progress("calibrate", 1, 2)
            second = (await self.runner.run_many([Candidate()]))[0]
            self.progress("calibrate", 2, 2)
            nondeterministic = nondeterministic_columns(first, second) | self.runner.generated
            self.comparator = Comparator(nondeterministic, self.manifest.state.ignore)
            unstable = unstable_parts(first, second, self.comparator)
            self.memo = memo_of(self.check, self.n)
            self.steps = first.steps
            found = await asyncio.to_thread(self._search, first)
            # The memo may know a violation's answer without having run it (shrink records what it
            # learnt elsewhere): the report's diffs need both runs, and every check below too.
            await self._ensure([c for v in found for c in (v.candidate, v.candidate.baseline())])
            # docs/verification.md#calibration: before reporting, the baseline runs once more; what differs joins the
            # nondeterministic set and every violation is checked again.
            if found:
                third = (await self.runner.run_many([Candidate()]))[0]
                extra = nondeterministic_columns(first, third) - self.comparator.nondeterministic
                if extra:
                    self.comparator = self.comparator.extended(extra)
                    found = [v for v in found if self.comparator.differs(
                        self.results[v.candidate.baseline()], self.results[v.candidate])]
            found = await self._confirm_races(found)
        return self._verdicts(found, unstable, first)

    async def _confirm_races(self, found: list[Violation]) -> list[Violation]:
        """Run each overlap violation's schedule CONFIRM_RUNS more times (a race is timing): it is
        reported with how often it reproduced. One that never did again is dropped, unless it was a
        crash explained as a race: then the crash, which does not depend on timing, is reported."""
        kept = []
        for violation in found:
            if violation.kind != "overlap":
                kept.append(violation)
                continue
            candidate = violation.candidate
            reruns = await self.runner.run_many([candidate] * CONFIRM_RUNS)
            baseline = self.results[candidate.baseline()]
            failed = sum(self.comparator.differs(baseline, rerun) for rerun in reruns)
            self.reproduced[candidate] = (failed, CONFIRM_RUNS)
            if failed:
                kept.append(violation)
            elif violation.fallback is not None:
                crash = violation.fallback
                await self._ensure([crash, crash.baseline()])
                if self.comparator.differs(self.results[crash.baseline()], self.results[crash]):
                    kept.append(Violation(violation.function, "crash", crash, tuple(schedule_of(crash, self.refs))))
        return best_per_kind(kept, self.refs)

    def _search(self, traced: RunResult) -> list[Violation]:
        """Probes, then random schedules, then shrink, classify and attribute what failed."""
        assert self.memo is not None
        memo = self.memo
        suspects: list[Candidate] = []
        touched = list(traced.touched)
        owners: list[str | None] = [*self.only] if self.only else [None]
        every = (
            lambda owner: probes.duplicates_right_after(self.refs, memo, owner),
            lambda owner: probes.duplicates_elsewhere(self.refs, memo, owner),
            lambda owner: self._duplicates_at_end(memo, touched, owner),
            lambda owner: probes.reversal(self.n, memo, self.refs, owner),
            lambda owner: probes.conflicting_swaps(_conflicting_pairs(touched), memo, owner, self.refs),
            lambda owner: probes.overlaps(self.refs, memo, owner),
            lambda owner: probes.crashes(self.refs, memo, self.steps, owner, CRASHES_PER_SHAPE),
            lambda owner: probes.batches(self.refs, memo, self._batchable(), owner),
        )
        steps = len(every) * len(owners)
        done = 0
        self.progress("probes", done, steps)
        for only in owners:
            for probe in every:
                suspects.extend(candidate for _function, candidate in probe(only))
                done += 1
                self.progress("probes", done, steps)
        random_failures = self._random_runs(memo)
        violations = self._explain(suspects, random_failures, memo)
        return best_per_kind(violations, self.refs)

    def _duplicates_at_end(self, memo: Memo, touched: Sequence[frozenset[str]], only: str | None) -> list[Any]:
        """Each function's deliveries duplicated at the end, group-tested; then the members a
        passing group cannot clear (they write rows other deliveries also write, and replaying a
        whole sequence can land back on the baseline) re-tested in groups whose writes are pairwise
        disjoint, so no member of a group can mask another: at most MAX_DISJOINT_GROUPS groups per
        function, each narrowed down when it fails. The random schedules cover the rest, which
        keeps the probe's cost logarithmic instead of one full run per shared delivery."""
        found = list(probes.duplicates_at_end(self.refs, memo, lambda i: False, only))
        shared = _shared(touched)
        groups: list[tuple[int, ...]] = []
        for name in [only] if only else self._functions():
            members = [r.index for r in self.refs if r.function == name and shared(r.index)]
            groups.extend(_disjoint_groups(members, touched)[:MAX_DISJOINT_GROUPS])
        n = self.n
        findings = probes.group_test(groups, lambda m: Candidate(None, tuple(duplicate_at_end(m, n))), memo)
        return found + [(None, f.candidate) for f in findings]

    def _random_runs(self, memo: Memo) -> list[Candidate]:
        candidates = []
        for number in range(self.runs):
            perturbations = generate(self.n, self.options, random.Random(f"{self.seed}/random/{number}"),
                                     steps=[len(s) for s in self.steps], serial=[r.serial for r in self.refs],
                                     batchable=self._batchable())
            if self.only:
                perturbations = select(perturbations, self.refs, self.only)
            candidates.append(Candidate(None, tuple(perturbations)))
        failing: list[Candidate] = []
        chunk = max(1, self.runner.lane_count * 2)
        for start in range(0, len(candidates), chunk):
            batch = candidates[start : start + chunk]
            failing.extend(c for c, bad in zip(batch, memo(batch)) if bad)
            self.progress("random", min(start + chunk, len(candidates)), len(candidates))
        return failing

    def _explain(self, suspects: list[Candidate], random_failures: list[Candidate], memo: Memo) -> list[Violation]:
        violations: list[Violation] = []
        explained: dict[str, set[str]] = {}
        queue = list(dict.fromkeys(suspects)) + random_failures[:MAX_SHRINKS]
        for number, candidate in enumerate(queue):
            self.progress("shrink", number, len(queue))
            if explained:
                # It may show what is already explained: drop the copies (duplicates, lost acks) of
                # functions already found not idempotent and the moves of those found not
                # order-tolerant, then see whether something else remains to explain.
                candidate = Candidate(candidate.deliveries, _unexplained(candidate.perturbations, self.refs, explained))
                if not candidate.perturbations or not memo([candidate])[0]:
                    continue
            minimal = shrink(candidate, memo, self.n)
            classified = classify(minimal, memo, self.refs)
            blamed = attribute(classified.candidate, memo, self.refs)
            if self.only:
                blamed = [name for name in blamed if name in self.only]
            steps = tuple(schedule_of(classified.candidate, self.refs))
            for name in blamed:
                violations.append(Violation(name, classified.kind, classified.candidate, steps, classified.fallback))
                explained.setdefault(name, set()).add(classified.kind)
        self.progress("shrink", len(queue), len(queue))
        return violations

    def _batchable(self) -> list[bool]:
        """Per delivery: its function takes SQS batches of more than one record (docs/verification.md#batches)."""
        specs = {spec.name: spec for spec in self.manifest.functions}

        def batches(name: str) -> bool:
            spec = specs.get(name)
            return spec is not None and spec.batch_size > 1 and load_runtime(spec.runtime).delivers_batches(spec)

        known = {name: batches(name) for name in {ref.function for ref in self.refs}}
        return [known[ref.function] for ref in self.refs]

    def _functions(self) -> list[str]:
        return list(dict.fromkeys(ref.function for ref in self.refs if ref.function != APPLY_CHANGE))

    def _verdicts(self, violations: list[Violation], unstable: frozenset[str], traced: RunResult) -> CampaignResult:
        counts: dict[str, int] = {}
        for ref in self.refs:
            counts[ref.function] = counts.get(ref.function, 0) + 1
        verdicts: dict[str, FunctionVerdict] = {}
        for spec in self.manifest.functions:
            deliveries = counts.get(spec.name, 0)
            verdict = FunctionVerdict(spec.name, deliveries)
            problem = self.runner.load_problems.get(spec.name)
            if problem is not None:
                verdict.load_error = problem.error
            if deliveries and problem is None:
                writes = {key for ref, keys in zip(self.refs, traced.touched) if ref.function == spec.name
                          for key in keys}
                verdict.nondeterministic_outcome = any(_touches(writes, part) for part in unstable)
                if not verdict.nondeterministic_outcome:
                    mine = [v for v in violations if v.function == spec.name]
                    verdict.violations = mine
                    verdict.idempotent = not any(v.kind in NOT_IDEMPOTENT for v in mine)
                    movable = self.n > 1
                    verdict.order_tolerant = (not any(v.kind == "order" for v in mine)) if movable else None
            verdicts[spec.name] = verdict
        if self.only:
            verdicts = {name: v for name, v in verdicts.items() if name in self.only}
        return CampaignResult(
            seed=self.seed, runs=self.runs, events=self.events, refs=self.refs,
            nondeterministic=sorted(self.comparator.nondeterministic), functions=verdicts,
            comparator=self.comparator, results=self.results,
            stats={"runs_executed": self.runner.runs, "deliveries_executed": self.runner.deliveries,
                   "candidates": len(self.results)},
            runtimes={spec.name: spec.runtime for spec in self.manifest.functions},
            steps=self.steps, reproduced=self.reproduced,
            order_keys={spec.name: spec.order_key for spec in self.manifest.functions if spec.order_key},
            canonical=self.runner.canonical,
            emitted={ref.event_id: self.runner.events[ref.event_index] for ref in self.refs if ref.parent is not None},
            cascade_limit=self.runner.limit,
        )


def _unexplained(perturbations: Sequence[Any], refs: Sequence[DeliveryRef],
                 explained: dict[str, set[str]]) -> tuple[Any, ...]:
    """The perturbations that can still show something new: a function already found not
    idempotent loses all its copies (plain, other-instance, races, crashes), and one found for a
    v2 kind or for order loses the perturbations of that kind."""
    owner = {ref.index: ref.function for ref in refs}
    kept = []
    for item in perturbations:
        kinds = explained.get(owner.get(item.ref_index, ""), set())
        kind = family(item)
        if kind in kinds or ("idempotency" in kinds and kind != "order"):
            continue
        kept.append(item)
    return tuple(kept)


def _touches(writes: set[str], part: str) -> bool:
    """Whether a function's baseline writes (`table[key]`, `sink.name`, `emitted.type`) hit an unstable part."""
    return any(key == part or key.startswith(part + "[") for key in writes)


def _shared(touched: Sequence[frozenset[str]]) -> Callable[[int], bool]:
    """Delivery i writes a row (or sink) that another delivery also writes."""
    writers: dict[str, int] = {}
    for keys in touched:
        for key in keys:
            writers[key] = writers.get(key, 0) + 1
    return lambda i: i < len(touched) and any(writers[key] > 1 for key in touched[i])


def _disjoint_groups(members: Sequence[int], touched: Sequence[frozenset[str]]) -> list[tuple[int, ...]]:
    """First-fit packing of deliveries into groups whose written keys are pairwise disjoint."""
    groups: list[list[int]] = []
    keys: list[set[str]] = []
    for member in members:
        writes = touched[member] if member < len(touched) else frozenset()
        for group, taken in zip(groups, keys):
            if not (writes & taken):
                group.append(member)
                taken.update(writes)
                break
        else:
            groups.append([member])
            keys.append(set(writes))
    return [tuple(group) for group in groups]


def _conflicting_pairs(touched: Sequence[frozenset[str]]) -> list[tuple[int, int]]:
    """Pairs of deliveries whose baseline writes touch the same rows or keys: for each key, each
    writer with the next one (a chain covers every order that matters for that key, in O(n))."""
    last: dict[str, int] = {}
    pairs: dict[tuple[int, int], None] = {}
    for index, keys in enumerate(touched):
        for key in sorted(keys):
            if key in last:
                pairs[(last[key], index)] = None
            last[key] = index
    return list(pairs)


def steps_json(steps: Sequence[Step]) -> list[dict[str, Any]]:
    return [
        {"event": step.ref.event_id, "function": step.ref.function, **({"tags": list(step.tags)} if step.tags else {})}
        for step in steps
    ]

