"""``/jobs``: submit, list, show and cancel jobs; every answer comes from the job service's stored state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse

from runner.api.deps import ServiceDep
from runner.api.openapi import answers
from runner.api.schemas import JOB_ID_PATTERN, JobList, JobResponse, Message, SubmitRequest, SubmitResponse
from runner.errors import NoSuchJob, NoSuchRunningJob
from runner.records import JOB_ID, JobRecord, JobState
from runner.service import JobService

router = APIRouter(prefix="/jobs", tags=["jobs"])

EVENT_STREAM = "text/event-stream"
KEEPALIVE = 30.0  # seconds of silence after which an event stream sends a comment line
DEFAULT_WAIT = 30.0
MAX_WAIT = 300.0

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


WaitFor = Annotated[
    JobState | None,
    Query(
        alias="wait-for",
        description="answer once the job is in this state (or finished), or at `timeout` with its state then",
    ),
]
WaitTimeout = Annotated[
    float, Query(gt=0, le=MAX_WAIT, description="seconds `wait-for` may wait at most", examples=[30])
]


async def _response(service: JobService, record: JobRecord) -> JobResponse:
    secret = await service.session_secret(record.job_id) if record.state is JobState.AVAILABLE else None
    return JobResponse.from_record(record, secret)


@router.get("/{job_id}", responses=answers("GET /jobs/{job_id}"))
async def get_job(
    job_id: JobId, service: ServiceDep, wait_for: WaitFor = None, timeout: WaitTimeout = DEFAULT_WAIT
) -> JobResponse:
    """The job's submission, state, Slurm details and (once available) where to connect, with the session's
    password and URL. With ``wait-for``, answered once the job reaches that state."""
    if not _known_shape(job_id):
        raise NoSuchJob(internal=f"malformed job id {job_id[:140]!r}")
    if wait_for is None:
        return await _response(service, await service.get(job_id))
    return await _response(service, await service.wait_for(job_id, wait_for, timeout))


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {EVENT_STREAM: {}}, "description": "Server-Sent Events: `event: job`, data as GET"},
        **answers("GET /jobs/{job_id}/events"),
    },
)
async def job_events(job_id: JobId, service: ServiceDep) -> StreamingResponse:
    """The job's state pushed as it changes (Server-Sent Events): first the job as GET /jobs/{job_id} shows it,
    then the same body each time it changes; the stream ends after ``finished``. A comment line is sent after
    every 30 s without a change (KEEPALIVE), so proxies keep the connection."""
    if not _known_shape(job_id):
        raise NoSuchJob(internal=f"malformed job id {job_id[:140]!r}")
    changes = service.changes(job_id, keepalive=KEEPALIVE)
    first = await anext(changes)  # an unknown job is a 404 here, before the stream starts

    async def stream() -> AsyncIterator[str]:
        last, record = "", first
        try:
            while True:
                if record is None:
                    yield ": keep-alive\n\n"
                else:
                    data = (await _response(service, record)).model_dump_json(by_alias=True)
                    if data != last:
                        last = data
                        yield f"event: job\ndata: {data}\n\n"
                    if record.state is JobState.FINISHED:
                        return
                try:
                    record = await anext(changes)
                except StopAsyncIteration:  # the job's record went away (not seen in practice)
                    return
        finally:
            await changes.aclose()

    return StreamingResponse(stream(), media_type=EVENT_STREAM, headers={"Cache-Control": "no-cache"})


@router.delete("/{job_id}", responses=answers("DELETE /jobs/{job_id}"))
async def cancel_job(job_id: JobId, service: ServiceDep) -> Message:
    """Cancel a job that has not finished (``scancel``)."""
    if not _known_shape(job_id):
        raise NoSuchRunningJob(internal=f"malformed job id {job_id[:140]!r}")
    await service.cancel(job_id)
    return Message(response="job cancelled")
