"""Differential tier: the harness's command lines on the session's testbed and on a simulator, compared: Slurm's
on a command node (:mod:`differential`), then iptables' on a gateway (:mod:`differential_gateway`).

The command lines that still differ are listed in ``differential_known.txt`` (issue 13's open work); the test
fails on any other difference, and on a listed line that no longer differs, so the list cannot go stale. A line
marked ``~ `` differs on some runs only (what the real cluster answers depends on its timing: which scheduler
started a job, other tiers' jobs): it is allowed to differ and not required to. ``#`` starts a comment.
"""

from __future__ import annotations

import pytest

from containers.testbed import Testbed
from tests.contract import differential_clusters as clusters
from tests.contract.differential import KNOWN, MAYBE, all_command_lines, known_differences
from tests.contract.differential_gateway import gateway_command_lines

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_vocabulary_has_at_least_150_distinct_command_lines() -> None:
    assert len(all_command_lines()) >= 150
    assert len(gateway_command_lines()) >= 50


async def test_simulator_answers_as_real_slurm_and_a_real_gateway(testbed: Testbed) -> None:
    real = clusters.testbed_side(testbed)
    try:
        diffs = await clusters.differences_on(real)
    finally:
        await real.close()
    differing = {d.command for d in diffs}
    known, stable = known_differences(KNOWN.read_text())
    new = "\n".join(str(d) for d in diffs if d.command not in known)
    assert not new, f"differences not in {KNOWN.name}:\n{new}"
    gone = "\n".join(sorted(stable - differing))
    assert not gone, f"listed in {KNOWN.name} but no longer different (remove them, or mark them {MAYBE!r}):\n{gone}"


def test_known_list_markers() -> None:
    known, stable = known_differences("# comment\nsqueue -a\n~ squeue -b\n\n")
    assert known == {"squeue -a", "squeue -b"}
    assert stable == {"squeue -a"}
