"""HTTP basic authentication of the web frontend (one configured user), compared in constant time."""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from runner.api.deps import SettingsDep
from runner.errors import Unauthorized

logger = logging.getLogger(__name__)

REALM = "bwvisu-runner"
_basic = HTTPBasic(auto_error=False, realm=REALM, description="the web frontend's user (api.user / api.password)")


async def require_frontend(
    settings: SettingsDep, credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)]
) -> str:
    """The authenticated user name; :class:`Unauthorized` otherwise (and always when no password is configured)."""
    if credentials is None:
        raise Unauthorized(internal="no basic credentials")
    expected_password = settings.api.password.get_secret_value()
    # Both comparisons always run, so timing tells nothing about which part was wrong.
    user_ok = secrets.compare_digest(credentials.username.encode(), settings.api.user.encode())
    password_ok = secrets.compare_digest(credentials.password.encode(), expected_password.encode())
    if not (user_ok and password_ok and expected_password):
        raise Unauthorized(internal=f"bad credentials for user {credentials.username[:64]!r}")
    return credentials.username
