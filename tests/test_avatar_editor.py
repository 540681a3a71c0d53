"""The avatar editor's API: avatars made in the browser are ordinary TOML avatar files.

Creating, changing and deleting go through the real app, the real account store, real files
and (for the voice preview) the real Piper voice.
"""

from __future__ import annotations

import io
import time
import wave
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from testkit.net import LOCAL
from tests.accounts import sign_up
from web.accounts import AccountStore
from web.app import create_app

NOVA = {
    "id": "nova",
    "name": "Nova",
    "blurb": "A stargazer who explains the sky.",
    "persona": "You love astronomy.\nYou explain things with simple pictures.",
    "greeting": "Hi, I'm Nova. Look up!",
    "style_rules": ["Mention one star or planet when it fits."],
    "voice": {"piper_voice": "en_US-joe-medium", "speed": 1.2, "expressiveness": 0.5},
    "llm": {"ollama_model": "llama3.2:3b", "temperature": 0.6, "max_tokens": 100},
}


@pytest.fixture
def room_runtime(make_runtime, tmp_path):
    """The room's runtime: its user avatars live in a fresh folder."""
    return make_runtime(avatars_dir=tmp_path / "avatars")


@pytest.fixture
def catalog(room_runtime):
    """The room's avatars, as ``python -m bots`` on the same settings would find them."""
    return room_runtime.avatars


@pytest.fixture
def room(room_runtime, tmp_path):
    """A room whose user avatars live in a fresh folder; returns a client factory."""
    accounts = AccountStore(tmp_path / "accounts.sqlite3")
    app = create_app(room_runtime, ["lumina"], greet=False, accounts=accounts)

    def person(name: str | None = None) -> TestClient:
        client = TestClient(app, base_url=LOCAL)
        sign_up(client, name)
        return client

    return person


def test_an_avatar_made_in_the_browser_is_a_launchable_toml_file(room, catalog):
    alice = room()
    resp = alice.post("/api/avatars", json=NOVA)
    assert resp.status_code == 201, resp.text
    path = catalog.user_dir / "nova.toml"
    assert resp.json()["launch"] == "python -m bots nova" and path.exists()
    assert str(catalog.user_dir) not in resp.text  # where files live is not told
    # `python -m bots nova` reads exactly this file.
    nova = catalog.load("nova")
    assert nova.name == "Nova" and nova.voice.speed == 1.2 and nova.llm.max_tokens == 100
    assert nova.persona == NOVA["persona"]
    assert 'persona = """' in path.read_text()  # prose stays readable in the file

    listed = {a["id"]: a for a in alice.get("/api/avatars").json()}
    assert list(listed) == ["lumina", "nova"]  # offered at once, no restart
    assert listed["nova"]["kind"] == "yours" and listed["nova"]["editable"]
    assert listed["lumina"]["kind"] == "room" and not listed["lumina"]["editable"]
    got = alice.get("/api/avatars/nova").json()
    assert got["config"]["voice"]["expressiveness"] == 0.5


