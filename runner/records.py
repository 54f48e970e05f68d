"""Records the runner stores in etcd: a job's identity, desired and observed state, and its forwards.

These are storage models, kept apart from the API's JSON schemas (``runner/api/schemas.py``) so either can
change without the other.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""The shape of a runner job id (use ``fullmatch``): safe in an iptables comment, a shell word and a URL path.

The one definition the API, the keyhole protocol and script, and the gateway's rules check ids against.
"""


CANCEL_REASON = "cancel-reason"
"""Details key: why the runner itself cancelled the job (e.g. idle); the watcher adds it to ``end-reason``."""


class JobState(StrEnum):
    """bwVisu's job states, as the frontend sees them."""

    SUBMITTED = "submitted"
    RUNNING = "running"
    AVAILABLE = "available"
    COMPLETING = "completing"
    FINISHED = "finished"


class SubmitPhase(StrEnum):
    """How far submission got; saved before and after ``sbatch`` so a crash in between can be reconciled."""

    PENDING = "pending"  # record written, sbatch may or may not have run
    SUBMITTED = "submitted"  # Slurm id known
    FAILED = "failed"  # sbatch refused the job; the job is finished


class Forward(BaseModel):
    """One port forward: ``external_ip:external_port`` on a gateway to ``internal_ip:internal_port`` on a node.

    The runner's one forward type: a job's record holds them, a placed port reservation holds one
    (:class:`runner.keyhole.ports.PortRecord`), the keyhole service answers with them. Each wire has its one
    conversion: the stored JSON here (the SSH address is spelled ``gateway`` there, as records already in etcd
    have it), the job's answer in :func:`runner.keyhole.protocol.encode_forwards` and
    :func:`runner.keyhole.claims.answered`, the REST API's ``services`` in
    :meth:`runner.api.schemas.JobResponse.from_record`. The iptables rule written for it is
    :class:`runner.gateway.iptables.ForwardRule`.
    """

    model_config = ConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    internal_port: int
    external_port: int
    external_ip: str = Field(description="the gateway's public address users connect to")
    gateway_ssh_ip: str = Field(alias="gateway", description="the gateway's internal address the runner reaches by SSH")
    internal_ip: str = Field(description="the compute host the forward targets")
    reachable: bool = False


class JobRecord(BaseModel):
    """Everything the runner knows about one job; the source of truth for the API."""

    job_id: str
    uid: str
    template_name: str
    variables: dict[str, str]
    state: JobState = JobState.SUBMITTED
    submit_phase: SubmitPhase = SubmitPhase.PENDING
    slurm_id: str | None = None
    slurm_state: str | None = None
    scheduler_unknown: bool = Field(default=False, description="the last squeue failed; state may be stale")
    cancel_requested: bool = False
    details: dict[str, str] = Field(default_factory=dict)
    forwards: list[Forward] = Field(default_factory=list)
    session_url: str | None = Field(default=None, description="the template's session URL pattern, if it has one")
    quota_slot: int | None = Field(
        default=None,
        description="the user's place this job holds under max-jobs-per-user (runner.state)",
        exclude_if=lambda slot: slot is None,  # without a limit, the stored record keeps its earlier shape
    )
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)

    @property
    def active(self) -> bool:
        return self.state is not JobState.FINISHED


Change = Callable[[JobRecord], JobRecord | None]
"""A state transition applied by :meth:`runner.state.StateStore.update_job`; None leaves the record alone."""


def submitted_as(slurm_id: str) -> Change:
    """The job is known to Slurm under ``slurm_id`` (after sbatch, or found again by name)."""

    def change(record: JobRecord) -> JobRecord:
        record.slurm_id = slurm_id
        record.submit_phase = SubmitPhase.SUBMITTED
        record.details["slurm-job-id"] = slurm_id
        return record

    return change


def submission_failed(message: str) -> Change:
    """Slurm never accepted the job: it is finished, with the reason in its details."""

    def change(record: JobRecord) -> JobRecord:
        record.submit_phase = SubmitPhase.FAILED
        record.state = JobState.FINISHED
        record.details["submission-error"] = message
        return record

    return change
