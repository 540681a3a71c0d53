"""Text-to-speech with Piper, in-process, one loaded voice per process.

Pipecat's ``PiperTTSService`` loads its voice in ``__init__`` (once per session, on the event
loop) and downloads voices by name. We need neither: voices come from PyPI packages or paths,
and every session shares one loaded ``PiperVoice`` per voice file, handed in by the caller
(the process's ``Runtime`` loads each once; ONNX Runtime sessions are safe to call from several
threads). Per-avatar sound (speed, expressiveness) is a ``SynthesisConfig``, so two avatars can
share one voice model and still sound different.

Consumes: ``TextFrame``/``LLMTextFrame`` (aggregated into sentences by the ``TTSService``
base), ``LLMFullResponseEndFrame``, ``InterruptionFrame``.
Emits: ``TTSStartedFrame``, ``TTSAudioRawFrame`` (streamed per sentence as soon as Piper
yields it), ``TTSStoppedFrame``, ``TTSTextFrame`` (one per word, timed to the audio).

What was heard, not what was sent: Piper gives no word timestamps, and Pipecat's fallback for
such services releases a sentence's text only after all of its audio, so a reply interrupted
mid-sentence would lose the half the person heard. We know each sentence's audio duration, so
we spread its words over that duration (proportionally to their length) and hand them to
Pipecat's word-timestamp machinery. The output transport then releases each word as its audio
plays; on interruption the unplayed words are dropped, and the assistant aggregator records the
heard words, flagged interrupted.

The face: a voice loaded with alignments (``bots.runtime``) reports each phoneme's samples,
so words are timed by the voice's own durations (the estimate is the fallback) and each
chunk's audio is preceded by a ``FaceCuesFrame``: its visemes (``processors.visemes``) and
the expressions of its words (from the ``ExpressionCuesFrame`` that preceded its text),
in ms from the chunk's start. It rides the audio queue, so it reaches the page as that
audio starts playing, and an interruption drops it with the audio it describes.

Also consumes: ``ExpressionCuesFrame`` (kept for the text it names, not passed on).
Also emits: ``FaceCuesFrame`` before each chunk's audio.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

from loguru import logger
from pipecat.frames.frames import ErrorFrame, Frame, InterruptionFrame, TTSStoppedFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService
from pipecat.utils.string import match_endofsentence
from pipecat.utils.tracing.service_decorators import traced_tts

from processors.face_frames import ExpressionCuesFrame, FaceCuesFrame
from processors.visemes import (
    Phone,
    phones_from_alignments,
    phones_spread,
    viseme_track,
    word_starts,
)

# Cues for texts the TTS never got (a chunk dropped after the filter) must not pile up.
_MAX_PENDING_CUES = 16


class LocalPiperTTSService(TTSService):
    """Piper TTS on a shared, loaded voice, with per-avatar synthesis settings.

    Args:
        voice: a loaded ``piper.PiperVoice`` (or anything with its ``config.sample_rate`` and
            ``synthesize(text, syn_config=...)`` yielding chunks with ``audio_int16_bytes``).
        syn_config: the avatar's ``piper.SynthesisConfig`` (speed, expressiveness).
        voice_name: the voice's name, for metrics and logs.
    """

    def __init__(self, *, voice: Any, syn_config: Any, voice_name: str, **kwargs):
        # Piper hands over a sentence's audio only once it is all synthesized: a long one on a
        # busy 2-core machine took 4.5 s, past Pipecat's 3 s, which then closed the context
        # as silent, reported the voice failed and dropped the sentence's words.
        kwargs.setdefault("stop_frame_timeout_s", 10.0)
        super().__init__(
            push_text_frames=False,  # words are pushed with estimated timestamps instead
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=None, voice=voice_name, language=None),
            **kwargs,
        )
        self._piper = voice
        self._syn_config = syn_config
        # Where the next sentence starts, in seconds from the start of this reply's audio.
        self._reply_offset = 0.0
        # Expression cues by the text they belong to, oldest first.
        self._cues: deque[tuple[str, list[tuple[int, str, float]]]] = deque(
            maxlen=_MAX_PENDING_CUES
        )

    @property
    def voice_sample_rate(self) -> int:
        """The voice's native rate (the base class resamples to the output rate)."""
        return self._piper.config.sample_rate

    def can_generate_metrics(self) -> bool:
        """Report TTFB/processing metrics."""
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Keep expression cues for the text they precede; everything else as the base does."""
        if isinstance(frame, ExpressionCuesFrame):
            self._cues.append((_normal(frame.text), frame.cues))
            return
        if isinstance(frame, InterruptionFrame):
            self._cues.clear()
        await super().process_frame(frame, direction)

    def _take_cues(self, text: str) -> list[tuple[int, str, float]]:
        wanted = _normal(text)
        for i, (cued, cues) in enumerate(self._cues):
            if cued == wanted:
                for _ in range(i + 1):  # older ones were for texts that never came
                    self._cues.popleft()
                return cues
        return []

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        """Push a frame; a reply's word clock restarts after it ends or is interrupted."""
        await super().push_frame(frame, direction)
        if isinstance(frame, (InterruptionFrame, TTSStoppedFrame)):
            self._reply_offset = 0.0

    @traced_tts
    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        """Synthesize ``text``, streaming audio as Piper produces it, sentence by sentence."""
        cues = self._take_cues(text)
        words_before = 0  # words of ``text`` in the sentences already spoken

        async def audio() -> AsyncIterator[bytes]:
            nonlocal words_before
            # A TTSSpeakFrame (the greeting) comes as several sentences at once: each one's
            # words are timed as soon as its audio is known, not after the whole text, so a
            # greeting interrupted in its first sentence still shows the words that played.
            for sentence in split_sentences(text):
                chunks: Iterator = self._piper.synthesize(
                    sentence, syn_config=self._syn_config, include_alignments=True
                )
                words = sentence.split()
                starts: list[float] = []  # each word's start, from the voice's phones
                elapsed = 0.0
                # Each step runs in a worker thread: Piper is CPU-bound; the loop must not wait.
                while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                    data = chunk.audio_int16_bytes
                    seconds = len(data) / 2 / self.voice_sample_rate
                    phones = _phones(chunk, seconds)
                    chunk_starts = word_starts(phones)
                    first = words_before + len(starts)
                    if phones:
                        expressions = _cues_in(cues, first, chunk_starts, words, seconds)
                    else:  # untimed words: the sentence's feelings with its first audio
                        mine = range(words_before, words_before + len(words))
                        expressions = [(0, e, i) for n, e, i in cues if not elapsed and n in mine]
                    # No phonemes (another kind of voice): no visemes; the page uses levels.
                    if phones or expressions:
                        face = FaceCuesFrame(
                            visemes=viseme_track(phones) if phones else [],
                            expressions=expressions,
                            duration_ms=round(seconds * 1000),
                        )
                        await self._queue_face_cues(face, context_id)
                    starts.extend(elapsed + t for t in chunk_starts)
                    elapsed += seconds
                    yield data
                if len(starts) == len(words):
                    offset = self._reply_offset
                    times = [(w, offset + t) for w, t in zip(words, starts, strict=True)]
                else:  # espeak read it as other words ("42" is two): spread them instead
                    times = estimate_word_times(sentence, self._reply_offset, elapsed)
                await self.add_word_timestamps(times, context_id)
                self._reply_offset += elapsed
                words_before += len(words)

        try:
            await self.start_tts_usage_metrics(text)
            async for frame in self._stream_audio_frames_from_iterator(
                audio(), in_sample_rate=self.voice_sample_rate, context_id=context_id
            ):
                await self.stop_ttfb_metrics()
                yield frame
        except Exception as e:
            logger.exception(f"{self}: Piper failed on {text!r}")
            yield ErrorFrame(f"Speech synthesis failed: {e}")
        finally:
            await self.stop_ttfb_metrics()

    async def _queue_face_cues(self, frame: FaceCuesFrame, context_id: str) -> None:
        """Put ``frame`` in the audio's order, ahead of the chunk it describes."""
        if self.audio_context_available(context_id):
            await self.append_to_audio_context(context_id, frame)
        else:
            await self.push_frame(frame)


