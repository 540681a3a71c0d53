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

from bench.utterances import UTTERANCES, synthesize
from bots.config import BUILTIN_AVATARS
from bots.runtime import Runtime
from bots.session import VoiceSession
from testkit.harness import ScriptedTransport

OUT = Path(__file__).parent / "results"


async def run(runtime: Runtime, interval: float, rounds: int) -> dict:
    lumina = BUILTIN_AVATARS.load("lumina")
    backend = await asyncio.to_thread(runtime.llm.resolve, lumina.llm.ollama_model)
    session = VoiceSession(
        lumina,
        ScriptedTransport,
        runtime,
        backend=backend,
        user_id="bench-interim",
        greet=False,
        idle_timeout_secs=None,
    )
    assert isinstance(session.transport, ScriptedTransport)
    transport = session.transport
    session.stt._interim_interval = interval
    task = asyncio.create_task(session.run())
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
    runtime = Runtime.start()
    asyncio.run(run(runtime, 0.0, 0))  # load and warm everything once, so neither is "first"
    results = {
        "interim every 0.8 s": asyncio.run(run(runtime, 0.8, args.rounds)),
        "interim off": asyncio.run(run(runtime, 0.0, args.rounds)),
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
