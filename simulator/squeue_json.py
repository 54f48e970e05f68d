"""``squeue --json``: Slurm 22.05's ``openapi/v0.0.38`` dump of every job slurmctld holds, as json-c prints it.

In 22.05 ``--json`` ignores squeue's filters (``-j``, ``-t``, ``-u``, formats): it dumps the whole job list
slurmctld answers with. The layout is json-c's ``JSON_C_TO_STRING_PRETTY`` (two-space indent, an empty array or
object over two lines, ``/`` escaped, no final newline): :func:`dumps_json_c`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from simulator.hostlist import compress
from simulator.jobs import Job, JobState

JsonValue = None | bool | int | float | str | Sequence["JsonValue"] | Mapping[str, "JsonValue"]

META: JsonValue = {
    "plugin": {"type": "openapi/v0.0.38", "name": "Slurm OpenAPI v0.0.38"},
    "Slurm": {"version": {"major": 22, "micro": 8, "minor": 5}, "release": "22.05.8"},
}


def dumps_json_c(value: JsonValue, indent: int = 0) -> str:
    """``value`` in json-c's pretty layout."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, Mapping):
        items = [f"{inner}{_string(k)}: {dumps_json_c(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + ("\n" if items else "") + pad + "}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        items = [inner + dumps_json_c(v, indent + 1) for v in value]
        return "[\n" + ",\n".join(items) + ("\n" if items else "") + pad + "]"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, float):
        return repr(value)  # json-c's "%.17g" with ".0" kept for whole numbers
    return json.dumps(value)


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("/", "\\/")


def _time(value: float | None) -> int:
    return 0 if value is None else int(value)


def _job_resources(job: Job) -> dict[str, JsonValue]:
    # the testbed's nodes give only CPUs=: one core per socket, so a job's CPUs on a node are sockets 0..n-1
    sockets = {str(i): {"cores": {"0": "allocated"}} for i in range(job.cpus_per_node)}
    return {
        "nodes": compress(job.nodes),
        "allocated_cpus": job.num_cpus,
        "allocated_hosts": job.num_nodes,
        "allocated_nodes": [
            {"sockets": sockets, "nodename": node, "cpus_used": 0, "memory_used": 0, "memory_allocated": 0}
            for node in job.nodes
        ],
    }


