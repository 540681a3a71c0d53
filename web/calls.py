"""Calls run in this process: signaling, one voice session per call, and what each call holds.

:class:`LocalCalls` is what a worker process runs (``web.worker``), and what ``python -m bots
<avatar>`` and the in-process room (``AVATARS_WORKERS=0``) run. The room with workers places
calls through :class:`web.workers.WorkerPool`, which offers the same methods; ``web.app``
uses either through :class:`Calls`.

A call is admitted in the room (``web.admission``) before it gets here; its seat is held
while the session runs and given back when it ends (``CallRequest.seat``).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any, Protocol, cast

from fastapi import WebSocket
from loguru import logger
from pipecat.transports.smallwebrtc.request_handler import (
    IceCandidate,
    SmallWebRTCPatchRequest,
    SmallWebRTCRequest,
)
from pydantic import AliasChoices, BaseModel, Field

from bots.config import AvatarConfig, AvatarConfigError
from bots.llm_backend import LLMBackend, LLMUnavailableError
from bots.models import ModelMissingError
from bots.runtime import Runtime
from bots.sessions import RunningSession, SessionManager
from transports.webrtc import (
    MAX_CANDIDATE_CHARS,
    MAX_MEDIA_SECTIONS,
    MAX_SDP_CHARS,
    OfferError,
    Signaling,
    watch_peer,
    webrtc_transport,
)
from transports.websocket import websocket_transport
from web.admission import Seat
from web.loop_lag import LoopLagMonitor
from web.process_stats import audio_in_backlog_ms, rss_mb

SERVER_ERROR = (
    "The call ended because of a server error (the process running it stopped). "
    "Press Talk to reconnect."
)
ENDED_KEPT = 500
"""How many ended calls' reasons are remembered, for pages asking why theirs ended."""


class OfferBody(BaseModel):
    """A WebRTC offer, as Pipecat clients send it (the room's ``/api/offer``)."""

    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS)
    type: str = Field(pattern="^(offer|answer)$")
    pc_id: str | None = Field(default=None, max_length=200)
    restart_pc: bool | None = None
    request_data: dict[str, Any] | None = Field(
        default=None,
        # Pipecat's client-js sends ``requestData``; its Python clients ``request_data``.
        validation_alias=AliasChoices("request_data", "requestData"),
    )

    def request(self) -> SmallWebRTCRequest:
        """As Pipecat's signaling takes it."""
        return SmallWebRTCRequest(
            sdp=self.sdp,
            type=self.type,
            pc_id=self.pc_id,
            restart_pc=self.restart_pc,
            request_data=self.request_data,
        )


class IceCandidateBody(BaseModel):
    """One trickled ICE candidate (the route checks it: ``transports.webrtc.check_candidate``)."""

    candidate: str = Field(max_length=MAX_CANDIDATE_CHARS)
    sdp_mid: str | None = Field(default=None, max_length=32)
    sdp_mline_index: int | None = Field(default=None, ge=0, le=MAX_MEDIA_SECTIONS)

    def candidate_of(self) -> IceCandidate:
        """As Pipecat's signaling takes it."""
        # Pipecat annotates these as set; aiortc takes them unset (None) as well.
        return IceCandidate(
            candidate=self.candidate,
            sdp_mid=cast(str, self.sdp_mid),
            sdp_mline_index=cast(int, self.sdp_mline_index),
        )


