"""The API for notifier tests: recipients' webhooks are receivers on loopback."""

from collections.abc import AsyncIterator

import pytest

from tests.integration.conftest import RunningApi


@pytest.fixture
async def api(make_api) -> AsyncIterator[RunningApi]:
    async with make_api(webhook_allow_loopback=True) as running:
        yield running
