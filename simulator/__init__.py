"""A simulated Slurm cluster that speaks SSH, Slurm's CLI and iptables, cheap enough for thousands of jobs.

Main names:

- :class:`SimCluster` (``async with SimCluster(ClusterConfig.default()) as cluster``): starts every node's
  sshd on its own loopback address. Endpoints: ``command_nodes`` / ``gateway_nodes`` /
  ``compute_nodes``, ``client_key_path``, ``known_hosts_path``, ``hosts_file``, ``home_prefix``,
  ``runner_config()`` (the SPEC's ``command-nodes``, ``gateway-nodes``, ``bwvisu-home-prefix``),
  ``connect(node)`` for an asyncssh client connection.
  State: ``scheduler``, ``job(id)``, ``command_log`` (every command any node ran).
  Faults: ``faults`` (:class:`Faults`: slow / failing / connection-dropping commands, silent hosts),
  ``node_down``/``node_up`` (sshd refuses), ``fail_node``/``resume_node`` (NODE_FAIL),
  ``controller_up = False`` (Slurm clients fail as with slurmctld down), ``pause_scheduling``.
- :class:`ClusterConfig` (pydantic; ``ClusterConfig.build(command=, compute=, gateways=, cpus=)``),
  :class:`NodeConfig`, :class:`UserConfig`, :class:`PartitionConfig`, :class:`TimingConfig`, :class:`Role`.
- Jobs whose script contains ``#SIM-BEHAVIOUR listen port=P after=D`` run without a process
  (:mod:`simulator.behaviours`); other scripts run for real under ``/bin/bash``.
"""

from simulator.behaviours import register_behaviour
from simulator.cluster import ComputeEndpoint, GatewayEndpoint, SimCluster, SSHEndpoint
from simulator.config import ClusterConfig, NodeConfig, PartitionConfig, Role, TimingConfig, UserConfig
from simulator.dispatch import CommandLog, CommandRecord
from simulator.faults import Faults
from simulator.jobs import Job, JobState

__all__ = [
    "ClusterConfig",
    "CommandLog",
    "CommandRecord",
    "ComputeEndpoint",
    "Faults",
    "GatewayEndpoint",
    "Job",
    "JobState",
    "NodeConfig",
    "PartitionConfig",
    "Role",
    "SSHEndpoint",
    "SimCluster",
    "TimingConfig",
    "UserConfig",
    "register_behaviour",
]
