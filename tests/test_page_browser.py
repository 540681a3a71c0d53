"""The talk page in a real (headless) Chromium.

Two tests:

* a replay (fast, no servers): the page is served from disk, WebRTC is replaced by a fake
  peer connection, and a scripted sequence of RTVI messages (shapes copied from a real
  session) checks the transcript: interim and final words, word-by-word replies, the
  "interrupted" mark only when a reply was really cut off, the latency line, errors.
* a real call (slow): the embedded LLM server (the shared ``llm_backend`` fixture) and
  ``python -m bots lumina`` on free ports, a fake microphone that asks a question, and what a
  person would see: the greeting, their words, a spoken reply, the latency line, the glow,
  and a clean hang-up.

Needs Debian's ``chromium`` and the ``playwright`` package (its bundled browsers are not
used: ``playwright install`` is never needed); skipped when either is missing.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from testkit.speech import SAMPLE_RATE, piper_say

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "web" / "static"
SCREENSHOTS = ROOT / "docs" / "screenshots"  # linked from the README
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")
BROWSER_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",  # grant the mic without a prompt
    "--use-fake-device-for-media-stream",
]
# WebGL on the CPU: SwiftShader through ANGLE (no GPU in CI or in a container).
WEBGL_FLAGS = ["--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def watch_for_errors(page, problems: list[str], *, expected: str | None = None) -> None:
    """Note the page's uncaught errors and console errors in ``problems``.

    ``expected``: a console error containing this text is one the test provokes.
    """
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "console",
        lambda m: (
            m.type == "error"
            and not (expected and expected in m.text)
            and problems.append(f"console: {m.text} ({m.location.get('url')})")
        ),
    )


@pytest.fixture
def question_wav(tmp_path) -> Path:
    """Silence while the avatar greets, the question, then silence while it answers.

    Chromium loops the file, so the trailing silence must outlast the test.
    """
    silence = lambda secs: np.zeros(int(SAMPLE_RATE * secs), dtype=np.int16)  # noqa: E731
    audio = np.concatenate([silence(8), piper_say("What is your name?"), silence(60)])
    path = tmp_path / "question.wav"
    soundfile.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return path


@pytest.mark.slow
@needs_chromium
def test_talk_page_shows_the_conversation(lumina_server, question_wav):
    playwright = pytest.importorskip("playwright.sync_api")
    flags = [*BROWSER_FLAGS, f"--use-file-for-fake-audio-capture={question_wav}"]
    problems: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=flags, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1200, "height": 900})
            page = context.new_page()
            watch_for_errors(page, problems)
            expect = playwright.expect
            # Signed out, the lobby sends us to sign in; create an account there.
            page.goto(lumina_server)
            expect(page).to_have_url(re.compile(r"/login\?next="))
            page.get_by_role("tab", name="Create account").click()
            page.get_by_label("User name").fill(f"tester-{int(time.time() * 1000) % 10**8}")
            page.get_by_label("Password").fill("correct horse battery")
            page.get_by_role("button", name="Create account").click()

            # The lobby: the avatar card, health of every part, then the talk page.
            expect(page.locator(".avatar-card h3").first).to_have_text("Lumina")
            expect(page.locator("#health li")).to_have_count(4)
            expect(page.locator("#health li[data-ok=false]")).to_have_count(0)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "lobby.png"))
            page.get_by_role("link", name="Talk to Lumina", exact=True).click()
            expect(page.locator("#avatar-name")).to_have_text("Lumina")
            expect(page.locator("#banner")).to_be_hidden()  # the LLM is up

            page.get_by_role("button", name="Talk").click()
            expect(page.get_by_role("button", name="Hang up")).to_be_visible()
            expect(page.locator("#conn")).to_have_text(
                "connected", ignore_case=True, timeout=20_000
            )

            # The greeting, then the question as the user's bubble, then a reply.
            bot = page.locator(".msg.bot .bubble")
            expect(bot.first).to_have_text(re.compile(r"\w{2,}"), timeout=30_000)
            glow = _max_glow(page, seconds=3)  # while the greeting plays
            user = page.locator(".msg.user .bubble")
            expect(user.first).to_contain_text(re.compile("name", re.I), timeout=60_000)
            reply = page.locator(".msg.user ~ .msg.bot .bubble")
            expect(reply.first).to_have_text(re.compile(r"\w{2,}"), timeout=90_000)
            latency = page.locator(".msg.user ~ .msg.bot .latency")
            expect(latency.first).to_have_text(
                re.compile(r"^\d+\.\d\d s · STT \d+ · LLM \d+ · TTS \d+ ms$"), timeout=30_000
            )
            expect(page.locator("#mic-level")).to_be_visible()
            page.screenshot(path=str(SCREENSHOTS / "talk.png"))

            # The lobby shows who is in the room while the call is on.
            lobby = context.new_page()
            lobby.goto(lumina_server)
            expect(lobby.locator("#present")).to_contain_text("is talking to Lumina")
            lobby.close()

            page.get_by_role("button", name="Hang up").click()
            expect(page.get_by_role("button", name="Talk")).to_be_visible()
            expect(page.locator("#conn")).to_have_text("disconnected", ignore_case=True)
            expect(page.locator("#status")).to_contain_text("Call ended")
        finally:
            browser.close()
    assert glow > 0.05, f"the portrait did not follow the bot's voice (max level {glow})"
    assert not problems, problems


def _max_glow(page, seconds: float) -> float:
    """The highest audio level the portrait showed (its --level), sampled for a while."""
    highest = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and highest <= 0.05:
        value = page.evaluate(
            "getComputedStyle(document.getElementById('portrait')).getPropertyValue('--level')"
        )
        with contextlib.suppress(ValueError):  # empty before the first call
            highest = max(highest, float(value))
        page.wait_for_timeout(50)
    return highest


# ---------- replay: the page against scripted RTVI messages ----------

# A stand-in for RTCPeerConnection, with what Pipecat's SmallWebRTC transport calls: it
# "connects" once the answer is set, opens its data channel, and lets the test push server
# messages with window.__rtvi(type, data).
FAKE_WEBRTC = """
class FakeChannel extends EventTarget {
  readyState = "connecting";
  sent = [];
  send(data) { this.sent.push(data); }
  close() { this.readyState = "closed"; }
}
class FakeSender {
  track = null;
  async replaceTrack(track) { this.track = track; }
}
class FakePeerConnection extends EventTarget {
  connectionState = "new";
  iceConnectionState = "new";
  iceGatheringState = "complete";
  signalingState = "stable";
  transceivers = [];
  constructor(config) { super(); window.__pc = this; this.config = config; }
  addTransceiver(trackOrKind, init) {
    const kind = typeof trackOrKind === "string" ? trackOrKind : trackOrKind.kind;
    const transceiver = {
      kind, ...init, sender: new FakeSender(), stop() { this.stopped = true; },
    };
    this.transceivers.push(transceiver);
    return transceiver;
  }
  getTransceivers() { return this.transceivers; }
  getSenders() { return this.transceivers.map((t) => t.sender); }
  createDataChannel(label, options) {
    return (this.channel = Object.assign(new FakeChannel(), { label, options }));
  }
  async createOffer() { return { type: "offer", sdp: "v=0 fake offer" }; }
  async setLocalDescription(d) { this.localDescription = d; }
  async setRemoteDescription(d) {
    this.remoteDescription = d;
    setTimeout(() => {
      this.connectionState = "connected";
      this.dispatchEvent(new Event("connectionstatechange"));
      this.channel.readyState = "open";
      this.channel.dispatchEvent(new Event("open"));
    }, 10);
  }
  close() { this.connectionState = "closed"; this.closed = true; }
}
window.RTCPeerConnection = FakePeerConnection;
window.__rtvi = (type, data) => window.__pc.channel.dispatchEvent(
  new MessageEvent("message", { data: JSON.stringify({ label: "rtvi-ai", type, data }) }));
