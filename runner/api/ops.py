"""Operations endpoints: ``/health`` (liveness), ``/ready`` (readiness for probes) and ``/metrics`` (Prometheus).

``/health`` and ``/ready`` need no credentials, since probes carry none; the API port may be reachable from the
public network, so they tell nothing beyond the names of missing components. ``/metrics`` is behind the
frontend's basic authentication like every other route.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from runner.api.auth import require_frontend
from runner.metrics import RunnerMetrics
from runner.state import _ETCD_ERRORS

ETCD_TIMEOUT = 1.0  # seconds /ready waits for etcd: a probe must answer well within its own timeout


class LeaderView(Protocol):
    @property
    def is_leader(self) -> bool: ...

    async def holder(self) -> str | None: ...


class CountsUp(Protocol):
    def up(self) -> int: ...


async def missing_components(leadership: LeaderView, nodes: CountsUp, gateways: CountsUp) -> list[str]:
    """What keeps this runner from serving: ``etcd``, ``leader``, ``command-nodes``, ``gateways`` (in that order)."""
    missing: list[str] = []
    holder: str | None = None
    try:
        async with asyncio.timeout(ETCD_TIMEOUT):
            holder = await leadership.holder()  # one small read: answers whether etcd does, and who leads
    except _ETCD_ERRORS:
        missing.append("etcd")
    if holder is None and not leadership.is_leader:
        missing.append("leader")
    if nodes.up() < 1:
        missing.append("command-nodes")
    if gateways.up() < 1:
        missing.append("gateways")
    return missing


@dataclass(frozen=True)
class Ops:
    """What the operations routes serve from; stored on ``app.state.ops``."""

    metrics: RunnerMetrics
    missing: Callable[[], Awaitable[list[str]]]


def get_ops(request: Request) -> Ops:
    ops: Ops = request.app.state.ops
    return ops


OpsDep = Annotated[Ops, Depends(get_ops)]
router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers HTTP. No credentials, no I/O."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "not ready: `missing` names the components"}})
async def ready(ops: OpsDep) -> JSONResponse:
    """Readiness: etcd answers, the watchers' leader is known, a command node and a gateway are up."""
    missing = await ops.missing()
    if missing:
        return JSONResponse({"status": "not ready", "missing": missing}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get(
    "/metrics",
    dependencies=[Depends(require_frontend)],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
)
async def metrics(ops: OpsDep) -> Response:
    """The runner's metrics in Prometheus text format (basic authentication, as for every API route)."""
    return Response(await ops.metrics.render(), media_type=CONTENT_TYPE_LATEST)
