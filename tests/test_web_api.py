"""The web API's answers when things are wrong: readable, actionable, nothing started."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient

from testkit.net import LOCAL
from testkit.webrtc_client import offer_sdp
from tests.accounts import sign_up
from web.app import create_app


@pytest.fixture
def client(make_runtime):
    """The app, with both LLM backends pointed at a closed port."""
    runtime = make_runtime(llm_port=9, ollama_host="http://127.0.0.1:9", llm_backend="auto")
    with TestClient(create_app(runtime, ["lumina"]), base_url=LOCAL) as c:
        sign_up(c)
        yield c


def test_page_and_avatars_are_served(client):
    assert "<html" in client.get("/").text.lower()
    avatars = client.get("/api/avatars").json()
    # The room offers the launcher's avatar; people's own (other tests make some in the
    # shared data folder) are listed with their owners.
    room = [a for a in avatars if a["kind"] == "room"]
    assert [a["id"] for a in room] == ["lumina"] and room[0]["name"] == "Lumina"
    assert all(a["owner"] for a in avatars if a["kind"] != "room")


def test_health_says_what_to_do_when_no_llm_runs(client):
    health = client.get("/api/health").json()
    assert health["ok"] is False
    assert "make llm" in health["llm"]["fix"] and "ollama serve" in health["llm"]["fix"]
    assert health["stt"]["ok"] and health["tts"]["ok"] and health["memory"]["ok"]


def test_offer_without_an_llm_is_a_503_that_says_how_to_fix_it(client):
    offer = asyncio.run(offer_sdp("audio"))
    resp = client.post("/api/offer", json={"sdp": offer, "type": "offer"})
    assert resp.status_code == 503
    assert "make llm" in resp.json()["detail"]
    assert not client.app.state.calls.sessions.active
    assert client.app.state.admission.stats()["calls"] == 0  # its seat was given back


def test_an_offer_no_call_can_come_of_is_a_400_saying_why(client):
    resp = client.post("/api/offer", json={"sdp": "v=0", "type": "offer"})
    assert resp.status_code == 400
    assert "0 media sections" in resp.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [{}, {"sdp": "", "type": "offer"}, {"sdp": "v=0", "type": "bogus"}, {"type": "offer"}],
)
def test_malformed_offers_are_rejected_with_the_field_named(client, body):
    resp = client.post("/api/offer", json=body)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"][-1] in {"sdp", "type"}


def test_unknown_avatar_is_a_404(client):
    resp = client.post("/api/offer?avatar=nobody", json={"sdp": "v=0", "type": "offer"})
    assert resp.status_code == 404 and "nobody" in resp.json()["detail"]
