"""PURE: an AWS SAM `template.yaml` -> faasemu.yaml text (formats/__init__.py says why text).

Read: every `AWS::Serverless::Function` (Handler, CodeUri, Runtime python3.x, Timeout,
MemorySize, Environment.Variables, ReservedConcurrentExecutions,
EventInvokeConfig.MaximumRetryAttempts), with `Globals.Function` under each; events Api (REST,
payload 1.0), HttpApi (payload 2.0), SQS, SNS, EventBridgeRule, CloudWatchEvent, Schedule,
ScheduleV2, S3, DynamoDB, Kinesis. Intrinsic functions are resolved where CloudFormation's answer
is known without deploying (docs: README "Existing projects"); any other, in a value faasemu
reads, is an error naming the file, the line and the intrinsic. Values faasemu does not read
(Policies, Outputs ...) are never resolved, so their intrinsics never matter. Every AWS::SQS::Queue
goes into the manifest's `queues:`, so a handler's send to it reaches its reader
(docs/delivery.md#sqs-sends-become-events).
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import Any

from faasemu.project.formats import Function, Item, Reader, Translation, emit, escape, function_name
from faasemu.project.platforms import PLATFORMS

KIND = "AWS SAM"
REGION, ACCOUNT = "us-east-1", "123456789012"  # the pseudo parameters' values here, as in the Lambda runtime
RESOLVED = ("!Ref to a parameter with a Default, a pseudo parameter, a queue or a named topic, table or bucket; "
            "!Sub; !GetAtt of a queue or a named topic, table or bucket; !Join; !Select; !FindInMap")
EVENT_TYPES = ("Api", "HttpApi", "SQS", "SNS", "EventBridgeRule", "CloudWatchEvent", "Schedule", "ScheduleV2",
               "S3", "DynamoDB", "Kinesis")
_PYTHON = re.compile(r"python3\.\d+")
_SUB = re.compile(r"\$\{([^}]*)\}")
# The property that names a resource, so that !Ref and !GetAtt of it are known before deploying.
NAME_PROPERTIES = {"AWS::SQS::Queue": "QueueName", "AWS::SNS::Topic": "TopicName", "AWS::DynamoDB::Table": "TableName",
                   "AWS::Serverless::SimpleTable": "TableName", "AWS::S3::Bucket": "BucketName",
                   "AWS::Kinesis::Stream": "Name"}


def read_sam(text: str, path: str) -> Translation:
    return _Template(path).translate(text)


class _Template(Reader):
    """One template: its parameters, mappings and resources, and the intrinsics over them."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.stack = os.path.basename(self.root)
        self.parameters: dict[str, Item] = {}
        self.mappings: dict[str, Item] = {}
        self.resources: dict[str, Item] = {}
        self.resource_lines: dict[str, int] = {}
        self.depth = 0
        self.literal_queues: dict[str, tuple[int, str]] = {}  # queues SQS events name by ARN: name -> (line, key)

    # --- the template ----------------------------------------------------------------------------

    def translate(self, text: str) -> Translation:
        doc = self.tree(text, "the template is empty; add Resources with an AWS::Serverless::Function")
        if not isinstance(doc.value, dict):
            self.fail(doc.line, "a SAM template must be a mapping (AWSTemplateFormatVersion, Transform, Resources ...)")
        for section, target in (("Parameters", self.parameters), ("Mappings", self.mappings),
                                ("Resources", self.resources)):
            found = doc.get(section)
            if found is not None:
                if not isinstance(found.value, dict):
                    self.fail(found.line, f"{section}: must be a mapping of logical ids")
                target.update(found.value)
                if section == "Resources":
                    self.resource_lines = found.keys
        glob = doc.get("Globals")
        defaults = glob.get("Function") if glob is not None else None
        functions: list[Function] = []
        for logical, resource in self.resources.items():
            kind = resource.get("Type")
            if kind is not None and kind.value == "AWS::Serverless::Function":
                functions.append(self.function(logical, resource, defaults))
        if not functions:
            self.fail(doc.keys.get("Resources"), "no AWS::Serverless::Function in Resources; faasemu runs SAM "
                                                 "functions (AWS::Lambda::Function resources are not read)")
        seen: dict[str, Function] = {}
        for fn in functions:
            if fn.name in seen:
                self.fail(fn.line, f"{fn.where} and {seen[fn.name].where} (line {seen[fn.name].line}) both become "
                                   f"the faasemu function '{fn.name}'; rename one")
            seen[fn.name] = fn
        return emit(KIND, self.file, self.stack, functions, env_file=False, queues=self.queues())

    def queues(self) -> dict[str, tuple[str, int, str]]:
        """Every AWS::SQS::Queue, and every queue an SQS event names by ARN: its name -> the event type its
        consumer subscribes to, so a handler's SendMessage to it reaches that consumer
        (docs/delivery.md#sqs-sends-become-events)."""
        queues: dict[str, tuple[str, int, str]] = {}
        for logical, resource in self.resources.items():
            kind = resource.get("Type")
            if kind is not None and kind.value == "AWS::SQS::Queue":
                line = self.resource_lines.get(logical, resource.line)
                name = self.physical(logical, line, f"Resources.{logical}", logical)[1]
                queues[name] = (f"sqs.{logical}", line, f"Resources.{logical}")
        for name, (line, where) in self.literal_queues.items():
            queues.setdefault(name, (f"sqs.{name}", line, where))
        return queues

    def function(self, logical: str, resource: Item, defaults: Item | None) -> Function:
        where = f"Resources.{logical}"
        props = resource.get("Properties")
        if props is None or not isinstance(props.value, dict):
            self.fail(resource.line, f"{where}: an AWS::Serverless::Function needs Properties "
                                     "(Handler, Runtime, CodeUri)")

        def prop(name: str) -> tuple[Item, str] | None:
            if name in props.value:
                return props.value[name], f"{where}.Properties.{name}"
            if defaults is not None and defaults.get(name) is not None:
                return defaults.value[name], f"Globals.Function.{name}"
            return None

        for name, why in (("InlineCode", "put the code in a file and set CodeUri"),
                          ("ImageUri", "only zip functions with a Python runtime run here")):
            if (found := prop(name)) is not None:
                self.fail(found[0].line, f"{found[1]}: {name} is not supported; {why}")
        if (package := prop("PackageType")) is not None and self.text(*package) == "Image":
            self.fail(package[0].line, f"{package[1]}: PackageType Image is not supported; only zip functions with a "
                                       "Python runtime run here")
        runtime = prop("Runtime")
        if runtime is None:
            self.fail(props.line, f"{where}: no Runtime (here or in Globals.Function); set Runtime: python3.12")
        language = self.text(*runtime)
        if not _PYTHON.fullmatch(language):
            self.fail(runtime[0].line, f"{runtime[1]}: Runtime {language}: only Python runtimes (python3.x) run in "
                                       f"faasemu, so function {logical} cannot run here")
        handler = prop("Handler")
        if handler is None:
            self.fail(props.line, f"{where}: no Handler; write Handler: app.lambda_handler (module.function)")
        written = self.text(*handler)
        module, dot, attr = written.rpartition(".")
        if not dot or not module or not attr.isidentifier():
            self.fail(handler[0].line, f"{handler[1]}: '{written}' is not module.function, as in app.lambda_handler")
        code = prop("CodeUri")
        folder = self.text(*code) if code is not None else "."
        if code is not None and not isinstance(self.resolve(*code).value, str):
            self.fail(code[0].line, f"{code[1]}: CodeUri must be a local folder such as hello_world/")
        file = posixpath.normpath(posixpath.join(folder.replace("\\", "/"), module.replace(".", "/") + ".py"))
        line = self.resource_lines.get(logical, resource.line)
        fn = Function(function_name(logical), line, where, (f"{file}:{attr}", handler[0].line, handler[1]))
        for key, name in (("timeout", "Timeout"), ("memory", "MemorySize"),
                          ("concurrency", "ReservedConcurrentExecutions")):
            if (found := prop(name)) is not None:
                setattr(fn, key, (self.scalar(*found), found[0].line, found[1]))
        if (invoke := prop("EventInvokeConfig")) is not None:
            attempts = self.resolve(*invoke).get("MaximumRetryAttempts")
            if attempts is not None:
                shown = f"{invoke[1]}.MaximumRetryAttempts"
                fn.retries = (self.scalar(attempts, shown), attempts.line, shown)
        fn.env = self.environment(props, defaults, where)
        events = props.get("Events")
        if events is not None:
            if not isinstance(events.value, dict):
                self.fail(events.line, f"{where}.Properties.Events: must be a mapping of event names")
            self.events(fn, events, f"{where}.Properties.Events")
        return fn

    def environment(self, props: Item, defaults: Item | None, where: str) -> list[tuple[str, str, int, str]]:
        """Globals' variables, then the function's (which win), as SAM merges maps."""
        merged: dict[str, tuple[Item, str]] = {}
        for owner, prefix in ((defaults, "Globals.Function"), (props, f"{where}.Properties")):
            env = owner.get("Environment") if owner is not None else None
            variables = self.resolve(env, f"{prefix}.Environment").get("Variables") if env is not None else None
            if variables is None:
                continue
            resolved = self.resolve(variables, f"{prefix}.Environment.Variables")
            if not isinstance(resolved.value, dict):
                self.fail(resolved.line, f"{prefix}.Environment.Variables: must be a mapping of NAME: value")
            for name, value in resolved.value.items():
                merged[name] = (value, f"{prefix}.Environment.Variables.{name}")
        result = []
        for name, (item, shown) in merged.items():
            value = self.scalar(item, shown)
            if value is None or isinstance(value, (dict, list)):
                self.fail(item.line, f"{shown}: must be a string, number or boolean")
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            result.append((name, escape(text), item.line, shown))
        return result

    # --- events ----------------------------------------------------------------------------------

    def events(self, fn: Function, events: Item, where: str) -> None:
        shapes: list[tuple[str, int, str]] = []
        payloads: list[tuple[str, int, str]] = []
        sqs_settings: tuple[Any, int, str] | None = None
        offered = PLATFORMS["aws-lambda"].options["event_source"]
        for name, event in events.value.items():
            shown = f"{where}.{name}"
            event = self.resolve(event, shown)
            kind_item = event.get("Type")
            if kind_item is None:
                self.fail(event.line, f"{shown}: no Type; use one of {', '.join(EVENT_TYPES)}")
            kind = self.text(kind_item, f"{shown}.Type")
            props = event.get("Properties")
            props = self.resolve(props, f"{shown}.Properties") if props is not None else Item({}, event.line)
            if not isinstance(props.value, dict):
                self.fail(props.line, f"{shown}.Properties: must be a mapping")
            line = kind_item.line

            def need(key: str, props: Item = props, shown: str = shown, kind: str = kind) -> Item:
                found = props.get(key)
                if found is None:
                    self.fail(props.line, f"{shown}.Properties: a {kind} event needs {key}")
                return found

            if kind in ("Api", "HttpApi"):
                path_item, method_item = props.get("Path"), props.get("Method")
                if kind == "Api" and (path_item is None or method_item is None):
                    self.fail(props.line, f"{shown}.Properties: an Api event needs Path and Method")
                path = self.text(path_item, f"{shown}.Properties.Path") if path_item is not None else "/{proxy+}"
                method = self.text(method_item, f"{shown}.Properties.Method") if method_item is not None else "ANY"
                methods = () if method.upper() in ("ANY", "X-AMAZON-APIGATEWAY-ANY-METHOD") else (method.upper(),)
                at = path_item.line if path_item is not None else line
                fn.http.append((path, methods, at, f"{shown}.Properties.Path"))
                version = props.get("PayloadFormatVersion")
                payload = "v1" if kind == "Api" or (
                    version is not None and str(self.scalar(version, shown)) == "1.0") else "v2"
                payloads.append((payload, line, shown))
                continue
            if kind == "SQS":
                queue = self.source(need("Queue"), f"{shown}.Properties.Queue")
                fn.events.append((f"sqs.{queue}", line, f"{shown}.Properties.Queue"))
                if queue not in self.resources:
                    self.literal_queues.setdefault(queue, (line, f"{shown}.Properties.Queue"))
                if self.fifo(queue):  # its records come in order per MessageGroupId (docs/delivery.md)
                    fn.order_key = ("sqsgroup", line, f"{shown}.Properties.Queue")
                shapes.append(("sqs", line, f"{shown} (SQS)"))
                size_item = props.get("BatchSize")
                size = self.scalar(size_item, f"{shown}.Properties.BatchSize") if size_item is not None else 10
                types = props.get("FunctionResponseTypes")
                partial = types is not None and "ReportBatchItemFailures" in [
                    self.scalar(t, f"{shown}.Properties.FunctionResponseTypes")
                    for t in self.resolve(types, shown).value or []]
                settings = (size, partial)
                if sqs_settings is not None and sqs_settings[0] != settings:
                    self.fail(line, f"{shown}: BatchSize and FunctionResponseTypes differ from {sqs_settings[2]} "
                                    f"(line {sqs_settings[1]}); faasemu gives a function one batch setting")
                sqs_settings = (settings, line, shown)
                at = size_item.line if size_item is not None else line
                fn.batch_size = (size, at, f"{shown}.Properties.BatchSize")
                if partial:
                    assert types is not None
                    fn.report_batch_item_failures = (True, types.line, f"{shown}.Properties.FunctionResponseTypes")
            elif kind == "SNS":
                topic = self.source(need("Topic"), f"{shown}.Properties.Topic")
                fn.events.append((f"sns.{topic}", line, f"{shown}.Properties.Topic"))
                shapes.append(("sns", line, f"{shown} (SNS)"))
            elif kind in ("EventBridgeRule", "CloudWatchEvent"):
                for pattern in self.patterns(props, name, shown):
                    fn.events.append((pattern, line, shown))
                shapes.append(("eventbridge", line, f"{shown} ({kind})"))
            elif kind in ("Schedule", "ScheduleV2"):
                fn.events.append((f"schedule.{name}", line, shown))
                shapes.append(("eventbridge", line, f"{shown} ({kind})"))
            elif kind in ("S3", "DynamoDB", "Kinesis"):
                key = {"S3": "Bucket", "DynamoDB": "Stream", "Kinesis": "Stream"}[kind]
                resource = self.source(need(key), f"{shown}.Properties.{key}")
                fn.events.append((f"{kind.lower()}.{resource}", line, f"{shown}.Properties.{key}"))
                shape = kind.lower() if kind.lower() in offered else "raw"
                shapes.append((shape, line, f"{shown} ({kind})"))
            else:
                self.fail(line, f"{shown}.Type: {kind} events are not translated; faasemu reads "
                                f"{', '.join(EVENT_TYPES)} (write a faasemu.yaml for others)")
        self.settle(fn, shapes, payloads)

    def fifo(self, queue: str) -> bool:
        """Whether the queue an SQS event reads (a logical id, or the name an ARN ends with) is FIFO."""
        if queue not in self.resources:
            return queue.endswith(".fifo")
        props = self.resources[queue].get("Properties")
        flag = props.get("FifoQueue") if props is not None else None
        named = props.get("QueueName") if props is not None else None
        return (flag is not None and str(self.scalar(flag, f"Resources.{queue}.Properties.FifoQueue")).lower() == "true"
                ) or (named is not None and str(self.scalar(named, f"Resources.{queue}.Properties.QueueName"))
                      .endswith(".fifo"))

    def patterns(self, props: Item, name: str, where: str) -> list[str]:
        """EventBridge's `detail-type` values as event types (a `prefix` match as a glob); otherwise
        a type named after the rule, `eventbridge.<EventName>`, which the pattern cannot be told from."""
        pattern = props.get("Pattern")
        detail = self.resolve(pattern, f"{where}.Properties.Pattern").get("detail-type") if pattern else None
        if detail is None:
            return [f"eventbridge.{name}"]
        values = self.resolve(detail, f"{where}.Properties.Pattern.detail-type").value
        types = []
        for value in values if isinstance(values, list) else [Item(values, detail.line)]:
            value = self.resolve(value, where)
            if isinstance(value.value, str):
                types.append(value.value)
            elif isinstance(value.value, dict) and set(value.value) == {"prefix"}:
                types.append(str(self.scalar(value.value["prefix"], where)) + "*")
            else:
                return [f"eventbridge.{name}"]
        return types or [f"eventbridge.{name}"]

    def source(self, item: Item, where: str) -> str:
        """The logical id of the queue, topic, bucket or stream an event reads (`sqs.<Queue>` ...),
        or the name at the end of a literal ARN (`arn:aws:sqs:...:orders` -> orders)."""
        call = _intrinsic(item)
        if call is not None and call[0] in ("Ref", "Fn::GetAtt"):
            target = call[1].value
            logical = target.split(".")[0] if isinstance(target, str) else \
                (target[0].value if isinstance(target, list) and target else None)
            if isinstance(logical, str) and logical in self.resources:
                return logical
        text = self.text(item, where)
        if ":table/" in text:
            return text.split(":table/")[1].split("/")[0]
        return text.rsplit(":", 1)[-1].rsplit("/", 1)[-1]

    # --- values and intrinsics ---------------------------------------------------------------------

    def text(self, item: Item, where: str) -> str:
        value = self.scalar(item, where)
        if not isinstance(value, str) or not value.strip():
            self.fail(item.line, f"{where}: must be a string")
        return value.strip()

    def scalar(self, item: Item, where: str) -> Any:
        """A resolved plain value (for a mapping or list: its Items)."""
        return self.resolve(item, where).value

    def resolve(self, item: Item, where: str) -> Item:
        """`item` with its intrinsic function, if any, replaced by CloudFormation's answer."""
        call = _intrinsic(item)
        if call is None:
            return item
        name, argument = call
        self.depth += 1
        try:
            if self.depth > 20:
                self.fail(item.line, f"{where}: intrinsic functions refer to each other in a circle")
            handler = {"Ref": self.ref, "Fn::Sub": self.sub, "Fn::GetAtt": self.get_att, "Fn::Join": self.join,
                       "Fn::Select": self.select, "Fn::FindInMap": self.find_in_map}.get(name)
            if handler is None:
                short = "!" + name.removeprefix("Fn::")
                self.fail(item.line, f"{where}: {short} is not resolved locally (faasemu resolves {RESOLVED}); "
                                     "write the value it stands for")
            return Item(handler(argument, where), item.line)
        finally:
            self.depth -= 1

    def ref(self, argument: Item, where: str) -> Any:
        name = self.text(argument, where)
        pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::StackName": self.stack,
                  "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
                  "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{self.stack}/local"}
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            parameter = self.parameters[name]
            default = parameter.get("Default")
            if default is None:
                self.fail(argument.line, f"{where}: !Ref {name}: the parameter (line {parameter.line}) has no Default; "
                                         "give it one (faasemu reads no --parameter-overrides)")
            return self.scalar(default, f"Parameters.{name}.Default")
        if name in self.resources:
            kind, physical = self.physical(name, argument.line, where, f"!Ref {name}")
            if kind == "AWS::SQS::Queue":
                return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical}"
            if kind == "AWS::SNS::Topic":
                return f"arn:aws:sns:{REGION}:{ACCOUNT}:{physical}"
            return physical
        known = ", ".join([*self.parameters, "AWS::Region", "AWS::AccountId", "AWS::StackName"])
        self.fail(argument.line, f"{where}: !Ref {name}: no parameter or resource {name} in "
                                 f"{os.path.basename(self.file)} (parameters and pseudo parameters: {known})")

    def physical(self, logical: str, line: int, where: str, shown: str) -> tuple[str, str]:
        """(type, name) of a resource whose name the template sets; CloudFormation invents the others."""
        resource = self.resources[logical]
        kind_item = resource.get("Type")
        kind = str(kind_item.value) if kind_item is not None else "?"
        prop = NAME_PROPERTIES.get(kind)
        props = resource.get("Properties")
        named = props.get(prop) if prop and props is not None else None
        if named is None and kind == "AWS::SQS::Queue":
            # CloudFormation names it `<stack>-<LogicalId>-<random>`; only faasemu's SQS stand-in ever sees
            # this URL (AWS_ENDPOINT_URL_SQS), so a stable local name without the random part serves.
            fifo = props is not None and props.get("FifoQueue") is not None and str(
                self.scalar(props.value["FifoQueue"], f"Resources.{logical}.Properties.FifoQueue")).lower() == "true"
            name = re.sub(r"[^A-Za-z0-9_-]", "-", f"{self.stack}-{logical}")[: 75 if fifo else 80]
            return kind, name + (".fifo" if fifo else "")
        if named is None:
            hint = f"give {logical} a {prop}" if prop else "write the value it stands for"
            self.fail(line, f"{where}: {shown} ({kind}) is named by CloudFormation when it deploys, so its value is "
                            f"not known locally; {hint}, or use a parameter with a Default")
        return kind, self.text(named, f"Resources.{logical}.Properties.{prop}")

    def get_att(self, argument: Item, where: str) -> Any:
        value = argument.value
        if isinstance(value, str):
            logical, _, attribute = value.partition(".")
        elif isinstance(value, list) and len(value) == 2:
            logical, attribute = self.text(value[0], where), self.text(value[1], where)
        else:
            self.fail(argument.line, f"{where}: !GetAtt takes Resource.Attribute or [Resource, Attribute]")
        shown = f"!GetAtt {logical}.{attribute}"
        if logical not in self.resources:
            self.fail(argument.line, f"{where}: {shown}: no resource {logical} in {os.path.basename(self.file)}")
        kind, name = self.physical(logical, argument.line, where, shown)
        service = {"AWS::SQS::Queue": "sqs", "AWS::SNS::Topic": "sns", "AWS::Kinesis::Stream": "kinesis"}.get(kind)
        arn = f"arn:aws:{service}:{REGION}:{ACCOUNT}:{name}" if service else f"arn:aws:s3:::{name}" \
            if kind == "AWS::S3::Bucket" else f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
        answers = {
            "Arn": arn,
            "QueueName": name, "QueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}",
            "TopicName": name, "TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}",
        }
        if kind == "AWS::Kinesis::Stream":
            answers["Arn"] = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"
        if attribute not in answers or (attribute.startswith("Queue") and service != "sqs") or (
                attribute.startswith("Topic") and service != "sns"):
            self.fail(argument.line, f"{where}: {shown} is not known locally (faasemu knows Arn, and QueueName / "
                                     "QueueUrl / TopicName / TopicArn where they apply); write the value")
        return answers[attribute]

    def sub(self, argument: Item, where: str) -> str:
        variables: dict[str, Item] = {}
        template = argument
        if isinstance(argument.value, list):
            if len(argument.value) != 2 or not isinstance(argument.value[1].value, dict):
                self.fail(argument.line, f"{where}: !Sub takes a string, or [string, {{Name: value}}]")
            template, variables = argument.value[0], argument.value[1].value
        text = self.text(template, where) if template.value != "" else ""

        def replace(found: re.Match[str]) -> str:
            name = found.group(1).strip()
            if name.startswith("!"):
                return "${" + name[1:] + "}"  # ${!Literal} is written ${Literal}
            if name in variables:
                return str(self.scalar(variables[name], f"{where} ${{{name}}}"))
            if "." in name:
                return str(self.get_att(Item(name, template.line), where))
            return str(self.ref(Item(name, template.line), where))

        return _SUB.sub(replace, text)

    def join(self, argument: Item, where: str) -> str:
        parts = argument.value
        if not (isinstance(parts, list) and len(parts) == 2):
            self.fail(argument.line, f"{where}: !Join takes [delimiter, [values]]")
        delimiter = self.scalar(parts[0], where)
        values = self.scalar(parts[1], where)
        if not isinstance(values, list):
            self.fail(parts[1].line, f"{where}: !Join's second item must be a list")
        return str(delimiter).join(str(self.scalar(value, where)) for value in values)

    def select(self, argument: Item, where: str) -> Any:
        parts = argument.value
        if not (isinstance(parts, list) and len(parts) == 2):
            self.fail(argument.line, f"{where}: !Select takes [index, [values]]")
        index, values = self.scalar(parts[0], where), self.scalar(parts[1], where)
        if not isinstance(values, list) or not str(index).isdigit() or int(index) >= len(values):
            self.fail(argument.line, f"{where}: !Select's index {index} is not in its list")
        return self.scalar(values[int(index)], where)

    def find_in_map(self, argument: Item, where: str) -> Any:
        parts = argument.value
        if not (isinstance(parts, list) and len(parts) == 3):
            self.fail(argument.line, f"{where}: !FindInMap takes [MapName, TopKey, SecondKey]")
        names = [str(self.scalar(part, where)) for part in parts]
        found: Item | None = self.mappings.get(names[0])
        for key in names[1:]:
            found = found.get(key) if found is not None else None
        if found is None:
            self.fail(argument.line, f"{where}: !FindInMap {'.'.join(names)}: not in Mappings")
        return self.scalar(found, where)


def _intrinsic(item: Item) -> tuple[str, Item] | None:
    """(function name, argument) of `!Ref x` / `{Ref: x}` / `!Sub ...` / `{Fn::Sub: ...}`, else None."""
    if item.tag is not None:
        name = "Ref" if item.tag == "!Ref" else "Fn::" + item.tag.lstrip("!")
        return name, Item(item.value, item.line, None, item.keys)
    if isinstance(item.value, dict) and len(item.value) == 1:
        (key, value), = item.value.items()
        if key == "Ref" or key.startswith("Fn::"):
            return key, value
    return None

