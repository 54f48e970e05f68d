"""The runner's one error tree.

Every error the runner raises on purpose derives from :class:`RunnerError` and carries a stable ``code``,
the HTTP ``status`` the API answers with, a ``public`` message safe to show to the web frontend (and so to a
user), and an optional ``internal`` message that is only logged. Exceptions from outside (asyncssh, grpc,
OS errors) are mapped to these at the boundary that sees them; one API handler renders them all.
"""

from __future__ import annotations

from typing import ClassVar


class RunnerError(Exception):
    """Base of every error the runner reports."""

    code: ClassVar[str] = "internal-error"
    status: ClassVar[int] = 500
    default_public: ClassVar[str] = "internal error"

    def __init__(self, public: str | None = None, *, internal: str | None = None) -> None:
        self.public = public or self.default_public
        self.internal = internal
        super().__init__(self.public if internal is None else f"{self.public} ({internal})")


# --- 4xx: the caller's request is wrong -------------------------------------------------------------


class BadRequest(RunnerError):
    code = "bad-request"
    status = 422
    default_public = "invalid request"


class InvalidVariable(BadRequest):
    code = "invalid-variable"


class InvalidTemplateName(BadRequest):
    code = "invalid-template-name"


class UnknownTemplate(BadRequest):
    code = "unknown-template"


class TemplateError(BadRequest):
    """The template itself is unusable (bad mustache, misplaced keyhole line)."""

    code = "template-error"


class InvalidUser(BadRequest):
    code = "invalid-user"


class RefusedUser(InvalidUser):
    """A real account the runner never acts for: root, system accounts, the overflow account, its own."""

    code = "refused-user"


class UnknownUser(InvalidUser):
    """A job submitted for a name the cluster has no account for (``check-user`` answers NoSuchUser instead)."""

    code = "unknown-user"
    default_public = "no such user on the cluster"


class Unauthorized(RunnerError):
    code = "unauthorized"
    status = 401
    default_public = "authentication required"


class Forbidden(RunnerError):
    code = "forbidden"
    status = 403
    default_public = "forbidden"


class NoSuchJob(RunnerError):
    code = "no-such-job"
    status = 404
    default_public = "no such job"


class NoSuchRunningJob(RunnerError):
    code = "no-such-running-job"
    status = 404
    default_public = "no such running job"


class NoSuchUser(RunnerError):
    code = "no-such-user"
    status = 404
    default_public = "no such user"


class NotFound(RunnerError):
    """No route at that path (answered by the API's HTTP layer)."""

    code = "not-found"
    status = 404
    default_public = "not found"


class MethodNotAllowed(RunnerError):
    """The path exists but not with that method; the answer's ``Allow`` header lists the methods it has."""

    code = "method-not-allowed"
    status = 405
    default_public = "method not allowed"


class PayloadTooLarge(RunnerError):
    """The request body is over the API's cap; refused before anything parses it."""

    code = "payload-too-large"
    status = 413
    default_public = "request body too large"


class Conflict(RunnerError):
    code = "conflict"
    status = 409
    default_public = "conflict"


class TooManyRequests(RunnerError):
    """The caller must wait ``retry_after`` seconds (sent as ``Retry-After``) before asking again."""

    code = "too-many-requests"
    status = 429
    default_public = "too many requests; retry later"

    def __init__(self, public: str | None = None, *, internal: str | None = None, retry_after: int = 1) -> None:
        super().__init__(public, internal=internal)
        self.retry_after = retry_after


# --- 5xx: the cluster or the runner's own state failed ----------------------------------------------


class ClusterUnavailable(RunnerError):
    """No command node (or gateway) could be reached."""

    code = "cluster-unavailable"
    status = 503
    default_public = "the cluster cannot be reached right now"


class SubmissionIndeterminate(ClusterUnavailable):
    """sbatch was sent but whether Slurm took the job is not known: no answer came twice, or an answer the runner
    cannot read. The job's record is kept: the watcher finds the job by its name, or ends the record once its
    grace has passed (:mod:`runner.watcher`)."""

    code = "submission-indeterminate"
    default_public = "the scheduler did not confirm the submission; the job is listed if it was accepted"


class SchedulerError(RunnerError):
    """Slurm answered with an error (e.g. sbatch rejected the job)."""

    code = "scheduler-error"
    status = 502
    default_public = "the scheduler rejected the request"


class StateUnavailable(RunnerError):
    """etcd could not be reached or a transaction failed."""

    code = "state-unavailable"
    status = 503
    default_public = "the runner's state store cannot be reached right now"


class ConfigError(RunnerError):
    """The configuration is invalid; raised at start-up, never from a request."""

    code = "config-error"
    default_public = "invalid configuration"
