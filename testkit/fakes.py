"""Scripted stand-ins for the models a session is built from, replaying a timeline fast.

Modelled on LiveKit Agents' ``tests/fake_*.py`` and ``FakeActions``: a :class:`Script` says
what the person says and when, what the LLM answers, and how fast the voice speaks; the
stand-ins replay it at ``speed`` times real time. Everything between them is the product's real
code: the VAD state machine (``ReportingSileroVAD``) on a scripted confidence, the barge-in
guard, the playback gate, the whisper STT service on a scripted transcriber, the OpenAI LLM
service talking HTTP to a scripted server, the Piper TTS service on a scripted voice, the
output transport's word timing, the aggregators and the session's turn state.

How speech is scripted: each utterance is played into the microphone as a tone whose
amplitude encodes which utterance it is, so the transcriber knows what was "said" from the
audio alone, and the VAD hears speech exactly where the script put it. Durations are in
*scripted* seconds; :meth:`Script.secs` turns them into wall seconds, and the avatar's
turn-taking times are scaled the same way (:meth:`Script.avatar`), so decisions happen at the
same scripted moments at any speed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams

from bots.config import AvatarConfig
from processors.shared_smart_turn import SharedSmartTurnAnalyzer
from testkit.harness import RATE, ScriptedInput
from testkit.net import free_port

AMPLITUDE_STEP = 1000  # int16 amplitude per utterance index (utterance i: (i + 3) * step)
LOUD = 500  # int16 amplitude above which a sample is part of the script's speech
SPEECH_FRACTION = 0.6  # a VAD window is speech when this much of it is the script's tone
VAD_WINDOW_MS = 32  # Silero's analysis window at 16 kHz (512 samples)


@dataclass
class Utterance:
    """Something the person says (``text`` "" for a cough or a noise), in scripted seconds.

    ``early_text``: what the first transcription of it gives (the STT's early pass, at the
    first silent frame), when that differs from the final one. ``complete``: whether
    smart-turn judges the turn over when this was the last thing said. ``of``: a short
    sound that continues an earlier utterance (:meth:`Script.blip`), transcribed as it.
    """

    index: int
    text: str
    at: float
    duration: float
    stt_delay: float
    early_text: str | None = None
    complete: bool = True
    of: int | None = None

    @property
    def amplitude(self) -> int:
        """The tone's amplitude, which tells the transcriber who this is."""
        return ((self.index if self.of is None else self.of) + 3) * AMPLITUDE_STEP


@dataclass
class Reply:
    """What the LLM answers when the last user message contains ``to`` (any, when None)."""

    text: str
    to: str | None
    ttft: float
    tokens_per_sec: float


@dataclass
class LLMRequest:
    """One request the scripted LLM server got, and how it went."""

    messages: list[dict[str, Any]]
    reply: str
    sent: str = ""
    finished: bool = False


