"""Build one voice session's frame graph from an avatar config and a transport.

The graph, top to bottom, is the one in DESIGN.md::

    transport.input()        audio from the browser / mic
    stt                      whisper.cpp; final (and interim) transcriptions
    user_aggregator          Silero VAD + smart-turn decide turns; appends the user turn
    user_audio_end           the person's audio goes no further (nothing below uses it)
    memory                   long-term memory: puts what the avatar remembers before the turn
    llm                      Ollama or the embedded llama.cpp server, streaming
    reply_text               keeps the reply as generated (for the LLM's prompt cache)
    speech_chunks            first clause of each reply early, then whole sentences
    tts                      Piper, per chunk as tokens arrive
    transport.output()       audio back to the person
    assistant_aggregator     records what was actually spoken

VAD sits inside the user aggregator in Pipecat 1.x and broadcasts its speech events both ways,
so STT (upstream of it) still segments on them. Interruptions come from the user-turn start
strategy (``processors.barge_in``): Pipecat then flushes queued LLM tokens, TTS audio and
output buffers, cancels the LLM stream, and the assistant aggregator keeps only the text whose
audio was actually played, marked interrupted.

Every finished turn also goes to the session's memory writer (``memory.writer``), which stores
it and learns from it in the background; reconnecting restores the last conversation.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from loguru import logger
from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import EndFrame, Frame, InterruptionFrame, TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.aggregators.llm_text_processor import LLMTextProcessor
from pipecat.processors.frame_processor import FrameDirection
from pipecat.processors.frameworks.rtvi.frames import RTVIServerMessageFrame
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.transports.base_transport import BaseTransport
from pipecat.turns.empty_user_turn import EmptyUserTurnConfig
from pipecat.turns.user_stop import (
    SpeechTimeoutUserTurnStopStrategy,
    TurnAnalyzerUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from bots import wait_for
from bots.config import AvatarConfig, TurnTakingConfig
from bots.llm_backend import LLMBackend, resolve_backend
from bots.models import whisper_ggml
from bots.settings import get_settings
from bots.warmup import prefill
from memory.distill import Distiller
from memory.session import SessionMemory, epoch, open_store
from memory.store import MemoryStore
from processors.barge_in import GuardedUserTurnStartStrategy
from processors.bot_speaking import BotSpeakingObserver
from processors.first_clause import FirstClauseTextAggregator
from processors.memory_retrieval import MemoryRetrieval
from processors.piper_tts import LocalPiperTTSService
from processors.playback_gate import PlaybackGate
from processors.reply_text import ReplyTextRecorder
from processors.shared_smart_turn import SharedSmartTurnAnalyzer
from processors.turn_latency import TurnLatency, TurnLatencyObserver
from processors.user_audio_end import user_audio_end
from processors.vad_events import ReportingSileroVAD, VADListener
from processors.whisper_stt import WhisperCppSTTService

# Per-frame waits in Pipecat's transports cost 3 loop iterations each with wait_for2: see
# bots/wait_for.py (8 calls in one room could not keep up with their own audio).
wait_for.install()

# When a noise interrupted the bot and produced no words, the bot resumes instead of
# going silent: a cough must not end the reply for good.
RESUME_AFTER_NOISE_PROMPT = (
    "You were cut off by a short sound from the user (a cough or an 'mm-hm'), not a "
    "question. Briefly continue what you were saying."
)


def user_turn_params(
    turns: TurnTakingConfig, listeners: list[VADListener] | None = None
) -> LLMUserAggregatorParams:
    """VAD, turn start (barge-in guard) and turn stop (smart-turn) for one avatar.

    ``listeners`` hear the VAD's transitions first-hand (see ``processors.vad_events``).
    """
    vad = ReportingSileroVAD(
        listeners=listeners,
        params=VADParams(
            confidence=turns.vad_confidence,
            start_secs=turns.vad_start_secs,
            stop_secs=turns.vad_stop_secs,
            min_volume=turns.vad_min_volume,
        ),
    )
    if turns.smart_turn:
        stop = TurnAnalyzerUserTurnStopStrategy(
            turn_analyzer=SharedSmartTurnAnalyzer(
                params=SmartTurnParams(stop_secs=turns.smart_turn_max_wait_secs)
            )
        )
    else:
        stop = SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=turns.vad_stop_secs)
    start = GuardedUserTurnStartStrategy(
        barge_in=turns.barge_in,
        grace_ms=turns.barge_in_grace_ms,
        min_speech_ms=turns.barge_in_min_speech_ms,
        vad_start_secs=turns.vad_start_secs,
    )
    return LLMUserAggregatorParams(
        vad_analyzer=vad,
        user_turn_strategies=UserTurnStrategies(start=[start], stop=[stop]),
        empty_user_turn=EmptyUserTurnConfig(interrupted_prompt=RESUME_AFTER_NOISE_PROMPT),
    )


class LocalLLMService(OpenAILLMService):
    """OpenAI-compatible chat completions from Ollama or the embedded llama.cpp server.

    Neither knows the "developer" role that Pipecat uses for instructions it adds mid-talk
    (e.g. "resume after a noise"): llama-cpp-python's server answers 500 to it, Ollama ignores
    it. As Pipecat's own Ollama service does, such messages are sent as user messages.
    """

    supports_developer_role = False

    def __init__(self, **kwargs):
        """As ``OpenAILLMService``."""
        super().__init__(**kwargs)
        self._held_for_interruption: list[tuple[Frame, FrameDirection]] | None = None

    async def _start_interruption(self):
        # Cancelling the reply's stream pushes its LLMFullResponseEndFrame (from the stream's
        # `finally`) *before* Pipecat pushes the InterruptionFrame on. The text aggregator
        # below then flushes the half sentence it was holding into TTS, and the person hears
        # it after they barged in. So frames pushed while cancelling wait for the interruption.
        self._held_for_interruption = []
        await super()._start_interruption()

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        """Push a frame, holding the cancelled reply's last frames behind its interruption."""
        held = self._held_for_interruption
        if held is not None and not isinstance(frame, InterruptionFrame):
            held.append((frame, direction))
            return
        await super().push_frame(frame, direction)
        if held is not None:
            self._held_for_interruption = None
            for f, d in held:
                await super().push_frame(f, d)


