"""Faults mid-call, on the real graph with real speech: the avatar says what went wrong in its
own voice, the call stays up, and the next turn is answered.

The LLM case runs its own supervised embedded server (``python -m bots.llm_server``) and
SIGKILLs the llama-server under it as the reply starts streaming, as a crash would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
from pipecat.frames.frames import LLMTextFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frameworks.rtvi.frames import RTVIServerMessageFrame

from bots.config import BUILTIN_AVATARS
from bots.llm_backend import LLMBackend
from bots.session import LLM_APOLOGY, VoiceSession
from testkit.harness import ScriptedTransport
from testkit.heard import carries, transcribe_played
from testkit.net import free_port, wait_for, wait_http
from testkit.speech import piper_say

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


class KillOnFirstToken(BaseObserver):
    """SIGKILLs ``pid`` when the LLM service pushes the reply's first token."""

    def __init__(self, llm, pid: int):
        super().__init__()
        self.llm, self.pid, self.killed_at = llm, pid, 0.0

    async def on_push_frame(self, data: FramePushed):
        if not self.killed_at and isinstance(data.frame, LLMTextFrame) and data.source is self.llm:
            os.kill(self.pid, signal.SIGKILL)
            self.killed_at = time.monotonic()


def lumina(runtime, backend, session_id: str) -> VoiceSession:
    """A call with Lumina on the real graph; faults are injected before it runs."""
    return VoiceSession(
        BUILTIN_AVATARS.load("lumina"),
        ScriptedTransport,
        runtime,
        backend=backend,
        session_id=session_id,
        user_id=f"{session_id}-tester",
        greet=False,
        idle_timeout_secs=None,
    )


@contextlib.asynccontextmanager
async def running(session: VoiceSession) -> AsyncIterator[tuple[ScriptedTransport, asyncio.Task]]:
    """Run the call; yields its scripted transport and the task running it; ends it after."""
    await session.prepare()
    task = asyncio.create_task(session.run())
    try:
        await asyncio.sleep(1.5)  # pipeline start + VAD settling on silence
        assert isinstance(session.transport, ScriptedTransport)
        yield session.transport, task
    finally:
        await session.worker.cancel()
        await asyncio.wait_for(task, 30)
        await session.finish()


async def apology_heard(session: VoiceSession, transcriber) -> str:
    """Wait for the avatar's apology to be spoken; what was played, transcribed."""
    await wait_for(
        lambda: [e for e in session.turns.events if e.kind == "apology"], 30, "an apology"
    )
    transport = session.transport
    assert isinstance(transport, ScriptedTransport)
    await wait_for(lambda: transport.speaker.heard and transport.silent_for(1.5), 60, "the apology")
    return transcribe_played(transcriber, transport.speaker.heard)


@pytest.fixture
def own_llm_server():
    """A supervised embedded LLM server of this test's own (the suite's is shared)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bots.llm_server", "--port", str(port)], cwd=ROOT
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120, proc)
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def test_the_llm_server_killed_mid_reply_gets_an_apology_and_the_next_turn_an_answer(
    own_llm_server, make_runtime
):
    port, supervisor = own_llm_server
    runtime = make_runtime(llm_port=port, llm_backend="embedded")
    backend = LLMBackend("embedded", f"http://127.0.0.1:{port}/v1", "local", 1)
    session = lumina(runtime, backend, "fault")
    (server,) = _children(supervisor.pid)
    killer = KillOnFirstToken(session.graph.llm, server)
    session.worker.add_observer(killer)
    async with running(session) as (transport, task):
        await transport.mic.say(piper_say("Tell me a long story about a dragon."))
        await wait_for(lambda: killer.killed_at, 60, "the reply to start streaming")
        said = await apology_heard(session, runtime.models.transcriber())
        assert carries(said, ["sorry", "train of thought"]), f"heard {said!r}"
        assert not task.done(), "the call is still up"
        assert LLM_APOLOGY in [t.text for t in session.turns.turns("assistant")]

        # The supervisor restarts llama-server; the next question is answered.
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/health", 120, supervisor)
        answered = len(session.turns.turns("assistant"))
        await transport.mic.say(piper_say("What is the capital of France?"))
        replies = await wait_for(
            lambda: session.turns.turns("assistant")[answered:], 90, "an answer after restart"
        )
        assert replies[0].text and replies[0].text != LLM_APOLOGY


class FailsOnce:
    """The process's real whisper, with the first transcription crashing (fault injection)."""

    def __init__(self, whisper):
        self._whisper, self.name, self.failed = whisper, whisper.name, False

    def transcribe(self, audio, *, interim: bool = False):
        if not interim and not self.failed:
            self.failed = True
            raise RuntimeError("whisper.cpp crashed")
        return self._whisper.transcribe(audio, interim=interim)


