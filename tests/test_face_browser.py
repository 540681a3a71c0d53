"""The avatars' drawn faces (web/static/face.js) in a real (headless) Chromium.

* The module on its own, in a harness page (tests/face_page.html, served from disk under the
  product's CSP): both shipped faces render and differ, an idle face blinks, visemes open
  and close the mouth (in its pixels too, and promptly), the audio level drives the mouth
  only while no visemes come, expressions move the eyebrows.
* The room's real app (in-process, on a free port): every lobby card shows its avatar's
  face, and the editor's face designer redraws the preview live and saves the face.

Needs Debian's ``chromium`` and the ``playwright`` package; skipped without them.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
import time
import tomllib
import uuid

import numpy as np
import pytest

from testkit.net import free_port, wait_http
from tests.accounts import PASSWORD
from tests.test_page_browser import (
    BROWSER_FLAGS,
    CHROMIUM,
    ROOT,
    SCREENSHOTS,
    STATIC,
    needs_chromium,
    watch_for_errors,
)

pytestmark = needs_chromium
HARNESS = "http://face.test"
CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:"


def shipped_face(avatar: str) -> dict:
    return tomllib.loads((ROOT / "bots" / "avatars" / f"{avatar}.toml").read_text())["face"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_FLAGS)
        try:
            yield b
        finally:
            b.close()


def _serve_harness(route):
    path = "/" + route.request.url.split("://", 1)[1].split("/", 1)[1].split("#")[0]
    path = path.split("?")[0]
    if path.startswith("/static/"):
        target = STATIC / path.removeprefix("/static/")
    elif path.startswith("/tests/face_page."):
        target = ROOT / "tests" / path.removeprefix("/tests/")
    else:
        return route.fulfill(status=404, body="not found")
    return route.fulfill(path=target, headers={"Content-Security-Policy": CSP})


def _wait(page, js: str, secs: float, what: str):
    """Poll a condition from here (the page's CSP refuses Playwright's eval-based polling)."""
    deadline = time.monotonic() + secs
    while not (value := page.evaluate(js)):
        assert time.monotonic() < deadline, f"timed out after {secs}s waiting for {what}"
        page.wait_for_timeout(25)
    return value


@contextlib.contextmanager
def harness(browser, faces: dict[str, dict]):
    """The harness page showing these faces; yields the page."""
    context = browser.new_context(viewport={"width": 700, "height": 400})
    page = context.new_page()
    problems: list[str] = []
    watch_for_errors(page, problems)
    page.route(f"{HARNESS}/**", _serve_harness)
    page.goto(f"{HARNESS}/tests/face_page.html#{json.dumps(faces)}")
    _wait(page, "window.harnessReady === true", 10, "the harness")
    try:
        yield page
    finally:
        context.close()
    assert not problems, problems


def _pixels(page, selector: str, clip: dict | None = None) -> np.ndarray:
    from PIL import Image

    shot = page.screenshot(clip=clip) if clip else page.locator(selector).screenshot()
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=np.float32)


def _mouth_box(page, avatar: str) -> dict:
    box = page.locator(f"#face-{avatar} [data-part=mouth]").bounding_box()
    pad = 6
    return {
        "x": box["x"] - pad,
        "y": box["y"] - pad,
        "width": box["width"] + 2 * pad,
        "height": box["height"] + 4 * pad,
    }


def _brow_ys(page, avatar: str, side: str = "left") -> list[float]:
    d = page.locator(f"#face-{avatar} [data-part=brow-{side}]").get_attribute("d")
    nums = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", d)]
    return nums[1::2]


# ---------- the module, in the harness ----------


def test_both_shipped_faces_render_and_look_different(browser):
    faces = {"lumina": shipped_face("lumina"), "captain": shipped_face("captain")}
    with harness(browser, faces) as page:
        for avatar in faces:
            box = page.locator(f"#face-{avatar}")
            svg = box.locator("svg")
            assert svg.get_attribute("role") == "img" and svg.get_attribute("aria-label")
            assert svg.get_attribute("viewBox") == "0 0 200 220"
            assert box.locator("[data-part=head]").count() == 1
            assert box.locator("[data-part=head] [data-part=mouth]").count() == 1
        captain, lumina = page.locator("#face-captain"), page.locator("#face-lumina")
        for part in ("beard", "cap", "moustache"):
            assert captain.locator(f"[data-part={part}]").count() == 1, part
            assert lumina.locator(f"[data-part={part}]").count() == 0, part
        assert lumina.locator("[data-part=earrings]").count() == 1
        assert captain.locator("[data-part=earrings]").count() == 0
        # Lumina blushes (an accessory); the captain does not.
        assert float(lumina.locator("[data-part=blush]").get_attribute("opacity")) > 0.3
        assert float(captain.locator("[data-part=blush]").get_attribute("opacity")) < 0.2
        # They look different: long red hair and fair skin vs a white cap and a grey beard.
        a, b = _pixels(page, "#face-lumina"), _pixels(page, "#face-captain")
        assert a.shape == b.shape
        assert np.abs(a - b).mean() > 20, np.abs(a - b).mean()
        red = lambda img: (img[..., 0] - img[..., 2]).mean()  # noqa: E731
        assert red(a) > red(b) + 10, (red(a), red(b))  # her red hair
        # Each is drawn from its own settings: the iris colour is the TOML's.
        for avatar in faces:
            stops = page.locator(f"#face-{avatar} radialGradient stop").evaluate_all(
                "els => els.map(e => e.getAttribute('stop-color'))"
            )
            assert faces[avatar]["eyes"] in stops
        # The resting expression is the avatar's.
        state = page.evaluate("window.faces.lumina.state()")
        assert (
            state["expression"] == "happy"
            and page.evaluate("window.faces.lumina.resting") == "happy"
        )
        assert page.evaluate("window.faces.captain.state().expression") == "neutral"


def test_an_idle_face_blinks_within_seven_seconds(browser):
    with harness(browser, {"captain": shipped_face("captain")}) as page:
        start = time.monotonic()
        _wait(page, "window.faces.captain.state().blinking", 7.5, "a blink")
        print(f"blinked after {time.monotonic() - start:.1f} s")
        # A blink is short: the eyes are open again a moment later.
        page.wait_for_timeout(400)
        assert not page.evaluate("window.faces.captain.state().blinking")


def test_visemes_open_and_close_the_mouth(browser):
    face = {**shipped_face("lumina"), "resting": "neutral"}
    with harness(browser, {"lumina": face}) as page:
        f = "window.faces.lumina"
        page.wait_for_timeout(200)
        assert page.evaluate(f"{f}.mouthOpenness()") < 0.02
        clip = _mouth_box(page, "lumina")
        rest = _pixels(page, "", clip)

        page.evaluate(f"{f}.setViseme('AA')")
        page.wait_for_timeout(150)
        assert page.evaluate(f"{f}.mouthOpenness()") > 0.5
        assert page.evaluate(f"{f}.state().viseme") == "AA"
        wide = _pixels(page, "", clip)
        changed = (np.abs(wide - rest).max(axis=2) > 40).mean()
        assert changed > 0.08, f"only {changed:.1%} of the mouth region changed for AA"
        # The dark inside of the mouth shows.
        assert (wide.max(axis=2) < 80).mean() > (rest.max(axis=2) < 80).mean() + 0.04

        # "rest" closes it promptly: measured in the page, frame by frame.
        closed_ms = page.evaluate(
            """() => new Promise((done) => {
              const f = window.faces.lumina;
              const t0 = performance.now();
              f.setViseme("rest");
              const check = () => f.mouthOpenness() < 0.05
                ? done(performance.now() - t0)
                : performance.now() - t0 > 1000 ? done(Infinity) : requestAnimationFrame(check);
              check();
            })"""
        )
        assert closed_ms < 150, f"the mouth took {closed_ms:.0f} ms to close"
        page.wait_for_timeout(120)
        after = _pixels(page, "", clip)
        assert np.abs(after - rest).mean() < np.abs(wide - rest).mean() / 4

        # Open vowels open wide, closed consonants stay closed; shapes differ.
        opened, paths = {}, {}
        for name in [
            "rest",
            "MBP",
            "FV",
            "TH",
            "L",
            "S",
            "CH",
            "R",
            "KG",
            "AA",
            "E",
            "I",
            "O",
            "U",
        ]:
            page.evaluate(f"{f}.setViseme('{name}')")
            page.wait_for_timeout(110)
            opened[name] = page.evaluate(f"{f}.mouthOpenness()")
            paths[name] = page.locator("#face-lumina [data-part=mouth] path").first.get_attribute(
                "d"
            )
        assert opened["rest"] < 0.02 and opened["MBP"] < 0.02, opened
        assert min(opened["AA"], opened["O"]) > 0.6 and opened["E"] > 0.3, opened
        assert max(opened["S"], opened["FV"], opened["I"]) < opened["E"], opened
        assert len(set(paths.values())) == len(paths), "two visemes drew the same lips"
        # Every change is recorded for the tests that time speech against the mouth.
        applied = page.evaluate(f"{f}.appliedVisemes.map(v => v.name)")
        assert applied[-14:] == list(paths), applied


def test_the_audio_level_moves_the_mouth_only_without_visemes(browser):
    with harness(browser, {"captain": shipped_face("captain")}) as page:
        f = "window.faces.captain"
        page.wait_for_timeout(400)  # well past any viseme
        page.evaluate(f"{f}.setLevel(0.8)")
        page.wait_for_timeout(120)
        assert page.evaluate(f"{f}.mouthOpenness()") > 0.5
        page.evaluate(f"{f}.setLevel(0)")
        page.wait_for_timeout(120)
        assert page.evaluate(f"{f}.mouthOpenness()") < 0.05
        # Visemes in the last 300 ms win: the level is ignored meanwhile.
        page.evaluate(f"{f}.setViseme('MBP'); {f}.setLevel(1)")
        page.wait_for_timeout(120)
        assert page.evaluate(f"{f}.mouthOpenness()") < 0.05
        page.wait_for_timeout(300)
        page.evaluate(f"{f}.setLevel(1)")
        page.wait_for_timeout(120)
        assert page.evaluate(f"{f}.mouthOpenness()") > 0.5


def test_expressions_move_the_eyebrows_and_mouth(browser):
    face = {**shipped_face("captain"), "expressiveness": 1.0}
    with harness(browser, {"captain": face}) as page:
        f = "window.faces.captain"
        page.wait_for_timeout(300)
        neutral = _brow_ys(page, "captain")
        page.evaluate(f"{f}.setExpression('surprised')")
        page.wait_for_timeout(400)
        assert page.evaluate(f"{f}.state().expression") == "surprised"
        surprised = _brow_ys(page, "captain")
        assert np.mean(surprised) < np.mean(neutral) - 3, (neutral, surprised)  # raised
        # Sad lifts the brows' inner ends; angry pulls them down.
        page.evaluate(f"{f}.setExpression('sad')")
        page.wait_for_timeout(400)
        sad = _brow_ys(page, "captain")
        page.evaluate(f"{f}.setExpression('angry')")
        page.wait_for_timeout(400)
        angry = _brow_ys(page, "captain")
        assert sad[0] < neutral[0] - 2 < angry[0] - 4, (sad[0], neutral[0], angry[0])
        # Half way through the 250 ms ease, it is between the two.
        page.evaluate(f"{f}.setExpression('neutral')")
        page.wait_for_timeout(90)
        mid = _brow_ys(page, "captain")[0]
        assert neutral[0] < mid < angry[0] or angry[0] < mid < neutral[0]
        page.wait_for_timeout(300)
        assert _brow_ys(page, "captain") == neutral
        # An expressiveness of 0 keeps the face still.
        page.evaluate(f"{f}.set({{...{f}.face, expressiveness: 0}}); {f}.setExpression('angry')")
        page.wait_for_timeout(400)
        assert _brow_ys(page, "captain") == neutral
        # Gaze modes are accepted and reported.
        page.evaluate(f"{f}.setGaze('away')")
        assert page.evaluate(f"{f}.state().gaze") == "away"


def test_set_redraws_with_new_settings(browser):
    with harness(browser, {"x": {"hairstyle": "none"}}) as page:
        box = page.locator("#face-x")
        assert box.locator("[data-part=glasses]").count() == 0
        page.evaluate(
            "window.faces.x.set({shape: 'round', hairstyle: 'curly', skin: '#8d5a3b',"
            " accessories: ['glasses', 'freckles', 'moustache']})"
        )
        for part in ("glasses", "freckles", "moustache"):
            assert box.locator(f"[data-part={part}]").count() == 1, part
        assert box.locator("svg").count() == 1  # redrawn in place, not added
        page.evaluate("window.faces.x.destroy()")
        assert box.locator("svg").count() == 0


# ---------- the room's real app ----------


@pytest.fixture
def room(make_runtime, tmp_path):
    """The room's app (the two shipped avatars) on a free port, in this process."""
    import uvicorn

    from web.accounts import AccountStore
    from web.app import create_app

    runtime = make_runtime(avatars_dir=tmp_path / "avatars")
    accounts = AccountStore(tmp_path / "accounts.sqlite3")
    app = create_app(runtime, ["lumina", "captain"], greet=False, accounts=accounts)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/api/room", 30)
        yield base, runtime
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _signed_in(browser, base: str, problems: list[str]):
    context = browser.new_context(viewport={"width": 1200, "height": 900}, base_url=base)
    name = f"f-{uuid.uuid4().hex[:8]}"
    resp = context.request.post("/api/signup", data={"username": name, "password": PASSWORD})
    assert resp.status == 201, resp.text()
    page = context.new_page()
    # (The browser logs the 422 the designer test provokes; that one is expected.)
    watch_for_errors(page, problems, expected="422")
    return context, page


