"""The API's JSON shapes, with bwVisu's hyphenated field names; kept apart from the stored records.

Request fields are checked here, before any service call, by the same rules :mod:`runner.templates` applies,
so a bad request gets a 422 that names the field (``uid``, ``template-name``, ``variables.<name>``) and the rule.
The rules are stated in the schema as well (the ``*_PATTERN`` constants, which a unit test holds to the rule
functions), so a client built from the OpenAPI document sends only what the API accepts; the patterns document,
and the rule functions decide, so a refusal's message is the same whichever way a request arrives.
"""

from __future__ import annotations

from typing import Annotated, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from runner.records import JOB_ID, JobRecord, JobState
from runner.templates import (
    NAME_MAX_LENGTH,
    VALUE_MAX_LENGTH,
    session_url,
    template_name_problem,
    variable_name_problem,
    variable_value_problem,
)
from runner.users import user_name_problem

# ECMA-262 and Python read these alike; each is the rule of the function named beside it, stated for clients.
USER_NAME_PATTERN = "^[a-z_][a-z0-9_-]{0,31}$"  # users.user_name_problem
VARIABLE_NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_]{0,63}$"  # templates.variable_name_problem
# templates.variable_value_problem: the SPEC's characters, no '..' path segment, no leading '-'
VARIABLE_VALUE_PATTERN = f"^(?!-)(?!(?:[^/]*/)*\\.\\.(?:/|$))[A-Za-z0-9./_-]{{0,{VALUE_MAX_LENGTH}}}$"
# templates.template_name_problem allows any printable character but '/' and '\\'; the schema states the ASCII
# part of that (the document of a running runner lists the names of its templates instead, runner/api/openapi.py).
TEMPLATE_NAME_PATTERN = f"^(?!\\.\\.?$)[ -.0-\\[\\]-~]{{1,{NAME_MAX_LENGTH}}}$"
JOB_ID_PATTERN = f"^{JOB_ID.pattern}$"


def _rule(code: str, problem: str | None, value: str) -> str:
    if problem is not None:
        raise PydanticCustomError(code, "{problem}", {"problem": problem})
    return value


UserName = Annotated[
    str,
    AfterValidator(lambda v: _rule("invalid-user", user_name_problem(v), v)),
    Field(json_schema_extra={"pattern": USER_NAME_PATTERN, "maxLength": 32}),
]
TemplateName = Annotated[
    str,
    AfterValidator(lambda v: _rule("invalid-template-name", template_name_problem(v), v)),
    Field(json_schema_extra={"pattern": TEMPLATE_NAME_PATTERN, "minLength": 1, "maxLength": NAME_MAX_LENGTH}),
]
VariableName = Annotated[str, AfterValidator(lambda v: _rule("invalid-variable", variable_name_problem(v), v))]
VariableValue = Annotated[str, AfterValidator(lambda v: _rule("invalid-variable", variable_value_problem(v), v))]

VARIABLES_SCHEMA = {
    "type": "object",
    "description": "the template's variables, each a string; every variable the template uses must be given "
    "(GET /templates lists them), others are allowed and unused",
    "propertyNames": {"type": "string", "pattern": VARIABLE_NAME_PATTERN, "maxLength": 64},
    "additionalProperties": {
        "type": "string",
        "pattern": VARIABLE_VALUE_PATTERN,
        "maxLength": VALUE_MAX_LENGTH,
        "description": "only ASCII letters, digits, '.', '/', '-' and '_'; no '..' path segment; not starting with '-'",
    },
    "examples": [
        {
            "expected_runtime_in_minutes": "15",
            "number_of_nodes": "1",
            "tasks_per_node": "1",
            "image_name": "ubuntu_nemo.simg",
        }
    ],
}


class _Wire(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)


