"""``/jobs``: submit, list, show and cancel jobs; every answer comes from the job service's stored state."""

from __future__ import annotations

import re

from fastapi import APIRouter

from runner.api.deps import ServiceDep, TemplatesDep
from runner.api.schemas import ErrorResponse, JobList, JobResponse, Message, SubmitRequest, SubmitResponse
from runner.errors import NoSuchJob, NoSuchRunningJob
from runner.records import JobState

router = APIRouter(prefix="/jobs", tags=["jobs"])

# Runner job ids are the runner's own; anything else cannot name a job and never reaches the service.
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (401, 404, 413, 422, 500, 502, 503)
}


def _known_shape(job_id: str) -> bool:
    return _JOB_ID.fullmatch(job_id) is not None


@router.post("", responses=_ERRORS)
async def submit_job(body: SubmitRequest, service: ServiceDep, templates: TemplatesDep) -> SubmitResponse:
    """Render the template with the variables and submit it to Slurm; answers once Slurm accepted the job."""
    templates.check(body.template_name, body.variables)
    job_id = await service.submit(body.uid, body.template_name, body.variables)
    return SubmitResponse(job_id=job_id)


@router.get("", responses=_ERRORS)
async def list_jobs(service: ServiceDep) -> JobList:
    """Ids of the jobs that have not finished."""
    return JobList(jobs=await service.list_active())


@router.get("/{job_id}", responses=_ERRORS)
async def get_job(job_id: str, service: ServiceDep) -> JobResponse:
    """The job's submission, state, Slurm details and (once available) where to connect, with the session's
    password and URL."""
    if not _known_shape(job_id):
        raise NoSuchJob(internal=f"malformed job id {job_id[:140]!r}")
    record = await service.get(job_id)
    secret = await service.session_secret(job_id) if record.state is JobState.AVAILABLE else None
    return JobResponse.from_record(record, secret)


@router.delete("/{job_id}", responses=_ERRORS)
async def cancel_job(job_id: str, service: ServiceDep) -> Message:
    """Cancel a job that has not finished (``scancel``)."""
    if not _known_shape(job_id):
        raise NoSuchRunningJob(internal=f"malformed job id {job_id[:140]!r}")
    await service.cancel(job_id)
    return Message(response="job cancelled")
