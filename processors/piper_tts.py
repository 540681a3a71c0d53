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
heard words, flagged interrupted. The estimate is off by a fraction of a word at worst.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

from loguru import logger
from pipecat.frames.frames import ErrorFrame, Frame, InterruptionFrame, TTSStoppedFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService
from pipecat.utils.string import match_endofsentence
from pipecat.utils.tracing.service_decorators import traced_tts


class LocalPiperTTSService(TTSService):
    """Piper TTS on a shared, loaded voice, with per-avatar synthesis settings.

    Args:
        voice: a loaded ``piper.PiperVoice`` (or anything with its ``config.sample_rate`` and
            ``synthesize(text, syn_config=...)`` yielding chunks with ``audio_int16_bytes``).
        syn_config: the avatar's ``piper.SynthesisConfig`` (speed, expressiveness).
        voice_name: the voice's name, for metrics and logs.
    """

    def __init__(self, *, voice: Any, syn_config: Any, voice_name: str, **kwargs):
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

    @property
    def voice_sample_rate(self) -> int:
        """The voice's native rate (the base class resamples to the output rate)."""
        return self._piper.config.sample_rate

    def can_generate_metrics(self) -> bool:
        """Report TTFB/processing metrics."""
        return True

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        """Push a frame; a reply's word clock restarts after it ends or is interrupted."""
        await super().push_frame(frame, direction)
        if isinstance(frame, (InterruptionFrame, TTSStoppedFrame)):
            self._reply_offset = 0.0

    @traced_tts
    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        """Synthesize ``text``, streaming audio as Piper produces it, sentence by sentence."""

        async def audio() -> AsyncIterator[bytes]:
            # A TTSSpeakFrame (the greeting) comes as several sentences at once: each one's
            # words are timed as soon as its audio is known, not after the whole text, so a
            # greeting interrupted in its first sentence still shows the words that played.
            for sentence in split_sentences(text):
                chunks: Iterator = self._piper.synthesize(sentence, syn_config=self._syn_config)

                def next_chunk(chunks: Iterator = chunks) -> bytes | None:
                    chunk = next(chunks, None)
                    return None if chunk is None else chunk.audio_int16_bytes

                num_bytes = 0
                # Each step runs in a worker thread: Piper is CPU-bound; the loop must not wait.
                while (data := await asyncio.to_thread(next_chunk)) is not None:
                    num_bytes += len(data)
                    yield data
                duration = num_bytes / 2 / self.voice_sample_rate
                await self.add_word_timestamps(
                    estimate_word_times(sentence, self._reply_offset, duration), context_id
                )
                self._reply_offset += duration

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
