"""Do interim transcripts cost final latency? The real graph, interim passes on vs off.

    make llm &   # or any running LLM backend
    .venv/bin/python -m bench.interim_effect [--rounds 2]

Plays the fixed utterance set through a session (scripted real-time mic, tests/harness.py)
once with interim passes every 0.8 s and once without, and reports per-turn STT time and
server-side voice-to-voice latency (p50/p95). Writes bench/results/interim_effect.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import numpy as np
from pipecat.workers.runner import WorkerRunner

from bench.utterances import UTTERANCES, synthesize
from bots.config import load_avatar
from bots.pipeline import build_session
from tests.harness import ScriptedTransport

OUT = Path(__file__).parent / "results"


async def run(interval: float, rounds: int) -> dict:
    transport = ScriptedTransport()
    session = build_session(
        load_avatar("lumina"), transport, user_id="bench-interim", idle_timeout_secs=None
    )
    session.services["stt"]._interim_interval = interval
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(session.worker)
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(1.5)
    clips = [synthesize(*u) for u in UTTERANCES]
    for _ in range(rounds):
        for pcm in clips:
            await transport.mic.say(pcm)
            # Let the bot answer fully, then talk again after a second of quiet.
            end = transport.mic.speech_ended_at or time.time()
            for _ in range(150):
                if transport.voiced(since=end):
                    break
                await asyncio.sleep(0.1)
            for _ in range(300):
                if not transport.voiced(since=time.time() - 1.0):
                    break
                await asyncio.sleep(0.1)
    await session.worker.cancel()
    await task
    if not session.latency.turns:
        return {}
    stt = np.array([t.stt for t in session.latency.turns]) * 1000
    total = np.array([t.total for t in session.latency.turns]) * 1000
    return {
        "turns": len(total),
        "stt_p50_ms": round(float(np.median(stt))),
        "stt_p95_ms": round(float(np.percentile(stt, 95))),
        "v2v_p50_ms": round(float(np.median(total))),
        "v2v_p95_ms": round(float(np.percentile(total, 95))),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(run(0.0, 0))  # load and warm everything once, so neither run is "first"
    results = {
        "interim every 0.8 s": asyncio.run(run(0.8, args.rounds)),
        "interim off": asyncio.run(run(0.0, args.rounds)),
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "interim_effect.json").write_text(json.dumps(results, indent=2))
    lines = [
        "| | turns | STT p50 | STT p95 | voice-to-voice p50 | p95 |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['turns']} | {r['stt_p50_ms']} ms | {r['stt_p95_ms']} ms "
            f"| {r['v2v_p50_ms']} ms | {r['v2v_p95_ms']} ms |"
        )
    md = "\n".join(lines) + "\n"
    (OUT / "interim_effect.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
