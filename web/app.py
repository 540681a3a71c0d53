"""The FastAPI app that serves avatars to browsers.

Pages (``web/static``; plain JS modules, nothing loaded from outside):
    GET  /login            sign up (with the room passcode on a LAN) or sign in
    GET  /                 the lobby: avatars, who is here, health of each part
    GET  /talk?avatar=ID   the talk page
    GET  /memory           what each avatar remembers about you, and deleting it
    GET  /avatars/edit     the avatar editor (?avatar=ID to edit, ?from=ID to copy)

API (everything but /api/room, /api/signup, /api/login needs a signed-in person):
    /api/room, /api/signup, /api/login, /api/logout, /api/me   (``web.auth``)
    /api/memory/...        the memory REST API (``web.memory_api``)
    /api/avatars/..., /api/voices/..., /api/llm/models   avatars and their editor
                           (``web.avatars_api``)
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
from typing import Any, cast

from fastapi import Cookie, FastAPI, HTTPException, Query, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from loguru import logger
from pipecat.transports.smallwebrtc.request_handler import (
    IceCandidate,
    SmallWebRTCPatchRequest,
    SmallWebRTCRequest,
)
from pydantic import BaseModel, Field, ValidationError

from bots.capacity import room_capacity
from bots.config import AvatarCatalog, AvatarConfig, AvatarConfigError
from bots.llm_backend import LLMBackend, LLMUnavailableError
from bots.models import ModelMissingError
from bots.runtime import Runtime
from bots.sessions import SessionManager
from bots.warmup import warm_llm, warm_up_models
from transports.webrtc import (
    OfferError,
    Signaling,
    check_offer,
    watch_peer,
    webrtc_transport,
)
from transports.websocket import websocket_transport
from web.accounts import AccountStore
from web.admission import Admission, Refused, Seat
from web.auth import COOKIE, RoomOptions, SignedIn, auth_router, websocket_user
from web.avatars_api import avatars_router
from web.health import health_report
from web.loop_lag import LoopLagMonitor
from web.memory_api import memory_router

STATIC = Path(__file__).parent / "static"


class OfferBody(BaseModel):
    """A WebRTC offer, as Pipecat clients send it."""

    sdp: str = Field(min_length=1)
    type: str = Field(pattern="^(offer|answer)$")
    pc_id: str | None = None
    restart_pc: bool | None = None
    request_data: dict[str, Any] | None = None


class IceCandidateBody(BaseModel):
    """One trickled ICE candidate."""

    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None


class PatchBody(BaseModel):
    """Trickle ICE: candidates for an existing peer connection."""

    pc_id: str
    candidates: list[IceCandidateBody]


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
    sessions = SessionManager(runtime, greet=greet)
    lag = LoopLagMonitor()
    webrtc = Signaling()
    admission = Admission(room_capacity(settings), settings.calls_per_person)
    peer_owners: dict[str, str] = {}  # pc_id -> user id, so nobody patches another's call

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        # Load and warm every model before the first person connects, off the event loop.
        avatars = [catalog.load(a) for a in offered()]
        await asyncio.to_thread(warm_up_models, runtime, avatars)
        health = await asyncio.to_thread(runtime.llm.health)
        if not health["ok"]:
            logger.warning(health["fix"])
        # The LLM server may still be starting (make run starts both): warm it when it is up.
        warm = asyncio.create_task(warm_llm(runtime, avatars, 120.0))
        watch = asyncio.create_task(
            sessions.watch_logins(
                lambda t: accounts.user_for(t) is not None,
                login_check_secs or settings.login_check_secs,
            )
        )
        lag_task = asyncio.create_task(lag.run())
        yield
        warm.cancel()
        watch.cancel()
        lag_task.cancel()
        await sessions.stop_all()
        await webrtc.close()

    app = FastAPI(title="Local avatars", lifespan=lifespan)
    app.state.runtime = runtime
    app.state.sessions = sessions
    app.state.admission = admission
    app.state.accounts = accounts
    app.state.room = room
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(
        auth_router(
            accounts,
            room,
            on_sign_out=lambda token: sessions.end_calls(
                "You signed out, so the call ended.", login=token
            ),
            present=sessions.present,
        )
    )
    app.include_router(memory_router(runtime, offered, before_forget=sessions.forget))
    app.include_router(avatars_router(runtime, offered, accounts, sessions))

    def pick_avatar(requested: str | None) -> str:
        ids = offered()
        avatar_id = requested or ids[0]
        if avatar_id not in ids:
            raise HTTPException(404, f"no avatar {avatar_id!r} here (offered: {ids})")
        return avatar_id

    async def prepare(avatar_id: str) -> tuple[AvatarConfig, LLMBackend]:
        try:
            return await sessions.prepare(avatar_id)
        except LLMUnavailableError as e:
            raise HTTPException(503, str(e)) from None
        except (AvatarConfigError, ModelMissingError) as e:
            raise HTTPException(500, str(e)) from None

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

    def hold_until_done(seat: Seat, task: asyncio.Task) -> None:
        seat.in_call = True
        task.add_done_callback(lambda _t: seat.release())

    @app.get("/api/health")
    async def health():
        report = await asyncio.to_thread(health_report, runtime, _loadable(catalog, offered()))
        return {**report, "sessions": len(sessions.active), "room": admission.stats()}

    @app.get("/api/stats")
    async def stats(_user: SignedIn, collect: bool = Query(False)) -> dict:
        """What this process holds: to check that ended calls leave nothing behind.

        ``collect=1`` also runs a garbage collection to count the sessions still in memory
        (``in_memory``): that stops every call for a moment, so a sampler leaves it off.
        """
        return {
            "sessions": len(sessions.active),
            "finishing": len(sessions.finishing),
            "in_memory": sessions.alive() if collect else None,
            "peer_connections": webrtc.count(),
            "peer_owners": len(peer_owners),
            "admitted": admission.stats(),
            "tasks": len(asyncio.all_tasks()),
            "rss_mb": _rss_mb(),
            "loop_lag": lag.stats(),
            "audio_in_backlog_ms": _audio_in_backlog_ms(webrtc),
        }

    @app.post("/api/offer")
    async def offer(
        body: OfferBody,
        user: SignedIn,
        avatar: str | None = Query(None),
        login: str | None = Cookie(None, alias=COOKIE),
    ):
        avatar_id = pick_avatar(avatar or (body.request_data or {}).get("avatar"))
        if body.pc_id and peer_owners.get(body.pc_id, user.id) != user.id:
            raise HTTPException(404, "no such peer connection of yours")
        # A new call takes its seat before the first await, so a burst is counted exactly;
        # a renegotiation of a live call already has one.
        renegotiation = bool(body.pc_id and webrtc.connection(body.pc_id))
        if not renegotiation:
            try:
                check_offer(body.sdp, body.type)  # a bad offer is a 400, not a seat taken
            except OfferError as e:
                raise HTTPException(400, f"Could not accept the WebRTC offer: {e}.") from None
        seat = None if renegotiation else admit(user.id)
        try:
            return await answer_offer(body, user, avatar_id, login, seat)
        except BaseException:
            if seat and not seat.in_call:  # a started call gives it back when it ends
                seat.release()
            raise

    async def answer_offer(body: OfferBody, user, avatar_id: str, login, seat: Seat | None):
        # Check that a session can start before answering, so a missing LLM is a readable 503
        # rather than a call that connects and stays silent. (Cheap: a file and a probe.)
        prepared = await prepare(avatar_id)

        async def on_connection(connection):
            # Called for new peer connections only (also for a stale pc_id, e.g. after a
            # server restart); renegotiations of a live one reuse its session. An error here
            # closes the connection (``Signaling``) and fails the offer.
            running = await sessions.start(
                *prepared,
                functools.partial(webrtc_transport, connection),
                user_id=user.id,
                username=user.username,
                login=login,
            )
            if seat:
                hold_until_done(seat, running.task)
            peer_owners[connection.pc_id] = user.id
            watch = asyncio.create_task(
                watch_peer(connection, connect_timeout_secs=settings.connect_timeout_secs),
                name=f"watch-{connection.pc_id}",
            )

            def done(_task: asyncio.Task) -> None:
                peer_owners.pop(connection.pc_id, None)
                watch.cancel()

            running.task.add_done_callback(done)

        request = SmallWebRTCRequest(
            sdp=body.sdp,
            type=body.type,
            pc_id=body.pc_id,
            restart_pc=body.restart_pc,
            request_data=body.request_data,
        )
        try:
            answer = await webrtc.handle_web_request(request, on_connection)
        except HTTPException:
            raise
        except OfferError as e:
            raise HTTPException(400, f"Could not accept the WebRTC offer: {e}.") from None
        except Exception as e:
            logger.exception("a call could not start")
            raise HTTPException(
                500, f"The call could not start (a server error: {e}). Try again in a moment."
            ) from None
        if not answer:
            raise HTTPException(500, "no WebRTC answer was produced")
        return answer

    @app.patch("/api/offer")
    async def ice_candidate(body: PatchBody, user: SignedIn):
        if peer_owners.get(body.pc_id) != user.id:
            raise HTTPException(404, "no such peer connection of yours")
        request = SmallWebRTCPatchRequest(
            pc_id=body.pc_id,
            candidates=[
                # Pipecat annotates these as set; aiortc takes them unset (None) as well.
                IceCandidate(
                    candidate=c.candidate,
                    sdp_mid=cast(str, c.sdp_mid),
                    sdp_mline_index=cast(int, c.sdp_mline_index),
                )
                for c in body.candidates
            ],
        )
        await webrtc.handle_patch_request(request)
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
        connection = webrtc.connection(body.pc_id)
        if connection is None or peer_owners.get(body.pc_id) != user.id:
            raise HTTPException(404, "no such call of yours")
        await connection.disconnect()
        return {"status": "ended"}

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
            try:
                config, backend = await prepare(pick_avatar(avatar))
            except HTTPException as e:
                await websocket.close(code=1011, reason=str(e.detail)[:120])
                return
            running = await sessions.start(
                config,
                backend,
                functools.partial(websocket_transport, websocket),
                user_id=user.id,
                username=user.username,
                login=websocket.cookies.get(COOKIE),
            )
            await running.task
        finally:
            seat.release()

    @app.exception_handler(AvatarConfigError)
    async def avatar_error(_request, exc: AvatarConfigError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    return app


def _loadable(catalog: AvatarCatalog, avatar_ids: list[str]) -> list[AvatarConfig]:
    """The avatars whose files are valid (a broken one is reported by /api/avatars)."""
    out = []
    for avatar_id in avatar_ids:
        try:
            out.append(catalog.load(avatar_id))
        except AvatarConfigError:
            continue
    return out


def _audio_in_backlog_ms(webrtc: Signaling) -> int:
    """The most received audio any call has not yet handed to its frame graph, in ms.

    aiortc queues decoded 20 ms frames for the session to read; a queue that grows means the
    event loop can't keep up and the bot hears people late (and holds their audio in memory).
    """
    frames = 0
    for connection in webrtc.connections():
        for receiver in connection.pc.getReceivers():
            queue = getattr(receiver.track, "_queue", None)  # aiortc keeps no public size
            if queue is not None:
                frames = max(frames, queue.qsize())
    return frames * 20


def _rss_mb() -> float:
    """This process's resident memory (Linux ``/proc``; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _page(path: Path):
    async def serve() -> FileResponse:
        return FileResponse(path)

    return serve
