"""The room under attack from a browser tab or a script: foreign hosts, other origins,
oversized bodies, framing. Each is tried against the real app, as an attacker would."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from testkit.net import LOCAL
from tests.accounts import PASSWORD, sign_up
from web.app import create_app
from web.auth import RoomOptions
from web.guards import DEFAULT_BODY_LIMIT, hostname

SAME = {"Origin": LOCAL}


@pytest.fixture
def app(make_runtime):
    return create_app(make_runtime(llm_port=9, llm_backend="embedded"), ["lumina"], greet=False)


@pytest.fixture
def client(app):
    with TestClient(app, base_url=LOCAL) as c:
        yield c


def test_a_rebinding_page_cannot_reach_the_room_through_another_host_name(app):
    # evil.example resolved to 127.0.0.1: same socket, foreign Host header.
    with TestClient(app, base_url="http://evil.example") as rebound:
        for resp in (rebound.get("/api/room"), rebound.post("/api/signup", json={})):
            assert resp.status_code == 400 and "host" in resp.json()["detail"]
    with TestClient(app, base_url="http://127.0.0.1:7860") as local:
        assert local.get("/api/room").status_code == 200


def test_state_changes_from_another_origin_are_refused_even_on_the_same_host(client):
    sign_up(client)
    # Another port on this machine is another origin, but the same site: SameSite=Strict
    # cookies go along, so only the Origin check stops this form post.
    other_port = {"Origin": "http://localhost:8000"}
    forget = client.post("/api/memory/forget", data={"avatar": "lumina"}, headers=other_port)
    assert forget.status_code == 403 and "Cross-site" in forget.json()["detail"]
    assert client.post("/api/logout", headers={"Origin": "null"}).status_code == 403
    fetched = {"Sec-Fetch-Site": "cross-site"}  # a browser that sent no Origin
    assert client.post("/api/logout", headers=fetched).status_code == 403
    assert client.get("/api/me").status_code == 200  # still signed in: nothing happened
    # The room's own page, and scripts that send no Origin at all, go through.
    assert client.post("/api/logout", headers=SAME).status_code == 200


def test_a_websocket_from_another_origin_is_refused_before_it_opens(client):
    sign_up(client)
    foreign = {"Origin": "http://x.test"}
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/ws", headers=foreign):
        pass


def test_oversized_bodies_are_refused_before_they_are_parsed(client):
    huge = "x" * (5 * 1024 * 1024)
    for path, body in [
        ("/api/signup", {"username": "a", "password": huge}),
        ("/api/avatars", {"id": "big", "persona": huge}),
        ("/api/offer", {"sdp": huge, "type": "offer"}),
    ]:
        resp = client.post(path, json=body, headers=SAME)
        assert resp.status_code == 413, (path, resp.status_code)
        assert "too large" in resp.json()["detail"]

    # No Content-Length (chunked): counted as it streams in.
    def chunks():
        for _ in range(64):
            yield b"x" * 1024

    resp = client.post("/api/login", content=chunks(), headers=SAME)
    assert resp.status_code == 413
    # A normal sign-in is far inside the limit.
    small = {"username": "nobody", "password": PASSWORD}
    assert len(str(small)) < DEFAULT_BODY_LIMIT
    assert client.post("/api/login", json=small, headers=SAME).status_code == 401


def test_pages_and_api_answers_carry_the_security_headers(client):
    for resp in (client.get("/"), client.get("/api/room"), client.get("/static/app.js")):
        csp = resp.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert resp.headers["x-frame-options"] == "DENY"
        assert resp.headers["x-content-type-options"] == "nosniff"


def test_the_api_docs_are_served_only_in_dev_mode(client, make_runtime):
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 404
    runtime = make_runtime(llm_port=9, llm_backend="embedded")
    dev = create_app(runtime, ["lumina"], greet=False, room=RoomOptions(dev=True))
    with TestClient(dev, base_url=LOCAL) as c:
        assert c.get("/openapi.json").status_code == 200


def test_host_names_are_compared_without_port_or_brackets():
    assert hostname("LOCALHOST:7860") == "localhost"
    assert hostname("[::1]:7860") == "::1"
    assert hostname("192.168.1.20") == "192.168.1.20"


def test_a_patch_with_a_hundred_candidates_is_refused_before_any_check_runs(client):
    sign_up(client)
    candidate = {"candidate": "candidate:1 1 udp 1 10.0.0.7 5 typ host", "sdp_mid": "0"}
    body = {"pc_id": "x", "candidates": [candidate] * 100}
    resp = client.patch("/api/offer", json=body, headers=SAME)
    assert resp.status_code == 422 and "at most 8" in resp.text
