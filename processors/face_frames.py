"""The frames that carry a face's cues: expressions from the reply, visemes from the voice."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipecat.frames.frames import DataFrame


@dataclass
class ExpressionCuesFrame(DataFrame):
    """The feelings of the speech chunk that follows, for the TTS to time on its words.

    Parameters:
        text: the chunk's text as the TTS will get it (tags already removed).
        cues: (index of the word the feeling starts at, expression, intensity 0..1).
    """

    text: str = ""
    cues: list[tuple[int, str, float]] = field(default_factory=list)


@dataclass
class FaceCuesFrame(DataFrame):
    """What the face does while one chunk of audio plays, in ms from that audio's start.

    The TTS puts it just before the chunk's audio, without a presentation time, so the output
    transport passes it on when the audio before it has gone out: the moment this chunk's
    audio starts. ``processors.face_cues`` then sends it to the page.

    Parameters:
        visemes: (start ms, viseme class) pairs, ending with "rest".
        expressions: (start ms, expression, intensity) triples.
        duration_ms: the chunk's audio length.
    """

    visemes: list[tuple[int, str]] = field(default_factory=list)
    expressions: list[tuple[int, str, float]] = field(default_factory=list)
    duration_ms: int = 0
