"""Does a busy event loop read its UDP packets in time: CPython's own loop, or uvloop?

    .venv/bin/python -m bench.udp_drain [--runs 5]

A room with many calls is one event loop whose iterations take longer than the 20 ms between
a call's packets. This floods a socket with 150 packets at 200 a second while every loop
iteration takes 20 ms (``testkit/udp.py``) and counts what was read by the time the last one
was sent. Each loop kind runs in a fresh process: CPython's selector loop as shipped, and
uvloop (libuv drains a ready socket up to 32 datagrams per wakeup). Until commit 1558a1d the
product patched asyncio's datagram read to drain the same way; the results file keeps that
row, measured then (150 of 150), which is why the patch could go once the product ran on
uvloop. Writes ``bench/results/udp_drain.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).parent / "results"
KINDS = ("asyncio", "uvloop")


def one(kind: str) -> int:
    from testkit.udp import read_on_a_busy_loop

    if kind == "uvloop":
        import uvloop

        return uvloop.run(read_on_a_busy_loop())
    return asyncio.run(read_on_a_busy_loop())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kind", choices=KINDS, help=argparse.SUPPRESS)  # one child run
    args = parser.parse_args()
    if args.kind:
        print(one(args.kind))
        return
    from testkit.udp import PACKETS

    results = {}
    for kind in KINDS:
        counts = [
            int(
                subprocess.run(
                    [sys.executable, "-m", "bench.udp_drain", "--kind", kind],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()[-1]
            )
            for _ in range(args.runs)
        ]
        results[kind] = {"read_in_time": counts, "median": statistics.median(counts)}
        print(
            f"{kind:14} read in time (of {PACKETS}): median {statistics.median(counts)}, {counts}"
        )
    OUT.mkdir(exist_ok=True)
    path = OUT / "udp_drain.json"
    earlier = json.loads(path.read_text()) if path.exists() else {}
    kept = {k: v for k, v in earlier.items() if k not in results and k != "packets"}
    path.write_text(json.dumps({"packets": PACKETS, **results, **kept}, indent=2))


if __name__ == "__main__":
    main()
