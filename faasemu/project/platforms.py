"""PURE: the platforms faasemu emulates, as data: defaults, manifest options and capabilities.

The manifest validator reads this table to fill in defaults and check options without importing
any runtime module; the supervisor, the gateway and `faasemu invoke` read the capabilities instead
of probing a runtime module for optional functions. Each platform's conversions live in
`faasemu/runtimes/<module>.py` and satisfy `faasemu.runtimes.contract.Runtime` (docs/runtime-contract.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ImportStyle = Literal["dotted", "source", "package"]
# What `faasemu invoke FN --data JSON` (no --event, no --http) does with the JSON on this platform:
# "raw" passes it as the raw event (as `sam local invoke -e`), "event" delivers it as a CloudEvent's
# data, None refuses (the platform has neither: say to use --event or --http).
DataInvocation = Literal["raw", "event"] | None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a platform offers beyond `http_routes`, `deliver` and `failure_response`, which all have."""

    raw_invocation: bool = False  # Adapter.invoke_raw: Lambda's Invoke API and `invoke --data`
    async_routes: bool = False  # routes answered 202 whose request goes through the bus (runtime.async_routes)
    host_routes: bool = False  # paths the platform's host answers itself (runtime.host_routes)
    refuses_events: bool = False  # events the platform refuses before any function sees them (runtime.refuse_event)
    own_request_ids: bool = False  # a request id rule of its own for event deliveries (runtime.request_id)
    data_invocation: DataInvocation = "event"
    import_style: ImportStyle = "dotted"  # how the worker imports the handler's file (workers/importer.py)
    preload: tuple[str, ...] = ()  # SDK modules a pre-started worker may import before any user module
    background_suffix: str = ""  # a function named `*<suffix>` is a background function (netlify)


@dataclass(frozen=True, slots=True)
class PlatformInfo:
    """Defaults a platform applies when the manifest is silent, the keys it understands, what it can do."""

    name: str
    module: str
    timeout: float
    retries: int
    memory: int
    options: dict[str, tuple[str, ...]]
    available: bool = True
    capabilities: Capabilities = field(default_factory=Capabilities)


RuntimeInfo = PlatformInfo  # the name callers used before the table moved here

PLATFORMS: dict[str, PlatformInfo] = {
    info.name: info
    for info in (
        PlatformInfo(
            "aws-lambda", "faasemu.runtimes.aws_lambda", timeout=3.0, retries=2, memory=128,
            options={"payload": ("v2", "v1"), "event_source": ("eventbridge", "sqs", "sns", "raw", "s3", "dynamodb",
                                                              "kinesis", "schedule")},
            capabilities=Capabilities(raw_invocation=True, refuses_events=True, own_request_ids=True,
                                      data_invocation="raw"),
        ),
        PlatformInfo(
            "gcf", "faasemu.runtimes.gcf", 60.0, 0, 256,
            {"signature": ("http", "cloudevent", "event"), "event_source": ("pubsub", "storage")},
            capabilities=Capabilities(import_style="source",
                                      preload=("flask", "werkzeug", "cloudevents.http", "functions_framework")),
        ),
        PlatformInfo(
            "azure", "faasemu.runtimes.azure", 300.0, 4, 1536, {"event_source": ("eventgrid", "queue")},
            capabilities=Capabilities(host_routes=True, preload=("azure.functions",)),
        ),
        PlatformInfo("vercel", "faasemu.runtimes.vercel", 300.0, 0, 2048, {}),
        PlatformInfo(
            "openfaas", "faasemu.runtimes.openfaas", 30.0, 0, 128,
            {"template": ("python3-http", "python3-flask", "python3")},
            capabilities=Capabilities(async_routes=True),
        ),
        PlatformInfo("kubeless", "faasemu.runtimes.kubeless", 180.0, 0, 128, {}),
        PlatformInfo(
            "knative", "faasemu.runtimes.knative", 300.0, 0, 256, {"signature": ("http", "cloudevent")},
            capabilities=Capabilities(import_style="package",
                                      preload=("cloudevents", "func_python.http", "func_python.cloudevent")),
        ),
        PlatformInfo(
            "netlify", "faasemu.runtimes.netlify", 60.0, 0, 1024, {},
            # Netlify has no raw invocation: `netlify functions:invoke` sends an HTTP request.
            capabilities=Capabilities(async_routes=True, data_invocation=None, background_suffix="-background"),
        ),
    )
}

DEFAULT_RUNTIME = "aws-lambda"


def available_runtimes() -> list[str]:
    return [name for name, info in PLATFORMS.items() if info.available]


def capabilities(runtime: str) -> Capabilities:
    return PLATFORMS[runtime].capabilities


def is_background(runtime: str, name: str) -> bool:
    """A Netlify `*-background` function: answered 202 at once, 15 minutes, retried twice."""
    suffix = PLATFORMS[runtime].capabilities.background_suffix
    return bool(suffix) and name.endswith(suffix)
