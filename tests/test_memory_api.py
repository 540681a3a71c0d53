"""The memory REST API: what is remembered can be listed, searched and deleted, and forgotten.

Runs the real app and store (the test run's own data dir, see conftest) without the lifespan:
no models other than the embedder are needed.
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from testkit.net import LOCAL
from tests.accounts import sign_up
from web.app import create_app


@pytest.fixture
def client(runtime) -> TestClient:
    client = TestClient(create_app(runtime, ["lumina", "captain"], greet=False), base_url=LOCAL)
    client.user = sign_up(client)
    return client


@pytest.fixture
def seeded(client, runtime):
    me = client.user["id"]
    store = runtime.memory
    now = time.time()
    turns = [
        store.add_turn(
            user_id=me, avatar_id="lumina", session_id="talk-1", role=role, text=text,
            started=now + i, interrupted=role == "assistant" and i == 3,
        )
        for i, (role, text) in enumerate([
            ("user", "My dog is called Biscuit."), ("assistant", "What a sweet name!"),
            ("user", "We're planning a trip to Lisbon."), ("assistant", "Lisbon is lovely in"),
        ])
    ]  # fmt: skip
    store.add_chunk(user_id=me, turns=turns, avatar_name="Lumina")
    dog = store.upsert_card(
        user_id=me, text="The user's dog is called Biscuit.", scope="user",
        key="named:dog", source_turn_ids=[turns[0].id],
    )  # fmt: skip
    trip = store.upsert_card(
        user_id=me, text="We planned a trip to Lisbon.", scope="avatar",
        avatar_id="lumina", source_turn_ids=[turns[2].id],
    )  # fmt: skip
    store.upsert_card(user_id="someone-else", text="Their cat is called Pepper.", scope="user")
    yield {"store": store, "dog": dog.card_id, "trip": trip.card_id, "me": me}
    store.forget_user(me)
    store.forget_user("someone-else")


def test_the_overview_shows_profile_cards_with_their_source_turns_and_conversations(client, seeded):
    body = client.get("/api/memory?avatar=lumina").json()
    assert body["profile"] == "The user's dog is called Biscuit."
    cards = {c["text"]: c for c in body["cards"]}
    assert set(cards) == {"The user's dog is called Biscuit.", "We planned a trip to Lisbon."}
    assert [s["text"] for s in cards["The user's dog is called Biscuit."]["sources"]] == [
        "My dog is called Biscuit."
    ]
    (talk,) = body["conversations"]
    assert (talk["session_id"], talk["turns"], talk["interrupted"]) == ("talk-1", 4, 1)
    assert "Pepper" not in str(body), "another person's memories never show"


def test_avatar_scope_stays_with_its_avatar(client, seeded):
    captain = client.get("/api/memory?avatar=captain").json()
    assert [c["text"] for c in captain["cards"]] == ["The user's dog is called Biscuit."]
    assert captain["conversations"] == []


def test_cards_and_conversations_can_be_searched(client, seeded):
    found = client.get("/api/memory/cards", params={"avatar": "lumina", "q": "pets"}).json()
    assert found[0]["text"] == "The user's dog is called Biscuit."
    talks = client.get(
        "/api/memory/conversations", params={"avatar": "lumina", "q": "holiday in Portugal"}
    ).json()
    assert [t["session_id"] for t in talks] == ["talk-1"] and talks[0]["score"] > 0.2
    turns = client.get("/api/memory/conversations/talk-1").json()["turns"]
    assert [t["interrupted"] for t in turns] == [False, False, False, True]


def test_one_memory_can_be_deleted(client, seeded):
    assert client.delete(f"/api/memory/cards/{seeded['dog']}").status_code == 200
    left = [c["text"] for c in client.get("/api/memory/cards?avatar=lumina").json()]
    assert left == ["We planned a trip to Lisbon."]
    again = client.delete(f"/api/memory/cards/{seeded['dog']}")
    assert again.status_code == 404 and "already deleted" in again.json()["detail"]


def test_deleting_a_conversation_takes_its_turns_chunks_and_what_came_only_from_it(client, seeded):
    gone = client.delete("/api/memory/conversations/talk-1").json()
    assert gone == {"deleted": "talk-1", "turns": 4, "chunks": 1, "cards": 2}
    assert client.get("/api/memory?avatar=lumina").json()["cards"] == []
    assert client.get("/api/memory/conversations/talk-1").status_code == 404


def test_forget_me_deletes_everything_and_search_finds_nothing_after(client, seeded):
    result = client.post("/api/memory/forget").json()
    assert result["forgotten"] == {"turns": 4, "chunks": 1, "cards": 2}
    assert result["left"] == {"turns": 0, "chunks": 0, "cards": 0}
    for avatar in ("lumina", "captain"):
        for q in ("dog", "Biscuit", "Lisbon trip"):
            assert client.get("/api/memory/cards", params={"avatar": avatar, "q": q}).json() == []
            assert (
                client.get("/api/memory/conversations", params={"avatar": avatar, "q": q}).json()
                == []
            )
    store = seeded["store"]
    assert store.count("someone-else")["cards"] == 1, "nobody else's memories are touched"


def test_bad_requests_get_clear_answers(client, seeded):
    assert client.get("/api/memory?avatar=nobody").status_code == 404
    assert "offered" in client.get("/api/memory?avatar=nobody").json()["detail"]
    assert client.delete("/api/memory/conversations/no-such-talk").status_code == 404
    quote = client.delete("/api/memory/cards/x' OR '1'='1")
    assert quote.status_code == 404
    assert seeded["store"].count(seeded["me"])["cards"] == 2


def test_memories_belong_to_the_signed_in_person_only(client, seeded):
    stranger = TestClient(client.app, base_url=LOCAL)
    assert stranger.get("/api/memory?avatar=lumina").status_code == 401
    # Not even which avatars there are: an unknown one is a 401 too, not a list of them.
    nosy = stranger.get("/api/memory?avatar=nope")
    assert nosy.status_code == 401 and "lumina" not in nosy.text
    assert stranger.post("/api/memory/forget").status_code == 401
    sign_up(stranger)
    assert stranger.get("/api/memory?avatar=lumina").json()["cards"] == []
    assert stranger.get("/api/memory/conversations/talk-1").status_code == 404
    assert stranger.delete(f"/api/memory/cards/{seeded['dog']}").status_code == 404
    assert seeded["store"].count(seeded["me"])["cards"] == 2
