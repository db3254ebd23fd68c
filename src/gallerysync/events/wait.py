"""Waiting on asyncio events with a timeout: the idle loops of job workers and followers."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["sleep_unless", "wait_any"]


async def wait_any(*events: asyncio.Event, timeout: float | None) -> None:
    """Return when one of `events` is set, or after `timeout` seconds (None: no limit)."""
    waiters = {asyncio.ensure_future(event.wait()) for event in events}
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less when `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
