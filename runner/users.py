"""The rule for user names the runner passes to the cluster (``sudo -n -u <uid>``, ``getent passwd``).

Shared by the API's request schemas and the job service, so a name is judged the same way everywhere.
"""

from __future__ import annotations

import re

from runner.errors import InvalidUser

_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
USER_NAME_RULE = "must be a POSIX user name: [a-z_][a-z0-9_-]{0,31}"


def user_name_problem(name: str) -> str | None:
    """Why ``name`` is not a user name the runner passes to the cluster, or None."""
    return None if _USER_NAME.fullmatch(name) else USER_NAME_RULE


def check_user_name(name: str, field: str = "uid") -> str:
    """``name``, or InvalidUser naming the field: nothing else reaches a command node."""
    problem = user_name_problem(name)
    if problem is not None:
        raise InvalidUser(f"{field}: {problem}")
    return name
