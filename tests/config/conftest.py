from __future__ import annotations

from pathlib import Path

import pytest

from astromesh.config import LoadResult, load_path

HERE = Path(__file__).parent
VALID = HERE / "valid"
BROKEN = HERE / "broken"

# Variables the valid fixtures reference without a default are never needed: every
# ${VAR} there has one, so an empty environment must load them.
EMPTY_ENV: dict[str, str] = {}


@pytest.fixture(scope="session")
def valid() -> LoadResult:
    result = load_path(VALID, env=EMPTY_ENV)
    assert result.ok, result.error_report()
    return result
