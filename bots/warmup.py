"""Load and exercise every in-process model once, before anyone talks.

The first inference of ONNX Runtime and whisper.cpp pays for allocations and lazy set-up;
paying it at start-up keeps it out of the first turn's latency.
"""

from __future__ import annotations

import time

import httpx
from loguru import logger

from bots.config import AvatarConfig
from bots.llm_backend import LLMUnavailableError, resolve_backend
from bots.models import piper_voice, whisper_ggml
from bots.settings import get_settings
from processors.piper_tts import shared_voice, synthesis_config
from processors.whisper_stt import shared_whisper


def warm_up_models(avatars: list[AvatarConfig]) -> None:
    """Prepare (convert if needed), load and run each model the avatars use."""
    started = time.perf_counter()
    settings = get_settings()
    shared_whisper(whisper_ggml(settings.whisper_model), settings.stt_threads)  # warms on load
    if settings.memory:
        from memory.session import open_store

        store = open_store(settings.memory_location)
        store.embed("warm up")  # loads MiniLM once
        try:
            store.optimize()  # indexes once the tables are big (bench/memory_retrieval.py)
        except Exception as e:  # an index is an optimization: never refuse to start over it
            logger.warning(f"memory: could not index the store ({e}); searches stay exact")
    for avatar in avatars:
        voice = shared_voice(piper_voice(avatar.voice.piper_voice))
        for _ in voice.synthesize("Hello.", syn_config=synthesis_config(avatar.voice)):
            pass
    logger.info(f"models warm in {time.perf_counter() - started:.1f}s")


def warm_llm(avatars: list[AvatarConfig], wait_secs: float = 0.0) -> None:
    """Ask the LLM for one token with each avatar's system prompt (best effort).

    The first request to a fresh llama.cpp server pays for paging the model in and for
    evaluating the system prompt; the prompt cache then starts the first real turn warm.

    Args:
        avatars: whose system prompts to send.
        wait_secs: how long to wait for an LLM server that is still starting (``make run``
            starts the room and the LLM server side by side).
    """
    deadline = time.monotonic() + wait_secs
    for avatar in avatars:
        try:
            while True:
                try:
                    backend = resolve_backend(avatar.llm.ollama_model)
                    break
                except LLMUnavailableError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1.0)
            httpx.post(
                f"{backend.base_url}/chat/completions",
                json={
                    "model": backend.model,
                    "messages": [
                        {"role": "system", "content": avatar.system_prompt()},
                        {"role": "user", "content": "Hi"},
                    ],
                    "max_tokens": 1,
                },
                timeout=60,
            )
        except (LLMUnavailableError, httpx.HTTPError) as e:
            logger.info(f"LLM not warmed for {avatar.id}: {e}")


async def prefill(base_url: str, model: str, messages: list[dict]) -> None:
    """Have the LLM server read a prompt prefix now, so the next turn finds it cached.

    Used on reconnect: the restored conversation is a few hundred tokens that llama.cpp would
    otherwise read at the first reply (~1-2 s on 2 cores); read while the greeting plays, the
    first reply only pays for the new turn. Best effort: failures are only logged.
    """
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            await client.post(
                f"{base_url}/chat/completions",
                json={"model": model, "messages": messages, "max_tokens": 1},
            )
    except httpx.HTTPError as e:
        logger.debug(f"prefill skipped: {e}")
