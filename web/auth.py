"""Sign-up, sign-in and sign-out for the room, and who is asking.

Routes (JSON):
    GET  /api/room      whether a passcode is needed, the URLs to share, who is signed in
    POST /api/signup    {username, password, passcode?} -> signed in (cookie set)
    POST /api/login     {username, password} -> signed in (cookie set)
    POST /api/logout    ends this sign-in (and, after their current turn, its calls)
    GET  /api/me        the signed-in user, or 401

The cookie is HTTP-only (page scripts cannot read it), ``SameSite=Strict`` (no other site can
make the browser send it, which also rules out cross-site request forgery), and ``Secure`` when
the room is served over HTTPS. Failed sign-ins and wrong passcodes are rate limited per client
address and per user name.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, WebSocket
from pydantic import BaseModel, Field

from web.accounts import AccountError, AccountStore, User
from web.guards import LOOPBACK_HOSTS

COOKIE = "avatars_login"


class RoomOptions(BaseModel):
    """How the room is exposed; set by ``python -m web`` (``--lan``, ``--https``)."""

    lan: bool = False
    """Listening beyond this machine: a passcode is then required before sign-up."""
    passcode: str | None = None
    https: bool = False
    urls: list[str] = Field(default_factory=list)
    """Addresses testers should open (shown in the lobby)."""
    hosts: list[str] = Field(default_factory=lambda: list(LOOPBACK_HOSTS))
    """Host names the room answers to (``web.guards``): loopback, plus the LAN's under --lan."""
    dev: bool = False
    """Serve the API docs (/docs, /redoc, /openapi.json); off unless ``--dev``."""
    max_failures: int = Field(default=5, ge=1)
    """Failed sign-ins allowed per address and name in ``window_secs`` (four times as many per
    address over all names), and wrong passcodes per address."""
    window_secs: float = Field(default=300.0, gt=0)

    @property
    def passcode_required(self) -> bool:
        """Whether sign-up asks for the room passcode."""
        return bool(self.passcode)


