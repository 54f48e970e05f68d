"""End to end over SSH: a DNAT rule added with ``sudo -n iptables`` makes gateway:port reach a compute node."""

from __future__ import annotations

import asyncio

import pytest

from simulator.cluster import SimCluster
from simulator.config import ClusterConfig
from simulator.etcd import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

IO_TIMEOUT = 10.0


async def test_dnat_over_ssh_forwards_and_delete_stops_it() -> None:
    async with SimCluster(ClusterConfig.default()) as cluster:
        gateway = cluster.gateway_nodes[0]
        compute = cluster.compute_nodes[0].address

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"hello from compute\n")
            writer.close()

        app = await asyncio.start_server(handle, compute, 0)
        try:
            app_port = app.sockets[0].getsockname()[1]
            port = free_port(gateway.external_ip)
            rule = f"-p tcp --dport {port} -j DNAT --to-destination {compute}:{app_port}"
            async with await cluster.connect(gateway.node) as conn:
                added = await asyncio.wait_for(conn.run(f"sudo -n iptables -t nat -A PREROUTING {rule}"), IO_TIMEOUT)
                assert added.exit_status == 0, added.stderr
                reader, writer = await asyncio.wait_for(asyncio.open_connection(gateway.external_ip, port), IO_TIMEOUT)
                try:
                    assert await asyncio.wait_for(reader.readline(), IO_TIMEOUT) == b"hello from compute\n"
                finally:
                    writer.close()
                probe = await asyncio.wait_for(conn.run(f"nc -z -w 1 {compute} {app_port}"), IO_TIMEOUT)
                assert probe.exit_status == 0
                deleted = await asyncio.wait_for(conn.run(f"sudo -n iptables -t nat -D PREROUTING {rule}"), IO_TIMEOUT)
                assert deleted.exit_status == 0, deleted.stderr
            with pytest.raises(ConnectionRefusedError):
                await asyncio.wait_for(asyncio.open_connection(gateway.external_ip, port), IO_TIMEOUT)
        finally:
            app.close()
            await app.wait_closed()
