"""The runner's one error tree.

Every error the runner raises on purpose derives from :class:`RunnerError` and carries a stable ``code``,
the HTTP ``status`` the API (or the keyhole endpoint) answers with, a ``public`` message safe to show to the web
frontend (and so to a user), and an optional ``internal`` message that is only logged. One API handler
(:mod:`runner.api.errors`) and the keyhole endpoint (:mod:`runner.keyhole.http`) render them.

Exceptions from outside are mapped where they enter: asyncssh's in :mod:`runner.ssh` (to the transport errors
below), Slurm's answers in :mod:`runner.slurm.cluster`, etcd's and grpc's by :func:`runner.etcd.mapped`, the HTTP
layer's in :mod:`runner.api.errors`. The transport errors and :class:`SlurmParseError` never leave the runner:
the code that calls a node turns them into one of the 5xx errors. :data:`ROUTES` lists what each route can answer.

The in-job client (:mod:`runner.keyhole.client`) has its own ``KeyholeFailure``: it runs in the job, with
Python's standard library only, and imports nothing of the runner.
"""

from __future__ import annotations

import shlex
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


class KeyholeTemplateError(TemplateError):
    """The template's keyhole line is malformed, repeated or asks for too many ports."""

    code = "keyhole-template-error"
    default_public = "invalid #KEYHOLE-REQUEST-PORTS line in the template"


class HostlistError(BadRequest):
    """A hostlist (or a host name to compress) is malformed or too large."""

    code = "invalid-hostlist"
    default_public = "invalid hostlist"


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


class TooManyJobs(TooManyRequests):
    """The user has as many unfinished jobs as ``max-jobs-per-user`` allows; a job that ends frees a place."""

    code = "too-many-jobs"
    default_public = "too many unfinished jobs for this user"


# --- 4xx of the keyhole endpoint: a job's request for its ports is refused ---------------------------


class MalformedRequest(BadRequest):
    """The body is not a well-formed keyhole request."""

    code = "malformed-request"
    status = 400
    default_public = "malformed keyhole request"


class RequestTooLarge(BadRequest):
    """The body is over :data:`MAX_REQUEST_BYTES`; refused before anything parses it."""

    code = "payload-too-large"
    status = 413
    default_public = "keyhole request body too large"


class BadSignature(Forbidden):
    """The HMAC does not match the job's token."""

    code = "bad-signature"
    default_public = "keyhole request signature is invalid"


class StaleRequest(Forbidden):
    """The timestamp lies outside the accepted window (a replay, or a badly wrong clock)."""

    code = "stale-request"
    default_public = "keyhole request is too old or from the future"


class TooManyPorts(BadRequest):
    code = "too-many-ports"
    default_public = "the job asks for more ports than allowed"


class UnresolvableHost(BadRequest):
    code = "unresolvable-host"
    default_public = "a host of the job cannot be resolved on the gateway"


class SecondRequest(Conflict):
    code = "already-asked"
    default_public = "this job has already asked for its ports; a job may ask only once"


class ReplayedRequest(Conflict):
    code = "replayed-request"
    default_public = "this keyhole request was already used"


class JobNotRunning(Conflict):
    code = "job-not-running"
    default_public = "the job is not running"


class HostsNotAllocated(Forbidden):
    code = "hosts-not-allocated"
    default_public = "the request names hosts that Slurm did not allocate to this job"


class TargetOutsideNetworks(Forbidden):
    code = "target-outside-compute-networks"
    default_public = "a node of the job resolves to an address outside the compute networks"


class TooManyRefusals(TooManyRequests):
    code = "too-many-refusals"
    default_public = "this job's keyhole requests were refused too often; wait before asking again"


# --- 5xx: the cluster or the runner's own state failed ----------------------------------------------


class ClusterUnavailable(RunnerError):
    """No command node (or gateway) could be reached."""

    code = "cluster-unavailable"
    status = 503
    default_public = "the cluster cannot be reached right now"


class SchedulerUnavailable(ClusterUnavailable):
    """Slurm gave no usable answer: the controller is down, no command node answered, or its output was unreadable."""

    code = "scheduler-unavailable"
    default_public = "the scheduler cannot be reached right now"


class GatewayUnavailable(ClusterUnavailable):
    code = "gateway-unavailable"
    default_public = "no gateway can be reached right now"


class GatewayCommandFailed(ClusterUnavailable):
    code = "gateway-command-failed"
    default_public = "a gateway could not set up the forward"


class GatewayOutputInvalid(GatewayCommandFailed):
    """A gateway answered with output the runner cannot read (e.g. counters missing from a rule listing)."""

    code = "gateway-output-invalid"
    default_public = "a gateway gave an answer the runner cannot read"


class ProbeTimedOut(ClusterUnavailable):
    """A bounded probe ran out of time on the gateway; the gateway answered, so it is not marked down."""

    code = "probe-timed-out"
    default_public = "the gateway could not check the ports in time"


class RequestInProgress(ClusterUnavailable):
    code = "request-in-progress"
    default_public = "the request is being handled; retry shortly"


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


class PortsExhausted(StateUnavailable):
    code = "ports-exhausted"
    default_public = "no free port is left in the keyhole port range"


class ConfigError(RunnerError):
    """The configuration is invalid; raised at start-up, never from a request."""

    code = "config-error"
    default_public = "invalid configuration"


