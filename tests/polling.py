"""Waiting for a condition in tests: poll it until it holds, and fail naming what never happened.

Tests wait for conditions with a generous bound, never for fixed sleeps; these are the project's two ways."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout: float, message: str, *, interval: float = 0.05
) -> None:
    """Await ``predicate`` every ``interval`` seconds until it is true; fail with ``message`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{message} (not within {timeout}s)")
        await asyncio.sleep(interval)


async def eventually(
    probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], timeout: float, what: str, *, interval: float = 0.2
) -> T:
    """Await ``probe`` until ``check`` accepts its answer and return it; fail with the last answer after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if check(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s; last answer {value!r}")
        await asyncio.sleep(interval)
