"""Bring your own VRM: checking an uploaded model, its API, and showing it in a real browser.

* ``check_vrm`` on models made by ``tests/make_vrm.py`` (VRM 1.0 and 0.x) and on broken ones;
* the routes through the real app (real account store, avatar files in a temporary folder):
  upload, download, remove, who may, and the limits;
* ``web/static/vrm_view.js`` in headless Chromium on SwiftShader WebGL, under the app's CSP:
  the generated models load in three-vrm, draw, and move their mouths (slow).
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from testkit.net import LOCAL
from tests.accounts import sign_up
from tests.make_vrm import MORPHS, make_glb, make_vrm, make_vrm0, vrm1_json
from tests.test_page_browser import BROWSER_FLAGS, CHROMIUM, WEBGL_FLAGS
from web.accounts import AccountStore
from web.app import create_app
from web.guards import CSP
from web.vrm import MAX_VRM_BYTES, VrmError, check_vrm

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "web" / "static"
TESTS = ROOT / "tests"

EMOTIONS = ["angry", "happy", "relaxed", "sad", "surprised"]


def _refused(data: bytes) -> VrmError:
    with pytest.raises(VrmError) as caught:
        check_vrm(data)
    return caught.value


# --- check_vrm -------------------------------------------------------------------------


def test_a_vrm_1_model_is_described():
    info = check_vrm(make_vrm(title="Nova's head", author="Alice"))
    assert info.version == "1.0"
    assert info.expressions == sorted(MORPHS)
    assert info.emotions == ["happy", "sad", "angry", "surprised", "relaxed"]
    assert (info.title, info.author) == ("Nova's head", "Alice")


def test_a_vrm_0_model_is_described_in_vrm_1_names():
    info = check_vrm(make_vrm0(author="Bob"))
    assert info.version == "0.x"
    # a i u e o blink joy sorrow angry fun as three-vrm names them; "Surprised" is custom.
    assert info.expressions == sorted(MORPHS)
    assert (info.title, info.author) == ("Test Head 0", "Bob")


def test_a_file_that_is_not_a_gltf_binary_is_415():
    for data in [b"", b"PK\x03\x04 a zip file" * 10, b'{"asset": {"version": "2.0"}}']:
        e = _refused(data)
        assert e.status == 415 and "not a glTF binary (.vrm/.glb) file" in e.message
    old = b"glTF" + struct.pack("<II", 1, 20) + b"\0" * 8
    assert _refused(old).status == 415


def test_a_truncated_or_inconsistent_file_is_422():
    whole = make_vrm()
    cut = _refused(whole[:-1000])
    assert cut.status == 422 and "damaged or incomplete" in cut.message
    # The header made to agree with the cut: the BIN chunk's length no longer fits.
    cut = bytearray(whole[:-1000])
    struct.pack_into("<I", cut, 8, len(cut))
    e = _refused(bytes(cut))
    assert e.status == 422 and "file ends first" in e.message
    # A JSON chunk that is not JSON.
    e = _refused(make_glb({"asset": {}})[:20] + b"{not json}  ")
    assert e.status == 422


def test_a_gltf_model_without_a_vrm_extension_is_422():
    gltf, binary = vrm1_json()
    del gltf["extensions"]
    e = _refused(make_glb(gltf, binary))
    assert e.status == 422 and "not a VRM: no VRMC_vrm or VRM extension" in e.message


def test_a_model_without_the_mouth_expressions_is_422_naming_them():
    e = _refused(make_vrm(expressions=("aa", "ee", "blink", "happy")))
    assert e.status == 422
    assert "ih, ou, oh" in e.message and "aa," not in e.message.split("needed")[0]
    e = _refused(make_vrm0(expressions=("aa", "ih", "ou", "ee", "oh")))
    assert e.status == 422 and ": blink (needed" in e.message
    # The emotions are optional.
    info = check_vrm(make_vrm(expressions=("aa", "ih", "ou", "ee", "oh", "blink")))
    assert info.emotions == []


def test_an_oversized_model_is_413_naming_its_size_and_the_limit():
    model = make_vrm()
    big = model + b"\0" * (41 * 1024 * 1024 - len(model))
    e = _refused(big)
    assert e.status == 413 and "is 41 MB; the limit is 30 MB" in e.message
    assert len(model) < MAX_VRM_BYTES
    just_over = _refused(model + b"\0" * (MAX_VRM_BYTES + 1 - len(model)))
    assert "is 30.1 MB; the limit is 30 MB" in just_over.message


# --- the API ---------------------------------------------------------------------------

NOVA = {
    "id": "nova",
    "name": "Nova",
    "persona": "You love astronomy.",
    "voice": {"piper_voice": "en_US-joe-medium"},
}


@pytest.fixture
def room(make_runtime, tmp_path):
    """A room whose user avatars live in a fresh folder: (client factory, that folder)."""
    runtime = make_runtime(avatars_dir=tmp_path / "avatars")
    app = create_app(
        runtime, ["lumina"], greet=False, accounts=AccountStore(tmp_path / "accounts.sqlite3")
    )

    def person() -> TestClient:
        client = TestClient(app, base_url=LOCAL)
        sign_up(client)
        return client

    return person, runtime.avatars.user_dir


GLB = {"Content-Type": "model/gltf-binary"}


def _listed(client: TestClient) -> dict[str, bool]:
    return {a["id"]: a["vrm"] for a in client.get("/api/avatars").json()}


def test_an_owner_uploads_a_model_everyone_downloads_it_and_it_goes_with_the_avatar(room):
    person, folder = room
    alice, bob = person(), person()
    assert alice.post("/api/avatars", json=NOVA).status_code == 201
    assert _listed(alice) == {"lumina": False, "nova": False}
    assert alice.get("/api/avatars/nova/vrm").status_code == 404

    model = make_vrm(title="Nova")
    resp = alice.put("/api/avatars/nova/vrm", content=model, headers=GLB)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["version"] == "1.0" and body["size"] == len(model)
    assert body["expressions"] == sorted(MORPHS) and "happy" in body["emotions"]
    assert (folder / "nova.vrm").read_bytes() == model
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*"))
    assert _listed(bob) == {"lumina": False, "nova": True}

    got = bob.get("/api/avatars/nova/vrm")  # anyone signed in: they see it in a call
    assert got.status_code == 200 and got.content == model
    assert got.headers["content-type"] == "model/gltf-binary"

    # Replaced by a VRM 0.x model, sent as octet-stream (or with no type, as fetch(file)).
    v0 = make_vrm0()
    resp = alice.put(
        "/api/avatars/nova/vrm", content=v0, headers={"Content-Type": "application/octet-stream"}
    )
    assert resp.status_code == 200 and resp.json()["version"] == "0.x"
    assert bob.get("/api/avatars/nova/vrm").content == v0
    # Signed out: nothing.
    assert TestClient(bob.app, base_url=LOCAL).get("/api/avatars/nova/vrm").status_code == 401

    # Removing the model, then deleting the avatar takes a new one with it.
    assert alice.delete("/api/avatars/nova/vrm").json() == {"removed": True}
    assert alice.delete("/api/avatars/nova/vrm").json() == {"removed": False}
    assert bob.get("/api/avatars/nova/vrm").status_code == 404
    assert alice.put("/api/avatars/nova/vrm", content=model, headers=GLB).status_code == 200
    assert alice.delete("/api/avatars/nova").status_code == 200
    assert not (folder / "nova.vrm").exists()
    assert alice.get("/api/avatars/nova/vrm").status_code == 404


def test_only_the_owner_may_change_a_model_and_room_avatars_are_read_only(room):
    person, folder = room
    alice, bob = person(), person()
    assert alice.post("/api/avatars", json=NOVA).status_code == 201
    model = make_vrm()
    resp = bob.put("/api/avatars/nova/vrm", content=model, headers=GLB)
    assert resp.status_code == 403 and "belongs to" in resp.json()["detail"]
    assert alice.put("/api/avatars/nova/vrm", content=model, headers=GLB).status_code == 200
    assert bob.delete("/api/avatars/nova/vrm").status_code == 403
    assert (folder / "nova.vrm").exists()

    resp = alice.put("/api/avatars/lumina/vrm", content=model, headers=GLB)
    assert resp.status_code == 403 and "room's avatars" in resp.json()["detail"]
    assert alice.delete("/api/avatars/lumina/vrm").status_code == 403
    assert alice.put("/api/avatars/nobody/vrm", content=model, headers=GLB).status_code == 404
    assert alice.get("/api/avatars/nobody/vrm").status_code == 404


def test_uploads_that_are_not_a_usable_vrm_are_refused_saying_why(room):
    person, folder = room
    alice = person()
    assert alice.post("/api/avatars", json=NOVA).status_code == 201
    put = lambda data, headers=GLB: alice.put(  # noqa: E731
        "/api/avatars/nova/vrm", content=data, headers=headers
    )

    resp = put(b"\x89PNG\r\n\x1a\n not a model at all")
    assert resp.status_code == 415 and "not a glTF binary" in resp.json()["detail"]
    resp = put(make_vrm(), {"Content-Type": "multipart/form-data; boundary=x"})
    assert resp.status_code == 415 and "request body" in resp.json()["detail"]
    gltf, binary = vrm1_json()
    del gltf["extensions"]
    resp = put(make_glb(gltf, binary))
    assert resp.status_code == 422 and "not a VRM" in resp.json()["detail"]
    resp = put(make_vrm(expressions=("aa", "happy")))
    assert resp.status_code == 422 and "ih, ou, ee, oh, blink" in resp.json()["detail"]
    resp = put(make_vrm()[:-10])
    assert resp.status_code == 422 and "damaged" in resp.json()["detail"]
    assert not (folder / "nova.vrm").exists()

    # Over 30 MB: refused by the body limit from Content-Length, before it is read.
    big = make_vrm() + b"\0" * (MAX_VRM_BYTES + 1)
    resp = put(big)
    assert resp.status_code == 413
    assert "the upload is 30.1 MB" in resp.json()["detail"]
    assert "the limit is 30 MB" in resp.json()["detail"]

    # Streamed without a Content-Length: counted as it comes in.
    def chunks():
        for _ in range(31):
            yield b"\0" * (1024 * 1024)

    resp = put(chunks())
    assert resp.status_code == 413 and "limit of 30 MB" in resp.json()["detail"]
    assert not (folder / "nova.vrm").exists()
    # The rest of the avatar API keeps its own, small limit.
    resp = alice.put("/api/avatars/nova", content=b"x" * (65 * 1024), headers=GLB)
    assert resp.status_code == 413 and "64 KiB" in resp.json()["detail"]


# --- in a browser ----------------------------------------------------------------------

FLAGS = [*BROWSER_FLAGS, *WEBGL_FLAGS]
ORIGIN = "http://vrm.test"  # nothing listens there: the test answers every request
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def _serve(page, models: dict[str, bytes]) -> list[str]:
    """Answer the page's requests, with the app's CSP; returns the paths asked for."""
    asked: list[str] = []

    def handle(route):
        path = "/" + route.request.url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
        asked.append(path)
        headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}
        if path in models:
            return route.fulfill(
                body=models[path], content_type="model/gltf-binary", headers=headers
            )
        file = None
        if path.startswith("/static/"):
            file = STATIC / path.removeprefix("/static/")
        elif path.startswith("/tests/vrm_page."):
            file = TESTS / path.removeprefix("/tests/")
        if file is None or not file.is_file():
            return route.fulfill(status=404, body="not found", headers=headers)
        return route.fulfill(
            body=file.read_bytes(),
            content_type=TYPES.get(file.suffix, "text/plain"),
            headers=headers,
        )

    page.route(f"{ORIGIN}/**", handle)
    return asked


def _loaded(page, timeout: float = 30.0) -> str:
    """The test page's status once the model has loaded or failed.

    Polled from Python: Playwright's wait_for_function evaluates a string, which the CSP's
    script-src 'self' forbids.
    """
    deadline = time.monotonic() + timeout
    while (status := page.text_content("#status") or "") == "loading":
        assert time.monotonic() < deadline, "the model did not load in time"
        time.sleep(0.05)
    return status


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")
def test_vrm_view_draws_both_versions_and_moves_the_mouth_in_chromium():
    playwright = pytest.importorskip("playwright.sync_api")
    models = {"/model.vrm": make_vrm(), "/model0.vrm": make_vrm0(), "/bad.vrm": b"nope"}
    problems: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 400, "height": 400})
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on(
                "console",
                lambda m: (
                    m.type in ("error", "warning")
                    # SwiftShader's performance notes ("GPU stall due to ReadPixels").
                    and not m.text.startswith("[.WebGL-")
                    and problems.append(f"{m.type}: {m.text}")
                ),
            )
            asked = _serve(page, models)
            for model, version in [("/model.vrm", "1.0"), ("/model0.vrm", "0.x")]:
                page.goto(f"{ORIGIN}/tests/vrm_page.html?model={model}")
                status = _loaded(page)
                assert status == "ready", (model, status, problems)
                info = page.evaluate(
                    "() => ({version: vrmTest.view.version,"
                    " expressions: vrmTest.view.expressions.map((e) => e.toLowerCase()).sort()})"
                )
                assert info == {"version": version, "expressions": sorted(MORPHS)}, info
                # The skin's PNG, a blob: URL under the CSP (connect-src 'self' refuses fetch).
                assert page.evaluate("() => vrmTest.textures()") == 1

                closed = page.evaluate("() => vrmTest.drawnPixels()")
                # Something is drawn, on a transparent background.
                assert 0.02 * closed["total"] < closed["opaque"] < 0.9 * closed["total"], closed
                page.evaluate("() => vrmTest.view.setVisemes({aa: 1})")
                assert page.evaluate("() => vrmTest.view.getExpressionWeight('aa')") > 0.5
                assert page.evaluate("() => vrmTest.view.getExpressionWeight('oh')") == 0
                opened = page.evaluate("() => vrmTest.drawnPixels()")
                assert page.evaluate("() => vrmTest.morphs()") > 0.5  # the mesh really moved
                assert opened["red"] > 1.5 * closed["red"], (closed, opened)  # an open mouth

                page.evaluate(
                    """() => {
                        const v = vrmTest.view;
                        v.setVisemes({});
                        v.setExpression('happy', 0.8);
                        v.setExpression('Surprised', 0.5);
                        v.setBlink(1);
                        v.lookAt('away');
                        for (let i = 0; i < 30; i++) v.update(1 / 30);
                    }"""
                )
                weights = page.evaluate(
                    "() => ['aa', 'happy', 'surprised', 'blink', 'nonsense']"
                    ".map((n) => vrmTest.view.getExpressionWeight(n))"
                )
                assert weights == [0, pytest.approx(0.8), 0.5, 1, 0], weights
                assert page.evaluate("() => vrmTest.view.setExpression('nonsense', 1)") is False
                page.evaluate("() => { vrmTest.view.lookAt('user'); vrmTest.view.dispose(); }")

            page.goto(f"{ORIGIN}/tests/vrm_page.html?model=/bad.vrm")
            assert _loaded(page).startswith("error: ")
            problems[:] = [p for p in problems if "bad.vrm" not in p]
            assert "/static/vendor/three/vrm-bundle.js" in asked
        finally:
            browser.close()
    assert not problems, problems


def test_the_vendored_bundle_needs_no_eval_and_imports_nothing_from_outside():
    bundle = (STATIC / "vendor" / "three" / "vrm-bundle.js").read_text()
    assert "eval(" not in bundle and "new Function" not in bundle
    assert 'from"' not in bundle and "from '" not in bundle and 'import("' not in bundle
    view = (STATIC / "vrm_view.js").read_text()
    assert 'from "./vendor/three/vrm-bundle.js"' in view
    readme = (STATIC / "vendor" / "three" / "README.md").read_text()
    assert "scripts/vendor_three.sh" in readme
