"""The room in a real (headless) Chromium: the avatar editor, barge-in, two people at once.

Against ``python -m bots lumina`` and the embedded LLM server (the shared ``lumina_server``
fixture), with Chromium's fake microphone playing synthesized speech:

* the avatar editor: a person makes an avatar (field errors, voice preview), talks to it,
  another person can only copy it, its maker changes and deletes it;
* barge-in from the page: the Interrupt button cuts the avatar off mid-greeting and its
  voice stops, while the call stays up;
* two people talking to Lumina at the same time, each in their own browser: neither sees
  the other's words, in the call or on the memory page afterwards.

Needs Debian's ``chromium`` and the ``playwright`` package; skipped without them.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile

from testkit.speech import SAMPLE_RATE, espeak_say, piper_say
from tests.accounts import PASSWORD
from tests.test_page_browser import BROWSER_FLAGS, CHROMIUM, SCREENSHOTS, needs_chromium

pytestmark = [pytest.mark.slow, needs_chromium]
GREETING = "Hi, I'm Lumina. It's good to hear you. What's on your mind?"
# Test-side listener on the bot's audio: when it was last audible, and when Interrupt was
# pressed (a capturing listener, so it runs before the page's own handler).
LISTEN = """
(() => {
  const stream = document.getElementById("bot-audio").srcObject;
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 256;
  ctx.createMediaStreamSource(stream).connect(analyser);
  ctx.resume();
  const buf = new Float32Array(analyser.fftSize);
  window.__loudSince = 0;
  window.__lastLoud = 0;
  window.__pressed = Infinity;
  document.getElementById("interrupt").addEventListener(
    "click", () => (window.__pressed = performance.now()), { capture: true });
  setInterval(() => {
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    if (Math.sqrt(sum / buf.length) > 0.01) {
      window.__lastLoud = performance.now();
      window.__loudSince ||= window.__lastLoud;
    }
  }, 10);
})();
"""


def _wav(path: Path, *parts: np.ndarray) -> Path:
    soundfile.write(path, np.concatenate(parts), SAMPLE_RATE, subtype="PCM_16")
    return path


def _silence(secs: float) -> np.ndarray:
    return np.zeros(int(SAMPLE_RATE * secs), dtype=np.int16)


@contextlib.contextmanager
def _browsers(*mic_wavs: Path):
    """One Chromium per microphone, each playing its WAV (looped) as the fake microphone.

    Separate browsers rather than contexts, because the fake microphone is per browser.
    """
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browsers = [
            p.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[
                    *BROWSER_FLAGS,
                    f"--use-file-for-fake-audio-capture={wav}",
                    "--autoplay-policy=no-user-gesture-required",  # the voice preview plays
                ],
            )
            for wav in mic_wavs
        ]
        try:
            yield browsers
        finally:
            for browser in browsers:
                browser.close()


def _person(browser, base: str, problems: list[str], name: str | None = None):
    """A signed-up person in their own browser context; returns (context, page, name)."""
    name = name or f"t-{uuid.uuid4().hex[:8]}"
    context = browser.new_context(viewport={"width": 1200, "height": 900}, base_url=base)
    resp = context.request.post("/api/signup", data={"username": name, "password": PASSWORD})
    assert resp.status == 201, resp.text()  # the context now holds the sign-in cookie
    page = context.new_page()
    page.on("pageerror", lambda e: problems.append(f"{name} page error: {e}"))
    return context, page, name


def _start_call(page, expect) -> None:
    page.get_by_role("button", name="Talk").click()
    expect(page.locator("#conn")).to_have_text("connected", ignore_case=True, timeout=30_000)


def _hang_up(page, expect) -> None:
    page.get_by_role("button", name="Hang up").click()
    expect(page.get_by_role("button", name="Talk")).to_be_visible()


def _memory_page_showing(page, words: re.Pattern, secs: float = 30) -> None:
    """Open the memory page until it lists a conversation with ``words`` (the writer saves
    a call's turns when it ends, a moment after hanging up)."""
    deadline = time.monotonic() + secs
    while True:
        page.goto("/memory?avatar=lumina")
        page.wait_for_load_state("networkidle")
        if words.search(" ".join(page.locator(".mem-conv").all_inner_texts())):
            return
        assert time.monotonic() < deadline, f"no conversation with {words.pattern!r} stored"
        page.wait_for_timeout(1000)


# ---------- the avatar editor ----------


def test_a_person_makes_talks_to_changes_and_deletes_an_avatar(lumina_server, tmp_path, runtime):
    expect = pytest.importorskip("playwright.sync_api").expect
    problems: list[str] = []
    quiet = _wav(tmp_path / "quiet.wav", _silence(90))
    with _browsers(quiet) as (browser,):
        _, page, maker = _person(browser, lumina_server, problems)
        page.goto("/")
        page.get_by_role("link", name="New avatar").click()
        name = page.get_by_label("Name", exact=True)
        expect(name).to_be_visible()

        # Saving an empty form names what is missing, under each field.
        page.get_by_role("button", name="Create avatar").click()
        expect(page.locator('[data-error-for="persona"]')).to_have_text("must not be empty")
        expect(page.locator('[data-error-for="name"]')).to_have_text("must not be empty")
        expect(page.locator("#form-error")).to_contain_text("Please fix the marked fields")

        name.fill("Nova Star")
        expect(page.locator('input[name="id"]')).to_have_value("nova-star")  # suggested
        page.locator('textarea[name="persona"]').fill("You love astronomy and explain it simply.")
        page.locator('input[name="blurb"]').fill("A stargazer who explains the sky.")
        page.locator('input[name="greeting"]').fill("Hello, I am Nova. Look up!")
        page.locator('input[name="voice.speed"]').fill("1.3")
        expect(page.locator('output[data-for="voice.speed"]')).to_have_text("1.30x")

        # Preview the voice: real Piper audio arrives and plays in the page.
        page.get_by_role("button", name="Preview voice").click()
        audio = page.locator("#preview-audio")
        expect(audio).to_be_visible(timeout=30_000)
        page.wait_for_function("document.getElementById('preview-audio').duration > 0.5")

        page.get_by_role("button", name="Create avatar").click()
        expect(page.locator("#status")).to_contain_text("Nova Star is ready")
        expect(page).to_have_url(re.compile(r"/avatars/edit\?avatar=nova-star$"))
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "editor.png"), full_page=True)
        # It is an ordinary avatar file, the one `python -m bots nova-star` would launch.
        nova = runtime.avatars.load("nova-star")
        assert nova.voice.speed == 1.3 and nova.greeting == "Hello, I am Nova. Look up!"

        # Talk to it: the avatar made a minute ago greets with its own words.
        page.get_by_role("link", name="Talk to Nova Star").click()
        expect(page.locator("#avatar-name")).to_have_text("Nova Star")
        _start_call(page, expect)
        expect(page.locator(".msg.bot .bubble").first).to_contain_text("Nova", timeout=30_000)
        _hang_up(page, expect)

        # Someone else sees who made it, and may copy it but not change it.
        _, other, _ = _person(browser, lumina_server, problems)
        other.goto("/")
        card = other.locator(".avatar-card", has_text="Nova Star")
        expect(card).to_contain_text(f"Made by {maker}")
        expect(card.get_by_role("link", name="Copy Nova Star")).to_be_visible()
        other.goto("/avatars/edit?avatar=nova-star")
        expect(other.locator("#readonly")).to_contain_text(f"belongs to {maker}")
        expect(other.get_by_role("button", name="Save changes")).to_be_hidden()
        expect(other.get_by_label("Name", exact=True)).to_be_disabled()

        # Its maker changes it, then deletes it (confirming).
        page.goto("/")
        page.locator(".avatar-card", has_text="Nova Star").get_by_role(
            "link", name="Edit Nova Star"
        ).click()
        page.locator('input[name="greeting"]').fill("Good evening, stargazer!")
        page.get_by_role("button", name="Save changes").click()
        expect(page.locator("#status")).to_contain_text("Saved")
        assert runtime.avatars.load("nova-star").greeting == "Good evening, stargazer!"
        page.on("dialog", lambda d: d.accept())
        page.get_by_role("button", name="Delete…").click()
        expect(page).to_have_url(re.compile(r"/$"))
        expect(page.locator(".avatar-card h3").first).to_have_text("Lumina")
        expect(page.locator(".avatar-card", has_text="Nova Star")).to_have_count(0)
        assert not (runtime.avatars.user_dir / "nova-star.toml").exists()
    assert not problems, problems