@dataclass
class Script:
    """A conversation to replay.

    Args:
        speed: how many times faster than real time everything happens.
        words_per_sec: the scripted voice's speaking rate.
        tts_ttfb: seconds before the voice's first audio of each chunk.
    """

    speed: float = 3.0
    words_per_sec: float = 3.0
    tts_ttfb: float = 0.1
    utterances: list[Utterance] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    last_heard: Utterance | None = None  # what was transcribed last (smart-turn's cue)
    _transcribed: set[int] = field(default_factory=set)

    def say(
        self,
        text: str,
        *,
        at: float,
        duration: float | None = None,
        stt_delay: float = 0.15,
        early_text: str | None = None,
        complete: bool = True,
    ) -> Utterance:
        """The person says ``text`` from ``at`` for ``duration`` (default ~3 words a second)."""
        if self.utterances and at < self.utterances[-1].at + self.utterances[-1].duration:
            raise ValueError("utterances must not overlap")
        words = len(text.split())
        duration = duration if duration is not None else max(0.3, words / 3.0)
        utterance = Utterance(
            len(self.utterances), text, at, duration, stt_delay, early_text, complete
        )
        self.utterances.append(utterance)
        return utterance

    def blip(self, of: Utterance, *, at: float, duration: float) -> Utterance:
        """A short sound going on with ``of`` (a breath, a trailing syllable): the VAD hears
        speech resume before its stop, and the transcript is ``of``'s final text."""
        blip = self.say("", at=at, duration=duration)
        blip.of = of.index
        return blip

    def noise(self, *, at: float, duration: float) -> Utterance:
        """A cough or a door: sound the VAD hears, with no words in it."""
        return self.say("", at=at, duration=duration)

    def answer(
        self,
        text: str,
        *,
        to: str | None = None,
        ttft: float = 0.3,
        tokens_per_sec: float = 30.0,
    ) -> Reply:
        """The LLM answers ``text`` to a last user message containing ``to``."""
        reply = Reply(text, to, ttft, tokens_per_sec)
        self.replies.append(reply)
        return reply

    def secs(self, scripted: float) -> float:
        """Wall-clock seconds for ``scripted`` seconds."""
        return scripted / self.speed

    def scripted(self, wall: float) -> float:
        """Scripted seconds for ``wall`` seconds."""
        return wall * self.speed

    def avatar(self, avatar: AvatarConfig) -> AvatarConfig:
        """``avatar`` with its turn-taking times scaled to the script's speed.

        Two things do not shrink with a speed factor, so they are kept as they are:

        - the VAD's volume gate, which measures loudness over a fixed 400 ms window: it is off
          (the scripted confidence already decides what is speech);
        - the VAD's 32 ms analysis window: the barge-in guard's wait after the VAD's start
          (``min_speech_ms - vad_start_secs``, 50 ms) needs at least two windows to see a
          pause, so at high speeds the minimum speech is longer than a scaled 250 ms.
        """
        t = avatar.turn_taking
        start_ms = self.secs(t.vad_start_secs) * 1000
        min_speech_ms = max(self.secs(t.barge_in_min_speech_ms), start_ms + 2 * VAD_WINDOW_MS)
        scaled = t.model_copy(
            update={
                "vad_start_secs": self.secs(t.vad_start_secs),
                "vad_stop_secs": self.secs(t.vad_stop_secs),
                "vad_min_volume": 0.0,
                "smart_turn_max_wait_secs": self.secs(t.smart_turn_max_wait_secs),
                "smart_turn_min_silence_secs": self.secs(t.smart_turn_min_silence_secs),
                "turn_stop_timeout_secs": max(0.5, self.secs(t.turn_stop_timeout_secs)),
                "barge_in_grace_ms": round(self.secs(t.barge_in_grace_ms)),
                "barge_in_min_speech_ms": round(min_speech_ms),
            }
        )
        return avatar.model_copy(update={"turn_taking": scaled})

    def pcm(self, utterance: Utterance) -> np.ndarray:
        """The utterance as 16 kHz int16 audio: a 220 Hz square wave of its amplitude."""
        n = int(self.secs(utterance.duration) * RATE)
        square = np.sign(np.sin(2 * np.pi * 220 * np.arange(n) / RATE))
        return (square * utterance.amplitude).astype(np.int16)

    def heard(self, audio: np.ndarray) -> Utterance | None:
        """Which utterance ``audio`` (float32, what the STT got) ends with, if any."""
        loud = np.nonzero(np.abs(audio) * 32768 > LOUD)[0]
        if not len(loud):
            return None
        amplitude = abs(float(audio[loud[-1]])) * 32768
        index = round(amplitude / AMPLITUDE_STEP) - 3
        return self.utterances[index] if 0 <= index < len(self.utterances) else None

    def transcribed(self, utterance: Utterance) -> str:
        """What a transcription of ``utterance`` gives: its early text the first time."""
        self.last_heard = utterance
        if utterance.index in self._transcribed or utterance.early_text is None:
            return utterance.text
        self._transcribed.add(utterance.index)
        return utterance.early_text

    def reply_to(self, messages: list[dict[str, Any]]) -> Reply:
        """The scripted reply for a conversation (by its last user message)."""
        last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        content = str(last.get("content", ""))
        for reply in self.replies:
            if reply.to is None or reply.to.lower() in content.lower():
                return reply
        return Reply("I see.", None, 0.3, 30.0)

    async def play(self, mic: ScriptedInput, started: float) -> None:
        """Say every utterance into ``mic`` at its time (``started``: ``time.monotonic()``)."""
        for utterance in self.utterances:
            delay = started + self.secs(utterance.at) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await mic.say(self.pcm(utterance))


class ScriptedVADModel:
    """Silero's interface (``model(audio, rate) -> [confidence]``), scoring the script's tones.

    A window is speech when most of it is tone, so a window the speech only grazes does not
    count: at speed factors the VAD's windows are long next to the scaled utterances.
    """

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        loud = float(np.mean(np.abs(audio) * 32768 > LOUD)) if len(audio) else 0.0
        return np.array([1.0 if loud >= SPEECH_FRACTION else 0.0], dtype=np.float32)

    def reset_states(self) -> None:
        """Nothing to reset: each window is scored on its own."""


