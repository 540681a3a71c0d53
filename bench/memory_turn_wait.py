"""What memory retrieval adds to a spoken turn: the wait between the context reaching the
retrieval processor and the LLM getting it, in the real voice graph.

Retrieval starts when the STT has the final transcript (``MemoryRetrieval.prefetch``), while
smart-turn is still deciding whether the turn is over, so a turn only waits for what is left of
the search. This plays Piper-synthesized questions in real time through the whole graph
(Silero + smart-turn, whisper.cpp, the embedded llama.cpp server, Piper) for a person with
``--cards`` memory cards, and reports the per-turn wait (p50/p95) next to the full recall time.

    python -m bench.memory_turn_wait [--cards 1000] [--turns 24]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.servers import free_port, llm_server
from bots.config import BUILTIN_AVATARS
from bots.runtime import Runtime
from bots.session import VoiceSession
from bots.warmup import warm_up_models
from memory.store import MemoryStore
from testkit.harness import ScriptedTransport
from testkit.speech import piper_say

QUESTIONS = [
    "What is my dog called?",
    "Where do I live again?",
    "What kind of music do I like?",
    "Do you remember my sister's name?",
    "What did we talk about last time?",
    "What is my favorite color?",
]
FACTS = [
    "Sam's dog is called Biscuit.",
    "Sam lives in Lisbon.",
    "Sam likes jazz.",
    "Sam's sister is called Ana.",
    "Sam's favorite color is green.",
]


def seed(store: MemoryStore, cards: int) -> None:
    """``cards`` cards for the person: the facts above plus numbered filler facts."""
    texts = FACTS + [f"Sam once mentioned topic number {i} in passing." for i in range(cards)]
    vectors = store._embedder.embed(texts[:cards])  # batch: one embedding per card
    now = time.time()
    store.cards.add(
        [
            {
                "id": f"c{i}",
                "user_id": "sam",
                "avatar_id": "",
                "scope": "user",
                "key": "",
                "text": text,
                "source_turn_ids": [],
                "created": now,
                "updated": now,
                "vector": vector,
            }
            for i, (text, vector) in enumerate(zip(texts[:cards], vectors, strict=True))
        ]
    )


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0-1), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(cards: int, turns: int) -> dict:
    """Play ``turns`` questions and collect the per-turn memory waits."""
    lumina = BUILTIN_AVATARS.load("lumina")
    started = Runtime.start()
    store = MemoryStore(tempfile.mkdtemp(prefix="turn-wait-"), started.models.embedder())
    runtime = Runtime(started.settings, models=started.models, memory=store)
    warm_up_models(runtime, [lumina])  # as the server does before anyone connects
    seed(store, cards)
    backend = runtime.llm.resolve(lumina.llm.ollama_model)
    session = VoiceSession(
        lumina,
        ScriptedTransport,
        runtime,
        backend=backend,
        user_id="sam",
        greet=False,
        idle_timeout_secs=None,
    )
    assert isinstance(session.transport, ScriptedTransport) and session.retrieval
    transport, retrieval = session.transport, session.retrieval
    await session.prepare()  # as the session manager does: loads the person's memories
    task = asyncio.create_task(session.run())
    await asyncio.sleep(2.0)
    recall_ms = []
    for i in range(turns):
        answered = len(retrieval.waited_ms)
        replies = len(session.turns.turns("assistant"))
        await transport.mic.say(piper_say(QUESTIONS[i % len(QUESTIONS)]))
        deadline = time.monotonic() + 90
        # Like a person: ask, listen to the whole answer, then ask the next question.
        while time.monotonic() < deadline and (
            len(retrieval.waited_ms) == answered or len(session.turns.turns("assistant")) == replies
        ):
            await asyncio.sleep(0.05)
        if retrieval.last:
            recall_ms.append(retrieval.last.elapsed_ms)
        await asyncio.sleep(1.0)
    await session.worker.cancel()
    await task
    waits = retrieval.waited_ms
    return {
        "cards": cards,
        "turns": len(waits),
        "wait_ms": {"p50": statistics.median(waits), "p95": pct(waits, 0.95), "all": waits},
        "recall_ms": {"p50": statistics.median(recall_ms), "p95": pct(recall_ms, 0.95)},
    }


def main() -> None:
    """Run the benchmark and write ``bench/results/memory_turn_wait.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    port = free_port()
    # Our own LLM server, never a developer's Ollama (same rule as the tests).
    os.environ.update(
        AVATARS_LLM_BACKEND="embedded",
        AVATARS_LLM_PORT=str(port),
        AVATARS_DATA_DIR=tempfile.mkdtemp(prefix="turn-wait-data-"),  # not the user's memories
    )
    server = llm_server(port).start()
    try:
        result = asyncio.run(run(args.cards, args.turns))
    finally:
        server.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory_turn_wait.json").write_text(json.dumps(result, indent=2))
    w, r = result["wait_ms"], result["recall_ms"]
    print(
        f"{result['cards']} cards, {result['turns']} turns: turn waits p50 {w['p50']:.1f} ms,"
        f" p95 {w['p95']:.1f} ms (the whole recall: p50 {r['p50']:.1f}, p95 {r['p95']:.1f} ms)"
    )


if __name__ == "__main__":
    main()
