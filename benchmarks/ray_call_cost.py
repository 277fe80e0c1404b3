"""CPU cost of one Ray actor call on this machine, idle and busy.

    python benchmarks/ray_call_cost.py [--calls 300] [--rate 20] [--json out.json]

An async actor receives one-way calls from the driver:

* ``idle``: ``--rate`` calls per second (a sleeping process woken per call, as
  a cluster node between heartbeats is), ``--calls`` of them;
* ``busy``: 4,000 calls back to back (wake-ups amortised over many calls);

each with a reply object and without one (``num_returns=0``). Reported: CPU
milliseconds per call in the receiver and in the sender (psutil, user+sys),
and the receiver's idle CPU with no calls at all. These are the figures behind
the large-cluster timings in ``scale.py``: the calls a node handles per second
set its idle CPU.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import psutil
import ray
from runtime import report


@ray.remote(num_cpus=0)
class Receiver:
    def pid(self) -> int:
        return os.getpid()

    async def message(self, payload: bytes) -> None:
        return None


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _run(calls: int, pause: float, reply: bool) -> dict[str, float]:
    receiver = Receiver.remote()  # type: ignore[attr-defined]
    pid = ray.get(receiver.pid.remote())
    time.sleep(1.0)
    method = receiver.message if reply else receiver.message.options(num_returns=0)
    receiver_before, sender_before = _cpu(pid), _cpu(os.getpid())
    started = time.monotonic()
    for i in range(calls):
        method.remote(b"x" * 100)
        if pause:
            time.sleep(pause)
        elif i % 200 == 199:
            time.sleep(0.01)
    ray.get(receiver.pid.remote())  # every call has been handled
    elapsed = time.monotonic() - started
    result = {"receiver_ms_per_call": 1000 * (_cpu(pid) - receiver_before) / calls,
              "sender_ms_per_call": 1000 * (_cpu(os.getpid()) - sender_before) / calls,
              "receiver_cpu_percent": 100 * (_cpu(pid) - receiver_before) / elapsed}
    ray.kill(receiver)
    return result


def _idle_percent(seconds: float = 10.0) -> float:
    receiver = Receiver.remote()  # type: ignore[attr-defined]
    pid = ray.get(receiver.pid.remote())
    time.sleep(1.0)
    before = _cpu(pid)
    time.sleep(seconds)
    percent = 100 * (_cpu(pid) - before) / seconds
    ray.kill(receiver)
    return percent


def measure(calls: int = 300, rate: float = 20.0) -> dict[str, Any]:
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    result: dict[str, Any] = {"idle_receiver_cpu_percent": _idle_percent()}
    for reply in (True, False):
        label = "reply" if reply else "no_reply"
        result[f"idle_{label}"] = _run(calls, 1.0 / rate, reply)
        result[f"busy_{label}"] = _run(4000, 0.0, reply)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="idle calls per second")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    report(measure(args.calls, args.rate), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
