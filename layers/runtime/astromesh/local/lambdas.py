"""Lambda's execution model for the real handlers, in this process.

A :class:`LambdaFunction` owns emulated containers. A container is a thread of its own with
a fresh import of ``handler.py`` (its cold start: module globals such as the runtime and the
event loop are the container's own), made inside the function's environment
(:mod:`astromesh.local.environ`). It serves one invocation at a time and is reused warm; an
invocation that finds every container busy starts another, as Lambda does when a Map state
runs tool calls in parallel. A handler's exception is the invocation's function error, in
Lambda's payload shape (:func:`error_payload`).
"""

from __future__ import annotations

import importlib.util
import queue
import threading
import time
import traceback
import uuid
from collections.abc import Callable, MutableMapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from astromesh.local.environ import environment

DEFAULT_TIMEOUT_SECONDS = 60
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that the handlers and Powertools read."""

    function_name: str
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    memory_limit_in_mb: int = 512
    region: str = DEFAULT_REGION
    account: str = DEFAULT_ACCOUNT
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function_name}"

    @property
    def function_version(self) -> str:
        return "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000)


def load_handler(path: Path, module_name: str) -> ModuleType:
    """Import ``path`` as a fresh module: one emulated container's cold start."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import a handler from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def error_payload(exc: BaseException) -> dict[str, Any]:
    """How Lambda reports an unhandled exception to the caller."""
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_exception(exc),
    }


@dataclass
class Invocation:
    """One invocation as the caller made it, and what became of it."""

    function: str
    event: Any
    answer: Any
    exception: BaseException | None
    cold: bool
    seconds: float
    """Time in the handler (the import included on a cold start)."""

    @property
    def error(self) -> str | None:
        """The exception's type name, as Lambda's ``errorType``."""
        return None if self.exception is None else type(self.exception).__name__


_STOP = object()


class Container:
    """One emulated container: its thread, its handler module and its environment."""

    def __init__(self, function: LambdaFunction, index: int) -> None:
        self.function = function
        self.module: ModuleType | None = None
        self.environment: MutableMapping[str, str] | None = function.make_environment()
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._serve, name=f"lambda-{function.name}-{index}", daemon=True
        )
        self._thread.start()

    def submit(
        self, event: Any, context: LambdaContext
    ) -> Future[tuple[Any, BaseException | None, bool]]:
        """Queue one invocation; its future holds (answer, exception, cold start)."""
        future: Future[tuple[Any, BaseException | None, bool]] = Future()
        self._jobs.put((event, context, future))
        return future

    def _serve(self) -> None:
        if self.environment is None:
            self._loop()
        else:
            with environment(self.environment):
                self._loop()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not _STOP:
            if callable(job):
                job()
                continue
            event, context, future = job
            cold = self.module is None
            try:
                if self.module is None:
                    self.module = self.function.cold_start(self.environment)
                answer = getattr(self.module, self.function.attribute)(event, context)
            except Exception as exc:  # noqa: BLE001 - Lambda reports any exception
                future.set_result((None, exc, cold))
            else:
                future.set_result((answer, None, cold))

    def close(self) -> None:
        """Close the handler's worker (runtime, loop) on the container's thread, then stop."""
        done: Future[None] = Future()

        def close_worker() -> None:
            try:
                worker = getattr(self.module, "worker", None)
                if worker is not None:
                    worker.close()
                done.set_result(None)
            except BaseException as exc:  # noqa: BLE001 - reported to the caller below
                done.set_exception(exc)

        self._jobs.put(close_worker)
        self._jobs.put(_STOP)
        try:
            done.result(timeout=30)
        finally:
            self._thread.join(timeout=30)


class LambdaFunction:
    """The emulated containers of one function.

    Args:
        name: the function's name (its context's ``function_name``).
        handler_path: its ``handler.py``.
        attribute: the handler's name in that module.
        environment: a fresh environment for each new container (its cold start may write to
            it); None: the containers use the process's own environment.
        prepare: runs on a new container's thread, inside its environment, before the handler
            is imported (where the exec wrapper runs in Lambda).
    """

    def __init__(
        self,
        name: str,
        handler_path: Path,
        *,
        attribute: str = "handler",
        environment: Callable[[], MutableMapping[str, str]] | None = None,
        prepare: Callable[[MutableMapping[str, str] | None], None] | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        memory_mb: int = 512,
        region: str = DEFAULT_REGION,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        self.name = name
        self.handler_path = handler_path
        self.attribute = attribute
        self._environment = environment
        self._prepare = prepare
        self.timeout_seconds = timeout_seconds
        self.memory_mb = memory_mb
        self.region = region
        self.account = account
        self._containers: list[Container] = []
        self._idle: list[Container] = []
        self._lock = threading.Lock()

    @property
    def cold_starts(self) -> int:
        """Containers started so far (each imported the handler once)."""
        return sum(1 for c in self._containers if c.module is not None)

    @property
    def containers(self) -> int:
        return len(self._containers)

    def make_environment(self) -> MutableMapping[str, str] | None:
        return None if self._environment is None else self._environment()

    def cold_start(self, env: MutableMapping[str, str] | None) -> ModuleType:
        if self._prepare is not None:
            self._prepare(env)
        module_name = f"lambda_{self.name.replace('-', '_')}_{uuid.uuid4().hex}"
        return load_handler(self.handler_path, module_name)

    def context(self) -> LambdaContext:
        return LambdaContext(
            self.name, self.timeout_seconds, self.memory_mb, self.region, self.account
        )

    def _acquire(self) -> Container:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            container = Container(self, len(self._containers))
            self._containers.append(container)
            return container

    def invoke(self, event: Any, context: LambdaContext | None = None) -> Invocation:
        """Run one invocation to its end in a free container."""
        container = self._acquire()
        started = time.perf_counter()
        try:
            answer, exception, cold = container.submit(event, context or self.context()).result()
        finally:
            with self._lock:
                self._idle.append(container)
        return Invocation(self.name, event, answer, exception, cold, time.perf_counter() - started)

    def close(self) -> None:
        """Close every container (their runtimes and loops)."""
        with self._lock:
            containers, self._containers, self._idle = self._containers, [], []
        for container in containers:
            container.close()