class InvalidSettings(ConfigError):
    """The settings are invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"invalid configuration: {'; '.join(problems)}")


class PreflightFailed(InvalidSettings):
    """The settings are well formed but the runner could not work with them; one line per problem."""


# --- below the boundary: mapped to the errors above by the code that calls a node ------------------------


class TransportError(Exception):
    """A command could not be run to completion on a node."""

    def __init__(self, node: str, argv: list[str], reason: str) -> None:
        self.node = node
        self.argv = tuple(argv)
        self.reason = reason
        super().__init__(f"{node}: {shlex.join(argv[:4])}{' ...' if len(argv) > 4 else ''}: {reason}")


class NodeUnreachable(TransportError):
    """The node could not be reached; the command did not run."""


class CommandIndeterminate(TransportError):
    """The command was sent but no answer came back (timeout, dropped connection); it may have run."""


class SlurmParseError(ValueError):
    """Slurm printed something the runner does not understand."""


class CounterParseError(ValueError):
    """A line of the runner's accounting chain that does not read as a tagged rule with counters."""


# --- the operator commands' own failures (``runner check``, ``runner jobs``): printed, never answered ----------


class CheckFailed(Exception):
    """A check's negative answer, its text the row's detail."""


class AdminError(Exception):
    """What to print and the exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# --- what each route can answer ------------------------------------------------------------------------------

ANY_PATH: tuple[type[RunnerError], ...] = (NotFound, MethodNotAllowed)
"""Answered for any path of the REST API: no route there, or not with that method."""

_AUTHENTICATED = (Unauthorized, RunnerError)
_SCHEDULER = (SchedulerError, SchedulerUnavailable, StateUnavailable)
_USER = (InvalidUser, RefusedUser, UnknownUser, ClusterUnavailable, SchedulerUnavailable)

ROUTES: dict[str, tuple[type[RunnerError], ...]] = {
    "POST /jobs": (
        *_AUTHENTICATED,
        PayloadTooLarge,
        BadRequest,
        *_USER,
        InvalidTemplateName,
        UnknownTemplate,
        TemplateError,
        KeyholeTemplateError,
        InvalidVariable,
        TooManyJobs,
        *_SCHEDULER,
        SubmissionIndeterminate,
    ),
    "GET /jobs": (*_AUTHENTICATED, StateUnavailable),
    "GET /jobs/{job_id}": (*_AUTHENTICATED, BadRequest, NoSuchJob, StateUnavailable),
    "GET /jobs/{job_id}/events": (*_AUTHENTICATED, NoSuchJob, StateUnavailable),
    "DELETE /jobs/{job_id}": (*_AUTHENTICATED, PayloadTooLarge, NoSuchRunningJob, *_SCHEDULER),
    "GET /cluster/check-user/{username}": (*_AUTHENTICATED, InvalidUser, NoSuchUser, *_USER[3:]),
    "GET /templates": _AUTHENTICATED,
    "GET /metrics": _AUTHENTICATED,
    "GET /health": (RunnerError,),
    "GET /ready": (RunnerError,),  # not ready is a 503 of its own shape: ``{"missing": [...]}``
    "GET /openapi.json": (RunnerError,),
    "GET /docs": (RunnerError,),
    "GET /redoc": (RunnerError,),
    # The keyhole endpoint (its own listener; jobs sign their requests instead of sending credentials).
    "POST /keyhole/v1/forwards": (
        RunnerError,
        MalformedRequest,
        RequestTooLarge,
        BadSignature,
        StaleRequest,
        NoSuchRunningJob,
        TooManyRefusals,
        TooManyPorts,
        SecondRequest,
        ReplayedRequest,
        JobNotRunning,
        HostsNotAllocated,
        TargetOutsideNetworks,
        UnresolvableHost,
        RequestInProgress,
        SchedulerUnavailable,
        GatewayUnavailable,
        GatewayCommandFailed,
        ProbeTimedOut,
        ClusterUnavailable,
        PortsExhausted,
        StateUnavailable,
    ),
}
"""Every error each route can answer (``METHOD /path``, the path as its route declares it), besides
:data:`ANY_PATH`. The OpenAPI document's error responses are built from it (:mod:`runner.api.openapi`), and
``docs/errors.md`` is rendered from it."""


def route_table() -> str:
    """:data:`ROUTES` as a Markdown page: per route, each status and code with its public message."""
    lines = [
        "# Errors each route can answer",
        "",
        "<!-- Generated from runner/errors.py by `python -m runner config reference --write docs`; do not edit. -->",
        "",
        'Every error body is `{"response": <message>, "error": <code>}`; the message shown is the default one.',
        "Any path may also answer "
        + ", ".join(f"{kind.status} `{kind.code}`" for kind in ANY_PATH)
        + "; a malformed body is 422 `bad-request` (or the code of the field it names).",
        "",
    ]
    for route, kinds in ROUTES.items():
        lines += [f"## `{route}`", "", "| status | code | message |", "| --- | --- | --- |"]
        unique = sorted(set(kinds), key=lambda k: (k.status, k.code))
        lines += [f"| {kind.status} | `{kind.code}` | {kind.default_public} |" for kind in unique]
        lines.append("")
    return "\n".join(lines)
