"""The CTranslate2 -> ggml Whisper conversion: mel filters, file layout, real transcription."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from bots.models import whisper_ggml
from bots.whisper_ggml import slaney_mel_filters
from testkit.speech import espeak_say, piper_say
from testkit.wer import wer

PIPER_TEXT = "The quick brown fox jumps over the lazy dog near the river bank."
ESPEAK_TEXT = "Please schedule a meeting with the design team for next Tuesday afternoon."
# The STT service's call: short utterances, one segment, no timestamps, no temperature fallback.
TRANSCRIBE_PARAMS = dict(
    language="en", single_segment=True, no_timestamps=True, temperature_inc=0.0
)


def test_slaney_filters_match_transformers():
    from transformers.audio_utils import mel_filter_bank

    ours = slaney_mel_filters()
    theirs = mel_filter_bank(
        num_frequency_bins=201,
        num_mel_filters=80,
        min_frequency=0.0,
        max_frequency=8000.0,
        sampling_rate=16000,
        norm="slaney",
        mel_scale="slaney",
    ).T
    assert ours.shape == (80, 201)
    assert ours.dtype == np.float32
    assert np.allclose(ours, theirs, atol=1e-6)


@pytest.fixture(scope="module")
def ggml_path(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    path = Path(whisper_ggml("tiny.en", cache))
    assert path.parent == cache
    return path


@pytest.fixture(scope="module")
def model(ggml_path):
    from pywhispercpp.model import Model

    return Model(str(ggml_path), n_threads=2, print_realtime=False, print_progress=False)


def transcribe(model, audio: np.ndarray) -> str:
    segments = model.transcribe(audio.astype(np.float32) / 32768.0, **TRANSCRIBE_PARAMS)
    return " ".join(s.text for s in segments).strip()


@pytest.mark.slow
def test_ggml_header(ggml_path):
    with ggml_path.open("rb") as f:
        magic, *hparams = struct.unpack("<12i", f.read(48))
        n_mel, n_fft = struct.unpack("<2i", f.read(8))
        filters = np.frombuffer(f.read(4 * n_mel * n_fft), "<f4").reshape(n_mel, n_fft)
        (n_tokens,) = struct.unpack("<i", f.read(4))
    assert magic == 0x67676D6C
    assert hparams == [51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1]
    assert np.array_equal(filters, slaney_mel_filters())
    assert n_tokens == 50256  # gpt2 text tokens; whisper.cpp synthesizes the specials


@pytest.mark.slow
def test_second_call_reuses_conversion(ggml_path):
    before = ggml_path.stat().st_mtime_ns
    assert Path(whisper_ggml("tiny.en", ggml_path.parent)) == ggml_path
    assert ggml_path.stat().st_mtime_ns == before


@pytest.mark.slow
def test_transcribes_piper_speech(model):
    hypothesis = transcribe(model, piper_say(PIPER_TEXT))
    assert wer(PIPER_TEXT, hypothesis) <= 0.1, hypothesis


@pytest.mark.slow
def test_transcribes_espeak_speech(model):
    hypothesis = transcribe(model, espeak_say(ESPEAK_TEXT))
    assert wer(ESPEAK_TEXT, hypothesis) <= 0.1, hypothesis