def test_every_lobby_card_shows_its_face(browser, room):
    expect = pytest.importorskip("playwright.sync_api").expect
    base, _ = room
    problems: list[str] = []
    context, page = _signed_in(browser, base, problems)
    page.goto("/")
    cards = page.locator(".avatar-card:not(.new-avatar):not(.broken)")
    expect(cards).to_have_count(2)
    for name in ("Lumina", "Captain Rook"):
        card = page.locator(".avatar-card", has_text=name)
        expect(card.locator(".avatar-face svg[role=img]")).to_have_count(1)
        expect(card.locator("[data-part=mouth]")).to_have_count(1)
    captain = page.locator(".avatar-card", has_text="Captain Rook")
    expect(captain.locator("[data-part=cap]")).to_have_count(1)
    expect(
        page.locator(".avatar-card", has_text="Lumina").locator("[data-part=cap]")
    ).to_have_count(0)
    # They are alive: one shared loop moves them (the head sways).
    sway = captain.locator("[data-part=sway]")
    before = sway.get_attribute("transform")
    page.wait_for_timeout(300)
    assert sway.get_attribute("transform") != before
    expect(page.locator(".avatar-card.new-avatar .avatar-art")).to_have_text("+")
    page.wait_for_timeout(300)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#avatars").screenshot(path=str(SCREENSHOTS / "lobby-faces.png"))
    context.close()
    assert not problems, problems