def build_llm(avatar: AvatarConfig, backend: LLMBackend) -> OpenAILLMService:
    """Streaming chat completions against Ollama or the embedded server."""
    return LocalLLMService(
        base_url=backend.base_url,
        api_key="local",  # neither local server checks it; the client requires one
        settings=OpenAILLMService.Settings(
            model=backend.model,
            system_instruction=avatar.system_prompt(),
            temperature=avatar.llm.temperature,
            top_p=avatar.llm.top_p,
            max_tokens=avatar.llm.max_tokens,
        ),
    )


@dataclass
class TranscriptEntry:
    """One finished turn, as it was actually spoken."""

    role: str  # "user" or "assistant"
    text: str
    interrupted: bool = False


@dataclass
class VoiceSession:
    """A built (not yet running) session: its worker and what tests and the UI look at."""

    avatar: AvatarConfig
    backend: LLMBackend
    worker: PipelineWorker
    context: LLMContext
    latency: TurnLatencyObserver
    memory: SessionMemory | None = None
    transcript: list[TranscriptEntry] = field(default_factory=list)
    services: dict = field(default_factory=dict)
    last_latency: TurnLatency | None = None
    user_speaking: bool = False
    awaiting_reply: bool = False
    bot_speaking: bool = False
    ending: bool = False
    voice: BotSpeakingObserver | None = None
    _prefill: asyncio.Task | None = None

    @property
    def mid_turn(self) -> bool:
        """Someone is talking, the bot owes a reply, or its voice played less than 1 s ago.

        The last clause covers a reply pausing between sentences while the next is synthesized.
        """
        audible = self.voice is not None and self.voice.quiet_secs() < 1.0
        return self.user_speaking or self.awaiting_reply or self.bot_speaking or audible

    async def prepare(self) -> None:
        """Before the session runs: restore the last conversation with this person."""
        if self.memory:
            restored = await self.memory.open()
            if restored:
                self.context.add_messages(restored)
                logger.info(
                    f"[{self.latency.session}] restored {len(restored)} turns of the last"
                    " conversation"
                )
                system = {"role": "system", "content": self.avatar.system_prompt()}
                self._prefill = asyncio.create_task(
                    prefill(self.backend.base_url, self.backend.model, [system, *restored])
                )

    async def greet(self) -> None:
        """Say the greeting, by name to someone the avatar knows (kept in the context)."""
        greeting = self.avatar.greeting_for(self.memory.name if self.memory else None)
        if greeting:
            await self.worker.queue_frames([TTSSpeakFrame(greeting)])

    async def end_after_turn(self, reason: str, *, max_wait_secs: float = 60.0) -> None:
        """End the call once the current turn is over, telling the client why.

        Used when the person's sign-in expires or ends mid-call: the reply they are hearing is
        not cut off. The client gets an RTVI server message ``{"type": "call-ended",
        "reason": ...}`` before the call closes. ``max_wait_secs=0`` ends it now ("forget me").
        """
        if self.ending:
            return
        self.ending = True
        deadline = time.monotonic() + max_wait_secs
        while self.mid_turn and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        logger.info(f"[{self.latency.session}] ending the call: {reason}")
        await self.worker.queue_frames(
            [RTVIServerMessageFrame(data={"type": "call-ended", "reason": reason}), EndFrame()]
        )

    async def finish(self) -> None:
        """After the session: finish writing its memories (last chunk, distillation)."""
        if self.memory:
            await self.memory.close()


