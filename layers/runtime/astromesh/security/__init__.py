"""Trust decisions in one place: what an untrusted (API-registered) agent document may use.

- :mod:`.policy`: the registration policy (``RuntimeConfig`` ``spec.registration`` plus
  ``ASTROMESH_REGISTRATION_*`` overrides), allowlist by default;
- :mod:`.registration`: the check of a posted document against it, issue by issue;
- :mod:`.grants`: what a built agent's tools and models may reach, enforced where they
  connect or open files (for file agents too, narrowed by ``spec.permissions``).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from astromesh.security.grants import FILE_AGENT_GRANTS, Grants
    from astromesh.security.policy import RegistrationPolicy
    from astromesh.security.registration import registration_issues

_EXPORTS = {
    "FILE_AGENT_GRANTS": "astromesh.security.grants",
    "Grants": "astromesh.security.grants",
    "RegistrationPolicy": "astromesh.security.policy",
    "registration_issues": "astromesh.security.registration",
}
"""Where each name lives, imported on first use: building an agent needs its grants, not the
check of a posted document (``registration``, on the first registration)."""

__all__ = ["FILE_AGENT_GRANTS", "Grants", "RegistrationPolicy", "registration_issues"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
