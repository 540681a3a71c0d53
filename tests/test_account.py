"""Your account: a new password ends the other sign-ins, "sign out everywhere" ends all, and
deleting the account takes the memories, the avatars you made and the account itself, after
the password is asked again. Through the real app, account store, memory and avatar files."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from testkit.net import LOCAL
from tests.accounts import PASSWORD, sign_up
from tests.test_avatar_editor import NOVA
from web.accounts import AccountStore
from web.app import create_app

NEW_PASSWORD = "a much longer passphrase"


@pytest.fixture
def room(make_runtime, tmp_path):
    runtime = make_runtime(avatars_dir=tmp_path / "avatars", data_dir=tmp_path / "data")
    app = create_app(
        runtime, ["lumina"], greet=False, accounts=AccountStore(tmp_path / "a.sqlite3")
    )

    def device() -> TestClient:
        return TestClient(app, base_url=LOCAL)

    return runtime, device


def log_in(client: TestClient, username: str, password: str) -> int:
    return client.post("/api/login", json={"username": username, "password": password}).status_code


def test_a_new_password_signs_out_every_other_device(room):
    _, device = room
    laptop, phone = device(), device()
    sam = sign_up(laptop)["username"]
    assert log_in(phone, sam, PASSWORD) == 200
    change = {"current": "wrong guess", "new": NEW_PASSWORD}
    assert laptop.post("/api/account/password", json=change).status_code == 403
    short = laptop.post("/api/account/password", json={"current": PASSWORD, "new": "short"})
    assert short.status_code == 400 and "at least" in short.json()["detail"]

    changed = laptop.post("/api/account/password", json={"current": PASSWORD, "new": NEW_PASSWORD})
    assert changed.status_code == 200
    assert laptop.get("/api/me").status_code == 200  # the device it was changed on
    assert phone.get("/api/me").status_code == 401  # maybe the reason for the change
    assert log_in(device(), sam, PASSWORD) == 401
    assert log_in(device(), sam, NEW_PASSWORD) == 200


def test_signing_out_everywhere_ends_every_sign_in(room):
    _, device = room
    laptop, phone = device(), device()
    sam = sign_up(laptop)["username"]
    assert log_in(phone, sam, PASSWORD) == 200
    assert laptop.post("/api/account/sign-out-everywhere").json()["signed_out"] == 2
    assert laptop.get("/api/me").status_code == 401 and phone.get("/api/me").status_code == 401


def test_deleting_an_account_takes_its_memories_avatars_and_the_account_only(room):
    runtime, device = room
    sam, ana = device(), device()
    sam_user, ana_id = sign_up(sam), sign_up(ana)["id"]
    sam_id = sam_user["id"]
    assert sam.post("/api/avatars", json=NOVA).status_code == 201
    store = runtime.memory
    assert store is not None
    for who in (sam_id, ana_id):
        store.upsert_card(user_id=who, text=f"{who} has a dog called Biscuit.", scope="user")
    nova_file = runtime.avatars.user_dir / "nova.toml"
    assert nova_file.exists()

    refused = sam.post("/api/account/delete", json={"password": "not it"})
    assert refused.status_code == 403 and "nothing was deleted" in refused.json()["detail"]
    assert store.count(sam_id)["cards"] == 1 and nova_file.exists()

    gone = sam.post("/api/account/delete", json={"password": PASSWORD})
    assert gone.status_code == 204
    assert store.count(sam_id) == {"turns": 0, "chunks": 0, "cards": 0}
    assert not nova_file.exists()
    assert sam.get("/api/me").status_code == 401
    assert log_in(device(), sam_user["username"], PASSWORD) == 401  # no such account now
    # Ana keeps everything; her lobby no longer offers Sam's avatar.
    assert store.count(ana_id)["cards"] == 1
    assert [a["id"] for a in ana.get("/api/avatars").json()] == ["lumina"]
