"""The differential harness against recorded real answers: the simulator on every command line of its vocabulary.

``tests/fixtures/slurm/differential.json`` holds what the containerised Slurm 22.05 answered to each command line
of both rounds (``python -m containers.capture_fixtures`` records it). Here a simulated cluster named like the
testbed gets the same jobs from the same scripts and is asked the same lines; the answers are compared as the
differential tier compares them, with no Docker. A command line without a recorded answer fails: the recording
is regenerated whenever the vocabulary grows. The gateway's iptables lines are replayed the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.contract import differential as diff
from tests.contract.differential_clusters import sim_side
from tests.contract.differential_gateway import replay_differences

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

RECORDING = Path(__file__).parent.parent / "fixtures" / "slurm" / "differential.json"
REGENERATE = "regenerate it: python -m containers.capture_fixtures"


def recording() -> dict[str, Any]:
    assert RECORDING.is_file(), f"{RECORDING.name} is missing from tests/fixtures/slurm ({REGENERATE})"
    loaded: dict[str, Any] = json.loads(RECORDING.read_text())
    assert loaded.get("version") == diff.RECORDING_VERSION, f"{RECORDING.name} has an old layout ({REGENERATE})"
    return loaded


def test_every_command_line_has_a_recorded_real_answer() -> None:
    _, answers = diff.recorded_side(recording())
    missing = sorted({c.command for c in diff.first_vocabulary() + diff.vocabulary()} - {c for c, _ in answers})
    assert not missing, f"no real answer recorded for ({REGENERATE}):\n" + "\n".join(missing)
    assert len(answers) >= 150


async def test_simulator_answers_every_command_line_as_recorded() -> None:
    real, answers = diff.recorded_side(recording())
    first, second = diff.first_vocabulary(), diff.vocabulary()
    cases = first + second
    assert all((c.command, c.stdin) in answers for c in cases), f"answers missing ({REGENERATE})"
    # ended jobs stay 10 s here: no slower cluster is waited for, and the first round's stay while compared
    async with sim_side(int(real.jobs[diff.FIRST_ROLES[0]]), min_job_age_seconds=10) as sim:
        await diff.submit(sim, diff.FIRST_ROLES[0])
        await diff.produce_first_jobs(sim)
        sim_first = await diff.outcomes(sim, first)
        await diff.produce_jobs(sim)
        sim_second = await diff.outcomes(sim, second)
    diffs = diff.compare_outcomes(
        cases, real, [answers[c.command, c.stdin] for c in cases], sim, sim_first + sim_second
    )
    known, _ = diff.known_differences(diff.KNOWN.read_text())
    new = "\n".join(str(d) for d in diffs if d.command not in known)
    assert not new, f"the simulator differs from the recorded real answers:\n{new}"


async def test_simulated_gateway_answers_every_iptables_line_as_recorded() -> None:
    recorded = recording()
    assert "gateway" in recorded, f"no gateway answers recorded ({REGENERATE})"
    async with sim_side(1) as sim:
        assert sim.gateway is not None
        diffs = await replay_differences(recorded["gateway"], sim.gateway)
    known, _ = diff.known_differences(diff.KNOWN.read_text())
    new = "\n".join(str(d) for d in diffs if d.command not in known)
    assert not new, f"the simulated gateway differs from the recorded real answers:\n{new}"
