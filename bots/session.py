"""One call: a person, an avatar, a transport, and the frame graph between them.

``VoiceSession(avatar, transport, runtime, ...)`` builds the parts of the graph from the
process's shared models (``bots.runtime``), lays them out as ``bots.pipeline`` says, and reacts
to what the graph reports. Its event handlers are its methods; what they learn goes to one
place, the session's :class:`~processors.turn_state.TurnState` (who is speaking, what was
heard), and to the person's memory.

Every finished turn goes to the session's memory writer (``memory.writer``), which stores it
and learns from it in the background; reconnecting restores the last conversation.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Protocol, cast

from loguru import logger
from pipecat.audio.filters.base_audio_filter import BaseAudioFilter
from pipecat.frames.frames import EndFrame, ErrorFrame, TTSSpeakFrame
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext, LLMContextMessage
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.processors.frameworks.rtvi.frames import RTVIServerMessageFrame
from pipecat.transports.base_transport import BaseTransport
from pipecat.workers.runner import WorkerRunner

from bots.config import AvatarConfig
from bots.llm_backend import LLMBackend
from bots.pipeline import RESUME_AFTER_NOISE_PROMPT, VoiceGraph, build_llm, user_turn_params
from bots.runtime import Runtime
from bots.sentence_end import SentenceEndScorer
from bots.warmup import prefill
from memory.distill import Distiller
from memory.prompting import FACTS_HEADER, Profile, profile_for
from memory.recall import SCAFFOLDING
from memory.session import SessionMemory, epoch
from processors.answer_prefill import AnswerPrefill
from processors.emotion_tags import EmotionTagFilter
from processors.face_cues import FaceCueSender
from processors.memory_retrieval import MemoryRetrieval
from processors.piper_tts import LocalPiperTTSService
from processors.playback_gate import PlaybackGate
from processors.preemptive_turn import PreemptionStats
from processors.reply_cap import ReplyCap
from processors.reply_hold import PreemptiveReplyHold
from processors.reply_text import ReplyTextRecorder
from processors.scaffolding_guard import ScaffoldingGuard
from processors.stage_directions import StageDirectionFilter
from processors.turn_latency import TurnLatency, TurnLatencyObserver
from processors.turn_state import TurnState
from processors.vad_events import VADListener
from processors.whisper_stt import WhisperCppSTTService
from transports import output_sample_rate

LLM_APOLOGY = "Sorry, I lost my train of thought there. Could you say that again?"
STT_APOLOGY = "Sorry, I didn't catch that. Could you say it again?"
TTS_FAILED = {
    "type": "error",
    "part": "tts",
    "message": "The avatar's voice failed for a moment; its reply is in the transcript.",
}
APOLOGY_EVERY_SECS = 10.0

SMALL_MODEL_SENTENCES = 3
"""A small model's replies end here (the persona's own "one to three short sentences")."""


def sentence_cap(avatar: AvatarConfig, profile: Profile) -> int | None:
    """Most sentences per reply: the avatar's ``llm.max_sentences``, else 3 for small models."""
    if avatar.llm.max_sentences is not None:
        return avatar.llm.max_sentences or None  # 0: never cut
    return SMALL_MODEL_SENTENCES if profile == "small" else None


class TransportFactory(Protocol):
    """Opens the session's transport, with the session's filter on the bot's outgoing audio.

    ``functools.partial(webrtc_transport, connection)`` is one (see ``transports/``).
    """

    def __call__(self, *, audio_out_filter: BaseAudioFilter | None) -> BaseTransport:
        """The transport."""
        ...


