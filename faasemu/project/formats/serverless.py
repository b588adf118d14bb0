"""PURE: a Serverless Framework `serverless.yml` -> faasemu.yaml text (formats/__init__.py says why text).

Read: `provider` (name aws, runtime python3.x, timeout, memorySize, environment, stage, region,
httpApi.payload), `functions.<name>` (handler `path/module.fn`, runtime, timeout, memorySize,
environment, reservedConcurrency, maximumRetryAttempts), events http (REST, payload 1.0),
httpApi (payload 2.0), sqs, sns, eventBridge, schedule, s3, stream; `resources.Resources` queues and
the queues sqs events name by ARN go into `queues:` (docs/delivery.md#sqs-sends-become-events). Unset
timeout and memorySize get the framework's own defaults, 6 s and 1024 MB, as a deployed function
would. Variables resolve as the framework resolves them offline: `${env:X}`, `${self:a.b}`,
`${opt:...}` (no command-line options here, so its fallback), `${sls:stage}` (provider.stage, else
dev), `${aws:region}`, `${aws:accountId}`, with `, fallback` chains; any other source is an error
naming its line.
In `environment` values, `${env:X}` stays a reference (`${X}`, `${X:-default}`), so `faasemu
manifest` prints no secret a shell variable holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from faasemu.project.formats import Function, Item, Reader, Translation, emit, escape, function_name
from faasemu.project.formats.sam import ACCOUNT, REGION, _intrinsic
from faasemu.project.platforms import PLATFORMS

KIND = "Serverless Framework"
DEFAULT_TIMEOUT, DEFAULT_MEMORY = 6, 1024  # the framework's defaults for an AWS function
EVENT_KINDS = ("http", "httpApi", "sqs", "sns", "eventBridge", "schedule", "s3", "stream")
SOURCES = "env:, self:, opt: (with a fallback), sls:stage, aws:region and aws:accountId"
_PYTHON = re.compile(r"python3\.\d+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_SIMPLE_DEFAULT = re.compile(r"[^${}]*")
_HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY", "*")


def read_serverless(text: str, path: str, environ: Mapping[str, str]) -> Translation:
    return _Service(path, environ).translate(text)


class _Service(Reader):
    """One service file and the variables over it."""

    def __init__(self, path: str, environ: Mapping[str, str]) -> None:
        super().__init__(path)
        self.environ = environ
        self.doc = Item({}, 1)
        self.resources: dict[str, Item] = {}
        self.resource_lines: dict[str, int] = {}
        self.literal_queues: dict[str, tuple[int, str]] = {}  # queues sqs events name by ARN: name -> (line, key)
        self.depth = 0

    def translate(self, text: str) -> Translation:
        self.doc = self.tree(text, "serverless.yml is empty; add service, provider and functions")
        if not isinstance(self.doc.value, dict):
            self.fail(self.doc.line, "serverless.yml must be a mapping (service, provider, functions ...)")
        for required in ("service", "provider"):
            if self.doc.get(required) is None:
                self.fail(None, f"no '{required}:' at the top level of serverless.yml")
        service = self.resolve(self.doc.value["service"], "service")
        if isinstance(service.value, dict) and service.get("name") is not None:  # the old `service: {name: x}`
            service = self.resolve(service.value["name"], "service.name")
        name = self.text(service, "service")
        provider = self.mapping(self.doc.value["provider"], "provider")
        cloud = provider.get("name")
        if cloud is None or self.text(cloud, "provider.name") != "aws":
            self.fail(provider.line, "provider.name: faasemu reads AWS services only (provider: {name: aws})")
        resources = self.doc.get("resources")
        found = self.resolve(resources, "resources").get("Resources") if resources is not None else None
        if found is not None and isinstance(found.value, dict):
            self.resources = found.value
            self.resource_lines = found.keys
        functions_item = self.doc.get("functions")
        if functions_item is None:
            self.fail(None, "no functions; add functions: {hello: {handler: handler.hello}}")
        functions_item = self.mapping(functions_item, "functions")
        if not functions_item.value:
            self.fail(functions_item.line, "functions: add at least one function")
        functions: list[Function] = []
        seen: dict[str, Function] = {}
        for key, item in functions_item.value.items():
            fn = self.function(key, functions_item.keys.get(key, item.line), item, provider)
            if fn.name in seen:
                self.fail(fn.line, f"{fn.where} and {seen[fn.name].where} (line {seen[fn.name].line}) both become "
                                   f"the faasemu function '{fn.name}'; rename one")
            seen[fn.name] = fn
            functions.append(fn)
        dotenv = self.doc.get("useDotenv")
        return emit(KIND, self.file, name, functions, env_file=dotenv is not None and dotenv.value is True,
                    queues=self.queues(name))

    def fifo(self, queue: str) -> bool:
        """Whether the queue an sqs event reads (a logical id, or the name an ARN ends with) is FIFO."""
        if queue not in self.resources:
            return queue.endswith(".fifo")
        where = f"resources.Resources.{queue}.Properties"
        props = self.resolve(self.resources[queue].get("Properties") or Item({}, 0), where)
        flag, named = props.get("FifoQueue"), props.get("QueueName")
        return (flag is not None and str(self.resolve(flag, f"{where}.FifoQueue").value).lower() == "true") or (
            named is not None and self.text(named, f"{where}.QueueName").endswith(".fifo"))

    def queues(self, service: str) -> dict[str, tuple[str, int, str]]:
        """`resources.Resources` queues (a QueueName, else `<service>-<stage>-<LogicalId>`: CloudFormation's
        name without its random part, which only faasemu's SQS stand-in sees) and the queues sqs events
        name by ARN: name -> the event type its consumer subscribes to (docs/delivery.md#sqs-sends-become-events)."""
        queues: dict[str, tuple[str, int, str]] = {}
        for logical, resource in self.resources.items():
            kind = resource.get("Type")
            if kind is None or self.resolve(kind, f"resources.Resources.{logical}.Type").value != "AWS::SQS::Queue":
                continue
            where = f"resources.Resources.{logical}"
            line = self.resource_lines.get(logical, resource.line)
            props = self.resolve(resource.get("Properties") or Item({}, line), f"{where}.Properties")
            named = props.get("QueueName")
            fifo = props.get("FifoQueue")
            if named is not None:
                queue = self.text(named, f"{where}.Properties.QueueName")
            else:
                stage = self.text(self.stage(line, where), "provider.stage")
                flag = fifo is not None and str(
                    self.resolve(fifo, f"{where}.Properties.FifoQueue").value).lower() == "true"
                queue = re.sub(r"[^A-Za-z0-9_-]", "-", f"{service}-{stage}-{logical}")[: 75 if flag else 80] + (
                    ".fifo" if flag else "")
            queues[queue] = (f"sqs.{logical}", line, where)
        for queue, (line, where) in self.literal_queues.items():
            queues.setdefault(queue, (f"sqs.{queue}", line, where))
        return queues

    # --- functions -------------------------------------------------------------------------------

    def function(self, key: str, line: int, item: Item, provider: Item) -> Function:
        where = f"functions.{key}"
        item = self.mapping(item, where)

        def setting(name: str) -> tuple[Item, str] | None:
            if item.get(name) is not None:
                return self.resolve(item.value[name], f"{where}.{name}"), f"{where}.{name}"
            if provider.get(name) is not None:
                return self.resolve(provider.value[name], f"provider.{name}"), f"provider.{name}"
            return None

        runtime = setting("runtime")
        if runtime is None:
            self.fail(line, f"{where}: no runtime (here or in provider.runtime); set provider.runtime: python3.12")
        language = self.text(*runtime)
        if not _PYTHON.fullmatch(language):
            self.fail(runtime[0].line, f"{runtime[1]}: runtime {language}: only Python runtimes (python3.x) run in "
                                       f"faasemu, so function {key} cannot run here")
        handler_item = item.get("handler")
        if handler_item is None:
            self.fail(line, f"{where}: no handler; write handler: handler.hello (path/module.function)")
        written = self.text(handler_item, f"{where}.handler")
        module, dot, attr = written.rpartition(".")
        if not dot or not module or not attr.isidentifier():
            self.fail(handler_item.line, f"{where}.handler: '{written}' is not path/module.function, as in "
                                         "src/handler.hello")
        folder, _, leaf = module.replace("\\", "/").rpartition("/")
        file = (folder + "/" if folder else "") + leaf.replace(".", "/") + ".py"
        fn = Function(function_name(key), line, where, (f"{file}:{attr}", handler_item.line, f"{where}.handler"))
        for field, name, default in (("timeout", "timeout", DEFAULT_TIMEOUT), ("memory", "memorySize", DEFAULT_MEMORY)):
            found = setting(name)
            setattr(fn, field, (found[0].value, found[0].line, found[1]) if found else (default, line, where))
        for field, name in (("concurrency", "reservedConcurrency"), ("retries", "maximumRetryAttempts")):
            if item.get(name) is not None:
                value = self.resolve(item.value[name], f"{where}.{name}")
                setattr(fn, field, (value.value, value.line, f"{where}.{name}"))
        merged: dict[str, tuple[Item, str]] = {}
        for owner, prefix in ((provider, "provider"), (item, where)):
            if owner.get("environment") is not None:
                env = self.mapping(owner.value["environment"], f"{prefix}.environment")
                for name, value in env.value.items():
                    merged[name] = (value, f"{prefix}.environment.{name}")
        fn.env = [(name, self.env_value(value, shown), value.line, shown) for name, (value, shown) in merged.items()]
        events = item.get("events")
        if events is not None:
            events = self.resolve(events, f"{where}.events")
            if not isinstance(events.value, list):
                self.fail(events.line, f"{where}.events: must be a list, as in [{{httpApi: 'GET /hello'}}]")
            self.events(fn, key, events.value, f"{where}.events", provider)
        return fn

    def events(self, fn: Function, key: str, events: list[Item], where: str, provider: Item) -> None:
        shapes: list[tuple[str, int, str]] = []
        payloads: list[tuple[str, int, str]] = []
        offered = PLATFORMS["aws-lambda"].options["event_source"]
        api = provider.get("httpApi")
        version = self.resolve(api, "provider.httpApi").get("payload") if api is not None else None
        http_api_payload = "v1" if version is not None and str(self.resolve(version, "").value) == "1.0" else "v2"
        for index, event in enumerate(events):
            shown = f"{where}[{index}]"
            event = self.resolve(event, shown)
            if not isinstance(event.value, dict) or len(event.value) != 1:
                self.fail(event.line, f"{shown}: each event is one of {', '.join(EVENT_KINDS)} with its settings, "
                                      "as in - httpApi: 'GET /hello'")
            (kind, body), = event.value.items()
            shown = f"{shown}.{kind}"
            body = self.resolve(body, shown)
            line = event.line
            settings = body if isinstance(body.value, dict) else Item({}, body.line)
            if kind in ("http", "httpApi"):
                path, methods = self.route(kind, body, shown)
                fn.http.append((path, methods, body.line, shown))
                payloads.append(("v1" if kind == "http" else http_api_payload, line, shown))
                continue
            if kind == "sqs":
                arn = settings.get("arn") if settings.value else body
                if arn is None:
                    self.fail(body.line, f"{shown}: needs arn (the queue's ARN, or !GetAtt Queue.Arn)")
                queue = self.source(arn, f"{shown}.arn")
                fn.events.append((f"sqs.{queue}", line, shown))
                if queue not in self.resources:
                    self.literal_queues.setdefault(queue, (line, shown))
                if self.fifo(queue):  # its records come in order per MessageGroupId (docs/delivery.md)
                    fn.order_key = ("sqsgroup", line, shown)
                shapes.append(("sqs", line, f"{shown}"))
                size = settings.get("batchSize")
                fn.batch_size = (self.resolve(size, shown).value, size.line, f"{shown}.batchSize") if size is not None \
                    else (10, line, shown)
                response = settings.get("functionResponseType")
                if response is not None and self.resolve(response, shown).value == "ReportBatchItemFailures":
                    fn.report_batch_item_failures = (True, response.line, f"{shown}.functionResponseType")
            elif kind == "sns":
                topic = settings.get("arn") or settings.get("topicName") if settings.value else body
                if topic is None:
                    self.fail(body.line, f"{shown}: needs arn or topicName")
                fn.events.append((f"sns.{self.source(topic, shown)}", line, shown))
                shapes.append(("sns", line, shown))
            elif kind == "eventBridge":
                for pattern in self.patterns(settings, f"{key}-{index}", shown):
                    fn.events.append((pattern, line, shown))
                shapes.append(("eventbridge", line, shown))
            elif kind == "schedule":
                name = settings.get("name")
                label = self.text(name, f"{shown}.name") if name is not None else f"{key}-{index}"
                fn.events.append((f"schedule.{label}", line, shown))
                shapes.append(("eventbridge", line, shown))
            elif kind == "s3":
                bucket = settings.get("bucket") if settings.value else body
                if bucket is None:
                    self.fail(body.line, f"{shown}: needs bucket")
                fn.events.append((f"s3.{self.source(bucket, shown)}", line, shown))
                shapes.append(("s3" if "s3" in offered else "raw", line, shown))
            elif kind == "stream":
                arn = settings.get("arn") if settings.value else body
                if arn is None:
                    self.fail(body.line, f"{shown}: needs arn (the stream's ARN, or !GetAtt Table.StreamArn)")
                stream = self.stream_kind(settings, arn, shown)
                fn.events.append((f"{stream}.{self.source(arn, shown)}", line, shown))
                shapes.append((stream if stream in offered else "raw", line, shown))
            else:
                self.fail(line, f"{shown}: {kind} events are not translated; faasemu reads {', '.join(EVENT_KINDS)} "
                                "(write a faasemu.yaml for others)")
        self.settle(fn, shapes, payloads)

    def route(self, kind: str, body: Item, where: str) -> tuple[str, tuple[str, ...]]:
        """(path, methods) of `http: GET users/{id}`, `httpApi: 'GET /x'`, `'*'` or {method, path}."""
        if isinstance(body.value, dict):
            method_item, path_item = body.get("method"), body.get("path")
            method = self.text(method_item, f"{where}.method") if method_item is not None else "*"
            if path_item is None:
                if kind == "http" or method != "*":
                    self.fail(body.line, f"{where}: needs path, as in {{method: get, path: /users/{{id}}}}")
                path = "*"
            else:
                path = self.text(path_item, f"{where}.path")
        else:
            written = self.text(body, where)
            if written == "*":
                method, path = "*", "*"
            else:
                method, _, path = written.partition(" ")
                if not path.strip():
                    self.fail(body.line, f"{where}: '{written}' is not 'METHOD /path' (or '*')")
        path = path.strip()
        if method.upper() not in _HTTP_METHODS:
            self.fail(body.line, f"{where}: '{method}' is not an HTTP method; use {', '.join(_HTTP_METHODS)}")
        methods = () if method.upper() in ("ANY", "*") else (method.upper(),)
        if path == "*":
            return "/{proxy+}", methods  # httpApi's catch-all, API Gateway's $default route
        return "/" + path.lstrip("/"), methods

    def patterns(self, settings: Item, name: str, where: str) -> list[str]:
        """`pattern.detail-type` values as event types (`prefix` as a glob), else `eventbridge.<name>`."""
        label = settings.get("name")
        fallback = [f"eventbridge.{self.text(label, where) if label is not None else name}"]
        pattern = settings.get("pattern")
        detail = self.resolve(pattern, f"{where}.pattern").get("detail-type") if pattern is not None else None
        if detail is None:
            return fallback
        values = self.resolve(detail, where).value
        types = []
        for value in values if isinstance(values, list) else [Item(values, detail.line)]:
            value = self.resolve(value, where)
            if isinstance(value.value, str):
                types.append(value.value)
            elif isinstance(value.value, dict) and set(value.value) == {"prefix"}:
                types.append(f"{self.resolve(value.value['prefix'], where).value}*")
            else:
                return fallback
        return types or fallback

    def stream_kind(self, settings: Item, arn: Item, where: str) -> str:
        declared = settings.get("type")
        if declared is not None:
            kind = self.text(declared, f"{where}.type")
            if kind not in ("dynamodb", "kinesis"):
                self.fail(declared.line, f"{where}.type: '{kind}' is not dynamodb or kinesis")
            return kind
        call = _intrinsic(arn)
        if call is not None:
            target = call[1].value
            logical = target.split(".")[0] if isinstance(target, str) else target[0].value
            resource = self.resources.get(logical)
            declared_type = resource.get("Type") if resource is not None else None
            return "kinesis" if declared_type is not None and "Kinesis" in str(declared_type.value) else "dynamodb"
        return "kinesis" if ":kinesis:" in self.text(arn, where) else "dynamodb"

    def source(self, item: Item, where: str) -> str:
        """A resource's logical id (`!GetAtt Queue.Arn`, `{Ref: Topic}`), or the name an ARN ends with."""
        call = _intrinsic(item)
        if call is not None:
            if call[0] in ("Ref", "Fn::GetAtt"):
                target = call[1].value
                logical = target.split(".")[0] if isinstance(target, str) else \
                    (target[0].value if isinstance(target, list) and target else None)
                if isinstance(logical, str):
                    return logical
            self.fail(item.line, f"{where}: {call[0]} is not resolved locally; name the resource with !GetAtt "
                                 "Resource.Arn or write its ARN")
        text = self.text(item, where)
        if ":table/" in text:
            return text.split(":table/")[1].split("/")[0]
        return text.rsplit(":", 1)[-1].rsplit("/", 1)[-1]

    # --- values and variables --------------------------------------------------------------------

    def mapping(self, item: Item, where: str) -> Item:
        item = self.resolve(item, where)
        if not isinstance(item.value, dict):
            self.fail(item.line, f"{where}: must be a mapping")
        return item

    def text(self, item: Item, where: str) -> str:
        value = self.resolve(item, where).value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
            self.fail(item.line, f"{where}: must be a string")
        return str(value).strip()

    def resolve(self, item: Item, where: str) -> Item:
        """`item` with its `${...}` variables resolved; a value that is one variable keeps its type."""
        if not isinstance(item.value, str) or "${" not in item.value or item.tag is not None:
            return item
        spans = self.spans(item.value, item.line, where)
        if len(spans) == 1 and spans[0][0] == 0 and spans[0][1] == len(item.value):
            found = self.expression(item.value[2:-1], item.line, where)
            return Item(found.value, item.line, found.tag, found.keys)
        return Item(self.interpolate(item.value, spans, item.line, where, keep_env=False), item.line)

    def env_value(self, item: Item, where: str) -> str:
        """An environment value as manifest text: `${env:X}` stays `${X}`, literal `$` is `$$`."""
        if isinstance(item.value, str) and "${" in item.value:
            return self.interpolate(item.value, self.spans(item.value, item.line, where), item.line, where, True)
        value = self.resolve(item, where).value
        if value is None or isinstance(value, (dict, list)):
            self.fail(item.line, f"{where}: must be a string, number or boolean")
        return escape(("true" if value else "false") if isinstance(value, bool) else str(value))

    def interpolate(self, text: str, spans: list[tuple[int, int]], line: int, where: str, keep_env: bool) -> str:
        out, last = [], 0
        for start, end in spans:
            literal = text[last:start]
            out.append(escape(literal) if keep_env else literal)
            inner = text[start + 2:end - 1]
            reference = self.env_reference(inner) if keep_env else None
            if reference is not None:
                out.append(reference)
            else:
                value = self.expression(inner, line, where).value
                if isinstance(value, (dict, list)) or value is None:
                    self.fail(line, f"{where}: ${{{inner}}} is a mapping or list, inside a string")
                shown = ("true" if value else "false") if isinstance(value, bool) else str(value)
                out.append(escape(shown) if keep_env else shown)
            last = end
        out.append(escape(text[last:]) if keep_env else text[last:])
        return "".join(out)

    def env_reference(self, inner: str) -> str | None:
        """`env:X` -> `${X}`, `env:X, 'd'` -> `${X:-d}`: kept as references for the manifest to resolve."""
        parts = _split(inner)
        found = re.fullmatch(r"env:([A-Za-z_][A-Za-z0-9_]*)", parts[0])
        if not found:
            return None
        if len(parts) == 1:
            return "${" + found.group(1) + "}"
        if len(parts) == 2 and parts[1][:1] in "'\"" and _SIMPLE_DEFAULT.fullmatch(parts[1][1:-1]):
            return "${" + found.group(1) + ":-" + parts[1][1:-1] + "}"
        return None

    def spans(self, text: str, line: int, where: str) -> list[tuple[int, int]]:
        """The (start, end) of each top-level `${...}`, nested ones inside."""
        spans, index = [], 0
        while (start := text.find("${", index)) >= 0:
            depth, cursor = 0, start
            while cursor < len(text):
                if text.startswith("${", cursor):
                    depth, cursor = depth + 1, cursor + 2
                    continue
                if text[cursor] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                cursor += 1
            else:
                self.fail(line, f"{where}: '${{' without its closing '}}'")
            spans.append((start, cursor + 1))
            index = cursor + 1
        return spans

    def expression(self, inner: str, line: int, where: str) -> Item:
        """The first of `source:address, fallback, ...` that has a value."""
        self.depth += 1
        try:
            if self.depth > 30:
                self.fail(line, f"{where}: variables refer to each other in a circle")
            parts = _split(inner)
            for part in parts:
                found = self.part(part, line, where)
                if found is not None:
                    return found
            self.fail(line, f"{where}: ${{{inner}}} has no value here ({parts[0]} is not set); set it, or give a "
                            f"fallback: ${{{parts[0]}, 'value'}}")
        finally:
            self.depth -= 1

    def part(self, part: str, line: int, where: str) -> Item | None:
        if part[:1] in "'\"" and len(part) >= 2 and part[-1] == part[0]:
            return Item(part[1:-1], line)
        if _NUMBER.fullmatch(part):
            return Item(float(part) if "." in part else int(part), line)
        if part in ("true", "false"):
            return Item(part == "true", line)
        if part.startswith("${") and part.endswith("}"):
            return self.expression(part[2:-1], line, where)
        source, colon, address = part.partition(":")
        source, address = source.strip(), address.strip()
        if source == "env" and colon:
            value = self.environ.get(address)
            return Item(value, line) if value is not None else None
        if source == "self" and colon:
            return self.lookup(address, line, where)
        if source == "opt" and colon:
            return None  # no command-line options here: the fallback decides
        if (source, address) == ("sls", "stage"):
            return self.stage(line, where)
        if (source, address) == ("aws", "region"):
            region = self.lookup("provider.region", line, where)
            return region if region is not None else Item(REGION, line)
        if (source, address) == ("aws", "accountId"):
            return Item(ACCOUNT, line)
        self.fail(line, f"{where}: ${{{part}}} is not resolved offline (faasemu resolves {SOURCES}); write the value")

    def stage(self, line: int, where: str) -> Item:
        found = self.lookup("provider.stage", line, where)
        return found if found is not None else Item("dev", line)

    def lookup(self, address: str, line: int, where: str) -> Item | None:
        found: Item | None = self.doc
        for key in address.split(".") if address else []:
            found = self.resolve(found, where) if found is not None else None
            if found is not None and isinstance(found.value, list) and key.isdigit() and int(key) < len(found.value):
                found = found.value[int(key)]
            else:
                found = found.get(key) if found is not None else None
        return self.resolve(found, f"{where} (${{self:{address}}})") if found is not None else None


def _split(inner: str) -> list[str]:
    """`a, 'b, c', ${d, e}` -> ['a', "'b, c'", '${d, e}']: commas outside quotes and nested variables."""
    parts, depth, quote, current = [], 0, "", []
    index = 0
    while index < len(inner):
        char = inner[index]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif inner.startswith("${", index):
            depth += 1
            current.append("${")
            index += 2
            continue
        elif char == "}" and depth:
            depth -= 1
        elif char == "," and not depth:
            parts.append("".join(current).strip())
            current = []
            index += 1
            continue
        current.append(char)
        index += 1
    parts.append("".join(current).strip())
    return parts

