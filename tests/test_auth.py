"""Accounts, sign-in cookies, the room passcode and rate limits; the LAN and HTTPS options."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from testkit.net import LOCAL
from tests.accounts import PASSWORD, sign_up
from web.accounts import AccountError, AccountStore, check_password, hash_password
from web.app import create_app
from web.auth import COOKIE, AttemptLimiter, RoomOptions


@pytest.fixture
def accounts(tmp_path) -> AccountStore:
    return AccountStore(tmp_path / "accounts.sqlite3", ttl=3600)


@pytest.fixture
def room_client(runtime, accounts: AccountStore):
    """Makes a client of a room with these ``RoomOptions``."""

    def make(**room) -> TestClient:
        app = create_app(
            runtime, ["lumina"], greet=False, room=RoomOptions(**room), accounts=accounts
        )
        return TestClient(
            app, base_url="https://localhost" if room.get("https") else "http://localhost"
        )

    return make


# ---------- passwords and sign-ins ----------


def test_passwords_are_salted_scrypt_hashes():
    first, second = hash_password("open sesame"), hash_password("open sesame")
    assert first != second and first.startswith("scrypt$") and "open sesame" not in first
    assert check_password("open sesame", first) and check_password("open sesame", second)
    assert not check_password("open sesame!", first)
    assert not check_password("x", "not-a-hash") and not check_password("x", "md5$1$2$3$4$5")


def test_names_are_unique_regardless_of_case(accounts):
    sam = accounts.sign_up("Sam", PASSWORD)
    with pytest.raises(AccountError, match="taken"):
        accounts.sign_up("sam", PASSWORD)
    assert accounts.authenticate("SAM", PASSWORD) == sam
    assert accounts.authenticate("sam", "wrong password") is None
    assert accounts.authenticate("nobody", PASSWORD) is None


@pytest.mark.parametrize(
    ("name", "password", "why"),
    [("x", PASSWORD, "user name"), ("has space", PASSWORD, "user name"), ("sam", "short", "8")],
)
def test_bad_sign_ups_say_what_to_change(accounts, name, password, why):
    with pytest.raises(AccountError, match=why):
        accounts.sign_up(name, password)


def test_only_a_hash_of_the_token_is_stored_and_tokens_expire(accounts, tmp_path):
    user = accounts.sign_up("priya", PASSWORD)
    token = accounts.sign_in(user)
    assert accounts.user_for(token) == user
    dump = "\n".join(sqlite3.connect(tmp_path / "accounts.sqlite3").iterdump())
    assert token not in dump and PASSWORD not in dump
    accounts.expire(token)
    assert accounts.user_for(token) is None
    again = accounts.sign_in(user)
    accounts.sign_out(again)
    assert accounts.user_for(again) is None and accounts.user_for(None) is None


def test_a_second_process_sees_the_same_accounts(accounts, tmp_path):
    user = accounts.sign_up("ana", PASSWORD)
    token = accounts.sign_in(user)
    other = AccountStore(tmp_path / "accounts.sqlite3")
    assert other.user_for(token) == user
    with pytest.raises(AccountError):
        other.sign_up("ANA", PASSWORD)


def test_attempt_limiter_counts_first_and_forgets_old_attempts():
    limiter = AttemptLimiter(limit=2, window=0.2)
    assert limiter.attempt("ip:1") == 0 and limiter.attempt("ip:1") == 0
    assert 0 < limiter.attempt("ip:1") <= 0.2  # the third is refused before it is tried
    limiter.succeeded("ip:2")  # nothing to take back: no error
    time.sleep(0.25)
    assert limiter.attempt("ip:1") == 0
    limiter.succeeded("ip:1")  # a right answer does not count
    assert limiter.attempt("ip:1") == 0 and limiter.attempt("ip:1") == 0


# ---------- the API ----------


def test_sign_up_sets_a_strict_http_only_cookie_and_signs_in(room_client):
    client = room_client()
    assert client.get("/api/me").status_code == 401
    resp = client.post("/api/signup", json={"username": "sam", "password": PASSWORD})
    assert resp.status_code == 201
    cookie = resp.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http on localhost; see the HTTPS test
    assert client.get("/api/me").json()["username"] == "sam"
    assert client.get("/api/room").json()["user"]["username"] == "sam"

    assert client.post("/api/logout").status_code == 200
    assert client.get("/api/me").status_code == 401
    assert client.post("/api/login", json={"username": "sam", "password": PASSWORD}).is_success
    assert client.get("/api/me").status_code == 200


def test_over_https_the_cookie_is_secure(room_client):
    client = room_client(https=True)
    resp = client.post("/api/signup", json={"username": "sam", "password": PASSWORD})
    assert "secure" in resp.headers["set-cookie"].lower()


def test_everything_but_signing_in_needs_a_signed_in_person(room_client):
    client = room_client()
    for method, url in [
        ("GET", "/api/avatars"),
        ("GET", "/api/me"),
        ("GET", "/api/memory?avatar=lumina"),
        ("POST", "/api/memory/forget"),
        ("POST", "/api/offer"),
        ("PATCH", "/api/offer"),
    ]:
        body = {"sdp": "v=0", "type": "offer"} if url == "/api/offer" else None
        resp = client.request(method, url, json=body)
        assert resp.status_code == 401, (method, url, resp.status_code)
        assert "sign in" in resp.json()["detail"].lower()
    client.cookies.set(COOKIE, "forged")
    assert client.get("/api/avatars").status_code == 401


def test_nobody_can_patch_another_persons_peer_connection(room_client):
    client = room_client()
    sign_up(client)
    patch = {"pc_id": "someone-elses", "candidates": []}
    assert client.patch("/api/offer", json=patch).status_code == 404


def test_concurrent_wrong_passwords_meet_the_limit_before_they_are_checked(room_client):
    client = room_client(max_failures=5)
    sign_up(client, "sam")
    wrong = {"username": "sam", "password": "not the password"}
    with ThreadPoolExecutor(12) as pool:
        codes = list(
            pool.map(lambda _: client.post("/api/login", json=wrong).status_code, range(12))
        )
    assert sorted(codes) == [401] * 5 + [429] * 7


def test_guesses_at_a_name_do_not_lock_its_owner_out(runtime, accounts):
    app = create_app(
        runtime, ["lumina"], greet=False, accounts=accounts, room=RoomOptions(max_failures=3)
    )
    # The attacker and the owner come from different addresses.
    attacker = TestClient(app, base_url=LOCAL, client=("10.0.0.66", 50000))
    owner = TestClient(app, base_url=LOCAL, client=("10.0.0.7", 50000))
    sign_up(owner, "sam")
    wrong = {"username": "sam", "password": "guess"}
    codes = [attacker.post("/api/login", json=wrong).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    right = owner.post("/api/login", json={"username": "sam", "password": PASSWORD})
    assert right.status_code == 200
    # One address trying many names is slowed too: 4 x 3 attempts over all names.
    codes = [
        attacker.post("/api/login", json={"username": f"n{i}", "password": "x"}).status_code
        for i in range(10)
    ]
    assert codes == [401] * 9 + [429]


def test_wrong_passwords_are_rate_limited(room_client):
    client = room_client(max_failures=3)
    sign_up(client, "sam")
    wrong = {"username": "sam", "password": "not the password"}
    for _ in range(3):
        assert client.post("/api/login", json=wrong).status_code == 401
    limited = client.post("/api/login", json={"username": "sam", "password": PASSWORD})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert "try again" in limited.json()["detail"].lower()


def test_on_the_lan_sign_up_needs_the_room_passcode(room_client):
    client = room_client(lan=True, passcode="blue-42", urls=["https://192.168.1.20:7860/"])
    room = client.get("/api/room").json()
    assert room["passcode_required"] and room["lan"] and room["user"] is None
    form = {"username": "ana", "password": PASSWORD}
    refused = client.post("/api/signup", json={**form, "passcode": "guess"})
    assert refused.status_code == 403 and "passcode" in refused.json()["detail"]
    assert client.post("/api/signup", json={**form, "passcode": "blue-42"}).status_code == 201
    assert client.get("/api/room").json()["urls"] == ["https://192.168.1.20:7860/"]


def test_wrong_passcodes_are_rate_limited_too(room_client):
    client = room_client(lan=True, passcode="blue-42", max_failures=2)
    form = {"username": "ana", "password": PASSWORD, "passcode": "guess"}
    assert [client.post("/api/signup", json=form).status_code for _ in range(3)] == [403, 403, 429]


# ---------- python -m web: LAN and HTTPS ----------


def test_listening_beyond_this_machine_needs_lan(capsys):
    from web.__main__ import main

    assert main(["--host", "0.0.0.0"]) == 2
    assert "--lan" in capsys.readouterr().err


def test_the_lan_without_https_is_refused_unless_asked_for_on_purpose(capsys):
    from web.__main__ import main

    assert main(["--lan"]) == 2
    err = capsys.readouterr().err
    assert "--https" in err and "--insecure-lan" in err


def test_the_self_signed_certificate_names_the_lan_address(tmp_path):
    from cryptography import x509

    from web.tls import self_signed_cert

    cert_path, key_path = self_signed_cert(tmp_path, ["192.168.1.20"])
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"127.0.0.1", "192.168.1.20"} <= {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert key_path.stat().st_mode & 0o077 == 0  # the key is readable by its owner only
    made = cert_path.stat().st_mtime_ns
    assert self_signed_cert(tmp_path, ["192.168.1.20"])[0].stat().st_mtime_ns == made  # reused
    self_signed_cert(tmp_path, ["10.0.0.7"])  # a new address: made again, naming it
    again = x509.load_pem_x509_certificate(cert_path.read_bytes())
    ips = again.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.0.0.7" in {str(ip) for ip in ips.get_values_for_type(x509.IPAddress)}
