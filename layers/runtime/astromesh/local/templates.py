"""The synthesized CDK app (``cdk.out``) read as the deployment it describes.

Everything :mod:`astromesh.local` creates comes from here, so the emulation cannot drift from
the stacks: a function added to ``infra/functions.py``, a variable added to its environment,
a webhook route or a secret appear locally after the next synth, with no second list.

CloudFormation's intrinsic functions are resolved for one account and region
(:class:`Resolver`): ``Ref``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub``, ``Fn::ImportValue``
(the stacks' exports), ``Fn::Select`` / ``Fn::Split``, ``Fn::If`` and the condition
functions. What only exists in a real account (the RDS Proxy's endpoint, ElastiCache's
address, an API's generated id) resolves to :class:`Unresolved`, which names it: inside a
string it reads ``<unresolved:...>``, so a caller can tell which values need a local
stand-in (see :mod:`astromesh.local.emulation`).
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ACCOUNT = "123456789012"
"""moto's default account, used when the templates are environment-agnostic."""
PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"
UNRESOLVED_PREFIX = "<unresolved:"


class TemplateError(RuntimeError):
    """``cdk.out`` is missing something the emulation needs; the message says what."""


@dataclass(frozen=True, slots=True)
class Unresolved:
    """A value that exists only in a real account (named by ``what``)."""

    what: str

    def __str__(self) -> str:
        return f"{UNRESOLVED_PREFIX}{self.what}>"


def is_unresolved(value: object) -> bool:
    """Whether ``value`` is, or contains, something only a real account has."""
    return isinstance(value, Unresolved) or (isinstance(value, str) and UNRESOLVED_PREFIX in value)


