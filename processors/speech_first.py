"""On a 2-core machine, smart-turn waits while whisper.cpp transcribes.

Both run when a person stops speaking: the STT's pass starts at the first silent frame, and
smart-turn's inference at the VAD's stop, 200 ms later, usually while that pass is still
running. Whisper's two threads then share the cores with smart-turn's one and wait for each
other at every layer: in the latency bench a ~3 s clip took 290-590 ms (median ~340 ms) when
smart-turn ran during the pass and 150-270 ms (median ~200 ms) when it did not. The
transcript is on the reply's critical path (the preemptive reply starts on it); smart-turn's
verdict is not yet, because a turn does not end before ``smart_turn_min_silence_secs``
(0.5 s) of silence anyway. So smart-turn waits for the pass, at most :data:`MAX_WAIT_SECS`.

There is no library for this kind of cross-model CPU priority inside one process, so it is a
process-wide counter of running passes (both models are shared by every call of the process).
Neither side is a frame processor; it consumes and emits no frames.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

MAX_WAIT_SECS = 0.4
"""Longest smart-turn waits for transcription (a long clip or several calls' passes)."""


class SpeechFirst:
    """Counts running transcription passes; lets other inference wait until there are none."""

    def __init__(self) -> None:
        self._idle = threading.Condition()
        self._passes = 0

    @contextmanager
    def transcribing(self) -> Iterator[None]:
        """Hold for the length of one transcription pass (any thread)."""
        with self._idle:
            self._passes += 1
        try:
            yield
        finally:
            with self._idle:
                self._passes -= 1
                if not self._passes:
                    self._idle.notify_all()

    def wait_idle(self, timeout: float = MAX_WAIT_SECS) -> bool:
        """Block until no pass is running or ``timeout`` passes; whether it is idle."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._passes, timeout)


SPEECH_FIRST = SpeechFirst()
"""The process's one counter (whisper and smart-turn are shared by all its calls)."""
