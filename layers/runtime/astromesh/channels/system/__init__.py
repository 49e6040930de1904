"""Upstream's ``/v1/system`` routes' logic, free of FastAPI: the daemon status
(:mod:`.status`) and the doctor's checks (:mod:`.doctor`)."""

from astromesh.channels.system.doctor import run_checks
from astromesh.channels.system.status import system_status

__all__ = ["run_checks", "system_status"]