def job_entry(job: Job, cluster: str, group: str) -> dict[str, JsonValue]:
    """One job of the dump, its fields in the plugin's order."""
    spec = job.spec
    started = bool(job.nodes)
    held = spec.hold or (job.state is JobState.CANCELLED and not started and job.priority == 0)
    entry: dict[str, JsonValue] = {
        "account": spec.account or "",
        "accrue_time": 0 if held else _time(job.start_time or job.submit_time),
        "admin_comment": "",
        "array_job_id": 0,
        "array_task_id": None,
        "array_max_tasks": 0,
        "array_task_string": "",
        "association_id": 0,
        "batch_features": "",
        "batch_flag": True,
        "batch_host": job.nodes[0] if started else "",
        "flags": _flags(job),
        "burst_buffer": "",
        "burst_buffer_state": "",
        "cluster": cluster,
        "cluster_features": "",
        "command": "",
        "comment": spec.comment or "",
        "container": "",
        "contiguous": False,
        "core_spec": None,
        "thread_spec": None,
        "cores_per_socket": None,
        "billable_tres": float(job.num_cpus) if started else None,
        "cpus_per_task": None if spec.cpus_per_task == 1 else spec.cpus_per_task,
        "cpu_frequency_minimum": None,
        "cpu_frequency_maximum": None,
        "cpu_frequency_governor": None,
        "cpus_per_tres": "",
        "deadline": 0,
        "delay_boot": 0,
        "dependency": "",
        "derived_exit_code": 0,
        "eligible_time": 0 if held else _time(job.submit_time),
        "end_time": _time(job.expected_end),
        "excluded_nodes": "",
        "exit_code": job.exit_code << 8 | _signal(job),
        "features": "",
        "federation_origin": "",
        "federation_siblings_active": "",
        "federation_siblings_viable": "",
        "gres_detail": [],
        "group_id": spec.gid,
        "group_name": group,
        "job_id": job.job_id,
    }
    if started:
        entry["job_resources"] = _job_resources(job)
    entry |= {
        "job_state": job.state.value,
        "last_sched_evaluation": _time(job.start_time or job.submit_time),
        "licenses": "",
        "max_cpus": 0,
        "max_nodes": 0,
        "mcs_label": "",
        "memory_per_tres": "",
        "name": job.name,
        "nodes": compress(job.nodes),
        "nice": None,
        "tasks_per_core": None,
        "tasks_per_node": spec.ntasks_per_node or 0,
        "tasks_per_socket": None,
        "tasks_per_board": 0,
        "cpus": None if job.never_started else job.num_cpus,  # NO_VAL: dropped when it ended unstarted
        "node_count": job.num_nodes,
        "tasks": None if job.never_started else job.num_tasks,
        "het_job_id": 0,
        "het_job_id_set": "",
        "het_job_offset": 0,
        "partition": job.partition,
        "prefer": "",
        "memory_per_node": spec.mem_per_node_mb,
        "memory_per_cpu": spec.mem_per_cpu_mb,
        "minimum_cpus_per_node": (spec.ntasks_per_node or 1) * spec.cpus_per_task,
        "minimum_tmp_disk_per_node": 0,
        "preempt_time": 0,
        "pre_sus_time": 0,
        "priority": job.priority,
        "profile": None,
        "qos": "normal",
        "reboot": False,
        "required_nodes": compress(spec.req_nodes) if spec.req_nodes else "",
        "requeue": spec.requeue,
        "resize_time": 0,
        "restart_cnt": 0,
        "resv_name": "",
        "shared": None,
        "show_flags": ["SHOW_ALL", "SHOW_DETAIL", "SHOW_LOCAL"],
        "sockets_per_board": 0,
        "sockets_per_node": None,
        "start_time": _time(job.start_time),
        "state_description": "",
        "state_reason": job.reason,
        "standard_error": spec.stderr or "",  # slurmctld keeps only what was asked; scontrol adds the default
        "standard_input": "/dev/null",
        "standard_output": spec.stdout or "",
        "submit_time": _time(job.submit_time),
        "suspend_time": 0,
        "system_comment": "",
        "time_limit": job.time_limit,  # none: NO_VAL, null (the main scheduler sets no limit; backfill a year)
        "time_minimum": 0,
        "threads_per_core": None,
        "tres_bind": "",
        "tres_freq": "",
        "tres_per_job": "",
        "tres_per_node": "",
        "tres_per_socket": "",
        "tres_per_task": "",
        "tres_req_str": f"cpu={job.num_cpus},mem={job.req_mem_mb}M,node={job.num_nodes},billing={job.num_cpus}",
        "tres_alloc_str": job.tres() if started else "",
        "user_id": spec.uid,
        "user_name": job.user,
        "wckey": "",
        "current_working_directory": spec.work_dir,
    }
    return entry


def _flags(job: Job) -> list[JsonValue]:
    """The job's flag bits slurmctld reports, in bit order (as seen on Slurm 22.05: a running job's
    JOB_WAS_RUNNING goes when it ends; a node failure recalculates its TRES strings)."""
    flags: list[JsonValue] = []
    if job.state is JobState.NODE_FAIL:
        flags.append("TRES_STR_CALC")
    if job.state is JobState.RUNNING:
        flags.append("JOB_WAS_RUNNING")
    if job.spec.mem_per_node_mb is not None or job.spec.mem_per_cpu_mb is not None:
        flags.append("JOB_MEM_SET")
    return flags


def _signal(job: Job) -> int:
    killed = job.state in (JobState.CANCELLED, JobState.TIMEOUT) and job.nodes
    return job.batch_signal if killed else job.exit_signal


def squeue_json(jobs: list[Job], cluster: str, groups: dict[int, str]) -> str:
    """The whole dump for ``jobs`` (slurmctld's list: every job it holds, in id order)."""
    entries = [job_entry(j, cluster, groups.get(j.spec.gid, str(j.spec.gid))) for j in jobs]
    return dumps_json_c({"meta": META, "errors": [], "jobs": entries})