"""

AVATARS = [
    {
        "id": "lumina",
        "name": "Lumina",
        "blurb": "Warm.",
        "greeting": "Hi.",
        "voice": "v",
        "speed": 1,
    },
    {
        "id": "captain",
        "name": "Captain Rook",
        "blurb": "Salty.",
        "greeting": "Ahoy.",
        "voice": "v",
        "speed": 1,
    },
]
# Nothing listens there: every request is answered by the test. localhost, because browsers
# only give pages on secure origins (https, localhost) a microphone.
REPLAY_ORIGIN = "http://localhost:9"
FIX = "No LLM server is reachable. Start Ollama (`ollama serve`) or run `make llm`."


def _serve_page_from_disk(page, offers: list, health_ok: bool = True):
    """Answer every request the page makes: static files from disk, the API mocked."""
    import json

    def handle(route):
        url = route.request.url.split("://", 1)[1].split("/", 1)[1]
        path = "/" + url.split("?")[0]
        if path in ("/", "/talk"):
            return route.fulfill(path=STATIC / "talk.html")
        if path == "/api/room":
            return route.fulfill(json={"user": {"id": "u-1", "username": "tester"}})
        if path.startswith("/static/"):
            return route.fulfill(path=STATIC / path.removeprefix("/static/"))
        if path == "/api/avatars":
            return route.fulfill(json=AVATARS)
        if path == "/api/health":
            llm = {"ok": True, "backend": "embedded"} if health_ok else {"ok": False, "fix": FIX}
            return route.fulfill(json={"ok": health_ok, "llm": llm})
        if path == "/api/offer":
            query = route.request.url.partition("?")[2]
            offers.append({**json.loads(route.request.post_data), "query": query})
            return route.fulfill(json={"sdp": "v=0 fake answer", "type": "answer", "pc_id": "pc1"})
        return route.fulfill(status=404, json={"detail": "not found"})

    page.route(f"{REPLAY_ORIGIN}/**", handle)


def _words(segment_id: int, text: str, heard: str, status: str) -> dict:
    """A bot-output message as Pipecat's RTVI observer sends it to a 2.x client."""
    return {
        "text": text,
        "output_type": "sentence",
        "segment_id": segment_id,
        "will_be_spoken": True,
        "spoken_status": status,
        "spoken_progress": {"accumulated_text": heard, "remaining_text": text[len(heard) :]},
    }


