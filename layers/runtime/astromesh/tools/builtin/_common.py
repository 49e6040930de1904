"""What the builtin tools share: typed ``config`` blocks checked when the agent is built."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from astromesh.errors import ConfigurationError

_M = TypeVar("_M", bound="BuiltinConfig")


class BuiltinConfig(BaseModel):
    """Base of each builtin's ``config``: unknown keys are errors, so typos surface early."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
