"""Health of each part a call needs (LLM, STT, TTS, memory), with what to do when one is down.

Shown in the lobby (polled every 5 s) and on the talk page. Every check is cheap: files on disk,
one HTTP probe of the LLM server, one read of the memory store (opened once per process).
"""

from __future__ import annotations

from bots.config import AvatarConfig
from bots.models import ModelMissingError, piper_voice
from bots.runtime import Runtime
from web.guards import without_paths

MODELS_FIX = "Run `make models` on the server."


def _stt(runtime: Runtime) -> dict:
    model = runtime.settings.whisper_model
    if model == "tiny.en" and not (runtime.settings.cache_dir / "ggml-tiny.en.bin").exists():
        fix = f"Whisper is not prepared. {MODELS_FIX}"
        return {"ok": False, "engine": "whisper.cpp", "fix": fix}
    return {"ok": True, "engine": "whisper.cpp", "model": model}


def _tts(runtime: Runtime, avatars: list[AvatarConfig]) -> dict:
    for avatar in avatars:
        try:
            piper_voice(avatar.voice.piper_voice, runtime.settings.voices_dir)
        except ModelMissingError as e:
            return {"ok": False, "engine": "piper", "fix": f"{avatar.name}'s voice: {e}"}
    return {"ok": True, "engine": "piper"}


def _memory(runtime: Runtime) -> dict:
    settings = runtime.settings
    if not settings.memory:
        return {"ok": True, "engine": "off", "note": "Memory is off (AVATARS_MEMORY=0)."}
    try:
        # Opened once per process (with its embedder, found or prepared then): after that this
        # is one small read, cheap enough for the lobby's polling.
        store = runtime.memory
        assert store is not None
        store.schema_version()
    except ModelMissingError as e:
        return {"ok": False, "engine": "lancedb", "fix": str(e)}
    except Exception as e:  # a broken database must show here, not as a silent avatar
        return {
            "ok": False,
            "engine": "lancedb",
            "fix": f"The memory database at {settings.memory_location} cannot be opened ({e}). "
            "Check that the disk is writable, or set AVATARS_MEMORY_URI to another place.",
        }
    problem = store.writable()
    if problem:
        return {
            "ok": False,
            "engine": "lancedb",
            "fix": f"Memories cannot be saved: {problem}. Calls go on without saving them; "
            "free disk space or make the memory folder writable (AVATARS_MEMORY_URI).",
        }
    return {"ok": True, "engine": "lancedb"}


def health_report(runtime: Runtime, avatars: list[AvatarConfig]) -> dict:
    """``{"ok", "llm", "stt", "tts", "memory"}``; each part has ``ok`` and, when down, ``fix``.

    Public (the sign-in page shows it), so a ``fix`` names files but not their folders.
    """
    parts = {
        "llm": runtime.llm.health(),
        "stt": _stt(runtime),
        "tts": _tts(runtime, avatars),
        "memory": _memory(runtime),
    }
    for part in parts.values():
        if "fix" in part:
            part["fix"] = without_paths(part["fix"])
    return {"ok": all(p["ok"] for p in parts.values()), **parts}
