"""uvicorn really listening on 127.0.0.1 port 0, plain and with TLS (a self-signed certificate made here)."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from runner.config import ApiSettings
from runner.web.server import ApiServer
from tests.hostile_inputs import VALID_SUBMISSION
from tests.integration.tls_support import self_signed
from tests.unit.api_support import AUTH, FakeJobService, make_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


async def test_plain_http_on_port_zero() -> None:
    service = FakeJobService()
    async with ApiServer(make_app(service), ApiSettings(host="127.0.0.1", port=0)) as server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(base_url=server.url, headers=AUTH) as client:
            submitted = await client.post("/jobs", json=VALID_SUBMISSION)
            listed = await client.get("/jobs")
            unauthenticated = await client.get("/jobs", headers={"Authorization": ""})
    assert submitted.json() == {"job-id": "job-1"}
    assert listed.json() == {"jobs": ["job-1"]}
    assert unauthenticated.status_code == 401
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(f"{server.url}/jobs")


async def test_tls_with_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    settings = ApiSettings(host="127.0.0.1", port=0, tls_cert=cert, tls_key=key)
    async with ApiServer(make_app(FakeJobService()), settings) as server:
        assert server.url.startswith("https://127.0.0.1:")
        trusting = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(base_url=server.url, headers=AUTH, verify=trusting) as client:
            response = await client.get("/cluster/check-user/alice")
        assert response.json() == {"response": "success"}
        async with httpx.AsyncClient(base_url=server.url, headers=AUTH) as untrusting:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.get("/jobs")
        async with httpx.AsyncClient(base_url=server.url.replace("https", "http"), headers=AUTH) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get("/jobs")


async def test_port_in_use_is_reported() -> None:
    async with ApiServer(make_app(FakeJobService()), ApiSettings(host="127.0.0.1", port=0)) as server:
        with pytest.raises(OSError, match="in use"):
            ApiServer(make_app(FakeJobService()), ApiSettings(host="127.0.0.1", port=server.port))
