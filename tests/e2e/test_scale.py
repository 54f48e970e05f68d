"""The scale section at its reduced size, on the real cluster: 60 jobs on 20 Slurm nodes (5 per container), 4 gateways.

The runner runs in its own container; every job is reached through its own forward from the client container on
the public network and must answer with its own names; the forwards are spread evenly over the gateways; after
the teardown no job is left running, no rule of theirs on any gateway, and no container of the run.
"""

from __future__ import annotations

import pytest

from benchmarks import bench_scale

pytestmark = [pytest.mark.e2e, pytest.mark.bench, pytest.mark.timeout(420)]


async def test_smoke_size_reaches_every_job_through_its_own_forward_and_tears_all_down(docker_engine: None) -> None:
    size = bench_scale.SMOKE
    series = await bench_scale.run(size)

    jobs = size.jobs
    assert series["jobs"] == jobs
    assert series["failed"] == 0, series["failed_examples"]
    # Each job answered with its own names through its own forward: none wrong, no two alike.
    assert series["wrong"] == []
    assert series["reached"] == jobs
    assert series["distinct_answers"] == jobs
    # Slurm spread the jobs over every node (least loaded first): 3 on each of the 20.
    assert series["nodes_used"] == size.compute
    assert series["jobs_per_node_max"] == jobs // size.compute
    # Every gateway carries its share: 60 forwards over 4 gateways, 15 each (at most one apart).
    loads = series["forwards"]
    assert sorted(loads) == [f"gateway{i}" for i in range(1, size.gateways + 1)]
    assert sum(loads.values()) == jobs
    assert max(loads.values()) - min(loads.values()) <= 1, loads
    # A forward is a DNAT and a MASQUERADE rule on its gateway, nothing more, nothing less.
    assert {name: rules["dnat"] for name, rules in series["rules"].items()} == loads
    assert all(rules["total"] == 2 * rules["dnat"] for rules in series["rules"].values())
    # slurmctld saw each submission (its counters were reset before the burst); the watcher polls once per tick.
    assert series["sdiag"]["REQUEST_SUBMIT_BATCH_JOB"] == jobs
    assert series["calls_per_tick"]["squeue"] >= 1
    # Teardown: every job finished (checked by the run), no rule left, nothing of the run left in Docker.
    assert series["rules_after_teardown"] == dict.fromkeys(loads, 0)
    assert series["left_running"] is False

    figures = {f.name: f for f in bench_scale.figures(series)}
    assert figures["scale.jobs_reached"].met is True
    assert figures["scale.forwards_max_over_mean"].met is True
    assert len(series["delays"]) == jobs
    assert all(d > 0 for d in series["delays"])
