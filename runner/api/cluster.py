"""``/cluster``: questions about the cluster itself (does a user exist there)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from runner.api.deps import ServiceDep
from runner.api.openapi import answers
from runner.api.schemas import USER_NAME_PATTERN, Message
from runner.errors import InvalidUser, NoSuchUser
from runner.users import user_name_problem

router = APIRouter(prefix="/cluster", tags=["cluster"])


UserNameParam = Annotated[
    str,
    Path(
        description="a POSIX user name",
        json_schema_extra={"pattern": USER_NAME_PATTERN, "maxLength": 32},
        examples=["alice"],
    ),
]


@router.get("/check-user/{username}", responses=answers("GET /cluster/check-user/{username}"))
async def check_user(username: UserNameParam, service: ServiceDep) -> Message:
    """``success`` if the user exists on the cluster and jobs may run as them; 404 otherwise (also for root,
    system accounts and the runner's own)."""
    if (problem := user_name_problem(username)) is not None:
        raise InvalidUser(f"username: {problem}")
    if not await service.check_user(username):
        raise NoSuchUser(internal=f"user {username!r} not found on the cluster")
    return Message(response="success")
