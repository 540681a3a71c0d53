"""Everything a process shares between its calls, built once and passed down: the ``Runtime``.

A process (the room, ``python -m bots <avatar>``, a worker, a test) builds one ``Runtime`` at
start-up and hands it to every session it runs. It holds:

- the settings (read from the environment once, validated);
- the shared models (whisper.cpp, Piper voices, Silero, smart-turn, the embedder), each loaded
  on first use and then shared by every call (``LocalModels``);
- the memory store (opened on first use; None when memory is off);
- the LLM servers (Ollama or the embedded llama.cpp server, ``bots.llm_backend``);
- the background jobs (memory writes, end-of-call distillation, ``memory.jobs``);
- the avatar catalog (built-in avatars and people's own);
- the patches it installed in third-party code (``bots.patches``).

Nothing here is module-level state: two runtimes in one process (as tests build) share nothing.
A test builds a ``Runtime`` with its own ``models`` (anything with the ``Models`` methods) to
drive real sessions on scripted speech, text and audio without loading a model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar

from loguru import logger
from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer
from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams

from bots.config import AvatarCatalog
from bots.llm_backend import LLMServers
from bots.models import minilm_dir, minilm_onnx, piper_voice, whisper_ggml
from bots.patches import install_patches
from bots.settings import Settings, load_settings
from memory.embedder import Embedder
from memory.jobs import BackgroundJobs
from memory.store import MemoryStore
from processors.whisper_stt import Transcriber

T = TypeVar("T")

EVENT_LOOP = "uvloop"
"""The event loop every process of the product runs on (uvicorn's ``loop=`` name). libuv reads
a ready UDP socket up to 32 datagrams per wakeup; asyncio's own loop reads one per socket per
iteration, which 8 calls in one room could not keep up with (``bench/udp_drain.py``)."""


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on the product's event loop (``EVENT_LOOP``)."""
    import uvloop

    return uvloop.run(main)


class Models(Protocol):
    """The models a session is built from (``LocalModels``, or a test's scripted stand-ins)."""

    def transcriber(self) -> Transcriber:
        """The speech-to-text model every call shares."""
        ...

    def voice(self, name: str) -> Any:
        """A loaded Piper voice (shared) for a voice name or ``.onnx`` path."""
        ...

    def vad_model(self) -> Any:
        """A Silero model for one call (its own recurrent state on a shared session)."""
        ...

    def turn_analyzer(self, params: SmartTurnParams) -> BaseTurnAnalyzer:
        """A smart-turn analyzer for one call (on a shared session)."""
        ...

    def embedder(self) -> Embedder:
        """The sentence embedder of the memory store."""
        ...


class LocalModels:
    """The packaged models, each loaded once, on first use, and shared by every call.

    Loading is thread-safe (warm-up loads them from a worker thread while calls may start).

    Args:
        settings: which whisper model, how many threads, where prepared models are cached and
            where extra voices live.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _once(self, key: str, load: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = load()
            return self._loaded[key]

    def transcriber(self) -> Transcriber:
        """whisper.cpp (converted from the packaged model into the cache once)."""
        from processors.whisper_stt import SharedWhisper

        s = self.settings
        return self._once(
            "whisper",
            lambda: SharedWhisper(whisper_ggml(s.whisper_model, s.cache_dir), s.stt_threads),
        )

    def voice(self, name: str) -> Any:
        """A Piper voice: packaged, dropped into the voices folder, or a path."""
        path = piper_voice(name, self.settings.voices_dir)
        return self._once(f"piper:{path}", lambda: _load_piper(path))

    def vad_model(self) -> Any:
        """Silero for one call, on the process's one session."""
        from processors.vad_events import SileroOnCallState, load_silero_session

        return SileroOnCallState(self._once("silero", load_silero_session))

    def turn_analyzer(self, params: SmartTurnParams) -> BaseTurnAnalyzer:
        """Smart-turn v3 for one call, on the process's one session."""
        from processors.shared_smart_turn import SharedSmartTurnAnalyzer, load_smart_turn_session

        return SharedSmartTurnAnalyzer(
            session=self._once("smart-turn", load_smart_turn_session), params=params
        )

    def embedder(self) -> Embedder:
        """MiniLM under ONNX Runtime (exported into the cache once)."""
        return self._once(
            "embedder", lambda: Embedder(minilm_onnx(self.settings.cache_dir), minilm_dir())
        )


def _load_piper(path: Path) -> Any:
    import time

    from piper import PiperVoice

    started = time.perf_counter()
    # Alignments: each phoneme's samples, for word timing and the face's visemes.
    voice = PiperVoice.load(path, include_alignments=True)
    logger.info(f"Piper voice {path.name} loaded in {time.perf_counter() - started:.2f}s")
    return voice


class Runtime:
    """What one process shares between its calls (see the module docstring).

    Args:
        settings: the process's settings.
        models: the models sessions are built from.
        llm: the LLM servers (default: as the settings name them).
        memory: the memory store; None: opened from the settings on first use (if memory is
            on at all).
        jobs: the background jobs (default: a new scheduler).
        avatars: the avatar catalog (default: the settings' avatars folder, then built-ins).
        patches: the names of the patches installed in third-party code.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        models: Models,
        llm: LLMServers | None = None,
        memory: MemoryStore | None = None,
        jobs: BackgroundJobs | None = None,
        avatars: AvatarCatalog | None = None,
        patches: tuple[str, ...] = (),
    ):
        self.settings = settings
        self.models = models
        self.llm = llm or LLMServers(settings)
        self.jobs = jobs or BackgroundJobs()
        self.avatars = avatars or AvatarCatalog(settings.user_avatars_dir)
        self.patches = patches
        self._memory = memory
        self._memory_lock = threading.Lock()

    @classmethod
    def start(cls, settings: Settings | None = None) -> Runtime:
        """The product's runtime: real models, patches installed.

        Args:
            settings: default: read from the environment (raises SettingsError naming a bad
                variable).

        Raises:
            PatchVersionError: a patched library is not the version its patch was written for.
        """
        settings = settings or load_settings()
        patches = install_patches()
        logger.debug(f"patches installed: {', '.join(patches) or 'none'}")
        return cls(settings, models=LocalModels(settings), patches=patches)

    @property
    def memory(self) -> MemoryStore | None:
        """The memory store (opened once, with the embedder); None when memory is off.

        Blocking the first time (opens LanceDB, loads MiniLM): warm-up does it off the loop.
        """
        if not self.settings.memory:
            return None
        with self._memory_lock:
            if self._memory is None:
                self._memory = MemoryStore(self.settings.memory_location, self.models.embedder())
            return self._memory

    async def close(self, timeout_secs: float = 30.0) -> None:
        """Let background jobs (the last calls' memories) finish, up to ``timeout_secs``."""
        await self.jobs.drain(timeout_secs)