async def test_speech_recognition_failing_once_is_said_and_the_next_utterance_is_heard(
    runtime, llm_backend
):
    session = lumina(runtime, llm_backend, "stt-fault")
    flaky = FailsOnce(runtime.models.transcriber())
    session.stt._whisper = flaky  # the graph's own STT service, its model made to fail once
    async with running(session) as (transport, task):
        await transport.mic.say(piper_say("What is the capital of France?"))
        said = await apology_heard(session, runtime.models.transcriber())
        assert carries(said, ["sorry", "didn't catch"]), f"heard {said!r}"
        asked = len(session.turns.turns("user"))
        await transport.mic.say(piper_say("What is the capital of France?"))
        heard = await wait_for(lambda: session.turns.turns("user")[asked:], 60, "the retry")
        assert "france" in heard[0].text.lower() and not task.done()


async def test_a_memory_store_that_cannot_write_keeps_the_call_going_and_turns_health_red(
    tmp_path, runtime, llm_backend, embedder, monkeypatch
):
    from bots.runtime import Runtime
    from memory.store import MemoryStore
    from web.health import health_report

    store = MemoryStore(str(tmp_path / "memory"), embedder)
    full = OSError(28, "No space left on device")

    def disk_full(*_args, **_kwargs):
        raise full

    monkeypatch.setattr(store, "add_turn", disk_full)  # every turn write fails, as on a full disk
    runtime = Runtime(runtime.settings, models=runtime.models, memory=store)
    session = lumina(runtime, llm_backend, "disk-full")
    async with running(session) as (transport, task):
        for question in ("What is the capital of France?", "And what is its river called?"):
            answered = len(session.turns.turns("assistant"))
            await transport.mic.say(piper_say(question))
            await wait_for(lambda a=answered: session.turns.turns("assistant")[a:], 60, question)
            await wait_for(lambda: transport.silent_for(1.0), 60, "the answer to end")
        assert not task.done(), "the call went on"
        await wait_for(lambda: store.write_failure, 10, "the failure to be recorded")
    assert store.count("disk-full-tester") == {"turns": 0, "chunks": 0, "cards": 0}
    memory = health_report(runtime, [BUILTIN_AVATARS.load("lumina")])["memory"]
    assert not memory["ok"] and "No space left" in memory["fix"], memory


class VoiceFailsOnce:
    """The avatar's real Piper voice, with its first synthesis crashing (fault injection)."""

    def __init__(self, voice):
        self._voice, self.config, self.failed = voice, voice.config, False

    def synthesize(self, text, syn_config=None, **options):
        if not self.failed:
            self.failed = True
            raise RuntimeError("piper crashed")
        return self._voice.synthesize(text, syn_config=syn_config, **options)


class ServerMessages(BaseObserver):
    """The RTVI server messages the session sends its page."""

    def __init__(self):
        super().__init__()
        self.sent: list[dict] = []
        self._ids: set[int] = set()

    async def on_push_frame(self, data: FramePushed):
        frame = data.frame
        if isinstance(frame, RTVIServerMessageFrame) and frame.id not in self._ids:
            self._ids.add(frame.id)
            self.sent.append(frame.data)


async def test_a_voice_that_fails_tells_the_page_and_the_next_reply_is_spoken(runtime, llm_backend):
    session = lumina(runtime, llm_backend, "tts-fault")
    session.graph.tts._piper = VoiceFailsOnce(session.graph.tts._piper)
    messages = ServerMessages()
    session.worker.add_observer(messages)
    async with running(session) as (transport, task):
        await transport.mic.say(piper_say("What is the capital of France?"))
        told = await wait_for(
            lambda: [m for m in messages.sent if m.get("type") == "error"], 60, "the page told"
        )
        assert told[0]["part"] == "tts" and "voice" in told[0]["message"]
        await wait_for(lambda: transport.silent_for(2.0), 60, "the reply to end")
        heard_from = len(transport.speaker.heard)
        await transport.mic.say(piper_say("What is the capital of Italy?"))
        await wait_for(
            lambda: [c for c in transport.speaker.heard[heard_from:] if c.rms > 300],
            60,
            "the next reply, spoken",
        )
        assert not task.done()