def _normal(text: str) -> str:
    return " ".join(text.split())


def _phones(chunk: Any, seconds: float) -> list[Phone]:
    """The chunk's phones: the voice's own durations, or an even spread without alignments."""
    alignments = getattr(chunk, "phoneme_alignments", None)
    if alignments:
        return phones_from_alignments(alignments, chunk.sample_rate)
    return phones_spread(getattr(chunk, "phonemes", None) or [], seconds)


def _cues_in(
    cues: list[tuple[int, str, float]],
    first_word: int,
    starts: list[float],
    words: list[str],
    seconds: float,
) -> list[tuple[int, str, float]]:
    """The cues for the words of one chunk (from ``first_word`` on), in ms from its start.

    ``starts`` are the chunk's word starts by its phones; when espeak counted other words,
    the word's share of the characters stands in.
    """
    out = []
    count = len(starts) or 1
    for index, expression, intensity in cues:
        local = index - first_word
        if not 0 <= local < count:
            continue
        if local < len(starts):
            at = starts[local]
        else:
            before = sum(len(w) + 1 for w in words[:local])
            at = seconds * before / max(1, sum(len(w) + 1 for w in words))
        out.append((round(at * 1000), expression, intensity))
    return out


def split_sentences(text: str) -> list[str]:
    """``text``'s sentences, by Pipecat's own sentence tokenizer (abbreviation-aware)."""
    sentences = []
    rest = text.strip()
    while rest:
        end = match_endofsentence(rest) or len(rest)
        sentences.append(rest[:end].strip())
        rest = rest[end:].strip()
    return [s for s in sentences if s]


def estimate_word_times(text: str, start: float, duration: float) -> list[tuple[str, float]]:
    """Spread ``text``'s words over ``duration`` seconds from ``start``, by character count.

    Longer words take longer to say; counting a space per word gives short words a floor.
    """
    words = text.split()
    total = sum(len(w) + 1 for w in words) or 1
    times, elapsed = [], 0
    for word in words:
        times.append((word, start + duration * elapsed / total))
        elapsed += len(word) + 1
    return times
