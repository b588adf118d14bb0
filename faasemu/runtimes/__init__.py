"""The runtimes: one module per platform, each ending with `RUNTIME = Runtime(...)` (contract.py).

The declarative table (defaults, manifest options, capabilities) is `faasemu/project/platforms.py`,
re-exported here under its older names. A runtime module imports only the standard library at
module level; `load_runtime()` imports it only inside that runtime's workers or where the
supervisor needs its pure parts. See docs/runtime-contract.md.
"""

from __future__ import annotations

from faasemu.project.platforms import DEFAULT_RUNTIME, PLATFORMS, PlatformInfo, RuntimeInfo, available_runtimes
from faasemu.runtimes.contract import Runtime, load_runtime

RUNTIMES = PLATFORMS  # the same dict: tests that mark a platform unavailable patch both
load_adapter = load_runtime  # the name callers outside runtimes/ used before the contract

__all__ = ["DEFAULT_RUNTIME", "PLATFORMS", "RUNTIMES", "PlatformInfo", "Runtime", "RuntimeInfo",
           "available_runtimes", "load_adapter", "load_runtime"]
