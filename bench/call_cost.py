"""What a call costs the bot's process in CPU: idle (connected, nobody speaking) and talking.

    .venv/bin/python -m bench.call_cost [--calls 1,2,4] [--secs 30]

Starts the embedded LLM server and ``python -m bots lumina --no-greeting`` (calls run on its
event loop: the same ``web.calls.LocalCalls`` code a room worker runs), then, for each N, opens
N WebRTC calls from this process (aiortc) and holds them for ``--secs`` with the microphones
sending silence, as a connected person who is not speaking does. The bot process's CPU time
(user + system, ``psutil``) over that window, divided by the wall time, is the cores it used;
with no call open first, the per-call cost is ``(cores(N) - cores(0)) / N``. This process's
own CPU (the simulated callers) is reported beside it. Then one call speaks a 3 s utterance
every 6 s and is answered (the talking cost includes whisper.cpp and Piper, not the LLM,
which is another process). Writes ``bench/results/call_cost.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
import time
from pathlib import Path

import psutil

from bench.servers import ROOT, Server, free_port, llm_server, our_bot
from bots.runtime import run as run_on_event_loop
from testkit.speech import piper_say
from testkit.webrtc_client import BotCall, call_bot, sign_up

OUT = Path(__file__).parent / "results"
SETTLE_SECS = 5.0


def cpu_secs(proc: psutil.Process) -> float:
    """User + system CPU seconds of ``proc`` so far."""
    t = proc.cpu_times()
    return t.user + t.system


async def measure(bot: psutil.Process, secs: float, during=None) -> dict:
    """Cores used by the bot and by this process over ``secs`` (running ``during`` meanwhile)."""
    me = psutil.Process()
    bot0, me0, t0 = cpu_secs(bot), cpu_secs(me), time.monotonic()
    if during is None:
        await asyncio.sleep(secs)
    else:
        await asyncio.wait_for(during, secs + 30)
    wall = time.monotonic() - t0
    return {
        "bot_cores": round((cpu_secs(bot) - bot0) / wall, 3),
        "callers_cores": round((cpu_secs(me) - me0) / wall, 3),
        "secs": round(wall, 1),
    }


async def open_calls(base: str, n: int) -> list[BotCall]:
    calls = []
    for _ in range(n):
        calls.append(await call_bot(base, cookies=await sign_up(base)))
    await asyncio.gather(*(c.wait_silent(1.0, 30) for c in calls))
    return calls


async def talk(call: BotCall, secs: float) -> None:
    """Speak a 3 s utterance every 6 s for ``secs``."""
    clip = piper_say("Tell me something interesting about the ocean and its waves, please.")
    end = time.monotonic() + secs
    while time.monotonic() < end:
        started = time.monotonic()
        await call.mic.say(clip)
        await asyncio.sleep(max(0.0, 6.0 - (time.monotonic() - started)))


async def run(base: str, bot: psutil.Process, levels: list[int], secs: float) -> dict:
    out: dict = {"idle": {}, "talking": None}
    await asyncio.sleep(SETTLE_SECS)
    out["idle"]["0"] = await measure(bot, secs)
    print(f"  no call: {out['idle']['0']}", flush=True)
    for n in levels:
        calls = await open_calls(base, n)
        await asyncio.sleep(SETTLE_SECS)
        row = await measure(bot, secs)
        base_cores = out["idle"]["0"]["bot_cores"]
        row["bot_cores_per_call"] = round((row["bot_cores"] - base_cores) / n, 3)
        row["callers_cores_per_call"] = round(row["callers_cores"] / n, 3)
        out["idle"][str(n)] = row
        print(f"  {n} idle calls: {row}", flush=True)
        await asyncio.gather(*(c.close() for c in calls))
        await asyncio.sleep(SETTLE_SECS)
    (call,) = await open_calls(base, 1)
    row = await measure(bot, secs, talk(call, secs))
    row["bot_cores_per_call"] = round(row["bot_cores"] - out["idle"]["0"]["bot_cores"], 3)
    out["talking"] = row
    print(f"  1 talking call: {row}", flush=True)
    await call.close()
    return out


def markdown(results: dict) -> str:
    """The report."""
    lines = [
        "# What a call costs the bot's process (CPU)",
        "",
        f"{results['machine']}; {results['date']}; `{results['command']}`. Cores = CPU seconds "
        "/ wall seconds over the window; the callers (aiortc) run in the benchmark's process.",
        "",
        "| calls | bot process, cores | per call | callers, per call |",
        "|---|---|---|---|",
    ]
    for n, row in results["idle"].items():
        per = row.get("bot_cores_per_call", "-")
        lines.append(
            f"| {n} idle | {row['bot_cores']} | {per} | {row.get('callers_cores_per_call', '-')} |"
        )
    t = results["talking"]
    lines.append(f"| 1 talking | {t['bot_cores']} | {t['bot_cores_per_call']} | - |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run and write the report."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.call_cost", description=__doc__)
    parser.add_argument("--calls", default="1,2,4", help="idle call counts, e.g. 1,2,4")
    parser.add_argument("--secs", type=float, default=30.0)
    parser.add_argument("--out", default="call_cost")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.calls.split(",") if x.strip()]
    llm_port, bot_port = free_port(), free_port()
    llm = llm_server(llm_port)
    bot: Server = our_bot(bot_port, llm_port)
    try:
        llm.start()
        bot.start()
        assert bot.proc is not None
        process = psutil.Process(bot.proc.pid)
        results = run_on_event_loop(run(f"http://127.0.0.1:{bot_port}", process, levels, args.secs))
    finally:
        bot.stop()
        llm.stop()
    from bench.latency import machine_info

    meta = machine_info([])
    results.update(
        machine=f"{meta['nproc']} cores ({meta['cpu']})",
        date=meta["date"],
        command=shlex.join([".venv/bin/python", "-m", "bench.call_cost", *argv]),
        commit=meta["git_head"],
    )
    OUT.mkdir(exist_ok=True)
    (OUT / f"{args.out}.json").write_text(json.dumps(results, indent=2))
    report = markdown(results)
    (OUT / f"{args.out}.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    import os

    os.chdir(ROOT)
    sys.exit(main())
