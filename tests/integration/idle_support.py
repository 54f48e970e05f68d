"""What the idle-session integration tests share: the gateway's counting rules as root lists them."""

from __future__ import annotations

from runner.gateway.iptables import parse_counters
from simulator import SimCluster


async def counting_rules(cluster: SimCluster, external_ip: str) -> list[tuple[str, int]]:
    """``(job id, packets)`` of the accounting chain on the gateway serving ``external_ip``, listed as root."""
    [gateway] = [g for g in cluster.gateway_nodes if g.external_ip == external_ip]
    listed = await cluster.gateway_service(gateway.node).iptables(["-w", "-t", "filter", "-S", "BWVISU-ACCT", "-v"])
    assert listed.exit_status == 0, listed.stderr
    return [(c.rule.job_id, c.packets) for c in parse_counters(listed.stdout)]