class VoiceSession:
    """A built (not yet running) call; :meth:`run` runs it until it ends.

    Args:
        avatar: which character to be.
        transport: opens the connection (SmallWebRTC, WebSocket, local audio, Daily).
        runtime: the process's shared models, memory store, LLM servers and jobs.
        backend: the LLM server to use (``runtime.llm.resolve``).
        user_id: who is talking (whose memories are read and written).
        session_id: this conversation's id (stored with its turns; labels logs).
        remember: whether to read and write the person's memories (if the runtime has a store).
        greet: say the greeting when the client connects.
        llm_slot: the embedded engine's slot this session holds (its prompt cache), if any.
        idle_timeout_secs: end the call after this long with nobody speaking.
        reader: the engine that reads the person's words for a sentence end
            (``bots.sentence_end``); default: ``backend`` itself, when it is llama-server.
    """

    def __init__(
        self,
        avatar: AvatarConfig,
        transport: TransportFactory,
        runtime: Runtime,
        *,
        backend: LLMBackend,
        user_id: str,
        session_id: str = "",
        remember: bool = True,
        greet: bool = True,
        llm_slot: int | None = None,
        idle_timeout_secs: float | None = 300,
        reader: LLMBackend | None = None,
    ):
        self.avatar = avatar
        self.runtime = runtime
        self.backend = backend
        self.id = session_id or f"{avatar.id}-{uuid.uuid4().hex[:10]}"
        self.greets = greet
        self.llm_slot = llm_slot
        self.ending = False
        self._apologized = float("-inf")
        self.last_latency: TurnLatency | None = None
        self.turns = TurnState()
        self.context = LLMContext()
        self.memory = self._session_memory(user_id) if remember else None
        logger.info(f"[{self.id}] avatar {avatar.id}: LLM {backend.describe()}")

        turn_taking = avatar.turn_taking
        gate = None
        if turn_taking.barge_in and turn_taking.pause_on_speech:
            gate = PlaybackGate(self.turns, name=self.id)
        self.transport = transport(audio_out_filter=gate)
        # Preemptive replies (processors.preemptive_turn) need smart-turn's wait to overlap.
        preemptive = turn_taking.preemptive_replies and turn_taking.smart_turn
        self.preemption = PreemptionStats() if preemptive else None
        # The words are read by the engine in its background slot (free while calls run:
        # background work waits for them); only llama-server reports token odds.
        self.sentence_end = None
        reader = reader or backend
        if turn_taking.smart_turn and turn_taking.read_words and reader.kind == "embedded":
            self.sentence_end = SentenceEndScorer(reader.base_url, slot=reader.background_slot)
        self.stt = WhisperCppSTTService(
            whisper=runtime.models.transcriber(),
            interim_interval_secs=runtime.settings.stt_interim_secs,
            enable_eager_end_of_turn=preemptive,
        )
        # The STT starts transcribing when speech pauses; the bot's voice pauses when the user
        # starts talking (and resumes if it was only a noise).
        stt = self.stt
        listeners = [VADListener(on_pause=stt.speech_paused, on_resume=stt.speech_resumed)]
        if gate:
            listeners.append(
                VADListener(on_onset=gate.pause, on_false_start=gate.resume, on_stop=gate.resume)
            )
        aggregators = LLMContextAggregatorPair(
            self.context,
            user_params=user_turn_params(
                turn_taking,
                self.turns,
                runtime.models,
                listeners,
                self.preemption,
                self.sentence_end.check if self.sentence_end else None,
            ),
        )
        self.retrieval = None
        profile = profile_for(backend.kind, backend.model, avatar.llm.memory_prompt)
        if self.memory:
            self.retrieval = MemoryRetrieval(
                self.memory.recaller,
                avatar_name=avatar.name,
                profile=profile,
                timeout_secs=runtime.settings.memory_timeout_ms / 1000,
            )
        retrieval = self.retrieval
        self.reply_text = ReplyTextRecorder()
        self.graph = VoiceGraph(
            transport=self.transport,
            stt=self.stt,
            user_aggregator=aggregators.user(),
            memory=self.retrieval,
            llm=build_llm(avatar, backend, llm_slot),
            prefill=AnswerPrefill(lambda: retrieval.prefill) if retrieval else None,
            reply_text=self.reply_text,
            emotions=EmotionTagFilter(),
            guard=ScaffoldingGuard(
                (avatar.system_prompt(), *SCAFFOLDING, FACTS_HEADER, RESUME_AFTER_NOISE_PROMPT)
            ),
            stage_directions=StageDirectionFilter(),
            cap=ReplyCap(cap) if (cap := sentence_cap(avatar, profile)) else None,
            tts=LocalPiperTTSService(
                voice=runtime.models.voice(avatar.voice.piper_voice),
                syn_config=avatar.voice.synthesis_config(),
                voice_name=avatar.voice.piper_voice,
            ),
            hold=PreemptiveReplyHold() if preemptive else None,
            assistant_aggregator=aggregators.assistant(),
        )
        self.latency = TurnLatencyObserver(session=self.id)
        self.worker = PipelineWorker(
            self.graph.pipeline(),
            params=PipelineParams(
                audio_out_sample_rate=output_sample_rate(self.transport),
                enable_metrics=True,
                enable_usage_metrics=True,
            ),
            observers=[
                self.latency,
                self.turns,
                FaceCueSender(lambda data: self.worker.rtvi.send_server_message(data)),
            ],
            idle_timeout_secs=idle_timeout_secs,
            name=self.id,
        )
        self._prefill: asyncio.Task[None] | None = None
        self._connect_handlers()

    def _session_memory(self, user_id: str) -> SessionMemory | None:
        store = self.runtime.memory
        if store is None:
            return None
        settings = self.runtime.settings
        distiller = None
        if settings.memory_distill:
            distiller = Distiller(
                self.backend.base_url,
                self.backend.model,
                extra_body=self.backend.background_fields(),
            )
        return SessionMemory(
            store,
            self.runtime.jobs,
            user_id=user_id,
            avatar_id=self.avatar.id,
            avatar_name=self.avatar.name,
            session_id=self.id,
            distiller=distiller,
            restore_tokens=settings.memory_restore_tokens,
        )

    def _connect_handlers(self) -> None:
        graph = self.graph
        graph.user_aggregator.add_event_handler("on_user_turn_started", self._on_user_turn_started)
        graph.user_aggregator.add_event_handler("on_user_turn_stopped", self._on_user_turn_stopped)
        graph.assistant_aggregator.add_event_handler(
            "on_assistant_turn_started", self._on_assistant_turn_started
        )
        graph.assistant_aggregator.add_event_handler(
            "on_assistant_turn_stopped", self._on_assistant_turn_stopped
        )
        if self.retrieval:
            self.stt.add_event_handler("on_final_transcript", self._on_final_transcript)
        self.worker.rtvi.add_event_handler("on_client_message", self._on_client_message)
        self.latency.add_listener(self._on_turn_latency)
        self.worker.add_event_handler("on_pipeline_error", self._on_pipeline_error)
        self.transport.add_event_handler("on_client_connected", self._on_client_connected)
        self.transport.add_event_handler("on_client_disconnected", self._on_client_disconnected)

    # -- the graph's events ------------------------------------------------------------------

    async def _on_client_connected(self, _transport: Any, _client: Any) -> None:
        logger.info(f"[{self.id}] client connected")
        if self.greets:
            await self.greet()

    async def _on_client_disconnected(self, _transport: Any, _client: Any) -> None:
        logger.info(f"[{self.id}] client disconnected")
        await self.worker.cancel()

    async def _on_pipeline_error(self, _worker: Any, frame: ErrorFrame) -> None:
        """A part failed mid-call: say so, in the avatar's voice where it still has one.

        The LLM server killed mid-reply (its supervisor restarts it), the STT or the TTS
        raising: the call stays up and the next turn is tried as usual. One apology per
        ``APOLOGY_EVERY_SECS``: a server that is restarting fails every request until it is up.
        """
        part = frame.processor
        logger.warning(f"[{self.id}] {getattr(part, 'name', part)} failed: {frame.error}")
        if frame.fatal or self.ending:
            return
        if part is self.graph.tts:
            # No voice to say it with: the page shows it, the reply is in the transcript.
            await self.worker.queue_frames([RTVIServerMessageFrame(data=TTS_FAILED)])
            return
        if part is self.graph.llm:
            said = LLM_APOLOGY
        elif part is self.graph.stt:
            said = STT_APOLOGY
        else:
            return
        now = time.monotonic()
        if now - self._apologized < APOLOGY_EVERY_SECS:
            return
        self._apologized = now
        self.turns.note("apology", str(frame.error))
        await self.worker.queue_frames([TTSSpeakFrame(said)])

    async def _on_client_message(self, _rtvi: Any, message: Any) -> None:
        # The page's interrupt button: the same flush and cancel as a spoken barge-in.
        if message.type == "interrupt":
            logger.info(f"[{self.id}] interrupted from the page")
            await self.worker.rtvi.interrupt_bot()

    async def _on_final_transcript(self, _stt: Any, text: str) -> None:
        if self.retrieval:
            self.retrieval.prefetch(text)  # search while smart-turn decides the turn is over

    async def _on_user_turn_started(self, _aggregator: Any, _strategy: Any) -> None:
        self.turns.user_started()

    async def _on_user_turn_stopped(self, _aggregator: Any, _strategy: Any, message: Any) -> None:
        self.turns.user_stopped(message.content)
        if message.content and self.memory:
            now = time.time()
            started = epoch(message.timestamp, now)
            self.memory.writer.turn("user", message.content, started=started, ended=now)

    async def _on_assistant_turn_started(self, _aggregator: Any) -> None:
        self.turns.reply_started()

    async def _on_assistant_turn_stopped(self, _aggregator: Any, message: Any) -> None:
        self.reply_text.restore_spacing(self.context)
        self.turns.reply_finished(message.content, interrupted=message.interrupted)
        if message.content and message.interrupted:
            logger.debug(f"[{self.id}] interrupted; heard: {message.content!r}")
        if message.content and self.memory:
            now = time.time()
            latency, self.last_latency = self.last_latency, None
            self.memory.writer.turn(
                "assistant",
                message.content,
                started=epoch(message.timestamp, now),
                ended=now,
                interrupted=message.interrupted,
                latency=latency.as_dict() if latency else None,
            )

    async def _on_turn_latency(self, latency: TurnLatency) -> None:
        self.last_latency = latency
        data = {"type": "turn-latency", **latency.as_dict()}
        if self.preemption:  # so far this call: how many preemptive replies were kept
            data["preemption"] = self.preemption.as_dict()
        # Shown under the transcript on the page (RTVI server message).
        await self.worker.queue_frame(RTVIServerMessageFrame(data=data))

    # -- the call's life ---------------------------------------------------------------------

    async def prepare(self) -> None:
        """Before the session runs: restore the last conversation with this person.

        The LLM then reads the system prompt and what was restored into the session's slot
        while the greeting plays, so the first reply only pays for the new turn.
        """
        restored = await self.memory.open() if self.memory else []
        if restored:
            self.context.add_messages(cast(list[LLMContextMessage], restored))
            logger.info(f"[{self.id}] restored {len(restored)} turns of the last conversation")
        if restored or self.llm_slot is not None:
            system = {"role": "system", "content": self.avatar.system_prompt()}
            self._prefill = asyncio.create_task(
                prefill(
                    self.backend.base_url,
                    self.backend.model,
                    [system, *restored],
                    self.backend.request_fields(self.llm_slot),
                )
            )

    async def greet(self) -> None:
        """Say the greeting, by name to someone the avatar knows (kept in the context)."""
        greeting = self.avatar.greeting_for(self.memory.name if self.memory else None)
        if greeting:
            await self.worker.queue_frames([TTSSpeakFrame(greeting)])

    async def run(self) -> None:
        """Run the call until it ends (hang-up, idle timeout, ``end_after_turn``, cancel)."""
        with self.runtime.jobs.call():  # background LLM work waits while calls run
            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(self.worker)
            await runner.run()

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
        while self.turns.mid_turn and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        logger.info(f"[{self.id}] ending the call: {reason}")
        self.turns.note("ending", reason)
        await self.worker.queue_frames(
            [RTVIServerMessageFrame(data={"type": "call-ended", "reason": reason}), EndFrame()]
        )

    async def finish(self) -> None:
        """After the call: finish writing its memories (last chunk, distillation)."""
        if self._prefill:
            self._prefill.cancel()
        if self.sentence_end:
            await self.sentence_end.close()
        if self.memory:
            await self.memory.close()