@dataclass(frozen=True, slots=True)
class StackTemplate:
    """One stack of the assembly: its template and where its file assets are."""

    name: str
    template: dict[str, Any]
    assets: dict[str, Path]
    """Object key (``<hash>.zip``) -> the asset's folder on this machine."""

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template.get("Resources", {})

    def of_type(self, type_: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for logical, resource in self.resources.items():
            if resource.get("Type") == type_:
                yield logical, resource


@dataclass(frozen=True, slots=True)
class FunctionDef:
    """One Lambda function as its template declares it."""

    logical_id: str
    stack: str
    name: str
    folder: Path
    handler: str
    environment: dict[str, str | Unresolved]
    timeout: int
    memory: int
    layers: tuple[Path, ...]

    key: str
    """The function's row in ``infra/functions.py`` and its folder under ``functions/`` and
    ``events/`` (``api``, ``ws_message``): its name without the stage's prefix."""

    @property
    def handler_path(self) -> Path:
        module, _, _ = self.handler.rpartition(".")
        return self.folder / f"{module.replace('.', '/')}.py"

    @property
    def handler_attribute(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass(frozen=True, slots=True)
class StateMachineDef:
    name: str
    type: str
    """``STANDARD`` or ``EXPRESS``."""
    definition: str
    """The ASL with ``DefinitionSubstitutions`` applied."""


@dataclass(frozen=True, slots=True)
class NotificationDef:
    """S3 events of ``bucket`` that invoke ``function`` (a physical name)."""

    bucket: str
    events: tuple[str, ...]
    function: str


@dataclass(frozen=True, slots=True)
class SecretDef:
    name: str
    value: str
    """The initial ``SecretString``: the template's, or generated as CloudFormation would."""


@dataclass(frozen=True, slots=True)
class RestRoute:
    """A REST API method: ``path`` as API Gateway writes resources (``/{proxy+}``)."""

    path: str
    method: str
    function: str


@dataclass(frozen=True, slots=True)
class Deployment:
    """What the stacks of one stage deploy, resolved for ``account`` and ``region``."""

    stage: str
    account: str
    region: str
    functions: dict[str, FunctionDef]
    """Keyed by physical name (``astromesh-dev-api``)."""
    state_machines: tuple[StateMachineDef, ...]
    buckets: tuple[str, ...]
    notifications: tuple[NotificationDef, ...]
    secrets: tuple[SecretDef, ...]
    parameters: dict[str, str | Unresolved]
    rest_routes: tuple[RestRoute, ...]
    ws_routes: dict[str, str]
    """Route key (``$connect``) -> function name."""
    rest_stage: str | None = None
    ws_stage: str | None = None

    def function(self, name: str) -> FunctionDef:
        """By physical name, folder name (``ws_message``) or dashed (``ws-message``).

        Raises:
            KeyError: no such function, with the known ones.
        """
        for function in self.functions.values():
            if name in (function.name, function.key, function.key.replace("_", "-")):
                return function
        known = ", ".join(sorted(f.key for f in self.functions.values()))
        raise KeyError(f"no function {name!r} in the templates (known: {known})")

    def function_arn(self, name: str) -> str:
        return f"arn:{PARTITION}:lambda:{self.region}:{self.account}:function:{name}"

    def state_machine_arn(self, name: str) -> str:
        return f"arn:{PARTITION}:states:{self.region}:{self.account}:stateMachine:{name}"


# -- the assembly -------------------------------------------------------------------------------


class Assembly:
    """The stacks of one stage in a ``cdk.out`` folder."""

    def __init__(self, outdir: Path, stage: str) -> None:
        manifest_path = outdir / "manifest.json"
        if not manifest_path.is_file():
            raise TemplateError(f"{outdir} holds no manifest.json: synthesize the app first")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        self.outdir = outdir
        self.stage = stage
        self.stacks: dict[str, StackTemplate] = {}
        self.environment: tuple[str | None, str | None] = (None, None)
        prefix = f"astromesh-{stage}-"
        for name, artifact in manifest.get("artifacts", {}).items():
            if artifact.get("type") != "aws:cloudformation:stack" or not name.startswith(prefix):
                continue
            template_file = artifact["properties"]["templateFile"]
            template = json.loads((outdir / template_file).read_text(encoding="utf-8"))
            self.stacks[name] = StackTemplate(name, template, self._assets(outdir, name))
            self.environment = _environment(artifact.get("environment", ""))
        if not self.stacks:
            raise TemplateError(f"{outdir} has no stack of stage {stage!r}")

    @staticmethod
    def _assets(outdir: Path, stack: str) -> dict[str, Path]:
        path = outdir / f"{stack}.assets.json"
        if not path.is_file():
            return {}
        found: dict[str, Path] = {}
        for asset in json.loads(path.read_text(encoding="utf-8")).get("files", {}).values():
            source = Path(asset["source"]["path"])
            source = source if source.is_absolute() else outdir / source
            for destination in asset.get("destinations", {}).values():
                found[destination["objectKey"]] = source
        return found

    def stack(self, part: str) -> StackTemplate:
        name = f"astromesh-{self.stage}-{part}"
        if name not in self.stacks:
            raise TemplateError(f"the assembly has no stack {name}")
        return self.stacks[name]

    def exports(self) -> dict[str, tuple[StackTemplate, Any]]:
        """Export name -> (exporting stack, the output's unresolved value)."""
        found: dict[str, tuple[StackTemplate, Any]] = {}
        for stack in self.stacks.values():
            for output in stack.template.get("Outputs", {}).values():
                export = output.get("Export", {}).get("Name")
                if isinstance(export, str):
                    found[export] = (stack, output["Value"])
        return found


def _environment(value: str) -> tuple[str | None, str | None]:
    """``aws://123456789012/eu-west-1`` -> its account and region (None when unknown)."""
    match = re.fullmatch(r"aws://([^/]+)/([^/]+)", value)
    if match is None:
        return None, None
    account, region = match.groups()
    return (
        account if account.isdigit() else None,
        None if region.startswith("unknown") else region,
    )


# -- intrinsic functions ---------------------------------------------------------------------


class Resolver:
    """Evaluates one stack's intrinsic functions for ``account`` / ``region``."""

    def __init__(self, assembly: Assembly, stack: StackTemplate, account: str, region: str) -> None:
        self.assembly = assembly
        self.stack = stack
        self.account = account
        self.region = region
        self._exports: dict[str, tuple[StackTemplate, Any]] | None = None
        self._conditions: dict[str, bool] = {}

    def for_stack(self, stack: StackTemplate) -> Resolver:
        other = Resolver(self.assembly, stack, self.account, self.region)
        other._exports = self._exports
        return other

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            handler = _INTRINSICS.get(key)
            if handler is not None:
                return handler(self, argument)
        return {key: self.resolve(item) for key, item in value.items()}

    def text(self, value: Any) -> str | Unresolved:
        """``value`` resolved to a string (an Unresolved stays one when that is all it is)."""
        resolved = self.resolve(value)
        if isinstance(resolved, Unresolved):
            return resolved
        if isinstance(resolved, str):
            return resolved
        return json.dumps(resolved) if isinstance(resolved, (dict, list)) else str(resolved)

    # -- the functions ---------------------------------------------------------------------

    def _pseudo(self, name: str) -> str | None:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::StackName": self.stack.name,
            "AWS::StackId": f"arn:{PARTITION}:cloudformation:{self.region}:{self.account}:"
            f"stack/{self.stack.name}/local",
            "AWS::NoValue": None,
        }.get(name, "")

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self._pseudo(name)
        parameters = self.stack.template.get("Parameters", {})
        if name in parameters:
            return parameters[name].get("Default", Unresolved(f"parameter {name}"))
        resource = self.stack.resources.get(name)
        if resource is None:
            return Unresolved(f"Ref {name}")
        return self._physical(name, resource)

    def _physical(self, logical: str, resource: dict[str, Any]) -> Any:
        type_ = resource.get("Type", "")
        props = resource.get("Properties", {})
        named = {
            "AWS::Lambda::Function": "FunctionName",
            "AWS::SecretsManager::Secret": "Name",
            "AWS::S3::Bucket": "BucketName",
            "AWS::SSM::Parameter": "Name",
            "AWS::IAM::Role": "RoleName",
            "AWS::Logs::LogGroup": "LogGroupName",
        }
        if type_ in named:
            if named[type_] in props:
                return self.resolve(props[named[type_]])
            return f"{self.stack.name}-{logical}".lower()[:63]
        if type_ == "AWS::StepFunctions::StateMachine":
            return self._arn("states", f"stateMachine:{self._physical_name(logical, resource)}")
        if type_ == "AWS::Lambda::LayerVersion":
            return self._arn("lambda", f"layer:{logical}:1")
        return Unresolved(f"{type_} {logical}")

    def _physical_name(self, logical: str, resource: dict[str, Any]) -> Any:
        props = resource.get("Properties", {})
        if "StateMachineName" in props:
            return self.resolve(props["StateMachineName"])
        return f"{self.stack.name}-{logical}"

    def _arn(self, service: str, resource: str, *, regional: bool = True) -> str:
        region = self.region if regional else ""
        return f"arn:{PARTITION}:{service}:{region}:{self.account}:{resource}"

    def get_att(self, argument: Any) -> Any:
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        logical, attribute = argument[0], self.resolve(argument[1])
        resource = self.stack.resources.get(logical)
        if resource is None:
            return Unresolved(f"GetAtt {logical}.{attribute}")
        type_ = resource.get("Type", "")
        if attribute == "Arn":
            physical = self._physical(logical, resource)
            if type_ == "AWS::Lambda::Function":
                return self._arn("lambda", f"function:{physical}")
            if type_ in ("AWS::StepFunctions::StateMachine", "AWS::Lambda::LayerVersion"):
                return physical
            if type_ == "AWS::S3::Bucket":
                return f"arn:{PARTITION}:s3:::{physical}"
            if type_ == "AWS::IAM::Role":
                return f"arn:{PARTITION}:iam::{self.account}:role/{physical}"
            if type_ == "AWS::Logs::LogGroup":
                return self._arn("logs", f"log-group:{physical}:*")
        if type_ == "AWS::StepFunctions::StateMachine" and attribute == "Name":
            return self._physical_name(logical, resource)
        return Unresolved(f"{logical}.{attribute}")

    def join(self, argument: Any) -> Any:
        delimiter, parts = argument
        parts = self.resolve(parts)
        if isinstance(parts, Unresolved):
            return parts
        return self.resolve(delimiter).join(str(part) for part in parts)

    def sub(self, argument: Any) -> Any:
        if isinstance(argument, list):
            text, variables = argument[0], self.resolve(argument[1])
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            name = match[1]
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                return str(self.get_att(name.split(".", 1)))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def import_value(self, argument: Any) -> Any:
        name = self.resolve(argument)
        if self._exports is None:
            self._exports = self.assembly.exports()
        if not isinstance(name, str) or name not in self._exports:
            return Unresolved(f"ImportValue {name}")
        stack, value = self._exports[name]
        return self.for_stack(stack).resolve(value)

    def select(self, argument: Any) -> Any:
        index, items = self.resolve(argument[0]), self.resolve(argument[1])
        if isinstance(items, Unresolved):
            return items
        return items[int(index)]

    def split(self, argument: Any) -> Any:
        delimiter, text = argument[0], self.resolve(argument[1])
        if isinstance(text, Unresolved):
            return text
        return str(text).split(delimiter)

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            definition = self.stack.template.get("Conditions", {}).get(name)
            self._conditions[name] = bool(self.resolve(definition))
        return self._conditions[name]

    def if_(self, argument: Any) -> Any:
        name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(name) else when_false)

    def equals(self, argument: Any) -> bool:
        left, right = self.resolve(argument)
        return str(left) == str(right)


