"""The memory store: scoping, isolation between people, forget-me, schema version."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from memory.store import SCHEMA_VERSION, MemoryStore


@pytest.fixture
def store(tmp_path, embedder) -> MemoryStore:
    return MemoryStore(str(tmp_path / "memory"), embedder)


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
        user_id="priya",
        text="Priya's dog is called Biscuit",
        scope="user",
        source_turn_ids=[turn.id],
    )
    store.add_card(user_id="sam", text="Sam's cat is called Pepper", scope="user")
    store.forget_user("priya")
    assert store.count("priya") == {"turns": 0, "chunks": 0, "cards": 0}
    assert store.search_cards("priya", "lumina", "dog Biscuit", k=10) == []
    assert store.count("sam") == {"turns": 0, "chunks": 0, "cards": 1}


def test_ids_with_quotes_cannot_widen_a_filter(store):
    store.add_card(user_id="priya", text="Priya's dog is called Biscuit", scope="user")
    assert store.search_cards("x' OR '1'='1", "lumina", "dog", k=10) == []


def test_reopening_keeps_data_and_schema_version(tmp_path, embedder):
    path = str(tmp_path / "memory")
    MemoryStore(path, embedder).add_card(user_id="priya", text="Priya likes jazz", scope="user")
    again = MemoryStore(path, embedder)
    assert again.count("priya")["cards"] == 1
    rows = again._meta.search().where("key = 'schema_version'").to_list()
    assert [r["value"] for r in rows] == [str(SCHEMA_VERSION)]


def say(store, user, text, *, avatar="lumina", session="s1", role="user", at=0.0):
    return store.add_turn(
        user_id=user, avatar_id=avatar, session_id=session, role=role, text=text,
        started=time.time() + at,
    )  # fmt: skip


def test_a_changed_fact_replaces_the_old_card_and_keeps_both_sources(store):
    t1, t2 = say(store, "priya", "My dog is called Biscuit"), say(store, "priya", "Rex now")
    first = store.upsert_card(
        user_id="priya", text="Priya's dog is called Biscuit.", scope="user", key="named:dog",
        source_turn_ids=[t1.id],
    )  # fmt: skip
    second = store.upsert_card(
        user_id="priya", text="Priya's dog is called Rex.", scope="user", key="named:dog",
        source_turn_ids=[t2.id],
    )  # fmt: skip
    assert (first.action, second.action) == ("added", "replaced")
    assert second.old_text == "Priya's dog is called Biscuit."
    (only,) = store.list_cards("priya", "lumina")
    assert only.text == "Priya's dog is called Rex." and only.source_turn_ids == [t1.id, t2.id]


def test_the_same_fact_said_again_is_merged_not_duplicated(store):
    store.upsert_card(user_id="priya", text="Priya enjoys jazz music.", scope="user")
    again = store.upsert_card(user_id="priya", text="Priya enjoys jazz music.", scope="user")
    other = store.upsert_card(user_id="priya", text="Priya works as a nurse.", scope="user")
    assert (again.action, other.action) == ("merged", "added")
    assert store.count("priya")["cards"] == 2


def test_dedupe_never_crosses_people_or_scopes(store):
    store.upsert_card(user_id="priya", text="Dog is called Biscuit.", scope="user", key="named:dog")
    store.upsert_card(user_id="sam", text="Dog is called Biscuit.", scope="user", key="named:dog")
    store.upsert_card(
        user_id="priya", text="Dog is called Biscuit.", scope="avatar", avatar_id="captain",
        key="named:dog",
    )  # fmt: skip
    assert store.count("priya")["cards"] == 2 and store.count("sam")["cards"] == 1


def test_chunks_and_conversations_stay_with_their_person_and_avatar(store):
    turns = [say(store, "priya", f"line {i} about sailing boats", at=i) for i in range(4)]
    store.add_chunk(user_id="priya", turns=turns, avatar_name="Lumina")
    other = [say(store, "sam", "sailing boats", session="s9", at=i) for i in range(3)]
    store.add_chunk(user_id="sam", turns=other, avatar_name="Lumina")
    assert [c.session_id for c in store.search_chunks("priya", "lumina", "sailing")] == ["s1"]
    assert store.search_chunks("priya", "captain", "sailing") == []
    assert store.search_chunks("priya", "lumina", "sailing", exclude_sessions=["s1"]) == []
    assert [c.session_id for c in store.conversations("priya")] == ["s1"]
    assert store.get_turns("sam", [t.id for t in turns]) == []
    assert store.conversation("sam", "s1") == []


def test_deleting_a_conversation_takes_what_was_learned_only_from_it(store):
    a = say(store, "priya", "My dog is called Biscuit", session="a")
    b = say(store, "priya", "I love jazz", session="b")
    b2 = say(store, "priya", "My dog Biscuit is great", session="b")
    store.add_chunk(user_id="priya", turns=[a], avatar_name="Lumina")
    only_a = store.upsert_card(user_id="priya", text="Dog: Biscuit", scope="user",
                               key="named:dog", source_turn_ids=[a.id])  # fmt: skip
    both = store.upsert_card(user_id="priya", text="Likes jazz", scope="user",
                             key="pref:jazz", source_turn_ids=[a.id, b.id])  # fmt: skip
    assert store.delete_conversation("priya", "a") == {"turns": 1, "chunks": 1, "cards": 1}
    cards = {c.id: c for c in store.list_cards("priya")}
    assert only_a.card_id not in cards
    assert cards[both.card_id].source_turn_ids == [b.id]
    assert [t.id for t in store.conversation("priya", "b")] == [b.id, b2.id]
    assert store.delete_conversation("sam", "b")["turns"] == 0  # not sam's to delete


def test_forget_me_leaves_nothing_searchable(store):
    t = say(store, "priya", "My dog is called Biscuit")
    store.add_chunk(user_id="priya", turns=[t], avatar_name="Lumina")
    store.upsert_card(user_id="priya", text="Priya's dog is called Biscuit.", scope="user")
    store.upsert_card(user_id="priya", text="We sailed", scope="avatar", avatar_id="captain")
    store.forget_user("priya")
    assert store.count("priya") == {"turns": 0, "chunks": 0, "cards": 0}
    for avatar in ("lumina", "captain"):
        assert store.search_cards("priya", avatar, "dog Biscuit sailed", k=50) == []
        assert store.search_chunks("priya", avatar, "dog Biscuit", k=50) == []
        assert store.list_cards("priya", avatar) == []
    assert store.conversations("priya") == []


def test_a_version_1_database_is_migrated_in_place(tmp_path, embedder):
    import lancedb
    import pyarrow as pa

    from memory.embedder import DIMENSIONS

    path = str(tmp_path / "v1")
    db = lancedb.connect(path)
    v1_cards = pa.schema([
        ("id", pa.string()), ("user_id", pa.string()), ("avatar_id", pa.string()),
        ("scope", pa.string()), ("text", pa.string()),
        ("source_turn_ids", pa.list_(pa.string())), ("created", pa.float64()),
        ("updated", pa.float64()), ("vector", pa.list_(pa.float32(), DIMENSIONS)),
    ])  # fmt: skip
    vector = embedder.embed(["Priya likes jazz"])[0]
    db.create_table("cards", schema=v1_cards).add([{
        "id": "c1", "user_id": "priya", "avatar_id": "", "scope": "user",
        "text": "Priya likes jazz", "source_turn_ids": [], "created": 1.0, "updated": 1.0,
        "vector": vector,
    }])  # fmt: skip
    db.create_table("meta", data=[{"key": "schema_version", "value": "1"}])
    migrated = MemoryStore(path, embedder)
    assert migrated.schema_version() == SCHEMA_VERSION == 2
    (card,) = migrated.search_cards("priya", "lumina", "jazz")
    assert (card.id, card.key) == ("c1", "")
    assert (
        migrated.upsert_card(
            user_id="priya", text="Priya hates jazz", scope="user", key="pref:jazz"
        ).action
        == "added"
    )
    assert migrated.count("priya")["chunks"] == 0  # the chunks table exists now


def test_a_newer_database_is_refused_with_advice(tmp_path, embedder):
    path = str(tmp_path / "future")
    MemoryStore(path, embedder)._meta.update(where="key = 'schema_version'", values={"value": "99"})
    with pytest.raises(RuntimeError, match="upgrade local-avatars"):
        MemoryStore(path, embedder)


def _on_disk(store: MemoryStore, word: str) -> list[str]:
    """Every file of the database whose bytes hold ``word`` (data, deletion and manifests)."""
    root = Path(store.uri)
    return [str(p) for p in root.rglob("*") if p.is_file() and word.encode() in p.read_bytes()]


def test_forgotten_facts_are_in_no_version_of_any_table_and_in_no_file(store):
    t = say(store, "priya", "My dog is called Biscuit")
    store.add_chunk(user_id="priya", turns=[t], avatar_name="Lumina")
    store.upsert_card(user_id="priya", text="Priya's dog is called Biscuit.", scope="user")
    store.upsert_card(user_id="sam", text="Sam's cat is called Pepper.", scope="user")
    assert _on_disk(store, "Biscuit")  # the check can find it...
    store.forget_user("priya")
    for table in (store.turns, store.chunks, store.cards):
        # ...and time travel cannot: only the current version is left, and it has none.
        versions = table.list_versions()
        assert len(versions) == 1, versions
        table.checkout(versions[0]["version"])
        assert table.count_rows("user_id = 'priya'") == 0
        table.checkout_latest()
    assert _on_disk(store, "Biscuit") == []
    assert store.count("sam")["cards"] == 1  # the others' memories are untouched


def test_deleting_one_card_or_conversation_leaves_no_old_copy_either(store):
    t = say(store, "priya", "My cat is called Pepper", session="s2")
    store.upsert_card(
        user_id="priya", text="Priya's cat is called Pepper.", scope="user",
        source_turn_ids=[t.id],
    )  # fmt: skip
    card = store.upsert_card(user_id="priya", text="Priya hums Tralala.", scope="user")
    assert store.delete_card("priya", card.card_id)
    assert _on_disk(store, "Tralala") == []
    store.delete_conversation("priya", "s2")
    assert _on_disk(store, "Pepper") == []


def test_a_replaced_card_is_one_merge_that_keeps_its_id(store):
    first = store.upsert_card(
        user_id="priya", text="Priya lives in Boston.", scope="user", key="home"
    )
    second = store.upsert_card(
        user_id="priya", text="Priya lives in Denver.", scope="user", key="home"
    )
    assert second.card_id == first.card_id
    (only,) = store.list_cards("priya", "lumina")
    assert only.text == "Priya lives in Denver."
    # No version between the two without the card (delete-then-add made one).
    rows = [int(v["metadata"]["total_rows"]) for v in store.cards.list_versions()]
    assert rows[rows.index(1) :] == [1] * (len(rows) - rows.index(1)), rows


def test_a_full_disk_or_a_failed_write_is_reported_until_a_write_works(store, monkeypatch):
    assert store.writable() is None
    free = shutil.disk_usage(store.uri).free
    monkeypatch.setattr("memory.store.MIN_FREE_BYTES", free * 2)  # this disk, "full"
    assert store.writable() == "the disk is full"
    monkeypatch.undo()
    store.note_write(OSError(28, "No space left on device"))
    assert "No space left" in (store.writable() or "")
    store.note_write(None)
    assert store.writable() is None


def test_a_read_only_memory_folder_is_reported(store):
    root = Path(store.uri)
    root.chmod(0o555)
    try:
        if os.access(root, os.W_OK):
            pytest.skip("running as root, whom a read-only mode does not stop")
        assert store.writable() == "its folder is read-only"
    finally:
        root.chmod(0o755)


def test_a_process_reading_an_old_version_after_another_forgot_something_still_reads(
    tmp_path, embedder
):
    """Room workers share one database; a deletion elsewhere removes old versions' files."""
    path = str(tmp_path / "memory")
    reader, forgetter = MemoryStore(path, embedder), MemoryStore(path, embedder)
    for i in range(3):
        reader.add_turn(
            user_id="priya", avatar_id="lumina", session_id="s1", role="user",
            text=f"Turn {i}", started=time.time(),
        )  # fmt: skip
    reader.add_card(user_id="sam", text="Sam's cat is called Pepper", scope="user")
    assert len(reader.recent_turns("priya", "lumina")) == 3  # holds this version
    forgetter.forget_user("priya")  # compacts and drops every older version's files
    assert reader.recent_turns("priya", "lumina") == []
    assert [c.text for c in reader.list_cards("sam")] == ["Sam's cat is called Pepper"]
