"""``spec.tools[]``: the tools an agent may call, one model per ``type``.

Upstream describes parameters as a map ``{param: {type, description, ...}}``; others write a
full JSON Schema. Both are accepted as written and ``json_schema()`` gives every consumer (the
model API, ``GET /v1/tools``) the full JSON Schema, so no one else has to know both forms.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, field_validator, model_validator

from astromesh.config.base import ConfigModel, ShapedAs
from astromesh.config.constants import (
    BUILTIN_TOOLS,
    ENV_VAR_RE,
    PYTHON_HANDLER_RE,
    TOOL_NAME_RE,
)
from astromesh.config.issues import config_error, one_of, suggest, with_suggestion

JsonType = Literal["string", "integer", "number", "boolean", "array", "object", "null"]

# Keys that only a JSON Schema (not an upstream parameter map) has at its top level.
_SCHEMA_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "description",
        "title",
        "$schema",
        "$defs",
        "definitions",
        "$id",
    }
)


class ToolParameter(ConfigModel):
    """One entry of upstream's parameter map."""

    type: JsonType = "string"
    description: str | None = None
    enum: list[Any] | None = None
    default: Any = None
    required: bool | None = None
    items: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def schema_fragment(self) -> dict[str, Any]:
        """This parameter as a JSON Schema property."""
        fragment = self.model_dump(exclude_none=True, exclude={"required", "default"})
        if "default" in self.model_fields_set:
            fragment["default"] = self.default
        return fragment

    @property
    def is_required(self) -> bool:
        """Required unless it says ``required: false`` or has a default (upstream's rule)."""
        if self.required is not None:
            return self.required
        return "default" not in self.model_fields_set


_PARAMETER_MAP = TypeAdapter(dict[str, ToolParameter])


def is_json_schema(parameters: dict[str, Any]) -> bool:
    """Tell a JSON Schema from an upstream parameter map.

    A map's values are all mappings, so ``type: object`` (a string) or only schema keywords
    with a ``properties`` mapping means JSON Schema; a parameter literally named ``type`` or
    ``properties`` has a mapping as its value and is not mistaken for one.
    """
    if parameters.get("type") == "object":
        return True
    return (
        isinstance(parameters.get("properties"), dict)
        and set(parameters) <= _SCHEMA_KEYWORDS
        and not isinstance(parameters.get("type"), dict)
        and all(isinstance(v, dict) for v in parameters["properties"].values())
    )


class ToolConfig(ConfigModel):
    """What every tool has. Use ``json_schema()`` for the parameters, whatever the form."""

    type: str
    name: str
    description: str = ""
    parameters: Annotated[dict[str, Any], ShapedAs(dict[str, ToolParameter])] = Field(
        default_factory=dict
    )

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if not TOOL_NAME_RE.match(value):
            raise config_error(
                f"'{value}' is not a valid tool name: start with a letter or '_', then letters,"
                " digits, '_', '.' or '-'"
            )
        return value

    @field_validator("parameters")
    @classmethod
    def _parameters_shape(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not is_json_schema(value):
            _PARAMETER_MAP.validate_python(value)  # its errors get the right sub-paths
            return value
        if value.get("type", "object") != "object":
            raise config_error("a parameters JSON Schema must have type: object", field="type")
        properties = value.get("properties", {})
        if not isinstance(properties, dict) or not all(
            isinstance(p, dict) for p in properties.values()
        ):
            raise config_error(
                "properties must map each parameter name to its schema", field="properties"
            )
        required = value.get("required", [])
        if not isinstance(required, list):
            raise config_error("required must be a list of parameter names", field="required")
        for i, name in enumerate(required):
            if name not in properties:
                hint = suggest(name, properties)
                raise config_error(
                    with_suggestion(f"required parameter '{name}' is not in properties", hint),
                    field=f"required.{i}",
                    suggestion=hint,
                )
        return value

    def default_parameters(self) -> dict[str, Any]:
        """The schema when the file gives none (overridden by tools with a natural input)."""
        return {"type": "object", "properties": {}, "required": []}

    def json_schema(self) -> dict[str, Any]:
        """The tool's parameters as a full JSON Schema object (a fresh copy)."""
        if not self.parameters:
            return self.default_parameters()
        if is_json_schema(self.parameters):
            schema = copy.deepcopy(self.parameters)
            schema.setdefault("type", "object")
            schema.setdefault("properties", {})
            schema.setdefault("required", [])
            return schema
        params = _PARAMETER_MAP.validate_python(self.parameters)
        return {
            "type": "object",
            "properties": {name: p.schema_fragment() for name, p in params.items()},
            "required": [name for name, p in params.items() if p.is_required],
        }


def _query_schema(description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"query": {"type": "string", "description": description}},
        "required": ["query"],
    }


