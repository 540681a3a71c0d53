"""Signing up in tests: every API call and voice session belongs to a signed-in account."""

from __future__ import annotations

import uuid

PASSWORD = "correct horse battery"


def sign_up(client, username: str | None = None, passcode: str = "") -> dict:
    """Create a fresh account through the API; ``client`` (TestClient / httpx) keeps the cookie.

    Returns the user (``{"id", "username"}``).
    """
    username = username or f"tester-{uuid.uuid4().hex[:8]}"
    resp = client.post(
        "/api/signup", json={"username": username, "password": PASSWORD, "passcode": passcode}
    )
    assert resp.status_code == 201, resp.text
    return resp.json()
