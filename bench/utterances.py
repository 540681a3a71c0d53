"""A fixed set of test utterances, several voices and speaking rates (Piper and espeak-ng)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from testkit.speech import espeak_say, piper_say, trim_silence

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
    say: Callable[..., np.ndarray] = piper_say if engine == "piper" else espeak_say
    return trim_silence(say(text, **opts))


# Said with a pause in the middle (PAUSE_SECS of silence after the first part): the bot must
# wait for the whole sentence. Each first part ends where a sentence cannot (issue 19).
PAUSE_SECS = 0.45
PAUSED: list[tuple[str, str]] = [
    ("Could you tell me the name of", "the largest planet in our solar system?"),
    ("I was wondering if you could recommend", "a good book for a long train journey."),
    ("What do you think is the best way to", "learn to play the piano as an adult?"),
]


def synthesize_paused(first: str, rest: str, pause_secs: float = PAUSE_SECS) -> np.ndarray:
    """Two halves of a sentence (Piper) with ``pause_secs`` of digital silence between them."""
    gap = np.zeros(int(pause_secs * 16000), dtype=np.int16)
    return np.concatenate([trim_silence(piper_say(first)), gap, trim_silence(piper_say(rest))])
