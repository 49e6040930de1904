"""The flow every messaging channel shares, written once: accept fast, answer later.

:meth:`Inbox.receive` is the part that must finish before the platform gets its ``200``
(Meta wants it within seconds, and retries otherwise): verify the delivery, parse it, claim
each message id exactly once, apply the sender's rate limit, and return the :class:`Work`
still to do. :meth:`ChannelHub.answer` is the slow part, done after the acknowledgement (a
background task locally, a self-invoked Lambda in AWS): run the channel's agent on the text
and send the answer back, split to the platform's limit.

What a sender gets back, besides the agent's answer:

- a ``media`` message: :data:`MEDIA_NOTICE` (no run);
- the first message over their rate limit in a burst: :data:`RATE_NOTICE` (no run; later
  ones in the same burst get nothing, so a flood does not turn into a flood of replies);
- a run that fails, times out or is refused because the server is busy, or anything else
  that fails after the acknowledgement: :data:`FAILURE_NOTICE` (the details are in the logs
  and the run record). A message is never answered to an address the platform could not have
  sent it from (an empty or malformed chat id): such items are acknowledged as malformed.

One sender's messages are answered one at a time (:meth:`ChannelHub.turn`): a message that
arrives while the agent is still answering the previous one waits for it, so each run sees
the previous turn in the session's history. The order among several waiting messages is not
guaranteed (they take the turn as it frees); a turn is held at most for the agent's time
limit plus :data:`TURN_MARGIN_SECONDS`, so a crashed run cannot block its sender for longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from astromesh.auth import Principal, Role
from astromesh.channels.access import runnable_agent
from astromesh.channels.errors import DeliveryNotAccepted, TooManyRuns
from astromesh.channels.launcher import RunInput
from astromesh.channels.messaging.base import (
    ChannelAdapter,
    InboundMessage,
    SendError,
    WebhookRequest,
    Work,
)
from astromesh.channels.messaging.config import ChannelsConfig, ChannelSettings, load_channels
from astromesh.channels.messaging.guards import (
    DEFAULT_PREFIX,
    PREFIX_ENV,
    Guards,
    open_guards,
)
from astromesh.channels.messaging.telegram import TelegramAdapter
from astromesh.channels.messaging.whatsapp import WhatsAppAdapter
from astromesh.channels.services import Services
from astromesh.errors import AstromeshError, ConfigurationError, NotFoundError
from astromesh.runs.state import RunStatus
from astromesh.runtime import REDIS_URL_ENV
from astromesh.telemetry.metrics import Metrics, NullMetrics

logger = logging.getLogger(__name__)


MEDIA_NOTICE = "I can only read text messages for now. Please send your question as text."
RATE_NOTICE = (
    "You are sending messages faster than I can answer. Please wait a moment and try again."
)
FAILURE_NOTICE = "Sorry, I could not answer that just now. Please try again in a little while."
TURN_MARGIN_SECONDS = 30.0
"""A turn is held for the agent's ``timeout_seconds`` plus this (model calls that overrun the
limit, the reply being sent)."""
TURN_POLL_SECONDS = 0.2

ADAPTERS: dict[str, Callable[[Any, httpx.AsyncClient], ChannelAdapter]] = {
    "whatsapp": WhatsAppAdapter,
    "telegram": TelegramAdapter,
}
"""Channel name -> adapter class; the name is also the attribute of :class:`ChannelsConfig`
holding its settings. A new channel adds one line here."""


@dataclass
class Inbox:
    """One configured channel: its adapter, its settings and the shared guards."""

    adapter: ChannelAdapter
    settings: ChannelSettings
    """The channel's settings (``WhatsAppSettings``, ``TelegramSettings``...)."""
    guards: Guards
    metrics: Metrics = field(default_factory=NullMetrics)
    """Where malformed items are counted (the runtime's metrics)."""

    @property
    def name(self) -> str:
        return self.adapter.name

    async def receive(self, request: WebhookRequest) -> list[Work]:
        """Verify, parse, deduplicate and rate-limit a delivery; the work left to do.

        Each item's text is repaired to valid text first (the platform cannot be told; see
        :mod:`astromesh.text_boundary`). Malformed items are acknowledged, counted
        (:meth:`~astromesh.telemetry.metrics.Metrics.message_ignored`) and logged with the
        reason. If anything fails after a message was claimed, the claims this delivery took
        are released before the error goes on: the platform, answered an error, delivers
        again, and the redelivery must find the messages unclaimed.

        Raises:
            Unauthorized / Forbidden: the delivery's proof is missing or wrong.
            BadRequest: the body is not the platform's payload.
            StateUnavailable: the claims' store cannot be reached (503).
            DeliveryNotAccepted: anything else failed (503).
        """
        self.adapter.verify(request)
        found: list[Work] = []
        claimed: list[str] = []
        try:
            for parsed in self.adapter.parse(request):
                work = await self._accept(parsed.repaired(), claimed)
                if work is not None:
                    found.append(work)
        except AstromeshError:
            await self._release_claims(claimed)
            raise
        except Exception as exc:
            await self._release_claims(claimed)
            logger.exception("channel=<%s> | delivery not accepted, claims released", self.name)
            raise DeliveryNotAccepted(
                f"the {self.name} delivery could not be accepted ({type(exc).__name__});"
                " deliver it again"
            ) from exc
        except BaseException:  # cancelled (the platform hung up): it will deliver again
            await self._release_claims(claimed)
            raise
        return found

    async def _accept(self, message: InboundMessage, claimed: list[str]) -> Work | None:
        """The work for one item, or ``None`` when it needs no answer (adds its claim key
        to ``claimed`` once claimed)."""
        if message.kind == "malformed":
            logger.warning(
                "channel=<%s>, message_id=<%s>, reason=<%s> | malformed item acknowledged,"
                " not answered",
                self.name,
                message.message_id[:128],
                message.detail[:300],
            )
            self.metrics.message_ignored(self.name, message.reason)
            return None
        runnable = message.kind == "media" or (message.kind == "text" and message.text.strip())
        if not runnable or not message.message_id:
            logger.info(
                "channel=<%s>, kind=<%s>, detail=<%s> | acknowledged, nothing to answer",
                self.name,
                message.kind,
                message.detail[:300],
            )
            return None
        key = self.claim_key(message.message_id)
        if not await self.guards.claim(key):
            logger.info(
                "channel=<%s>, message_id=<%s> | already handled, redelivery dropped",
                self.name,
                message.message_id[:128],
            )
            return None
        claimed.append(key)
        notice = None
        limit = self.settings.rate_limit
        if limit is not None:
            verdict = await self.guards.hit(
                f"{self.name}:{message.sender}",
                window_seconds=limit.window_seconds,
                max_messages=limit.max_messages,
            )
            if not verdict.allowed:
                logger.warning(
                    "channel=<%s>, refused=<%d> | sender over the rate limit",
                    self.name,
                    verdict.refused,
                )
                if verdict.refused > 1:
                    return None
                notice = RATE_NOTICE
        if notice is None and message.kind == "media":
            notice = MEDIA_NOTICE
        return Work(message, notice)

    async def _release_claims(self, keys: list[str]) -> None:
        for key in keys:
            try:
                await self.guards.release(key)
            except Exception as exc:  # noqa: BLE001 - the original error is the one to raise
                logger.error("claim=<%s> | could not be released: %r", key, exc)

    def claim_key(self, message_id: str) -> str:
        return f"{self.name}:{message_id}"

    async def release(self, work: Work) -> None:
        """Undo the claim of work that could not be handed off, so a redelivery runs."""
        await self.guards.release(self.claim_key(work.message.message_id))