class CallError(Exception):
    """A call could not start or be changed; ``status`` and ``message`` are for the caller."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class CallRequest:
    """Who a new call is for, with which avatar, and the seat it holds in the room."""

    avatar_id: str
    user_id: str
    username: str = ""
    login: str | None = None
    seat: Seat | None = None


class Calls(Protocol):
    """What the room does with calls, in this process or on workers."""

    async def start(self) -> None:
        """Start what runs beside the calls (workers, login checks)."""
        ...

    async def stop(self) -> None:
        """End every call and stop."""
        ...

    async def offer(self, request: SmallWebRTCRequest, call: CallRequest) -> dict[str, str]:
        """Answer a WebRTC offer: a new call, or a renegotiation of a live one."""
        ...

    async def patch(self, pc_id: str, candidates: list[IceCandidate]) -> None:
        """Trickled ICE candidates for a live call."""
        ...

    async def hangup(self, pc_id: str) -> None:
        """End a call now."""
        ...

    async def websocket(self, websocket: WebSocket, call: CallRequest) -> None:
        """Run a call over an accepted WebSocket until it ends."""
        ...

    def owner(self, pc_id: str) -> str | None:
        """The user id of a live call's person."""
        ...

    def ended(self, pc_id: str) -> str | None:
        """Why an ended call ended, when it was not the person's doing (a crash)."""
        ...

    def present(self) -> list[dict]:
        """Who talks to which avatar (the lobby)."""
        ...

    def calls_with(self, avatar_id: str) -> int:
        """Live calls with ``avatar_id``."""
        ...

    def end_calls(self, reason: str, *, user_id: str | None = None, login: str | None = None):
        """End someone's calls after their turn (sign-out)."""
        ...

    async def forget(self, user_id: str) -> None:
        """Before "forget me": end the person's calls and drop their pending writes."""
        ...

    async def stats(self, collect: bool = False) -> dict[str, Any]:
        """What the calls hold (sessions, peer connections, tasks, lag)."""
        ...

    def health(self) -> dict[str, Any]:
        """For ``/api/health``: live calls, and the workers when there are some."""
        ...