_INTRINSICS: dict[str, Any] = {
    "Ref": Resolver.ref,
    "Fn::GetAtt": Resolver.get_att,
    "Fn::Join": Resolver.join,
    "Fn::Sub": Resolver.sub,
    "Fn::ImportValue": Resolver.import_value,
    "Fn::Select": Resolver.select,
    "Fn::Split": Resolver.split,
    "Fn::If": Resolver.if_,
    "Fn::Equals": Resolver.equals,
    "Fn::Not": lambda self, arg: not self.resolve(arg[0]),
    "Fn::And": lambda self, arg: all(self.resolve(item) for item in arg),
    "Fn::Or": lambda self, arg: any(self.resolve(item) for item in arg),
    "Condition": Resolver.condition,
    "Fn::GetAZs": lambda self, arg: [f"{self.region}{zone}" for zone in "abc"],
}


# -- the deployment -----------------------------------------------------------------------------


@dataclass
class _Reader:
    assembly: Assembly
    account: str
    region: str
    resolvers: dict[str, Resolver] = field(default_factory=dict)

    def resolver(self, stack: StackTemplate) -> Resolver:
        if stack.name not in self.resolvers:
            first = next(iter(self.resolvers.values()), None)
            self.resolvers[stack.name] = (
                first.for_stack(stack)
                if first is not None
                else Resolver(self.assembly, stack, self.account, self.region)
            )
        return self.resolvers[stack.name]

    def functions(self) -> dict[str, FunctionDef]:
        found: dict[str, FunctionDef] = {}
        prefix = f"astromesh-{self.assembly.stage}-"
        for stack in self.assembly.stacks.values():
            resolver = self.resolver(stack)
            deploy_time = _deploy_time_functions(stack)
            for logical, resource in stack.of_type("AWS::Lambda::Function"):
                props = resource["Properties"]
                folder = self._code(stack, props.get("Code", {}))
                if folder is None or not props.get("Handler", "").startswith("handler."):
                    continue  # CDK's own helpers (bucket notifications, migrations' provider)
                if not (folder / "handler.py").is_file():
                    continue
                name = resolver.text(props.get("FunctionName", logical))
                if not isinstance(name, str) or logical in deploy_time:
                    continue
                variables = props.get("Environment", {}).get("Variables", {})
                layers = tuple(
                    path
                    for layer in props.get("Layers", [])
                    if (path := self._layer(stack, layer)) is not None
                )
                found[name] = FunctionDef(
                    logical_id=logical,
                    stack=stack.name,
                    name=name,
                    key=name.removeprefix(prefix).replace("-", "_"),
                    folder=folder,
                    handler=props["Handler"],
                    environment={k: resolver.text(v) for k, v in variables.items()},
                    timeout=int(props.get("Timeout", 3)),
                    memory=int(props.get("MemorySize", 128)),
                    layers=layers,
                )
        return found

    def _code(self, stack: StackTemplate, code: Mapping[str, Any]) -> Path | None:
        key = code.get("S3Key")
        return stack.assets.get(key) if isinstance(key, str) else None

    def _layer(self, stack: StackTemplate, layer: Any) -> Path | None:
        if isinstance(layer, dict) and "Ref" in layer:
            resource = stack.resources.get(layer["Ref"], {})
            return self._code(stack, resource.get("Properties", {}).get("Content", {}))
        return None

    def state_machines(self) -> tuple[StateMachineDef, ...]:
        found: list[StateMachineDef] = []
        for stack in self.assembly.stacks.values():
            resolver = self.resolver(stack)
            for logical, resource in stack.of_type("AWS::StepFunctions::StateMachine"):
                props = resource["Properties"]
                definition = resolver.text(props.get("DefinitionString", ""))
                if isinstance(definition, Unresolved):
                    raise TemplateError(f"{logical}'s definition cannot be read: {definition}")
                substitutions = resolver.resolve(props.get("DefinitionSubstitutions", {}))
                for key, value in substitutions.items():
                    definition = definition.replace("${" + key + "}", str(value))
                found.append(
                    StateMachineDef(
                        name=str(resolver._physical_name(logical, resource)),
                        type=props.get("StateMachineType", "STANDARD"),
                        definition=definition,
                    )
                )
        return tuple(found)

    def buckets(self) -> tuple[str, ...]:
        names = []
        for stack in self.assembly.stacks.values():
            resolver = self.resolver(stack)
            for _, resource in stack.of_type("AWS::S3::Bucket"):
                name = resource["Properties"].get("BucketName")
                if name is not None:
                    names.append(str(resolver.text(name)))
        return tuple(names)

    def notifications(self) -> tuple[NotificationDef, ...]:
        found: list[NotificationDef] = []
        for stack in self.assembly.stacks.values():
            resolver = self.resolver(stack)
            for _, resource in stack.of_type("Custom::S3BucketNotifications"):
                props = resource["Properties"]
                bucket = str(resolver.text(props["BucketName"]))
                configuration = props.get("NotificationConfiguration", {})
                for entry in configuration.get("LambdaFunctionConfigurations", []):
                    arn = str(resolver.text(entry["LambdaFunctionArn"]))
                    found.append(
                        NotificationDef(bucket, tuple(entry["Events"]), arn.rsplit(":", 1)[-1])
                    )
        return tuple(found)

    def secrets(self) -> tuple[SecretDef, ...]:
        found: list[SecretDef] = []
        for stack in self.assembly.stacks.values():
            resolver = self.resolver(stack)
            for logical, resource in stack.of_type("AWS::SecretsManager::Secret"):
                props = resource["Properties"]
                name = resolver.text(props.get("Name", f"{stack.name}-{logical}"))
                if "SecretString" in props:
                    value = str(resolver.text(props["SecretString"]))
                else:
                    value = _generated(resolver.resolve(props.get("GenerateSecretString", {})))
                found.append(SecretDef(str(name), value))
        return tuple(found)

    def parameters(self) -> dict[str, str | Unresolved]:
        found: dict[str, str | Unresolved] = {}
        for stack in self.assembly.stacks.values():
            resolver = self.resolver(stack)
            for _, resource in stack.of_type("AWS::SSM::Parameter"):
                props = resource["Properties"]
                found[str(resolver.text(props["Name"]))] = resolver.text(props["Value"])
        return found

    def rest_routes(self) -> tuple[tuple[RestRoute, ...], str | None]:
        routes: list[RestRoute] = []
        stage = None
        for stack in self.assembly.stacks.values():
            resolver = self.resolver(stack)
            resources = dict(stack.of_type("AWS::ApiGateway::Resource"))

            def path_of(resource_id: Any, resources: dict[str, Any] = resources) -> str:
                if isinstance(resource_id, dict) and "Ref" in resource_id:
                    props = resources[resource_id["Ref"]]["Properties"]
                    return path_of(props["ParentId"]).rstrip("/") + "/" + props["PathPart"]
                return "/"  # Fn::GetAtt [api, RootResourceId]

            for _, resource in stack.of_type("AWS::ApiGateway::Method"):
                props = resource["Properties"]
                integration = props.get("Integration", {})
                if integration.get("Type") != "AWS_PROXY":
                    continue
                function = _function_of_uri(resolver.text(integration["Uri"]))
                if function is not None:
                    routes.append(RestRoute(path_of(props["ResourceId"]), props["HttpMethod"],
                                            function))  # fmt: skip
            for _, resource in stack.of_type("AWS::ApiGateway::Stage"):
                stage = str(resolver.text(resource["Properties"].get("StageName", "")))
        return tuple(routes), stage

    def ws_routes(self) -> tuple[dict[str, str], str | None]:
        routes: dict[str, str] = {}
        stage = None
        for stack in self.assembly.stacks.values():
            resolver = self.resolver(stack)
            integrations = dict(stack.of_type("AWS::ApiGatewayV2::Integration"))
            for _, resource in stack.of_type("AWS::ApiGatewayV2::Route"):
                props = resource["Properties"]
                for logical in _refs(props.get("Target")):
                    if logical in integrations:
                        uri = integrations[logical]["Properties"]["IntegrationUri"]
                        function = _function_of_uri(resolver.text(uri))
                        if function is not None:
                            routes[props["RouteKey"]] = function
            for _, resource in stack.of_type("AWS::ApiGatewayV2::Stage"):
                stage = str(resolver.text(resource["Properties"].get("StageName", "")))
        return routes, stage