class BuiltinTool(ToolConfig):
    """A tool shipped with the runtime, chosen by ``name``; ``config`` tunes it."""

    type: Literal["builtin"]
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known_builtin(cls, value: str) -> str:
        if value not in BUILTIN_TOOLS:
            hint = suggest(value, BUILTIN_TOOLS)
            raise config_error(
                with_suggestion(
                    f"unknown builtin tool '{value}'; expected one of {one_of(BUILTIN_TOOLS)}",
                    hint,
                ),
                suggestion=hint,
            )
        return value


class PythonTool(ToolConfig):
    """A Python function, imported from ``handler`` (``package.module:function``)."""

    type: Literal["python"]
    handler: str

    @field_validator("handler")
    @classmethod
    def _handler_shape(cls, value: str) -> str:
        if not PYTHON_HANDLER_RE.match(value):
            hint = None
            if ":" not in value and "." in value:
                module, _, func = value.rpartition(".")
                hint = f"{module}:{func}"
            raise config_error(
                with_suggestion(
                    f"handler must look like 'package.module:function', got '{value}'", hint
                ),
                suggestion=hint,
            )
        return value

    @property
    def module(self) -> str:
        """The module part of ``handler``."""
        return self.handler.partition(":")[0]

    @property
    def attribute(self) -> str:
        """The (possibly dotted) attribute part of ``handler``."""
        return self.handler.partition(":")[2]


class MCPTool(ToolConfig):
    """The tools of an MCP server, over stdio (a command) or streamable HTTP (a URL)."""

    type: Literal["mcp"]
    transport: Literal["stdio", "streamable_http"] = "stdio"
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    allowed_tools: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _infer_transport(cls, data: Any) -> Any:
        """``url`` without ``command`` or ``transport`` clearly means streamable HTTP."""
        if (
            isinstance(data, dict)
            and "transport" not in data
            and "url" in data
            and ("command" not in data)
        ):
            return {**data, "transport": "streamable_http"}
        return data

    @model_validator(mode="after")
    def _transport_fields(self) -> MCPTool:
        if self.transport == "stdio":
            if not self.command:
                raise config_error(
                    "transport 'stdio' needs 'command' (the server program to start)",
                    field="command",
                )
            if self.url is not None:
                raise config_error(
                    "'url' is for transport 'streamable_http', not 'stdio'", field="url"
                )
        else:
            if not self.url:
                raise config_error("transport 'streamable_http' needs 'url'", field="url")
            if self.command is not None:
                raise config_error(
                    "'command' is for transport 'stdio', not 'streamable_http'",
                    field="command",
                )
        return self


class WebhookTool(ToolConfig):
    """An HTTP endpoint called with the arguments as JSON (signed when ``secret_env`` is set)."""

    type: Literal["webhook"]
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(30, gt=0)
    secret_env: str | None = None
    allow_private_network: bool = False

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return check_http_url(value, "url")

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        return check_secret_env(value)


def check_http_url(value: str, name: str) -> str:
    """``value`` if it is an http(s) URL; the config error naming field ``name`` otherwise."""
    if not value.startswith(("http://", "https://")):
        raise config_error(f"{name} must start with http:// or https://, got '{value}'")
    return value


def check_secret_env(value: str | None) -> str | None:
    """``value`` if it names an environment variable (a signing secret's ``secret_env``)."""
    if value is not None and not ENV_VAR_RE.match(value):
        raise config_error(
            "secret_env is the *name* of an environment variable holding the secret,"
            " not the secret itself"
        )
    return value


class RagTool(ToolConfig):
    """Retrieval from a RAGPipeline document, exposed as a tool.

    ``pipeline`` (upstream: ``knowledge_base``) may be left out when the runtime has exactly
    one RAGPipeline, as upstream's templates write it; the runtime resolves it at build time
    and says so when it cannot."""

    type: Literal["rag"]
    pipeline: str | None = None
    top_k: int = Field(5, ge=1)

    def default_parameters(self) -> dict[str, Any]:
        return _query_schema("What to look up")


class AgentTool(ToolConfig):
    """Another agent, called as a tool (a child run)."""

    type: Literal["agent"]
    agent: str
    context_transform: str | None = None
    """Upstream's: a template rendered with the call's arguments as ``data`` into a JSON
    object, the child run's context (over the parent's); its keys are variables of the
    child's system prompt. Checked here like every document template (bounded sandbox)."""

    @field_validator("context_transform")
    @classmethod
    def _transform_template(cls, value: str | None) -> str | None:
        from astromesh.config.templates import check_template

        return None if value is None else check_template(value)

    def default_parameters(self) -> dict[str, Any]:
        return _query_schema("The request for the agent")


class ClientTool(ToolConfig):
    """A tool the client executes; the run pauses until the client returns the result."""

    type: Literal["client"]


AnyTool = Annotated[
    BuiltinTool | PythonTool | MCPTool | WebhookTool | RagTool | AgentTool | ClientTool,
    Field(discriminator="type"),
]
"""Any tool config; pydantic picks the class by ``type``."""
