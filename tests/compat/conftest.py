"""The channels' app fixtures (apps over a temporary agents folder), for the REST checks."""

from tests.channels.conftest import agents_dir, client_for, make_app

__all__ = ["agents_dir", "client_for", "make_app"]