def test_the_face_designer_previews_live_and_saves_the_face(browser, room):
    expect = pytest.importorskip("playwright.sync_api").expect
    base, runtime = room
    problems: list[str] = []
    context, page = _signed_in(browser, base, problems)
    page.goto("/avatars/edit?from=captain")
    expect(page.locator("#form")).to_be_visible()
    preview = page.locator("#face-preview")
    expect(preview.locator("[data-part=cap]")).to_have_count(1)
    expect(page.locator('select[name="face.shape"]')).to_have_value("square")
    assert page.locator('input[name="face.accessories"][value="beard"]').is_checked()

    # Each change redraws the preview at once.
    page.locator('select[name="face.hairstyle"]').select_option("curly")
    page.locator('input[name="face.accessories"][value="cap"]').uncheck()
    page.locator('input[name="face.accessories"][value="glasses"]').check()
    page.locator('input[name="face.hair"]').fill("#3a2418")
    page.locator('select[name="face.shape"]').select_option("round")
    expect(preview.locator("[data-part=cap]")).to_have_count(0)
    expect(preview.locator("[data-part=glasses]")).to_have_count(1)
    expect(page.locator("#art [data-part=glasses]")).to_have_count(1)  # the header's too
    stops = preview.locator("linearGradient stop").evaluate_all(
        "els => els.map(e => e.getAttribute('stop-color'))"
    )
    assert "#3a2418" in stops
    page.locator('input[name="face.expressiveness"]').fill("0.8")
    expect(page.locator('output[data-for="face.expressiveness"]')).to_have_text("80%")

    # Try an expression on the preview; the talk preview moves the mouth.
    page.get_by_role("button", name="Surprised").click()
    expr = "document.querySelector('#face-preview svg') && true"
    _wait(page, expr, 5, "the preview")
    page.get_by_role("button", name="Talk preview").click()
    page.wait_for_timeout(600)
    # The model section waits for the avatar to exist.
    expect(page.locator("#vrm-unsaved")).to_be_visible()
    expect(page.locator("#vrm-file")).to_be_disabled()
    page.get_by_role("button", name="Happy").click()
    page.wait_for_timeout(400)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".face-designer").screenshot(path=str(SCREENSHOTS / "face-designer.png"))

    # A face field the server refuses is named under its field.
    def refuse(route):
        if route.request.method != "POST":
            return route.continue_()
        body = {"detail": "invalid", "errors": [{"field": "face.skin", "message": "bad colour"}]}
        return route.fulfill(status=422, json=body)

    page.route("**/api/avatars", refuse)
    page.get_by_role("button", name="Create avatar").click()
    expect(page.locator('[data-error-for="face.skin"]')).to_have_text("bad colour")
    expect(page.locator('input[name="face.skin"]')).to_have_attribute("aria-invalid", "true")
    page.unroute("**/api/avatars")

    page.get_by_role("button", name="Create avatar").click()
    expect(page.locator("#status")).to_contain_text("is ready")
    face = runtime.avatars.load("captain-rook-copy").face
    assert face.shape == "round" and face.hairstyle == "curly" and face.hair == "#3a2418"
    assert face.accessories == ["beard", "glasses"] and face.expressiveness == 0.8
    assert face.resting == "neutral" and face.vrm is False
    # Saved: now a model can be uploaded.
    expect(page.locator("#vrm-unsaved")).to_be_hidden()
    expect(page.locator("#vrm-file")).to_be_enabled()
    expect(page.locator("#vrm-status")).to_contain_text("No model")
    context.close()
    assert not problems, problems
