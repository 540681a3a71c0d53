"""Load and exercise every in-process model once, before anyone talks.

The first inference of ONNX Runtime and whisper.cpp pays for allocations and lazy set-up;
paying it at start-up keeps it out of the first turn's latency.
"""

from __future__ import annotations

import asyncio
import time

import httpx
from loguru import logger
from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams

from bots.config import AvatarConfig
from bots.llm_backend import LLMUnavailableError
from bots.runtime import Runtime


def warm_up_models(runtime: Runtime, avatars: list[AvatarConfig]) -> None:
    """Prepare (convert if needed), load and run each model the avatars use (blocking)."""
    started = time.perf_counter()
    runtime.models.transcriber()  # warms on load
    runtime.models.vad_model()
    runtime.models.turn_analyzer(SmartTurnParams())
    if store := runtime.memory:
        store.embed("warm up")  # loads MiniLM once
        try:
            store.optimize()  # indexes once the tables are big (bench/memory_retrieval.py)
        except Exception as e:  # an index is an optimization: never refuse to start over it
            logger.warning(f"memory: could not index the store ({e}); searches stay exact")
    for avatar in avatars:
        voice = runtime.models.voice(avatar.voice.piper_voice)
        for _ in voice.synthesize("Hello.", syn_config=avatar.voice.synthesis_config()):
            pass
    logger.info(f"models warm in {time.perf_counter() - started:.1f}s")


async def warm_llm(runtime: Runtime, avatars: list[AvatarConfig], wait_secs: float = 0.0) -> None:
    """Ask the LLM for one token with each avatar's system prompt (best effort).

    The first request to a fresh llama.cpp server pays for paging the model in and for
    evaluating the system prompt; the prompt cache then starts the first real turn warm.
    Cancelling it (a server shutting down while the LLM is still starting) stops it at once.

    Args:
        runtime: the process's runtime (its LLM servers).
        avatars: whose system prompts to send.
        wait_secs: how long to wait for an LLM server that is still starting (``make run``
            starts the room and the LLM server side by side).
    """
    deadline = time.monotonic() + wait_secs
    for avatar in avatars:
        try:
            while True:
                try:
                    # Probing is blocking HTTP with 1 s timeouts: a thread, one probe at a time.
                    resolve = runtime.llm.resolve
                    backend = await asyncio.to_thread(resolve, avatar.llm.ollama_model)
                    break
                except LLMUnavailableError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(1.0)
            messages = [
                {"role": "system", "content": avatar.system_prompt()},
                {"role": "user", "content": "Hi"},
            ]
            await prefill(backend.base_url, backend.model, messages, backend.background_fields())
        except LLMUnavailableError as e:
            logger.info(f"LLM not warmed for {avatar.id}: {e}")


async def prefill(
    base_url: str, model: str, messages: list[dict], fields: dict | None = None
) -> None:
    """Have the LLM server read a prompt prefix now, so the next turn finds it cached.

    Used when a session starts: its system prompt and restored conversation are a few hundred
    tokens that llama.cpp would otherwise read at the first reply (~1-2 s on 2 cores); read
    while the greeting plays, the first reply only pays for the new turn. ``fields`` put it in
    the session's slot (``LLMBackend.request_fields``). Best effort: failures are only logged.
    """
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            await client.post(
                f"{base_url}/chat/completions",
                json={"model": model, "messages": messages, "max_tokens": 1, **(fields or {})},
            )
    except httpx.HTTPError as e:
        logger.debug(f"prefill skipped: {e}")
