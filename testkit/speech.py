"""Synthesize test speech offline: Piper (in-process) and espeak-ng (CLI), int16 mono 16 kHz.

For tests and benchmarks only (the product never imports ``testkit``). The Piper voice is
loaded once per process (``_piper_voice``): test tooling, not the product's model handling,
which lives in ``bots.runtime``.
"""

from __future__ import annotations

import subprocess
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import soundfile
import soxr

SAMPLE_RATE = 16000


def _to_16k_int16(audio: np.ndarray, rate: int) -> np.ndarray:
    """Resample float audio in [-1, 1] to 16 kHz and quantise to int16."""
    audio = np.asarray(audio, dtype=np.float32)
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE)
    return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)


@cache
def _piper_voice(name: str = "en_US-joe-medium"):
    from piper import PiperVoice

    from bots.models import piper_voice

    return PiperVoice.load(piper_voice(name))


def piper_say(text: str, length_scale: float = 1.0) -> np.ndarray:
    """Speak ``text`` with the packaged Piper voice; int16 mono at 16 kHz."""
    from piper import SynthesisConfig

    voice = _piper_voice()
    chunks = list(voice.synthesize(text, syn_config=SynthesisConfig(length_scale=length_scale)))
    if not chunks:
        return np.zeros(0, dtype=np.int16)
    audio = np.concatenate([c.audio_float_array for c in chunks])
    return _to_16k_int16(audio, chunks[0].sample_rate)


def espeak_say(text: str, voice: str = "en-us", wpm: int = 170) -> np.ndarray:
    """Speak ``text`` with the espeak-ng command line; int16 mono at 16 kHz."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(wav), text],
            check=True,
            capture_output=True,
        )
        audio, rate = soundfile.read(wav, dtype="float32", always_2d=True)
    return _to_16k_int16(audio.mean(axis=1), rate)


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
