"""A REST load generator run in its own process, so its CPU is not charged to the runner it measures.

``python -m benchmarks.loadgen URL --clients N --total M --max-seconds S [--path /jobs --method POST]`` runs a
closed loop of ``N`` concurrent ``httpx`` clients against a loopback URL and prints one JSON line: the
:class:`~benchmarks.common.LoadResult` (count, seconds, latencies, errors). :func:`run_loadgen` starts it
from a benchmark and parses the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from benchmarks.common import API_AUTH, LoadResult, closed_loop, submit_body

ROOT = Path(__file__).resolve().parent.parent
POOL_SIZE = 10


async def generate(url: str, method: str, path: str, clients: int, total: int, max_seconds: float) -> LoadResult:
    host = urlsplit(url).hostname or ""
    if not host.startswith("127."):
        raise ValueError(f"load is only sent to 127.0.0.0/8, not {host!r}")
    # httpx's connection pool scans all its connections per request: one pool for 200 clients costs the
    # generator more CPU than the runner it measures, on the same 2 cores. Small pools keep it cheap.
    pools = -(-clients // POOL_SIZE)
    limits = httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE)
    async with contextlib.AsyncExitStack() as stack:
        shards = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=url, auth=API_AUTH, timeout=120, limits=limits))
            for _ in range(pools)
        ]
        body = submit_body() if method == "POST" else None

        async def request(index: int) -> None:
            response = await shards[index % pools].request(method, path, json=body)
            if response.status_code != 200:
                raise RuntimeError(f"{method} {path}: {response.status_code}")

        return await closed_loop(clients, total, max_seconds, request)


async def run_loadgen(
    url: str, clients: int, total: int, max_seconds: float, method: str = "POST", path: str = "/jobs"
) -> LoadResult:
    """Run the generator as a subprocess and return its result; raises if it fails or overstays."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.loadgen",
        url,
        f"--clients={clients}",
        f"--total={total}",
        f"--max-seconds={max_seconds}",
        f"--method={method}",
        f"--path={path}",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(max_seconds + 60):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed ({proc.returncode}): {err.decode()[-500:]}")
    data = json.loads(out.decode().strip().splitlines()[-1])
    return LoadResult(data["count"], data["seconds"], data["latencies"], data["errors"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--total", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, required=True)
    parser.add_argument("--method", default="POST", choices=["POST", "GET"])
    parser.add_argument("--path", default="/jobs")
    args = parser.parse_args(argv)
    result = asyncio.run(generate(args.url, args.method, args.path, args.clients, args.total, args.max_seconds))
    print(
        json.dumps(
            {"count": result.count, "seconds": result.seconds, "latencies": result.latencies, "errors": result.errors}
        )
    )


if __name__ == "__main__":
    main()
