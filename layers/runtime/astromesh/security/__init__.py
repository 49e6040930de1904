"""Trust decisions in one place: what an untrusted (API-registered) agent document may use.

- :mod:`.policy`: the registration policy (``RuntimeConfig`` ``spec.registration`` plus
  ``ASTROMESH_REGISTRATION_*`` overrides), allowlist by default;
- :mod:`.registration`: the check of a posted document against it, issue by issue;
- :mod:`.grants`: what a built agent's tools and models may reach, enforced where they
  connect or open files (for file agents too, narrowed by ``spec.permissions``).
"""

from astromesh.security.grants import FILE_AGENT_GRANTS, Grants
from astromesh.security.policy import RegistrationPolicy
from astromesh.security.registration import registration_issues

__all__ = ["FILE_AGENT_GRANTS", "Grants", "RegistrationPolicy", "registration_issues"]
