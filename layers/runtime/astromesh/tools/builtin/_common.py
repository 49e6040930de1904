"""What the builtin tools share: typed ``config`` blocks checked when the agent is built."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from astromesh.errors import ConfigurationError

_M = TypeVar("_M", bound="BuiltinConfig")


class BuiltinConfig(BaseModel):
    """Base of each builtin's ``config``: unknown keys are errors, so typos surface early."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RootedConfig(BuiltinConfig):
    """A file builtin's ``config``: one folder, ``root``, that its paths stay under.

    Upstream's file tools take ``allowed_paths`` (a list); here a tool is confined to one
    folder, so a one-entry list is read as ``root`` and a longer one is refused.
    """

    one_folder: ClassVar[str] = "this tool works under one folder"
    root: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _upstream_allowed_paths(cls, data: Any) -> Any:
        if isinstance(data, dict) and "allowed_paths" in data:
            data = dict(data)
            paths = data.pop("allowed_paths")
            if not isinstance(paths, list) or len(paths) != 1:
                raise ValueError(f"allowed_paths: {cls.one_folder}; give exactly one (or use root)")
            data.setdefault("root", paths[0])
        return data


def parse_config(model: type[_M], name: str, raw: dict[str, Any]) -> _M:
    """Validate ``raw`` as ``model``, turning pydantic's errors into one readable message.

    Raises:
        ConfigurationError: naming the tool, the key and the problem.
    """
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"config.{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(f"builtin tool {name!r}: {problems}") from None
