"""The model router's own cost: overhead per call, and the time a failure costs.

1. Overhead per call: a zero-latency in-process provider called directly (``model.stream``)
   against the same provider behind a ``ModelRouter``, for each strategy, with no breaker, an
   in-memory breaker, the in-memory breaker with health checks configured (healthy, so no
   probe after the first call) and (with ``--redis``) the Redis breaker. The difference is
   what routing, cost and latency bookkeeping, the breaker and health checks add to every call.
2. Failure to first fallback token: a primary scripted server on 127.0.0.1 that fails (HTTP
   503, 503 with a Retry-After beyond ``max_delay``, connection refused, a timeout, an
   unhealthy health endpoint), a healthy fallback server, and the time from the request to the
   first token of the fallback, against the time to the first token of the healthy server
   called directly. With retries the jittered backoff is part of the figure. Also the first
   call of a cold instance to a healthy primary with health checks: probe, then call.

    python bench/router.py [--calls 2000] [--runs 20] [--redis redis://127.0.0.1:6379/15]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support, from a checkout

from tests.support.model_servers import Reply, ScriptedOpenAIServer

from astromesh.models.base import Model, ProviderSettings
from astromesh.models.breaker import BreakerSettings, CircuitBreaker, MemoryCircuitBreaker
from astromesh.models.breaker_redis import RedisCircuitBreaker
from astromesh.models.openai_compat import OpenAICompatModel
from astromesh.models.router import ModelRouter, RetryPolicy
from astromesh.models.strategies import STRATEGIES
from astromesh.models.types import (
    GenerationParams,
    Message,
    ModelResponse,
    StreamEvent,
    TextDelta,
    ToolDefinition,
    Usage,
)

HELLO = [Message.user("hi")]


class InstantModel(Model):
    """Answers at once, in-process: three tokens and a final response."""

    provider_type = "openai_compat"

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolDefinition] = (),
        params: GenerationParams | None = None,
    ) -> AsyncIterator[StreamEvent]:
        for piece in ("a", "b", "c"):
            yield TextDelta(piece)
        yield ModelResponse(
            content="abc",
            usage=Usage(tokens_in=10, tokens_out=3),
            provider=self.settings.label,
            model=self.model,
            latency_ms=0.01,
        )


async def per_call_us(call: Callable[[], AsyncIterator[StreamEvent]], calls: int) -> float:
    """Mean microseconds per fully consumed stream over ``calls`` calls."""
    started = time.perf_counter()
    for _ in range(calls):
        async for _event in call():
            pass
    return (time.perf_counter() - started) / calls * 1e6


async def overhead(calls: int, runs: int, redis_url: str | None) -> None:
    def instant(model: str, name: str, interval: float | None = None) -> InstantModel:
        return InstantModel(
            ProviderSettings("openai_compat", model, name=name, health_check_interval=interval)
        )

    plain = [instant("gpt-4o-mini", "a"), instant("gpt-4o", "b")]
    checked = [instant("gpt-4o-mini", "a", 30), instant("gpt-4o", "b", 30)]
    primary = plain[0]
    breakers: dict[str, tuple[CircuitBreaker | None, list[Model]]] = {
        "no breaker": (None, plain),
        "memory breaker": (MemoryCircuitBreaker(BreakerSettings()), plain),
        "memory + health": (MemoryCircuitBreaker(BreakerSettings()), checked),
    }
    if redis_url:
        breakers["redis breaker"] = (
            RedisCircuitBreaker(redis_url, BreakerSettings(), prefix="astromesh-bench:breaker"),
            plain,
        )

    direct = [await per_call_us(lambda: primary.stream(HELLO), calls) for _ in range(runs)]
    base = statistics.median(direct)
    print(f"\n1. router overhead per call ({calls} calls x {runs} runs, zero-latency provider)")
    print(f"   direct model.stream: {base:8.1f} us/call (baseline)")
    print("   (breaker: what the breaker adds per call, against no breaker and the same strategy)")
    unguarded: dict[str, float] = {}
    for label, (breaker, models) in breakers.items():
        for name in STRATEGIES:
            router = ModelRouter(
                {"default": models},
                default_strategy=name,
                breaker=breaker,
                retry=RetryPolicy(retries=0),
            )
            samples = [
                await per_call_us(lambda r=router: r.stream(HELLO), calls) for _ in range(runs)
            ]
            median = statistics.median(samples)
            unguarded.setdefault(name, median)  # the first configuration has no breaker
            print(
                f"   {label:15s} {name:18s} {median:8.1f} us/call  overhead {median - base:7.1f} us"
                f"  breaker {median - unguarded[name]:7.1f} us"
            )
        if breaker is not None:
            await breaker.aclose()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def first_token_ms(source: ModelRouter | Model) -> float:
    """Milliseconds to the first token; the stream is then consumed to its end."""
    started = time.perf_counter()
    elapsed: float | None = None
    async for event in source.stream(HELLO):
        if elapsed is None and isinstance(event, TextDelta):
            elapsed = (time.perf_counter() - started) * 1000
    if elapsed is None:
        raise RuntimeError("no token")
    return elapsed


async def failover(runs: int) -> None:
    print(f"\n2. primary failure -> first fallback token (median of {runs}, 127.0.0.1 servers)")
    with ScriptedOpenAIServer() as failing, ScriptedOpenAIServer() as healthy:

        def model(url: str, name: str, timeout: float = 5.0) -> OpenAICompatModel:
            return OpenAICompatModel(
                ProviderSettings(
                    "openai_compat", "gpt-x", endpoint=url, name=name, timeout_seconds=timeout
                )
            )

        fallback = model(healthy.url, "fallback")
        healthy.push(*(Reply("hello world") for _ in range(runs + 2)))
        await first_token_ms(fallback)  # warm the connection pool
        direct = [await first_token_ms(fallback) for _ in range(runs)]
        print(f"   fallback server called directly:     {statistics.median(direct):7.2f} ms")

        scenarios: list[tuple[str, Callable[[], Model], Callable[[], None], RetryPolicy]] = [
            ("HTTP 503, no retry", lambda: model(failing.url, "p"),
             lambda: failing.push(Reply(status=503)), RetryPolicy(0)),
            ("HTTP 503, 1 retry (0.1 s jitter)", lambda: model(failing.url, "p"),
             lambda: failing.push(Reply(status=503), Reply(status=503)),
             RetryPolicy(1, base_delay=0.1)),
            ("HTTP 503 Retry-After 30 s, 2 retries", lambda: model(failing.url, "p"),
             lambda: failing.push(Reply(status=503, headers={"Retry-After": "30"})),
             RetryPolicy(2, base_delay=0.1)),
            ("connection refused, no retry", lambda: model(closed_port_url(), "p"),
             lambda: None, RetryPolicy(0)),
            ("timeout 0.2 s, no retry", lambda: model(failing.url, "p", timeout=0.2),
             lambda: failing.push(Reply(delay=1.0)), RetryPolicy(0)),
        ]  # fmt: skip
        for label, make_primary, script, retry in scenarios:
            samples = []
            for _ in range(runs):
                script()
                healthy.push(Reply("hello world"))
                router = ModelRouter({"default": [make_primary(), fallback]}, retry=retry)
                samples.append(await first_token_ms(router))
            print(f"   {label:36s} {statistics.median(samples):7.2f} ms")

        breaker = MemoryCircuitBreaker(BreakerSettings(failure_threshold=1, recovery_timeout=600))
        open_router = ModelRouter(
            {"default": [model(failing.url, "p"), fallback]},
            breaker=breaker,
            retry=RetryPolicy(0),
        )
        failing.push(Reply(status=503))
        healthy.push(*(Reply("hello world") for _ in range(runs + 1)))
        await first_token_ms(open_router)  # opens the circuit
        samples = [await first_token_ms(open_router) for _ in range(runs)]
        print(f"   {'circuit open (primary skipped)':36s} {statistics.median(samples):7.2f} ms")

        # Health checks on a cold instance (no evidence yet): every run is a new router with
        # its own evidence, so each one probes before calling the primary.
        def checked(url: str, interval: float | None) -> OpenAICompatModel:
            return OpenAICompatModel(
                ProviderSettings(
                    "openai_compat", "gpt-x", endpoint=url, name="p", health_check_interval=interval
                )
            )

        for label, healthy_primary, interval in (
            ("unhealthy primary (probe 503), skip", False, 30),
            ("healthy primary, cold, no checks", True, None),
            ("healthy primary, cold: probe + call", True, 30),
        ):
            failing.healthy = healthy_primary
            samples = []
            for _ in range(runs):
                target = healthy if not healthy_primary else failing
                target.push(Reply("hello world"))
                router = ModelRouter(
                    {"default": [checked(failing.url, interval), fallback]},
                    retry=RetryPolicy(0),
                )
                samples.append(await first_token_ms(router))
                await router.primary().aclose()
            print(f"   {label:36s} {statistics.median(samples):7.2f} ms")
        failing.healthy = True
        await fallback.aclose()


async def main() -> None:
    logging.getLogger("astromesh").setLevel(logging.ERROR)  # fallbacks are the point here
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--redis", default=None, help="also measure the Redis breaker")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}")
    await overhead(args.calls, max(3, args.runs // 4), args.redis)
    await failover(args.runs)


if __name__ == "__main__":
    asyncio.run(main())
