"""Where workflow runs (and workflows registered over the API) are kept, on the runtime's
own state backend: :func:`open_workflow_store` picks the implementation for it."""

from astromesh.workflows.store.base import WorkflowRunStore
from astromesh.workflows.store.factory import open_workflow_store

__all__ = ["WorkflowRunStore", "open_workflow_store"]
