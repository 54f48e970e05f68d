"""The API's JSON shapes, with bwVisu's hyphenated field names; kept apart from the stored records.

Request fields are checked here, before any service call, by the same rules :mod:`runner.templates` applies,
so a bad request gets a 422 that names the field (``uid``, ``template-name``, ``variables.<name>``) and the rule.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from runner.records import JobRecord, JobState
from runner.templates import session_url, template_name_problem, variable_name_problem, variable_value_problem
from runner.users import user_name_problem


def _rule(code: str, problem: str | None, value: str) -> str:
    if problem is not None:
        raise PydanticCustomError(code, "{problem}", {"problem": problem})
    return value


UserName = Annotated[str, AfterValidator(lambda v: _rule("invalid-user", user_name_problem(v), v))]
TemplateName = Annotated[str, AfterValidator(lambda v: _rule("invalid-template-name", template_name_problem(v), v))]
VariableName = Annotated[str, AfterValidator(lambda v: _rule("invalid-variable", variable_name_problem(v), v))]
VariableValue = Annotated[str, AfterValidator(lambda v: _rule("invalid-variable", variable_value_problem(v), v))]


class _Wire(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)


class SubmitRequest(_Wire):
    """``POST /jobs``: who, which template, and the template's variables (strings only)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    uid: UserName = Field(examples=["alice"])
    template_name: TemplateName = Field(alias="template-name", examples=["template_xpra.txt"])
    variables: dict[VariableName, VariableValue] = Field(
        examples=[
            {
                "expected_runtime_in_minutes": "15",
                "number_of_nodes": "1",
                "tasks_per_node": "1",
                "image_name": "ubuntu_nemo.simg",
            }
        ]
    )


class SubmitResponse(_Wire):
    job_id: str = Field(alias="job-id")


class Message(_Wire):
    response: str


class ErrorResponse(_Wire):
    """Every error: the public message and a stable code."""

    response: str
    error: str


class Service(_Wire):
    """Where the user connects: bwVisu's three fields, plus (beyond bwVisu) the session's password and URL."""

    internal_port: int = Field(alias="internal-port")
    external_port: int = Field(alias="external-port")
    external_ip: str = Field(alias="external-ip")
    password: str | None = Field(
        default=None, description="the job's session secret, which its application asks for; null once finished"
    )
    url: str | None = Field(
        default=None,
        description="what a browser opens to land in the session (password included); null if the template "
        "declares no session URL or the job has finished",
    )


class BatchScript(_Wire):
    template_name: str = Field(alias="template-name")
    variables: dict[str, str]


# SPEC: services are filled while available and may keep their last values once finished.
_SERVICE_STATES = {JobState.AVAILABLE, JobState.FINISHED}


class JobResponse(_Wire):
    """``GET /jobs/<id>``."""

    job_id: str = Field(alias="job-id")
    batch_script: BatchScript = Field(alias="batch-script")
    services: list[Service]
    state: JobState
    uid: str
    details: dict[str, str]

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
            details=dict(record.details),
        )


class JobList(_Wire):
    jobs: list[str]


class TemplateInfo(_Wire):
    name: str
    variables: list[str]
    keyhole_ports: int | None = Field(alias="keyhole-ports")
    session_secret: bool = Field(
        alias="session-secret",
        description="the template's application admits only the holder of the job's session secret "
        "(the template has a #KEYHOLE-SESSION-URL line)",
    )


class TemplateList(_Wire):
    templates: list[TemplateInfo]