# ---------- barge-in from the page ----------


def test_the_interrupt_button_stops_the_avatar_mid_sentence(lumina_server, tmp_path):
    expect = pytest.importorskip("playwright.sync_api").expect
    problems: list[str] = []
    quiet = _wav(tmp_path / "quiet.wav", _silence(90))
    with _browsers(quiet) as (browser,):
        _, page, _ = _person(browser, lumina_server, problems)
        page.goto("/talk?avatar=lumina")
        _start_call(page, expect)

        # Listen to what the page plays (its own analyser, unsmoothed, every 10 ms).
        page.evaluate(LISTEN)
        # Press Interrupt while the greeting is audibly playing (not between two sentences).
        # Polled from here: Playwright's interval polling evaluates its predicate with eval,
        # which the page's CSP (script-src 'self') rightly refuses.
        playing = (
            "window.__loudSince > 0 && performance.now() - window.__loudSince > 300"
            " && performance.now() - window.__lastLoud < 20"
        )
        deadline = time.monotonic() + 30
        while not page.evaluate(playing):
            assert time.monotonic() < deadline, "the greeting never played audibly"
            page.wait_for_timeout(10)
        page.get_by_role("button", name="Interrupt").click()
        page.wait_for_timeout(3000)
        gap_ms = page.evaluate("window.__lastLoud - window.__pressed")
        # The voice stops: nothing audible from shortly after the press on (the WebRTC
        # jitter buffer still holds ~100-200 ms already on its way).
        assert 0 < gap_ms < 1000, f"the voice went on {gap_ms:.0f} ms after Interrupt"
        bubble = page.locator(".msg.bot").first
        expect(bubble.locator(".tag")).to_have_text("interrupted")
        heard = " ".join(bubble.locator(".seg").all_inner_texts()).strip()
        assert heard and len(heard) < len(GREETING), heard  # only the words that were said
        # Interrupting is not hanging up.
        expect(page.locator("#conn")).to_have_text("connected", ignore_case=True)
        assert page.get_by_role("button", name="Hang up").is_enabled()
        _hang_up(page, expect)
    print(f"voice stopped {gap_ms:.0f} ms after Interrupt; heard {heard!r}")
    assert not problems, problems


