"""A fixed set of test utterances, several voices and speaking rates (Piper and espeak-ng)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

UTTERANCES: list[tuple[str, str, dict]] = [
    ("What is the capital city of France?", "piper", {}),
    ("Please tell me a long story about a dragon who lives in the mountains.", "piper", {}),
    ("My dog is called Biscuit and he likes long walks.", "piper", {"length_scale": 0.85}),
    ("Can you remind me to call my sister tomorrow morning?", "piper", {"length_scale": 1.2}),
    ("How many minutes should I boil an egg?", "espeak", {"voice": "en-us", "wpm": 170}),
    ("Please schedule a meeting with the design team for next Tuesday afternoon.", "espeak",
     {"voice": "en-us", "wpm": 150}),
    ("What is the weather usually like in Scotland in October?", "espeak",
     {"voice": "en-gb", "wpm": 160}),
    ("I would like some ideas for a quick vegetarian dinner.", "espeak",
     {"voice": "en-us+f3", "wpm": 175}),
    ("Tell me a joke about computers.", "espeak", {"voice": "en-gb-x-rp", "wpm": 140}),
    ("Why is the sky blue during the day?", "piper", {"length_scale": 1.0}),
]  # fmt: skip


def synthesize(text: str, engine: str, opts: dict) -> np.ndarray:
    """int16 mono 16 kHz speech for one utterance, without leading or trailing silence."""
    from tests.speech import espeak_say, piper_say

    say: Callable[..., np.ndarray] = piper_say if engine == "piper" else espeak_say
    return trim_silence(say(text, **opts))


def trim_silence(pcm: np.ndarray, threshold: float = 300, frame: int = 320) -> np.ndarray:
    """Cut the silence synthesizers put around speech (100-420 ms at the end).

    The benchmark times from the last sample it plays: with trailing silence left in, a bot
    would get credit for silence that the user never "spoke". Speech is the span of 20 ms
    frames louder than ``threshold`` (int16 RMS, -40 dBFS), plus one frame either side.
    """
    n = len(pcm) // frame
    if n == 0:
        return pcm
    rms = np.sqrt(np.mean(pcm[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1))
    loud = np.nonzero(rms > threshold)[0]
    if not len(loud):
        return pcm
    first, last = max(0, int(loud[0]) - 1), min(n, int(loud[-1]) + 2)
    return pcm[first * frame : last * frame]
