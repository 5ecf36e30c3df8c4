"""One sender per channel behind the outbox; a channel with nothing configured goes to the log sink."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from activities.notifications import Message, ReplaySafe, Sender, log_sink
from workflows.policy import Channel


class Senders:
    """Routes each message to its channel's sender and answers for that sender's replay safety."""

    def __init__(
        self,
        channels: Mapping[Channel, Sender],
        *,
        fallback: Sender = log_sink,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._channels = dict(channels)
        self._fallback = fallback
        self._client = client

    def for_channel(self, channel: Channel) -> Sender:
        return self._channels.get(channel, self._fallback)

    def configured(self) -> list[Channel]:
        """The channels with a real provider, for the worker's start-up log line."""
        return sorted(self._channels)

    def replay_safe(self, channel: Channel) -> bool:
        sender = self.for_channel(channel)
        return isinstance(sender, ReplaySafe) and sender.replay_safe(channel)

    async def __call__(self, message: Message) -> str | None:
        return await self.for_channel(message.channel)(message)

    async def aclose(self) -> None:
        """Close the shared HTTP connection pool; call it when the worker stops."""
        if self._client is not None:
            await self._client.aclose()