class ScriptedTranscriber:
    """Whisper's place: returns what the script says was said, after its STT delay."""

    name = "scripted"

    def __init__(self, script: Script):
        self.script = script

    def transcribe(self, audio: np.ndarray, *, interim: bool = False) -> str | None:
        """Blocking, like whisper (the STT service calls it in a worker thread)."""
        utterance = self.script.heard(audio)
        if utterance is None:
            return ""
        text = self.script.transcribed(utterance)
        time.sleep(self.script.secs(utterance.stt_delay))
        return text


class ScriptedVoice:
    """Piper's place: a tone lasting as long as the words take to say at the script's pace."""

    def __init__(self, script: Script, sample_rate: int = RATE, amplitude: int = 4000):
        self.script = script
        self.config = SimpleNamespace(sample_rate=sample_rate)
        self._amplitude = amplitude

    def synthesize(
        self, text: str, syn_config: Any = None, **_options: Any
    ) -> Iterator[SimpleNamespace]:
        """Chunks of 40 ms audio (``audio_int16_bytes``), the first after the voice's TTFB."""
        time.sleep(self.script.secs(self.script.tts_ttfb))
        seconds = self.script.secs(len(text.split()) / self.script.words_per_sec)
        total = int(seconds * self.config.sample_rate)
        chunk = int(0.04 * self.config.sample_rate)
        tone = np.full(chunk, self._amplitude, dtype=np.int16)
        for start in range(0, total, chunk):
            yield SimpleNamespace(audio_int16_bytes=tone[: min(chunk, total - start)].tobytes())


class _ScriptedTurnModel:
    """Smart-turn's ONNX session, judging a turn complete unless the script says the last
    thing transcribed was not (``Utterance.complete``)."""

    def __init__(self, script: Script):
        self.script = script

    def run(self, _outputs: Any, _feeds: dict[str, Any]) -> list[np.ndarray]:
        last = self.script.last_heard
        complete = last is None or last.complete
        return [np.array([[0.9 if complete else 0.1]], dtype=np.float32)]


class ScriptedModels:
    """The ``Models`` of a runtime that replays a :class:`Script` (no model is loaded)."""

    def __init__(self, script: Script):
        self.script = script
        self._transcriber = ScriptedTranscriber(script)
        self._voice = ScriptedVoice(script)

    def transcriber(self) -> ScriptedTranscriber:
        return self._transcriber

    def voice(self, name: str) -> ScriptedVoice:
        return self._voice

    def vad_model(self) -> ScriptedVADModel:
        return ScriptedVADModel()

    def turn_analyzer(self, params: SmartTurnParams) -> SharedSmartTurnAnalyzer:
        return SharedSmartTurnAnalyzer(session=_ScriptedTurnModel(self.script), params=params)

    def embedder(self) -> Any:
        raise RuntimeError("a scripted runtime has no memory (settings.memory is off)")


class ScriptedLLMServer:
    """An OpenAI-compatible chat server on loopback that streams the script's replies.

    Use as ``async with ScriptedLLMServer(script) as llm:``; ``llm.base_url`` is its ``/v1``
    and ``llm.requests`` what it was asked (and how much of each reply it sent).
    """

    def __init__(self, script: Script):
        self.script = script
        self.requests: list[LLMRequest] = []
        self.port = free_port()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            return {"object": "list", "data": [{"id": "scripted", "object": "model"}]}

        @app.post("/v1/chat/completions", response_model=None)
        async def chat(request: Request) -> StreamingResponse | JSONResponse:
            body = await request.json()
            reply = self.script.reply_to(body["messages"])
            record = LLMRequest(body["messages"], reply.text)
            self.requests.append(record)
            if not body.get("stream"):
                record.sent, record.finished = reply.text, True
                message = {"role": "assistant", "content": reply.text}
                return JSONResponse({"choices": [{"index": 0, "message": message}]})
            return StreamingResponse(self._stream(reply, record), media_type="text/event-stream")

        return app

    async def _stream(self, reply: Reply, record: LLMRequest) -> AsyncIterator[str]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            body = {"id": "x", "object": "chat.completion.chunk", "model": "scripted"}
            return f"data: {json.dumps({**body, 'choices': [choice]})}\n\n"

        await asyncio.sleep(self.script.secs(reply.ttft))
        for i, word in enumerate(reply.text.split(" ")):
            token = word if i == 0 else f" {word}"
            record.sent += token
            yield chunk({"content": token})
            await asyncio.sleep(self.script.secs(1 / reply.tokens_per_sec))
        record.finished = True
        yield chunk({}, "stop")
        yield "data: [DONE]\n\n"

    async def __aenter__(self) -> ScriptedLLMServer:
        config = uvicorn.Config(
            self._app(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        await self._task
