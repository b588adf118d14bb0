"""One `faasemu chaos` campaign on a copy of a scenario app (tests/scenarios/), run once per key and
shared by the tests of a module: the harness of tests/test_chaos_v2_scenarios.py and
tests/test_chaos_cascades.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
RUNS = 5
CAMPAIGN_TIMEOUT = 240.0


@dataclass
class Campaign:
    root: Path
    proc: subprocess.CompletedProcess[str]
    report: dict[str, Any]

    @property
    def out(self) -> str:
        return self.proc.stdout + self.proc.stderr

    def violation(self, function: str, kind: str) -> dict[str, Any]:
        found = [v for v in self.report["functions"][function]["violations"] if v["kind"] == kind]
        assert len(found) == 1, f"{function}: {self.report['functions'][function]['violations']}\n{self.out}"
        return found[0]


def campaigns(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Campaign]:
    """`run(scenario, seed, *extra, copy=0)`: `faasemu chaos events.jsonl --seed S --runs 5 --json
    report.json *extra` in a fresh copy of tests/scenarios/<scenario>, once per key."""
    cache: dict[tuple[Any, ...], Campaign] = {}

    def run(scenario: str, seed: int, *extra: str, copy: int = 0) -> Campaign:
        key = (scenario, seed, extra, copy)
        if key not in cache:
            root = tmp_path_factory.mktemp(f"{scenario}-{seed}")
            shutil.copytree(SCENARIOS / scenario, root, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", ".faasemu"))
            proc = run_cli("chaos", "events.jsonl", "--seed", str(seed), "--runs", str(RUNS), "--json", "report.json",
                           *extra, cwd=root, timeout=CAMPAIGN_TIMEOUT)
            assert proc.returncode in (0, 1), f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            cache[key] = Campaign(root, proc, json.loads((root / "report.json").read_text()))
        return cache[key]

    return run


def verdicts(c: Campaign) -> dict[str, tuple[bool, bool | None, list[str]]]:
    """function -> (idempotent, order_tolerant, violation kinds), from the JSON report."""
    return {name: (entry["idempotent"], entry["order_tolerant"], [v["kind"] for v in entry["violations"]])
            for name, entry in c.report["functions"].items()}