def build_session(
    avatar: AvatarConfig,
    transport: BaseTransport,
    *,
    backend: LLMBackend | None = None,
    user_id: str,
    session_id: str = "",
    memory: MemoryStore | bool = True,
    idle_timeout_secs: float | None = 300,
) -> VoiceSession:
    """Wire the frame graph for one connection.

    Args:
        avatar: which character to be.
        transport: the connection (SmallWebRTC, WebSocket, local audio, Daily).
        backend: LLM server to use; resolved (Ollama, else embedded) when omitted.
        session_id: this conversation's id (stored with its turns; labels logs).
        user_id: who is talking (whose memories are read and written).
        memory: the memory store to use; True: the configured one (unless
            ``AVATARS_MEMORY=0``); False: remember nothing.
        idle_timeout_secs: end the session after this long with nobody speaking.

    Raises:
        LLMUnavailableError: no LLM server answers (the message says how to start one).
        ModelMissingError: a model package is missing (the message says how to install it).
    """
    settings = get_settings()
    backend = backend or resolve_backend(avatar.llm.ollama_model)
    logger.info(f"[{session_id}] avatar {avatar.id}: LLM {backend.describe()}")

    stt = WhisperCppSTTService(
        model=whisper_ggml(settings.whisper_model),
        n_threads=settings.stt_threads,
        interim_interval_secs=settings.stt_interim_secs,
    )
    # The STT starts transcribing when speech pauses; the bot's voice pauses when the user
    # starts talking (and resumes if it was only a noise).
    gate = PlaybackGate(name=session_id or avatar.id)
    listeners = [VADListener(on_pause=stt.speech_paused, on_resume=stt.speech_resumed)]
    if avatar.turn_taking.barge_in and avatar.turn_taking.pause_on_speech:
        listeners.append(
            VADListener(on_onset=gate.pause, on_false_start=gate.resume, on_stop=gate.resume)
        )
    context = LLMContext()
    user_aggregator, assistant_aggregator = LLMContextAggregatorPair(
        context, user_params=user_turn_params(avatar.turn_taking, listeners)
    )
    session_memory = _session_memory(avatar, backend, memory, user_id, session_id)
    retrieval = None
    if session_memory:
        retrieval = MemoryRetrieval(
            session_memory.recaller,
            avatar_name=avatar.name,
            timeout_secs=settings.memory_timeout_ms / 1000,
        )

        @stt.event_handler("on_final_transcript")
        async def _prefetch(_stt, text: str):
            retrieval.prefetch(text)

    llm = build_llm(avatar, backend)
    reply_text = ReplyTextRecorder()
    speech_chunks = LLMTextProcessor(text_aggregator=FirstClauseTextAggregator())
    tts = LocalPiperTTSService(voice=avatar.voice)

    output = transport.output()
    gate.attach(output)
    graph = [
        transport.input(),
        stt,
        user_aggregator,
        user_audio_end(),
        retrieval,
        llm,
        reply_text,
        speech_chunks,
        tts,
        output,
        assistant_aggregator,
    ]
    pipeline = Pipeline([p for p in graph if p is not None])
    latency = TurnLatencyObserver(session=session_id or avatar.id)
    voice = BotSpeakingObserver()
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(enable_metrics=True, enable_usage_metrics=True),
        observers=[latency, voice, gate],
        idle_timeout_secs=idle_timeout_secs,
        name=f"{avatar.id}-{session_id}" if session_id else None,
    )
    session = VoiceSession(
        avatar=avatar,
        backend=backend,
        worker=worker,
        context=context,
        latency=latency,
        memory=session_memory,
        services={"stt": stt, "llm": llm, "tts": tts, "memory": retrieval},
        voice=voice,
    )

    async def _remember_latency(lat: TurnLatency):
        session.last_latency = lat

    latency.add_listener(_remember_latency)

    # The page's interrupt button: the same flush and cancel as a spoken barge-in.
    @worker.rtvi.event_handler("on_client_message")
    async def _on_client_message(_rtvi, message):
        if message.type == "interrupt":
            logger.info(f"[{latency.session}] interrupted from the page")
            await worker.rtvi.interrupt_bot()

    # Turn state, so a call can end between turns (``VoiceSession.end_after_turn``).
    @user_aggregator.event_handler("on_user_turn_started")
    async def _on_user_started(_aggregator, _strategy):
        session.user_speaking = True

    @assistant_aggregator.event_handler("on_assistant_turn_started")
    async def _on_bot_started(_aggregator):
        session.bot_speaking = True

    @user_aggregator.event_handler("on_user_turn_stopped")
    async def _on_user_turn(_aggregator, _strategy, message):
        session.user_speaking = False
        session.awaiting_reply = bool(message.content)
        if message.content:
            session.transcript.append(TranscriptEntry("user", message.content))
            if session_memory:
                now = time.time()
                started = epoch(message.timestamp, now)
                session_memory.writer.turn("user", message.content, started=started, ended=now)

    @assistant_aggregator.event_handler("on_assistant_turn_stopped")
    async def _on_assistant_turn(_aggregator, message):
        session.bot_speaking = session.awaiting_reply = False
        reply_text.restore_spacing(context)
        if message.content:
            entry = TranscriptEntry("assistant", message.content, message.interrupted)
            session.transcript.append(entry)
            if message.interrupted:
                logger.info(f"[{latency.session}] interrupted; heard: {message.content!r}")
            if session_memory:
                now = time.time()
                lat, session.last_latency = session.last_latency, None
                session_memory.writer.turn(
                    "assistant",
                    message.content,
                    started=epoch(message.timestamp, now),
                    ended=now,
                    interrupted=message.interrupted,
                    latency=lat.as_dict() if lat else None,
                )

    return session


def _session_memory(
    avatar: AvatarConfig,
    backend: LLMBackend,
    memory: MemoryStore | bool,
    user_id: str,
    session_id: str,
) -> SessionMemory | None:
    """The session's memory, or None when memory is off."""
    settings = get_settings()
    if memory is False or (memory is True and not settings.memory):
        return None
    store = memory if isinstance(memory, MemoryStore) else open_store(settings.memory_location)
    return SessionMemory(
        store,
        user_id=user_id,
        avatar_id=avatar.id,
        avatar_name=avatar.name,
        session_id=session_id or f"{avatar.id}-{int(time.time() * 1000)}",
        distiller=Distiller(backend.base_url, backend.model) if settings.memory_distill else None,
        restore_tokens=settings.memory_restore_tokens,
    )
