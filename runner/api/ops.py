"""Operations endpoints: ``/health`` (liveness), ``/ready`` (readiness for probes) and ``/metrics`` (Prometheus).

``/health`` and ``/ready`` need no credentials, since probes carry none; the API port may be reachable from the
public network, so they tell nothing beyond the names of missing components. ``/metrics`` is behind the
frontend's basic authentication like every other route.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal, Protocol

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from runner.api.auth import require_frontend
from runner.api.openapi import answers
from runner.etcd import ETCD_ERRORS
from runner.metrics import RunnerMetrics

ETCD_TIMEOUT = 1.0  # seconds /ready waits for etcd: a probe must answer well within its own timeout
Component = Literal["etcd", "leader", "command-nodes", "gateways"]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready"] = "ready"


class NotReady(BaseModel):
    status: Literal["not ready"] = "not ready"
    missing: list[Component] = Field(description="what is missing, in this order; nothing else is told")


class LeaderView(Protocol):
    @property
    def is_leader(self) -> bool: ...

    async def holder(self) -> str | None: ...


class CountsUp(Protocol):
    def up(self) -> int: ...


async def missing_components(leadership: LeaderView, nodes: CountsUp, gateways: CountsUp) -> list[Component]:
    """What keeps this runner from serving: ``etcd``, ``leader``, ``command-nodes``, ``gateways`` (in that order)."""
    missing: list[Component] = []
    holder: str | None = None
    try:
        async with asyncio.timeout(ETCD_TIMEOUT):
            holder = await leadership.holder()  # one small read: answers whether etcd does, and who leads
    except ETCD_ERRORS:
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
    missing: Callable[[], Awaitable[list[Component]]]


async def get_ops(request: Request) -> Ops:  # async: no thread-pool hop per request
    ops: Ops = request.app.state.ops
    return ops


OpsDep = Annotated[Ops, Depends(get_ops)]
router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> Health:
    """Liveness: the process answers HTTP. No credentials, no I/O."""
    return Health()


@router.get(
    "/ready",
    response_model=Ready,
    responses={503: {"model": NotReady, "description": "Not ready: `missing` names the components"}},
)
async def ready(ops: OpsDep) -> JSONResponse:
    """Readiness (no credentials: for probes): etcd answers, the watchers' leader is known, a command node and a
    gateway are up."""
    missing = await ops.missing()
    if missing:
        return JSONResponse(NotReady(missing=missing).model_dump(), status_code=503)
    return JSONResponse(Ready().model_dump())


@router.get(
    "/metrics",
    dependencies=[Depends(require_frontend)],
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
        **answers("GET /metrics"),
    },
)
async def metrics(ops: OpsDep) -> Response:
    """The runner's metrics in Prometheus text format (basic authentication, as for every API route)."""
    return Response(await ops.metrics.render(), media_type=CONTENT_TYPE_LATEST)
