"""``/cluster``: questions about the cluster itself (does a user exist there)."""

from __future__ import annotations

from fastapi import APIRouter

from runner.api.deps import ServiceDep
from runner.api.schemas import ErrorResponse, Message
from runner.errors import InvalidUser, NoSuchUser
from runner.users import user_name_problem

router = APIRouter(prefix="/cluster", tags=["cluster"])


@router.get("/check-user/{username}", responses={c: {"model": ErrorResponse} for c in (401, 404, 422, 500, 502, 503)})
async def check_user(username: str, service: ServiceDep) -> Message:
    """``success`` if the user exists on the cluster; 404 otherwise."""
    if (problem := user_name_problem(username)) is not None:
        raise InvalidUser(f"username: {problem}")
    if not await service.check_user(username):
        raise NoSuchUser(internal=f"user {username!r} not found on the cluster")
    return Message(response="success")
