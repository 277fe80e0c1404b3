"""The data plane between two processes: messages per second, CPU per
message and round trip, without Ray.

    python benchmarks/dataplane_micro.py [--messages 200000] [--pings 5000] [--size 200]
                                         [--json out.json]

Two processes (multiprocessing), each with a :class:`DataPlane`, linked over
the Unix socket and then over TCP on loopback. For each path:

* ``round_trip``: the driver sends one frame, the echo process sends it back
  on its own link, the driver waits for it before the next one (p50/p99 µs);
* ``one_way`` with bursts of 1 and of 100 sends per event-loop turn:
  ``--messages`` frames of ``--size`` bytes; messages per second until the
  receiver has counted them all, and CPU µs per message in the sender and in
  the receiver (process time, so idle waiting is not counted). A burst of 1
  is one write per message; a burst of 100 shows the outbox's batching.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing
import statistics
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from cluster_actors.core.stats import percentile
from cluster_actors.runtime.dataplane import DataPlane, Endpoint, make_secret

COMPONENT = "bench"
PING, START, COUNT, DONE = b"P", b"S", b"C", b"D"


async def _recv(pipe: Connection) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, pipe.recv)


# ------------------------------------------------------------ echo process
async def _echo(pipe: Connection, secret: bytes) -> None:
    plane = DataPlane("bench", "echo", "echo-1", secret, high_water=1 << 30)
    state = {"count": 0, "expected": -1, "cpu": 0.0}

    def on_frames(src: str, payloads: list[bytes]) -> None:
        for payload in payloads:
            kind = payload[:1]
            if kind == COUNT:
                state["count"] += 1
                if state["count"] == state["expected"]:
                    cpu = time.process_time() - state["cpu"]
                    plane.send(COMPONENT, "driver", DONE + json.dumps(cpu).encode())
            elif kind == PING:
                plane.send(COMPONENT, "driver", payload)
            elif kind == START:
                state.update(count=0, expected=int(payload[1:]), cpu=time.process_time())

    plane.register(COMPONENT, on_frames, high_water=1 << 30)
    pipe.send(await plane.start())
    while True:
        message = await _recv(pipe)
        if message is None:
            break
        plane.set_address(COMPONENT, "driver", message)
        pipe.send(await plane.connect(COMPONENT, "driver"))
    plane.close()
    await plane.wait_closed()


def _echo_main(pipe: Connection, secret: bytes) -> None:
    asyncio.run(_echo(pipe, secret))


# ----------------------------------------------------------------- driver
class _Driver:
    def __init__(self, secret: bytes) -> None:
        self.plane = DataPlane("bench", "driver", "driver-1", secret, high_water=1 << 30)
        self.plane.register(COMPONENT, self._on_frames, high_water=1 << 30)
        self.pong: asyncio.Future[None] | None = None
        self.done: asyncio.Future[float] | None = None

    def _on_frames(self, src: str, payloads: list[bytes]) -> None:
        for payload in payloads:
            if payload[:1] == PING and self.pong is not None and not self.pong.done():
                self.pong.set_result(None)
            elif payload[:1] == DONE and self.done is not None:
                self.done.set_result(json.loads(payload[1:]))

    def _send(self, payload: bytes) -> None:
        if not self.plane.send(COMPONENT, "echo", payload):
            raise RuntimeError("the link to the echo process is down")

    async def round_trip(self, pings: int, size: int) -> dict[str, float]:
        loop = asyncio.get_running_loop()
        payload = PING + b"x" * (size - 1)
        samples = []
        for i in range(pings + 200):
            self.pong = loop.create_future()
            started = time.perf_counter()
            self._send(payload)
            await self.pong
            if i >= 200:  # warmed up
                samples.append((time.perf_counter() - started) * 1e6)
        return {"p50_us": round(statistics.median(samples), 1),
                "p99_us": round(percentile(samples, 99), 1)}

    async def one_way(self, messages: int, size: int, burst: int) -> dict[str, float]:
        self.done = asyncio.get_running_loop().create_future()
        payload = COUNT + b"x" * (size - 1)
        self._send(START + str(messages).encode())
        await asyncio.sleep(0)
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(messages // burst):
            for _ in range(burst):
                self._send(payload)
            await asyncio.sleep(0)
        receiver_cpu = await self.done
        elapsed = time.perf_counter() - started
        dropped = self.plane.stats["dropped_hwm"]
        return {"messages_per_s": round(messages / elapsed),
                "sender_cpu_us_per_msg": round((time.process_time() - cpu) / messages * 1e6, 2),
                "receiver_cpu_us_per_msg": round(receiver_cpu / messages * 1e6, 2),
                "dropped": dropped}


async def _drive(args: argparse.Namespace) -> dict[str, Any]:
    secret = make_secret()
    context = multiprocessing.get_context("spawn")
    pipe, child_pipe = context.Pipe()
    echo = context.Process(target=_echo_main, args=(child_pipe, secret), daemon=True)
    echo.start()
    driver = _Driver(secret)
    mine: Endpoint = await driver.plane.start()
    theirs: Endpoint = await _recv(pipe)
    result: dict[str, Any] = {"size_bytes": args.size, "messages": args.messages}
    try:
        for path in ("unix", "tcp"):
            machine = {} if path == "unix" else {"machine": "elsewhere"}  # TCP on loopback
            driver.plane.set_address(COMPONENT, "echo", dataclasses.replace(theirs, **machine))
            pipe.send(dataclasses.replace(mine, **machine))
            if not (await _recv(pipe) and await driver.plane.connect(COMPONENT, "echo")):
                raise RuntimeError(f"no {path} link between the two processes")
            result[path] = {
                "round_trip": await driver.round_trip(args.pings, args.size),
                "one_way_burst_1": await driver.one_way(args.messages // 4, args.size, 1),
                "one_way_burst_100": await driver.one_way(args.messages, args.size, 100)}
    finally:
        pipe.send(None)
        driver.plane.close()
        await driver.plane.wait_closed()
        echo.join(5)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--pings", type=int, default=5000)
    parser.add_argument("--size", type=int, default=200, help="bytes per frame")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args(argv)
    text = json.dumps(asyncio.run(_drive(args)), indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
