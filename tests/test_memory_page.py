"""The memory page (/memory): served, offline, markup-free, linked from the talk page.

The fast tests read the files and serve the page with a TestClient (no lifespan: nothing is
warmed). The browser test starts the app on a free port with a fresh data dir, seeds the
memory store, and deletes a memory the way a person would; it needs Debian's ``chromium``
and the ``playwright`` package and is skipped without them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from testkit.net import LOCAL, free_port, wait_http
from tests.accounts import PASSWORD, sign_up
from tests.test_page_browser import (
    BROWSER_FLAGS,
    CHROMIUM,
    SCREENSHOTS,
    needs_chromium,
    watch_for_errors,
)

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "web" / "static"
MEMORY_FILES = ["memory.html", "memory.js"]

# As in test_page_static: anything that would make the browser reach past this server.
EXTERNAL = re.compile(r"""(https?:)?//[\w.-]+\.[a-z]{2,}|https?://|//cdn""", re.IGNORECASE)
# Ways to turn text into markup: the page must build its DOM with textContent only.
MARKUP_SINKS = re.compile(
    r"\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|document\.write|DOMParser|"
    r"createContextualFragment|\beval\(|new Function\("
)


class _Refs(HTMLParser):
    """What a page loads (src/href), where its links go, and the roles it declares."""

    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.links: list[str] = []
        self.roles: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a":
            if attrs.get("href"):
                self.links.append(attrs["href"])
        else:  # what the browser loads: scripts, styles, icons, images
            self.refs.extend(attrs[name] for name in ("src", "href") if attrs.get(name))
        if attrs.get("role"):
            self.roles.append(attrs["role"])


def parse(html: str) -> _Refs:
    parser = _Refs()
    parser.feed(html)
    return parser


@pytest.fixture
def client(runtime):
    from web.app import create_app

    # No `with`: the lifespan warms models, which serving files does not need.
    return TestClient(create_app(runtime, ["lumina"], greet=False), base_url=LOCAL)


def test_memory_page_is_served_with_only_local_assets(client):
    page = client.get("/memory")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    refs = parse(page.text).refs
    assert "/static/memory.js" in refs and "/static/style.css" in refs
    for ref in refs:
        if ref.startswith("data:"):
            continue
        assert ref.startswith("/static/"), f"/memory loads {ref!r}, outside /static/"
        assert client.get(ref).status_code == 200, ref


@pytest.mark.parametrize("name", MEMORY_FILES)
def test_no_external_urls(name):
    text = (STATIC / name).read_text()
    found = [m.group(0) for m in EXTERNAL.finditer(text)]
    assert not found, f"{name} references outside URLs (the page must work offline): {found}"


def test_memory_js_imports_only_local_modules():
    text = (STATIC / "memory.js").read_text()
    imports = re.findall(r"""^\s*import\s[^;]*?from\s+["']([^"']+)["']""", text, re.MULTILINE)
    imports += re.findall(r"""import\(\s*["']([^"']+)["']\s*\)""", text)
    for ref in imports:
        assert ref.startswith("./"), f"memory.js: non-local import {ref!r}"
        assert (STATIC / ref.removeprefix("./")).is_file(), f"memory.js imports missing {ref!r}"


def test_memory_js_never_turns_data_into_markup():
    text = (STATIC / "memory.js").read_text()
    found = [m.group(0) for m in MARKUP_SINKS.finditer(text)]
    assert not found, f"memory.js must use textContent, not {found}"
    assert "textContent" in text


def test_memory_page_has_visible_status_and_error_areas():
    page = parse((STATIC / "memory.html").read_text())
    assert "status" in page.roles and "alert" in page.roles
    assert "/" in page.links  # back to the talk page (memory.js adds ?avatar=)
    for link in page.links:
        assert link.startswith(("/", "?", "#")), f"memory.html links outside: {link!r}"


def test_talk_page_links_to_the_memory_page():
    assert "/memory" in parse((STATIC / "talk.html").read_text()).links


# ---------- in a browser: see a memory, ask why, delete it ----------

# The app without its lifespan: no STT/TTS/LLM warm-up, which this page does not need.
SERVE = (
    "import sys, uvicorn; from web.app import create_app; from bots.runtime import Runtime; "
    "uvicorn.run(create_app(Runtime.start(), ['lumina'], greet=False), host='127.0.0.1', "
    "port=int(sys.argv[1]), lifespan='off', log_level='warning')"
)


class _FakeEmbedder:
    """Stable unit vectors, so seeding does not load MiniLM (the server loads the real one)."""

    def embed(self, texts: list[str]) -> np.ndarray:
        from memory.embedder import DIMENSIONS

        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for i, text in enumerate(texts):
            rng = np.random.default_rng(sum(text.encode()))
            v = rng.standard_normal(DIMENSIONS).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out