@needs_chromium
def test_replayed_session_renders_the_transcript():
    playwright = pytest.importorskip("playwright.sync_api")
    expect = playwright.expect
    offers: list = []
    problems: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS, headless=True)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.add_init_script(FAKE_WEBRTC)
            _serve_page_from_disk(page, offers, health_ok=False)
            page.goto(f"{REPLAY_ORIGIN}/?avatar=captain")
            rtvi = lambda type_, data=None: page.evaluate(  # noqa: E731
                "([t, d]) => window.__rtvi(t, d)", [type_, data]
            )

            # The avatar from the URL, and the health fix in the banner, commands as code.
            expect(page.locator("#avatar-name")).to_have_text("Captain Rook")
            expect(page.locator("#initials")).to_have_text("CR")
            expect(page.locator("#banner")).to_contain_text("No LLM server is reachable")
            expect(page.locator("#banner code")).to_have_text(["ollama serve", "make llm"])

            page.get_by_role("button", name="Talk").click()
            expect(page.locator("#conn")).to_have_text("connected", ignore_case=True)
            # The avatar: Pipecat's client sends it as requestData; the room reads ?avatar=.
            assert offers[0]["type"] == "offer" and offers[0]["requestData"] == {
                "avatar": "captain"
            }
            assert offers[0]["query"] == "avatar=captain" and len(offers) == 1
            pc = "window.__pc"
            assert page.evaluate(f"{pc}.config.iceServers") == []  # no ICE servers
            transceiver = page.evaluate(f"({{...{pc}.transceivers[0], sender: undefined}})")
            assert transceiver["kind"] == "audio" and transceiver["direction"] == "sendrecv"
            assert page.evaluate(f"{pc}.transceivers[0].sender.track.kind") == "audio"  # the mic
            assert page.evaluate(f"[{pc}.channel.label, {pc}.channel.options]") == [
                "chat",
                {"ordered": True},
            ]
            page.wait_for_timeout(1300)
            sent = page.evaluate(f"{pc}.channel.sent")
            ready = [m for m in json_messages(sent) if m.get("label") == "rtvi-ai"][0]
            assert ready["label"] == "rtvi-ai" and ready["type"] == "client-ready"
            assert ready["data"]["version"] == "2.2.0" and ready["id"]
            assert ready["data"]["about"]["library"] == "local-avatars-page"
            assert any(m.startswith("ping") for m in sent)  # the keep-alive

            # The greeting, word by word; an interruption after it ends marks nothing.
            greeting = "Ahoy there."
            rtvi("bot-ready", {"version": "2.2.0"})
            rtvi("bot-started-speaking")
            rtvi("bot-output", _words(1, greeting, "", "new"))
            rtvi("bot-output", _words(1, greeting, "Ahoy", "in-progress"))
            bot = page.locator(".msg.bot").last
            expect(bot.locator(".text")).to_have_text("Ahoy")
            rtvi("bot-output", _words(1, greeting, greeting, "completed"))
            rtvi("bot-stopped-speaking")
            rtvi("user-started-speaking")
            rtvi("bot-interrupted")
            expect(bot.locator(".text")).to_have_text(greeting)
            expect(bot).not_to_have_class(re.compile("interrupted"))

            # The user's words: interim greyed, then replaced by the final text.
            user = page.locator(".msg.user").last
            rtvi("user-input", {"text": "what is", "input_type": "transcription", "final": False})
            rtvi("user-transcription", {"text": "what is", "final": False})  # the old twin
            expect(user.locator(".interim")).to_have_text("what is")
            rtvi(
                "user-input",
                {"text": "What is your name?", "input_type": "transcription", "final": True},
            )
            rtvi("user-transcription", {"text": "What is your name?", "final": True})
            rtvi("user-stopped-speaking")
            expect(user.locator(".final")).to_have_text("What is your name?")
            expect(user.locator(".interim")).to_have_text("")

            # A reply: thinking dots, latency, words as heard; cut off by the user.
            rtvi("bot-llm-started")
            reply = page.locator(".msg.bot").last
            expect(reply).to_have_class(re.compile("pending"))
            rtvi("bot-started-speaking")
            latency = {"type": "turn-latency", "total": 820, "turn_end": 300, "stt": 140}
            rtvi("server-message", {**latency, "llm_ttfb": 180, "tts_ttfb": 120})
            answer = "I am Captain Rook, master of the seas."
            rtvi("bot-output", _words(2, answer, "", "new"))
            rtvi("bot-output", _words(2, answer, "I am Captain", "in-progress"))
            rtvi("bot-tts-text", {"text": "Captain"})  # the old twin of bot-output
            rtvi("user-started-speaking")
            rtvi("bot-interrupted")
            rtvi("bot-stopped-speaking")
            rtvi("bot-llm-stopped")
            expect(reply.locator(".text")).to_have_text("I am Captain")
            expect(reply).to_have_class(re.compile("interrupted"))
            expect(reply.locator(".tag")).to_have_text("interrupted")
            expect(reply.locator(".latency")).to_have_text(
                "0.82 s · STT 140 · LLM 180 · TTS 120 ms"
            )
            expect(page.locator(".msg")).to_have_count(4)  # greeting, question, reply, new turn

            # A fatal pipeline error ends the call and says why.
            rtvi("error", {"error": "the LLM server went away", "fatal": True})
            expect(page.locator("#status")).to_contain_text("the LLM server went away")
            expect(page.get_by_role("button", name="Talk")).to_be_visible()
            assert page.evaluate(f"{pc}.closed")
            expect(page.locator(".note")).to_have_count(1)  # "Call ended · time"
        finally:
            browser.close()
    assert not problems, problems


def json_messages(sent: list[str]) -> list[dict]:
    import json

    return [json.loads(m) for m in sent if not m.startswith("ping")]
