"""Python tools: ``handler: package.module:function`` with a schema derived from type hints.

The function may be sync (run in a worker thread so it cannot stall the event loop) or
async. A parameter named ``context`` annotated as :class:`ToolContext` receives the caller.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, create_model

from astromesh.errors import ConfigurationError
from astromesh.tools.base import Tool, ToolContext

_CONTEXT_PARAM = "context"


class PythonTool(Tool):
    """Wraps one Python callable."""

    def __init__(
        self,
        name: str,
        func: Callable[..., Any],
        *,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.func = func
        self._takes_context = _CONTEXT_PARAM in inspect.signature(func).parameters
        self._arguments_model = arguments_model(func)
        super().__init__(
            name=name,
            description=description or inspect.getdoc(func) or "",
            parameters=parameters or _clean_schema(self._arguments_model.model_json_schema()),
        )

    async def invoke(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        # Coerce JSON into the handler's declared types (a pydantic model parameter gets a
        # model instance, not a dict), so handlers are written against their type hints.
        parsed = self._arguments_model.model_validate(arguments)
        kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
        if self._takes_context:
            kwargs[_CONTEXT_PARAM] = context
        if inspect.iscoroutinefunction(self.func):
            return await self.func(**kwargs)
        return await asyncio.to_thread(self.func, **kwargs)


def schema_from_signature(func: Callable[..., Any]) -> dict[str, Any]:
    """JSON Schema of ``func``'s parameters, built by pydantic from its type hints.

    Unannotated parameters accept any JSON value; ``context`` is left out (the runtime fills it).
    """
    return _clean_schema(arguments_model(func).model_json_schema())


def arguments_model(func: Callable[..., Any]) -> type[BaseModel]:
    """A pydantic model of ``func``'s parameters (without ``context``)."""
    hints = get_type_hints(func)
    fields: dict[str, Any] = {}
    for param in inspect.signature(func).parameters.values():
        if param.name == _CONTEXT_PARAM or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(param.name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        f"{func.__name__}_arguments", __config__=ConfigDict(extra="forbid"), **fields
    )
    return model


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's generated titles: noise in the prompt, no information for a model."""
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


def import_handler(handler: str, *, search_path: Path | None = None) -> Callable[..., Any]:
    """Resolve ``package.module:function``.

    Modules are imported from the environment first; when that fails and ``search_path`` is
    given (the agents folder), from there, so an agent can ship its tools beside its YAML.
    """
    module_name, _, attr = handler.partition(":")
    try:
        module = _import(module_name, search_path)
    except ImportError as exc:
        raise ConfigurationError(f"python tool handler {handler!r}: cannot import: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigurationError(
                f"python tool handler {handler!r}: module {module_name!r} has no {attr!r}"
            ) from None
    if not callable(target):
        raise ConfigurationError(f"python tool handler {handler!r} is not callable")
    return target  # type: ignore[no-any-return]


def _import(module_name: str, search_path: Path | None) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if search_path is None or not (exc.name and module_name.startswith(exc.name)):
            raise
    with _on_sys_path(search_path):
        return importlib.import_module(module_name)


@contextmanager
def _on_sys_path(path: Path) -> Iterator[None]:
    entry = str(path.resolve())
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        sys.path.remove(entry)
