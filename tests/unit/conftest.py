"""Fixtures for the API's unit tests: an in-memory job service and an HTTP client for an app built on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.unit.api_support import FakeJobService, client_for, make_app


@pytest.fixture
def service() -> FakeJobService:
    return FakeJobService()


@pytest.fixture
async def client(service: FakeJobService) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_app(service)) as c:
        yield c
