"""A schema-driven tester (schemathesis) against the runner served over TCP on the simulated cluster and real etcd.

schemathesis runs as its own process (its ``st`` command), so its requests cross a real socket to uvicorn while
the runner, its watchers and the simulated cluster go on in this test's event loop. Its checks: no 5xx, every
status code and response body as the document declares, every request the schema allows accepted (positive
data), every request it forbids refused, and 405 answers with a correct ``Allow`` header. The example count is
bounded so the run stays well under a minute on two cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from runner.app import Runner
from runner.config import ApiSettings, Settings
from runner.web.server import ApiServer
from tests.integration.conftest import API_AUTH

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ST = Path(sys.executable).with_name("st")
ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = Path(__file__).parent / "templates"
# Templates whose every schema-valid submission Slurm accepts: the others pass values into #SBATCH options, where
# Slurm may refuse them (502 scheduler-error, as documented), which says nothing about the schema.
ACCEPTED_BY_SLURM = ("script.txt",)
CLUSTER_USERS = ("alice", "bob")  # simulator.testing's cluster
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "unsupported_method",
    "allow_header_conformance",
]
MAX_EXAMPLES = 30
RUN_SECONDS = 150  # about 10 s here; the bound only keeps a hung run from outliving the test
SEED = 20261203


@pytest.fixture
async def served(make_settings: Callable[..., Settings], tmp_path: Path) -> AsyncIterator[ApiServer]:
    templates = tmp_path / "templates"
    templates.mkdir()
    for name in ACCEPTED_BY_SLURM:
        shutil.copy(TEMPLATES / name, templates / name)
    (templates / "plain.txt").write_text("#!/bin/bash\n#SBATCH --time=1\necho no variables\n")
    async with (
        Runner(make_settings(templates_dir=str(templates))) as runner,
        ApiServer(runner.app, ApiSettings(host="127.0.0.1", port=0)) as server,
    ):
        yield server


async def run_schemathesis(server: ApiServer, report: Path, answers: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(ST),
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--auth",
        ":".join(API_AUTH),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--phases",
        "examples,coverage,fuzzing",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        "--generation-database",
        "none",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=report.parent,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks",
            "SCHEMATHESIS_TELEMETRY": "false",
            "BWVISU_ST_USERS": ",".join(CLUSTER_USERS),
            "BWVISU_ST_LOG": str(answers),
            "NO_COLOR": "1",
        },
    )
    try:
        async with asyncio.timeout(RUN_SECONDS):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:  # timed out or cancelled: never leave it running
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def test_schemathesis_finds_nothing_the_schema_allows_but_the_api_refuses(
    served: ApiServer, tmp_path: Path
) -> None:
    report, answers = tmp_path / "report" / "events.ndjson", tmp_path / "report" / "answers.ndjson"
    report.parent.mkdir()
    status, output = await run_schemathesis(served, report, answers)
    assert status == 0, output[-20_000:]
    seen = [json.loads(line) for line in answers.read_text().splitlines()]
    operations = {answer["operation"] for answer in seen}
    assert operations >= {
        "POST /jobs",
        "GET /jobs",
        "GET /jobs/{job_id}",
        "DELETE /jobs/{job_id}",
        "GET /cluster/check-user/{username}",
        "GET /templates",
    }
    submitted = [a for a in seen if a["operation"] == "POST /jobs" and a["positive"] and a["status"] == 200]
    refused = {a["error"] for a in seen if a["operation"] == "POST /jobs" and not a["positive"]}
    assert len(submitted) >= 5, "schema-valid submissions must reach Slurm"
    assert {"invalid-user", "invalid-variable"} <= refused
    assert not [a for a in seen if a["status"] >= 500]
