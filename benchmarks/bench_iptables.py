"""Rule install time on a simulated gateway with 0, 1,000 and 10,000 DNAT rules already present.

Measures what the runner pays per forward: one ``iptables-restore --noflush`` batch of new rules and single
``iptables -A`` calls, each including the real forwarder start. Run ``python -m benchmarks.bench_iptables``
(``--smoke`` for a seconds-long run). Needs about one file descriptor per rule present.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from benchmarks.common import raised_file_limit
from simulator.commands import CommandContext
from simulator.gateway import HANDLERS, GatewayService

GATEWAY = "127.0.6.1"
COMPUTE = "127.0.6.2"
BASE_PORT = 20000


def _rule(port: int) -> str:
    return (
        f"-A BWVISU -p tcp -m tcp --dport {port} -m comment --comment job-{port} "
        f"-j DNAT --to-destination {COMPUTE}:{port}"
    )


async def _run(ctx: CommandContext, argv: list[str], stdin: bytes = b"") -> None:
    result = await HANDLERS[argv[0]](ctx, argv, stdin)
    if result.exit_status != 0:
        raise RuntimeError(f"{argv[0]} failed: {result.stderr}")


async def measure(present: int, batch: int, singles: int) -> tuple[float, float]:
    """Seconds per rule for a restore batch and for single ``iptables -A`` with ``present`` rules loaded."""
    service = GatewayService([GATEWAY])
    ctx = CommandContext(node=None, user="root", resolve=lambda name: name, services={"gateway": service})
    try:
        setup = "*nat\n:BWVISU - [0:0]\n-A PREROUTING -j BWVISU\n"
        setup += "".join(_rule(BASE_PORT + i) + "\n" for i in range(present)) + "COMMIT\n"
        await _run(ctx, ["iptables-restore", "--noflush"], setup.encode())
        first = BASE_PORT + present
        text = "*nat\n" + "".join(_rule(first + i) + "\n" for i in range(batch)) + "COMMIT\n"
        start = time.perf_counter()
        await _run(ctx, ["iptables-restore", "--noflush"], text.encode())
        per_batch_rule = (time.perf_counter() - start) / batch
        first += batch
        start = time.perf_counter()
        for i in range(singles):
            await _run(ctx, ["iptables", "-w", "-t", "nat", *_rule(first + i).split()])
        per_single = (time.perf_counter() - start) / singles
        if len(service.forwards()) != present + batch + singles:
            raise RuntimeError("not every rule became a forwarder")
        return per_batch_rule, per_single
    finally:
        await service.close()


async def main_async(sizes: list[int], batch: int, singles: int) -> dict[int, tuple[float, float]]:
    results = {}
    for present in sizes:
        results[present] = await measure(present, batch, singles)
        per_batch, per_single = results[present]
        print(
            f"{present:>6} rules present: restore batch of {batch}: {per_batch * 1e6:8.1f} us/rule;"
            f" single iptables -A: {per_single * 1e6:8.1f} us/rule"
        )
    base = results[sizes[0]]
    top = results[sizes[-1]]
    print(f"ratio {sizes[-1]} vs {sizes[0]}: batch {top[0] / base[0]:.2f}x, single {top[1] / base[1]:.2f}x")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="small sizes, a few seconds")
    args = parser.parse_args()
    with raised_file_limit():
        if args.smoke:
            asyncio.run(main_async([0, 100], batch=50, singles=20))
        else:
            asyncio.run(main_async([0, 1000, 10000], batch=500, singles=200))


if __name__ == "__main__":
    main()
