"""In-process fan-out: a committed write wakes every open change stream, without polling.

The catalog calls its commit listeners from whatever thread committed; `ChangeHub.publish`
hops onto the event loop and replaces one shared `asyncio.Event`, so each waiting stream wakes
once and then reads the new rows itself from its own cursor. The message is only "the head is
now N": the database stays the truth, and a stream that missed a wake-up heals at its next
heartbeat, which re-reads the head.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["ChangeHub"]


class ChangeHub:
    def __init__(self, loop: asyncio.AbstractEventLoop, head: int = 0) -> None:
        self._loop = loop
        self._event = asyncio.Event()
        self.head = head
        self.closed = False

    def publish(self, head: int) -> None:
        """Thread-safe: note a new head and wake every waiter."""
        self._loop.call_soon_threadsafe(self._advance, head)

    def close(self) -> None:
        """The server is stopping: wake every waiter for good, so open streams can end (a
        graceful shutdown waits for every open response)."""
        self.closed = True
        event, self._event = self._event, asyncio.Event()
        event.set()

    def _advance(self, head: int) -> None:
        if head <= self.head:
            return
        self.head = head
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_beyond(self, seq: int, timeout: float) -> bool:
        """Wait until the head passes `seq` or `timeout` elapses; True when it passed."""
        if self.head > seq or self.closed:
            return self.head > seq
        event = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        return self.head > seq
