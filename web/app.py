"""The FastAPI app that serves avatars to browsers.

Pages (``web/static``; plain JS modules, nothing loaded from outside):
    GET  /login            sign up (with the room passcode on a LAN) or sign in
    GET  /                 the lobby: avatars, who is here, health of each part
    GET  /talk?avatar=ID   the talk page
    GET  /memory           what each avatar remembers about you, and deleting it
    GET  /avatars/edit     the avatar editor (?avatar=ID to edit, ?from=ID to copy)

API (everything but /api/room, /api/signup, /api/login needs a signed-in person):
    /api/room, /api/signup, /api/login, /api/logout, /api/me   (``web.auth``)
    /api/account/...       password change, sign out everywhere, delete (``web.account_api``)
    /api/memory/...        the memory REST API (``web.memory_api``)
    /api/avatars/..., /api/voices/..., /api/llm/models   avatars and their editor
                           (``web.avatars_api``)
    /api/avatars/{id}/vrm  an avatar's own VRM model: upload, download, remove (``web.vrm_api``)
    GET  /api/health       LLM, STT, TTS and memory status, with what to do when one is down
    GET  /api/stats        live sessions, peer connections, tasks, RSS and event-loop lag
                           (``?collect=1``: also sessions still in memory, after a GC)
    POST /api/offer        SmallWebRTC signaling (Pipecat-compatible), one session per offer;
                           429 beyond your own call limit, 503 when the room is full
                           (``web.admission``)
    PATCH /api/offer       trickle ICE candidates (only for your own peer connections)
    POST /api/hangup       end one of your calls now (the page sends it when its tab closes)
    WS   /ws?avatar=ID     the same session over a WebSocket (Pipecat protobuf frames)

The signed-in account is who the voice session is for: its id keys the session's memories.
"""

from __future__ import annotations

import asyncio
import functools
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Cookie, FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from loguru import logger
from pydantic import BaseModel, Field, ValidationError

from bots.capacity import room_capacity
from bots.config import AvatarCatalog, AvatarConfig, AvatarConfigError
from bots.runtime import Runtime
from bots.warmup import warm_llm, warm_up_models
from transports.webrtc import (
    MAX_CANDIDATES_PER_PATCH,
    OfferError,
    check_candidate,
    check_offer,
)
from web.account_api import account_router
from web.accounts import AccountStore
from web.admission import Admission, Refused, Seat
from web.auth import (
    COOKIE,
    RoomOptions,
    SignedIn,
    auth_router,
    cookie_setter,
    websocket_user,
)
from web.avatars_api import avatars_router
from web.calls import CallError, CallRequest, Calls, IceCandidateBody, LocalCalls, OfferBody
from web.guards import install_guards, without_paths
from web.health import health_report
from web.memory_api import memory_router
from web.vrm_api import vrm_router
from web.workers import WorkerPool

STATIC = Path(__file__).parent / "static"


class ErrorDetail(BaseModel):
    """Every error answer: ``detail`` says what went wrong and what to do.

    ``detail`` is a list of field errors for a request that does not fit its schema; the
    avatar editor adds ``errors``.
    """

    detail: Any
    errors: list[dict[str, str]] | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorDetail, "description": why}
    for code, why in {
        400: "a request the room cannot use (a bad offer, a foreign Host)",
        401: "not signed in",
        403: "not yours, or not from the room's own page",
        404: "no such thing (of yours)",
        409: "in use, or taken",
        413: "request body over the route's limit",
        415: "not the kind of file the route takes (a VRM model upload)",
        422: "a field is missing or wrong",
        429: "too many attempts or calls; see Retry-After",
        503: "the room is full, or a part a call needs is down",
    }.items()
}
"""Documented on every route, so the schema says what answers can come (and the fuzz test,
``tests/test_api_fuzz.py``, holds every answer to it)."""


class PatchBody(BaseModel):
    """Trickle ICE: candidates for an existing peer connection (a handful at a time)."""

    pc_id: str = Field(min_length=1, max_length=200)
    candidates: list[IceCandidateBody] = Field(max_length=MAX_CANDIDATES_PER_PATCH)


class HangupBody(BaseModel):
    """Which of your calls to end."""

    pc_id: str = Field(min_length=1, max_length=200)