class SubmitRequest(_Wire):
    """``POST /jobs``: who, which template, and the template's variables (strings only)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    uid: UserName = Field(
        description="the cluster user the job runs as: a POSIX user name of an ordinary account (not root, "
        "not a system account, not the runner's own)",
        examples=["alice"],
    )
    template_name: TemplateName = Field(
        alias="template-name",
        description="a batch-script template of the runner (GET /templates lists them); no '/', '\\' or control "
        "characters, not '.' or '..'",
        examples=["template_xpra.txt"],
    )
    variables: Annotated[dict[VariableName, VariableValue], WithJsonSchema(VARIABLES_SCHEMA)]


class SubmitResponse(_Wire):
    """``POST /jobs``: the job was accepted by Slurm."""

    job_id: str = Field(
        alias="job-id",
        description="the runner's own id of the job (not Slurm's), for GET and DELETE /jobs/{job_id}",
        examples=["3f2c9a7e5b1d4c6f8a0e2b4d6f8a0c1e"],
    )


class Message(_Wire):
    """A plain answer."""

    response: str = Field(description="what happened", examples=["success"])


class ErrorResponse(_Wire):
    """Every error: the public message and a stable code (each route lists the codes it may answer)."""

    response: str = Field(
        description="what went wrong, for a person; safe to show to the user (never internal details)",
        examples=["uid: must be a POSIX user name: [a-z_][a-z0-9_-]{0,31}"],
    )
    error: str = Field(description="a stable code to branch on; it never changes wording", examples=["invalid-user"])


class Service(_Wire):
    """Where the user connects: bwVisu's three fields, plus (beyond bwVisu) the session's password and URL."""

    internal_port: int = Field(
        alias="internal-port",
        description="the port the job's application listens on, on its compute node",
        examples=[5900],
    )
    external_port: int = Field(
        alias="external-port", description="the gateway's public port forwarded to it", examples=[30001]
    )
    external_ip: str = Field(
        alias="external-ip", description="the gateway's public address the user connects to", examples=["192.0.2.10"]
    )
    password: str | None = Field(
        default=None,
        description="the job's session secret, which its application asks for; null once finished",
        examples=["pW3xq0m1v8Zr2kT9Yb6nLc4Hs7Jd5Fa"],
    )
    url: str | None = Field(
        default=None,
        description="what a browser opens to land in the session (password included); null if the template "
        "declares no session URL or the job has finished",
        examples=["http://192.0.2.10:30001/?password=pW3xq0m1v8Zr2kT9Yb6nLc4Hs7Jd5Fa"],
    )


class BatchScript(_Wire):
    """What the job was submitted with."""

    template_name: str = Field(alias="template-name", description="the template", examples=["template_xpra.txt"])
    variables: dict[str, str] = Field(
        description="the variables, as submitted", examples=[{"image_name": "ubuntu_nemo.simg"}]
    )


# Everything the runner writes into a job's details: squeue's fields while Slurm knows the job, sacct's once it
# left the queue, and the runner's own notes. Every value is a string; a key is there only once it is known.
JobDetails = TypedDict(
    "JobDetails",
    {
        "slurm-job-id": Annotated[
            str, Field(description="Slurm's id of the job (from sbatch, then squeue and sacct)", examples=["4711"])
        ],
        "slurm-state": Annotated[
            str, Field(description="Slurm's state (squeue %T, or sacct's State first word)", examples=["RUNNING"])
        ],
        "reason": Annotated[str, Field(description="why the job waits or ended (squeue %r)", examples=["None"])],
        "job-name": Annotated[
            str, Field(description="the Slurm job name: bwvisu- and the runner's job id", examples=["bwvisu-3f2c9a7e"])
        ],
        "user": Annotated[str, Field(description="the user the job runs as (squeue %u)", examples=["alice"])],
        "partition": Annotated[str, Field(description="the Slurm partition (squeue %P)", examples=["visu"])],
        "nodes": Annotated[str, Field(description="how many nodes (squeue %D)", examples=["1"])],
        "node-list": Annotated[
            str,
            Field(description="the nodes, in Slurm's hostlist form (squeue %N, sacct NodeList)", examples=["c[1-2]"]),
        ],
        "time-limit": Annotated[str, Field(description="the time limit (squeue %l)", examples=["1:00:00"])],
        "submit-time": Annotated[
            str, Field(description="when Slurm accepted the job (squeue %V)", examples=["2026-12-03T11:37:14"])
        ],
        "start-time": Annotated[
            str,
            Field(
                description="when the job started or is expected to (squeue %S, sacct Start)",
                examples=["2026-12-03T11:37:15"],
            ),
        ],
        "end-time": Annotated[
            str, Field(description="when the job ended (sacct End)", examples=["2026-12-03T11:52:15"])
        ],
        "elapsed": Annotated[str, Field(description="how long the job ran (sacct Elapsed)", examples=["00:15:00"])],
        "exit-code": Annotated[str, Field(description="exit status and signal (sacct ExitCode)", examples=["0:0"])],
        "end-reason": Annotated[
            str,
            Field(
                description="how the job ended (sacct State), or why nothing is known of it",
                examples=["CANCELLED by 2001"],
            ),
        ],
        "submission-error": Annotated[
            str,
            Field(
                description="why Slurm never accepted the job (the job is finished)",
                examples=["the scheduler rejected the request"],
            ),
        ],
        "scheduler-state": Annotated[
            str,
            Field(
                description="present while the scheduler cannot be asked: the state shown may be stale",
                examples=["unknown: the scheduler could not be asked"],
            ),
        ],
        "keyhole-health": Annotated[
            str,
            Field(
                description="present while no forwarded port of an available job answers",
                examples=["no forwarded port answers right now"],
            ),
        ],
    },
    total=False,
)
# Keys beyond these (from a later runner) pass through unchanged: the wire keeps whatever the record holds.
JobDetails.__pydantic_config__ = ConfigDict(  # type: ignore[attr-defined]
    extra="allow", json_schema_extra={"additionalProperties": {"type": "string"}}
)


# SPEC: services are filled while available and may keep their last values once finished.
_SERVICE_STATES = {JobState.AVAILABLE, JobState.FINISHED}


class JobResponse(_Wire):
    """``GET /jobs/{job_id}``."""

    job_id: str = Field(
        alias="job-id", description="the runner's id of the job", examples=["3f2c9a7e5b1d4c6f8a0e2b4d6f8a0c1e"]
    )
    batch_script: BatchScript = Field(alias="batch-script", description="what the job was submitted with")
    services: list[Service] = Field(
        description="where to connect: filled once the job is available (may keep its last values once finished), "
        "empty before"
    )
    state: JobState = Field(
        description="submitted (queued), running (started, not yet connectable), available (its ports accept "
        "connections), completing (about to end, e.g. after cancel), finished",
        examples=["available"],
    )
    uid: str = Field(description="the user the job runs as", examples=["alice"])
    details: JobDetails = Field(
        description="everything Slurm reports about the job (guaranteed while running or available), and the "
        "runner's notes; every value a string, every key present only once known",
        examples=[{"slurm-job-id": "4711", "slurm-state": "RUNNING", "node-list": "c1", "user": "alice"}],
    )

    @classmethod
    def from_record(cls, record: JobRecord, session_secret: str | None = None) -> JobResponse:
        services = [
            Service(
                internal_port=f.internal_port,
                external_port=f.external_port,
                external_ip=f.external_ip,
                password=session_secret,
                url=(
                    session_url(record.session_url, host=f.external_ip, port=f.external_port, password=session_secret)
                    if record.session_url and session_secret
                    else None
                ),
            )
            for f in record.forwards
        ]
        return cls(
            job_id=record.job_id,
            batch_script=BatchScript(template_name=record.template_name, variables=dict(record.variables)),
            services=services if record.state in _SERVICE_STATES else [],
            state=record.state,
            uid=record.uid,
            details=cast("JobDetails", dict(record.details)),
        )


class JobList(_Wire):
    """``GET /jobs``."""

    jobs: list[str] = Field(
        description="the ids of the jobs that have not finished", examples=[["3f2c9a7e5b1d4c6f8a0e2b4d6f8a0c1e"]]
    )


class TemplateInfo(_Wire):
    """One usable template."""

    name: str = Field(description="its name, for template-name in POST /jobs", examples=["template_xpra.txt"])
    variables: list[str] = Field(
        description="the variables it uses, in order of first use; POST /jobs must give each",
        examples=[["expected_runtime_in_minutes", "number_of_nodes", "tasks_per_node", "image_name"]],
    )
    keyhole_ports: int | None = Field(
        alias="keyhole-ports",
        description="how many ports the job asks the runner to forward (#KEYHOLE-REQUEST-PORTS N); null if none",
        examples=[1],
    )
    session_secret: bool = Field(
        alias="session-secret",
        description="the template's application admits only the holder of the job's session secret "
        "(the template has a #KEYHOLE-SESSION-URL line)",
        examples=[True],
    )


class TemplateList(_Wire):
    """``GET /templates``."""

    templates: list[TemplateInfo] = Field(description="every usable template, sorted by name")
