"""The frame graph of one voice session, top to bottom, and the parts only it uses.

The graph, as :func:`voice_pipeline` lays it out (DESIGN.md's diagram)::

    transport.input()        audio from the browser / mic
    stt                      whisper.cpp; final (and interim) transcriptions
    user_aggregator          Silero VAD + smart-turn decide turns; appends the user turn
    user_audio_end           the person's audio goes no further (nothing below uses it)
    memory                   long-term memory: puts what the avatar remembers before the turn
    llm                      Ollama or the embedded llama.cpp server, streaming
    prefill                  a reply started with a remembered fact begins with it aloud
    reply_text               keeps the reply as generated (for the LLM's prompt cache)
    speech_chunks            first clause of each reply early, then whole sentences
    emotions                 [happy]-style tags out of the words, into face cues
    guard                    drops chunks that echo the prompt (never spoken)
    stage_directions         "*smiles*", markdown and emoji are not read aloud
    cap                      a small model's reply ends after three sentences
    tts                      Piper, per chunk as tokens arrive, with each chunk's face cues
    hold                     a preemptive reply waits here until its turn is confirmed
    transport.output()       audio back to the person (through the playback gate); face
                             cues go to the page as their audio starts (processors.face_cues)
    assistant_aggregator     records what was actually spoken

VAD sits inside the user aggregator in Pipecat 1.x and broadcasts its speech events both ways,
so STT (upstream of it) still segments on them. Interruptions come from the user-turn start
strategy (``processors.barge_in``): Pipecat then flushes queued LLM tokens, TTS audio and
output buffers, cancels the LLM stream, and the assistant aggregator keeps only the text whose
audio was actually played, marked interrupted. ``bots.session.VoiceSession`` builds the parts
and reacts to the graph's events; this module only says how they connect.
"""

from __future__ import annotations

from dataclasses import dataclass

from loguru import logger
from openai import AsyncOpenAI, DefaultAsyncHttpxClient
from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    Frame,
    InterruptionFrame,
    LLMFullResponseStartFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.aggregators.llm_response_universal import (
    LLMAssistantAggregator,
    LLMUserAggregator,
    LLMUserAggregatorParams,
)
from pipecat.processors.aggregators.llm_text_processor import LLMTextProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService
from pipecat.transports.base_transport import BaseTransport
from pipecat.turns.empty_user_turn import EmptyUserTurnConfig
from pipecat.turns.speculation_gate import SpeculationGate
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.utils.http import connection_limits

from bots.config import AvatarConfig, TurnTakingConfig
from bots.llm_backend import LLMBackend
from bots.runtime import Models
from processors.barge_in import GuardedUserTurnStartStrategy
from processors.first_clause import FirstClauseTextAggregator
from processors.preemptive_turn import PreemptionStats, PreemptiveTurnStopStrategy
from processors.reply_hold import ReplyStartFrame
from processors.reply_text import ReplyTextRecorder
from processors.smart_turn_stop import SentenceEndCheck, SmartTurnStopStrategy
from processors.turn_state import TurnState
from processors.user_audio_end import user_audio_end
from processors.vad_events import ReportingSileroVAD, VADListener


@dataclass
class VoiceGraph:
    """The processors of one session's graph.

    ``memory`` and ``prefill`` are None when memory is off, ``cap`` when replies are not cut,
    ``hold`` when replies are not preemptive.
    """

    transport: BaseTransport
    stt: STTService
    user_aggregator: LLMUserAggregator
    memory: FrameProcessor | None
    llm: OpenAILLMService
    prefill: FrameProcessor | None
    reply_text: ReplyTextRecorder
    emotions: FrameProcessor
    guard: FrameProcessor
    stage_directions: FrameProcessor
    cap: FrameProcessor | None
    tts: TTSService
    hold: FrameProcessor | None
    assistant_aggregator: LLMAssistantAggregator

    def pipeline(self) -> Pipeline:
        """The graph, top to bottom."""
        graph = [
            self.transport.input(),
            self.stt,
            self.user_aggregator,
            user_audio_end(),
            self.memory,
            self.llm,
            self.prefill,
            self.reply_text,
            LLMTextProcessor(text_aggregator=FirstClauseTextAggregator()),  # speech chunks
            self.emotions,
            self.guard,
            self.stage_directions,
            self.cap,
            self.tts,
            self.hold,
            self.transport.output(),
            self.assistant_aggregator,
        ]
        return Pipeline([p for p in graph if p is not None])


