"""The memory store: scoping, isolation between people, forget-me, schema version."""

from __future__ import annotations

import time

import pytest

from memory.store import SCHEMA_VERSION, MemoryStore


@pytest.fixture
def store(tmp_path) -> MemoryStore:
    return MemoryStore(str(tmp_path / "memory"))


def test_a_fact_is_found_by_a_question_about_it(store):
    store.add_card(user_id="priya", text="Priya's dog is called Biscuit", scope="user")
    store.add_card(user_id="priya", text="Priya likes jazz", scope="user")
    found = store.search_cards("priya", "lumina", "What is my dog called?", k=1)
    assert [c.text for c in found] == ["Priya's dog is called Biscuit"]
    assert found[0].score > 0.4


def test_one_person_never_sees_another_persons_memories(store):
    store.add_card(user_id="priya", text="Priya's dog is called Biscuit", scope="user")
    store.add_card(user_id="sam", text="Sam's cat is called Pepper", scope="user")
    found = store.search_cards("sam", "lumina", "What is my dog called?", k=10)
    assert [c.text for c in found] == ["Sam's cat is called Pepper"]


def test_avatar_scope_stays_with_its_avatar(store):
    store.add_card(
        user_id="priya", text="We planned a trip to Lisbon", scope="avatar", avatar_id="captain"
    )
    store.add_card(user_id="priya", text="Priya is called Priya", scope="user")
    assert {c.text for c in store.search_cards("priya", "captain", "trip", k=10)} == {
        "We planned a trip to Lisbon",
        "Priya is called Priya",
    }
    assert [c.text for c in store.search_cards("priya", "lumina", "trip", k=10)] == [
        "Priya is called Priya"
    ]


def test_forget_me_deletes_everything_of_that_person_only(store):
    turn = store.add_turn(
        user_id="priya", avatar_id="lumina", session_id="s1", role="user",
        text="My dog is called Biscuit", started=time.time(),
    )  # fmt: skip
    store.add_card(
        user_id="priya", text="Priya's dog is called Biscuit", scope="user", source_turn_ids=[turn]
    )
    store.add_card(user_id="sam", text="Sam's cat is called Pepper", scope="user")
    store.forget_user("priya")
    assert store.count("priya") == {"turns": 0, "cards": 0}
    assert store.search_cards("priya", "lumina", "dog Biscuit", k=10) == []
    assert store.count("sam") == {"turns": 0, "cards": 1}


def test_ids_with_quotes_cannot_widen_a_filter(store):
    store.add_card(user_id="priya", text="Priya's dog is called Biscuit", scope="user")
    assert store.search_cards("x' OR '1'='1", "lumina", "dog", k=10) == []


def test_reopening_keeps_data_and_schema_version(tmp_path):
    path = str(tmp_path / "memory")
    MemoryStore(path).add_card(user_id="priya", text="Priya likes jazz", scope="user")
    again = MemoryStore(path)
    assert again.count("priya")["cards"] == 1
    rows = again._meta.search().where("key = 'schema_version'").to_list()
    assert [r["value"] for r in rows] == [str(SCHEMA_VERSION)]
