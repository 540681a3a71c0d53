"""What the bot said, as a listener heard it: its played audio transcribed, and fuzzy matching
of a fact in it (the STT spells names its own way: "Bizkit" for "Biscuit")."""

from __future__ import annotations

import re

import numpy as np
import soxr
from rapidfuzz import fuzz

from testkit.harness import HeardChunk


def transcribe_played(transcriber, chunks: list[HeardChunk]) -> str:
    """Transcribe the audio of ``chunks`` (as played by ``RecordingOutput``) with whisper.cpp."""
    if not chunks:
        return ""
    pcm = b"".join(c.audio for c in chunks)
    audio = np.frombuffer(pcm, np.int16).astype(np.float32) / 32768
    return transcriber.transcribe(soxr.resample(audio, chunks[0].sample_rate, 16000)) or ""


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " "))


def carries(answer: str, values: tuple[str, ...] | list[str]) -> bool:
    """Whether ``answer`` says one of ``values``: short ones as whole words, longer ones fuzzily."""
    said = _norm(answer)
    for value in values:
        v = _norm(value).strip()
        if len(v) <= 3:  # "may", "42", "leo" must be a whole word
            if re.search(rf"\b{re.escape(v)}\b", said):
                return True
        elif fuzz.partial_ratio(v, said) >= 80:
            return True
    return False
