"""The validated configuration model: what `manifest.py` produces and workers receive.

Standard library only, because worker processes import it. Every path here is absolute.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

StateKind = Literal["sqlite", "dir", "hooks", "postgres"]
TriggerOp = Literal["insert", "update", "delete"]


@dataclass(frozen=True, slots=True)
class HttpTrigger:
    """One `http:` entry. `methods` is empty when every method is accepted."""

    path: str
    methods: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """One function of the manifest, with every default filled in.

    `handler` is as written. Exactly one of `handler_file` / `handler_module` is set:
    `sample_functions/orders.py:create_order` gives handler_file=<root>/sample_functions/orders.py
    and handler_attr="create_order"; `pkg.orders:create_order` gives handler_module="pkg.orders".
    `handler_attr` is None where the platform finds the entry point itself (vercel, knative).
    `env` is already merged and resolved: the `.env` file, the manifest's `env`, then the
    function's own (which wins), every `${VAR}` replaced.
    `options` holds the runtime-specific keys (payload, event_source, signature, template).
    `concurrency_set` is True when the manifest wrote `concurrency:` (a reserved concurrency: with 1,
    the verifier never overlaps two deliveries). `order_key` is a dotted path into the CloudEvent
    (`data.order`): deliveries with equal values there arrive in order. `batch_size` and
    `report_batch_item_failures` are Lambda's SQS event source mapping settings.
    """

    name: str
    handler: str
    runtime: str
    handler_file: str | None = None
    handler_module: str | None = None
    handler_attr: str | None = None
    http: tuple[HttpTrigger, ...] = ()
    events: tuple[str, ...] = ()
    timeout: float = 3.0
    memory: int = 128
    concurrency: int = 1
    retries: int = 2
    env: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    line: int = 0
    concurrency_set: bool = False
    order_key: str | None = None
    batch_size: int = 1
    report_batch_item_failures: bool = False

    def to_wire(self) -> dict[str, Any]:
        """A JSON-able dict, for the worker's `load` message."""
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> FunctionSpec:
        data = dict(data)
        data["http"] = tuple(HttpTrigger(t["path"], tuple(t["methods"])) for t in data.get("http", ()))
        data["events"] = tuple(data.get("events", ()))
        return cls(**data)


@dataclass(frozen=True, slots=True)
class StateSpec:
    """The `state:` section. `path` is the sqlite file or the folder; hooks are `module:fn` strings.

    `postgres` (kind "postgres") is "auto" (a private server faasemu runs under `.faasemu/postgres/`,
    project/postgres.py) or the URL of the user's own server; `schema` is SQL applied once to a new
    database, on SQLite and PostgreSQL alike.
    """

    kind: StateKind = "sqlite"
    path: str | None = None
    schema: str | None = None
    ignore: tuple[str, ...] = ()
    reset_hook: str | None = None
    snapshot_hook: str | None = None
    postgres: str | None = None


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """One `triggers:` entry: a Hasura-style event trigger on a table of the state database.

    A committed change to `table` (in `schema`, None meaning SQLite's main database or PostgreSQL's
    `public`) with an operation in `on` is captured in the same transaction and delivered to the
    `webhook` function as Hasura's payload in an HTTP POST. `columns`: an update fires only when one
    of them changes (empty: any column). `retries` is Hasura's `retry_conf.num_retries` (default 0),
    `interval` its `interval_sec` (seconds between attempts, default 10). `line`: where the manifest
    names the trigger, for located errors found later (a table the database does not have).
    """

    name: str
    table: str
    webhook: str
    on: tuple[TriggerOp, ...] = ("insert", "update", "delete")
    columns: tuple[str, ...] = ()
    schema: str | None = None
    retries: int = 0
    interval: float = 10.0
    line: int = 0


@dataclass(frozen=True, slots=True)
class Manifest:
    """The whole validated manifest. `root` is the manifest's folder: cwd and sys.path[0] of handlers.

    `env` is the project-wide environment with every `${VAR}` resolved: the `.env` file's
    variables, then the manifest's top-level `env` (which wins). `env_file` is the absolute path of
    the `.env` file read, or None. `allow_hosts` are the `allow_hosts:` entries, as written.
    `queues` maps an SQS queue name to the event type a message a handler sends to it becomes
    (`queues:`; SAM and Serverless projects get theirs from their queue resources).
    """

    path: str
    root: str
    name: str
    host: str = "127.0.0.1"
    port: int = 8080
    env: dict[str, str] = field(default_factory=dict)
    state: StateSpec = field(default_factory=StateSpec)
    functions: tuple[FunctionSpec, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    env_file: str | None = None
    triggers: tuple[TriggerSpec, ...] = ()
    queues: dict[str, str] = field(default_factory=dict)

    def function(self, name: str) -> FunctionSpec | None:
        for spec in self.functions:
            if spec.name == name:
                return spec
        return None
