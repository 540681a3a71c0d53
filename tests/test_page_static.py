"""The pages work offline: they load nothing from outside the server, and nothing missing."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from testkit.net import LOCAL

STATIC = Path(__file__).resolve().parents[1] / "web" / "static"
PAGES = ["lobby.html", "login.html", "talk.html", "memory.html", "editor.html"]
PAGE_FILES = [
    *PAGES,
    "app.js",
    "call.js",
    "ui.js",
    "lobby.js",
    "login.js",
    "editor.js",
    "style.css",
]

# Anything that would make the browser reach past this server: absolute or
# protocol-relative URLs, and CSS/JS imports of them.
EXTERNAL = re.compile(r"""(https?:)?//[\w.-]+\.[a-z]{2,}|https?://|//cdn""", re.IGNORECASE)


class _Refs(HTMLParser):
    """Collects every src/href the page loads (links to other pages are navigation, not loads)."""

    def __init__(self):
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value and not (tag == "a" and name == "href"):
                self.refs.append(value)


def html_refs(page: str = "talk.html") -> list[str]:
    parser = _Refs()
    parser.feed((STATIC / page).read_text())
    return parser.refs


def js_imports(path: Path) -> list[str]:
    text = path.read_text()
    static = re.findall(r"""^\s*import\s[^;]*?from\s+["']([^"']+)["']""", text, re.MULTILINE)
    dynamic = re.findall(r"""import\(\s*["']([^"']+)["']\s*\)""", text)
    return static + dynamic


def css_urls(path: Path) -> list[str]:
    text = path.read_text()
    urls = re.findall(r"""url\(\s*["']?([^"')]+)["']?\s*\)""", text)
    return urls + re.findall(r"""@import\s+["']([^"']+)["']""", text)


def resolve(ref: str, relative_to: Path) -> Path | None:
    """The file in web/static that a reference points to (None for data: URIs)."""
    if ref.startswith("data:"):
        return None
    ref = ref.split("#")[0].split("?")[0]
    if ref.startswith("/static/"):
        return STATIC / ref.removeprefix("/static/")
    if ref.startswith("/"):
        raise AssertionError(f"{ref!r} is outside /static/, which is all the app serves")
    return (relative_to.parent / ref).resolve()


def test_page_files_exist():
    for name in PAGE_FILES:
        assert (STATIC / name).is_file(), name


@pytest.mark.parametrize("name", PAGE_FILES)
def test_no_external_urls(name):
    text = (STATIC / name).read_text()
    found = [m.group(0) for m in EXTERNAL.finditer(text)]
    assert not found, f"{name} references outside URLs (the page must work offline): {found}"


@pytest.mark.parametrize("page", PAGES)
def test_html_references_only_existing_static_files(page):
    refs = html_refs(page)
    assert "/static/style.css" in refs and any(r.endswith(".js") for r in refs)
    for ref in refs:
        target = resolve(ref, STATIC / page)
        assert target is None or target.is_file(), f"{page} references missing {ref!r}"


def test_modules_and_css_reference_only_existing_files():
    for js in STATIC.glob("*.js"):
        for ref in js_imports(js):
            assert ref.startswith(("./", "../", "/static/")), f"{js.name}: bare import {ref!r}"
            target = resolve(ref, js)
            assert target is not None and target.is_file(), f"{js.name} imports missing {ref!r}"
    for css in STATIC.glob("*.css"):
        for ref in css_urls(css):
            target = resolve(ref, css)
            assert target is None or target.is_file(), f"{css.name} references missing {ref!r}"


def test_every_static_module_is_reachable_from_the_page():
    """No stray scripts: each .js file is loaded by a page or imported by a loaded one."""
    seen: set[Path] = set()
    todo = [
        resolve(r, STATIC / page) for page in PAGES for r in html_refs(page) if r.endswith(".js")
    ]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(resolve(r, path) for r in js_imports(path))
    # Vendored modules too: a stray copy in web/static/vendor/ is as dead as one of ours.
    assert {p.relative_to(STATIC) for p in seen} == {
        p.relative_to(STATIC) for p in STATIC.rglob("*.js")
    }


@pytest.mark.parametrize(
    ("route", "page"),
    [
        ("/", "lobby.html"),
        ("/login", "login.html"),
        ("/talk", "talk.html"),
        ("/memory", "memory.html"),
        ("/avatars/edit", "editor.html"),
    ],
)
def test_app_serves_the_pages(runtime, route, page):
    from fastapi.testclient import TestClient

    from web.app import create_app

    # No lifespan (no `with`): model warm-up is not needed to serve static files.
    client = TestClient(create_app(runtime, ["lumina"]), base_url=LOCAL)
    served = client.get(route)
    assert served.status_code == 200 and "text/html" in served.headers["content-type"]
    assert served.text == (STATIC / page).read_text()
    for ref in html_refs(page):
        if ref.startswith("/static/"):
            assert client.get(ref).status_code == 200, ref