def _seed(memory_dir: Path, me: str) -> dict[str, str]:
    from memory.store import MemoryStore

    store = MemoryStore(str(memory_dir), embedder=_FakeEmbedder())
    now = time.time() - 3600
    said = store.add_turn(
        user_id=me, avatar_id="lumina", session_id="s1", role="user",
        text="My dog is called Biscuit and he loves the beach.", started=now, ended=now + 3,
    )  # fmt: skip
    store.add_turn(
        user_id=me, avatar_id="lumina", session_id="s1", role="assistant",
        text="Biscuit is a lovely name for a", started=now + 4, ended=now + 6, interrupted=True,
    )  # fmt: skip
    trip = store.add_turn(
        user_id=me, avatar_id="lumina", session_id="s1", role="user",
        text="Let's plan my trip to Lisbon next time.", started=now + 7, ended=now + 9,
    )  # fmt: skip
    dog = store.upsert_card(
        user_id=me, text="The user's dog is called Biscuit.", scope="user",
        key="named:dog", source_turn_ids=[said.id],
    )  # fmt: skip
    plan = store.upsert_card(
        user_id=me, text="We are planning a trip to Lisbon.", scope="avatar",
        avatar_id="lumina", source_turn_ids=[trip.id],
    )  # fmt: skip
    return {"dog": dog.card_id, "plan": plan.card_id}


@pytest.fixture
def memory_server(tmp_path):
    """The app on a free port, with its own data dir; yields (base URL, memory dir)."""
    data_dir = tmp_path / "data"
    port = free_port()
    env = {**os.environ, "AVATARS_DATA_DIR": str(data_dir), "AVATARS_MEMORY": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/api/room", 60, proc)
        yield base, data_dir / "memory"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.slow
@needs_chromium
def test_a_memory_shows_why_and_can_be_deleted(memory_server):
    import httpx

    playwright = pytest.importorskip("playwright.sync_api")
    expect = playwright.expect
    base, memory_dir = memory_server
    http = httpx.Client(base_url=base, timeout=90)
    me = sign_up(http)
    # Seed before the server opens the store: it reads the tables as they were when opened.
    ids = _seed(memory_dir, me["id"])
    # The first memory request loads the embedding model (seconds): do it before the page.
    assert http.get("/api/memory?avatar=lumina").status_code == 200

    problems: list[str] = []
    dialogs: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS, headless=True)
        try:
            page = browser.new_page()
            watch_for_errors(page, problems)
            # Signed out, the page sends us to sign in, and back here afterwards.
            page.goto(f"{base}/memory?avatar=lumina")
            expect(page).to_have_url(re.compile(r"/login\?next="))
            page.get_by_label("User name").fill(me["username"])
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in", exact=True).click()
            expect(page).to_have_url(f"{base}/memory?avatar=lumina")

            expect(page.locator("h1")).to_have_text("What Lumina remembers about you")
            expect(page.locator("#profile")).to_contain_text("Biscuit")
            card = page.locator(".mem-card", has_text="The user's dog is called Biscuit.")
            expect(card).to_be_visible(timeout=15_000)
            expect(card.locator(".mem-badge")).to_have_text("About you · every avatar")
            plan = page.locator(".mem-card", has_text="trip to Lisbon")
            expect(plan.locator(".mem-badge")).to_have_text("With Lumina only")

            # Why? The turn it came from: who said it, and what.
            card.locator("summary", has_text="Why?").click()
            source = card.locator(".mem-source")
            expect(source).to_contain_text("My dog is called Biscuit and he loves the beach.")
            expect(source.locator("strong")).to_have_text("You")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "memory.png"), full_page=True)

            # The conversation, expanded: the cut-off reply is marked.
            conv = page.locator(".mem-conv")
            expect(conv).to_have_count(1)
            conv.locator("summary").click()
            expect(conv.locator(".msg")).to_have_count(3)
            expect(conv.locator(".msg.bot")).to_contain_text("(interrupted)")

            # Delete it (accepting the confirmation): gone from the page and the store.
            page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
            card.get_by_role("button", name=re.compile("^Delete")).click()
            expect(page.locator(".mem-card", has_text="Biscuit")).to_have_count(0)
            expect(page.locator(".mem-card")).to_have_count(1)
            expect(page.locator("#status")).to_contain_text("Deleted the memory")
            expect(page.locator("#banner")).to_be_hidden()
        finally:
            browser.close()
    assert dialogs and "dog is called Biscuit" in dialogs[0], dialogs
    assert not problems, problems

    from memory.store import MemoryStore

    left = MemoryStore(str(memory_dir), embedder=_FakeEmbedder()).list_cards(me["id"])
    assert [c.id for c in left] == [ids["plan"]]
