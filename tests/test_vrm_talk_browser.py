"""A person's own VRM model on the talk page, lip-synced in a real call (headless Chromium).

Against ``python -m bots lumina`` and the embedded LLM server (the shared ``lumina_server``
fixture): a person signs up, copies Lumina with ``face.vrm = true``, uploads a model made by
``tests/make_vrm.py``, and opens the talk page in Chromium with WebGL on SwiftShader. The
model is drawn (the canvas is shown, with opaque pixels on a transparent background), and
when the call starts its mouth expressions (aa ih ou ee oh) follow the server's lip-sync
cues: they open while the greeting and the reply play, and close again after each.

Needs Debian's ``chromium`` and the ``playwright`` package; skipped without them.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile

from testkit.speech import SAMPLE_RATE, piper_say
from tests.accounts import PASSWORD
from tests.make_vrm import make_vrm
from tests.test_page_browser import (
    BROWSER_FLAGS,
    CHROMIUM,
    SCREENSHOTS,
    WEBGL_FLAGS,
    needs_chromium,
    watch_for_errors,
)

pytestmark = [pytest.mark.slow, needs_chromium]

# WebGL on the CPU: SwiftShader through ANGLE (no GPU in CI or in a container).
FLAGS = [*BROWSER_FLAGS, *WEBGL_FLAGS]
OPEN = 0.3  # a mouth expression's weight that is clearly open
CLOSED = 0.05
FRAMES_MS = 250  # how long after the last cue the mouth must be closed (a few frames)

# A sampler in the page: every 15 ms, the most open mouth expression, what the portrait says
# the avatar is doing, and whether lip-sync cues are playing or still to come (their audio
# is heard the measured playout delay after the server sends it), so the test sees every
# syllable, not just what it happens to poll.
SAMPLE = """
(() => {
  window.__mouth = [];
  const names = ["aa", "ih", "ou", "ee", "oh"];
  const portrait = document.getElementById("portrait");
  const talk = globalThis.__talk;
  setInterval(() => {
    const v = talk.vrm;
    if (!v) return;
    const now = performance.now();
    const w = Math.max(...names.map((n) => v.getExpressionWeight(n)));
    const cued = talk.cues.pending(now);
    window.__mouth.push([now, w, portrait.dataset.activity || "", cued, talk.playout.ms]);
  }, 15);
})();
"""
# The canvas's pixels, counted in the same task as a frame is drawn (the WebGL drawing
# buffer is not kept once shown).
PIXELS = """
(() => {
  const view = globalThis.__talk.vrm;
  view.update(0);
  const canvas = document.getElementById("vrm");
  const copy = document.createElement("canvas");
  copy.width = canvas.width;
  copy.height = canvas.height;
  const ctx = copy.getContext("2d");
  ctx.drawImage(canvas, 0, 0);
  const data = ctx.getImageData(0, 0, copy.width, copy.height).data;
  let opaque = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) opaque++;
  return { opaque, total: data.length / 4 };
})()
"""


@pytest.fixture
def question_wav(tmp_path) -> Path:
    """Silence while the avatar greets, the question, then silence while it answers."""
    silence = lambda secs: np.zeros(int(SAMPLE_RATE * secs), dtype=np.int16)  # noqa: E731
    audio = np.concatenate([silence(8), piper_say("What is your name?"), silence(200)])
    path = tmp_path / "question.wav"
    soundfile.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return path


def _wait(page, js: str, secs: float, what: str):
    """Poll from here (the page's CSP refuses Playwright's eval-based wait_for_function)."""
    deadline = time.monotonic() + secs
    while not (value := page.evaluate(js)):
        assert time.monotonic() < deadline, f"timed out after {secs}s waiting for {what}"
        page.wait_for_timeout(50)
    return value


def _my_vrm_avatar(context) -> str:
    """A copy of Lumina that shows its model, owned by the signed-in person, with a model."""
    lumina = context.request.get("/api/avatars/lumina")
    assert lumina.ok, lumina.text()
    config = lumina.json()["config"]
    avatar_id = f"lumina-3d-{uuid.uuid4().hex[:6]}"
    config.update(id=avatar_id, name="Lumina 3D")
    config["face"] = {**config["face"], "vrm": True}
    made = context.request.post("/api/avatars", data=config)
    assert made.status == 201, made.text()
    model = make_vrm(title="Lumina 3D")
    put = context.request.put(
        f"/api/avatars/{avatar_id}/vrm",
        data=model,
        headers={"Content-Type": "model/gltf-binary"},
    )
    assert put.status == 200, put.text()
    assert put.json()["version"] == "1.0"
    listed = {a["id"]: a for a in context.request.get("/api/avatars").json()}
    assert listed[avatar_id]["vrm"] is True and listed[avatar_id]["face"]["vrm"] is True
    return avatar_id


class Mouth:
    """The page sampler's samples, fetched as they come."""

    def __init__(self, page):
        self.page = page
        self.samples: list[list] = []

    def fetch(self) -> list[list]:
        self.samples += self.page.evaluate(f"window.__mouth.slice({len(self.samples)})")
        return self.samples

    def speech(
        self, after: float, secs: float, what: str, idle: tuple[str, ...] = ("",)
    ) -> tuple[float, float, float]:
        """Samples from ``after`` on until the avatar has spoken and then been quiet (not
        speaking, no cues to play, the portrait's activity one of ``idle``) for 600 ms.

        Returns (the most open mouth while speaking; the most open while quiet, in the
        pauses between sentences too; the playout delay in ms).
        """
        deadline = time.monotonic() + secs
        while True:
            samples = [s for s in self.fetch() if s[0] > after]
            talking = [s[2] == "speaking" or s[3] for s in samples]
            if any(talking):
                start = talking.index(True)
                last = len(talking) - 1 - talking[::-1].index(True)
                # The mouth shows the last frame's cue: it closes a frame or two (slow on
                # SwiftShader) after the cues end.
                quiet, since = [], None
                for s, t in zip(samples[start:], talking[start:], strict=True):
                    since = None if t else (s[0] if since is None else since)
                    if since is not None and s[0] > since + FRAMES_MS:
                        quiet.append(s)
                tail = [s for s in samples[last + 1 :] if s[0] > samples[last][0] + FRAMES_MS]
                if tail and all(s[2] in idle for s in tail) and tail[-1][0] - tail[0][0] >= 600:
                    spoken = max(s[1] for s, t in zip(samples, talking, strict=True) if t)
                    return spoken, max(s[1] for s in quiet), samples[last][4]
            assert time.monotonic() < deadline, f"timed out after {secs}s waiting for {what}"
            self.page.wait_for_timeout(100)


