"""Speech-to-text with whisper.cpp (pywhispercpp), for Pipecat.

Pipecat has no whisper.cpp service, so this is ours. It is a ``SegmentedSTTService``: VAD
marks the utterance, and the segment is transcribed when the user stops speaking.

Consumes: ``InputAudioRawFrame`` (16-bit mono PCM), ``VADUserStartedSpeakingFrame``,
``VADUserStoppedSpeakingFrame`` (from the user aggregator's VAD, broadcast upstream/downstream);
``speech_paused()`` / ``speech_resumed()`` calls from the VAD analyzer.
Emits: ``TranscriptionFrame`` (final, one per utterance), ``InterimTranscriptionFrame`` (while
the user is still speaking, only when the model is idle), ``ErrorFrame`` on failure. With
``enable_eager_end_of_turn``: ``EagerTranscriptionFrame`` when the early pass (below) is done
before the VAD's stop window is (preemptive replies start on it: ``processors.preemptive_turn``,
which also decides when one no longer applies).
Event ``on_final_transcript(service, text)``: fired (awaited) as each final transcript is
ready, before it is pushed; memory retrieval uses it to start searching while the turn ends.

Why it is fast on a CPU:

* ``audio_ctx`` is sized to the clip. Whisper's encoder always attends over 30 s (1500
  positions) by default; a 3 s utterance needs ~150. Sizing it cuts encoder time ~5x on short
  clips (see ``bench/``). A floor keeps very short clips from degrading.
* One model per process, shared by every session (loading it per session would block the
  event loop and waste memory). whisper.cpp's context is not re-entrant, so calls are
  serialized by a lock; on 2 cores a second concurrent inference would only steal cycles.
* Inference runs in a worker thread (``asyncio.to_thread``), never on the event loop.
* Leading silence is trimmed. The segmenter keeps up to 2 s of audio from before the VAD
  fired; with a sized ``audio_ctx`` that silence sends tiny.en into repetition loops ("What
  is the capital? What is the capital? ..." in 4 of 15 clips; 0 of 15 once trimmed).
* Transcription starts when speech *pauses*, not when the turn is declared over. The VAD
  waits ``stop_secs`` of silence before it reports a stop; ``processors.vad_events`` reports
  the first silent frame, and this service transcribes the audio so far right then. If the
  stop follows without speech resuming, the audio in between was silence and the early
  transcript is the final one: the turn's transcript is ready ~``stop_secs`` sooner. If speech
  resumes, the early result is dropped and the final pass runs as usual.
* Interim passes run only if the model is free at that moment. They are never aborted:
  whisper.cpp's abort callback leaves the context dirty and the next transcripts repeat
  themselves (measured). A final pass that arrives during an interim one waits for it, which
  is bounded by the interim's own (sized) cost, ~0.2 s.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator
from typing import Protocol

import numpy as np
from loguru import logger
from pipecat.frames.frames import (
    ErrorFrame,
    Frame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import SegmentedSTTService
from pipecat.transcriptions.language import Language
from pipecat.turns.eager_end_of_turn_mixin import EagerEndOfTurnSTTServiceMixin
from pipecat.utils.time import time_now_iso8601

from processors.speech_first import SPEECH_FIRST

# Whisper's encoder sees 50 positions per second of audio (1500 for 30 s).
_CTX_PER_SECOND = 50
_MAX_AUDIO_CTX = 1500
# Below ~4 s of context tiny.en starts to drop words; this floor was measured (bench/).
_MIN_AUDIO_CTX = 256
# Audio kept from before the VAD reports speech (see WhisperCppSTTService.setup).
_PREROLL_SECS = 2.0
# Whisper's "non-speech" outputs on silence or noise.
_NON_SPEECH = {"", "[blank_audio]", "[silence]", "(silence)", "[music]", "[noise]", "you"}


def audio_ctx_for(num_samples: int, sample_rate: int = 16000) -> int:
    """Encoder context (positions) covering a clip, with headroom, clamped to Whisper's range."""
    seconds = num_samples / sample_rate
    ctx = int(seconds * _CTX_PER_SECOND) + 32
    ctx = ((ctx + 63) // 64) * 64  # multiples of 64 keep ggml's matmuls on fast paths
    return max(_MIN_AUDIO_CTX, min(_MAX_AUDIO_CTX, ctx))


class Transcriber(Protocol):
    """What the STT service needs of a speech model (``SharedWhisper``, or a test's fake)."""

    name: str

    def transcribe(self, audio: np.ndarray, *, interim: bool = False) -> str | None:
        """Transcribe float32 mono 16 kHz audio (blocking); None if an interim pass gave up."""
        ...


class SharedWhisper:
    """One pywhispercpp model, shared by every session of the process, serialized by a lock."""

    def __init__(self, model: str, n_threads: int):
        from pywhispercpp.model import Model

        started = time.perf_counter()
        self.name = model
        self._model = Model(
            model,
            n_threads=n_threads,
            print_realtime=False,
            print_progress=False,
            print_timestamps=False,
            print_special=False,
            redirect_whispercpp_logs_to=None,
        )
        self._lock = threading.Lock()
        self.warm_up()
        logger.info(f"whisper.cpp model {model} ready in {time.perf_counter() - started:.2f}s")

    def transcribe(self, audio: np.ndarray, *, interim: bool = False) -> str | None:
        """Transcribe float32 mono 16 kHz audio; blocking, call from a worker thread.

        Args:
            audio: samples in [-1, 1].
            interim: an interim pass gives up (returns None) if the model is busy.
        """
        if not self._lock.acquire(blocking=not interim):
            return None
        audio = trim_leading_silence(audio)
        started = time.perf_counter()
        try:
            with SPEECH_FIRST.transcribing():  # smart-turn waits meanwhile (speech_first)
                text = self._run(audio, audio_ctx_for(len(audio)))
            period = repetition_period(text)
            if period and period > 2:
                # A whole phrase repeated: keep one copy (people rarely say it twice).
                text = " ".join(text.split()[:period])
            elif (period or too_many_words(text, len(audio) / 16000)) and not interim:
                # A loop on a word or two hides the real words; the full 30 s window with
                # temperature fallback is slower but reliable.
                logger.warning(f"whisper looped ({text[:60]!r}); retrying with full context")
                text = self._run(audio, _MAX_AUDIO_CTX, fallback=True)
        finally:
            self._lock.release()
        logger.debug(
            f"whisper: {len(audio) / 16000:.2f} s of audio in "
            f"{(time.perf_counter() - started) * 1000:.0f} ms{' (interim)' if interim else ''}"
        )
        return text

    def _run(self, audio: np.ndarray, audio_ctx: int, *, fallback: bool = False) -> str:
        seconds = len(audio) / 16000
        segments = self._model.transcribe(
            audio,
            audio_ctx=audio_ctx,
            # People say at most ~4 words (~6 tokens) a second: a cap stops runaway loops.
            max_tokens=int(seconds * 8) + 8,
            single_segment=True,
            no_context=True,
            no_timestamps=True,
            suppress_blank=True,
            suppress_nst=True,
            language="en",
            temperature=0.0,
            # No retry at higher temperature on the fast path: bounded latency.
            temperature_inc=0.2 if fallback else 0.0,
        )
        return " ".join(s.text.strip() for s in segments).strip()

    def warm_up(self) -> None:
        """Run one inference so the first real turn doesn't pay for lazy init."""
        with self._lock:
            self._run(np.zeros(16000, dtype=np.float32), _MAX_AUDIO_CTX)


def trim_leading_silence(
    audio: np.ndarray, keep_secs: float = 0.25, max_trim_secs: float = 1.8
) -> np.ndarray:
    """Drop silence before speech onset, keeping ``keep_secs`` of lead-in.

    Onset is the first 20 ms frame clearly above the clip's own noise floor, so the
    threshold adapts to a quiet room or a noisy one. At most ``max_trim_secs`` is cut: the
    pre-roll the segmenter adds is ~2 s, of which the last ~0.2 s is already speech.
    """
    frame = 320
    n = len(audio) // frame
    if n < 5:
        return audio
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1))
    threshold = max(3.0 * float(np.percentile(rms, 10)), 0.003)
    loud = np.nonzero(rms > threshold)[0]
    if not len(loud):
        return audio
    start = int(loud[0]) * frame - int(keep_secs * 16000)
    return audio[max(0, min(start, int(max_trim_secs * 16000))) :]