class Credentials(BaseModel):
    """A sign-in form."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SignUp(Credentials):
    """A sign-up form."""

    passcode: str = Field(default="", max_length=256)


class AttemptLimiter:
    """At most ``limit`` attempts per key in a sliding ``window`` (seconds), counted up front.

    An attempt is counted *before* the password is hashed (:meth:`attempt`), so twelve wrong
    guesses sent at once meet the limit at the sixth, not after all twelve were evaluated.
    A successful attempt is taken back (:meth:`succeeded`).
    """

    def __init__(self, limit: int, window: float):
        self.limit = limit
        self.window = window
        self._attempts: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        recent = self._attempts.setdefault(key, deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        return recent

    def attempt(self, *keys: str) -> float:
        """Count one attempt against every key, or refuse: seconds to wait (0: go ahead).

        Check and count are one step with no ``await`` between them, so concurrent requests
        on the event loop cannot all pass the check before any is counted.
        """
        now = time.monotonic()
        waits = [
            recent[0] + self.window - now
            for key in keys
            if len(recent := self._recent(key, now)) >= self.limit
        ]
        if waits:
            return max(waits)
        for key in keys:
            self._attempts[key].append(now)
        return 0.0

    def succeeded(self, *keys: str) -> None:
        """The attempt just counted was right: it does not count against anyone."""
        for key in keys:
            recent = self._attempts.get(key)
            if recent:
                recent.pop()
            if not recent:
                self._attempts.pop(key, None)


def _client(request: Request | WebSocket) -> str:
    return request.client.host if request.client else "?"


def signed_in_user(request: Request) -> User:
    """FastAPI dependency: the signed-in user, or 401 saying what to do."""
    user = request.app.state.accounts.user_for(request.cookies.get(COOKIE))
    if user is None:
        raise HTTPException(401, "You are not signed in (or your sign-in expired): sign in again.")
    return user


SignedIn = Annotated[User, Depends(signed_in_user)]
"""A route parameter of this type is the signed-in user (401 otherwise)."""


def websocket_user(websocket: WebSocket) -> User | None:
    """The signed-in user behind a WebSocket upgrade.

    An upgrade from another site never gets here: ``web.guards.HostAndOrigin`` refuses it
    (WebSockets have no CORS, and browsers send cookies with them).
    """
    return websocket.app.state.accounts.user_for(websocket.cookies.get(COOKIE))


def cookie_setter(accounts: AccountStore, room: RoomOptions) -> Callable[[Response, str], None]:
    """What puts a sign-in token on a response: HTTP-only, SameSite=Strict, Secure on HTTPS."""

    def set_cookie(response: Response, token: str) -> None:
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(accounts.ttl),
            httponly=True,
            samesite="strict",
            secure=room.https,
            path="/",
        )

    return set_cookie


def auth_router(
    accounts: AccountStore,
    room: RoomOptions,
    *,
    on_sign_out: Callable[[str], None] = lambda _token: None,
    present: Callable[[], list[dict]] = list,
) -> APIRouter:
    """The sign-in routes.

    Args:
        accounts: where users and sign-ins live.
        room: how the room is exposed (passcode, HTTPS, URLs).
        on_sign_out: called with the token of a sign-in that ended (to end its calls).
        present: who is in the room right now (for the lobby).
    """
    router = APIRouter(prefix="/api")
    limiter = AttemptLimiter(room.max_failures, room.window_secs)
    address_limiter = AttemptLimiter(room.max_failures * 4, room.window_secs)

    set_cookie = cookie_setter(accounts, room)

    def count_attempt(key: str, address: str | None = None) -> None:
        """Count an attempt on ``key`` (and on the ``address``) before any hashing, or 429."""
        wait = limiter.attempt(key)
        if not wait and address is not None:
            wait = address_limiter.attempt(address)
            if wait:
                limiter.succeeded(key)  # refused: not an attempt after all
        if wait > 0:
            raise HTTPException(
                429,
                f"Too many failed attempts. Try again in {int(wait) + 1} s.",
                headers={"Retry-After": str(int(wait) + 1)},
            )

    @router.get("/room")
    async def room_info(request: Request) -> dict:
        user = accounts.user_for(request.cookies.get(COOKIE))
        return {
            "passcode_required": room.passcode_required,
            "lan": room.lan,
            "https": room.https,
            "urls": room.urls,
            "user": {"id": user.id, "username": user.username} if user else None,
            "present": present() if user else [],
        }

    @router.post("/signup", status_code=201)
    async def sign_up(form: SignUp, request: Request, response: Response) -> dict:
        client = f"ip:{_client(request)}"
        if room.passcode_required:
            count_attempt(client)
            if not secrets.compare_digest(form.passcode.encode(), (room.passcode or "").encode()):
                raise HTTPException(403, "That is not the room passcode. Ask the room's host.")
            limiter.succeeded(client)
        try:
            user = await asyncio.to_thread(accounts.sign_up, form.username, form.password)
        except AccountError as e:
            raise HTTPException(400, str(e)) from None
        set_cookie(response, accounts.sign_in(user))
        return {"id": user.id, "username": user.username}

    @router.post("/login")
    async def log_in(form: Credentials, request: Request, response: Response) -> dict:
        # Per address and name together: guesses at someone's name from one address slow
        # that address down, not the owner signing in from theirs. Per address alone too
        # (with room for a few typos on each of several names): one address spraying names.
        address = f"ip:{_client(request)}"
        pair = f"{address}/name:{form.username.strip().casefold()}"
        count_attempt(pair, address)
        user = await asyncio.to_thread(accounts.authenticate, form.username, form.password)
        if user is None:
            raise HTTPException(401, "Wrong user name or password.")
        limiter.succeeded(pair)
        address_limiter.succeeded(address)
        set_cookie(response, accounts.sign_in(user))
        return {"id": user.id, "username": user.username}

    @router.post("/logout")
    async def log_out(request: Request, response: Response) -> dict:
        token = request.cookies.get(COOKIE)
        if token:
            accounts.sign_out(token)
            on_sign_out(token)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return {"ok": True}

    @router.get("/me")
    async def me(request: Request) -> dict:
        user = signed_in_user(request)
        return {"id": user.id, "username": user.username}

    return router