def test_changing_an_avatar_keeps_its_comments_and_applies_to_the_next_call(room, catalog):
    alice = room()
    assert alice.post("/api/avatars", json=NOVA).status_code == 201
    path = catalog.user_dir / "nova.toml"
    path.write_text("# Nova: hand-tuned, keep this note.\n" + path.read_text())
    changed = {**NOVA, "greeting": "Evening! The moon is out.", "voice": {"speed": 0.9}}
    resp = alice.put("/api/avatars/nova", json=changed)
    assert resp.status_code == 200, resp.text
    text = path.read_text()
    assert text.startswith("# Nova: hand-tuned, keep this note.\n")
    assert catalog.load("nova").greeting == "Evening! The moon is out."
    assert catalog.load("nova").voice.speed == 0.9
    # The id is the file name: renaming is a copy, not an edit.
    resp = alice.put("/api/avatars/nova", json={**NOVA, "id": "nova2"})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "id"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"name": ""}, "name", "must not be empty"),
        ({"id": "Nova Star"}, "id", "lowercase"),
        ({"voice": {"speed": 5}}, "voice.speed", "less than or equal to 2"),
        ({"voice": {"sped": 1.0}}, "voice.sped", "typo"),
        ({"llm": {"ollama_model": "no spaces please"}}, "llm.ollama_model", "Ollama model"),
        ({"greeting_returning": "Hi {user}"}, "greeting_returning", "{name}"),
        # A format spec would allocate on every greeting; attribute access reads internals.
        ({"greeting_returning": "{name:>5000000}"}, "greeting_returning", "{name}"),
        ({"greeting_returning": "{name.__class__}"}, "greeting_returning", "{name}"),
        ({"voice": {"piper_voice": "../../../../tmp/x.onnx"}}, "voice.piper_voice", "installed"),
        ({"persona": "x" * 4001}, "persona", "at most 4000"),
        ({"greeting": "x" * 301}, "greeting", "at most 300"),
        ({"style_rules": ["Be kind."] * 13}, "style_rules", "at most 12"),
        ({"persona": None}, "persona", "string"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(room, change, field, words, catalog):
    alice = room()
    resp = alice.post("/api/avatars", json={**NOVA, **change})
    assert resp.status_code == 422, resp.text
    errors = {e["field"]: e["message"] for e in resp.json()["errors"]}
    assert field in errors and words in errors[field], errors
    assert not (catalog.user_dir / "nova.toml").exists()  # nothing half-saved


def test_only_the_owner_changes_or_deletes_and_room_avatars_are_read_only(room, catalog):
    alice, bob = room("alice-ed"), room("bob-ed")
    assert alice.post("/api/avatars", json=NOVA).status_code == 201
    seen_by_bob = {a["id"]: a for a in bob.get("/api/avatars").json()}["nova"]
    assert seen_by_bob["kind"] == "theirs" and seen_by_bob["owner"] == "alice-ed"
    resp = bob.put("/api/avatars/nova", json={**NOVA, "name": "Bob's Nova"})
    assert resp.status_code == 403 and "belongs to alice-ed" in resp.json()["detail"]
    assert bob.delete("/api/avatars/nova").status_code == 403
    assert catalog.load("nova").name == "Nova"
    # The shipped avatars are the room's: copy, don't change.
    lumina = alice.get("/api/avatars/lumina").json()["config"]
    resp = alice.put("/api/avatars/lumina", json={**lumina, "name": "Not Lumina"})
    assert resp.status_code == 403 and "Make a copy" in resp.json()["detail"]
    resp = alice.post("/api/avatars", json=lumina)
    assert resp.status_code == 409 and resp.json()["errors"][0]["field"] == "id"
    resp = alice.post("/api/avatars", json={**lumina, "id": "my-lumina", "name": "My Lumina"})
    assert resp.status_code == 201
    assert catalog.load("lumina").name == "Lumina"  # the built-in file is untouched


def test_deleting_an_avatar_deletes_its_file_and_everyones_memories_of_it(
    room, catalog, room_runtime
):
    alice, bob = room(), room()
    assert alice.post("/api/avatars", json=NOVA).status_code == 201
    bob_id = bob.get("/api/me").json()["id"]
    store = room_runtime.memory
    said = store.add_turn(
        user_id=bob_id,
        avatar_id="nova",
        session_id="s-nova",
        role="user",
        text="My name is Bob and I love Mars.",
        started=time.time(),
    )
    store.add_card(user_id=bob_id, text="Loves Mars", scope="avatar", avatar_id="nova")
    # Learned only from the talk with Nova, though every avatar could see it.
    store.add_card(user_id=bob_id, text="Name: Bob", scope="user", source_turn_ids=[said.id])
    store.add_turn(
        user_id=bob_id,
        avatar_id="lumina",
        session_id="s-lum",
        role="user",
        text="Hi Lumina.",
        started=time.time(),
    )
    resp = alice.delete("/api/avatars/nova")
    assert resp.status_code == 200 and resp.json()["conversations_deleted"] == 1
    assert not (catalog.user_dir / "nova.toml").exists()
    assert "nova" not in [a["id"] for a in alice.get("/api/avatars").json()]
    assert store.conversation(bob_id, "s-nova") == []
    assert store.list_cards(bob_id, "nova") == [] and store.list_cards(bob_id) == []
    assert len(store.conversation(bob_id, "s-lum")) == 1  # other avatars' memories stay
    # The id is free again.
    assert bob.post("/api/avatars", json=NOVA).status_code == 201


def _wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes() / w.getframerate()


def test_voice_preview_speaks_the_settings_being_edited(room):
    alice = room()
    text = "The quick brown fox jumps over the lazy dog near the river bank."
    slow = alice.post("/api/voices/preview", json={"voice": {"speed": 0.7}, "text": text})
    fast = alice.post("/api/voices/preview", json={"voice": {"speed": 1.6}, "text": text})
    assert slow.status_code == fast.status_code == 200, slow.text
    assert slow.headers["content-type"] == "audio/wav"
    slow_s, fast_s = _wav_seconds(slow.content), _wav_seconds(fast.content)
    assert slow_s > 2.0 and fast_s < slow_s * 0.6, (slow_s, fast_s)
    resp = alice.post("/api/voices/preview", json={"voice": {"piper_voice": "nobody-voice"}})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "voice.piper_voice"
    resp = alice.post("/api/voices/preview", json={"voice": {"speed": 9}})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "voice.speed"
    assert alice.get("/api/voices").json()[0] == "en_US-joe-medium"


def test_the_editor_needs_a_sign_in(room):
    anonymous = TestClient(room().app, base_url=LOCAL)
    for method, url in [
        ("get", "/api/avatars"),
        ("post", "/api/avatars"),
        ("delete", "/api/avatars/lumina"),
        ("post", "/api/voices/preview"),
        ("get", "/api/llm/models"),
    ]:
        assert getattr(anonymous, method)(url).status_code == 401, url


def test_two_people_creating_the_same_id_at_once_get_one_avatar_and_one_refusal(room, catalog):
    alice, bob = room(), room()
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda c: c.post("/api/avatars", json=NOVA), [alice, bob]))
    assert sorted(r.status_code for r in answers) == [201, 409]
    winner = alice if answers[0].status_code == 201 else bob
    assert {a["id"]: a for a in winner.get("/api/avatars").json()}["nova"]["kind"] == "yours"
    loser = bob if winner is alice else alice
    assert {a["id"]: a for a in loser.get("/api/avatars").json()}["nova"]["kind"] == "theirs"


def test_a_temp_file_left_by_a_crash_mid_save_is_not_taken_for_an_avatar(
    room_runtime, catalog, tmp_path
):
    catalog.user_dir.mkdir(parents=True, exist_ok=True)
    (catalog.user_dir / ".nova.k2j3h4.toml").write_text("name = 'half writ")  # older saves
    (catalog.user_dir / ".nova.k2j3h4.tmp").write_text("name = 'half writ")
    assert catalog.ids() == ["captain", "lumina"]
    app = create_app(room_runtime, greet=False, accounts=AccountStore(tmp_path / "a.sqlite3"))
    with TestClient(app, base_url=LOCAL) as client:  # the room starts
        sign_up(client)
        assert [a["id"] for a in client.get("/api/avatars").json()] == ["captain", "lumina"]