def repetition_period(text: str) -> int | None:
    """Length in words of the phrase ``text`` only repeats (at least twice), else None.

    Whisper's loops look like "X X X" or "X. X. X" (the last copy may be cut short).
    """
    words = [w.strip(".,!?;:").lower() for w in text.split()]
    n = len(words)
    for period in range(1, n // 2 + 1):
        if n < (2 if period > 2 else 3) * period:  # "no no" is speech, "no no no no" a loop
            continue
        same = all(words[i] == words[i % period] for i in range(n - 1))
        if same and words[(n - 1) % period].startswith(words[-1]):  # last word may be cut
            return period
    return None


def too_many_words(text: str, seconds: float) -> bool:
    """More than ~4 words a second is not speech but a decoder loop ("Hello? Hello? ...")."""
    return len(text.split()) > 4.0 * seconds + 3


def clean_transcript(text: str) -> str:
    """Drop whisper's non-speech markers; returns "" when nothing was said."""
    stripped = text.strip()
    if stripped.lower().strip(" .!?") in _NON_SPEECH or stripped.startswith(("[", "(")):
        return ""
    return stripped


class WhisperCppSTTService(EagerEndOfTurnSTTServiceMixin, SegmentedSTTService):
    """Segmented STT on a shared whisper.cpp model.

    Args:
        whisper: the loaded model (one per process, see ``SharedWhisper``).
        enable_eager_end_of_turn: report the early transcript as soon as it is ready (see
            the module docstring); off, it is used only once the VAD reports the stop.
        interim_interval_secs: how often to emit interim transcripts while the user speaks;
            0 disables them.
        ttfs_p99_latency: measured p99 from end of speech to final transcript (seconds).
            Pipecat's turn-stop strategies wait this long for a transcript.
    """

    def __init__(
        self,
        *,
        whisper: Transcriber,
        interim_interval_secs: float = 0.0,
        ttfs_p99_latency: float = 0.6,
        **kwargs,
    ):
        super().__init__(
            ttfs_p99_latency=ttfs_p99_latency,
            trailing_silence_secs=0.2,
            settings=STTSettings(model=whisper.name, language=Language.EN),
            **kwargs,
        )
        self._whisper = whisper
        self._interim_interval = interim_interval_secs
        self._interim_task: asyncio.Task | None = None
        # The early transcription started at the last pause (see speech_paused), and whether
        # the audio since then is still silence.
        self._early: asyncio.Task | None = None
        self._early_valid = False
        self._register_event_handler("on_final_transcript", sync=True)

    async def setup(self, setup):
        """Keep 2 s of audio from before speech starts (Pipecat keeps 1 s).

        The VAD's start event reaches this service upstream from the user aggregator; when
        the event loop is busy it can arrive late, and with only 1 s kept the first words
        were lost ("What is the capital..." -> "the capital..."). Leading silence is trimmed
        before transcription, so the longer pre-roll costs nothing.
        """
        await super().setup(setup)
        self._audio_buffer_size_1s = int(self.sample_rate * 2 * _PREROLL_SECS)

    @property
    def wants_wav_segments(self) -> bool:
        """whisper.cpp reads raw PCM, not a WAV container."""
        return False

    def can_generate_metrics(self) -> bool:
        """Report TTFB/processing metrics."""
        return True

    def speech_paused(self) -> None:
        """The VAD heard speech give way to silence: transcribe what we have, early.

        Called by the VAD analyzer on the event loop. One early pass at a time: if the last
        one is still running (a pause, a word, another pause), this pause is not used.
        """
        if not self._user_speaking or (self._early and not self._early.done()):
            return
        pcm = bytes(self._audio_buffer) + self._trailing_silence()
        self._early = self.create_task(self._early_pass(pcm), name="early_transcription")
        self._early_valid = True

    async def _transcribe(self, pcm: bytes, *, interim: bool = False) -> str | None:
        """Convert and transcribe 16-bit PCM in a worker thread (both are CPU work)."""

        def work() -> str | None:
            return self._whisper.transcribe(_to_float(pcm, self.sample_rate), interim=interim)

        return await asyncio.to_thread(work)

    async def _early_pass(self, pcm: bytes) -> str | None | Exception:
        # Returned, not raised: Pipecat's task manager logs and swallows a task's exception,
        # and the turn would then end with nothing heard and nothing said about why.
        try:
            text = await self._transcribe(pcm)
        except Exception as e:
            return e
        # Still silent and the stop not reported yet: the reply may start on these words.
        if self._early_valid and self._user_speaking and (eager := clean_transcript(text or "")):
            await self._push_eager_end_of_turn(eager, user_id=self._user_id, language=Language.EN)
        return text

    def speech_resumed(self) -> None:
        """Speech came back before the stop: the early transcript is missing words."""
        # An early transcript already reported stays: the next one (at the next pause) or the
        # committed one decides whether the reply started on it still applies (a breath, or a
        # sound with no words, changes nothing).
        self._early_valid = False

    def _take_early(self) -> asyncio.Task | None:
        """The early transcription if it covers the whole utterance (then forget it)."""
        task = self._early if self._early_valid else None
        self._early_valid = False
        if task is not None:
            self._early = None
        return task

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Track speech to schedule interim passes; segmentation is the base class's job."""
        await super().process_frame(frame, direction)
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._early_valid = False  # a new utterance: an older early pass is not for it
            if self._interim_interval > 0:
                await self._stop_interims()
                self._interim_task = self.create_task(self._interim_loop())
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            await self._stop_interims()

    async def _stop_interims(self):
        if self._interim_task:
            await self.cancel_task(self._interim_task)
            self._interim_task = None

    async def cleanup(self):
        """Stop the interim loop and any early pass with the service."""
        await self._stop_interims()
        if self._early:
            await self.cancel_task(self._early)
            self._early = None
        await super().cleanup()

    async def _interim_loop(self):
        while True:
            await asyncio.sleep(self._interim_interval)
            pcm = bytes(self._audio_buffer)
            if len(pcm) < self.sample_rate:  # under 0.5 s: nothing worth showing yet
                continue
            text = await self._transcribe(pcm, interim=True)
            text = clean_transcript(text or "")
            if text:
                await self.push_frame(
                    InterimTranscriptionFrame(text, self._user_id, time_now_iso8601())
                )

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """Transcribe one utterance (raw 16-bit PCM at the pipeline's input rate)."""
        await self.start_processing_metrics()
        try:
            if early := self._take_early():
                logger.debug(f"{self}: using the transcription started at the pause")
                text = await early
                if isinstance(text, Exception):
                    raise text
            else:
                text = await self._transcribe(audio)
        except Exception as e:  # a broken model must not kill the session
            logger.exception(f"{self}: whisper.cpp failed")
            yield ErrorFrame(f"Speech recognition failed: {e}")
            return
        finally:
            await self.stop_processing_metrics()
        text = clean_transcript(text or "")
        self._clear_eager_end_of_turn()  # the committed transcript settles it either way
        if text:
            logger.debug(f"{self}: user said: {text!r}")  # private: DEBUG only
            await self._call_event_handler("on_final_transcript", text)
            yield TranscriptionFrame(text, self._user_id, time_now_iso8601(), Language.EN)


def _to_float(pcm: bytes, sample_rate: int) -> np.ndarray:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0
    if sample_rate != 16000:
        import soxr

        samples = soxr.resample(samples, sample_rate, 16000)
    return samples