# When a noise interrupted the bot and produced no words, the bot resumes instead of
# going silent: a cough must not end the reply for good.
RESUME_AFTER_NOISE_PROMPT = (
    "You were cut off by a short sound from the user (a cough or an 'mm-hm'), not a "
    "question. Briefly continue what you were saying."
)


def user_turn_params(
    turns: TurnTakingConfig,
    state: TurnState,
    models: Models,
    listeners: list[VADListener] | None = None,
    preemption: PreemptionStats | None = None,
    sentence_end: SentenceEndCheck | None = None,
) -> LLMUserAggregatorParams:
    """VAD, turn start (barge-in guard) and turn stop (smart-turn) for one avatar.

    ``listeners`` hear the VAD's transitions first-hand (see ``processors.vad_events``); so
    does the turn state, which is where the barge-in guard learns whether the person is still
    talking. ``preemption``: replies start while smart-turn confirms the turn, counted here
    (``processors.preemptive_turn``). ``sentence_end``: reads the words for a sentence end
    (``bots.sentence_end``), when the avatar's ``read_words`` is on.
    """
    heard = VADListener(
        on_start=lambda: state.user_heard(True),
        on_resume=lambda: state.user_heard(True),
        on_pause=lambda: state.user_heard(False),
        on_stop=lambda: state.user_heard(False),
    )
    if turns.smart_turn:
        wait = turns.smart_turn_max_wait_secs
        analyzer = models.turn_analyzer(SmartTurnParams(stop_secs=wait))
        waits = {
            "max_wait_secs": wait,
            "min_silence_secs": turns.smart_turn_min_silence_secs,
            "sentence_end": sentence_end if turns.read_words else None,
        }
        if preemption is not None:
            stop = PreemptiveTurnStopStrategy(turn_analyzer=analyzer, stats=preemption, **waits)
        else:
            stop = SmartTurnStopStrategy(turn_analyzer=analyzer, **waits)
        # A sound after the stop holds the turn end until the VAD confirms or dismisses it.
        listeners = [
            *(listeners or []),
            VADListener(on_onset=stop.sound_onset, on_false_start=stop.sound_false_start),
        ]
    else:
        stop = SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=turns.vad_stop_secs)
    vad = ReportingSileroVAD(
        model=models.vad_model(),
        listeners=[heard, *(listeners or [])],
        params=VADParams(
            confidence=turns.vad_confidence,
            start_secs=turns.vad_start_secs,
            stop_secs=turns.vad_stop_secs,
            min_volume=turns.vad_min_volume,
        ),
    )
    start = GuardedUserTurnStartStrategy(
        state,
        barge_in=turns.barge_in,
        grace_ms=turns.barge_in_grace_ms,
        min_speech_ms=turns.barge_in_min_speech_ms,
        vad_start_secs=turns.vad_start_secs,
    )
    return LLMUserAggregatorParams(
        vad_analyzer=vad,
        user_turn_strategies=UserTurnStrategies(start=[start], stop=[stop]),
        empty_user_turn=EmptyUserTurnConfig(interrupted_prompt=RESUME_AFTER_NOISE_PROMPT),
        user_turn_stop_timeout=turns.turn_stop_timeout_secs,
    )