class LocalCalls:
    """Calls on this process's event loop, each a ``VoiceSession`` of ``SessionManager``.

    Args:
        runtime: the process's runtime.
        greet: avatars greet people when they connect.
        still_valid: ``still_valid(login) -> bool``; calls whose sign-in ended are ended
            after their turn (None: not checked).
        login_check_secs: how often that is checked.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        greet: bool = True,
        still_valid=None,
        login_check_secs: float | None = None,
    ):
        self.runtime = runtime
        self.sessions = SessionManager(runtime, greet=greet)
        self.webrtc = Signaling()
        self.lag = LoopLagMonitor()
        self._live: dict[str, RunningSession] = {}  # pc_id -> its session
        self._still_valid = still_valid
        self._login_check_secs = login_check_secs or runtime.settings.login_check_secs
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        """Start the loop-lag monitor and the sign-in checks."""
        self._tasks.append(asyncio.create_task(self.lag.run(), name="loop-lag"))
        if self._still_valid:
            watch = self.sessions.watch_logins(self._still_valid, self._login_check_secs)
            self._tasks.append(asyncio.create_task(watch, name="watch-logins"))

    async def stop(self) -> None:
        """Cancel every session and close every peer connection."""
        for task in self._tasks:
            task.cancel()
        await self.sessions.stop_all()
        await self.webrtc.close()

    async def prepare(self, avatar_id: str) -> tuple[AvatarConfig, LLMBackend]:
        """Check that a session can start before answering: a file and a probe, cheap.

        So a missing LLM is a readable 503, not a call that connects and stays silent.
        """
        try:
            return await self.sessions.prepare(avatar_id)
        except LLMUnavailableError as e:
            raise CallError(503, str(e)) from None
        except (AvatarConfigError, ModelMissingError) as e:
            raise CallError(500, str(e)) from None

    async def offer(self, request: SmallWebRTCRequest, call: CallRequest) -> dict[str, str]:
        """Answer an offer; a new peer connection gets a session of its own."""
        if request.pc_id and self.webrtc.connection(request.pc_id):
            answer = await self.webrtc.handle_web_request(request, _no_new_connection)
            return _answered(answer)
        prepared = await self.prepare(call.avatar_id)

        async def on_connection(connection) -> None:
            # An error here closes the connection (``Signaling``) and fails the offer.
            running = await self.sessions.start(
                *prepared,
                functools.partial(webrtc_transport, connection),
                user_id=call.user_id,
                username=call.username,
                login=call.login,
            )
            pc_id = connection.pc_id
            if call.seat:
                call.seat.in_call = True
            self._live[pc_id] = running
            settings = self.runtime.settings
            watch = asyncio.create_task(
                watch_peer(connection, connect_timeout_secs=settings.connect_timeout_secs),
                name=f"watch-{pc_id}",
            )

            def done(_task: asyncio.Task) -> None:
                self._live.pop(pc_id, None)
                watch.cancel()
                if call.seat:
                    call.seat.release()

            running.task.add_done_callback(done)

        try:
            answer = await self.webrtc.handle_web_request(request, on_connection)
        except CallError:
            raise
        except OfferError as e:
            raise CallError(400, f"Could not accept the WebRTC offer: {e}.") from None
        except Exception as e:
            logger.exception("a call could not start")
            raise CallError(
                500, f"The call could not start (a server error: {e}). Try again in a moment."
            ) from None
        return _answered(answer)

    async def patch(self, pc_id: str, candidates: list[IceCandidate]) -> None:
        """Add trickled ICE candidates to a live call."""
        if pc_id not in self._live:
            raise CallError(404, "no such peer connection")
        await self.webrtc.handle_patch_request(
            SmallWebRTCPatchRequest(pc_id=pc_id, candidates=candidates)
        )

    async def hangup(self, pc_id: str) -> None:
        """Close a call's peer connection (its session then ends)."""
        connection = self.webrtc.connection(pc_id)
        if connection is None:
            raise CallError(404, "no such call")
        await connection.disconnect()

    async def websocket(self, websocket: WebSocket, call: CallRequest) -> None:
        """Run a session on an accepted WebSocket until it ends."""
        config, backend = await self.prepare(call.avatar_id)
        running = await self.sessions.start(
            config,
            backend,
            functools.partial(websocket_transport, websocket),
            user_id=call.user_id,
            username=call.username,
            login=call.login,
        )
        await running.task

    def owner(self, pc_id: str) -> str | None:
        """Whose call ``pc_id`` is, while it is live."""
        running = self._live.get(pc_id)
        return running.user_id if running else None

    def ended(self, pc_id: str) -> str | None:
        """None: a call of this process ends only by its person, its page or its idling."""
        return None

    def present(self) -> list[dict]:
        """Who is talking to which avatar."""
        return self.sessions.present()

    def calls_with(self, avatar_id: str) -> int:
        """Live calls with ``avatar_id``."""
        return self.sessions.calls_with(avatar_id)

    def end_calls(self, reason: str, *, user_id: str | None = None, login: str | None = None):
        """End the matching calls after their turn."""
        self.sessions.end_calls(reason, user_id=user_id, login=login)

    async def forget(self, user_id: str) -> None:
        """End the person's calls now and stop every write of theirs."""
        await self.sessions.forget(user_id)

    def calls(self) -> list[dict]:
        """Every live WebRTC call: its peer connection, person and avatar."""
        return [
            {
                "pc_id": pc_id,
                "user_id": r.user_id,
                "username": r.username,
                "avatar": r.session.avatar.id,
            }
            for pc_id, r in self._live.items()
        ]

    async def stats(self, collect: bool = False) -> dict[str, Any]:
        """What this process holds: to check that ended calls leave nothing behind.

        ``collect`` also counts the sessions still in memory after a garbage collection
        (``in_memory``): that stops every call for a moment, so a sampler leaves it off.
        """
        return {
            "sessions": len(self.sessions.active),
            "finishing": len(self.sessions.finishing),
            "in_memory": self.sessions.alive() if collect else None,
            "peer_connections": self.webrtc.count(),
            "peer_owners": len(self._live),
            "tasks": len(asyncio.all_tasks()),
            "rss_mb": rss_mb(),
            "loop_lag": self.lag.stats(),
            "audio_in_backlog_ms": audio_in_backlog_ms(self.webrtc),
        }

    def health(self) -> dict[str, Any]:
        """Live calls (this process runs them all)."""
        return {"sessions": len(self.sessions.active)}


async def _no_new_connection(_connection) -> None:
    raise CallError(409, "that peer connection is not live any more; start a new call")


def _answered(answer: dict[str, str] | None) -> dict[str, str]:
    if not answer:
        raise CallError(500, "no WebRTC answer was produced")
    return answer
