"""Request-scoped dependencies: the collaborators :func:`runner.api.create_app` was given, as ``Annotated`` types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from runner.config import Settings
from runner.service import JobService
from runner.templates import TemplateStore


@dataclass(frozen=True)
class ApiContext:
    """What one API app serves from; stored on ``app.state.runner``."""

    service: JobService
    templates: TemplateStore
    settings: Settings


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.runner
    return context


# ``async def``, though they never wait: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
# hop per dependency per request (measured: a tenth of a millisecond or more each on a busy runner).
async def get_service(request: Request) -> JobService:
    return _context(request).service


async def get_templates(request: Request) -> TemplateStore:
    return _context(request).templates


async def get_settings(request: Request) -> Settings:
    return _context(request).settings


ServiceDep = Annotated[JobService, Depends(get_service)]
TemplatesDep = Annotated[TemplateStore, Depends(get_templates)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
