"""Smart-turn waits for a running whisper pass (processors.speech_first): pure logic."""

from __future__ import annotations

import threading
import time

from processors.speech_first import SpeechFirst


def _transcribe_for(gate: SpeechFirst, secs: float) -> threading.Thread:
    started = threading.Event()

    def run():
        with gate.transcribing():
            started.set()
            time.sleep(secs)

    thread = threading.Thread(target=run)
    thread.start()
    started.wait()
    return thread


def test_inference_waits_for_the_running_pass_to_end():
    gate = SpeechFirst()
    thread = _transcribe_for(gate, 0.2)
    t = time.monotonic()
    assert gate.wait_idle(timeout=2.0)
    assert 0.15 <= time.monotonic() - t < 1.0
    thread.join()


def test_inference_waits_no_longer_than_its_bound():
    gate = SpeechFirst()
    thread = _transcribe_for(gate, 0.5)
    t = time.monotonic()
    assert not gate.wait_idle(timeout=0.1)
    assert time.monotonic() - t < 0.3
    thread.join()
    assert gate.wait_idle(timeout=0.0)


def test_with_no_pass_running_nothing_waits():
    t = time.monotonic()
    assert SpeechFirst().wait_idle()
    assert time.monotonic() - t < 0.05
