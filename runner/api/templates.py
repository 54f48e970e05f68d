"""``/templates`` (beyond bwVisu v1): the template names and the variables each uses, to build a form from."""

from __future__ import annotations

import logging

from fastapi import APIRouter

from runner.api.deps import TemplatesDep
from runner.api.openapi import answers
from runner.api.schemas import TemplateInfo, TemplateList
from runner.errors import RunnerError

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/templates", tags=["templates"])


@router.get("", responses=answers("GET /templates"))
async def list_templates(templates: TemplatesDep) -> TemplateList:
    """Every usable template; a broken one is left out and logged."""
    infos: list[TemplateInfo] = []
    for name in templates.names():
        try:
            infos.append(
                TemplateInfo(
                    name=name,
                    variables=templates.variables(name),
                    keyhole_ports=templates.keyhole_request(name),
                    session_secret=templates.session_url(name) is not None,
                )
            )
        except RunnerError as exc:
            logger.warning("template %r left out of the list: %s", name, exc)
    return TemplateList(templates=infos)
