"""Benchmark: subscription throughput and latency of the OPC UA driver at full size.

A server process on the same machine changes every one of ``--items`` variables once per
second, stamping each value with the time it changed; the driver subscribes to all of them
(sharded) and the benchmark measures the latency from source timestamp to callback.

    .venv/bin/python -m tests.drivers.opcua.bench_opcua_subscriptions --items 10000

Prints one JSON object: items, subscriptions, notifications per second, latency p50/p95/max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import cast

from asyncua import ua

from controlcenter.clock import WallClock
from controlcenter.model import DataType, Sample, TagDef
from drivers.opcua import OpcUaDeviceConfig, OpcUaDriver
from tests.drivers.opcua.opcua_test_server import build_server


def _serve(items: int, seconds: float, pipe: Connection) -> None:
    asyncio.run(_serve_async(items, seconds, pipe))


async def _serve_async(items: int, seconds: float, pipe: Connection) -> None:
    plant = await build_server(shard_variables=items)
    pipe.send((plant.url, plant.shard_names))
    # Keep serving while the client subscribes and sees every initial value.
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    node_ids = [plant.variables[name].nodeid for name in plant.shard_names]
    started = time.monotonic()
    rounds = 0
    while time.monotonic() - started < seconds:
        rounds += 1
        tick = time.monotonic()
        for index, node_id in enumerate(node_ids):
            data_value = ua.DataValue(
                ua.Variant(float(rounds), ua.VariantType.Double),
                SourceTimestamp=cast(ua.DateTime, datetime.now(UTC)),
            )
            await plant.server.write_attribute_value(node_id, data_value)
            if index % 100 == 99:
                await asyncio.sleep(0)  # let the server publish while values change
        # Pace the load: every item changes once per second.
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    # Let the last round's notifications go out before reporting.
    await asyncio.sleep(2.0)
    pipe.send(rounds)
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # the client closed
    await plant.server.stop()


async def _measure(
    servers: list[tuple[str, list[str]]], interval_s: float, pipes: list[Connection]
) -> dict[str, object]:
    latencies: list[float] = []
    total = sum(len(names) for _, names in servers)
    seen: set[str] = set()
    initial = asyncio.Event()
    measuring = False

    def on_samples(samples: list[Sample]) -> None:
        now = datetime.now(UTC)
        if measuring:
            latencies.extend(
                (now - sample.source_time).total_seconds()
                for sample in samples
                if sample.quality.is_good
            )
            return
        seen.update(sample.tag for sample in samples)
        if len(seen) == total:
            initial.set()

    drivers: list[OpcUaDriver] = []
    for number, (url, names) in enumerate(servers):
        driver = OpcUaDriver(f"bench{number}", OpcUaDeviceConfig(url), WallClock())
        drivers.append(driver)
        points = [
            TagDef(f"{number}.{name}", "bench", f"ns=2;s={name}", DataType.FLOAT) for name in names
        ]
        await driver.subscribe(points, on_samples, interval_s=interval_s)
    await initial.wait()
    subscriptions = sum(driver.subscription_diagnostics().subscriptions for driver in drivers)
    measuring = True
    for pipe in pipes:
        pipe.send("go")
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    rounds = [await loop.run_in_executor(None, pipe.recv) for pipe in pipes]
    elapsed = time.monotonic() - started - 2.0
    for driver in drivers:
        await driver.close()
    for pipe in pipes:
        pipe.send("closed")
    latencies.sort()

    def percentile(share: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * share))] * 1000, 1)

    return {
        "items": total,
        "servers": len(servers),
        "subscriptions": subscriptions,
        "interval_s": interval_s,
        "rounds": rounds,
        "notifications": len(latencies),
        "expected_notifications": sum(
            count * len(names) for count, (_, names) in zip(rounds, servers, strict=True)
        ),
        "notifications_per_s": round(len(latencies) / elapsed, 1),
        "latency_p50_ms": percentile(0.5),
        "latency_p95_ms": percentile(0.95),
        "latency_max_ms": percentile(1.0),
    }


def main() -> None:
    """Run the benchmark and print its JSON result."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--servers", type=int, default=4, help="server processes sharing items")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.25)
    arguments = parser.parse_args()
    pipes: list[Connection] = []
    processes: list[multiprocessing.Process] = []
    for _ in range(arguments.servers):
        client_end, server_end = multiprocessing.Pipe()
        process = multiprocessing.Process(
            target=_serve,
            args=(arguments.items // arguments.servers, arguments.seconds, server_end),
            daemon=True,
        )
        process.start()
        pipes.append(client_end)
        processes.append(process)
    servers = [pipe.recv() for pipe in pipes]
    result = asyncio.run(_measure(servers, arguments.interval, pipes))
    for process in processes:
        process.join(timeout=30)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
