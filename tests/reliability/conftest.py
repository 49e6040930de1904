"""Fixtures of the reliability tests: the channel tests' app factory, clients and agents
folder (imported so pytest finds them here too)."""

from tests.channels.conftest import agents_dir, client_for, make_app

__all__ = ["agents_dir", "client_for", "make_app"]