# ---------- two people at once ----------


def test_two_people_talking_at_once_see_only_their_own_words(lumina_server, tmp_path):
    expect = pytest.importorskip("playwright.sync_api").expect
    problems: list[str] = []
    # Each browser's microphone: silence through the greeting, one sentence, then silence.
    ada_mic = _wav(
        tmp_path / "ada.wav",
        _silence(7),
        piper_say("My favourite colour is green."),
        _silence(90),
    )
    bo_mic = _wav(
        tmp_path / "bo.wav",
        _silence(7),
        espeak_say("I play the trumpet in a jazz band."),
        _silence(90),
    )
    with _browsers(ada_mic, bo_mic) as (ada_browser, bo_browser):
        _, ada, ada_name = _person(ada_browser, lumina_server, problems)
        _, bo, bo_name = _person(bo_browser, lumina_server, problems)
        for page in (ada, bo):
            page.goto("/talk?avatar=lumina")
        for page in (ada, bo):
            _start_call(page, expect)

        # Both are heard and answered, at the same time.
        for page, words in ((ada, "green"), (bo, "trumpet")):
            expect(page.locator(".msg.user .bubble").first).to_contain_text(
                re.compile(words, re.I), timeout=90_000
            )
        for page in (ada, bo):
            expect(page.locator(".msg.user ~ .msg.bot .bubble").first).to_have_text(
                re.compile(r"\w{2,}"), timeout=90_000
            )
        lobby = bo.context.new_page()
        lobby.goto("/")
        expect(lobby.locator("#present")).to_contain_text(f"{ada_name} is talking to Lumina")
        expect(lobby.locator("#present")).to_contain_text(f"{bo_name} is talking to Lumina")
        lobby.close()
        ada_text = ada.locator("#transcript").inner_text()
        bo_text = bo.locator("#transcript").inner_text()
        assert not re.search("trumpet|jazz", ada_text, re.I), ada_text
        assert not re.search("green|colou?r", bo_text, re.I), bo_text
        for page in (ada, bo):
            _hang_up(page, expect)

        # Afterwards each memory page holds that person's conversation and not the other's.
        for page, mine, theirs in ((ada, "green", "trumpet"), (bo, "trumpet", "green")):
            _memory_page_showing(page, re.compile(mine, re.I))
            expect(page.locator("main")).not_to_contain_text(re.compile(theirs, re.I))
    assert not problems, problems
