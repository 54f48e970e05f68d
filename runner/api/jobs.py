"""``/jobs``: submit, list, show and cancel jobs; every answer comes from the job service's stored state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from runner.api.deps import ServiceDep
from runner.api.openapi import answers
from runner.api.schemas import JOB_ID_PATTERN, JobList, JobResponse, Message, SubmitRequest, SubmitResponse
from runner.errors import NoSuchJob, NoSuchRunningJob
from runner.records import JOB_ID, JobState

router = APIRouter(prefix="/jobs", tags=["jobs"])

# Runner job ids are the runner's own; anything else cannot name a job and never reaches the service.
JobId = Annotated[
    str,
    Path(
        description="the runner's id of the job (from POST /jobs); any other id names no job",
        json_schema_extra={"pattern": JOB_ID_PATTERN, "maxLength": 128},
        examples=["3f2c9a7e5b1d4c6f8a0e2b4d6f8a0c1e"],
    ),
]


def _known_shape(job_id: str) -> bool:
    return JOB_ID.fullmatch(job_id) is not None


@router.post("", responses=answers("POST /jobs"))
async def submit_job(body: SubmitRequest, service: ServiceDep) -> SubmitResponse:
    """Render the template with the variables and submit it to Slurm; answers once Slurm accepted the job."""
    # every check (user name, template, variables) is the job service's, so each refusal is counted once
    job_id = await service.submit(body.uid, body.template_name, body.variables)
    return SubmitResponse(job_id=job_id)


@router.get("", responses=answers("GET /jobs"))
async def list_jobs(service: ServiceDep) -> JobList:
    """Ids of the jobs that have not finished."""
    return JobList(jobs=await service.list_active())


@router.get("/{job_id}", responses=answers("GET /jobs/{job_id}"))
async def get_job(job_id: JobId, service: ServiceDep) -> JobResponse:
    """The job's submission, state, Slurm details and (once available) where to connect, with the session's
    password and URL."""
    if not _known_shape(job_id):
        raise NoSuchJob(internal=f"malformed job id {job_id[:140]!r}")
    record = await service.get(job_id)
    secret = await service.session_secret(job_id) if record.state is JobState.AVAILABLE else None
    return JobResponse.from_record(record, secret)


@router.delete("/{job_id}", responses=answers("DELETE /jobs/{job_id}"))
async def cancel_job(job_id: JobId, service: ServiceDep) -> Message:
    """Cancel a job that has not finished (``scancel``)."""
    if not _known_shape(job_id):
        raise NoSuchRunningJob(internal=f"malformed job id {job_id[:140]!r}")
    await service.cancel(job_id)
    return Message(response="job cancelled")
