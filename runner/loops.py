"""Named background loops owned by the app's lifespan: they log and survive every error but cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Loop:
    """Calls ``step`` every ``interval`` seconds, or sooner when :meth:`wake` is called.

    ``gate`` (e.g. leadership) is awaited before each step, so a follower waits without spinning. Steps start
    at least ``min_gap`` seconds apart however often :meth:`wake` is called, so a burst of wake-ups (one per
    submission) costs a few steps, not one each.
    """

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[object]],
        interval: float,
        gate: Callable[[], Awaitable[None]] | None = None,
        min_gap: float = 0.0,
    ) -> None:
        self.name = name
        self._step = step
        self._interval = interval
        self._gate = gate
        self._min_gap = min_gap
        self._wake = asyncio.Event()
        self.iterations = 0
        self.errors = 0
        self.on_step: Callable[[str, float], None] = lambda name, seconds: None  # (name, duration): the metrics

    def wake(self) -> None:
        """Run the next step now instead of at the end of the interval."""
        self._wake.set()

    @staticmethod
    def _check_cancelled() -> None:
        """Honour a cancellation that a library swallowed during the step (the task still counts it)."""
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError

    async def run(self) -> None:
        log.debug("loop %s: started (every %.2fs)", self.name, self._interval)
        while True:
            if self._gate is not None:
                await self._gate()
            self._check_cancelled()
            self._wake.clear()
            started = asyncio.get_running_loop().time()
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors += 1
                log.exception("loop %s: step failed; continuing", self.name)
            self.iterations += 1
            self.on_step(self.name, asyncio.get_running_loop().time() - started)
            self._check_cancelled()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            pause = started + self._min_gap - asyncio.get_running_loop().time()
            if pause > 0:
                await asyncio.sleep(pause)  # woken early: keep steps min_gap apart