class ChannelHub:
    """The configured channels of one app or one Lambda container, and their answering."""

    def __init__(
        self,
        services: Services,
        config: ChannelsConfig,
        guards: Guards,
        http: httpx.AsyncClient,
    ) -> None:
        self.services = services
        self.config = config
        self.guards = guards
        self.http = http
        self.inboxes: dict[str, Inbox] = {}
        for name, adapter in ADAPTERS.items():
            settings = getattr(config, name)
            if settings is not None:
                self.inboxes[name] = Inbox(
                    adapter(settings, http), settings, guards, services.runtime.metrics
                )
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def build(cls, services: Services, env: Mapping[str, str] | None = None) -> ChannelHub:
        """Channels from the runtime's environment and agents folder.

        Raises:
            ConfigurationError: the channel settings do not validate.
        """
        runtime = services.runtime
        env = runtime.env if env is None else env
        config = load_channels(env, runtime.agents_dir if runtime.agents_dir.is_dir() else None)
        guards = open_guards(
            env.get(REDIS_URL_ENV),
            prefix=env.get(PREFIX_ENV) or DEFAULT_PREFIX,
            state=runtime.state,  # claims are durable where the state is in PostgreSQL
        )
        return cls(services, config, guards, httpx.AsyncClient(timeout=httpx.Timeout(15.0)))

    def inbox(self, channel: str) -> Inbox:
        """The channel's inbox.

        Raises:
            NotFoundError: the channel is unknown or not configured here.
        """
        try:
            return self.inboxes[channel]
        except KeyError:
            configured = ", ".join(sorted(self.inboxes)) or "none"
            raise NotFoundError(
                f"channel {channel!r} is not configured here (configured: {configured});"
                " see the Channels section of the README"
            ) from None

    async def answer(self, channel: str, work: Work) -> None:
        """Run the agent for ``work`` (or take its notice) and send the reply. Never raises:
        the message was acknowledged already, so whatever fails on the way (the run, an
        unexpected error, the reply itself) is logged, and the sender gets
        :data:`FAILURE_NOTICE` in place of an answer whenever it can still be sent."""
        inbox = self.inbox(channel)
        message = work.message
        try:
            text = work.notice if work.notice is not None else await self._run(inbox, work)
        except Exception:
            logger.exception(
                "channel=<%s>, message_id=<%s> | answering failed; sending the apology",
                channel,
                message.message_id,
            )
            text = FAILURE_NOTICE
        if not await self._reply(inbox, message, text) and text != FAILURE_NOTICE:
            await self._reply(inbox, message, FAILURE_NOTICE)

    async def _reply(self, inbox: Inbox, message: InboundMessage, text: str) -> bool:
        """Send ``text``; ``False`` only when an unexpected error (not the platform's refusal
        or an unreachable platform, where an apology would fail the same way) stopped it."""
        try:
            parts = await inbox.adapter.send(message.reply_to, text)
        except (SendError, httpx.HTTPError) as exc:
            logger.error(
                "channel=<%s>, message_id=<%s> | reply not sent: %s",
                inbox.name,
                message.message_id,
                exc,
            )
            return True
        except Exception:
            logger.exception(
                "channel=<%s>, message_id=<%s> | reply failed", inbox.name, message.message_id
            )
            return False
        logger.info(
            "channel=<%s>, message_id=<%s>, parts=<%d> | replied",
            inbox.name,
            message.message_id,
            parts,
        )
        return True

    def spawn(self, channel: str, work: Work) -> None:
        """Answer in a task of this process (the local server), kept until it ends."""
        task = asyncio.create_task(self.answer(channel, work))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait for the answers in flight (tests; shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def aclose(self, grace_seconds: float = 5.0) -> None:
        """Let answers in flight finish for a moment, cancel the rest, close clients."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.http.aclose()
        await self.guards.aclose()

    async def _run(self, inbox: Inbox, work: Work) -> str:
        message = work.message
        try:
            agent_name = self._agent_name(inbox)
            # The channel's configured tenant: its agent resolves (and its runs live) there.
            principal = Principal(inbox.settings.tenant, frozenset({agent_name}), role=Role.USER)
            agent = await runnable_agent(await self.services.catalog(), principal, agent_name)
            async with self.turn(inbox, message.session_id, agent.timeout_seconds):
                run = await self.services.launcher.run(
                    agent,
                    RunInput(
                        message.text,
                        message.session_id,
                        {"channel": inbox.name},
                        inbox.settings.tenant,
                    ),
                )
        except TooManyRuns:
            logger.warning("channel=<%s> | server busy, run refused", inbox.name)
            return FAILURE_NOTICE
        except AstromeshError as exc:
            logger.error("channel=<%s>, code=<%s> | run not started: %s", inbox.name, exc.code, exc)
            return FAILURE_NOTICE
        if run.status is RunStatus.SUCCEEDED and (run.answer or "").strip():
            return run.answer or ""
        logger.warning(
            "channel=<%s>, run_id=<%s>, status=<%s> | run did not answer: %s",
            inbox.name,
            run.id,
            run.status.value,
            run.error,
        )
        return FAILURE_NOTICE

    @contextlib.asynccontextmanager
    async def turn(self, inbox: Inbox, session_id: str, run_seconds: float) -> AsyncIterator[None]:
        """Hold the conversation's turn while its run goes on: wait for the run before it.

        The wait is bounded by what a turn may last; past it, the run goes ahead anyway
        (logged), since a sender must get an answer even if a lease outlived a lost run.
        """
        hold = run_seconds + TURN_MARGIN_SECONDS
        key = f"{inbox.name}:{session_id}"
        deadline = time.monotonic() + hold
        token = await inbox.guards.lease(key, hold)
        while token is None and time.monotonic() < deadline:
            await asyncio.sleep(TURN_POLL_SECONDS)
            token = await inbox.guards.lease(key, hold)
        if token is None:
            logger.warning(
                "channel=<%s>, session=<%s> | previous turn still held after %.0fs; answering",
                inbox.name,
                session_id,
                hold,
            )
        try:
            yield
        finally:
            if token is not None:
                await inbox.guards.unlease(key, token)

    def _agent_name(self, inbox: Inbox) -> str:
        name = inbox.settings.default_agent
        if name:
            return name
        names = self.services.runtime.agent_names()
        if len(names) == 1:
            return names[0]
        raise ConfigurationError(
            f"channels.{inbox.name}.default_agent is not set and there are {len(names)} agents;"
            f" name the one that answers"
        )

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("channel answer failed", exc_info=task.exception())