def test_my_vrm_model_talks_on_the_talk_page(lumina_server, question_wav):
    playwright = pytest.importorskip("playwright.sync_api")
    expect = playwright.expect
    problems: list[str] = []
    flags = [*FLAGS, f"--use-file-for-fake-audio-capture={question_wav}"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=flags, headless=True)
        avatar_id = ""
        try:
            context = browser.new_context(
                viewport={"width": 1200, "height": 900}, base_url=lumina_server
            )
            name = f"v-{uuid.uuid4().hex[:8]}"
            resp = context.request.post(
                "/api/signup", data={"username": name, "password": PASSWORD}
            )
            assert resp.status == 201, resp.text()
            avatar_id = _my_vrm_avatar(context)

            page = context.new_page()
            watch_for_errors(page, problems)
            page.goto(f"/talk?avatar={avatar_id}")
            expect(page.locator("#avatar-name")).to_have_text("Lumina 3D")

            # The model is shown in the portrait, instead of the drawn face.
            canvas = page.locator("#vrm")
            expect(canvas).to_be_visible(timeout=30_000)
            assert canvas.get_attribute("hidden") is None
            expect(page.locator("#portrait")).to_have_class(re.compile(r"\bhas-vrm\b"))
            expect(page.locator("#face-host")).to_be_hidden()  # visibility: hidden
            assert page.evaluate("globalThis.__talk.vrm.version") == "1.0"
            assert "3D model" not in (page.locator("#details-list").text_content() or "")
            drawn = page.evaluate(PIXELS)
            assert 0.02 * drawn["total"] < drawn["opaque"] < 0.95 * drawn["total"], drawn
            # At rest the mouth is closed; the resting expression (Lumina's "happy") shows.
            assert page.evaluate("globalThis.__talk.vrm.getExpressionWeight('aa')") == 0
            assert page.evaluate("globalThis.__talk.vrm.getExpressionWeight('happy')") > 0.3

            page.evaluate(SAMPLE)
            mouth = Mouth(page)
            t0 = page.evaluate("performance.now()")
            page.get_by_role("button", name="Talk").click()
            expect(page.locator("#conn")).to_have_text(
                "connected", ignore_case=True, timeout=30_000
            )

            # The greeting: the mouth opens with it; a screenshot mid-word.
            bot = page.locator(".msg.bot .bubble")
            expect(bot.first).to_have_text(re.compile(r"\w{2,}"), timeout=30_000)
            names = "['aa','ih','ou','ee','oh']"
            opened = (
                f"Math.max(...{names}.map((n) => globalThis.__talk.vrm.getExpressionWeight(n)))"
            )
            _wait(page, f"{opened} > 0.5", 15, "the model's mouth to open for the greeting")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "talk-vrm.png"))
            greeting_open, greeting_closed, delay = mouth.speech(t0, 30, "the greeting to end")
            print(
                f"greeting: mouth max {greeting_open:.2f}, after {greeting_closed:.3f}"
                f" (playout delay {delay:.0f} ms)"
            )
            assert greeting_open > OPEN, greeting_open
            assert greeting_closed < CLOSED, greeting_closed

            # The question, then the reply: the mouth moves again, and closes after it.
            user = page.locator(".msg.user .bubble")
            expect(user.first).to_contain_text(re.compile("name", re.I), timeout=60_000)
            t1 = page.evaluate("performance.now()")
            reply = page.locator(".msg.user ~ .msg.bot .bubble")
            expect(reply.first).to_have_text(re.compile(r"\w{2,}"), timeout=90_000)
            # (Quiet may also read "Thinking…": when the LLM finishes writing after the last
            # sentence was spoken, as on a loaded machine, the portrait keeps saying so.)
            reply_open, reply_closed, delay = mouth.speech(
                t1, 180, "the reply to end", idle=("", "thinking")
            )
            print(
                f"reply: mouth max {reply_open:.2f}, after {reply_closed:.3f}"
                f" (playout delay {delay:.0f} ms)"
            )
            assert reply_open > OPEN, reply_open
            assert reply_closed < CLOSED, reply_closed

            page.get_by_role("button", name="Hang up").click()
            expect(page.get_by_role("button", name="Talk")).to_be_visible()
            assert page.evaluate(opened) < CLOSED

            # The editor keeps the model on when its maker asks for feeling tags.
            page.goto(f"/avatars/edit?avatar={avatar_id}")
            tags = page.get_by_label("Ask the model to tag feelings")
            expect(tags).not_to_be_checked()
            expect(page.locator('input[name="face.vrm"]')).to_be_checked()
            tags.check()
            page.get_by_role("button", name="Save changes").click()
            expect(page.locator("#status")).to_contain_text("Saved")
            face = context.request.get(f"/api/avatars/{avatar_id}").json()["config"]["face"]
            assert face["emotion_tags"] is True and face["vrm"] is True
            page.reload()
            expect(page.get_by_label("Ask the model to tag feelings")).to_be_checked()
        finally:
            # Leave the shared room as it was for the other browser tests (once the call has
            # ended: an avatar in a call is not deleted).
            for _ in range(20 if avatar_id else 0):
                if context.request.delete(f"/api/avatars/{avatar_id}").status != 409:
                    break
                time.sleep(0.5)
            browser.close()
    assert not problems, problems