class LocalLLMService(OpenAILLMService):
    """OpenAI-compatible chat completions from Ollama or the embedded llama.cpp server.

    Neither knows the "developer" role that Pipecat uses for instructions it adds mid-talk
    (e.g. "resume after a noise"): llama.cpp's servers answer 500 to it, Ollama ignores it.
    As Pipecat's own Ollama service does, such messages are sent as user messages.

    Preemptive replies (``processors.preemptive_turn``) stream on to the TTS at once: the
    hold is after the TTS (``processors.reply_hold``), so the first sentence is synthesized
    while the turn is being confirmed. Each reply is announced with a ``ReplyStartFrame``
    saying whether it answers an unconfirmed turn; a withdrawn one is stopped and flushed
    from everything below with an interruption that goes downstream only (the person is
    still mid-turn: nothing above may lose what it heard).
    """

    supports_developer_role = False

    def __init__(self, *, keep_connections: bool = True, **kwargs):
        """As ``OpenAILLMService``; ``keep_connections=False``: see :meth:`create_client`."""
        self._keep_connections = keep_connections  # read by create_client, from super()
        super().__init__(**kwargs)
        self._held_for_interruption: list[tuple[Frame, FrameDirection]] | None = None
        self._speculation_gate = _SpeculationFlag(name=f"{self}::speculation")

    def create_client(
        self,
        api_key=None,
        base_url=None,
        organization=None,
        project=None,
        default_headers=None,
        **kwargs,
    ):
        """Pipecat's client; for the embedded engine, one that keeps no connections for reuse.

        llama-server closes a connection after each streamed reply (and any idle one after
        5 s); a request sent on one it is closing fails, and the client retries it only
        after a back-off of ~0.5 s. A fresh loopback connection costs well under 1 ms.
        """
        if self._keep_connections:
            return super().create_client(
                api_key, base_url, organization, project, default_headers, **kwargs
            )
        return AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            # Pipecat's helper: a Limits of whichever HTTP client family openai uses.
            http_client=DefaultAsyncHttpxClient(
                limits=connection_limits(max_keepalive_connections=0)
            ),
            default_headers=default_headers,
        )

    async def _start_interruption(self):
        # Cancelling the reply's stream pushes its LLMFullResponseEndFrame (from the stream's
        # `finally`) *before* Pipecat pushes the InterruptionFrame on. The text aggregator
        # below then flushes the half sentence it was holding into TTS, and the person hears
        # it after they barged in. So frames pushed while cancelling wait for the interruption.
        self._held_for_interruption = []
        await super()._start_interruption()

    async def _handle_eager_end_of_turn_cancel(self, frame: EagerEndOfTurnCancelFrame):
        if not self._speculation_gate.is_speculating:
            return
        logger.debug(f"{self}: the preemptive reply was withdrawn; stopping it")
        await self._start_interruption()
        await self.stop_all_metrics()
        await self.push_frame(InterruptionFrame())

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        """Push a frame, holding the cancelled reply's last frames behind its interruption."""
        if isinstance(frame, LLMFullResponseStartFrame):
            preemptive = self._speculation_gate.is_speculating
            await super().push_frame(ReplyStartFrame(preemptive=preemptive), direction)
        held = self._held_for_interruption
        if held is not None and not isinstance(frame, InterruptionFrame):
            held.append((frame, direction))
            return
        await super().push_frame(frame, direction)
        if held is not None:
            self._held_for_interruption = None
            for f, d in held:
                await super().push_frame(f, d)


class _SpeculationFlag(SpeculationGate):
    """Pipecat's speculation gate without the holding.

    It still knows whether the reply in flight answers an unconfirmed turn; the hold itself
    is ``processors.reply_hold``, after the TTS.
    """

    def _begin(self) -> list:
        return []


def build_llm(
    avatar: AvatarConfig, backend: LLMBackend, slot: int | None = None
) -> OpenAILLMService:
    """Streaming chat completions against Ollama or the embedded server.

    ``slot`` is the embedded engine's slot this session holds: every request goes there with
    its prompt cache on (``LLMBackend.request_fields``).
    """
    fields = backend.request_fields(slot)
    if backend.kind == "embedded":
        fields["repeat_penalty"] = avatar.llm.repeat_penalty
    return LocalLLMService(
        keep_connections=backend.kind != "embedded",
        base_url=backend.base_url,
        api_key="local",  # neither local server checks it; the client requires one
        settings=OpenAILLMService.Settings(
            model=backend.model,
            system_instruction=avatar.system_prompt(),
            temperature=avatar.llm.temperature,
            top_p=avatar.llm.top_p,
            max_tokens=avatar.llm.max_tokens,
            extra={"extra_body": fields} if fields else {},
        ),
    )
