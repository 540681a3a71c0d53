"""Load and exercise every in-process model once, before anyone talks.

The first inference of ONNX Runtime and whisper.cpp pays for allocations and lazy set-up;
paying it at start-up keeps it out of the first turn's latency.
"""

from __future__ import annotations

import time

from loguru import logger

from bots.config import AvatarConfig
from bots.models import piper_voice, whisper_ggml
from bots.settings import get_settings
from processors.piper_tts import shared_voice, synthesis_config
from processors.whisper_stt import shared_whisper


def warm_up_models(avatars: list[AvatarConfig]) -> None:
    """Prepare (convert if needed), load and run each model the avatars use."""
    started = time.perf_counter()
    settings = get_settings()
    shared_whisper(whisper_ggml(settings.whisper_model), settings.stt_threads)  # warms on load
    for avatar in avatars:
        voice = shared_voice(piper_voice(avatar.voice.piper_voice))
        for _ in voice.synthesize("Hello.", syn_config=synthesis_config(avatar.voice)):
            pass
    logger.info(f"models warm in {time.perf_counter() - started:.1f}s")
