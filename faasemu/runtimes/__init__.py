"""The platform conventions faasemu emulates, and their defaults.

Pure and standard-library only: the supervisor, the manifest validator and the workers all read
this table. Each runtime's conversions live in its own module (`aws_lambda.py`, ...), loaded by
`load_adapter()` only inside that runtime's workers or where the supervisor needs its pure parts.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True, slots=True)
class RuntimeInfo:
    """Defaults a platform applies when the manifest is silent, and the keys it understands."""

    name: str
    module: str
    timeout: float
    retries: int
    memory: int
    options: dict[str, tuple[str, ...]]
    available: bool = True


RUNTIMES: dict[str, RuntimeInfo] = {
    info.name: info
    for info in (
        RuntimeInfo(
            "aws-lambda",
            "faasemu.runtimes.aws_lambda",
            timeout=3.0,
            retries=2,
            memory=128,
            options={"payload": ("v2", "v1"), "event_source": ("eventbridge", "sqs", "sns", "raw")},
        ),
        RuntimeInfo("gcf", "faasemu.runtimes.gcf", 60.0, 0, 256, {"signature": ("http", "cloudevent", "event")}),
        RuntimeInfo("azure", "faasemu.runtimes.azure", 300.0, 4, 1536, {"event_source": ("eventgrid", "queue")}),
        RuntimeInfo("vercel", "faasemu.runtimes.vercel", 300.0, 0, 2048, {}),
        RuntimeInfo("openfaas", "faasemu.runtimes.openfaas", 30.0, 0, 128,
                    {"template": ("python3-http", "python3-flask", "python3")}),
        RuntimeInfo("kubeless", "faasemu.runtimes.kubeless", 180.0, 0, 128, {}),
        RuntimeInfo("knative", "faasemu.runtimes.knative", 300.0, 0, 256, {"signature": ("http", "cloudevent")}),
        RuntimeInfo("netlify", "faasemu.runtimes.netlify", 60.0, 0, 1024, {}),
    )
}

DEFAULT_RUNTIME = "aws-lambda"


def available_runtimes() -> list[str]:
    return [name for name, info in RUNTIMES.items() if info.available]


def load_adapter(runtime: str) -> ModuleType:
    """The runtime's conversion module. It imports only the standard library at module level."""
    return importlib.import_module(RUNTIMES[runtime].module)
