"""Waiting in tests for something observable: poll a check until it holds, within a bound.

One helper for every test, so that a wait says what it waits for and how long at most, and a
test that waits too long fails with the check's name instead of hanging or sleeping blindly."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(
    check: Callable[[], Awaitable[Any]] | Callable[[], Any],
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
) -> Any:
    """Poll ``check`` every ``interval`` seconds until it returns something truthy, and return
    that; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {getattr(check, '__name__', check)}")
        await asyncio.sleep(interval)


def wait_until(
    check: Callable[[], Any],
    *,
    timeout: float = 20.0,
    interval: float = 0.05,
    context: Callable[[], object] | None = None,
) -> Any:
    """:func:`eventually` for tests that are not coroutines (a thread, a process, a log line):
    poll ``check`` until it returns something truthy and return that; fail after ``timeout``
    seconds, with what ``context`` gives (a process's log). A check may itself assert (a process
    that died while waited for)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            said = f"\n{context()}" if context else ""
            raise AssertionError(
                f"not within {timeout}s: {getattr(check, '__name__', check)}{said}"
            )
        time.sleep(interval)