def _function_of_uri(uri: str | Unresolved) -> str | None:
    """The function name in an API Gateway Lambda integration URI."""
    match = re.search(r":function:([^/:]+)", str(uri))
    return match[1] if match else None


def _deploy_time_functions(stack: StackTemplate) -> set[str]:
    """Functions CloudFormation runs while deploying (custom resources' handlers, such as
    the database migrations, and the functions their provider framework calls): they have
    no place in a running deployment's emulation."""
    tokens: set[str] = set()
    for resource in stack.resources.values():
        type_ = resource.get("Type", "")
        if type_.startswith("Custom::") or type_ == "AWS::CloudFormation::CustomResource":
            tokens.update(_refs(resource.get("Properties", {}).get("ServiceToken")))
    found = set(tokens)
    for logical in tokens:
        environment = stack.resources.get(logical, {}).get("Properties", {}).get("Environment")
        found.update(_refs(environment))
    return found


def _refs(value: Any) -> Iterator[str]:
    """Logical ids ``value`` refers to (``Ref`` and ``Fn::GetAtt``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                yield item
            elif key == "Fn::GetAtt" and isinstance(item, list) and item:
                yield str(item[0])
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _generated(spec: Mapping[str, Any]) -> str:
    """A secret CloudFormation would generate from ``GenerateSecretString``."""
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
    excluded = set(spec.get("ExcludeCharacters", ""))
    alphabet = "".join(c for c in alphabet if c not in excluded)
    password = "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))
    template = spec.get("SecretStringTemplate")
    key = spec.get("GenerateStringKey")
    if template is None or key is None:
        return password
    document = json.loads(str(template))
    document[key] = password
    return json.dumps(document)


def read_deployment(
    outdir: Path, stage: str, *, account: str | None = None, region: str = "us-east-1"
) -> Deployment:
    """The deployment of ``stage`` in ``outdir`` (a ``cdk.out`` folder).

    The account and region are the templates' own when they were synthesized for a concrete
    environment, else ``account`` (moto's default) and ``region``.

    Raises:
        TemplateError: the assembly is missing or lacks what the emulation needs.
    """
    assembly = Assembly(outdir, stage)
    concrete_account, concrete_region = assembly.environment
    reader = _Reader(
        assembly, concrete_account or account or DEFAULT_ACCOUNT, concrete_region or region
    )
    functions = reader.functions()
    if not functions:
        raise TemplateError(f"{outdir} declares no function with a handler.py on this machine")
    rest_routes, rest_stage = reader.rest_routes()
    ws_routes, ws_stage = reader.ws_routes()
    return Deployment(
        stage=stage,
        account=reader.account,
        region=reader.region,
        functions=functions,
        state_machines=reader.state_machines(),
        buckets=reader.buckets(),
        notifications=reader.notifications(),
        secrets=reader.secrets(),
        parameters=reader.parameters(),
        rest_routes=rest_routes,
        ws_routes=ws_routes,
        rest_stage=rest_stage,
        ws_stage=ws_stage,
    )