def create_app(
    runtime: Runtime,
    avatars: list[str] | None = None,
    *,
    greet: bool = True,
    room: RoomOptions | None = None,
    accounts: AccountStore | None = None,
    login_check_secs: float | None = None,
    workers: int = 0,
    cluster: bool = False,
) -> FastAPI:
    """Build the app.

    Args:
        runtime: the process's runtime (settings, models, memory, LLM servers, avatars).
        avatars: the avatar ids to offer (all found when None); the first is the default.
        greet: whether avatars say their greeting when someone connects.
        room: how the room is exposed (LAN, passcode, HTTPS); default: this machine only.
        accounts: the account store (default: ``<data dir>/accounts.sqlite3``).
        login_check_secs: how often live calls are checked for an expired sign-in
            (default: ``AVATARS_LOGIN_CHECK_SECS``).
        workers: calls run on this many worker processes (``web.workers``); 0: on this
            process's own event loop (``web.calls.LocalCalls``).
        cluster: the workers are Ray actors on the cluster at ``AVATARS_RAY_ADDRESS``
            (``web.ray_workers``; ``workers`` 0: one per CPU of the cluster).
    """
    room = room or RoomOptions()
    settings = runtime.settings
    catalog = runtime.avatars
    accounts = accounts or AccountStore(
        settings.data_dir / "accounts.sqlite3", ttl=settings.login_hours * 3600
    )

    def offered() -> list[str]:
        # Read per request: avatars made in the browser editor join without a restart, and
        # are offered by every server (also `python -m bots <id>`) so people can call them.
        found = catalog.ids()
        named = [a for a in avatars if a in found] if avatars else found
        made = [a for a in accounts.avatar_owners() if a in found and a not in named]
        return named + sorted(made)

    for avatar_id in avatars or offered():
        catalog.load(avatar_id)  # fail at start-up, naming the bad field, not at first call
    still_valid = functools.partial(_still_valid, accounts)
    calls: Calls
    if cluster:
        from web.ray_workers import ray_worker_pool  # Ray is imported only when asked for

        calls = ray_worker_pool(settings, workers, greet=greet)
    elif workers:
        calls = WorkerPool(settings, workers, greet=greet)
    else:
        calls = LocalCalls(
            runtime, greet=greet, still_valid=still_valid, login_check_secs=login_check_secs
        )
    admission = Admission(room_capacity(settings), settings.calls_per_person)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        warm = None
        if not (workers or cluster):  # workers load and warm their own models
            # Load and warm every model before the first person connects, off the event loop.
            loaded = [catalog.load(a) for a in offered()]
            await asyncio.to_thread(warm_up_models, runtime, loaded)
            health = await asyncio.to_thread(runtime.llm.health)
            if not health["ok"]:
                logger.warning(health["fix"])
            # The LLM server may still be starting (make run starts both): warm it when up.
            warm = asyncio.create_task(warm_llm(runtime, loaded, 120.0))
        await calls.start()
        yield
        if warm:
            warm.cancel()
        await calls.stop()
        await runtime.close()

    app = FastAPI(
        title="Local avatars",
        lifespan=lifespan,
        responses=ERRORS,
        # The docs list every route to whoever asks: served only with --dev.
        docs_url="/docs" if room.dev else None,
        redoc_url="/redoc" if room.dev else None,
        openapi_url="/openapi.json" if room.dev else None,
    )
    install_guards(app, room.hosts)
    app.state.runtime = runtime
    app.state.calls = calls
    app.state.admission = admission
    app.state.accounts = accounts
    app.state.room = room
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(
        auth_router(
            accounts,
            room,
            on_sign_out=lambda token: calls.end_calls(
                "You signed out, so the call ended.", login=token
            ),
            present=calls.present,
        )
    )
    app.include_router(memory_router(runtime, offered, before_forget=calls.forget))
    app.include_router(account_router(runtime, accounts, calls, cookie_setter(accounts, room)))
    app.include_router(avatars_router(runtime, offered, accounts, calls))
    app.include_router(vrm_router(runtime, offered, accounts))

    def pick_avatar(requested: str | None) -> str:
        ids = offered()
        avatar_id = requested or ids[0]
        if avatar_id not in ids:
            raise HTTPException(404, f"no avatar {avatar_id!r} here (offered: {ids})")
        return avatar_id

    # Pages are static; each checks /api/me and sends a signed-out visitor to /login.
    for route, page in [
        ("/", "lobby.html"),
        ("/login", "login.html"),
        ("/talk", "talk.html"),
        ("/memory", "memory.html"),
        ("/avatars/edit", "editor.html"),
    ]:
        app.add_api_route(route, _page(STATIC / page), methods=["GET"], include_in_schema=False)

    def admit(user_id: str) -> Seat:
        try:
            return admission.admit(user_id)
        except Refused as e:
            logger.info(f"call refused ({e.status}): {e.message}")
            raise HTTPException(e.status, e.message, headers=e.headers()) from None

    @app.get("/api/health")
    async def health():
        report = await asyncio.to_thread(health_report, runtime, _loadable(catalog, offered()))
        placing = calls.health()
        ok = report["ok"] and placing.pop("calls_ok", True)  # no worker up: no call can start
        return {**report, **placing, "ok": ok, "room": admission.stats()}

    @app.get("/api/stats")
    async def stats(_user: SignedIn, collect: bool = Query(False)) -> dict:
        """What the calls hold: to check that ended calls leave nothing behind.

        ``collect=1`` also runs a garbage collection to count the sessions still in memory
        (``in_memory``): that stops every call for a moment, so only a room started with
        ``--dev`` does it (anyone signed in could otherwise stall every call at will).
        """
        if collect and not room.dev:
            raise HTTPException(403, "collect=1 pauses every call: start the room with --dev.")
        return {**await calls.stats(collect), "admitted": admission.stats()}

    @app.post("/api/offer")
    async def offer(
        body: OfferBody,
        user: SignedIn,
        request: Request,
        avatar: str | None = Query(None),
        login: str | None = Cookie(None, alias=COOKIE),
    ):
        avatar_id = pick_avatar(avatar or (body.request_data or {}).get("avatar"))
        owner = calls.owner(body.pc_id) if body.pc_id else None
        if owner is not None and owner != user.id:
            raise HTTPException(404, "no such peer connection of yours")
        # A new call takes its seat before the first await, so a burst is counted exactly;
        # a renegotiation of a live call already has one.
        seat = None
        if owner is None:
            try:
                # A bad offer is a 400, not a seat taken.
                check_offer(body.sdp, body.type, request.client.host if request.client else None)
            except OfferError as e:
                raise HTTPException(400, f"Could not accept the WebRTC offer: {e}.") from None
            seat = admit(user.id)
        call = CallRequest(avatar_id, user.id, user.username, login, seat)
        try:
            return await calls.offer(body.request(), call)
        except CallError as e:
            raise HTTPException(e.status, e.message) from None
        finally:
            if seat and not seat.in_call:  # a started call gives it back when it ends
                seat.release()

    @app.patch("/api/offer")
    async def ice_candidate(body: PatchBody, user: SignedIn, request: Request):
        if calls.owner(body.pc_id) != user.id:
            raise HTTPException(404, "no such peer connection of yours")
        for c in body.candidates:
            if c.candidate:  # "": the end of candidates
                try:
                    check_candidate(c.candidate, request.client.host if request.client else None)
                except OfferError as e:
                    raise HTTPException(422, f"Could not take that ICE candidate: {e}.") from None
        candidates = [c.candidate_of() for c in body.candidates if c.candidate]
        try:
            await calls.patch(body.pc_id, candidates)
        except CallError as e:
            raise HTTPException(e.status, e.message) from None
        return {"status": "ok"}

    @app.post("/api/hangup")
    async def hangup(request: Request, user: SignedIn):
        # The page sends this with navigator.sendBeacon as its tab closes: a text/plain body
        # (a beacon can't set JSON's content type without a preflight), parsed here.
        try:
            body = HangupBody.model_validate_json(await request.body())
        except ValidationError as e:
            why = e.errors()[0]["msg"]
            raise HTTPException(422, f'expected {{"pc_id": "..."}}: {why}') from None
        # Idempotent: a page may hang up a call the server has just ended (it races the
        # beacon), and someone else's call id is answered as if it were unknown.
        if calls.owner(body.pc_id) != user.id:
            return {"status": "not live"}
        try:
            await calls.hangup(body.pc_id)
        except CallError as e:
            if e.status != 404:  # it ended meanwhile: what was asked for
                raise HTTPException(e.status, e.message) from None
        return {"status": "ended"}

    @app.get("/api/calls/{pc_id}")
    async def call_state(pc_id: str, user: SignedIn):
        """Whether one of your calls is live, and why it ended if the server ended it."""
        if calls.owner(pc_id) == user.id:
            return {"live": True, "ended": None}
        return {"live": False, "ended": calls.ended(pc_id)}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, avatar: str | None = Query(None)):
        user = websocket_user(websocket)
        await websocket.accept()
        if user is None:
            await websocket.close(code=4401, reason="Sign in first (or your sign-in expired).")
            return
        try:
            seat = admit(user.id)
        except HTTPException as e:  # 1013: try again later
            await websocket.close(code=1013, reason=str(e.detail)[:120])
            return
        try:
            avatar_id = pick_avatar(avatar)
            call = CallRequest(
                avatar_id, user.id, user.username, websocket.cookies.get(COOKIE), seat
            )
            await calls.websocket(websocket, call)
        except (HTTPException, CallError) as e:
            detail = e.detail if isinstance(e, HTTPException) else e.message
            await websocket.close(code=1011, reason=str(detail)[:120])
        finally:
            seat.release()

    @app.exception_handler(AvatarConfigError)
    async def avatar_error(_request, exc: AvatarConfigError):
        return JSONResponse({"detail": without_paths(str(exc))}, status_code=422)

    return app


def _still_valid(accounts: AccountStore, login: str) -> bool:
    return accounts.user_for(login) is not None


def _loadable(catalog: AvatarCatalog, avatar_ids: list[str]) -> list[AvatarConfig]:
    """The avatars whose files are valid (a broken one is reported by /api/avatars)."""
    out = []
    for avatar_id in avatar_ids:
        try:
            out.append(catalog.load(avatar_id))
        except AvatarConfigError:
            continue
    return out


def _page(path: Path):
    async def serve() -> FileResponse:
        return FileResponse(path)

    return serve
